//! OTLP logs export bodies, in either encoding, with trace-ID extraction.
#![no_main]

mod otlp_roundtrip;

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use std::sync::OnceLock;
use weft::config::ExtractConfig;
use weft::ingest::traceids::Extractor;

fn extractor() -> &'static Extractor {
    static E: OnceLock<Extractor> = OnceLock::new();
    E.get_or_init(|| Extractor::new(&ExtractConfig::default()).expect("default patterns compile"))
}

fuzz_target!(|data: &[u8]| {
    otlp_roundtrip::check::<ExportLogsServiceRequest>(data, |r| {
        weft::ingest::otlp::logs(r, extractor())
    });
});
