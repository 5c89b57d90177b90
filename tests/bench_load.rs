//! The load generator against a real server: what it reports as acknowledged is what the
//! server counted, over HTTP and over gRPC, and freshness probes find the data.

mod common;

use common::Server;

fn load(args: &[&str]) -> u64 {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["bench", "load"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "spans: 1234 acknowledged in ..."
    let acked = text
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected report: {text}"));
    assert!(text.contains(", 0 failed"), "{text}");
    acked
}

#[test]
fn what_the_generator_reports_is_what_weft_accepted() {
    let s = Server::start(&[]);
    let endpoint = s.url("");
    let spans = load(&[
        "--endpoint",
        &endpoint,
        "--signal",
        "spans",
        "--records",
        "2000",
        "--connections",
        "2",
        "--freshness",
    ]);
    let logs = load(&[
        "--endpoint",
        &endpoint,
        "--grpc",
        &s.grpc_url(),
        "--signal",
        "logs",
        "--records",
        "3000",
        "--batch",
        "500",
    ]);
    let points = load(&[
        "--endpoint",
        &endpoint,
        "--signal",
        "metrics",
        "--seconds",
        "1",
        "--rate",
        "2000",
        "--batch",
        "100",
    ]);
    assert!(spans >= 2000 && logs >= 3000 && points > 0);
    assert!(
        points <= 2000 + 100 * 8,
        "rate-limited to about 2000 points/s, got {points}"
    );
    assert_eq!(
        s.metric("weft_records_accepted_total{signal=\"spans\"}"),
        spans as f64
    );
    assert_eq!(
        s.metric("weft_records_accepted_total{signal=\"logs\"}"),
        logs as f64
    );
    assert_eq!(
        s.metric("weft_records_accepted_total{signal=\"metrics\"}"),
        points as f64
    );
    // Every log carried ~300 bytes and some of them a trace ID only in their text.
    // They become searchable within a commit interval: wait for it rather than guess.
    let mut found = serde_json::Value::Null;
    let searchable = common::poll(std::time::Duration::from_secs(15), || {
        found = s.get_json("/api/v1/logs?q=traceparent&limit=5").1;
        found["count"].as_u64().unwrap_or(0) > 0
    });
    assert!(searchable, "{found}");
    assert_eq!(found["logs"][0]["link"]["method"], "text");
}
