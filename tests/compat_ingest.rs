//! The ingest protocols other agents speak, against the real server: Prometheus remote write
//! (hand-built, and Debian's `prometheus` scraping a Python `prometheus-client` app with
//! exemplars), Loki push (JSON, snappy protobuf, and the PyPI `python-logging-loki` handler),
//! Zipkin v2 (JSON, protobuf, and the OpenTelemetry Python SDK's Zipkin exporters). Each
//! lands in the same stores as OTLP, under the request's tenant, and reads back through
//! weft's own API; each bad input gets the protocol's own status and a message.

mod common;

use common::external::{self, free_port, have_program, have_python};
use common::{get_json, poll, post, Server};
use serde_json::Value;
use std::time::Duration;
use weft::compat::loki_push::{EntryAdapter, ProtoTimestamp, PushRequest, StreamAdapter};
use weft::compat::remote_write::{Label, PromExemplar, Sample, TimeSeries, WriteRequest};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn snappy(b: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(b).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    pairs
        .iter()
        .map(|(n, v)| Label {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect()
}

fn now_ms() -> i64 {
    (weft::now_ns() / 1_000_000) as i64
}

fn remote_write(
    server: &Server,
    tenant: &str,
    req: &WriteRequest,
    encoding: &str,
) -> (u16, String) {
    let (status, body) = post(
        &server.url("/api/v1/write"),
        "application/x-protobuf",
        &[
            ("content-encoding", encoding),
            ("x-prometheus-remote-write-version", "0.1.0"),
            ("x-scope-orgid", tenant),
        ],
        snappy(&prost::Message::encode_to_vec(req)),
    );
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Points of a metric through weft's own API, summed over its series.
fn native_points(server: &Server, tenant: &str, query: &str) -> Vec<Value> {
    native_points_as(server, &[("x-scope-orgid", tenant)], query)
}

fn native_points_as(server: &Server, headers: &[(&str, &str)], query: &str) -> Vec<Value> {
    let (status, body) = get_json(
        &server.url(&format!(
            "/api/v1/metrics/query?query={}&start=now-10m&end=now&step=5s",
            urlencode(query)
        )),
        headers,
    );
    assert_eq!(status, 200, "{body}");
    body["series"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["points"].as_array().unwrap().clone())
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn remote_write_contract_statuses_and_exemplar_links() {
    let server = Server::start(&[]);
    let t = now_ms();
    let req = WriteRequest {
        timeseries: vec![
            TimeSeries {
                labels: labels(&[
                    ("__name__", "orders_total"),
                    ("job", "checkout"),
                    ("instance", "a:9100"),
                ]),
                samples: (0..5)
                    .map(|i| Sample {
                        value: (i * 10) as f64,
                        timestamp: t - 20_000 + i * 5_000,
                    })
                    .collect(),
                ..Default::default()
            },
            TimeSeries {
                labels: labels(&[
                    ("__name__", "orders_total"),
                    ("job", "checkout"),
                    ("instance", "a:9100"),
                ]),
                exemplars: vec![PromExemplar {
                    labels: labels(&[("trace_id", TRACE)]),
                    value: 1.0,
                    timestamp: t - 1_000,
                }],
                ..Default::default()
            },
        ],
        metadata: vec![],
    };
    assert_eq!(
        remote_write(&server, "shop", &req, "snappy"),
        (204, String::new())
    );

    // Read back under the tenant: a counter of 10 per 5 s is a rate of 2/s.
    let mut rates = Vec::new();
    assert!(poll(Duration::from_secs(10), || {
        rates = native_points(&server, "shop", r#"orders_total{service.name="checkout"}"#);
        rates.len() >= 4
    }));
    assert!(rates.iter().all(|p| p["value"] == 2.0), "{rates:?}");
    assert!(
        native_points(&server, "default", "orders_total").is_empty(),
        "another tenant sees nothing"
    );
    // The exemplar links the series to its trace, and adds no sample.
    let (status, trace) = get_json(
        &server.url(&format!("/api/v1/traces/{TRACE}")),
        &[("x-scope-orgid", "shop")],
    );
    assert_eq!(status, 200, "{trace}");
    assert_eq!(trace["exemplars"][0]["metric"], "orders_total");
    assert_eq!(trace["exemplars"][0]["exemplars"][0]["trace_id"], TRACE);

    // Bad input: the remote-write statuses, with a message.
    let (status, body) = post(
        &server.url("/api/v1/write"),
        "application/x-protobuf",
        &[("content-encoding", "snappy")],
        b"definitely not snappy".to_vec(),
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("snappy"));
    let (status, body) = post(
        &server.url("/api/v1/write"),
        "application/x-protobuf",
        &[("content-encoding", "snappy")],
        snappy(b"\x0a\xff\xff\xff"),
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("WriteRequest"));
    let (status, _) = post(
        &server.url("/api/v1/write"),
        "application/json",
        &[],
        b"{}".to_vec(),
    );
    assert_eq!(status, 415);
    let mixed = WriteRequest {
        timeseries: vec![
            TimeSeries {
                labels: labels(&[("__name__", "ok_gauge")]),
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: t,
                }],
                ..Default::default()
            },
            TimeSeries {
                labels: labels(&[("job", "nameless")]),
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: t,
                }],
                ..Default::default()
            },
        ],
        metadata: vec![],
    };
    let (status, body) = remote_write(&server, "shop", &mixed, "snappy");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("1 stored") && body.contains("timeseries[1]: has no __name__"),
        "{body}"
    );
    let (status, body) = remote_write(&server, "bad/tenant", &mixed, "snappy");
    assert_eq!(status, 400);
    assert!(body.contains("x-scope-orgid"), "{body}");
    // Over the body limit: 413, which Prometheus does not retry.
    let small = Server::start(&[("WEFT_HTTP_MAX_BODY_BYTES", "1000")]);
    let big = WriteRequest {
        timeseries: (0..200)
            .map(|i| TimeSeries {
                labels: labels(&[("__name__", "g"), ("i", &i.to_string())]),
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: t,
                }],
                ..Default::default()
            })
            .collect(),
        metadata: vec![],
    };
    let (status, body) = remote_write(&small, "default", &big, "snappy");
    assert_eq!(status, 413, "{body}");
}

