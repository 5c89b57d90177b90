//! OTLP metrics export bodies, in either encoding.
#![no_main]

mod otlp_roundtrip;

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

fuzz_target!(|data: &[u8]| {
    otlp_roundtrip::check::<ExportMetricsServiceRequest>(data, weft::ingest::otlp::metrics);
});
