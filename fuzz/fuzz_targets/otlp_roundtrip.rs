//! Shared by the OTLP targets: the first byte picks the encoding (odd: JSON, even: protobuf);
//! the body is decoded and converted, and a JSON body that decodes is also re-encoded as
//! protobuf, which must convert to the same records.

use weft::ingest::decode::{decode_otlp, Format};
use weft::ingest::otlp::Converted;

pub fn check<Req>(data: &[u8], convert: impl Fn(Req) -> Converted)
where
    Req: prost::Message + Default + serde::de::DeserializeOwned,
{
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let format = if selector % 2 == 1 {
        Format::Json
    } else {
        Format::Protobuf
    };
    let Ok(req) = decode_otlp::<Req>(format, body) else {
        return;
    };
    let proto = req.encode_to_vec();
    let direct = convert(req);
    if format == Format::Json {
        let again =
            decode_otlp::<Req>(Format::Protobuf, &proto).expect("re-encoded protobuf decodes");
        let via_proto = convert(again);
        assert_eq!(
            format!("{:?}", direct.records),
            format!("{:?}", via_proto.records)
        );
        assert_eq!(direct.rejected, via_proto.rejected);
    }
}
