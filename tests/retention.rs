//! Retention on the real server: partitions past their signal's (and tenant's) age are
//! deleted, the size cap deletes the oldest partitions first, a query over a deleted range
//! answers 410 `past_retention`, and all of it holds across restarts and SIGKILLs during the
//! deletion. The clock is the records' own: they are sent with timestamps days in the past,
//! and retention runs every second.

mod common;

use common::otlp::{self, encode, hex, SpanSpec};
use common::{poll, post, Server};
use rand::Rng;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PROTO: &str = "application/x-protobuf";
const HOUR: u64 = 3_600_000_000_000;
const DAY: u64 = 24 * HOUR;

/// A one-span trace `trace` of `tenant` starting at `at_ns`.
fn send_span(server: &Server, tenant: &str, trace: u64, at_ns: u64) {
    let mut span = otlp::span(&SpanSpec {
        trace,
        span: 1,
        parent: None,
        name: "op",
        start_ms: 0,
        duration_ms: 1,
        error: false,
    });
    span.start_time_unix_nano = at_ns;
    span.end_time_unix_nano = at_ns + 1_000_000;
    let body = encode(&otlp::traces("keeper", vec![span]));
    let (status, _) = post(
        &server.url("/v1/traces"),
        PROTO,
        &[("X-Scope-OrgID", tenant)],
        body,
    );
    assert_eq!(status, 200);
}

fn send_logs(server: &Server, at_ns: u64, count: u64) {
    let mut rng = rand::rng();
    let records = (0..count)
        .map(|i| {
            // Words that do not repeat, so the partition's size follows the count.
            let words: Vec<String> = (0..30)
                .map(|_| format!("{:x}", rng.random::<u64>()))
                .collect();
            let mut l = otlp::log(None, None, &words.join(" "), 0);
            l.time_unix_nano = at_ns + i * 1_000_000;
            l.observed_time_unix_nano = l.time_unix_nano;
            l
        })
        .collect();
    let (status, _) = post(
        &server.url("/v1/logs"),
        PROTO,
        &[],
        encode(&otlp::logs("keeper", records)),
    );
    assert_eq!(status, 200);
}

fn spans_of(server: &Server, tenant: &str, trace: u64) -> usize {
    let (_, body) = common::get_json(
        &server.url(&format!("/api/v1/traces/{}", hex(&otlp::trace_id(trace)))),
        &[("X-Scope-OrgID", tenant)],
    );
    body["spans"].as_array().map_or(0, Vec::len)
}

/// `path` with `start`/`end` an hour either side of `at_ns`.
fn around(path: &str, at_ns: u64) -> String {
    let s = |ns: u64| ns / 1_000_000_000;
    format!("{path}?start={}&end={}", s(at_ns - HOUR), s(at_ns + HOUR))
}

