//! Hostile writes: what decoding will allocate is charged before it happens (empty structs,
//! resources copied into every record), gRPC refuses before it decodes, silent bodies hold
//! nothing and time out, and values and texts break one named rule each. The server runs
//! under a 3 GiB address-space cap and must survive.

mod common;

use common::otlp::{self, encode};
use common::{post, Server};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const PROTO: &str = "application/x-protobuf";
const MIB: u64 = 1024 * 1024;

/// An export of `n` spans with nothing in them, written straight as protobuf (2 bytes a span on
/// the wire, a 264-byte struct once decoded): building the structs here would cost the test
/// what it means to cost the server.
fn empty_spans(n: usize) -> Vec<u8> {
    fn field(number: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![number << 3 | 2];
        prost::encoding::encode_varint(body.len() as u64, &mut out);
        out.extend_from_slice(body);
        out
    }
    let spans = [0x12u8, 0x00].repeat(n); // ScopeSpans.spans (2), empty
    field(1, &field(2, &spans)) // Request.resource_spans (1) → ResourceSpans.scope_spans (2)
}

#[test]
fn the_hand_written_body_is_what_it_says() {
    let decoded: ExportTraceServiceRequest = prost::Message::decode(&empty_spans(3)[..]).unwrap();
    assert_eq!(
        decoded.resource_spans[0].scope_spans[0].spans,
        vec![Span::default(); 3]
    );
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).chars().take(400).collect()
}

