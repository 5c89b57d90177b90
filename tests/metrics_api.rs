//! The metric query API over the real server: counters as rates across labels of any type,
//! gauges summed by label, names and labels per tenant, anomalies with their thresholds, and
//! parameter errors that name the parameter.

mod common;

use common::otlp::T0;
use common::{post, Server};
use serde_json::{json, Value};

const S: u64 = 1_000_000_000;

fn attr(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

/// One OTLP/JSON metrics request of `service` holding `metrics`.
fn request(service: &str, metrics: Vec<Value>) -> Vec<u8> {
    json!({"resourceMetrics": [{
        "resource": {"attributes": [attr("service.name", json!({"stringValue": service}))]},
        "scopeMetrics": [{"metrics": metrics}]
    }]})
    .to_string()
    .into_bytes()
}

fn send(server: &Server, body: Vec<u8>) {
    let (status, reply) = post(&server.url("/v1/metrics"), "application/json", &[], body);
    assert_eq!(status, 200, "{reply:?}");
}

/// Two minutes of a cumulative counter per status code (an int attribute: 5/s for 500,
/// 10/s for 200) and a gauge that sits near 10 with one spike to 100 at +60 s.
fn load(server: &Server) {
    for step in 0..=12u64 {
        let t = (T0 + step * 10 * S).to_string();
        let counter = |code: i64, per_step: u64| {
            json!({
                "attributes": [attr("http.status_code", json!({"intValue": code.to_string()}))],
                "startTimeUnixNano": T0.to_string(),
                "timeUnixNano": t,
                "asInt": (per_step * step).to_string(),
            })
        };
        let depth = if step == 6 {
            100.0
        } else {
            10.0 + (step % 3) as f64
        };
        let metrics = vec![
            json!({"name": "requests", "unit": "1", "sum": {
                "aggregationTemporality": 2, "isMonotonic": true,
                "dataPoints": [counter(500, 50), counter(200, 100)],
            }}),
            json!({"name": "queue.depth", "unit": "1", "gauge": {"dataPoints": [{
                "attributes": [attr("queue", json!({"stringValue": "orders"}))],
                "timeUnixNano": t, "asDouble": depth,
            }]}}),
        ];
        send(server, request("api", metrics));
    }
}

fn query(server: &Server, q: &str) -> (u16, Value) {
    let window = format!("start={}&end={}", T0 / S, T0 / S + 120);
    server.get_json(&format!("/api/v1/{q}&{window}"))
}

#[test]
fn metric_queries_names_labels_and_anomalies() {
    let server = Server::start(&[]);
    load(&server);
    common::wait_until(std::time::Duration::from_secs(10), "points indexed", || {
        let (_, b) = query(&server, "metrics/query?query=queue.depth&step=10s");
        b["series"][0]["points"]
            .as_array()
            .is_some_and(|p| p.len() == 13)
    });

    // A counter matched on an int attribute written as text: 50 more every 10 s is 5/s.
    let (status, b) = query(
        &server,
        "metrics/query?query=requests{http.status_code=%22500%22}&step=10s",
    );
    assert_eq!(status, 200, "{b}");
    let series = b["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{b}");
    assert_eq!(series[0]["kind"], "rate");
    let rates: Vec<f64> = series[0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert_eq!(
        rates,
        vec![5.0; 12],
        "the first point has nothing to subtract from"
    );
    // Summed by service: 15/s.
    let (_, b) = query(
        &server,
        "metrics/query?query=requests&by=service.name&step=10s",
    );
    assert_eq!(b["series"][0]["points"][3]["value"], 15.0);
    assert_eq!(b["series"][0]["labels"], json!({"service.name": "api"}));

    // Names and labels are the tenant's own.
    let (_, b) = query(&server, "metrics/names?");
    assert_eq!(b["names"], json!(["queue.depth", "requests"]));
    let other = common::get_json(
        &server.url(&format!(
            "/api/v1/metrics/names?start={}&end={}",
            T0 / S,
            T0 / S + 120
        )),
        &[("X-Scope-OrgID", "someone-else")],
    );
    assert_eq!(other.1["names"], json!([]));
    let (_, b) = query(&server, "metrics/labels?match=requests");
    assert_eq!(b["labels"], json!(["http.status_code", "service.name"]));
    let (_, b) = query(
        &server,
        "metrics/labels/http.status_code/values?match=requests",
    );
    assert_eq!(b["values"], json!(["200", "500"]));

    // The gauge's spike: one anomaly at +60 s, a spike, baseline near 11.
    let (status, b) = query(
        &server,
        "metrics/anomalies?query=queue.depth&step=10s&min_baseline_points=4",
    );
    assert_eq!(status, 200, "{b}");
    let anomalies = b["series"][0]["anomalies"].as_array().unwrap();
    assert_eq!(anomalies.len(), 1, "{b}");
    let a = &anomalies[0];
    assert_eq!(a["kind"], "spike");
    let at = ((T0 + 60 * S) / S).to_string();
    for k in [
        "start_time_unix_nano",
        "peak_time_unix_nano",
        "end_time_unix_nano",
    ] {
        assert!(a[k].as_str().unwrap().starts_with(&at), "{k}: {a}");
    }
    assert_eq!(a["peak_value"], 100.0);
    let (_, b) = query(
        &server,
        "metrics/anomalies?query=queue.depth&step=10s&min_baseline_points=4&threshold=1000",
    );
    assert_eq!(b["series"][0]["anomalies"], json!([]));

    // Bad parameters are named.
    for (q, named) in [
        ("metrics/query?query=requests{code=500}", "query"),
        ("metrics/query?query=requests&step=1ms", "step"),
        ("metrics/query?query=requests&quantiles=2", "quantiles"),
        (
            "metrics/anomalies?query=queue.depth&threshold=-1",
            "threshold",
        ),
        (
            "metrics/anomalies?query=queue.depth&direction=sideways",
            "direction",
        ),
        ("metrics/query?query=requests&colour=red", "colour"),
        ("metrics/query?step=10s", "query"),
    ] {
        let (status, b) = query(&server, q);
        assert_eq!(status, 400, "{q}: {b}");
        let message = b["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{q}: {message}");
    }
}
