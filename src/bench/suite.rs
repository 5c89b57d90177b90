//! `weft bench run`: per signal, the same load against a ceiling server (`--sink null`) and a
//! real one, each started fresh from this binary on a temporary directory; then queries over a
//! loaded data set. Prints Markdown tables.

use super::gen::{Generator, OPERATIONS, SERVICES};
use super::load::{self, percentile, LoadOptions, LoadReport};
use crate::api::auth::TENANT_HEADER;
use crate::model::Signal;
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct SuiteOptions {
    pub seconds: u64,
    pub connections: usize,
    /// Spans and logs loaded before the query figures are taken.
    pub query_records: u64,
    /// Queries of each kind.
    pub queries: usize,
}

/// A `weft serve` child process on a temporary data directory.
pub(crate) struct Served {
    child: Child,
    pub(crate) http: String,
    pub(crate) dir: PathBuf,
}

impl Served {
    fn start(sink: &str) -> Result<Served, String> {
        Self::start_with(sink, &[])
    }

    /// A server with these extra `WEFT_*` settings.
    pub(crate) fn start_with(sink: &str, env: &[(&str, &str)]) -> Result<Served, String> {
        let dir =
            std::env::temp_dir().join(format!("weft-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["serve", "--sink", sink])
            .env("WEFT_DATA_DIR", &dir)
            .env("WEFT_HTTP_LISTEN", "127.0.0.1:0")
            .env("WEFT_GRPC_LISTEN", "127.0.0.1:0")
            .env("WEFT_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|_| format!("weft did not start: {line:?}"))?;
        let http = format!("http://{}", v["http"].as_str().unwrap_or_default());
        let served = Served { child, http, dir };
        let started = Instant::now();
        while reqwest::blocking::get(format!("{}/readyz", served.http))
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
        {
            if started.elapsed() > Duration::from_secs(60) {
                return Err("weft did not become ready".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(served)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User plus system CPU seconds the server has used.
    pub(super) fn cpu_secs(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // SAFETY: sysconf reads a constant of the running system.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        ticks / hz.max(1.0)
    }

    /// Peak resident memory (VmHWM) in bytes.
    fn peak_rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// One sample of this server's `/metrics`, 0 when absent.
    pub(crate) fn metric(&self, sample: &str) -> f64 {
        metric(&self.http, sample)
    }

    /// Waits until `count` documents of `signal` are searchable; returns how long it took.
    pub(crate) fn wait_indexed(&self, signal: Signal, count: u64) -> Duration {
        wait_indexed(&self.http, signal, count)
    }
}

/// One sample of a server's `/metrics`, 0 when absent.
fn metric(base: &str, sample: &str) -> f64 {
    reqwest::blocking::get(format!("{base}/metrics"))
        .and_then(|r| r.text())
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits (up to 10 minutes) until the server at `base` has `count` documents of `signal`
/// searchable; returns how long it took.
pub(crate) fn wait_indexed(base: &str, signal: Signal, count: u64) -> Duration {
    let started = Instant::now();
    let sample = format!("weft_index_documents{{signal=\"{}\"}}", signal.as_str());
    while (metric(base, &sample) as u64) < count && started.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(super) fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

struct Measured {
    report: LoadReport,
    cpu_secs: f64,
    peak_rss: u64,
    index_bytes: Option<u64>,
    /// Bytes appended to the WAL during the run (`weft_wal_bytes_total`).
    wal_bytes: Option<u64>,
}

fn measure(
    sink: &str,
    signal: Signal,
    opts: &SuiteOptions,
    rt: &tokio::runtime::Runtime,
    tune: &dyn Fn(&mut LoadOptions),
) -> Result<Measured, String> {
    let served = Served::start(sink)?;
    let mut lo = LoadOptions::new(&served.http, signal);
    lo.connections = opts.connections;
    lo.duration = Duration::from_secs(opts.seconds);
    lo.probe_freshness = sink == "wal" && signal != Signal::Metrics;
    tune(&mut lo);
    let cpu0 = served.cpu_secs();
    let report = rt.block_on(load::run(lo))?;
    let cpu_secs = served.cpu_secs() - cpu0;
    let index_bytes = (sink == "wal").then(|| {
        served.wait_indexed(signal, report.records);
        // Give background merges a moment: the figure is for committed, merged data.
        std::thread::sleep(Duration::from_secs(3));
        dir_bytes(&served.dir.join("index").join(signal.as_str()))
    });
    let wal_bytes = (sink == "wal").then(|| served.metric("weft_wal_bytes_total") as u64);
    Ok(Measured {
        peak_rss: served.peak_rss(),
        report,
        cpu_secs,
        index_bytes,
        wal_bytes,
    })
}

fn ms(us: Option<u64>) -> String {
    us.map_or("–".into(), |v| format!("{:.1}", v as f64 / 1000.0))
}

/// Runs the whole suite and prints its tables.
pub fn run_suite(opts: &SuiteOptions) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    println!(
        "## Ingest ({} s per run, {} connections, OTLP/HTTP protobuf)\n",
        opts.seconds, opts.connections
    );
    println!("| signal | sink | records/s | MB/s | ack p50 ms | ack p99 ms | fresh p50 ms | fresh p99 ms | CPU-s per M | peak RSS MiB | bytes/record | WAL bytes/record | WAL / request bytes | vs ceiling |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for signal in Signal::ALL {
        let ceiling = measure("null", signal, opts, &rt, &|_| {})?;
        let weft = measure("wal", signal, opts, &rt, &|_| {})?;
        for (name, m) in [("null (ceiling)", &ceiling), ("wal + index", &weft)] {
            let r = &m.report;
            let per_m = m.cpu_secs / (r.records as f64 / 1e6).max(1e-9);
            println!(
                "| {} | {} | {:.0} | {:.1} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {:.2} |",
                signal.as_str(),
                name,
                r.records_per_sec(),
                r.mb_per_sec(),
                ms(percentile(&r.ack_us, 0.5)),
                ms(percentile(&r.ack_us, 0.99)),
                percentile(&r.freshness_ms, 0.5).map_or("–".into(), |v| v.to_string()),
                percentile(&r.freshness_ms, 0.99).map_or("–".into(), |v| v.to_string()),
                per_m,
                m.peak_rss >> 20,
                m.index_bytes.map_or("–".into(), |b| format!(
                    "{:.0}",
                    b as f64 / r.records.max(1) as f64
                )),
                m.wal_bytes.map_or("–".into(), |b| format!(
                    "{:.0}",
                    b as f64 / r.records.max(1) as f64
                )),
                m.wal_bytes.map_or("–".into(), |b| format!(
                    "{:.2}",
                    b as f64 / r.bytes.max(1) as f64
                )),
                r.records_per_sec() / ceiling.report.records_per_sec().max(1e-9),
            );
            if r.failures > 0 {
                println!(
                    "|   | {} failed requests of {} | | | | | | | | | | | | |",
                    r.failures, r.requests
                );
            }
        }
    }
    compat_figures(opts, &rt)?;
    query_figures(opts, &rt)
}

/// Remote write and Loki push against OTLP/HTTP on the same records, each stored (WAL and
/// index), so a compatibility path shows whether it is a slow path.
fn compat_figures(opts: &SuiteOptions, rt: &tokio::runtime::Runtime) -> Result<(), String> {
    use super::compat::Protocol;
    println!(
        "\n## Compatibility ingest ({} s per run, {} connections, wal + index, the same records)\n",
        opts.seconds, opts.connections
    );
    println!("| protocol | records/s | MB/s on the wire | ack p50 ms | ack p99 ms | CPU-s per M | vs OTLP |");
    println!("|---|---|---|---|---|---|---|");
    let pairs: [(Signal, &str, Protocol, &str); 2] = [
        (
            Signal::Metrics,
            "OTLP/HTTP protobuf, counter points",
            Protocol::RemoteWrite,
            "Prometheus remote write 1.0, samples",
        ),
        (
            Signal::Logs,
            "OTLP/HTTP protobuf, log records",
            Protocol::LokiPush,
            "Loki push, snappy protobuf, entries",
        ),
    ];
    for (signal, base_name, protocol, name) in pairs {
        let base = measure("wal", signal, opts, rt, &|lo| lo.counters_only = true)?;
        let other = measure("wal", signal, opts, rt, &|lo| lo.protocol = protocol)?;
        for (label, m) in [(base_name, &base), (name, &other)] {
            let r = &m.report;
            println!(
                "| {label} | {:.0} | {:.1} | {} | {} | {:.1} | {:.2} |",
                r.records_per_sec(),
                r.mb_per_sec(),
                ms(percentile(&r.ack_us, 0.5)),
                ms(percentile(&r.ack_us, 0.99)),
                m.cpu_secs / (r.records as f64 / 1e6).max(1e-9),
                r.records_per_sec() / base.report.records_per_sec().max(1e-9),
            );
            if r.failures > 0 {
                println!(
                    "|   | {} failed requests of {} | | | | | |",
                    r.failures, r.requests
                );
            }
        }
    }
    Ok(())
}

/// Loads `query_records` spans and logs, then times queries over many different IDs and words.
fn query_figures(opts: &SuiteOptions, rt: &tokio::runtime::Runtime) -> Result<(), String> {
    let served = Served::start("wal")?;
    let mut ids = Vec::new();
    for signal in [Signal::Spans, Signal::Logs, Signal::Metrics] {
        let mut lo = LoadOptions::new(&served.http, signal);
        lo.connections = opts.connections;
        lo.duration = Duration::from_secs(3600);
        // Metric points are far fewer than spans and logs in any real system.
        lo.max_records = Some(match signal {
            Signal::Metrics => (opts.query_records / 50).max(1000),
            _ => opts.query_records,
        });
        let report = rt.block_on(load::run(lo))?;
        served.wait_indexed(signal, report.records);
        if signal == Signal::Spans {
            ids = report.trace_ids;
        }
    }
    let loaded_until = crate::now_ns() / 1_000_000_000;
    let spans = metric(&served.http, "weft_index_documents{signal=\"spans\"}") as u64;
    let logs = metric(&served.http, "weft_index_documents{signal=\"logs\"}") as u64;
    let points = metric(&served.http, "weft_index_documents{signal=\"metrics\"}") as u64;
    println!(
        "\n## Queries ({spans} spans, {logs} logs and {points} metric points (RED included) loaded; {} of each query, one at a time)\n",
        opts.queries
    );
    println!("| query | p50 ms | p99 ms | mean hits |");
    println!("|---|---|---|---|");
    let http = reqwest::blocking::Client::new();
    let time = |name: &str, urls: Vec<String>, hits: &dyn Fn(&serde_json::Value) -> usize| {
        let mut us = Vec::with_capacity(urls.len());
        let mut total_hits = 0usize;
        for url in &urls {
            let t0 = Instant::now();
            let body: serde_json::Value = http
                .get(url)
                .send()
                .and_then(|r| r.json())
                .unwrap_or_default();
            us.push(t0.elapsed().as_micros() as u64);
            total_hits += hits(&body);
        }
        us.sort_unstable();
        println!(
            "| {name} | {} | {} | {:.1} |",
            ms(percentile(&us, 0.5)),
            ms(percentile(&us, 0.99)),
            total_hits as f64 / urls.len().max(1) as f64
        );
    };
    let mut gen = Generator::new(7);
    let n = opts.queries;
    // Different trace IDs of the load, spread over it.
    let per_trace = |path: &str, stride: usize| -> Vec<String> {
        ids.iter()
            .cycle()
            .step_by(stride)
            .take(n.min(ids.len().max(1)))
            .map(|id| format!("{}{path}{id}", served.http))
            .collect()
    };
    let trace_urls = per_trace("/api/v1/traces/", 7);
    time(
        "trace by ID with its logs and exemplars",
        trace_urls,
        &|b| b["spans"].as_array().map_or(0, Vec::len),
    );
    let word_urls = (0..n)
        .map(|_| format!("{}/api/v1/logs?q={}&limit=100", served.http, gen.word()))
        .collect();
    time("log search, one word, newest 100", word_urls, &|b| {
        b["count"].as_u64().unwrap_or(0) as usize
    });
    let pair_urls = (0..n)
        .map(|_| {
            format!(
                "{}/api/v1/logs?q={}%20{}&severity=error&limit=20",
                served.http,
                gen.word(),
                gen.word()
            )
        })
        .collect();
    time(
        "log search, two words + severity, newest 20",
        pair_urls,
        &|b| b["count"].as_u64().unwrap_or(0) as usize,
    );
    // 15-minute windows over the loaded data, ending at different seconds of the next minute,
    // and a different service or route each time, so no two queries are alike.
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut windowed = |path: &dyn Fn(usize) -> String| -> Vec<String> {
        (0..n)
            .map(|i| {
                let end = loaded_until + rng.random_range(0..60);
                format!(
                    "{}{}&start={}&end={end}",
                    served.http,
                    path(i),
                    end - 15 * 60
                )
            })
            .collect()
    };
    let service = |i: usize| SERVICES[i % SERVICES.len()];
    let series = |b: &serde_json::Value| b["series"].as_array().map_or(0, Vec::len);
    let red_urls = windowed(&|i| {
        format!(
            "/api/v1/metrics/query?query=weft.span.duration{{service.name=%22{}%22}}&by=service.name&quantiles=0.95&step=15s",
            service(i)
        )
    });
    let app_urls = windowed(&|i| {
        format!(
            "/api/v1/metrics/query?query=http.server.request.duration{{http.route=%22{}%22}}&quantiles=0.99&step=15s",
            OPERATIONS[i % OPERATIONS.len()]
        )
    });
    let timeline_urls = windowed(&|i| format!("/api/v1/timeline?service={}&limit=200", service(i)));
    time(
        "metric query: RED p95 of one service, 15 min, 15 s steps, with exemplars",
        red_urls,
        &series,
    );
    time(
        "metric query: application histogram p99 by route, 15 min, with exemplars",
        app_urls,
        &series,
    );
    time(
        "timeline of one service, 15 min window, first 200 entries",
        timeline_urls,
        &|b| b["count"].as_u64().unwrap_or(0) as usize,
    );
    let trace_timeline_urls = per_trace("/api/v1/timeline?trace_id=", 11);
    time("timeline of one trace", trace_timeline_urls, &|b| {
        b["count"].as_u64().unwrap_or(0) as usize
    });
    let searches = trace_search_urls(&served.http, &http, n);
    time("trace search, one attribute, newest 20", searches, &|b| {
        b["traces"].as_array().map_or(0, Vec::len)
    });
    view_figures(&served.http, &http, &ids, n);
    Ok(())
}

/// Trace searches by an attribute the generator set, each with another value.
fn trace_search_urls(base: &str, http: &reqwest::blocking::Client, n: usize) -> Vec<String> {
    let get = |path: &str| -> serde_json::Value {
        http.get(format!("{base}{path}"))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_default()
    };
    let keys = get("/api/v1/spans/attributes?start=now-1h");
    let Some(key) = keys["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["scope"] == "span"))
        .and_then(|k| k["key"].as_str())
    else {
        return Vec::new();
    };
    let values = get(&format!(
        "/api/v1/spans/attributes/{key}/values?start=now-1h&limit={n}"
    ));
    values["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .map(|v| format!("{base}/api/v1/traces?attr={key}={v}&start=now-1h"))
        .collect()
}

/// The tenant the shop is replayed as: its signals would drown in the generated load.
const SHOP_TENANT: &str = "shop";

/// An incident beside the loaded data, for the incident view: the demo shop's five minutes
/// with its database fault, time-compressed (as its own tenant, so the generated load does not
/// drown the fault), then up to a minute for the detector to open it.
fn shop_incident(base: &str, http: &reqwest::blocking::Client) -> Option<String> {
    use crate::demo::scenario::{Fault, Scenario};
    const SECONDS: u64 = 300;
    let fault = Fault {
        start_s: 120,
        end_s: 180,
    };
    let mut shop = Scenario::new(42, crate::now_ns() - SECONDS * 1_000_000_000, fault);
    for s in 0..SECONDS {
        if let Err(e) = crate::demo::send(http, base, Some(SHOP_TENANT), &shop.second(s)) {
            println!("\n(the shop replay failed: {e})");
            return None;
        }
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let id = http
            .get(format!("{base}/api/v1/incidents"))
            .header(TENANT_HEADER, SHOP_TENANT)
            .send()
            .and_then(|r| r.json::<serde_json::Value>())
            .ok()
            .and_then(|v| v["incidents"][0]["id"].as_str().map(str::to_string));
        if id.is_some() {
            return id;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    None
}

/// The API calls each view of the web UI makes before it first draws, timed one after the
/// other (the browser makes some at once, so this is an upper bound), over different traces
/// and services.
fn view_figures(base: &str, http: &reqwest::blocking::Client, ids: &[String], n: usize) {
    let first_incident = shop_incident(base, http);
    let service = |i: usize| SERVICES[i % SERVICES.len()];
    let red = |name: &str, i: usize, extra: &str| {
        format!(
            "/api/v1/metrics/anomalies?query={name}{{service.name=%22{}%22}}&by=service.name&start=now-1h{extra}",
            service(i)
        )
    };
    // Name, tenant, and the calls of the i-th sample.
    type View<'a> = (&'a str, &'a str, Box<dyn Fn(usize) -> Vec<String> + 'a>);
    let mut views: Vec<View> = vec![
        (
            "search: traces (services, attribute keys, newest 20 of the hour)",
            "default",
            Box::new(|_| {
                vec![
                    "/api/v1/services?start=now-24h".into(),
                    "/api/v1/spans/attributes?start=now-1h".into(),
                    "/api/v1/traces?start=now-1h".into(),
                ]
            }),
        ),
        (
            "search: logs (services, newest 100 of the hour)",
            "default",
            Box::new(|_| {
                vec![
                    "/api/v1/services?start=now-24h".into(),
                    "/api/v1/logs?start=now-1h&limit=100".into(),
                ]
            }),
        ),
        (
            "trace (the trace, its spans' operation percentiles)",
            "default",
            Box::new(|i| {
                let id = &ids[(i * 7) % ids.len().max(1)];
                vec![
                    format!("/api/v1/traces/{id}"),
                    format!("/api/v1/traces/{id}/latency"),
                ]
            }),
        ),
        (
            "metrics (names, a RED latency chart with anomalies)",
            "default",
            Box::new(|i| {
                vec![
                    "/api/v1/metrics/names?start=now-24h".into(),
                    red("weft.span.duration", i, "&quantiles=0.5,0.95,0.99"),
                ]
            }),
        ),
        (
            "service map (15 minutes)",
            "default",
            Box::new(|_| vec!["/api/v1/service-map?start=now-15m".into()]),
        ),
        (
            "service (requests, errors, latency, operations)",
            "default",
            Box::new(|i| {
                vec![
                    red("weft.span.requests", i, ""),
                    red("weft.span.errors", i, ""),
                    red("weft.span.duration", i, "&quantiles=0.5,0.95,0.99"),
                    format!("/api/v1/services/{}/operations?start=now-1h", service(i)),
                ]
            }),
        ),
        (
            "incidents (the list)",
            SHOP_TENANT,
            Box::new(|_| vec!["/api/v1/incidents".into()]),
        ),
    ];
    if let Some(id) = &first_incident {
        views.push((
            "incident (with its first timeline page, then 1000 more entries)",
            SHOP_TENANT,
            Box::new(move |_| {
                vec![
                    format!("/api/v1/incidents/{id}"),
                    format!("/api/v1/timeline?incident={id}&limit=1000"),
                ]
            }),
        ));
    }
    println!("\n## Web UI views: the API calls of each first render, one after the other\n");
    println!("| view | calls | p50 ms | p99 ms | max ms | failed |");
    println!("|---|---|---|---|---|---|");
    for (name, tenant, urls) in &views {
        if ids.is_empty() {
            break;
        }
        let mut us = Vec::with_capacity(n);
        let mut failed = 0;
        let mut calls = 0;
        for i in 0..n {
            let list = urls(i);
            calls = list.len();
            let t0 = Instant::now();
            for path in list {
                let ok = http
                    .get(format!("{base}{path}"))
                    .header(TENANT_HEADER, *tenant)
                    .send()
                    .and_then(|r| r.error_for_status())
                    .and_then(|r| r.bytes())
                    .is_ok();
                failed += usize::from(!ok);
            }
            us.push(t0.elapsed().as_micros() as u64);
        }
        us.sort_unstable();
        println!(
            "| {name} | {calls} | {} | {} | {} | {failed} |",
            ms(percentile(&us, 0.5)),
            ms(percentile(&us, 0.99)),
            ms(us.last().copied()),
        );
    }
    if first_incident.is_none() {
        println!("\n(the detector opened no incident from the shop replay: the incident view is not timed)");
    }
}
