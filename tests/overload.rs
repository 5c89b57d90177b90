//! Overload: a flood of large bodies gets 429 with Retry-After instead of memory growth, resident
//! memory stays under the configured bound plus a fixed overhead, nothing crashes, and normal
//! traffic is served again within seconds. WEFT_FLOOD_SECS shortens the flood (default 60 s,
//! as RELIABILITY.md promises).

mod common;

use common::otlp::{self, encode, hex};
use common::{post, Server};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROTO: &str = "application/x-protobuf";
const MIB: u64 = 1024 * 1024;
const INFLIGHT: u64 = 64 * MIB;
const INDEX_QUEUE: u64 = 32 * MIB;
const WRITER_MB: u64 = 64;
/// Everything that is not request data: code, runtimes, tantivy readers, allocator slack.
const FIXED_OVERHEAD: u64 = 256 * MIB;

/// A ~5 MiB OTLP logs body.
fn five_mib_body() -> Vec<u8> {
    let line = "x".repeat(1000);
    let logs = (0..5200)
        .map(|i| otlp::log(None, None, &format!("{i} {line}"), i % 1000))
        .collect();
    encode(&otlp::logs("flood", logs))
}

#[test]
fn flood_gets_429_with_bounded_memory_and_recovers() {
    let secs: u64 = std::env::var("WEFT_FLOOD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let s = Server::start(&[
        ("WEFT_LIMITS_MAX_INFLIGHT_BYTES", &INFLIGHT.to_string()),
        (
            "WEFT_LIMITS_MAX_REQUEST_MEMORY_BYTES",
            &INFLIGHT.to_string(),
        ),
        ("WEFT_INDEX_QUEUE_BYTES", &INDEX_QUEUE.to_string()),
        ("WEFT_INDEX_WRITER_MEMORY_MB", &WRITER_MB.to_string()),
        ("WEFT_INDEX_COMMIT_INTERVAL_MS", "1000"),
    ]);
    let body = bytes::Bytes::from(five_mib_body());
    assert!(body.len() as u64 > 5 * MIB - MIB / 2, "{}", body.len());
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, throttled, other) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let retry_after_seen = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let (url, body, stop) = (s.url("/v1/logs"), body.clone(), stop.clone());
            let (ok, throttled, other, seen) = (
                ok.clone(),
                throttled.clone(),
                other.clone(),
                retry_after_seen.clone(),
            );
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                while !stop.load(Ordering::Relaxed) {
                    match http
                        .post(&url)
                        .header("content-type", PROTO)
                        .body(body.clone())
                        .send()
                    {
                        Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        Ok(r) if r.status() == 429 => {
                            if r.headers().get("retry-after").is_some() {
                                seen.store(true, Ordering::Relaxed);
                            }
                            // A hostile client: no backing off beyond a breath.
                            std::thread::sleep(Duration::from_millis(5));
                            throttled.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => other.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut peak = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        peak = peak.max(s.rss_bytes());
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    peak = peak.max(s.rss_bytes());
    let bound = INFLIGHT + INDEX_QUEUE * 3 + WRITER_MB * MIB + FIXED_OVERHEAD;
    eprintln!(
        "flood {secs}s: {} accepted, {} throttled (429), {} other; peak RSS {} MiB (bound {} MiB)",
        ok.load(Ordering::Relaxed),
        throttled.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
        peak / MIB,
        bound / MIB
    );
    assert!(
        throttled.load(Ordering::Relaxed) > 0,
        "a flood this size must be throttled"
    );
    assert!(
        retry_after_seen.load(Ordering::Relaxed),
        "429s carry Retry-After"
    );
    assert!(
        ok.load(Ordering::Relaxed) > 0,
        "some of the flood is still accepted"
    );
    assert_eq!(
        other.load(Ordering::Relaxed),
        0,
        "only 200 and 429 under overload"
    );
    assert!(
        peak < bound,
        "peak RSS {} MiB over the bound of {} MiB",
        peak / MIB,
        bound / MIB
    );

    // Normal traffic is served again within seconds.
    let recovered = Instant::now();
    let small = encode(&otlp::one_span_trace("calm", 1, "after"));
    common::wait_until(
        Duration::from_secs(30),
        "normal traffic after the flood",
        || post(&s.url("/v1/traces"), PROTO, &[], small.clone()).0 == 200,
    );
    eprintln!(
        "served normally again {} ms after the flood",
        recovered.elapsed().as_millis()
    );
    // Searchable once the indexer has worked through what the flood got accepted (several
    // bodies of the largest size): on a loaded machine that backlog takes longer than the
    // usual freshness wait, so give it up to two minutes and say how long it took.
    let searchable = Instant::now();
    let id = hex(&otlp::trace_id(1));
    let found = common::poll(Duration::from_secs(120), || {
        s.get_json(&format!("/api/v1/traces/{id}")).0 == 200
    });
    assert!(
        found,
        "the trace sent after the flood never became searchable"
    );
    eprintln!(
        "searchable {} ms after it was accepted",
        searchable.elapsed().as_millis()
    );
    assert!(s.metric("weft_requests_rejected_total{reason=\"overloaded\",signal=\"logs\"}") > 0.0);
}
