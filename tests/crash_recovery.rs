//! Durability: clients send concurrently while the server is SIGKILLed and restarted on the
//! same directory, several times. Every acknowledged record is found afterwards, and no record
//! is stored twice. A SIGTERM stops cleanly with everything committed.

mod common;

use common::otlp::{self, encode, hex, SpanSpec};
use common::{poll, post, red_requests, Server};
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PROTO: &str = "application/x-protobuf";
const SPANS_PER_TRACE: u64 = 3;
const CLIENTS: u64 = 4;
const ROUNDS: u64 = 20;

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
        std::thread::sleep(Duration::from_millis(rng.random_range(150..700)));
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
    // The restart replayed and committed the whole WAL before it was ready.
    assert_eq!(server.metric("weft_index_checkpoint_lag_entries"), 0.0);
    let mut stored_spans = 0;
    for (trace, acks) in &ledger {
        let (status, t) =
            server.get_json(&format!("/api/v1/traces/{}", hex(&otlp::trace_id(*trace))));
        let spans = t["spans"].as_array().map_or(0, Vec::len) as u64;
        let logs = t["logs"].as_array().map_or(0, Vec::len);
        stored_spans += spans;
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
    // The RED metrics derived from those spans count each stored span exactly once, however
    // the kills fell between WAL, span index and metrics index.
    let counted = poll(Duration::from_secs(10), || {
        red_requests(&server, "crashy") == stored_spans as f64
    });
    assert!(
        counted,
        "RED counted {} requests for {stored_spans} stored spans",
        red_requests(&server, "crashy")
    );
    eprintln!("checked {} traces: {acked_spans} span batches and {acked_logs} logs acknowledged over {ROUNDS} kills; RED counted {stored_spans} spans", ledger.len());
}

#[test]
fn sigterm_exits_cleanly_and_keeps_everything() {
    let mut server = Server::start(&[("WEFT_INDEX_COMMIT_INTERVAL_MS", "60000")]);
    let dir = server.take_dir();
    let req = otlp::one_span_trace("calm", 77, "op");
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
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("serve")
        .env("WEFT_DATA_DIR", dir.path())
        .env("WEFT_HTTP_LISTEN", "127.0.0.1:0")
        .env("WEFT_GRPC_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "two servers share one data directory"
    );
    assert!(
        stderr.contains("is in use by another weft process"),
        "refused for another reason: {stderr}"
    );
    // The first one still serves.
    assert_eq!(first.get_json("/readyz").0, 200);
}

/// A crash between committing the partitions and writing the checkpoint leaves the checkpoint
/// behind the indexes. Forcing that state: the WAL as it was before the commit, put back
/// behind a committed index with the checkpoint at 0; the replay must skip what each
/// partition has.
#[test]
fn replay_behind_the_indexes_adds_nothing_twice() {
    // No commit until the stop: the WAL still holds every entry when it is copied.
    let mut server = Server::start(&[("WEFT_INDEX_COMMIT_INTERVAL_MS", "600000")]);
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
    let wal = dir.path().join("wal");
    let kept = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(&wal).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), kept.path().join(f.file_name())).unwrap();
    }
    assert!(server.terminate().success());
    // A clean stop indexed everything and let the WAL go: what is left is an empty segment.
    let left: Vec<u64> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|f| f.unwrap().metadata().unwrap().len())
        .collect();
    assert!(
        left.iter().all(|&len| len <= 8),
        "WAL after a clean stop: {left:?}"
    );
    for f in std::fs::read_dir(&wal).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    for f in std::fs::read_dir(kept.path()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), wal.join(f.file_name())).unwrap();
    }
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
    assert_eq!(
        red_requests(&server, "lagging"),
        5.0,
        "RED counted a replayed span twice"
    );
}

/// Sends one small trace per request, in order; returns how many were acknowledged.
fn send_traces(server: &Server, first: u64, count: u64) -> Vec<u64> {
    (first..first + count)
        .filter(|&t| {
            let req = otlp::one_span_trace("walled", t, "op");
            post(&server.url("/v1/traces"), PROTO, &[], encode(&req)).0 == 200
        })
        .collect()
}

/// Offsets where each entry of a WAL segment starts, and the file's length.
fn entry_offsets(segment: &std::path::Path) -> (Vec<usize>, usize) {
    let data = std::fs::read(segment).unwrap();
    let mut offsets = Vec::new();
    let mut pos = 8; // the magic
    while pos + 16 <= data.len() {
        offsets.push(pos);
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 16 + len;
    }
    (offsets, data.len())
}

fn only_segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