const EXEMPLAR_APP: &str = r#"
import sys, time
from prometheus_client import start_http_server, Counter, Histogram
orders = Counter('shop_orders', 'Orders placed', ['route'])
latency = Histogram('shop_latency_seconds', 'Request latency', buckets=[0.1, 0.5, 1.0])
start_http_server(int(sys.argv[1]), addr='127.0.0.1')
while True:
    orders.labels('/checkout').inc(exemplar={'trace_id': sys.argv[2]})
    latency.observe(0.3, exemplar={'trace_id': sys.argv[2], 'span_id': '00f067aa0ba902b7'})
    time.sleep(0.1)
"#;

#[test]
fn debian_prometheus_remote_writes_samples_and_exemplars() {
    if !have_program("prometheus") || !have_python("prometheus_client", "prometheus-client") {
        return;
    }
    // Debian's Prometheus 2.42 drops custom remote-write headers, so the tenant comes from
    // a bearer token bound to it, which it does send.
    let dir = tempfile::tempdir().unwrap();
    let weft_config = dir.path().join("weft.toml");
    std::fs::write(
        &weft_config,
        format!(
            "[auth]\nenabled = true\n[[auth.tokens]]\ntenant = \"promtenant\"\nsha256 = \"{}\"\n",
            weft::api::auth::hash_token("s3cret")
        ),
    )
    .unwrap();
    let server = Server::start(&[("WEFT_CONFIG", weft_config.to_str().unwrap())]);
    let bearer = [("authorization", "Bearer s3cret")];
    let app_port = free_port();
    let _app = external::python_background(EXEMPLAR_APP, &[&app_port.to_string(), TRACE]);
    let config = format!(
        r#"
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: shop
    static_configs: [{{targets: ['127.0.0.1:{app_port}']}}]
remote_write:
  - url: {}
    send_exemplars: true
    authorization: {{credentials: s3cret}}
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
    metadata_config: {{send_interval: 1s}}
"#,
        server.url("/api/v1/write")
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let prom_port = free_port();
    let _prom = external::Running(
        std::process::Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--enable-feature=exemplar-storage")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    // Samples arrive under the tenant, with the job as the service: the counter rises at
    // about 10 per second.
    let mut points = Vec::new();
    let arrived = poll(Duration::from_secs(60), || {
        points = native_points_as(
            &server,
            &bearer,
            r#"shop_orders_total{service.name="shop",route="/checkout"}"#,
        );
        points.len() >= 3
    });
    assert!(arrived, "no samples arrived from prometheus: {points:?}");
    let rate = points.last().unwrap()["value"].as_f64().unwrap();
    assert!((3.0..=15.0).contains(&rate), "rate {rate}");
    // Exemplars arrive too, linking the series to the trace.
    let mut trace = Value::Null;
    let linked = poll(Duration::from_secs(30), || {
        let (status, body) = get_json(&server.url(&format!("/api/v1/traces/{TRACE}")), &bearer);
        trace = body;
        status == 200
            && trace["exemplars"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|m| m["metric"] == "shop_latency_seconds_bucket")
            })
    });
    assert!(linked, "no exemplar linked the trace: {trace}");

    // Read back through weft's Prometheus API, the answers are Prometheus' own for the same
    // samples (once remote write has delivered them).
    let t = weft::now_ns() / 1_000_000_000 - 5;
    for q in [
        r#"shop_orders_total{route="/checkout"}"#,
        r#"rate(shop_orders_total{route="/checkout"}[10s])"#,
        "histogram_quantile(0.9, sum by (le) (rate(shop_latency_seconds_bucket[10s])))",
    ] {
        let ask = |base: String, headers: &[(&str, &str)]| {
            let (status, body) = get_json(
                &format!("{base}/api/v1/query?query={}&time={t}", urlencode(q)),
                headers,
            );
            assert_eq!(status, 200, "{q}: {body}");
            body["data"]["result"][0]["value"][1].clone()
        };
        let theirs = ask(format!("http://127.0.0.1:{prom_port}"), &[]);
        assert!(theirs.is_string(), "prometheus answers {q}: {theirs}");
        // Equal to the last bits of a float (the arithmetic is the same, not its rounding).
        let number = |v: &Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
        let mut ours = Value::Null;
        let same = poll(Duration::from_secs(20), || {
            ours = ask(server.url("/prometheus"), &bearer);
            match (number(&ours), number(&theirs)) {
                (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                _ => false,
            }
        });
        assert!(same, "{q}: weft says {ours}, prometheus says {theirs}");
    }
}

#[test]
fn loki_push_json_protobuf_and_a_python_handler() {
    let server = Server::start(&[]);
    let ns = weft::now_ns();
    let json = format!(
        r#"{{"streams":[{{"stream":{{"app":"shop","level":"error"}},"values":[
            ["{}","card declined traceparent=00-{TRACE}-00f067aa0ba902b7-01"],
            ["{}","retrying",{{"trace_id":"{TRACE}","attempt":"2"}}]]}}]}}"#,
        ns - 2_000_000_000,
        ns - 1_000_000_000
    );
    let (status, body) = post(
        &server.url("/loki/api/v1/push"),
        "application/json",
        &[("x-scope-orgid", "logs")],
        json.into_bytes(),
    );
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
    let push = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{job="cart", pod="cart-1"}"#.into(),
            entries: vec![EntryAdapter {
                timestamp: Some(ProtoTimestamp {
                    seconds: (ns / 1_000_000_000) as i64,
                    nanos: 0,
                }),
                line: format!("cart emptied trace_id={TRACE}"),
                structured_metadata: vec![],
            }],
            hash: 0,
        }],
    };
    let (status, _) = post(
        &server.url("/loki/api/v1/push"),
        "application/x-protobuf",
        &[("x-scope-orgid", "logs")],
        snappy(&prost::Message::encode_to_vec(&push)),
    );
    assert_eq!(status, 204);
    // All three link to the trace, each saying how.
    let trace = server.wait_for_trace(TRACE, Some("logs"), 0, 3);
    let methods: Vec<&str> = trace["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["link"]["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["text", "structured", "text"]);
    assert_eq!(trace["logs"][0]["service"], "shop");
    assert_eq!(trace["logs"][0]["severity_number"], 17);
    assert_eq!(trace["logs"][1]["attributes"]["attempt"], "2");
    assert_eq!(trace["logs"][2]["resource"]["pod"], "cart-1");

    // Bad input: Loki's statuses with a message.
    for (ct, body, want, says) in [
        ("application/json", b"{\"streams\":".to_vec(), 400, "JSON"),
        (
            "application/x-protobuf",
            b"raw, not snappy".to_vec(),
            400,
            "snappy",
        ),
        ("text/plain", b"x".to_vec(), 415, "content type"),
        (
            "application/json",
            br#"{"streams":[{"stream":{"a":"b"},"values":[["x","y"]]}]}"#.to_vec(),
            400,
            "values[0]",
        ),
    ] {
        let (status, reply) = post(&server.url("/loki/api/v1/push"), ct, &[], body);
        let reply = String::from_utf8_lossy(&reply);
        assert_eq!(status, want, "{ct}: {reply}");
        assert!(reply.contains(says), "{ct}: {reply}");
    }

    if !have_python("logging_loki", "python-logging-loki") {
        return;
    }
    external::python(
        r#"
import logging, sys, logging_loki
handler = logging_loki.LokiHandler(url=sys.argv[1], tags={"application": "billing"}, version="1")
handler.emitter.session.headers["X-Scope-OrgID"] = "logs"
log = logging.getLogger("billing")
log.addHandler(handler)
log.error("invoice failed trace_id=5b8efff798038103d269b633813fc60c", extra={"tags": {"region": "eu"}})
"#,
        &[&server.url("/loki/api/v1/push")],
    );
    let trace = server.wait_for_trace("5b8efff798038103d269b633813fc60c", Some("logs"), 0, 1);
    let log = &trace["logs"][0];
    assert_eq!(log["service"], "billing");
    assert_eq!(log["resource"]["region"], "eu");
    assert_eq!(log["severity_number"], 17, "{log}");
}

