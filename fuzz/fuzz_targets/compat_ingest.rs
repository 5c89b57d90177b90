//! The compatibility ingest decoders — remote write, Loki push (JSON and protobuf), Zipkin
//! (JSON and protobuf) and snappy — on arbitrary bytes: errors or records, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use weft::compat::{loki_push, remote_write, zipkin};
use weft::config::ExtractConfig;
use weft::ingest::traceids::Extractor;

fn extractor() -> &'static Extractor {
    static E: OnceLock<Extractor> = OnceLock::new();
    E.get_or_init(|| Extractor::new(&ExtractConfig::default()).expect("default patterns compile"))
}

fuzz_target!(|data: &[u8]| {
    let _ = weft::ingest::decode::snappy(data, 1 << 20);
    if let Ok(req) = <remote_write::WriteRequest as prost::Message>::decode(data) {
        let _ = remote_write::convert(req);
    }
    for ct in ["application/json", "application/x-protobuf"] {
        let _ = loki_push::decode(ct, data, extractor(), 1);
        if let Ok(spans) = zipkin::decode(Some(ct), data) {
            let _ = zipkin::convert(spans);
        }
    }
});
