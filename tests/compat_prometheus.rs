//! The Prometheus HTTP API under `/prometheus` over OTLP and remote-written metrics: PromQL
//! answers in Prometheus' shapes, names and labels as Prometheus serves OTLP, exemplars,
//! series and label listings, Prometheus' error envelope, and Debian's `promtool` as a client.

mod common;

use common::external::have_program;
use common::{get_json, poll, post, Server};
use serde_json::{json, Value};
use std::time::Duration;
use weft::compat::remote_write::{Label, Sample, TimeSeries, WriteRequest};

const S: u64 = 1_000_000_000;
const TRACE: &str = "5b8efff798038103d269b633813fc60c";

fn attr(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

/// Ten minutes of an OTLP counter (5/s), a delta histogram with an exemplar, and a gauge with
/// dotted attributes, ending at `end`; plus a remote-written gauge.
fn load(server: &Server, end: u64) {
    let start = end - 600 * S;
    let mut metrics = Vec::new();
    for i in 0..=60u64 {
        let t = (start + i * 10 * S).to_string();
        metrics.push(json!({"name": "http.requests", "sum": {"aggregationTemporality": 2, "isMonotonic": true,
            "dataPoints": [{"attributes": [attr("http.route", "/cart")], "startTimeUnixNano": start.to_string(),
                            "timeUnixNano": t, "asInt": (50 * i).to_string()}]}}));
        metrics.push(json!({"name": "http.duration", "unit": "ms", "histogram": {"aggregationTemporality": 1,
            "dataPoints": [{"attributes": [attr("http.route", "/cart")], "timeUnixNano": t,
                            "count": "10", "sum": 300.0, "explicitBounds": [10.0, 100.0], "bucketCounts": ["2", "6", "2"],
                            "exemplars": [{"timeUnixNano": t, "asDouble": 50.0, "traceId": TRACE}]}]}}));
        metrics.push(json!({"name": "queue.depth", "gauge": {"dataPoints": [
            {"attributes": [attr("queue.name", "orders")], "timeUnixNano": t, "asDouble": 7.0}]}}));
    }
    let body = json!({"resourceMetrics": [{
        "resource": {"attributes": [attr("service.name", "cart")]},
        "scopeMetrics": [{"metrics": metrics}]}]});
    let (status, reply) = post(
        &server.url("/v1/metrics"),
        "application/json",
        &[],
        body.to_string().into_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    let rw = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: "node_load1".into(),
                },
                Label {
                    name: "job".into(),
                    value: "node".into(),
                },
            ],
            samples: (0..=60)
                .map(|i| Sample {
                    value: 1.5,
                    timestamp: ((start + i * 10 * S) / 1_000_000) as i64,
                })
                .collect(),
            ..Default::default()
        }],
        metadata: vec![],
    };
    let (status, _) = post(
        &server.url("/api/v1/write"),
        "application/x-protobuf",
        &[("content-encoding", "snappy")],
        snap::raw::Encoder::new()
            .compress_vec(&prost::Message::encode_to_vec(&rw))
            .unwrap(),
    );
    assert_eq!(status, 204);
}

fn prom(server: &Server, path_and_query: &str) -> (u16, Value) {
    get_json(
        &server.url(&format!("/prometheus/api/v1/{path_and_query}")),
        &[],
    )
}

