//! The read API's one grammar and error kinds, over a real server: a missing thing answers
//! 404 on every endpoint that names it (never 400 on one and 404 on another), a bad parameter
//! answers 400 naming it in `error.param`, and times and durations read the same on every
//! parameter (`start=now-1h30m` as `step=1h30m`).

mod common;

use common::Server;

#[test]
fn an_unknown_incident_is_not_found_everywhere() {
    let server = Server::start(Default::default());
    for path in [
        "/api/v1/incidents/inc-nope",
        "/api/v1/correlate/diff?incident=inc-nope",
        "/api/v1/timeline?incident=inc-nope",
    ] {
        let (status, body) = server.get_json(path);
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("inc-nope"),
            "{path}: {body}"
        );
    }
    let (status, body) = server.get_json("/api/v1/traces/0af7651916cd43dd8448eb211c80319c");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
}

/// A trace sampling never decided (tail sampling is off by default) answers the documented
/// decision object, `none`, wherever its sampling state is rendered — never `null`.
#[test]
fn an_undecided_trace_says_sampling_decided_nothing() {
    let server = Server::start(Default::default());
    let id = "0af7651916cd43dd8448eb211c80319c";
    let resp = reqwest::blocking::Client::new()
        .post(server.url(&format!("/api/v1/traces/{id}/bookmark")))
        .send()
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().expect("JSON");
    assert_eq!(body["bookmarked"], true, "{body}");
    assert_eq!(body["sampling"]["decision"], "none", "{body}");
    assert!(body["sampling"]["reason"].is_string(), "{body}");
    let (status, body) = server.get_json(&format!("/api/v1/sampling/traces/{id}"));
    assert_eq!(status, 200);
    assert_eq!(body["sampling"]["decision"], "none", "{body}");
}

#[test]
fn bad_parameters_are_named_and_durations_read_alike() {
    let server = Server::start(Default::default());
    for (path, param) in [
        ("/api/v1/metrics/query?query=up&step=fast", "step"),
        ("/api/v1/logs?limit=0", "limit"),
        ("/api/v1/traces?min_duration=soon", "min_duration"),
        ("/api/v1/timeline?service=a&start=yesterday", "start"),
        (
            "/api/v1/correlate/diff?baseline_start=now-1h",
            "baseline_start",
        ),
        ("/api/v1/incidents?status=maybe", "status"),
        ("/api/v1/service-map?colour=red", "colour"),
        ("/api/v1/traces/xyz/latency", "trace_id"),
    ] {
        let (status, body) = server.get_json(path);
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["param"], param, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_argument", "{path}: {body}");
    }
    for path in [
        "/api/v1/metrics/query?query=up&start=now-1h30m&step=1m30s",
        "/api/v1/logs?start=now-1.5m",
        "/api/v1/traces?start=now-2h&min_duration=1m30s",
        "/api/v1/service-map?start=now-1h30m&end=now",
    ] {
        let (status, body) = server.get_json(path);
        assert_eq!(status, 200, "{path}: {body}");
    }
}
