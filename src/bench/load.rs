//! The load generator: N concurrent connections send generated OTLP (protobuf over HTTP, or
//! gRPC) at a fixed rate or as fast as acknowledged, to any OTLP endpoint, and measure what
//! was acknowledged, how fast, and (against weft) how soon it became searchable.

use super::compat::{self, Protocol};
use super::gen::Generator;
use crate::model::Signal;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use parking_lot::Mutex;
use prost::Message;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Base URL of the OTLP/HTTP endpoint, e.g. `http://127.0.0.1:4318`.
    pub http: String,
    /// Send over OTLP/gRPC to this URL instead of HTTP.
    pub grpc: Option<String>,
    pub traces_path: String,
    pub logs_path: String,
    pub metrics_path: String,
    pub signal: Signal,
    pub connections: usize,
    pub duration: Duration,
    /// Stop once this many records were acknowledged.
    pub max_records: Option<u64>,
    /// Records per second over all connections; 0 sends as fast as acknowledgements come.
    pub rate: u64,
    /// Records per request.
    pub batch: usize,
    /// Poll weft's trace API after acknowledgements to measure freshness.
    pub probe_freshness: bool,
    pub tenant: Option<String>,
    pub seed: u64,
    /// OTLP, or the same records as remote write (metrics: counters only) or Loki push.
    pub protocol: Protocol,
    /// Metrics as counter points only, as remote write sends them: the OTLP baseline of a
    /// remote-write run.
    pub counters_only: bool,
}

impl LoadOptions {
    pub fn new(http: &str, signal: Signal) -> Self {
        Self {
            http: http.trim_end_matches('/').to_string(),
            grpc: None,
            traces_path: "/v1/traces".into(),
            logs_path: "/v1/logs".into(),
            metrics_path: "/v1/metrics".into(),
            signal,
            connections: 8,
            duration: Duration::from_secs(20),
            max_records: None,
            rate: 0,
            batch: default_batch(signal),
            probe_freshness: false,
            tenant: None,
            seed: 42,
            protocol: Protocol::Otlp,
            counters_only: false,
        }
    }
}

pub fn default_batch(signal: Signal) -> usize {
    match signal {
        Signal::Spans => 500,
        Signal::Logs => 1000,
        Signal::Metrics => 500,
    }
}

#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub records: u64,
    pub bytes: u64,
    pub requests: u64,
    pub failures: u64,
    pub elapsed: Duration,
    /// Acknowledgement latencies in microseconds, sorted.
    pub ack_us: Vec<u64>,
    /// Acknowledgement to searchable, in milliseconds, sorted.
    pub freshness_ms: Vec<u64>,
    /// Trace IDs that were acknowledged (a sample), for queries afterwards.
    pub trace_ids: Vec<String>,
}

pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    Some(sorted[i])
}