const ZIPKIN_APP: &str = r#"
import sys
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
if sys.argv[2] == "json":
    from opentelemetry.exporter.zipkin.json import ZipkinExporter
else:
    from opentelemetry.exporter.zipkin.proto.http import ZipkinExporter
provider = TracerProvider(resource=Resource.create({"service.name": "zipkin-" + sys.argv[2]}))
provider.add_span_processor(SimpleSpanProcessor(ZipkinExporter(endpoint=sys.argv[1])))
tracer = provider.get_tracer("weft-test")
with tracer.start_as_current_span("GET /cart", kind=trace.SpanKind.SERVER) as root:
    root.set_attribute("http.route", "/cart")
    with tracer.start_as_current_span("SELECT cart", kind=trace.SpanKind.CLIENT) as child:
        child.set_status(trace.Status(trace.StatusCode.ERROR, "deadlock"))
print(format(root.get_span_context().trace_id, "032x"), format(root.get_span_context().span_id, "016x"))
provider.shutdown()
"#;

#[test]
fn zipkin_json_protobuf_and_the_opentelemetry_python_exporters() {
    let server = Server::start(&[]);
    let us = weft::now_ns() / 1000;
    let body = format!(
        r#"[{{"traceId":"{TRACE}","id":"00f067aa0ba902b7","name":"get /api","kind":"SERVER",
             "timestamp":{us},"duration":1500,"localEndpoint":{{"serviceName":"api"}},"tags":{{"http.status_code":"500","error":"boom"}}}},
            {{"traceId":"{TRACE}","id":"00f067aa0ba902b8","parentId":"00f067aa0ba902b7","name":"query",
             "kind":"CLIENT","timestamp":{},"duration":700,"localEndpoint":{{"serviceName":"api"}},
             "remoteEndpoint":{{"serviceName":"postgres","port":5432}}}}]"#,
        us + 100
    );
    let (status, reply) = post(
        &server.url("/api/v2/spans"),
        "application/json",
        &[("x-scope-orgid", "zip")],
        body.into_bytes(),
    );
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&reply));
    let trace = server.wait_for_trace(TRACE, Some("zip"), 2, 0);
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans[0]["span_id"], "00f067aa0ba902b7");
    assert_eq!(spans[0]["status"]["code"], 2);
    assert_eq!(spans[0]["duration_ns"], 1_500_000);
    assert_eq!(spans[1]["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(spans[1]["attributes"]["peer.service"], "postgres");

    for (ct, body, says) in [
        ("application/json", b"[{".to_vec(), "JSON"),
        (
            "application/json",
            br#"[{"traceId":"x","id":"1","timestamp":1}]"#.to_vec(),
            "spans[0].traceId",
        ),
        (
            "application/json",
            br#"[{"traceId":"1","id":"1"}]"#.to_vec(),
            "timestamp",
        ),
        (
            "application/x-protobuf",
            b"\xff\xff\xff".to_vec(),
            "ListOfSpans",
        ),
    ] {
        let (status, reply) = post(&server.url("/api/v2/spans"), ct, &[], body);
        let reply = String::from_utf8_lossy(&reply);
        assert_eq!(status, 400, "{reply}");
        assert!(reply.contains(says), "{reply}");
    }

    for (module, package, format) in [
        (
            "opentelemetry.exporter.zipkin.json",
            "opentelemetry-exporter-zipkin-json",
            "json",
        ),
        (
            "opentelemetry.exporter.zipkin.proto.http",
            "opentelemetry-exporter-zipkin-proto-http",
            "proto",
        ),
    ] {
        if !have_python(module, package) {
            continue;
        }
        let out = external::python(ZIPKIN_APP, &[&server.url("/api/v2/spans"), format]);
        let mut ids = out.split_whitespace();
        let (trace_id, root_id) = (ids.next().unwrap(), ids.next().unwrap());
        let trace = server.wait_for_trace(trace_id, None, 2, 0);
        let spans = trace["spans"].as_array().unwrap();
        assert_eq!(spans[0]["span_id"], root_id, "{format}: the same IDs");
        assert_eq!(spans[0]["service"], format!("zipkin-{format}"));
        assert_eq!(spans[0]["kind"], 2, "{format}: server");
        assert_eq!(spans[0]["attributes"]["http.route"], "/cart");
        assert_eq!(spans[1]["kind"], 3, "{format}: client");
        assert_eq!(spans[1]["status"]["code"], 2, "{format}: {}", spans[1]);
        assert_eq!(spans[1]["parent_span_id"], root_id);
    }
}
