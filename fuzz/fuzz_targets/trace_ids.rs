//! Trace-ID parsing and extraction from arbitrary text: any ID found is valid and normalised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use weft::config::ExtractConfig;
use weft::ingest::traceids::Extractor;
use weft::model::{SpanId, TraceId};

fn extractor() -> &'static Extractor {
    static E: OnceLock<Extractor> = OnceLock::new();
    E.get_or_init(|| Extractor::new(&ExtractConfig::default()).expect("default patterns compile"))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(t) = TraceId::from_hex(&text) {
        assert_eq!(TraceId::from_hex(&t.to_hex()).unwrap(), t);
    }
    let _ = TraceId::from_decimal(&text);
    let _ = TraceId::from_bytes(data);
    let _ = SpanId::from_hex(&text);
    if let Some(found) = extractor().find(&text) {
        let hex = found.trace_id.to_hex();
        assert_eq!(hex.len(), 32);
        assert!(hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(hex, "0".repeat(32));
    }
});
