//! The binary encodings of what weft keeps on disk — a WAL entry's batch and an index's stored
//! record — each with a format version, so a later model change can still read what an
//! earlier release wrote.
//!
//! # Layout
//!
//! ```text
//! u8   TAG (0x57, 'W')
//! u8   format version (FORMAT_VERSION)
//! ...  postcard encoding of that version's types
//! ```
//!
//! postcard has no field names and no room for added fields, so a changed struct does not
//! decode as the old one: when a record type changes, bump `FORMAT_VERSION` and keep a decoder
//! for every older version here (convert on read).
//!
//! **Version 0** is what weft wrote before formats carried a version: bare postcard, no tag. A
//! stored record of version 0 starts with its enum variant (0, 1 or 2), never with `TAG`; a
//! WAL batch of version 0 is known by its segment's magic (`WEFTWAL1`), since its first byte
//! is a string length that can be anything.

use super::{Batch, Record};

pub const TAG: u8 = b'W';
pub const FORMAT_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(
        "format version {0} is newer than this weft understands ({FORMAT_VERSION}); upgrade weft"
    )]
    Newer(u8),
    #[error("not a weft encoding (first byte {0:#04x})")]
    Untagged(u8),
    #[error("empty encoding")]
    Empty,
    #[error("does not decode: {0}")]
    Postcard(#[from] postcard::Error),
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let out = vec![TAG, FORMAT_VERSION];
    // The model types are plain data (no maps with non-string keys, no custom serializers
    // that fail), so encoding cannot fail; `extend` keeps the one allocation.
    postcard::to_extend(value, out).expect("model types always encode")
}

/// Splits off the tag and version, checking the version is one this build reads.
fn body(bytes: &[u8]) -> Result<(u8, &[u8]), CodecError> {
    match bytes {
        [] => Err(CodecError::Empty),
        [TAG, version, rest @ ..] if *version <= FORMAT_VERSION => Ok((*version, rest)),
        [TAG, version, ..] => Err(CodecError::Newer(*version)),
        [first, ..] => Err(CodecError::Untagged(*first)),
    }
}

pub fn encode_batch(batch: &Batch) -> Vec<u8> {
    encode(batch)
}

/// A WAL entry's payload; `legacy` when its segment predates versions (version 0).
pub fn decode_batch(bytes: &[u8], legacy: bool) -> Result<Batch, CodecError> {
    if legacy {
        return Ok(postcard::from_bytes(bytes)?);
    }
    // Versions 0 and 1 share the model types; a later version adds its conversion here.
    let (_version, rest) = body(bytes)?;
    Ok(postcard::from_bytes(rest)?)
}

pub fn encode_record(record: &Record) -> Vec<u8> {
    encode(record)
}

pub fn decode_record(bytes: &[u8]) -> Result<Record, CodecError> {
    match bytes.first() {
        // Version 0: a bare `Record`, whose first byte is its variant index.
        Some(0..=2) => Ok(postcard::from_bytes(bytes)?),
        _ => {
            let (_version, rest) = body(bytes)?;
            Ok(postcard::from_bytes(rest)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing;

    #[test]
    fn records_and_batches_round_trip_and_version_zero_still_reads() {
        let record = Record::Span(testing::span(1, None, 10, 20));
        let encoded = encode_record(&record);
        assert_eq!(&encoded[..2], &[TAG, FORMAT_VERSION]);
        assert_eq!(decode_record(&encoded).unwrap(), record);
        let v0 = postcard::to_allocvec(&record).unwrap();
        assert_eq!(decode_record(&v0).unwrap(), record);

        let batch = Batch {
            tenant: crate::model::TenantId::default(),
            records: vec![record],
        };
        assert_eq!(decode_batch(&encode_batch(&batch), false).unwrap(), batch);
        let v0 = postcard::to_allocvec(&batch).unwrap();
        assert_eq!(decode_batch(&v0, true).unwrap(), batch);
    }

    #[test]
    fn newer_and_foreign_encodings_are_errors_not_garbage() {
        let mut newer = encode_record(&Record::Span(testing::span(1, None, 10, 20)));
        newer[1] = FORMAT_VERSION + 1;
        assert!(matches!(decode_record(&newer), Err(CodecError::Newer(_))));
        assert!(matches!(
            decode_record(&[0x99, 1]),
            Err(CodecError::Untagged(0x99))
        ));
        assert!(matches!(decode_record(&[]), Err(CodecError::Empty)));
        assert!(decode_batch(&[TAG, FORMAT_VERSION, 0xff], false).is_err());
    }
}
