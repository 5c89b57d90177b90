//! OTLP/HTTP and JSON-lines ingest against the real binary: the official examples read back
//! field by field, every trace-ID format, bad input, gzip, tenants, and the ops endpoints.

mod common;

use common::otlp::{self, encode, hex, SpanSpec, MS, T0};
use common::{fixture, post, Server};
use flate2::write::GzEncoder;
use serde_json::Value;
use std::io::Write;

const JSON: &str = "application/json";
const PROTO: &str = "application/x-protobuf";

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn send_fixture(s: &Server, file: &str, path: &str) {
    let (status, body) = post(&s.url(path), JSON, &[], fixture(file));
    assert_eq!(status, 200, "{file}: {}", String::from_utf8_lossy(&body));
    // Nothing rejected: the response is an empty Export*ServiceResponse.
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        serde_json::json!({})
    );
}

#[test]
fn spec_shaped_examples_are_read_back_field_by_field() {
    let s = Server::start(&[]);
    send_fixture(&s, "trace.json", "/v1/traces");
    send_fixture(&s, "logs.json", "/v1/logs");
    send_fixture(&s, "events.json", "/v1/logs");
    send_fixture(&s, "metrics.json", "/v1/metrics");
    s.wait_indexed(&[("spans", 1), ("logs", 2), ("metrics", 5)]);

    // Upper-case hex in the request and in the URL: both normalise to lowercase.
    let t = s.wait_for_trace("A1B2C3D4E5F60718293A4B5C6D7E8F90", None, 1, 1);
    assert_eq!(t["trace_id"], "a1b2c3d4e5f60718293a4b5c6d7e8f90");
    let span = &t["spans"][0];
    assert_eq!(span["span_id"], "1a2b3c4d5e6f7081");
    assert_eq!(span["parent_span_id"], "1a2b3c4d5e6f7080");
    assert_eq!(span["name"], "POST /charge");
    assert_eq!(span["kind"], 2);
    assert_eq!(span["service"], "payments");
    assert_eq!(span["start_time_unix_nano"], "1795687200000000000");
    assert_eq!(span["end_time_unix_nano"], "1795687200250000000");
    assert_eq!(span["duration_ns"], 250_000_000u64);
    assert_eq!(span["trace_state"], "vendor=abc");
    assert_eq!(span["status"]["code"], 2);
    assert_eq!(span["status"]["message"], "card network timed out");
    assert_eq!(span["attributes"]["http.response.status_code"], 502);
    assert_eq!(span["resource"]["k8s.pod.name"], "payments-7f9c-2kq4");
    assert_eq!(span["scope"]["name"], "io.weft.fixtures");
    assert_eq!(span["scope"]["version"], "2.1.0");
    assert_eq!(span["events"][0]["name"], "exception");
    assert_eq!(
        span["events"][0]["attributes"]["exception.type"],
        "GatewayTimeout"
    );
    assert_eq!(
        span["links"][0]["trace_id"],
        "0f0e0d0c0b0a09080706050403020100"
    );
    assert_eq!(span["links"][0]["attributes"]["link.reason"], "retry of");

    let logs = t["logs"].as_array().unwrap();
    assert_eq!(
        logs.len(),
        1,
        "only the log with the trace ID belongs to the trace"
    );
    let log = &logs[0];
    assert_eq!(log["body"], "charge failed after 200 ms");
    assert_eq!(log["severity_number"], 17);
    assert_eq!(log["severity_text"], "ERROR");
    assert_eq!(log["span_id"], "1a2b3c4d5e6f7081");
    assert_eq!(log["time_unix_nano"], "1795687200210000000");
    assert_eq!(log["observed_time_unix_nano"], "1795687200211000000");
    let a = &log["attributes"];
    assert_eq!(a["text.attr"], "visa");
    assert_eq!(a["flag.attr"], false);
    assert_eq!(a["count.attr"], 3);
    assert_eq!(a["ratio.attr"], 0.25);
    assert_eq!(a["list.attr"], serde_json::json!(["a", 2]));
    assert_eq!(a["map.attr"]["inner"], "deep");
    assert_eq!(a["bytes.attr"], "010203");
    assert_eq!(log["link"]["method"], "structured");
    assert_eq!(log["link"]["field"], "traceId");
    // The histogram's exemplar names the trace.
    let exemplars = t["exemplars"].as_array().unwrap();
    assert_eq!(exemplars.len(), 1, "{t}");
    assert_eq!(exemplars[0]["metric"], "payments.charge.duration");
    assert_eq!(exemplars[0]["exemplars"][0]["value"], 250.0);

    // The event (no trace ID) is found by search, with its structured body and no link.
    let (status, found) = s.get_json("/api/v1/logs?q=quickbutton");
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["count"], 1);
    let event = &found["logs"][0];
    assert_eq!(event["event_name"], "checkout.button_click");
    assert_eq!(event["body"]["label"], "Pay now quickbutton");
    assert_eq!(event["body"]["position"], 2);
    assert_eq!(event["link"], Value::Null);

    // Every point kind arrived intact: none was rejected.
    for (signal, n) in [("metrics", 5.0), ("spans", 1.0), ("logs", 2.0)] {
        assert_eq!(
            s.metric(&format!(
                "weft_records_accepted_total{{signal=\"{signal}\"}}"
            )),
            n,
            "{signal}"
        );
    }
}