fn partitions(data_dir: &Path, signal: &str) -> Vec<u64> {
    let mut out: Vec<u64> = std::fs::read_dir(data_dir.join("index").join(signal))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn trash(data_dir: &Path) -> PathBuf {
    data_dir.join("index/trash")
}

fn trash_is_empty(data_dir: &Path) -> bool {
    std::fs::read_dir(trash(data_dir)).map_or(true, |mut d| d.next().is_none())
}

fn wait_dropped(server: &Server, signal: &str, reason: &str, at_least: f64) {
    let sample = format!(
        "weft_retention_partitions_dropped_total{{reason=\"{reason}\",signal=\"{signal}\"}}"
    );
    let ok = poll(Duration::from_secs(30), || {
        server.metric_or_zero(&sample) >= at_least
    });
    assert!(ok, "{sample} never reached {at_least}");
}

#[test]
fn partitions_past_their_age_go_per_signal_and_per_tenant() {
    let conf = tempfile::tempdir().unwrap();
    let config = conf.path().join("retention.toml");
    std::fs::write(
        &config,
        "[retention]\nspans = \"2d\"\nlogs = \"10d\"\ninterval_secs = 1\n\n\
         [retention.tenants.brief]\nspans = \"12h\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let env = [("WEFT_CONFIG", config)];
    let mut server = Server::start(&env);
    let now = weft::now_ns();
    let (old, recent) = (now - 3 * DAY, now - DAY);
    send_span(&server, "default", 1, old);
    send_span(&server, "default", 2, recent);
    send_span(&server, "brief", 3, recent);
    send_logs(&server, old, 5);

    wait_dropped(&server, "spans", "age", 1.0);
    let tenant_deletions = "weft_retention_tenant_deletions_total{signal=\"spans\"}";
    let ok = poll(Duration::from_secs(30), || {
        server.metric_or_zero(tenant_deletions) >= 1.0
    });
    assert!(ok, "the short-lived tenant's spans were never deleted");

    let check = |server: &Server| {
        assert_eq!(spans_of(server, "default", 1), 0, "a span past 2d is kept");
        assert_eq!(
            spans_of(server, "default", 2),
            1,
            "a span within 2d is gone"
        );
        assert_eq!(
            spans_of(server, "brief", 3),
            0,
            "tenant brief keeps spans 12h only"
        );
        // Only the recent partition of spans is left, and nothing lingers in the trash.
        let left = partitions(&server.data_dir, "spans");
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(trash_is_empty(&server.data_dir));

        // The deleted range says so, for spans; logs keep 10 days.
        let (status, body) = server.get_json(&around("/api/v1/traces", old));
        assert_eq!(status, 410, "{body}");
        assert_eq!(body["error"]["code"], "past_retention", "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("spans"),
            "{body}"
        );
        let (status, body) = server.get_json(&around("/api/v1/logs", old));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["logs"].as_array().unwrap().len(), 5, "{body}");
        // Per tenant: a day ago is kept for the default tenant, past retention for brief.
        let (status, body) = server.get_json(&around("/api/v1/traces", recent));
        assert_eq!(status, 200, "{body}");
        assert!(
            body.to_string().contains(&hex(&otlp::trace_id(2))),
            "{body}"
        );
        let (status, body) = common::get_json(
            &server.url(&around("/api/v1/traces", recent)),
            &[("X-Scope-OrgID", "brief")],
        );
        assert_eq!(status, 410, "{body}");
    };
    check(&server);
    // A restart keeps what was deleted deleted, and the answer the same.
    server.terminate();
    let dir = server.take_dir();
    let server = Server::start_in(dir.path(), &env);
    check(&server);
}

#[test]
fn the_size_cap_deletes_the_oldest_partitions_first() {
    let mut server = Server::start(&[]);
    let now = weft::now_ns();
    let hours: Vec<u64> = (0..8).map(|h| now - (20 - h) * HOUR).collect();
    for at in &hours {
        send_logs(&server, *at, 400);
    }
    server.wait_indexed(&[("logs", 8 * 400)]);
    server.terminate();
    let dir = server.take_dir();
    let before = partitions(dir.path(), "logs");
    assert_eq!(before.len(), 8);
    let size = |start: &u64| {
        weft::index::retention::dir_bytes(&dir.path().join("index/logs").join(start.to_string()))
    };
    let total = weft::index::retention::dir_bytes(dir.path());
    let oldest_three: u64 = before[..3].iter().map(size).sum();
    let cap = total - oldest_three + size(&before[3]) / 2;

    let cap_text = cap.to_string();
    let env = [
        ("WEFT_RETENTION_MAX_BYTES", cap_text.as_str()),
        ("WEFT_RETENTION_INTERVAL_SECS", "1"),
    ];
    let server = Server::start_in(dir.path(), &env);
    wait_dropped(&server, "logs", "size", 1.0);
    let ok = poll(Duration::from_secs(30), || {
        weft::index::retention::dir_bytes(dir.path()) <= cap
    });
    assert!(ok, "the data directory stays above the cap of {cap} bytes");
    let after = partitions(dir.path(), "logs");
    assert!(after.len() < 8 && !after.is_empty(), "{after:?}");
    // What is left is the newest partitions, without a gap.
    assert_eq!(after, before[before.len() - after.len()..], "{before:?}");
    let dropped = (8 - after.len()) as f64;
    let sample = "weft_retention_partitions_dropped_total{reason=\"size\",signal=\"logs\"}";
    assert_eq!(server.metric(sample), dropped);
    assert!(server.metric("weft_data_dir_bytes") <= cap as f64);
    // The oldest hour is past retention; the newest still answers.
    let (status, body) = server.get_json(&around("/api/v1/logs", hours[0]));
    assert_eq!(status, 410, "{body}");
    let (status, body) = server.get_json(&around("/api/v1/logs", hours[7]));
    assert_eq!(status, 200, "{body}");
    assert!(!body["logs"].as_array().unwrap().is_empty());
}

#[test]
fn a_deletion_interrupted_by_sigkill_is_finished_at_start() {
    let mut server = Server::start(&[]);
    let now = weft::now_ns();
    const OLD: u64 = 30;
    for i in 0..OLD {
        send_span(&server, "default", 100 + i, now - 3 * DAY - i * HOUR);
    }
    send_span(&server, "default", 1, now - HOUR);
    server.wait_indexed(&[("spans", OLD + 1)]);
    server.terminate();
    let dir = server.take_dir();
    assert_eq!(partitions(dir.path(), "spans").len() as u64, OLD + 1);

    let env = [
        ("WEFT_RETENTION_SPANS", "2d"),
        ("WEFT_RETENTION_INTERVAL_SECS", "1"),
    ];
    let mut rng = rand::rng();
    for _ in 0..6 {
        let mut s = Server::spawn(dir.path(), &env).expect("weft starts");
        std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
        s.kill();
    }
    // A crash right after a rename into the trash, as it would leave the directory.
    let stray = trash(dir.path()).join("spans-42");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join("meta.json"), b"{}").unwrap();

    let server = Server::start_in(dir.path(), &env);
    let ok = poll(Duration::from_secs(30), || {
        partitions(dir.path(), "spans").len() == 1
    });
    assert!(ok, "left: {:?}", partitions(dir.path(), "spans"));
    assert!(trash_is_empty(dir.path()), "the trash was not emptied");
    assert_eq!(
        spans_of(&server, "default", 1),
        1,
        "the recent span is lost"
    );
    for i in [0, OLD / 2, OLD - 1] {
        assert_eq!(spans_of(&server, "default", 100 + i), 0);
    }
    let (status, body) = server.get_json(&around("/api/v1/traces", now - 3 * DAY));
    assert_eq!(status, 410, "{body}");
    // Every partition left opens: none is half-deleted.
    for start in partitions(dir.path(), "spans") {
        let p = dir.path().join("index/spans").join(start.to_string());
        assert!(
            p.join("meta.json").exists(),
            "{} has no meta.json",
            p.display()
        );
    }
}
