//! Durability: clients send concurrently while the server is SIGKILLed and restarted on the
//! same directory, several times. Every acknowledged record is found afterwards, and no record
//! is stored twice. A SIGTERM stops cleanly with everything committed.

mod common;

use common::otlp::{self, encode, hex, SpanSpec};
use common::{post, Server};
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PROTO: &str = "application/x-protobuf";
const SPANS_PER_TRACE: u64 = 3;
const CLIENTS: u64 = 4;
const ROUNDS: u64 = 4;

/// Which parts of a trace the server acknowledged.
#[derive(Default, Clone, Copy, Debug)]
struct Acks {
    spans: bool,
    log: bool,
}

type Ledger = Arc<Mutex<BTreeMap<u64, Acks>>>;

/// One client: sends traces (3 spans, then a log naming the trace) until the server dies.
fn client(base: String, first_trace: u64, ledger: Ledger) {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let send = |path: &str, body: Vec<u8>| {
        http.post(format!("{base}{path}"))
            .header("content-type", PROTO)
            .body(body)
            .send()
            .map(|r| r.status() == 200)
            .unwrap_or(false)
    };
    for trace in first_trace.. {
        ledger.lock().unwrap().insert(trace, Acks::default());
        let spans = otlp::traces(
            "crashy",
            (0..SPANS_PER_TRACE)
                .map(|i| {
                    otlp::span(&SpanSpec {
                        trace,
                        span: i,
                        parent: i.checked_sub(1),
                        name: "op",
                        start_ms: trace % 1000,
                        duration_ms: 1,
                        error: false,
                    })
                })
                .collect(),
        );
        if !send("/v1/traces", encode(&spans)) {
            return;
        }
        ledger.lock().unwrap().get_mut(&trace).unwrap().spans = true;
        let log = otlp::logs(
            "crashy",
            vec![otlp::log(
                Some(trace),
                Some(0),
                &format!("done {trace}"),
                trace % 1000,
            )],
        );
        if !send("/v1/logs", encode(&log)) {
            return;
        }
        ledger.lock().unwrap().get_mut(&trace).unwrap().log = true;
    }
}

#[test]
fn sigkill_under_load_loses_nothing_acknowledged_and_doubles_nothing() {
    let mut server = Server::start(&[]);
    let dir = server.take_dir();
    let ledger: Ledger = Arc::default();
    let mut rng = rand::rng();
    for round in 0..ROUNDS {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let base = server.url("");
                let ledger = ledger.clone();
                std::thread::spawn(move || client(base, (round * CLIENTS + c) * 1_000_000, ledger))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.random_range(400..1200)));
        server.kill();
        for c in clients {
            c.join().unwrap();
        }
        server = Server::start_in(dir.path(), &[]);
    }
    let ledger = ledger.lock().unwrap().clone();
    let acked_spans = ledger.values().filter(|a| a.spans).count();
    let acked_logs = ledger.values().filter(|a| a.log).count();
    assert!(
        acked_spans > 20 && acked_logs > 20,
        "too little traffic to mean anything: {acked_spans} traces"
    );
    // Wait until the last acknowledged trace is searchable, then check every one of them.
    let last = ledger
        .iter()
        .rev()
        .find(|(_, a)| a.log)
        .map(|(t, _)| *t)
        .unwrap();
    server.wait_for_trace(
        &hex(&otlp::trace_id(last)),
        None,
        SPANS_PER_TRACE as usize,
        1,
    );
    std::thread::sleep(Duration::from_millis(500));
    for (trace, acks) in &ledger {
        let (status, t) =
            server.get_json(&format!("/api/v1/traces/{}", hex(&otlp::trace_id(*trace))));
        let spans = t["spans"].as_array().map_or(0, Vec::len) as u64;
        let logs = t["logs"].as_array().map_or(0, Vec::len);
        assert!(status == 200 || status == 404, "trace {trace}: {status}");
        if acks.spans {
            assert_eq!(
                spans, SPANS_PER_TRACE,
                "trace {trace}: acknowledged spans lost or doubled"
            );
        } else {
            assert!(
                spans == 0 || spans == SPANS_PER_TRACE,
                "trace {trace}: {spans} spans"
            );
        }
        if acks.log {
            assert_eq!(logs, 1, "trace {trace}: acknowledged log lost or doubled");
        } else {
            assert!(logs <= 1, "trace {trace}: {logs} logs");
        }
    }
    eprintln!("checked {} traces: {acked_spans} span batches and {acked_logs} logs acknowledged over {ROUNDS} kills", ledger.len());
}

