//! OTLP trace export bodies. The first byte picks the encoding (odd: JSON, even: protobuf).
//! A JSON body that decodes is also re-encoded as protobuf: both paths must give the same
//! records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use weft::ingest::decode::{decode_otlp, Format};
use weft::ingest::otlp;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let format = if selector % 2 == 1 {
        Format::Json
    } else {
        Format::Protobuf
    };
    let Ok(req) = decode_otlp::<ExportTraceServiceRequest>(format, body) else {
        return;
    };
    let proto = req.encode_to_vec();
    let direct = otlp::spans(req);
    if format == Format::Json {
        let again = decode_otlp::<ExportTraceServiceRequest>(Format::Protobuf, &proto)
            .expect("re-encoded protobuf decodes");
        let via_proto = otlp::spans(again);
        assert_eq!(
            format!("{:?}", direct.records),
            format!("{:?}", via_proto.records)
        );
        assert_eq!(direct.rejected, via_proto.rejected);
    }
});
