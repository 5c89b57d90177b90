//! weft's own observability: log setup and every Prometheus metric of weft itself. Label values
//! are always from small fixed sets (signal, reason, route pattern): never a trace ID or a
//! tenant-controlled string.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Telemetry {
    registry: Registry,
    pub records_accepted: IntCounterVec,
    pub records_rejected: IntCounterVec,
    pub requests_rejected: IntCounterVec,
    pub log_bodies_truncated: IntCounter,
    pub red_overflow_spans: IntCounter,
    pub http_request_seconds: HistogramVec,
    pub grpc_request_seconds: HistogramVec,
    pub wal_bytes: IntCounter,
    pub wal_fsync_seconds: Histogram,
    pub wal_corruptions: IntCounter,
    pub wal_replayed_batches: IntCounter,
    pub index_commit_seconds: HistogramVec,
    pub index_documents: IntGaugeVec,
    pub records_undecodable: IntCounterVec,
    pub index_commit_failures: IntCounter,
    pub index_checkpoint_lag: IntGauge,
    pub partitions_damaged: IntCounter,
    pub sampling_decisions: IntCounterVec,
    pub sampling_pruned: IntCounter,
    pub sampling_rescued: IntCounter,
    pub sampling_pending: IntGauge,
    /// Adaptive probabilities over every tenant and operation: `stat` is min, max or default
    /// (the lowest default of any tenant); per operation they are in the API.
    pub sampling_probability: prometheus::GaugeVec,
    pub retention_partitions_dropped: IntCounterVec,
    pub retention_bytes_dropped: IntCounterVec,
    pub retention_tenant_deletions: IntCounterVec,
    pub retention_deferred: IntCounter,
    pub data_dir_bytes: IntGauge,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Telemetry {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram_vec = |name: &str, help: &str, labels: &[&str]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )
            .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let wal_fsync_seconds = Histogram::with_opts(
            HistogramOpts::new("weft_wal_fsync_seconds", "Time spent in WAL fsync")
                .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        registry
            .register(Box::new(wal_fsync_seconds.clone()))
            .expect("unique metric");
        let index_documents = IntGaugeVec::new(
            Opts::new("weft_index_documents", "Searchable documents per index"),
            &["signal"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(index_documents.clone()))
            .expect("unique metric");
        Self {
            records_accepted: counter_vec(
                "weft_records_accepted_total",
                "Records acknowledged durable, per signal",
                &["signal"],
            ),
            records_rejected: counter_vec(
                "weft_records_rejected_total",
                "Records refused, per signal and reason",
                &["signal", "reason"],
            ),
            requests_rejected: counter_vec(
                "weft_requests_rejected_total",
                "Requests refused before their records could be read, per signal and reason",
                &["signal", "reason"],
            ),
            log_bodies_truncated: counter(
                "weft_log_bodies_truncated_total",
                "Log bodies cut at limits.max_log_body_bytes",
            ),
            red_overflow_spans: counter(
                "weft_red_overflow_spans_total",
                "Spans counted under RED operation _other_ because of red.max_series",
            ),
            http_request_seconds: histogram_vec(
                "weft_http_request_duration_seconds",
                "HTTP request latency per route pattern and status class",
                &["route", "status"],
            ),
            grpc_request_seconds: histogram_vec(
                "weft_grpc_request_duration_seconds",
                "gRPC export latency per service",
                &["service", "code"],
            ),
            wal_bytes: counter("weft_wal_bytes_total", "Bytes appended to the WAL"),
            wal_fsync_seconds,
            wal_corruptions: counter(
                "weft_wal_corruptions_total",
                "Damaged WAL regions found and cut off during replay",
            ),
            wal_replayed_batches: counter(
                "weft_wal_replayed_batches_total",
                "WAL batches re-indexed at start-up",
            ),
            index_commit_seconds: histogram_vec(
                "weft_index_commit_duration_seconds",
                "Index commit latency per signal",
                &["signal"],
            ),
            index_documents,
            records_undecodable: counter_vec(
                "weft_records_undecodable_total",
                "Stored records that did not decode and were left out, per store (wal, index)",
                &["store"],
            ),
            index_commit_failures: counter(
                "weft_index_commit_failures_total",
                "Index commits that failed (the WAL keeps their records; they are retried)",
            ),
            index_checkpoint_lag: gauge(
                "weft_index_checkpoint_lag_entries",
                "WAL entries acknowledged but not yet covered by the index checkpoint",
            ),
            partitions_damaged: counter(
                "weft_index_partitions_damaged_total",
                "Index partitions set aside at start-up because they could not be opened",
            ),
            sampling_decisions: counter_vec(
                "weft_sampling_decisions_total",
                "Tail-sampling decisions recorded (a hindsight keep counts again), by decision",
                &["decision"],
            ),
            sampling_pruned: counter(
                "weft_sampling_pruned_traces_total",
                "Dropped traces whose spans were deleted past the full-fidelity horizon",
            ),
            sampling_rescued: counter(
                "weft_sampling_rescued_traces_total",
                "Dropped traces kept at their pruning: an exemplar, a WARN log or an incident named them",
            ),
            sampling_pending: gauge(
                "weft_sampling_pending_traces",
                "Traces waiting for their tail-sampling decision",
            ),
            sampling_probability: {
                let g = prometheus::GaugeVec::new(
                    Opts::new(
                        "weft_sampling_probability",
                        "Adaptive sampling probabilities now: min, max and default over operations",
                    ),
                    &["stat"],
                )
                .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("unique metric");
                g
            },
            retention_partitions_dropped: counter_vec(
                "weft_retention_partitions_dropped_total",
                "Index partitions deleted by retention, per signal and reason (age, size)",
                &["signal", "reason"],
            ),
            retention_bytes_dropped: counter_vec(
                "weft_retention_bytes_dropped_total",
                "Bytes of index partitions deleted by retention, per signal and reason",
                &["signal", "reason"],
            ),
            retention_tenant_deletions: counter_vec(
                "weft_retention_tenant_deletions_total",
                "Partitions from which one tenant's records were deleted (its shorter age)",
                &["signal"],
            ),
            retention_deferred: counter(
                "weft_retention_deferred_total",
                "Partitions past retention kept for now: records of theirs are not yet covered by the index checkpoint",
            ),
            data_dir_bytes: gauge(
                "weft_data_dir_bytes",
                "Bytes in the data directory (WAL and indexes), measured by each retention run",
            ),
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

/// Human-readable logs on stderr; `WEFT_LOG` (or `RUST_LOG`) picks the level, `info` by default.
pub fn init_logging(filter: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter.unwrap_or("info"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