#[test]
fn sigterm_exits_cleanly_and_keeps_everything() {
    let mut server = Server::start(&[("WEFT_INDEX_COMMIT_INTERVAL_MS", "60000")]);
    let dir = server.take_dir();
    let req = otlp::traces(
        "calm",
        vec![otlp::span(&SpanSpec {
            trace: 77,
            span: 0,
            parent: None,
            name: "op",
            start_ms: 0,
            duration_ms: 1,
            error: false,
        })],
    );
    assert_eq!(
        post(&server.url("/v1/traces"), PROTO, &[], encode(&req)).0,
        200
    );
    let status = server.terminate();
    assert!(status.success(), "weft exited with {status}");
    // The final commit moved the checkpoint past the record: nothing is left to replay.
    let checkpoint = std::fs::read_to_string(dir.path().join("index/checkpoint")).unwrap();
    assert_eq!(checkpoint.trim(), "1");
    let server = Server::start_in(dir.path(), &[]);
    assert_eq!(server.metric("weft_wal_replayed_batches_total"), 0.0);
    let t = server.wait_for_trace(&hex(&otlp::trace_id(77)), None, 1, 0);
    assert_eq!(t["spans"].as_array().unwrap().len(), 1);
}

#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let mut first = Server::start(&[]);
    let dir = first.take_dir();
    match Server::spawn(dir.path(), &[]) {
        Ok(_) => panic!("two servers share one data directory"),
        Err(e) => assert!(e.contains("exited"), "{e}"),
    }
}

/// A crash between committing the partitions and writing the checkpoint leaves the checkpoint
/// behind the indexes. Forcing that state: the replay must skip what each partition has.
#[test]
fn replay_behind_the_indexes_adds_nothing_twice() {
    let mut server = Server::start(&[]);
    let dir = server.take_dir();
    for trace in 0..5 {
        let spans = otlp::traces(
            "lagging",
            vec![otlp::span(&SpanSpec {
                trace,
                span: 0,
                parent: None,
                name: "op",
                start_ms: trace * 3_600_000,
                duration_ms: 1,
                error: false,
            })],
        );
        assert_eq!(
            post(&server.url("/v1/traces"), PROTO, &[], encode(&spans)).0,
            200
        );
        let logs = otlp::logs(
            "lagging",
            vec![otlp::log(Some(trace), Some(0), "line", trace * 3_600_000)],
        );
        assert_eq!(
            post(&server.url("/v1/logs"), PROTO, &[], encode(&logs)).0,
            200
        );
    }
    assert!(server.terminate().success());
    std::fs::write(dir.path().join("index/checkpoint"), "0\n").unwrap();
    let server = Server::start_in(dir.path(), &[]);
    assert_eq!(
        server.metric("weft_wal_replayed_batches_total"),
        10.0,
        "the whole WAL was replayed"
    );
    for trace in 0..5 {
        let t = server.wait_for_trace(&hex(&otlp::trace_id(trace)), None, 1, 1);
        assert_eq!(
            t["spans"].as_array().unwrap().len(),
            1,
            "trace {trace}: {t}"
        );
        assert_eq!(t["logs"].as_array().unwrap().len(), 1, "trace {trace}: {t}");
    }
}
