//! OTLP logs export bodies, with trace-ID extraction. The first byte picks the encoding (odd:
//! JSON, even: protobuf); JSON that decodes must convert the same after a protobuf round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;
use std::sync::OnceLock;
use weft::config::ExtractConfig;
use weft::ingest::decode::{decode_otlp, Format};
use weft::ingest::otlp;
use weft::ingest::traceids::Extractor;

fn extractor() -> &'static Extractor {
    static E: OnceLock<Extractor> = OnceLock::new();
    E.get_or_init(|| Extractor::new(&ExtractConfig::default()).expect("default patterns compile"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let format = if selector % 2 == 1 {
        Format::Json
    } else {
        Format::Protobuf
    };
    let Ok(req) = decode_otlp::<ExportLogsServiceRequest>(format, body) else {
        return;
    };
    let proto = req.encode_to_vec();
    let direct = otlp::logs(req, extractor());
    if format == Format::Json {
        let again = decode_otlp::<ExportLogsServiceRequest>(Format::Protobuf, &proto)
            .expect("re-encoded protobuf decodes");
        let via_proto = otlp::logs(again, extractor());
        assert_eq!(
            format!("{:?}", direct.records),
            format!("{:?}", via_proto.records)
        );
    }
});
