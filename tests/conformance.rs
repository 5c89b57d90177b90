//! The official OTLP/JSON examples (`../shared/fixtures/otlp-examples`, beside the repository
//! where the project keeps them) are accepted whole and read back. They are not part of the
//! repository: without them this test says so and passes, except under CI (`CI=true`), where
//! they must be there.

mod common;

use common::{post, Server};
use serde_json::Value;
use std::path::PathBuf;

fn examples() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/otlp-examples");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI=true but {} is missing",
        dir.display()
    );
    eprintln!("conformance: {} is missing; skipped", dir.display());
    None
}

/// Every `traceId` in a document, as the lowercase hex weft answers with.
fn trace_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("traceId", Value::String(id)) if !id.is_empty() => {
                        out.push(id.to_ascii_lowercase())
                    }
                    _ => trace_ids(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| trace_ids(x, out)),
        _ => {}
    }
}

#[test]
fn the_official_otlp_examples_are_accepted_and_read_back() {
    let Some(dir) = examples() else { return };
    let s = Server::start(&[]);
    let mut ids = Vec::new();
    for (file, path) in [
        ("trace.json", "/v1/traces"),
        ("logs.json", "/v1/logs"),
        ("events.json", "/v1/logs"),
        ("metrics.json", "/v1/metrics"),
    ] {
        let body = std::fs::read(dir.join(file)).unwrap();
        trace_ids(&serde_json::from_slice(&body).unwrap(), &mut ids);
        let (status, reply) = post(&s.url(path), "application/json", &[], body);
        assert_eq!(status, 200, "{file}: {}", String::from_utf8_lossy(&reply));
        let reply: Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(
            reply,
            serde_json::json!({}),
            "{file}: nothing may be rejected"
        );
    }
    ids.sort();
    ids.dedup();
    assert!(!ids.is_empty());
    for id in ids {
        let t = s.wait_for_trace(&id, None, 0, 0);
        assert_eq!(t["trace_id"], id.as_str());
    }
}