fn enc(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn value(v: &Value) -> f64 {
    v[1].as_str().unwrap().parse().unwrap()
}

#[test]
fn promql_over_otlp_and_remote_written_metrics() {
    let server = Server::start(&[]);
    let end = (weft::now_ns() / S - 60) * S;
    load(&server, end);
    let t = end / S;
    // Every sample indexed (they may span two partitions, made searchable one by one).
    let all_in = |metric: &str| {
        let q = enc(&format!("count_over_time({metric}[11m])"));
        let (_, b) = prom(&server, &format!("query?query={q}&time={t}"));
        b["data"]["result"][0]["value"][1] == "61"
    };
    assert!(poll(Duration::from_secs(15), || all_in("node_load1")
        && all_in("queue_depth")
        && all_in("http_requests")
        && all_in("http_duration_count")));

    // A counter's rate, with labels served as Prometheus serves OTLP.
    let (status, b) = prom(
        &server,
        &format!("query?query={}&time={t}", enc("rate(http_requests[1m])")),
    );
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["status"], "success");
    assert_eq!(b["data"]["resultType"], "vector");
    let r = &b["data"]["result"][0];
    assert_eq!(
        r["metric"],
        json!({"http_route": "/cart", "service_name": "cart"})
    );
    assert!((value(&r["value"]) - 5.0).abs() < 1e-9, "{b}");
    assert_eq!(r["value"][0].as_f64().unwrap(), t as f64);

    // A histogram as buckets: 20% ≤ 10, 80% ≤ 100, so the median is 10 + 90 * 3/6.
    let q = "histogram_quantile(0.5, sum by (le) (rate(http_duration_bucket[1m])))";
    let (_, b) = prom(&server, &format!("query?query={}&time={t}", enc(q)));
    assert!(
        (value(&b["data"]["result"][0]["value"]) - 55.0).abs() < 1e-9,
        "{b}"
    );
    let (_, b) = prom(
        &server,
        &format!(
            "query?query={}&time={t}",
            enc("sum(rate(http_duration_count[1m])) * 60")
        ),
    );
    assert!(
        (value(&b["data"]["result"][0]["value"]) - 60.0).abs() < 1e-9,
        "{b}"
    );

    // A range query over the remote-written gauge: 11 steps of 1.5.
    let (status, b) = prom(
        &server,
        &format!(
            "query_range?query={}&start={}&end={t}&step=30",
            enc(r#"node_load1{job="node"} * 2"#),
            t - 300
        ),
    );
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["data"]["resultType"], "matrix");
    let values = b["data"]["result"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 11);
    assert!(values.iter().all(|v| value(v) == 3.0));
    assert_eq!(
        b["data"]["result"][0]["metric"],
        json!({"job": "node", "service_name": "node"})
    );

    // POST with a form body, as Grafana and promtool send it.
    let (status, body) = post(
        &server.url("/prometheus/api/v1/query"),
        "application/x-www-form-urlencoded",
        &[],
        format!("query={}&time={t}", enc("max(queue_depth) + 1")).into_bytes(),
    );
    let b: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{b}");
    assert_eq!(value(&b["data"]["result"][0]["value"]), 8.0);

    // Exemplars on the bucket their value falls in, with the trace ID label.
    let (status, b) = prom(
        &server,
        &format!(
            "query_exemplars?query={}&start={}&end={t}",
            enc("http_duration_bucket"),
            t - 100
        ),
    );
    assert_eq!(status, 200, "{b}");
    let e = &b["data"][0];
    assert_eq!(e["seriesLabels"]["le"], "100");
    assert_eq!(e["seriesLabels"]["__name__"], "http_duration_bucket");
    assert_eq!(e["exemplars"][0]["labels"]["trace_id"], TRACE);
    assert_eq!(e["exemplars"][0]["value"], "50");

    // Names, labels, values and series.
    let window = format!("start={}&end={t}", t - 600);
    let (_, b) = prom(&server, &format!("label/__name__/values?{window}"));
    let names: Vec<&str> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for n in [
        "http_duration_bucket",
        "http_duration_count",
        "http_duration_sum",
        "http_requests",
        "node_load1",
        "queue_depth",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let (_, b) = prom(&server, &format!("labels?{window}"));
    let labels = b["data"].as_array().unwrap();
    assert!(
        labels.contains(&json!("queue_name")) && labels.contains(&json!("service_name")),
        "{b}"
    );
    let (_, b) = prom(&server, &format!("label/service_name/values?{window}"));
    assert_eq!(b["data"], json!(["cart", "node"]));
    let (status, b) = prom(
        &server,
        &format!(
            "series?match[]={}&{window}",
            enc("{__name__=~\"http_duration_.*\",le=\"+Inf\"}")
        ),
    );
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["data"].as_array().unwrap().len(), 1, "{b}");
    let (_, b) = prom(&server, "status/buildinfo");
    assert_eq!(b["data"]["version"], "2.42.0");

    // Errors: Prometheus' envelope and statuses, naming what is wrong.
    for (q, status, kind, says) in [
        ("query?query=topk(1,up)", 400, "bad_data", "topk"),
        ("query?query=sum(", 400, "bad_data", "parse error"),
        ("query", 400, "bad_data", "query"),
        (
            &format!("query?query={}", "(".repeat(3000)),
            400,
            "bad_data",
            "levels",
        ),
        (
            "query_range?query=up&start=0&end=100000&step=1",
            422,
            "execution",
            "steps",
        ),
        (
            "query_range?query=up&start=10&end=0&step=1",
            400,
            "bad_data",
            "end",
        ),
        ("query?query=up&time=yesterday", 400, "bad_data", "time"),
        ("series", 400, "bad_data", "match[]"),
    ] {
        let (got, b) = prom(&server, q);
        assert_eq!(got, status, "{q}: {b}");
        assert_eq!(b["status"], "error", "{q}");
        assert_eq!(b["errorType"], kind, "{q}");
        assert!(b["error"].as_str().unwrap().contains(says), "{q}: {b}");
    }
    let (status, b) = get_json(
        &server.url("/prometheus/api/v1/query?query=up"),
        &[("x-scope-orgid", "no/such")],
    );
    assert_eq!((status, b["status"].as_str()), (400, Some("error")));

    if !have_program("promtool") {
        return;
    }
    let base = server.url("/prometheus");
    let promtool = |args: &[&str]| {
        let out = std::process::Command::new("promtool")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = promtool(&[
        "query",
        "instant",
        "--time",
        &t.to_string(),
        &base,
        "sum by (service_name) (rate(http_requests[1m]))",
    ]);
    assert!(out.contains("{service_name=\"cart\"} => 5 @["), "{out}");
    let out = promtool(&[
        "query",
        "range",
        "--start",
        &(t - 60).to_string(),
        "--end",
        &t.to_string(),
        "--step",
        "30s",
        &base,
        "node_load1",
    ]);
    assert!(
        out.contains("node_load1{job=\"node\", service_name=\"node\"} =>")
            && out.contains("1.5 @["),
        "{out}"
    );
    let out = promtool(&[
        "query",
        "series",
        "--match",
        "queue_depth",
        "--start",
        &(t - 600).to_string(),
        "--end",
        &t.to_string(),
        &base,
    ]);
    assert!(out.contains("queue_name=\"orders\""), "{out}");
    let out = promtool(&[
        "query",
        "labels",
        "--start",
        &(t - 600).to_string(),
        "--end",
        &t.to_string(),
        &base,
        "service_name",
    ]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["cart", "node"],
        "{out}"
    );
}
