//! Every query has a cost bound checked before the work, and no query text can crash the
//! parser: hostile reads get a 400 or 422 that names the bound, and the server lives on, under
//! a 3 GiB address-space cap.

mod common;

use common::{get_json, post, Server};
use serde_json::Value;

fn json_lines(s: &Server, body: String) {
    let (status, reply) = post(
        &s.url("/api/v1/logs"),
        "application/x-ndjson",
        &[],
        body.into_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
}

fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

#[test]
fn deeply_nested_query_text_is_refused_before_parsing() {
    let mut s = Server::start_capped(&[]);
    let deep = format!("{}a", "(".repeat(3000));
    let (status, body) = s.get_json(&format!("/api/v1/logs?q={deep}"));
    assert_eq!(status, 400, "{body}");
    assert!(
        error_message(&body).contains("nests brackets 3000 deep"),
        "{body}"
    );
    let selector = format!("m{{l=~\"{}\"}}", "(".repeat(3000));
    let (status, body) = s.get_json(&format!(
        "/api/v1/metrics/query?query={}",
        urlencode(&selector)
    ));
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body).starts_with("query:"), "{body}");
    let long = "a".repeat(17_000);
    let (status, body) = s.get_json(&format!("/api/v1/logs?q={long}"));
    assert_eq!(status, 400, "{body}");
    assert!(
        error_message(&body).contains("over the limit of 16384"),
        "{body}"
    );
    // As deep as allowed still parses and runs.
    let ok = format!("{}a{}", "(".repeat(32), ")".repeat(32));
    assert_eq!(s.get_json(&format!("/api/v1/logs?q={ok}")).0, 200);
    // A query tantivy parses but cannot run on a field is the query's fault.
    json_lines(&s, r#"{"msg":"hello","service":"x"}"#.to_string());
    assert!(common::poll(std::time::Duration::from_secs(15), || {
        s.get_json("/api/v1/logs?q=hello").1["count"] == 1
    }));
    let (status, body) = s.get_json("/api/v1/logs?q=body:*");
    assert_eq!(status, 400, "{body}");
    s.assert_alive();
}

#[test]
fn a_service_timeline_over_decades_is_bounded() {
    let mut s = Server::start_capped(&[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let start = now - 60_000_000_000;
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"shop"}}}}]}},
        "scopeSpans":[{{"spans":[{{"traceId":"0123456789abcdef0123456789abcdef","spanId":"0123456789abcdef",
        "name":"GET /","kind":2,"startTimeUnixNano":"{start}","endTimeUnixNano":"{}"}}]}}]}}]}}"#,
        start + 1_000_000
    );
    let (status, _) = post(
        &s.url("/v1/traces"),
        "application/json",
        &[],
        body.into_bytes(),
    );
    assert_eq!(status, 200);
    s.wait_for_trace("0123456789abcdef0123456789abcdef", None, 1, 0);
    let (status, body) = s.get_json("/api/v1/timeline?service=shop&start=1&end=now");
    assert_eq!(status, 200, "{body}");
    let kinds: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"span_start") && kinds.contains(&"span_end"),
        "{kinds:?}"
    );
    s.assert_alive();
}

#[test]
fn metric_queries_are_bounded_by_series_times_steps() {
    let mut s = Server::start_capped(&[]);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let points: Vec<String> = (0..2000)
        .map(|i| {
            format!(
                r#"{{"attributes":[{{"key":"user_id","value":{{"stringValue":"u-{i}"}}}}],"timeUnixNano":"{}","asDouble":{i}}}"#,
                (now_s - 60) * 1_000_000_000
            )
        })
        .collect();
    let body = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"hc"}}}}]}},
        "scopeMetrics":[{{"metrics":[{{"name":"hc.gauge","gauge":{{"dataPoints":[{}]}}}}]}}]}}]}}"#,
        points.join(",")
    );
    let (status, reply) = post(
        &s.url("/v1/metrics"),
        "application/json",
        &[],
        body.into_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    let ready = common::poll(std::time::Duration::from_secs(15), || {
        s.get_json("/api/v1/metrics/query?query=hc.gauge&start=now-10m&step=60s")
            .1["series"]
            .as_array()
            .is_some_and(|a| a.len() == 2000)
    });
    assert!(ready, "the 2000 series never became searchable");
    for by in ["", "&by=user_id"] {
        let (status, body) = s.get_json(&format!(
            "/api/v1/metrics/query?query=hc.gauge&start=now-3h&step=1s{by}"
        ));
        assert_eq!(status, 422, "{body}");
        let m = error_message(&body);
        assert!(m.contains("2000 series") && m.contains("5000000"), "{m}");
        assert_eq!(body["error"]["code"], "too_costly");
    }
    let (status, body) =
        s.get_json("/api/v1/metrics/anomalies?query=hc.gauge&start=now-3h&step=1s");
    assert_eq!(status, 422, "{body}");
    s.assert_alive();
}

#[test]
fn a_tie_larger_than_a_page_pages_out_whole() {
    let s = Server::start(&[]);
    let lines: Vec<String> = (0..10_050)
        .map(|i| format!(r#"{{"ts":"2026-11-26T10:00:00Z","msg":"tied {i}","service":"tie"}}"#))
        .collect();
    json_lines(&s, lines.join("\n"));
    let searchable = common::poll(std::time::Duration::from_secs(30), || {
        s.get_json("/api/v1/logs?q=tied&limit=1&start=2026-11-26T00:00:00Z")
            .1["count"]
            == 1
    });
    assert!(searchable);
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut url = s.url(
            "/api/v1/timeline?service=tie&start=2026-11-26T09:59:00Z&end=2026-11-26T10:01:00Z&limit=5000",
        );
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = get_json(&url, &[]);
        assert_eq!(status, 200, "{page}");
        for e in page["entries"].as_array().unwrap() {
            if e["kind"] == "log" {
                assert!(
                    seen.insert(e["body"].as_str().unwrap().to_string()),
                    "repeated {e}"
                );
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10_050);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_method_a_path_does_not_take_is_405_not_404() {
    let s = Server::start(&[]);
    let client = reqwest::blocking::Client::new();
    for (method, path) in [
        (reqwest::Method::POST, "/api/v1/incidents"),
        (
            reqwest::Method::DELETE,
            "/api/v1/traces/0123456789abcdef0123456789abcdef",
        ),
        (reqwest::Method::PUT, "/metrics"),
        (reqwest::Method::GET, "/v1/traces"),
    ] {
        let status = client
            .request(method.clone(), s.url(path))
            .send()
            .unwrap()
            .status();
        assert_eq!(status, 405, "{method} {path}");
    }
    assert_eq!(
        client.get(s.url("/no/such/path")).send().unwrap().status(),
        404
    );
}
