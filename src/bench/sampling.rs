//! `weft bench sampling`: the same traces, logs and exemplars sent to a server that keeps
//! everything and to one that tail-samples (a 10 % baseline plus the errors, slow and
//! exemplar-named traces, pruned past a one-hour horizon, which the data is already past);
//! prints the disk each ends with, the CPU each spent, and the share of interesting traces
//! the sampled one kept.

use super::suite::{dir_bytes, Served};
use crate::model::Signal;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, Exemplar, Histogram, HistogramDataPoint, Metric, ResourceMetrics,
    ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

const SPANS_PER_TRACE: u64 = 5;
const TRACES_PER_REQUEST: usize = 200;
const SERVICES: [&str; 3] = ["front", "cart", "db"];
const MS: u64 = 1_000_000;

/// The sampled server's settings: the baseline is the 10 % budget.
const SAMPLED_CONFIG: &str = r#"[sampling]
tail = true
decision_wait_secs = 1
full_fidelity_secs = 3600
prune_interval_secs = 1

[[sampling.policies]]
name = "named-by-exemplar"
type = "exemplar"

[[sampling.policies]]
name = "named-by-log"
type = "log"

[[sampling.policies]]
name = "errors"
type = "error"

[[sampling.policies]]
name = "slow"
type = "latency"
threshold_ms = 1000

[[sampling.policies]]
name = "baseline"
type = "probabilistic"
probability = 0.1
"#;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Error,
    Slow,
    Exemplar,
}

struct Workload {
    traces: Vec<([u8; 16], Kind)>,
    requests: Vec<(&'static str, Vec<u8>)>,
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", service)],
        ..Default::default()
    })
}