#[test]
fn decoding_is_charged_before_it_happens() {
    let mut s = Server::start_capped(&[]);
    // 15 MiB of empty spans: 2 GB once decoded.
    let body = empty_spans(15 * MIB as usize / 2);
    assert!(body.len() as u64 > 14 * MIB);
    let (status, reply) = post(&s.url("/v1/traces"), PROTO, &[], body);
    assert_eq!(status, 413, "{}", text(&reply));
    assert!(
        text(&reply).contains("limits.max_request_memory_bytes"),
        "{}",
        text(&reply)
    );
    // `{}` × 5.5 M as JSON lines: 4.5 GB once parsed.
    let (status, reply) = post(
        &s.url("/api/v1/logs"),
        "application/x-ndjson",
        &[],
        "{}\n".repeat(5_500_000).into_bytes(),
    );
    assert_eq!(status, 413, "{}", text(&reply));
    // A 1 MiB resource over 3,000 tiny logs: copied into each, 3 GB.
    let mut logs = otlp::logs(
        "big",
        (0..3000).map(|i| otlp::log(None, None, "x", i)).collect(),
    );
    logs.resource_logs[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(otlp::kv("blob", &"r".repeat(MIB as usize)));
    let (status, reply) = post(&s.url("/v1/logs"), PROTO, &[], encode(&logs));
    assert_eq!(status, 413, "{}", text(&reply));
    assert!(
        s.peak_rss_bytes() < 1024 * MIB,
        "peak RSS {} MiB",
        s.peak_rss_bytes() / MIB
    );
    s.assert_alive();
    // Ordinary requests still go through.
    let (status, _) = post(
        &s.url("/v1/traces"),
        PROTO,
        &[],
        encode(&otlp::one_span_trace("fine", 1, "op")),
    );
    assert_eq!(status, 200);
}

#[test]
fn a_resource_over_its_limit_refuses_its_records_by_name() {
    let s = Server::start(&[("WEFT_LIMITS_MAX_RESOURCE_BYTES", "1024")]);
    let mut logs = otlp::logs("svc", vec![otlp::log(None, None, "hello", 0)]);
    logs.resource_logs[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(otlp::kv("blob", &"r".repeat(2000)));
    let (status, reply) = post(&s.url("/v1/logs"), "application/json", &[], {
        serde_json::to_vec(&logs).unwrap()
    });
    assert_eq!(status, 400, "{}", text(&reply));
    assert!(
        text(&reply).contains("limits.max_resource_bytes = 1024"),
        "{}",
        text(&reply)
    );
    assert_eq!(
        s.metric("weft_records_rejected_total{reason=\"resource_too_large\",signal=\"logs\"}"),
        1.0
    );
}

fn auth_env(dir: &std::path::Path) -> String {
    let path = dir.join("auth.toml");
    std::fs::write(
        &path,
        format!(
            "[auth]\nenabled = true\n[[auth.tokens]]\ntenant = \"acme\"\nsha256 = {:?}\n",
            weft::api::auth::hash_token("secret")
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// A gRPC client codec that sends already-encoded bytes: the test builds a hostile body once
/// instead of a gigabyte of structs per call.
#[derive(Clone)]
struct PreEncoded;

impl tonic::codec::Codec for PreEncoded {
    type Encode = bytes::Bytes;
    type Decode = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    type Encoder = PreEncoded;
    type Decoder = PreEncoded;
    fn encoder(&mut self) -> Self::Encoder {
        PreEncoded
    }
    fn decoder(&mut self) -> Self::Decoder {
        PreEncoded
    }
}

impl tonic::codec::Encoder for PreEncoded {
    type Item = bytes::Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: bytes::Bytes,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put(buf, item);
        Ok(())
    }
}

impl tonic::codec::Decoder for PreEncoded {
    type Item = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, tonic::Status> {
        prost::Message::decode(buf)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

async fn export_bytes(
    channel: tonic::transport::Channel,
    body: bytes::Bytes,
    token: Option<&str>,
) -> tonic::Code {
    let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(64 * MIB as usize);
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(body);
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let path = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        .parse()
        .unwrap();
    match grpc.unary(req, path, PreEncoded).await {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    }
}

#[test]
fn grpc_refuses_before_it_decodes() {
    let conf = tempfile::tempdir().unwrap();
    let config = auth_env(conf.path());
    let mut s = Server::start_capped(&[("WEFT_CONFIG", &config)]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let baseline = s.rss_bytes();
    let fourteen = bytes::Bytes::from(empty_spans(7 * MIB as usize));
    let five = bytes::Bytes::from(empty_spans(5 * MIB as usize / 2));
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::new(s.grpc_url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        // 14 MiB without a token, then 32 × 5 MiB at once.
        let code = export_bytes(channel.clone(), fourteen.clone(), None).await;
        assert_eq!(code, tonic::Code::Unauthenticated);
        let calls: Vec<_> = (0..32)
            .map(|_| tokio::spawn(export_bytes(channel.clone(), five.clone(), None)))
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap(), tonic::Code::Unauthenticated);
        }
        // With the token, a body that would decode to gigabytes is refused before decoding.
        let code = export_bytes(channel.clone(), fourteen, Some("secret")).await;
        assert_eq!(code, tonic::Code::ResourceExhausted);
        // And an ordinary export still works.
        let one = bytes::Bytes::from(encode(&otlp::one_span_trace("fine", 4, "op")));
        assert_eq!(
            export_bytes(channel, one, Some("secret")).await,
            tonic::Code::Ok
        );
    });
    let grown = s.peak_rss_bytes().saturating_sub(baseline);
    // Unauthenticated bodies are never read; the authenticated one is refused once its
    // decoded size is known, before decoding.
    assert!(grown < 300 * MIB, "RSS grew by {} MiB", grown / MIB);
    s.assert_alive();
}

#[test]
fn silent_bodies_hold_nothing_and_time_out() {
    let s = Server::start(&[("WEFT_HTTP_BODY_TIMEOUT_SECS", "2")]);
    let addr = s.http.clone();
    // 16 connections announce 16 MiB bodies and send nothing.
    let mut silent: Vec<std::net::TcpStream> = (0..16)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(&addr).unwrap();
            write!(
                c,
                "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: {PROTO}\r\nContent-Length: 16777216\r\n\r\n"
            )
            .unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Everyone else is served at once, not told to retry.
    let started = Instant::now();
    let (status, _) = post(
        &s.url("/v1/traces"),
        PROTO,
        &[],
        encode(&otlp::one_span_trace("patient", 2, "op")),
    );
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    // The silent ones are cut off with 408 once the body timeout passes.
    for c in &mut silent {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = [0u8; 12];
        c.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 408", "{}", text(&head));
    }
}

#[test]
fn values_and_texts_follow_one_named_rule() {
    let s = Server::start(&[]);
    // NaN is refused the same way in JSON (a string there) and protobuf.
    let gauge = |v: &str| {
        format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"g","gauge":{{"dataPoints":[{{"timeUnixNano":"1795687200000000000","asDouble":{v}}}]}}}}]}}]}}]}}"#
        )
    };
    for v in ["\"NaN\"", "\"Infinity\""] {
        let (status, reply) = post(
            &s.url("/v1/metrics"),
            "application/json",
            &[],
            gauge(v).into_bytes(),
        );
        assert_eq!(status, 400);
        assert!(
            text(&reply).contains("non-finite values (NaN, Infinity) are not stored"),
            "{}",
            text(&reply)
        );
    }
    let nan = opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest {
        resource_metrics: vec![opentelemetry_proto::tonic::metrics::v1::ResourceMetrics {
            scope_metrics: vec![opentelemetry_proto::tonic::metrics::v1::ScopeMetrics {
                metrics: vec![opentelemetry_proto::tonic::metrics::v1::Metric {
                    name: "g".into(),
                    data: Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Gauge(
                        opentelemetry_proto::tonic::metrics::v1::Gauge {
                            data_points: vec![opentelemetry_proto::tonic::metrics::v1::NumberDataPoint {
                                time_unix_nano: otlp::T0,
                                value: Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(f64::NAN)),
                                ..Default::default()
                            }],
                        },
                    )),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let (status, reply) = post(&s.url("/v1/metrics"), PROTO, &[], encode(&nan));
    assert_eq!(status, 400);
    assert!(
        text(&reply).contains("non-finite values (NaN, Infinity) are not stored"),
        "{}",
        text(&reply)
    );
    // Bucket counts that wrap around to the count are refused, not stored.
    let wrap = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"h","histogram":{"aggregationTemporality":1,"dataPoints":[{"timeUnixNano":"1795687200000000000","count":"0","bucketCounts":["18446744073709551615","1"],"explicitBounds":[1.0]}]}}]}]}]}"#;
    let (status, reply) = post(
        &s.url("/v1/metrics"),
        "application/json",
        &[],
        wrap.as_bytes().to_vec(),
    );
    assert_eq!(status, 400);
    assert!(text(&reply).contains("more than 2^64"), "{}", text(&reply));
    // Invalid UTF-8 in a JSON line is refused, not stored with U+FFFD.
    let mut body = br#"{"msg":"ok line"}"#.to_vec();
    body.extend_from_slice(b"\n{\"msg\":\"bad \xff byte\"}\n");
    let (status, reply) = post(&s.url("/api/v1/logs"), "application/x-ndjson", &[], body);
    assert_eq!(status, 200, "{}", text(&reply));
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(
        (reply["accepted"].as_u64(), reply["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(
        reply["errors"][0]
            .as_str()
            .unwrap()
            .contains("line 2: not valid UTF-8"),
        "{reply}"
    );
    // An empty JSON-lines body is an error, not "0 accepted".
    let (status, _) = post(
        &s.url("/api/v1/logs"),
        "application/x-ndjson",
        &[],
        Vec::new(),
    );
    assert_eq!(status, 400);
    // A time past 2262 is refused rather than stored clamped.
    let late = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0123456789abcdef0123456789abcdef","spanId":"0123456789abcdef","name":"x","startTimeUnixNano":"9300000000000000000","endTimeUnixNano":"9300000000000000001"}]}]}]}"#;
    let (status, reply) = post(
        &s.url("/v1/traces"),
        "application/json",
        &[],
        late.as_bytes().to_vec(),
    );
    assert_eq!(status, 400);
    assert!(text(&reply).contains("2262"), "{}", text(&reply));
}

#[test]
fn records_past_the_age_bound_are_refused_by_name() {
    let s = Server::start(&[("WEFT_LIMITS_MAX_RECORD_AGE_SECS", "3600")]);
    // otlp::T0 is days in the past.
    let (status, reply) = post(
        &s.url("/v1/traces"),
        PROTO,
        &[],
        encode(&otlp::one_span_trace("old", 3, "op")),
    );
    assert_eq!(status, 400);
    assert!(
        text(&reply).contains("limits.max_record_age_secs = 3600"),
        "{}",
        text(&reply)
    );
}
