//! Gzip request bodies: inflation stops at the limit, whatever the input claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft::ingest::decode::decompress;

const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = decompress(Some("gzip"), bytes::Bytes::copy_from_slice(data), LIMIT) {
        assert!(out.len() <= LIMIT);
    }
});