/// `n` traces of five spans over ten minutes starting two hours ago: 2 % fail, 1 % are slow,
/// 1 % are named by an exemplar of a latency histogram; one INFO log per trace.
fn workload(n: usize, seed: u64) -> Workload {
    let mut rng = StdRng::seed_from_u64(seed);
    let t0 = crate::now_ns() - 2 * 3600 * 1_000_000_000;
    let mut traces = Vec::with_capacity(n);
    let mut requests = Vec::new();
    let mut spans: Vec<(usize, Span)> = Vec::new();
    let mut logs = Vec::new();
    let mut exemplars = Vec::new();
    for i in 0..n {
        let trace_id: [u8; 16] = rng.random();
        let kind = match rng.random_range(0..100) {
            0 | 1 => Kind::Error,
            2 => Kind::Slow,
            3 => Kind::Exemplar,
            _ => Kind::Plain,
        };
        traces.push((trace_id, kind));
        let start = t0 + (i as u64 * 600_000 / n as u64) * MS;
        let root_ms = if kind == Kind::Slow {
            1500
        } else {
            rng.random_range(20..200)
        };
        for s in 0..SPANS_PER_TRACE {
            let mut span_id = [0u8; 8];
            span_id[..4].copy_from_slice(&(i as u32).to_be_bytes());
            span_id[7] = s as u8 + 1;
            let parent = (s > 0).then(|| {
                let mut p = span_id;
                p[7] = 1;
                p.to_vec()
            });
            let ms = if s == 0 { root_ms } else { root_ms / 2 };
            let failed = kind == Kind::Error && s == SPANS_PER_TRACE - 1;
            spans.push((
                s as usize % SERVICES.len(),
                Span {
                    trace_id: trace_id.to_vec(),
                    span_id: span_id.to_vec(),
                    parent_span_id: parent.unwrap_or_default(),
                    name: format!("op-{}", s),
                    kind: 2,
                    start_time_unix_nano: start + s * MS,
                    end_time_unix_nano: start + (s + ms) * MS,
                    attributes: vec![
                        kv("http.route", "/cart"),
                        kv("user.id", &format!("u{}", i % 500)),
                    ],
                    status: Some(Status {
                        code: if failed { 2 } else { 1 },
                        message: String::new(),
                    }),
                    flags: 0x101,
                    ..Default::default()
                },
            ));
        }
        logs.push(LogRecord {
            time_unix_nano: start + MS,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "handled cart request {i} for user u{}",
                    i % 500
                ))),
            }),
            trace_id: trace_id.to_vec(),
            ..Default::default()
        });
        if kind == Kind::Exemplar {
            exemplars.push(HistogramDataPoint {
                start_time_unix_nano: start,
                time_unix_nano: start + root_ms * MS,
                count: 1,
                sum: Some(root_ms as f64 / 1000.0),
                bucket_counts: vec![0, 1],
                explicit_bounds: vec![0.01],
                exemplars: vec![Exemplar {
                    time_unix_nano: start + root_ms * MS,
                    value: Some(exemplar::Value::AsDouble(root_ms as f64 / 1000.0)),
                    trace_id: trace_id.to_vec(),
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        if (i + 1) % TRACES_PER_REQUEST == 0 || i + 1 == n {
            let resource_spans = SERVICES
                .iter()
                .enumerate()
                .map(|(si, service)| ResourceSpans {
                    resource: resource(service),
                    scope_spans: vec![ScopeSpans {
                        spans: spans
                            .iter()
                            .filter(|(s, _)| *s == si)
                            .map(|(_, s)| s.clone())
                            .collect(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect();
            spans.clear();
            requests.push((
                "/v1/traces",
                ExportTraceServiceRequest { resource_spans }.encode_to_vec(),
            ));
            let log_records = std::mem::take(&mut logs);
            requests.push((
                "/v1/logs",
                ExportLogsServiceRequest {
                    resource_logs: vec![ResourceLogs {
                        resource: resource("front"),
                        scope_logs: vec![ScopeLogs {
                            log_records,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                }
                .encode_to_vec(),
            ));
            let data_points = std::mem::take(&mut exemplars);
            if !data_points.is_empty() {
                requests.push((
                    "/v1/metrics",
                    ExportMetricsServiceRequest {
                        resource_metrics: vec![ResourceMetrics {
                            resource: resource("front"),
                            scope_metrics: vec![ScopeMetrics {
                                metrics: vec![Metric {
                                    name: "http.server.duration".into(),
                                    unit: "s".into(),
                                    data: Some(metric::Data::Histogram(Histogram {
                                        data_points,
                                        aggregation_temporality: 1,
                                    })),
                                    ..Default::default()
                                }],
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                    }
                    .encode_to_vec(),
                ));
            }
        }
    }
    Workload { traces, requests }
}

struct Outcome {
    cpu_secs: f64,
    index_bytes: u64,
    decisions_bytes: u64,
    /// Per kind: (interesting traces, kept).
    kept: Vec<(Kind, usize, usize)>,
    kept_total: usize,
}

fn run_one(w: &Workload, env: &[(&str, &str)], sampled: bool) -> Result<Outcome, String> {
    let served = Served::start_with("wal", env)?;
    let http = reqwest::blocking::Client::new();
    let cpu0 = served.cpu_secs();
    for (path, body) in &w.requests {
        let resp = http
            .post(format!("{}{path}", served.http))
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("{path}: {}", resp.status()));
        }
    }
    let spans = (w.traces.len() as u64) * SPANS_PER_TRACE;
    let started = Instant::now();
    if sampled {
        // Every trace decided, and every drop pruned or kept at its pruning.
        let decided = || {
            served.metric("weft_sampling_decisions_total{decision=\"kept\"}")
                + served.metric("weft_sampling_decisions_total{decision=\"dropped\"}")
        };
        while decided() < w.traces.len() as f64 && started.elapsed() < Duration::from_secs(600) {
            std::thread::sleep(Duration::from_millis(200));
        }
        let settled = || {
            served.metric("weft_sampling_pruned_traces_total")
                + served.metric("weft_sampling_rescued_traces_total")
                >= served.metric("weft_sampling_decisions_total{decision=\"dropped\"}")
        };
        while !settled() && started.elapsed() < Duration::from_secs(600) {
            std::thread::sleep(Duration::from_millis(200));
        }
    } else {
        served.wait_indexed(Signal::Spans, spans);
        served.wait_indexed(Signal::Logs, w.traces.len() as u64);
    }
    // Background merges settle; the figure is for committed, merged data.
    std::thread::sleep(Duration::from_secs(3));
    let cpu_secs = served.cpu_secs() - cpu0;
    let index_bytes = dir_bytes(&served.dir.join("index"));
    let decisions_bytes = dir_bytes(&served.dir.join("sampling"));
    let mut kept = Vec::new();
    let mut kept_total = 0;
    if sampled {
        for kind in [Kind::Error, Kind::Slow, Kind::Exemplar, Kind::Plain] {
            let of_kind: Vec<_> = w.traces.iter().filter(|(_, k)| *k == kind).collect();
            let mut n = 0;
            for (id, _) in &of_kind {
                let url = format!("{}/api/v1/sampling/traces/{}", served.http, hex::encode(id));
                let v: serde_json::Value = http
                    .get(url)
                    .send()
                    .and_then(|r| r.json())
                    .map_err(|e| e.to_string())?;
                n += (v["sampling"]["decision"] == "kept") as usize;
            }
            kept_total += n;
            kept.push((kind, of_kind.len(), n));
        }
    }
    Ok(Outcome {
        cpu_secs,
        index_bytes,
        decisions_bytes,
        kept,
        kept_total,
    })
}

pub fn run(traces: usize) -> Result<(), String> {
    let w = workload(traces, 42);
    let config =
        std::env::temp_dir().join(format!("weft-bench-sampling-{}.toml", std::process::id()));
    std::fs::write(&config, SAMPLED_CONFIG).map_err(|e| e.to_string())?;
    let config_path = config.to_string_lossy().to_string();
    let all = run_one(&w, &[("WEFT_INCIDENTS_ENABLED", "false")], false)?;
    let sampled = run_one(
        &w,
        &[
            ("WEFT_INCIDENTS_ENABLED", "false"),
            ("WEFT_CONFIG", config_path.as_str()),
        ],
        true,
    );
    let _ = std::fs::remove_file(&config);
    let sampled = sampled?;
    let mb = |b: u64| b as f64 / 1_048_576.0;
    println!(
        "## Sampling: {traces} traces ({} spans, {traces} logs), 10 % baseline + errors, slow, exemplar-named\n",
        traces as u64 * SPANS_PER_TRACE
    );
    println!("| | keep everything | sampled | ratio |\n|---|---|---|---|");
    println!(
        "| index on disk (MiB) | {:.1} | {:.1} (+{:.2} decisions) | {:.2} |",
        mb(all.index_bytes),
        mb(sampled.index_bytes),
        mb(sampled.decisions_bytes),
        (sampled.index_bytes + sampled.decisions_bytes) as f64 / all.index_bytes.max(1) as f64
    );
    println!(
        "| server CPU (s), ingest to settled | {:.1} | {:.1} | {:.2} |",
        all.cpu_secs,
        sampled.cpu_secs,
        sampled.cpu_secs / all.cpu_secs.max(1e-9)
    );
    println!(
        "| traces kept | {traces} | {} | {:.3} |\n",
        sampled.kept_total,
        sampled.kept_total as f64 / traces as f64
    );
    println!("| interesting | traces | kept | share |\n|---|---|---|---|");
    for (kind, n, kept) in &sampled.kept {
        let name = match kind {
            Kind::Error => "errors",
            Kind::Slow => "slow (> 1 s)",
            Kind::Exemplar => "exemplar-named",
            Kind::Plain => "plain (baseline, RED exemplars)",
        };
        println!(
            "| {name} | {n} | {kept} | {:.1} % |",
            100.0 * *kept as f64 / (*n).max(1) as f64
        );
    }
    Ok(())
}