#[test]
fn protobuf_and_gzip_round_trip_with_exemplars() {
    let s = Server::start(&[]);
    let spans = otlp::traces(
        "checkout",
        vec![
            otlp::span(&SpanSpec {
                trace: 7,
                span: 1,
                parent: None,
                name: "POST /cart",
                start_ms: 0,
                duration_ms: 120,
                error: true,
            }),
            otlp::span(&SpanSpec {
                trace: 7,
                span: 2,
                parent: Some(1),
                name: "SELECT cart",
                start_ms: 10,
                duration_ms: 100,
                error: false,
            }),
        ],
    );
    let (status, body) = post(
        &s.url("/v1/traces"),
        PROTO,
        &[("content-encoding", "gzip")],
        gzip(&encode(&spans)),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        body.is_empty(),
        "an empty ExportTraceServiceResponse encodes to no bytes"
    );
    // A log written after the trace's last span still belongs to it: links come from IDs.
    let late = otlp::logs(
        "checkout",
        vec![otlp::log(Some(7), Some(2), "cart query timed out", 60_000)],
    );
    assert_eq!(post(&s.url("/v1/logs"), PROTO, &[], encode(&late)).0, 200);
    let metric = otlp::histogram_with_exemplar("checkout", 7, 2, 130);
    assert_eq!(
        post(&s.url("/v1/metrics"), PROTO, &[], encode(&metric)).0,
        200
    );

    let t = s.wait_for_trace(&hex(&otlp::trace_id(7)), None, 2, 1);
    let spans = t["spans"].as_array().unwrap();
    assert_eq!(spans[0]["name"], "POST /cart");
    assert_eq!(spans[0]["status"]["code"], 2);
    assert_eq!(spans[0]["status"]["message"], "boom");
    assert_eq!(spans[1]["parent_span_id"], hex(&otlp::span_id(1)));
    assert_eq!(spans[1]["duration_ns"], 100 * MS);
    // The tree: depth, own time (120 ms less the child's 100), critical path, logs per span.
    assert_eq!(
        (spans[0]["depth"].as_u64(), spans[1]["depth"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(spans[0]["self_time_ns"], 20 * MS);
    assert_eq!(
        t["critical_path"],
        serde_json::json!([hex(&otlp::span_id(1)), hex(&otlp::span_id(2))])
    );
    assert_eq!(spans[1]["log_indexes"], serde_json::json!([0]));
    assert_eq!(t["trace_log_indexes"], serde_json::json!([]));
    assert_eq!(t["services"], serde_json::json!(["checkout"]));
    assert_eq!(t["duration_ns"], 120 * MS);
    assert_eq!(spans[1]["resource"]["host.name"], "node-1");
    assert_eq!(t["logs"][0]["body"], "cart query timed out");
    assert_eq!(
        t["logs"][0]["time_unix_nano"],
        (T0 + 60_000 * MS).to_string()
    );
    common::wait_until(std::time::Duration::from_secs(10), "the exemplar", || {
        s.get_json(&format!("/api/v1/traces/{}", hex(&otlp::trace_id(7))))
            .1["exemplars"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    let t = s
        .get_json(&format!("/api/v1/traces/{}", hex(&otlp::trace_id(7))))
        .1;
    let ex = &t["exemplars"][0];
    assert_eq!(ex["metric"], "http.server.duration");
    assert_eq!(ex["kind"], "histogram");
    assert_eq!(ex["labels"]["http.route"], "/cart");
    assert_eq!(ex["point"]["count"], 3);
    assert_eq!(ex["point"]["bucket_counts"], serde_json::json!([1, 1, 1]));
    assert_eq!(ex["exemplars"][0]["span_id"], hex(&otlp::span_id(2)));
    assert_eq!(ex["exemplars"][0]["value"], 0.7);
}

/// Each trace-ID format, in log text and in an attribute, through the JSON-lines endpoint.
#[test]
fn every_trace_id_format_links_logs_with_its_reason() {
    let s = Server::start(&[]);
    let t32 = "4bf92f3577b34da6a3ce929d0e0e4736";
    let t64 = "a3ce929d0e0e4736";
    let padded64 = format!("{t64:0>32}");
    let dd: u64 = 5208512171318403364;
    let dd_hex = format!("{dd:032x}");
    let cases: Vec<(String, String, &str, &str, &str)> = vec![
        // (line, expected trace, method, pattern, field)
        (format!(r#"{{"msg":"GET /cart traceparent=00-{t32}-00f067aa0ba902b7-01"}}"#), t32.into(), "text", "w3c-traceparent", ""),
        (format!(r#"{{"msg":"upstream","traceparent":"00-{t32}-00f067aa0ba902b7-01"}}"#), t32.into(), "attribute", "w3c-traceparent", "traceparent"),
        (format!(r#"{{"msg":"got X-B3-TraceId: {t64} from edge"}}"#), padded64.clone(), "text", "b3-trace-id", ""),
        (format!(r#"{{"msg":"b3","X-B3-TraceId":"{t32}"}}"#), t32.into(), "attribute", "b3-trace-id", "X-B3-TraceId"),
        (format!(r#"{{"msg":"uber-trace-id={t64}:00f067aa0ba902b7:0:1"}}"#), padded64.clone(), "text", "jaeger-uber-trace-id", ""),
        (format!(r#"{{"msg":"jaeger","uber-trace-id":"{t32}:00f067aa0ba902b7:0:1"}}"#), t32.into(), "attribute", "jaeger-uber-trace-id", "uber-trace-id"),
        (r#"{"msg":"lambda X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"}"#.into(), "5759e988bd862e3fe1be46a994272793".into(), "text", "aws-xray", ""),
        (r#"{"msg":"xray","x_amzn_trace_id":"Root=1-5759e988-bd862e3fe1be46a994272794"}"#.into(), "5759e988bd862e3fe1be46a994272794".into(), "attribute", "aws-xray", "x_amzn_trace_id"),
        (format!(r#"{{"msg":"charge failed dd.trace_id={dd} dd.span_id=1"}}"#), dd_hex.clone(), "text", "datadog-trace-id", ""),
        (format!(r#"{{"msg":"datadog","dd.trace_id":"{}"}}"#, dd + 1), format!("{:032x}", dd + 1), "attribute", "datadog-trace-id", "dd.trace_id"),
        (r#"{"msg":"retry trace.id=0af7651916cd43dd8448eb211c80319c"}"#.into(), "0af7651916cd43dd8448eb211c80319c".into(), "text", "trace-id-field", ""),
        (r#"{"msg":"structured","traceId":"0AF7651916CD43DD8448EB211C80319D"}"#.into(), "0af7651916cd43dd8448eb211c80319d".into(), "structured", "", "traceId"),
    ];
    let body = cases
        .iter()
        .map(|c| c.0.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let (status, reply) = post(
        &s.url("/api/v1/logs"),
        "application/x-ndjson",
        &[],
        body.into_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["accepted"], cases.len());
    assert_eq!(reply["rejected"], 0);
    for (line, trace, method, pattern, field) in &cases {
        let t = s.wait_for_trace(trace, None, 0, 1);
        let logs = t["logs"].as_array().unwrap();
        let msg = serde_json::from_str::<Value>(line).unwrap()["msg"].clone();
        let log = logs
            .iter()
            .find(|l| l["body"] == msg)
            .unwrap_or_else(|| panic!("no log of {line} in {t}"));
        let link = &log["link"];
        assert_eq!(link["method"], *method, "{line}");
        if !pattern.is_empty() {
            assert_eq!(link["pattern"], *pattern, "{line}");
        }
        if !field.is_empty() {
            assert_eq!(link["field"], *field, "{line}");
        }
    }
}

type BadCase<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, &'a str)>,
    Vec<u8>,
    u16,
    &'a str,
);

#[test]
fn bad_input_gets_the_spec_status_and_keeps_earlier_data() {
    let s = Server::start(&[("WEFT_HTTP_MAX_BODY_BYTES", "65536")]);
    let good = otlp::traces(
        "svc",
        vec![otlp::span(&SpanSpec {
            trace: 1,
            span: 1,
            parent: None,
            name: "root",
            start_ms: 0,
            duration_ms: 5,
            error: false,
        })],
    );
    assert_eq!(post(&s.url("/v1/traces"), PROTO, &[], encode(&good)).0, 200);
    s.wait_for_trace(&hex(&otlp::trace_id(1)), None, 1, 0);

    let mut short_id = good.clone();
    short_id.resource_spans[0].scope_spans[0].spans[0]
        .trace_id
        .truncate(15);
    let full = encode(&good);
    let big = otlp::logs("svc", vec![otlp::log(None, None, &"x".repeat(70_000), 0)]);
    let bomb = gzip(&vec![b' '; 10 * 1024 * 1024]);
    // (what, content type, headers, body, expected status, expected words in the message)
    let cases: Vec<BadCase> = vec![
        ("truncated protobuf", PROTO, vec![], full[..full.len() - 3].to_vec(), 400, "protobuf body cannot be decoded"),
        ("invalid JSON", JSON, vec![], b"{\"resourceSpans\": [".to_vec(), 400, "JSON body cannot be decoded"),
        ("15-byte trace ID", PROTO, vec![], encode(&short_id), 400, "traceId: trace id must be 16 bytes, got 15"),
        ("15-byte trace ID as JSON", JSON, vec![], br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5B8EFFF798038103D269B633813FC6","spanId":"EEE19B7EC3C1B174","startTimeUnixNano":"5"}]}]}]}"#.to_vec(), 400, "got 15"),
        ("unsupported content type", "text/plain", vec![], b"hello".to_vec(), 415, "unsupported content type"),
        ("body over the limit", PROTO, vec![], encode(&big), 413, "limit of 65536 bytes"),
        ("gzip bomb", JSON, vec![("content-encoding", "gzip")], bomb, 413, "after decompression"),
        ("broken gzip", JSON, vec![("content-encoding", "gzip")], b"not gzip at all".to_vec(), 400, "gzip"),
        ("unknown encoding", JSON, vec![("content-encoding", "br")], b"{}".to_vec(), 415, "content encoding"),
        ("bad tenant", JSON, vec![("x-scope-orgid", "../etc")], b"{}".to_vec(), 400, "x-scope-orgid"),
    ];
    for (what, ct, headers, body, want, message) in cases {
        let (status, reply) = post(&s.url("/v1/traces"), ct, &headers, body);
        assert_eq!(status, want, "{what}: {}", String::from_utf8_lossy(&reply));
        // google.rpc.Status in the request's own encoding (JSON for an unknown type).
        let text = if ct == PROTO {
            let st = <weft::api::errors::RpcStatus as prost::Message>::decode(&reply[..])
                .unwrap_or_else(|e| panic!("{what}: reply is not a protobuf Status: {e}"));
            assert_ne!(st.code, 0, "{what}");
            st.message
        } else {
            let v: Value = serde_json::from_slice(&reply).unwrap_or_else(|e| panic!("{what}: {e}"));
            v["message"].as_str().unwrap_or_default().to_string()
        };
        assert!(
            text.contains(message),
            "{what}: {text:?} should mention {message:?}"
        );
    }
    // A batch with one bad and one good span: 200 with an exact partial success.
    let mut mixed = good.clone();
    let mut second = otlp::span(&SpanSpec {
        trace: 2,
        span: 1,
        parent: None,
        name: "ok",
        start_ms: 0,
        duration_ms: 1,
        error: false,
    });
    second.span_id = vec![1, 2, 3];
    mixed.resource_spans[0].scope_spans[0].spans.push(second);
    mixed.resource_spans[0].scope_spans[0].spans[0].trace_id = otlp::trace_id(3);
    let (status, reply) = post(&s.url("/v1/traces"), PROTO, &[], encode(&mixed));
    assert_eq!(status, 200);
    let resp = <opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse as prost::Message>::decode(&reply[..]).unwrap();
    let partial = resp.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("spans[1].spanId"),
        "{}",
        partial.error_message
    );
    // Wrong method on an OTLP path.
    let get = reqwest::blocking::get(s.url("/v1/traces")).unwrap();
    assert_eq!(get.status(), 405);

    // The server still serves, and what it had is intact.
    let t = s.wait_for_trace(&hex(&otlp::trace_id(1)), None, 1, 0);
    assert_eq!(t["spans"].as_array().unwrap().len(), 1);
    s.wait_for_trace(&hex(&otlp::trace_id(3)), None, 1, 0);
    assert!(s.metric("weft_requests_rejected_total{reason=\"malformed\",signal=\"spans\"}") >= 3.0);
    assert_eq!(
        s.metric("weft_requests_rejected_total{reason=\"too_large\",signal=\"spans\"}"),
        2.0
    );
    assert!(s.metric("weft_records_rejected_total{reason=\"invalid\",signal=\"spans\"}") >= 3.0);
}

#[test]
fn tenants_see_only_their_own_data() {
    let s = Server::start(&[]);
    for (tenant, name) in [("acme", "acme-root"), ("globex", "globex-root")] {
        let req = otlp::traces(
            "svc",
            vec![otlp::span(&SpanSpec {
                trace: 42,
                span: 1,
                parent: None,
                name,
                start_ms: 0,
                duration_ms: 1,
                error: false,
            })],
        );
        let h = [("x-scope-orgid", tenant)];
        assert_eq!(post(&s.url("/v1/traces"), PROTO, &h, encode(&req)).0, 200);
        let logs = otlp::logs(
            "svc",
            vec![otlp::log(Some(42), Some(1), &format!("{tenant} secret"), 1)],
        );
        assert_eq!(post(&s.url("/v1/logs"), PROTO, &h, encode(&logs)).0, 200);
    }
    let id = hex(&otlp::trace_id(42));
    for tenant in ["acme", "globex"] {
        let t = s.wait_for_trace(&id, Some(tenant), 1, 1);
        assert_eq!(t["spans"].as_array().unwrap().len(), 1, "{tenant}: {t}");
        assert_eq!(t["spans"][0]["name"], format!("{tenant}-root"));
        assert_eq!(t["logs"].as_array().unwrap().len(), 1);
        assert_eq!(t["logs"][0]["body"], format!("{tenant} secret"));
        let (_, found) = common::get_json(
            &s.url("/api/v1/logs?q=secret"),
            &[("x-scope-orgid", tenant)],
        );
        assert_eq!(found["count"], 1, "{tenant}: {found}");
        // Naming the other tenant inside the query does not widen it.
        let (_, sneaky) = common::get_json(
            &s.url("/api/v1/logs?q=secret%20OR%20tenant:acme%20OR%20tenant:globex"),
            &[("x-scope-orgid", tenant)],
        );
        assert_eq!(sneaky["count"], 1, "{tenant}: {sneaky}");
    }
    let (status, _) = s.get_json(&format!("/api/v1/traces/{id}"));
    assert_eq!(status, 404, "the default tenant has no such trace");
    let (status, body) = common::get_json(
        &s.url(&format!("/api/v1/traces/{id}")),
        &[("x-scope-orgid", "a/b")],
    );
    assert_eq!(status, 400, "{body}");
}

#[test]
fn json_lines_search_filters_and_ops_endpoints() {
    let s = Server::start(&[]);
    let lines = [
        r#"{"ts":"2026-11-26T10:00:00Z","level":"info","msg":"cart loaded","service":"checkout","user":"ann"}"#,
        r#"{"ts":"2026-11-26T10:00:01Z","level":"error","msg":"card declined by issuer","service":"checkout","user":"bob"}"#,
        r#"{"ts":"2026-11-26T10:00:02Z","level":"warn","msg":"slow issuer response","service":"payments"}"#,
        r#"{"ts":"2026-11-26T11:30:00Z","level":"error","msg":"card declined again","service":"checkout"}"#,
        r#"not json"#,
    ];
    let (status, reply) = post(
        &s.url("/api/v1/logs"),
        JSON,
        &[],
        lines.join("\n").into_bytes(),
    );
    assert_eq!(status, 200);
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(
        (reply["accepted"].as_u64(), reply["rejected"].as_u64()),
        (Some(4), Some(1))
    );
    assert!(
        reply["errors"][0].as_str().unwrap().starts_with("line 5:"),
        "{reply}"
    );

    common::wait_until(
        std::time::Duration::from_secs(10),
        "logs to be searchable",
        || s.get_json("/api/v1/logs").1["count"] == 4,
    );
    let bodies = |q: &str| -> Vec<String> {
        let (status, v) = s.get_json(&format!("/api/v1/logs?{q}"));
        assert_eq!(status, 200, "{q}: {v}");
        v["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["body"].as_str().unwrap().to_string())
            .collect()
    };
    // Newest first, across two hourly partitions.
    assert_eq!(
        bodies("q=card"),
        vec!["card declined again", "card declined by issuer"]
    );
    assert_eq!(bodies("q=card&limit=1"), vec!["card declined again"]);
    assert_eq!(
        bodies("q=card%20declined&end=2026-11-26T10:30:00Z"),
        vec!["card declined by issuer"]
    );
    assert_eq!(
        bodies("severity=warn&service=payments"),
        vec!["slow issuer response"]
    );
    assert_eq!(
        bodies("severity=error&start=2026-11-26T10:00:00Z&end=2026-11-26T10:59:59Z"),
        vec!["card declined by issuer"]
    );
    assert_eq!(bodies("q=attrs.user:bob"), vec!["card declined by issuer"]);
    assert_eq!(
        bodies("q=%22declined%20by%20issuer%22"),
        vec!["card declined by issuer"]
    );
    assert_eq!(s.get_json("/api/v1/logs?q=body:(").0, 400);
    assert_eq!(s.get_json("/api/v1/logs?severity=loud").0, 400);
    assert_eq!(s.get_json("/api/v1/traces/xyz").0, 400);

    let health = reqwest::blocking::get(s.url("/healthz")).unwrap();
    assert_eq!(health.status(), 200);
    let metrics = reqwest::blocking::get(s.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    for name in [
        "weft_records_accepted_total{signal=\"logs\"} 4",
        "weft_records_rejected_total{reason=\"invalid\",signal=\"logs\"} 1",
        "weft_http_request_duration_seconds_bucket{route=\"/api/v1/logs\"",
        "weft_wal_bytes_total",
        "weft_wal_fsync_seconds_count",
        "weft_index_commit_duration_seconds_count{signal=\"logs\"}",
        "weft_index_documents{signal=\"logs\"} 4",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }
    assert!(
        !metrics.contains("acme") && !metrics.contains("checkout"),
        "no tenant data in /metrics"
    );
}

#[test]
fn a_separate_query_listener_serves_reads_only() {
    let s = Server::start(&[("WEFT_HTTP_QUERY_LISTEN", "127.0.0.1:0")]);
    let query = s.query.clone().expect("query listener announced");
    let req = otlp::one_span_trace("svc", 9, "q");
    assert_eq!(post(&s.url("/v1/traces"), PROTO, &[], encode(&req)).0, 200);
    let url = format!("http://{query}/api/v1/traces/{}", hex(&otlp::trace_id(9)));
    common::wait_until(
        std::time::Duration::from_secs(10),
        "trace on the query listener",
        || common::get_json(&url, &[]).0 == 200,
    );
    assert_eq!(
        s.get_json(&format!("/api/v1/traces/{}", hex(&otlp::trace_id(9))))
            .0,
        404,
        "ingest listener has no reads"
    );
    assert_eq!(
        post(
            &format!("http://{query}/v1/traces"),
            PROTO,
            &[],
            encode(&req)
        )
        .0,
        404,
        "query listener takes no writes"
    );
}

#[test]
fn unknown_settings_stop_the_server_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("weft.toml");
    std::fs::write(&cfg, "[wal]\nfsync = \"always\"\nfsink = 1\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("WEFT_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fsink"), "{err}");
}

#[test]
fn logs_without_trace_ids_are_offered_as_inferred_candidates() {
    let s = Server::start(&[]);
    let span = |trace, start_ms, duration_ms| {
        otlp::span(&SpanSpec {
            trace,
            span: 1,
            parent: None,
            name: "reserve",
            start_ms,
            duration_ms,
            error: false,
        })
    };
    // The trace's span (0..100 ms) and another trace's span of the same service at 50 ms.
    for req in [
        otlp::traces("inventory", vec![span(21, 0, 100)]),
        otlp::traces("inventory", vec![span(22, 50, 10)]),
    ] {
        assert_eq!(post(&s.url("/v1/traces"), PROTO, &[], encode(&req)).0, 200);
    }
    let mut elsewhere = otlp::logs("inventory", vec![otlp::log(None, None, "other host", 20)]);
    elsewhere.resource_logs[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes[1] = otlp::kv("host.name", "node-2");
    for req in [
        otlp::logs(
            "inventory",
            vec![
                otlp::log(None, None, "stock low", 20),
                otlp::log(None, None, "retrying reserve", 300),
                otlp::log(None, None, "much later", 5_000),
            ],
        ),
        otlp::logs("payments", vec![otlp::log(None, None, "other service", 20)]),
        elsewhere,
    ] {
        assert_eq!(post(&s.url("/v1/logs"), PROTO, &[], encode(&req)).0, 200);
    }
    s.wait_indexed(&[("spans", 2), ("logs", 5)]);
    common::wait_until(
        std::time::Duration::from_secs(10),
        "inferred candidates",
        || {
            s.get_json(&format!("/api/v1/traces/{}", hex(&otlp::trace_id(21))))
                .1["inferred_logs"]
                .as_array()
                .is_some_and(|a| a.len() >= 2)
        },
    );
    let t = s
        .get_json(&format!("/api/v1/traces/{}", hex(&otlp::trace_id(21))))
        .1;
    assert_eq!(
        t["logs"],
        serde_json::json!([]),
        "inferred links never mix with exact ones"
    );
    let inferred = t["inferred_logs"].as_array().unwrap();
    let bodies: Vec<&str> = inferred
        .iter()
        .map(|l| l["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, vec!["stock low", "retrying reserve"], "{t}");
    let (inside, margin) = (&inferred[0]["link"], &inferred[1]["link"]);
    assert_eq!(inside["method"], "inferred");
    assert_eq!(inside["span_id"], hex(&otlp::span_id(1)));
    // Inside the span, same host, one of two spans of the service active: 1.0 × 1.0 / 2.
    assert_eq!(inside["confidence"], 0.5);
    // 200 ms past the span's end with a 500 ms margin: 0.8 / 2.
    assert_eq!(margin["confidence"], 0.4);
    let reason = inside["reason"].as_str().unwrap();
    assert!(
        reason.contains("same service inventory")
            && reason.contains("same host.name")
            && reason.contains("2 span(s) of inventory active around it"),
        "{reason}"
    );
}

/// Every request the OpenAPI document describes is served, with a documented status. Query
/// and path parameters take the document's examples (`{trace_id}` in an example is the real
/// trace's ID).
/// A parameter of the document, its `$ref` into components.parameters followed.
fn resolve<'a>(doc: &'a Value, p: &'a Value) -> &'a Value {
    match p["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
        Some(name) => &doc["components"]["parameters"][name],
        None => p,
    }
}

#[test]
fn the_openapi_document_matches_the_routes() {
    let s = Server::start(&[]);
    let req = otlp::one_span_trace("svc", 31, "op");
    assert_eq!(post(&s.url("/v1/traces"), PROTO, &[], encode(&req)).0, 200);
    let id = hex(&otlp::trace_id(31));
    // A log of the trace, so the answers that list logs have one to describe.
    let line = format!(
        r#"{{"msg":"documented error","level":"error","service":"svc","trace_id":"{id}"}}"#
    );
    assert_eq!(
        post(
            &s.url("/api/v1/logs"),
            "application/x-ndjson",
            &[],
            line.into_bytes()
        )
        .0,
        200
    );
    s.wait_for_trace(&id, None, 1, 1);
    let mut drift = Vec::new();
    let (status, doc) = s.get_json("/api/v1/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    let mut checked = 0;
    for (path, methods) in paths {
        for (method, op) in methods.as_object().unwrap() {
            let mut path = path.replace("{trace_id}", &id);
            let mut query = Vec::new();
            for p in op["parameters"].as_array().into_iter().flatten() {
                let p = resolve(&doc, p);
                let Some(example) = p["example"].as_str() else {
                    continue;
                };
                // The documented trace ID stands for the one sent above.
                let value = example.replace("5b8efff798038103d269b633813fc60c", &id);
                let name = p["name"].as_str().unwrap();
                match p["in"].as_str() {
                    Some("path") => path = path.replace(&format!("{{{name}}}"), &value),
                    Some("query") => query.push(format!("{name}={value}")),
                    _ => {}
                }
            }
            let url = s.url(&format!("{path}?{}", query.join("&")));
            let http = reqwest::blocking::Client::new();
            let resp = match method.as_str() {
                "get" => http.get(&url).send().unwrap(),
                "post" => http
                    .post(&url)
                    .body("{\"msg\":\"documented\"}")
                    .send()
                    .unwrap(),
                other => panic!("undocumented method {other}"),
            };
            let code = resp.status().as_u16().to_string();
            // No incident exists here: the demo scenario test reads one.
            let expected = if path.contains("{id}") { "404" } else { "200" };
            let body = resp.text().unwrap();
            assert_eq!(code, expected, "{method} {path}: {body}");
            assert!(
                op["responses"].get(&code).is_some(),
                "{method} {path}: {code} is not documented"
            );
            // Every field the answer holds is in the document (it drifted before: fields
            // such as a span's trace_state were sent but not described).
            if let Ok(answer) = serde_json::from_str::<Value>(&body) {
                let schema = &op["responses"][&code]["content"]["application/json"]["schema"];
                common::undocumented(
                    &doc,
                    schema,
                    &answer,
                    &format!("{method} {path}"),
                    &mut drift,
                );
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked, 27,
        "every route of the query API and the ingest of JSON lines"
    );
    assert!(drift.is_empty(), "answered but not documented: {drift:#?}");
}
