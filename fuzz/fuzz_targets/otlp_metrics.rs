//! OTLP metrics export bodies. The first byte picks the encoding (odd: JSON, even: protobuf);
//! JSON that decodes must convert the same after a protobuf round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
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
    let Ok(req) = decode_otlp::<ExportMetricsServiceRequest>(format, body) else {
        return;
    };
    let proto = req.encode_to_vec();
    let direct = otlp::metrics(req);
    if format == Format::Json {
        let again = decode_otlp::<ExportMetricsServiceRequest>(Format::Protobuf, &proto)
            .expect("re-encoded protobuf decodes");
        let via_proto = otlp::metrics(again);
        assert_eq!(
            format!("{:?}", direct.records),
            format!("{:?}", via_proto.records)
        );
    }
});
