//! A data directory written by an earlier release opens and answers: version-0 index records,
//! version-0 WAL entries replayed, the incident files. New records written beside the old ones
//! (into the same partition) read back too, across a restart. `data-v1` is the same for the
//! format before WAL entries were compressed (`WEFTWAL2` segments, version-1 records).

mod common;

use common::{post, Server};
use serde_json::Value;
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn fixture_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    copy_dir(&fixture, dir.path());
    dir
}

fn assert_old_data_answers(s: &Server) {
    // The incident file.
    let (status, body) = s.get_json("/api/v1/incidents/inc-ace3a94e38ce");
    assert_eq!(status, 200, "{}", body["error"]);
    assert_eq!(
        body["suspected_origins"][0]["service"], "inventory",
        "{}",
        body["suspected_origins"]
    );
    // A demo trace from the version-0 index, with its spans.
    let demo = s.wait_for_trace("695bc94d86311428444cebd29f8a701d", None, 5, 0);
    assert!(demo["spans"]
        .as_array()
        .unwrap()
        .iter()
        .any(|sp| sp["service"] == "inventory"));
    // The OTLP example trace and its logs: version-0 WAL entries, replayed at start-up.
    let example = s.wait_for_trace("5b8efff798038103d269b633813fc60c", None, 1, 1);
    assert_eq!(
        example["spans"][0]["name"], "I'm a server span",
        "{example}"
    );
    // The JSON-lines log, linked by the traceparent in its text.
    let (_, logs) = s.get_json("/api/v1/logs?q=declined&start=2026-11-26T00:00:00Z");
    assert_eq!(logs["count"], 1, "{logs}");
    assert_eq!(logs["logs"][0]["link"]["method"], "text");
    // Metric points of the version-0 index.
    let (_, names) =
        s.get_json("/api/v1/metrics/names?start=2026-12-02T00:00:00Z&end=2026-12-02T01:00:00Z");
    let names: Vec<&str> = names["names"]
        .as_array()
        .unwrap_or_else(|| panic!("{names}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(names.contains(&"weft.span.requests"), "{names:?}");
    assert_eq!(
        s.metric_or_zero("weft_records_undecodable_total{store=\"index\"}"),
        0.0
    );
    assert_eq!(
        s.metric_or_zero("weft_records_undecodable_total{store=\"wal\"}"),
        0.0
    );
}

#[test]
fn a_data_directory_of_the_previous_format_opens_and_answers() {
    let dir = fixture_copy("data-v0");
    let mut s = Server::start_in(dir.path(), &[]);
    assert_old_data_answers(&s);

    // A new span in the same hour partition as the old demo data (2026-12-02T00:52Z).
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"upgraded"}}}}]}},
        "scopeSpans":[{{"spans":[{{"traceId":"0123456789abcdef0123456789abcdef","spanId":"0123456789abcdef",
        "name":"after upgrade","kind":2,"startTimeUnixNano":"{t}","endTimeUnixNano":"{e}"}}]}}]}}]}}"#,
        t = 1_796_172_720_000_000_000u64,
        e = 1_796_172_720_500_000_000u64
    );
    let (status, reply) = post(
        &s.url("/v1/traces"),
        "application/json",
        &[],
        body.into_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    s.wait_for_trace("0123456789abcdef0123456789abcdef", None, 1, 0);
    assert!(s.terminate().success());

    let s = Server::start_in(dir.path(), &[]);
    assert_old_data_answers(&s);
    let new = s.wait_for_trace("0123456789abcdef0123456789abcdef", None, 1, 0);
    assert_eq!(new["spans"][0]["service"], "upgraded");
}

/// `data-v1`: the repository's OTLP examples indexed, then a span and a log acknowledged into a
/// `WEFTWAL2` segment and the server SIGKILLed before its commit (tests/fixtures/README.md).
fn assert_v1_data_answers(s: &Server) {
    let example = s.wait_for_trace("a1b2c3d4e5f60718293a4b5c6d7e8f90", None, 1, 2);
    assert_eq!(example["spans"][0]["name"], "POST /charge", "{example}");
    let methods: Vec<&str> = example["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["link"]["method"].as_str())
        .collect();
    assert_eq!(methods, ["structured", "text"], "{example}");
    // From the WAL: the span, its log linked by its text, and attribute search over it.
    let replayed = s.wait_for_trace("77777777777777777777777777777777", None, 1, 1);
    assert_eq!(replayed["spans"][0]["name"], "unindexed span", "{replayed}");
    let window = "start=2026-11-26T09:00:00Z&end=2026-11-26T11:00:00Z";
    let (status, found) = s.get_json(&format!("/api/v1/traces?attr=user.id=u-42&{window}"));
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        found["traces"][0]["trace_id"], "77777777777777777777777777777777",
        "{found}"
    );
    let (_, logs) = s.get_json(&format!("/api/v1/logs?q=stalled&{window}"));
    assert_eq!(logs["count"], 1, "{logs}");
    let (_, names) = s.get_json(&format!("/api/v1/metrics/names?{window}"));
    let names: Vec<&str> = names["names"]
        .as_array()
        .unwrap_or_else(|| panic!("{names}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for name in ["payments.charges", "weft.span.requests"] {
        assert!(names.contains(&name), "{names:?}");
    }
    for store in ["index", "wal"] {
        let sample = format!("weft_records_undecodable_total{{store=\"{store}\"}}");
        assert_eq!(s.metric_or_zero(&sample), 0.0, "{sample}");
    }
}

#[test]
fn a_data_directory_with_uncompressed_wal_segments_opens_and_answers() {
    let dir = fixture_copy("data-v1");
    let mut s = Server::start_in(dir.path(), &[]);
    assert_v1_data_answers(&s);
    assert!(s.terminate().success());
    let s = Server::start_in(dir.path(), &[]);
    assert_v1_data_answers(&s);
}
