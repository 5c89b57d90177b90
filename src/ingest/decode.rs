//! Request bodies: content type and encoding checks, bounded gzip inflation, and OTLP decoding
//! from protobuf or OTLP/JSON.

use crate::error::{ErrorCode, ServiceError};
use std::io::Read;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported content type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    #[error("unsupported content encoding {0:?}: use gzip, snappy or none")]
    UnsupportedEncoding(String),
    #[error("request body is larger than the limit of {limit} bytes{}", after_gzip(*.inflated))]
    TooLarge { limit: usize, inflated: bool },
    #[error("gzip body cannot be decompressed: {0}")]
    Gzip(String),
    #[error("snappy body cannot be decompressed: {0}")]
    Snappy(String),
    #[error("protobuf body cannot be decoded as {message}: {error}")]
    Protobuf {
        message: &'static str,
        error: String,
    },
    #[error("JSON body cannot be decoded as {message}: {error}")]
    Json {
        message: &'static str,
        error: String,
    },
    #[error("the request body did not arrive within http.body_timeout_secs = {secs} s")]
    Timeout { secs: u64 },
    #[error("the request body is empty")]
    Empty,
}

fn after_gzip(inflated: bool) -> &'static str {
    if inflated {
        " after decompression"
    } else {
        ""
    }
}

impl ServiceError for DecodeError {
    fn code(&self) -> ErrorCode {
        match self {
            DecodeError::UnsupportedMediaType(_) | DecodeError::UnsupportedEncoding(_) => {
                ErrorCode::UnsupportedMediaType
            }
            DecodeError::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            DecodeError::Timeout { .. } => ErrorCode::Timeout,
            _ => ErrorCode::InvalidArgument,
        }
    }
}

impl DecodeError {
    /// A short, fixed label for the rejection counter.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::UnsupportedMediaType(_) => "unsupported_media_type",
            DecodeError::UnsupportedEncoding(_) => "unsupported_encoding",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::Timeout { .. } => "timeout",
            _ => "malformed",
        }
    }
}

/// The two OTLP body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

impl Format {
    /// From a `Content-Type` header, ignoring parameters such as `charset`.
    pub fn from_content_type(ct: Option<&str>) -> Result<Format, DecodeError> {
        let mime = ct
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
            "application/json" => Ok(Format::Json),
            _ => Err(DecodeError::UnsupportedMediaType(
                ct.unwrap_or("(none)").to_string(),
            )),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// Inflates a gzip body, stopping as soon as it would pass `limit`: a small bomb costs at
/// most `limit` bytes of memory, never its inflated size.
pub fn decompress(
    encoding: Option<&str>,
    body: bytes::Bytes,
    limit: usize,
) -> Result<bytes::Bytes, DecodeError> {
    match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("identity") => Ok(body),
        Some("gzip") | Some("x-gzip") => {
            let mut out = Vec::with_capacity((body.len() * 4).min(limit));
            let mut reader = flate2::read::MultiGzDecoder::new(&body[..]).take(limit as u64 + 1);
            reader
                .read_to_end(&mut out)
                .map_err(|e| DecodeError::Gzip(e.to_string()))?;
            if out.len() > limit {
                return Err(DecodeError::TooLarge {
                    limit,
                    inflated: true,
                });
            }
            Ok(out.into())
        }
        Some("snappy") => snappy(&body, limit).map(Into::into),
        Some(other) => Err(DecodeError::UnsupportedEncoding(other.to_string())),
    }
}

/// Decompresses a snappy block (the format Prometheus remote write and Loki push use, not
/// the framed stream format). The block states its decompressed length up front, so a body
/// that would pass `limit` is refused before anything is allocated.
pub fn snappy(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    snappy_len(body, limit)?;
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| DecodeError::Snappy(e.to_string()))
}

/// The decompressed length a snappy block states, refused past `limit`.
pub fn snappy_len(body: &[u8], limit: usize) -> Result<usize, DecodeError> {
    let len = snap::raw::decompress_len(body).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    if len > limit {
        return Err(DecodeError::TooLarge {
            limit,
            inflated: true,
        });
    }
    Ok(len)
}

/// Decodes an OTLP export request in either format.
pub fn decode_otlp<T>(format: Format, body: &[u8]) -> Result<T, DecodeError>
where
    T: prost::Message + Default + serde::de::DeserializeOwned,
{
    let message = short_type_name::<T>();
    match format {
        Format::Protobuf => T::decode(body).map_err(|e| DecodeError::Protobuf {
            message,
            error: e.to_string(),
        }),
        Format::Json => serde_json::from_slice(body).map_err(|e| DecodeError::Json {
            message,
            error: e.to_string(),
        }),
    }
}

pub fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    #[test]
    fn gzip_bomb_is_refused_without_inflating_it() {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 50 * 1024 * 1024]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 100 * 1024);
        let err = decompress(Some("gzip"), bomb.into(), 1024 * 1024).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { inflated: true, .. }));
        assert!(err.to_string().contains("1048576"));
    }

    #[test]
    fn snappy_bodies_are_bounded_before_inflating() {
        let big = vec![7u8; 4 * 1024 * 1024];
        let packed = snap::raw::Encoder::new().compress_vec(&big).unwrap();
        assert_eq!(snappy(&packed, big.len()).unwrap(), big);
        let err = snappy(&packed, 1024).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { inflated: true, .. }));
        assert!(matches!(
            snappy(b"\xff\xff\xff\xff\x0fnot snappy", 1 << 20),
            Err(DecodeError::Snappy(_)) | Err(DecodeError::TooLarge { .. })
        ));
        assert!(decompress(Some("snappy"), packed.into(), 1 << 30).is_ok());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::from_content_type(Some("application/json; charset=utf-8")).unwrap(),
            Format::Json
        );
        assert_eq!(
            Format::from_content_type(Some("application/x-protobuf")).unwrap(),
            Format::Protobuf
        );
        assert!(Format::from_content_type(Some("text/plain")).is_err());
        assert!(Format::from_content_type(None).is_err());
    }
}