#[test]
fn a_damaged_wal_keeps_every_record_before_the_damage() {
    let mut rng = rand::rng();
    for damage in ["torn tail", "garbage appended", "flipped byte"] {
        // Nothing is committed to the index, so everything comes back from the WAL.
        let env = [("WEFT_INDEX_COMMIT_INTERVAL_MS", "600000")];
        let mut server = Server::start(&env);
        let dir = server.take_dir();
        assert_eq!(send_traces(&server, 0, 20).len(), 20);
        server.kill();
        let seg = only_segment(dir.path());
        let (offsets, len) = entry_offsets(&seg);
        assert_eq!(offsets.len(), 20);
        let mut data = std::fs::read(&seg).unwrap();
        let k = rng.random_range(1..20);
        let survivors = match damage {
            "torn tail" => {
                let cut =
                    rng.random_range(offsets[k] + 1..offsets.get(k + 1).copied().unwrap_or(len));
                data.truncate(cut);
                k as u64
            }
            "garbage appended" => {
                data.extend((0..100).map(|_| rng.random::<u8>()));
                20
            }
            _ => {
                let at =
                    rng.random_range(offsets[k] + 16..offsets.get(k + 1).copied().unwrap_or(len));
                data[at] ^= 0x20;
                k as u64
            }
        };
        std::fs::write(&seg, &data).unwrap();
        let server = Server::start_in(dir.path(), &env);
        assert_eq!(server.metric("weft_wal_corruptions_total"), 1.0, "{damage}");
        assert_eq!(
            server.metric("weft_wal_replayed_batches_total"),
            survivors as f64,
            "{damage}"
        );
        server.wait_for_trace(&hex(&otlp::trace_id(survivors - 1)), None, 1, 0);
        for t in 0..20 {
            let status = server
                .get_json(&format!("/api/v1/traces/{}", hex(&otlp::trace_id(t))))
                .0;
            assert_eq!(
                status,
                if t < survivors { 200 } else { 404 },
                "{damage}: trace {t}"
            );
        }
        // New writes go after the damage and survive the next restart.
        assert_eq!(send_traces(&server, 100, 1).len(), 1, "{damage}");
        drop(server);
        let server = Server::start_in(dir.path(), &env);
        server.wait_for_trace(&hex(&otlp::trace_id(100)), None, 1, 0);
        assert_eq!(
            server.metric("weft_wal_corruptions_total"),
            0.0,
            "{damage}: the damage was cut off once"
        );
    }
}

#[test]
fn when_the_wal_cannot_be_written_writes_get_503_never_success() {
    let mut first = Server::start(&[]);
    let dir = first.take_dir();
    drop(first);
    // A 256 KiB file size limit: the WAL segment hits it after a few hundred requests.
    let mut server = Server::spawn_under(dir.path(), &[], Some("ulimit -f 256")).unwrap();
    server.wait_ready();
    let mut acked = Vec::new();
    let mut failed_at = None;
    for t in 0..2000 {
        let req = otlp::one_span_trace("full", t, &"n".repeat(500));
        let (status, reply) = post(&server.url("/v1/traces"), PROTO, &[], encode(&req));
        match status {
            200 if failed_at.is_none() => acked.push(t),
            503 => {
                let st =
                    <weft::api::errors::RpcStatus as prost::Message>::decode(&reply[..]).unwrap();
                assert!(st.message.contains("write-ahead log"), "{}", st.message);
                failed_at.get_or_insert(t);
                if t > failed_at.unwrap() + 5 {
                    break;
                }
            }
            other => panic!("trace {t}: status {other} after the WAL filled up at {failed_at:?}"),
        }
    }
    assert!(failed_at.is_some(), "the file size limit was never hit");
    assert!(
        acked.len() > 10,
        "{} acknowledged before the limit",
        acked.len()
    );
    server.kill();
    let server = Server::start_in(dir.path(), &[]);
    for t in &acked {
        let status = server
            .get_json(&format!("/api/v1/traces/{}", hex(&otlp::trace_id(*t))))
            .0;
        if status != 200 {
            server.wait_for_trace(&hex(&otlp::trace_id(*t)), None, 1, 0);
        }
    }
}

#[test]
fn sigterm_under_load_drains_commits_and_exits() {
    let mut server = Server::start(&[("WEFT_HTTP_SHUTDOWN_GRACE_SECS", "3")]);
    let dir = server.take_dir();
    let ledger: Ledger = Arc::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (base, ledger) = (server.url(""), ledger.clone());
            std::thread::spawn(move || client(base, c * 1_000_000, ledger))
        })
        .collect();
    // Under load: some traces acknowledged before the stop is asked for.
    assert!(poll(Duration::from_secs(30), || ledger
        .lock()
        .unwrap()
        .values()
        .filter(|a| a.spans)
        .count()
        >= 20));
    let asked = std::time::Instant::now();
    let status = server.terminate();
    let took = asked.elapsed();
    for c in clients {
        c.join().unwrap();
    }
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(3 + 5), "exit took {took:?}");
    let server = Server::start_in(dir.path(), &[]);
    for (trace, acks) in ledger.lock().unwrap().iter() {
        let t = server
            .get_json(&format!("/api/v1/traces/{}", hex(&otlp::trace_id(*trace))))
            .1;
        if acks.spans {
            assert_eq!(
                t["spans"].as_array().map_or(0, Vec::len) as u64,
                SPANS_PER_TRACE,
                "trace {trace}"
            );
        }
        if acks.log {
            assert_eq!(t["logs"].as_array().map_or(0, Vec::len), 1, "trace {trace}");
        }
    }
}
