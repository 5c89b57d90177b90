//! OTLP trace export bodies, in either encoding.
#![no_main]

mod otlp_roundtrip;

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

fuzz_target!(|data: &[u8]| {
    otlp_roundtrip::check::<ExportTraceServiceRequest>(data, weft::ingest::otlp::spans);
});
