//! JSON-lines log bodies: every line is accepted or rejected, never a panic, and the counts add
//! up to the non-empty lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use weft::config::ExtractConfig;
use weft::ingest::jsonlines;
use weft::ingest::traceids::Extractor;

fn extractor() -> &'static Extractor {
    static E: OnceLock<Extractor> = OnceLock::new();
    E.get_or_init(|| Extractor::new(&ExtractConfig::default()).expect("default patterns compile"))
}

fuzz_target!(|data: &[u8]| {
    let out = jsonlines::parse(data, extractor(), 1);
    let lines = String::from_utf8_lossy(data)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    assert_eq!(out.records.len() as u64 + out.rejected, lines as u64);
});