impl LoadReport {
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

const MAX_SAMPLED_IDS: usize = 20_000;
const PROBE_EVERY: Duration = Duration::from_millis(500);

struct GrpcClients {
    traces: TraceServiceClient<tonic::transport::Channel>,
    logs: LogsServiceClient<tonic::transport::Channel>,
    metrics: MetricsServiceClient<tonic::transport::Channel>,
}

enum Client {
    Http(reqwest::Client),
    Grpc(Box<GrpcClients>),
}

struct Shared {
    report: Mutex<LoadReport>,
    acked: std::sync::atomic::AtomicU64,
}

fn grpc_request<T>(message: T, tenant: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if let Some(t) = tenant.and_then(|t| t.parse().ok()) {
        r.metadata_mut().insert("x-scope-orgid", t);
    }
    r
}

/// Sends one request; returns whether it was acknowledged and its size on the wire.
async fn send(client: &mut Client, opts: &LoadOptions, body: Request) -> (bool, usize) {
    match client {
        Client::Http(http) => {
            let snappy = |b: Vec<u8>| {
                snap::raw::Encoder::new()
                    .compress_vec(&b)
                    .unwrap_or_default()
            };
            let (path, bytes, encoding) = match (&body, opts.protocol) {
                (Request::Spans(r), _) => (opts.traces_path.as_str(), r.encode_to_vec(), None),
                (Request::Logs(r), Protocol::LokiPush) => (
                    "/loki/api/v1/push",
                    snappy(compat::loki_push(r).encode_to_vec()),
                    None,
                ),
                (Request::Logs(r), _) => (opts.logs_path.as_str(), r.encode_to_vec(), None),
                (Request::Metrics(r), Protocol::RemoteWrite) => (
                    "/api/v1/write",
                    snappy(compat::remote_write(r).encode_to_vec()),
                    Some("snappy"),
                ),
                (Request::Metrics(r), _) => (opts.metrics_path.as_str(), r.encode_to_vec(), None),
            };
            let len = bytes.len();
            let mut req = http
                .post(format!("{}{}", opts.http, path))
                .header("content-type", "application/x-protobuf")
                .body(bytes);
            if let Some(e) = encoding {
                req = req.header("content-encoding", e);
            }
            if let Some(t) = &opts.tenant {
                req = req.header("x-scope-orgid", t);
            }
            let ok = req
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            (ok, len)
        }
        Client::Grpc(clients) => {
            let GrpcClients {
                traces,
                logs,
                metrics,
            } = &mut **clients;
            let tenant = opts.tenant.as_deref();
            match body {
                Request::Spans(r) => {
                    let len = r.encoded_len();
                    (traces.export(grpc_request(r, tenant)).await.is_ok(), len)
                }
                Request::Logs(r) => {
                    let len = r.encoded_len();
                    (logs.export(grpc_request(r, tenant)).await.is_ok(), len)
                }
                Request::Metrics(r) => {
                    let len = r.encoded_len();
                    (metrics.export(grpc_request(r, tenant)).await.is_ok(), len)
                }
            }
        }
    }
}

enum Request {
    Spans(opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest),
    Logs(opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest),
    Metrics(opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest),
}

/// Polls weft's trace API until the trace shows up; returns milliseconds since `acked`.
async fn probe(
    http: reqwest::Client,
    opts: Arc<LoadOptions>,
    trace_id: String,
    acked: Instant,
) -> Option<u64> {
    let url = format!("{}/api/v1/traces/{trace_id}", opts.http);
    while acked.elapsed() < Duration::from_secs(60) {
        let mut req = http.get(&url);
        if let Some(t) = &opts.tenant {
            req = req.header("x-scope-orgid", t);
        }
        if req.send().await.is_ok_and(|r| r.status().is_success()) {
            return Some(acked.elapsed().as_millis() as u64);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

async fn connection(
    index: usize,
    opts: Arc<LoadOptions>,
    shared: Arc<Shared>,
    started: Instant,
) -> Result<(), String> {
    use std::sync::atomic::Ordering;
    let mut client = match &opts.grpc {
        None => Client::Http(
            reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| e.to_string())?,
        ),
        Some(url) => {
            let channel = tonic::transport::Endpoint::from_shared(url.clone())
                .map_err(|e| e.to_string())?
                .connect()
                .await
                .map_err(|e| format!("cannot connect to {url}: {e}"))?;
            Client::Grpc(Box::new(GrpcClients {
                traces: TraceServiceClient::new(channel.clone()),
                logs: LogsServiceClient::new(channel.clone()),
                metrics: MetricsServiceClient::new(channel),
            }))
        }
    };
    let prober = reqwest::Client::new();
    let mut gen = Generator::new(opts.seed.wrapping_add(index as u64));
    let per_conn_rate = opts.rate as f64 / opts.connections as f64;
    let mut sent_records = 0u64;
    let mut last_probe = Instant::now();
    let mut probes = Vec::new();
    let mut local = LoadReport::default();
    loop {
        if started.elapsed() >= opts.duration {
            break;
        }
        if opts
            .max_records
            .is_some_and(|m| shared.acked.load(Ordering::Relaxed) >= m)
        {
            break;
        }
        if per_conn_rate > 0.0 {
            let due = started + Duration::from_secs_f64(sent_records as f64 / per_conn_rate);
            tokio::time::sleep_until(due.into()).await;
            if started.elapsed() >= opts.duration {
                break;
            }
        }
        let now_ns = crate::now_ns();
        let (request, records, trace_id) = match opts.signal {
            Signal::Spans => {
                let (r, n, id) = gen.spans(opts.batch, now_ns);
                (Request::Spans(r), n as u64, Some(id))
            }
            Signal::Logs => {
                let (r, id) = gen.logs(opts.batch, now_ns);
                (Request::Logs(r), opts.batch as u64, Some(id))
            }
            Signal::Metrics => {
                let counters = opts.counters_only || opts.protocol == Protocol::RemoteWrite;
                let r = if counters {
                    gen.counters(opts.batch, now_ns)
                } else {
                    gen.metrics(opts.batch, now_ns)
                };
                (Request::Metrics(r), opts.batch as u64, None)
            }
        };
        sent_records += records;
        let t0 = Instant::now();
        let (ok, bytes) = send(&mut client, &opts, request).await;
        local.requests += 1;
        if !ok {
            local.failures += 1;
            continue;
        }
        local.ack_us.push(t0.elapsed().as_micros() as u64);
        local.records += records;
        local.bytes += bytes as u64;
        shared.acked.fetch_add(records, Ordering::Relaxed);
        if let Some(id) = trace_id.map(hex::encode) {
            if index == 0 && opts.probe_freshness && last_probe.elapsed() >= PROBE_EVERY {
                last_probe = Instant::now();
                probes.push(tokio::spawn(probe(
                    prober.clone(),
                    opts.clone(),
                    id.clone(),
                    Instant::now(),
                )));
            }
            if local.trace_ids.len() < MAX_SAMPLED_IDS / opts.connections.max(1) {
                local.trace_ids.push(id);
            }
        }
    }
    // Throughput counts the sending, not the wait for the last freshness probes.
    let finished = started.elapsed();
    for p in probes {
        if let Ok(Some(ms)) = p.await {
            local.freshness_ms.push(ms);
        }
    }
    let mut report = shared.report.lock();
    report.records += local.records;
    report.bytes += local.bytes;
    report.requests += local.requests;
    report.failures += local.failures;
    report.ack_us.extend(local.ack_us);
    report.freshness_ms.extend(local.freshness_ms);
    report.trace_ids.extend(local.trace_ids);
    report.elapsed = report.elapsed.max(finished);
    Ok(())
}

/// Runs the load and reports what was acknowledged.
pub async fn run(opts: LoadOptions) -> Result<LoadReport, String> {
    let opts = Arc::new(opts);
    let shared = Arc::new(Shared {
        report: Mutex::new(LoadReport::default()),
        acked: Default::default(),
    });
    let started = Instant::now();
    let tasks: Vec<_> = (0..opts.connections)
        .map(|i| tokio::spawn(connection(i, opts.clone(), shared.clone(), started)))
        .collect();
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let mut report = std::mem::take(&mut *shared.report.lock());
    report.ack_us.sort_unstable();
    report.freshness_ms.sort_unstable();
    Ok(report)
}
