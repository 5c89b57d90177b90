//! The Loki query API over logs pushed as Loki and as OTLP: LogQL log and metric queries in
//! Loki's shapes (contract: Loki's HTTP API document — no Loki client runs here), streams with
//! the trace ID as a label for Grafana's logs → trace link, label listings, and Loki's text
//! errors with a 400 for what is wrong or unsupported.

mod common;

use common::{get_json, poll, post, Server};
use serde_json::{json, Value};
use std::time::Duration;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn enc(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn loki(server: &Server, path: &str, query: &str, extra: &str) -> (u16, Value, String) {
    let resp = reqwest::blocking::get(
        server.url(&format!("/loki/api/v1/{path}?query={}{extra}", enc(query))),
    )
    .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

#[test]
fn logql_queries_over_loki_and_otlp_logs() {
    let server = Server::start(&[]);
    let ns = weft::now_ns() - 60_000_000_000;
    let mut values = Vec::new();
    for i in 0..20u64 {
        let line = if i % 4 == 0 {
            format!(r#"{{"msg":"payment failed","status":502,"user":"u{i}","trace_id":"{TRACE}"}}"#)
        } else {
            format!(r#"{{"msg":"payment ok","status":200,"user":"u{i}"}}"#)
        };
        values.push(json!([(ns + i * 1_000_000_000).to_string(), line]));
    }
    let push = json!({"streams": [
        {"stream": {"app": "payments", "env": "prod"}, "values": values},
        {"stream": {"app": "cart", "env": "prod"}, "values": [
            [(ns + 5_000_000_000).to_string(), "level=warn msg=\"slow cart\" dur=1.5s"],
            [(ns + 6_000_000_000).to_string(), "level=info msg=\"cart ok\" dur=20ms"]]}
    ]});
    let (status, _) = post(
        &server.url("/loki/api/v1/push"),
        "application/json",
        &[],
        push.to_string().into_bytes(),
    );
    assert_eq!(status, 204);
    let otlp = json!({"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "checkout"}},
        {"key": "k8s.namespace.name", "value": {"stringValue": "shop"}}]},
        "scopeLogs": [{"logRecords": [{"timeUnixNano": (ns + 3_000_000_000).to_string(), "severityNumber": 17,
            "body": {"stringValue": "card declined"}, "traceId": TRACE, "spanId": "00f067aa0ba902b7"}]}]}]});
    let (status, _) = post(
        &server.url("/v1/logs"),
        "application/json",
        &[],
        otlp.to_string().into_bytes(),
    );
    assert_eq!(status, 200);
    let window = format!("&start={}&end={}", ns - 1_000_000_000, ns + 30_000_000_000);
    assert!(poll(Duration::from_secs(10), || {
        let (_, b, _) = loki(
            &server,
            "query_range",
            r#"{env="prod"}"#,
            &format!("{window}&limit=1000"),
        );
        let pushed = b["data"]["result"].as_array().map_or(0, |r| {
            r.iter()
                .map(|s| s["values"].as_array().unwrap().len())
                .sum::<usize>()
        });
        // The OTLP log came in a request of its own: wait for it too.
        let (_, b, _) = loki(
            &server,
            "query_range",
            r#"{service_name="checkout"}"#,
            &window,
        );
        let otlp = b["data"]["result"].as_array().map_or(0, Vec::len);
        pushed == 22 && otlp == 1
    }));

    // A line filter, a parser and label filters; newest first, as Loki answers by default.
    let (status, b, text) = loki(
        &server,
        "query_range",
        r#"{app="payments"} |= "failed" | json | status >= 500"#,
        &format!("{window}&limit=3"),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(b["status"], "success");
    assert_eq!(b["data"]["resultType"], "streams");
    let streams = b["data"]["result"].as_array().unwrap();
    let entries: Vec<&Value> = streams
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap())
        .collect();
    assert_eq!(entries.len(), 3, "the limit holds: {b}");
    let stream = &streams[0]["stream"];
    assert_eq!(stream["app"], "payments");
    assert_eq!(stream["status"], "502");
    assert_eq!(
        stream["trace_id"], TRACE,
        "the trace ID is a label for the logs → trace link"
    );
    let times: Vec<u64> = entries
        .iter()
        .map(|e| e[0].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        times.iter().all(|t| *t >= ns + 8_000_000_000),
        "the newest three: {times:?}"
    );
    // Forward from the start.
    let (_, b, _) = loki(
        &server,
        "query_range",
        r#"{app="payments"} != "ok""#,
        &format!("{window}&limit=2&direction=forward"),
    );
    let first = &b["data"]["result"][0]["values"][0];
    assert_eq!(first[0], ns.to_string());

    // OTLP logs answer the same queries, by their resource attributes made label-safe.
    let (_, b, _) = loki(
        &server,
        "query_range",
        r#"{k8s_namespace_name="shop", detected_level="error"}"#,
        &window,
    );
    let s = &b["data"]["result"][0];
    assert_eq!(s["stream"]["service_name"], "checkout");
    assert_eq!(s["stream"]["span_id"], "00f067aa0ba902b7");
    assert_eq!(s["values"][0][1], "card declined");
    // logfmt with a duration filter.
    let (_, b, _) = loki(
        &server,
        "query_range",
        r#"{app="cart"} | logfmt | dur > 1s"#,
        &window,
    );
    assert_eq!(
        b["data"]["result"][0]["values"].as_array().unwrap().len(),
        1,
        "{b}"
    );
    assert_eq!(b["data"]["result"][0]["stream"]["msg"], "slow cart");

    // Metric queries: errors per 10 s, and Grafana's volume query by level.
    let (status, b, text) = loki(
        &server,
        "query_range",
        r#"sum by (app) (count_over_time({env="prod"} |= "failed" [10s]))"#,
        &format!(
            "&start={}&end={}&step=10s",
            ns + 10_000_000_000,
            ns + 20_000_000_000
        ),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(b["data"]["resultType"], "matrix");
    let series = &b["data"]["result"][0];
    assert_eq!(series["metric"], json!({"app": "payments"}));
    let counts: Vec<&str> = series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[1].as_str().unwrap())
        .collect();
    assert_eq!(counts, ["2", "2"], "(t - 10s, t]: {b}");
    let (status, b, text) = loki(
        &server,
        "query_range",
        r#"sum by (level, detected_level) (count_over_time({env="prod"} | drop __error__ [1m]))"#,
        &format!("{window}&step=10s"),
    );
    assert_eq!(status, 200, "{text}");
    // The pushed streams carry no level label: all 22 are of unknown level.
    let volume = &b["data"]["result"][0];
    assert_eq!(
        volume["metric"],
        json!({"detected_level": "unknown"}),
        "{b}"
    );
    assert_eq!(
        volume["values"].as_array().unwrap().last().unwrap()[1],
        "22"
    );
    let (status, b, text) = loki(
        &server,
        "query",
        r#"sum(rate({app="payments"}[1m]))"#,
        &format!("&time={}", ns + 20_000_000_000),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(b["data"]["resultType"], "vector");
    assert_eq!(
        b["data"]["result"][0]["value"][1],
        format!("{}", 20.0 / 60.0)
    );

    // Labels and values.
    let (status, b) = get_json(
        &server.url(&format!("/loki/api/v1/labels?{}", &window[1..])),
        &[],
    );
    assert_eq!(status, 200, "{b}");
    for l in [
        "app",
        "env",
        "service_name",
        "trace_id",
        "k8s_namespace_name",
    ] {
        assert!(
            b["data"].as_array().unwrap().contains(&json!(l)),
            "{l} in {b}"
        );
    }
    let (_, b) = get_json(
        &server.url(&format!("/loki/api/v1/label/app/values?{}", &window[1..])),
        &[],
    );
    assert_eq!(b["data"], json!(["cart", "payments"]));
    let (_, b) = get_json(
        &server.url(&format!(
            "/loki/api/v1/series?match[]={}&{}",
            enc(r#"{app="cart"}"#),
            &window[1..]
        )),
        &[],
    );
    assert_eq!(
        b["data"],
        json!([{"app": "cart", "detected_level": "unknown", "env": "prod", "service_name": "cart"}])
    );

    // Errors: 400 with a text message naming what is wrong.
    let day = format!("&start={}&end={ns}&step=1s", ns - 86_400_000_000_000);
    for (path, q, extra, says) in [
        (
            "query_range",
            r#"{app="a"} | line_format "x""#,
            "",
            "line_format",
        ),
        ("query_range", r#"topk(1, rate({app="a"}[1m]))"#, "", "topk"),
        ("query_range", "{app=", "", "expected"),
        (
            "query_range",
            &format!("{}{{app=\"a\"}}{}", "(".repeat(3000), ")".repeat(3000)),
            "",
            "levels",
        ),
        (
            "query_range",
            r#"{app="a"}"#,
            "&limit=100000",
            "max_entries_limit",
        ),
        (
            "query_range",
            r#"count_over_time({app="a"}[1m])"#,
            &day,
            "steps",
        ),
        ("query_range", r#"{app="a"}"#, "&start=10&end=5", "start"),
        ("query", r#"{app="a"}"#, "", "instant"),
        ("query_range", r#"{app=""}"#, "", "at least one"),
    ] {
        let (status, _, text) = loki(&server, path, q, extra);
        assert_eq!(status, 400, "{q}: {text}");
        assert!(text.contains(says), "{q}: {text}");
    }
}
