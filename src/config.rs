//! Typed settings. Precedence: built-in defaults < the TOML file < `WEFT_*` environment
//! variables. The environment is passed in as a map so tests never touch the process
//! environment. Every scalar setting has a variable: a top-level key `k` is `WEFT_K`, a key `k`
//! in section `s` is `WEFT_S_K` (so `WEFT_DATA_DIR`, `WEFT_HTTP_LISTEN`, `WEFT_GRPC_LISTEN`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Parse(String),
    #[error("invalid environment variable {name}={value:?}: expected {expected}")]
    Env {
        name: String,
        value: String,
        expected: &'static str,
    },
    #[error("invalid setting {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub grpc: GrpcConfig,
    pub wal: WalConfig,
    pub index: IndexConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub correlate: CorrelateConfig,
    pub red: RedSettings,
    pub anomalies: AnomalySettings,
    pub incidents: IncidentSettings,
    pub notify: NotifySettings,
    pub extract: ExtractConfig,
    pub compat: CompatConfig,
    pub sampling: SamplingSettings,
    pub retention: RetentionConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            http: HttpConfig::default(),
            grpc: GrpcConfig::default(),
            wal: WalConfig::default(),
            index: IndexConfig::default(),
            limits: LimitsConfig::default(),
            auth: AuthConfig::default(),
            correlate: CorrelateConfig::default(),
            red: RedSettings::default(),
            anomalies: AnomalySettings::default(),
            incidents: IncidentSettings::default(),
            notify: NotifySettings::default(),
            extract: ExtractConfig::default(),
            compat: CompatConfig::default(),
            sampling: SamplingSettings::default(),
            retention: RetentionConfig::default(),
        }
    }
}

/// Which API answers `GET /api/traces/{id}` at the root, where Tempo's and Jaeger's collide
/// (each is also under its own prefix, `/tempo` and `/jaeger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootTraces {
    #[default]
    Tempo,
    Jaeger,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompatConfig {
    pub root_traces: RootTraces,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: String,
    /// Empty: queries and UI share `listen`.
    pub query_listen: String,
    pub max_body_bytes: usize,
    pub workers: usize,
    pub shutdown_grace_secs: u64,
    pub body_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:4318".into(),
            query_listen: String::new(),
            max_body_bytes: 16 * 1024 * 1024,
            workers: 0,
            shutdown_grace_secs: 10,
            body_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    pub listen: String,
    pub max_message_bytes: usize,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:4317".into(),
            max_message_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// fsync before acknowledging; concurrent requests share one fsync (group commit).
    Always,
    /// acknowledge after write(2); fsync every `fsync_interval_ms`.
    Interval,
    /// leave flushing to the operating system.
    Never,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalConfig {
    pub fsync: FsyncPolicy,
    pub fsync_interval_ms: u64,
    pub segment_bytes: u64,
    pub queue_requests: usize,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::Always,
            fsync_interval_ms: 200,
            segment_bytes: 128 * 1024 * 1024,
            queue_requests: 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    pub commit_interval_ms: u64,
    pub partition_secs: u64,
    pub writer_memory_mb: usize,
    pub writer_threads: usize,
    pub idle_writer_secs: u64,
    pub queue_bytes: usize,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            commit_interval_ms: 1000,
            partition_secs: 3600,
            writer_memory_mb: 128,
            writer_threads: 1,
            idle_writer_secs: 300,
            queue_bytes: 16 * 1024 * 1024,
        }
    }
}

/// How long each signal is kept, as durations in the query grammar (`7d`, `12h`); `0` keeps
/// forever. Applied by `index::retention`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    pub spans: String,
    pub logs: String,
    pub metrics: String,
    /// Largest size of the data directory (WAL and indexes) in bytes; 0 is unlimited.
    pub max_bytes: u64,
    pub interval_secs: u64,
    /// Per-tenant maximum ages; a signal not named keeps the default above.
    pub tenants: BTreeMap<String, TenantRetention>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            spans: "0".into(),
            logs: "0".into(),
            metrics: "0".into(),
            max_bytes: 0,
            interval_secs: 60,
            tenants: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantRetention {
    pub spans: Option<String>,
    pub logs: Option<String>,
    pub metrics: Option<String>,
}

/// What to do with a log body longer than `limits.max_log_body_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverLimit {
    /// Keep the record with its body cut at the limit (on a character boundary).
    Truncate,
    /// Refuse the record, as for other limits.
    Reject,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_inflight_bytes: usize,
    pub max_request_memory_bytes: usize,
    pub max_resource_bytes: usize,
    pub max_record_age_secs: u64,
    pub max_attributes: usize,
    pub max_attribute_value_bytes: usize,
    pub max_log_body_bytes: usize,
    pub log_body_over_limit: OverLimit,
    pub tenant_records_per_sec: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_inflight_bytes: 256 * 1024 * 1024,
            max_request_memory_bytes: 128 * 1024 * 1024,
            max_resource_bytes: 32 * 1024,
            max_record_age_secs: 0,
            max_attributes: 128,
            max_attribute_value_bytes: 16 * 1024,
            max_log_body_bytes: 64 * 1024,
            log_body_over_limit: OverLimit::Truncate,
            tenant_records_per_sec: 0,
        }
    }
}

/// A bearer token, stored only as its SHA-256, and the tenant it writes and reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub tenant: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub enabled: bool,
    pub tokens: Vec<TokenConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorrelateConfig {
    pub inference_margin_ms: u64,
    pub max_inferred_logs: usize,
}

impl Default for CorrelateConfig {
    fn default() -> Self {
        Self {
            inference_margin_ms: 500,
            max_inferred_logs: 200,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedSettings {
    pub enabled: bool,
    pub bucket_secs: u64,
    pub max_series: usize,
}

impl Default for RedSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            bucket_secs: 5,
            max_series: 2000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalySettings {
    pub threshold: f64,
    pub baseline_points: usize,
    pub min_baseline_points: usize,
    pub level_shift_points: usize,
    pub min_relative_change: f64,
}

impl Default for AnomalySettings {
    fn default() -> Self {
        Self {
            threshold: 5.0,
            baseline_points: 30,
            min_baseline_points: 6,
            level_shift_points: 6,
            min_relative_change: 0.2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentSettings {
    pub enabled: bool,
    pub interval_ms: u64,
    pub step_secs: u64,
    pub lookback_secs: u64,
    pub settle_secs: u64,
    pub group_gap_secs: u64,
    pub close_after_secs: u64,
    pub min_errors_per_sec: f64,
    pub min_latency_change_ms: f64,
    pub min_anomaly_steps: u64,
    pub max_series: usize,
    pub max_points: usize,
    /// How late a record may arrive and still count: each look reads this much again.
    pub max_lateness_secs: u64,
}

impl Default for IncidentSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 2000,
            step_secs: 5,
            lookback_secs: 600,
            settle_secs: 10,
            group_gap_secs: 120,
            close_after_secs: 60,
            min_errors_per_sec: 0.5,
            min_latency_change_ms: 20.0,
            min_anomaly_steps: 2,
            max_series: 200,
            max_points: 200_000,
            max_lateness_secs: 120,
        }
    }
}

/// Where incidents are sent (`notify::Notifier`); nothing is sent while both URLs are empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySettings {
    pub webhook_url: String,
    pub webhook_secret: String,
    pub alertmanager_url: String,
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub timeout_ms: u64,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            webhook_url: String::new(),
            webhook_secret: String::new(),
            alertmanager_url: String::new(),
            max_attempts: 6,
            initial_backoff_ms: 500,
            timeout_ms: 5000,
        }
    }
}

/// `[sampling]`: opt-in; the defaults keep everything. How each part works is in
/// `src/sampling/`; the order policies apply in is in the README.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingSettings {
    pub store_unsampled: bool,
    pub tail: bool,
    pub decision_wait_secs: u64,
    pub full_fidelity_secs: u64,
    pub prune_interval_secs: u64,
    pub logs: LogRule,
    pub max_pending_traces: usize,
    pub budget_spans_per_sec: f64,
    pub adaptive_interval_secs: u64,
    pub min_traces_per_interval: u64,
    pub policies: Vec<PolicySettings>,
}

impl Default for SamplingSettings {
    fn default() -> Self {
        let policy = |name: &str, kind| PolicySettings {
            name: name.into(),
            kind,
            ..PolicySettings::default()
        };
        Self {
            store_unsampled: true,
            tail: false,
            decision_wait_secs: 10,
            full_fidelity_secs: 3600,
            prune_interval_secs: 60,
            logs: LogRule::KeptTracesAndWarn,
            max_pending_traces: 100_000,
            budget_spans_per_sec: 0.0,
            adaptive_interval_secs: 60,
            min_traces_per_interval: 1,
            policies: vec![
                policy("opened-by-user", PolicyKind::User),
                policy("named-by-exemplar", PolicyKind::Exemplar),
                policy("named-by-log", PolicyKind::Log),
                policy("named-by-incident", PolicyKind::Incident),
                policy("errors", PolicyKind::Error),
                PolicySettings {
                    threshold_ms: 1000,
                    ..policy("slow", PolicyKind::Latency)
                },
                PolicySettings {
                    probability: 0.1,
                    ..policy("baseline", PolicyKind::Probabilistic)
                },
            ],
        }
    }
}

/// Which logs stay when their trace's spans are pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogRule {
    /// Every log stays.
    All,
    /// Logs of kept traces, logs without a trace, and every log at WARN or above.
    KeptTracesAndWarn,
    /// Logs of kept traces and logs without a trace.
    KeptTraces,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// A trace a user opened in the trace view or bookmarked.
    User,
    /// A trace an exemplar of a metric point names.
    Exemplar,
    /// A trace a log at WARN or above names.
    Log,
    /// A trace an open incident names.
    Incident,
    /// A span with status ERROR.
    Error,
    /// A span of `service`/`operation` (empty: any) longer than `threshold_ms`.
    Latency,
    /// A span attribute `key` compared (`op`) with `value`.
    Attribute,
    /// At least `min_spans` spans.
    SpanCount,
    /// Keeps with `probability`, by trace ID (the same trace always gets the same answer).
    Probabilistic,
}

/// One tail-sampling policy. A policy that matches keeps the trace, unless its
/// `max_traces_per_sec` (0: unlimited) is used up, which drops it in that policy's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySettings {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: PolicyKind,
    pub threshold_ms: u64,
    pub service: String,
    pub operation: String,
    pub key: String,
    pub op: AttrOp,
    pub value: String,
    pub min_spans: u64,
    pub probability: f64,
    pub max_traces_per_sec: f64,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: PolicyKind::Error,
            threshold_ms: 0,
            service: String::new(),
            operation: String::new(),
            key: String::new(),
            op: AttrOp::Eq,
            value: String::new(),
            min_spans: 0,
            probability: 1.0,
            max_traces_per_sec: 0.0,
        }
    }
}

/// How an attribute policy compares: `eq`/`ne` as text, `gt`/`lt` as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttrOp {
    Eq,
    Ne,
    Gt,
    Lt,
}

impl SamplingSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: String| Err(ConfigError::Invalid { field, reason });
        for (field, v) in [
            ("sampling.decision_wait_secs", self.decision_wait_secs),
            ("sampling.prune_interval_secs", self.prune_interval_secs),
            (
                "sampling.adaptive_interval_secs",
                self.adaptive_interval_secs,
            ),
            (
                "sampling.max_pending_traces",
                self.max_pending_traces as u64,
            ),
        ] {
            if v == 0 {
                return invalid(field, "must be greater than 0".into());
            }
        }
        if !(self.budget_spans_per_sec >= 0.0 && self.budget_spans_per_sec.is_finite()) {
            return invalid(
                "sampling.budget_spans_per_sec",
                format!(
                    "must be 0 (no budget) or more, got {}",
                    self.budget_spans_per_sec
                ),
            );
        }
        // Each policy is one bit of a trace's summary.
        if self.policies.len() > 64 {
            return invalid(
                "sampling.policies",
                format!("at most 64 policies, got {}", self.policies.len()),
            );
        }
        let mut names = std::collections::HashSet::new();
        for p in &self.policies {
            if p.name.is_empty() || p.name.len() > 64 || !names.insert(p.name.as_str()) {
                return invalid(
                    "sampling.policies",
                    format!(
                        "policy names must be unique, 1 to 64 characters: {:?}",
                        p.name
                    ),
                );
            }
            let bad =
                |what: &str| invalid("sampling.policies", format!("policy {:?}: {what}", p.name));
            if !(0.0..=1.0).contains(&p.probability) {
                return bad("probability must be within [0, 1]");
            }
            if !(p.max_traces_per_sec >= 0.0 && p.max_traces_per_sec.is_finite()) {
                return bad("max_traces_per_sec must be 0 (unlimited) or more");
            }
            match p.kind {
                PolicyKind::Latency if p.threshold_ms == 0 => {
                    return bad("a latency policy needs threshold_ms > 0")
                }
                PolicyKind::Attribute if p.key.is_empty() => {
                    return bad("an attribute policy needs a key")
                }
                PolicyKind::Attribute
                    if matches!(p.op, AttrOp::Gt | AttrOp::Lt)
                        && p.value.trim().parse::<f64>().is_err() =>
                {
                    return bad("gt and lt compare numbers: value must be a number")
                }
                PolicyKind::SpanCount if p.min_spans == 0 => {
                    return bad("a span_count policy needs min_spans > 0")
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// How the captured groups of a pattern become a trace ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdFormat {
    /// Group `trace` (followed by group `trace2`, if present) is hex, 16 or 32 digits.
    Hex,
    /// Group `trace` is an unsigned 64-bit decimal (Datadog).
    Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracePattern {
    pub name: String,
    pub regex: String,
    pub format: IdFormat,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtractConfig {
    /// Tried in order; the first that yields a valid ID wins.
    pub patterns: Vec<TracePattern>,
}

fn pattern(name: &str, regex: &str, format: IdFormat) -> TracePattern {
    TracePattern {
        name: name.into(),
        regex: regex.into(),
        format,
    }
}

impl Default for ExtractConfig {
    fn default() -> Self {
        use IdFormat::*;
        Self {
            patterns: vec![
                pattern(
                    "w3c-traceparent",
                    r"(?i)\b[0-9a-f]{2}-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-[0-9a-f]{2}\b",
                    Hex,
                ),
                pattern(
                    "jaeger-uber-trace-id",
                    r"(?i)uber-trace-id\W{0,3}(?P<trace>[0-9a-f]{1,32}):(?P<span>[0-9a-f]{1,16}):[0-9a-f]{1,16}:[0-9a-f]{1,2}",
                    Hex,
                ),
                pattern(
                    "aws-xray",
                    r"(?i)\bRoot=1-(?P<trace>[0-9a-f]{8})-(?P<trace2>[0-9a-f]{24})\b",
                    Hex,
                ),
                pattern(
                    "b3-single",
                    r"(?i)\bb3\W{1,3}(?P<trace>[0-9a-f]{32}|[0-9a-f]{16})-(?P<span>[0-9a-f]{16})\b",
                    Hex,
                ),
                pattern(
                    "b3-trace-id",
                    r"(?i)\bx-b3-traceid\W{1,3}(?P<trace>[0-9a-f]{32}|[0-9a-f]{16})\b",
                    Hex,
                ),
                pattern(
                    "datadog-trace-id",
                    r"(?i)\b(?:dd\.trace_id|x-datadog-trace-id)\W{1,3}(?P<trace>[0-9]{1,20})\b",
                    Decimal,
                ),
                pattern(
                    "trace-id-field",
                    r"(?i)\btrace[._-]?id\W{1,3}(?P<trace>[0-9a-f]{32}|[0-9a-f]{16})\b",
                    Hex,
                ),
            ],
        }
    }
}

impl Config {
    /// Defaults, then the file (if any), then the environment map; validated once.
    pub fn load(path: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut merged = toml::Value::try_from(Config::default())
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let file: toml::Value = toml::from_str(&text)
                .map_err(|e| ConfigError::Parse(format!("{}: {e}", path.display())))?;
            merge(&mut merged, file);
        }
        apply_env(&mut merged, env)?;
        let config: Config = merged
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every section, then the rules that span sections. Each error names its field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.http.validate()?;
        self.grpc.validate()?;
        self.wal.validate()?;
        self.index.validate()?;
        self.red.validate()?;
        self.anomalies.validate()?;
        self.incidents.validate()?;
        self.limits.validate()?;
        self.auth.validate()?;
        self.extract.validate()?;
        self.sampling.validate()?;
        self.retention.validate()?;
        self.notify.validate()?;
        // A full-size body costs several times its size decoded (ingest::cost): one must fit.
        let needed = 4 * self.http.max_body_bytes.max(self.grpc.max_message_bytes);
        if self.limits.max_request_memory_bytes < needed {
            return Err(invalid(
                "limits.max_request_memory_bytes",
                format!(
                    "must be at least 4 × the largest body (http.max_body_bytes, \
                     grpc.max_message_bytes): {needed}, got {}",
                    self.limits.max_request_memory_bytes
                ),
            ));
        }
        Ok(())
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn positive(field: &'static str, v: u64) -> Result<(), ConfigError> {
    match v {
        0 => Err(invalid(field, "must be greater than 0")),
        _ => Ok(()),
    }
}

fn address(field: &'static str, v: &str) -> Result<(), ConfigError> {
    v.parse::<SocketAddr>().map(|_| ()).map_err(|e| {
        invalid(
            field,
            format!("{v:?} is not an address like 127.0.0.1:4318 ({e})"),
        )
    })
}

impl HttpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        address("http.listen", &self.listen)?;
        if !self.query_listen.is_empty() {
            address("http.query_listen", &self.query_listen)?;
        }
        positive("http.max_body_bytes", self.max_body_bytes as u64)?;
        positive("http.body_timeout_secs", self.body_timeout_secs)
    }
}

impl GrpcConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        address("grpc.listen", &self.listen)?;
        positive("grpc.max_message_bytes", self.max_message_bytes as u64)
    }
}

impl WalConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        positive("wal.fsync_interval_ms", self.fsync_interval_ms)?;
        positive("wal.queue_requests", self.queue_requests as u64)?;
        if self.segment_bytes < 1024 * 1024 {
            let reason = format!("must be at least 1048576, got {}", self.segment_bytes);
            return Err(invalid("wal.segment_bytes", reason));
        }
        Ok(())
    }
}

impl IndexConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        positive("index.commit_interval_ms", self.commit_interval_ms)?;
        positive("index.partition_secs", self.partition_secs)?;
        positive("index.writer_threads", self.writer_threads as u64)?;
        positive("index.queue_bytes", self.queue_bytes as u64)?;
        // tantivy needs at least 15 MB per indexing thread.
        if self.writer_memory_mb < 15 * self.writer_threads {
            let reason = format!(
                "must be at least 15 per writer thread ({} threads), got {}",
                self.writer_threads, self.writer_memory_mb
            );
            return Err(invalid("index.writer_memory_mb", reason));
        }
        Ok(())
    }
}

impl RedSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        positive("red.bucket_secs", self.bucket_secs)?;
        positive("red.max_series", self.max_series as u64)
    }
}

impl AnomalySettings {
    fn validate(&self) -> Result<(), ConfigError> {
        positive("anomalies.baseline_points", self.baseline_points as u64)?;
        positive(
            "anomalies.min_baseline_points",
            self.min_baseline_points as u64,
        )?;
        positive(
            "anomalies.level_shift_points",
            self.level_shift_points as u64,
        )?;
        if self.threshold.is_nan() || self.threshold <= 0.0 {
            let reason = format!("must be greater than 0, got {}", self.threshold);
            return Err(invalid("anomalies.threshold", reason));
        }
        Ok(())
    }
}

impl IncidentSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        positive("incidents.interval_ms", self.interval_ms)?;
        positive("incidents.step_secs", self.step_secs)?;
        positive("incidents.max_series", self.max_series as u64)?;
        positive("incidents.max_points", self.max_points as u64)?;
        positive("incidents.min_anomaly_steps", self.min_anomaly_steps)?;
        if self.lookback_secs < 4 * self.step_secs {
            let reason = format!(
                "must cover at least 4 steps ({} s), got {}",
                4 * self.step_secs,
                self.lookback_secs
            );
            return Err(invalid("incidents.lookback_secs", reason));
        }
        Ok(())
    }
}

impl LimitsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        positive("limits.max_inflight_bytes", self.max_inflight_bytes as u64)?;
        positive("limits.max_attributes", self.max_attributes as u64)?;
        positive(
            "limits.max_attribute_value_bytes",
            self.max_attribute_value_bytes as u64,
        )?;
        positive("limits.max_log_body_bytes", self.max_log_body_bytes as u64)?;
        positive("limits.max_resource_bytes", self.max_resource_bytes as u64)?;
        if self.max_inflight_bytes < self.max_request_memory_bytes {
            let reason = format!(
                "must be at least limits.max_request_memory_bytes ({}) so one request fits, got {}",
                self.max_request_memory_bytes, self.max_inflight_bytes
            );
            return Err(invalid("limits.max_inflight_bytes", reason));
        }
        Ok(())
    }
}

impl AuthConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for t in &self.tokens {
            let ok = t.sha256.len() == 64 && t.sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                let reason = format!(
                    "token for tenant {:?}: sha256 must be 64 hex digits (see `weft token`)",
                    t.tenant
                );
                return Err(invalid("auth.tokens", reason));
            }
            crate::model::TenantId::new(&t.tenant)
                .map_err(|e| invalid("auth.tokens", e.to_string()))?;
        }
        if self.enabled && self.tokens.is_empty() {
            return Err(invalid(
                "auth.tokens",
                "auth is enabled but no token is configured",
            ));
        }
        Ok(())
    }
}

impl ExtractConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for p in &self.patterns {
            let re = regex::Regex::new(&p.regex)
                .map_err(|e| invalid("extract.patterns", format!("pattern {:?}: {e}", p.name)))?;
            if !re.capture_names().any(|n| n == Some("trace")) {
                let reason = format!("pattern {:?} has no capture group named `trace`", p.name);
                return Err(invalid("extract.patterns", reason));
            }
        }
        Ok(())
    }
}

impl NotifySettings {
    fn validate(&self) -> Result<(), ConfigError> {
        positive("notify.max_attempts", u64::from(self.max_attempts))?;
        positive("notify.timeout_ms", self.timeout_ms)?;
        for (field, url) in [
            ("notify.webhook_url", &self.webhook_url),
            ("notify.alertmanager_url", &self.alertmanager_url),
        ] {
            if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
                let reason = format!("{url:?} is not an http:// or https:// URL");
                return Err(invalid(field, reason));
            }
        }
        Ok(())
    }
}

impl RetentionConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let age = |field: &'static str, v: &str| match crate::model::time::parse_duration(v) {
            Some(_) => Ok(()),
            None => Err(invalid(
                field,
                format!("{v:?} is not a duration like 12h, 7d or 0 (keep forever)"),
            )),
        };
        age("retention.spans", &self.spans)?;
        age("retention.logs", &self.logs)?;
        age("retention.metrics", &self.metrics)?;
        positive("retention.interval_secs", self.interval_secs)?;
        for (tenant, t) in &self.tenants {
            crate::model::TenantId::new(tenant)
                .map_err(|e| invalid("retention.tenants", e.to_string()))?;
            for v in [&t.spans, &t.logs, &t.metrics].into_iter().flatten() {
                age("retention.tenants", v)?;
            }
        }
        Ok(())
    }
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_table() && v.is_table() => merge(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Overrides scalar settings from `WEFT_*` variables, parsed as the type the default has.
/// A `WEFT_*` variable that names no setting is ignored (WEFT_LOG, for one, is not a setting).
fn apply_env(merged: &mut toml::Value, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let toml::Value::Table(root) = merged else {
        return Ok(());
    };
    let mut slots: Vec<(String, &mut toml::Value)> = Vec::new();
    for (key, value) in root.iter_mut() {
        match value {
            toml::Value::Table(section) => {
                for (k, v) in section.iter_mut() {
                    slots.push((format!("WEFT_{key}_{k}").to_uppercase(), v));
                }
            }
            v => slots.push((format!("WEFT_{key}").to_uppercase(), v)),
        }
    }
    for (name, slot) in slots {
        let Some(raw) = env.get(&name) else { continue };
        let bad = |expected| ConfigError::Env {
            name: name.clone(),
            value: raw.clone(),
            expected,
        };
        *slot = match slot {
            toml::Value::String(_) => toml::Value::String(raw.clone()),
            toml::Value::Integer(_) => {
                toml::Value::Integer(raw.trim().parse().map_err(|_| bad("an integer"))?)
            }
            toml::Value::Float(_) => {
                toml::Value::Float(raw.trim().parse().map_err(|_| bad("a number"))?)
            }
            toml::Value::Boolean(_) => {
                toml::Value::Boolean(raw.trim().parse().map_err(|_| bad("true or false"))?)
            }
            _ => continue,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn shipped_file_lists_every_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/weft.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let file: Config = toml::from_str(&text).unwrap();
        assert_eq!(
            file,
            Config::default(),
            "config/weft.toml drifted from the defaults"
        );
        // Every key of the defaults is spelled out in the file, not left implicit.
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        let written: toml::Value = toml::from_str(&text).unwrap();
        for (section, v) in defaults.as_table().unwrap() {
            let w = written
                .get(section)
                .unwrap_or_else(|| panic!("{section} missing"));
            if let Some(t) = v.as_table() {
                for key in t.keys() {
                    assert!(
                        w.get(key).is_some(),
                        "{section}.{key} missing from the file"
                    );
                }
            }
        }
    }

    #[test]
    fn env_overrides_and_types() {
        let c = Config::load(
            None,
            &env(&[
                ("WEFT_DATA_DIR", "/tmp/x"),
                ("WEFT_HTTP_LISTEN", "127.0.0.1:0"),
                ("WEFT_GRPC_LISTEN", "127.0.0.1:0"),
                ("WEFT_INDEX_COMMIT_INTERVAL_MS", "250"),
                ("WEFT_WAL_FSYNC", "never"),
                ("WEFT_LOG", "debug"),
            ]),
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.http.listen, "127.0.0.1:0");
        assert_eq!(c.index.commit_interval_ms, 250);
        assert_eq!(c.wal.fsync, FsyncPolicy::Never);
        let err = Config::load(None, &env(&[("WEFT_INDEX_COMMIT_INTERVAL_MS", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("WEFT_INDEX_COMMIT_INTERVAL_MS"), "{err}");
    }

    #[test]
    fn unknown_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.toml");
        std::fs::write(&p, "[http]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap();
        let err = Config::load(Some(&p), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_port"), "{err}");
        std::fs::write(&p, "colour = 1\n").unwrap();
        let err = Config::load(Some(&p), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn invalid_values_are_rejected() {
        let err = Config::load(None, &env(&[("WEFT_HTTP_LISTEN", "nowhere")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("http.listen"), "{err}");
        let mut c = Config::default();
        c.extract.patterns[0].regex = "(?P<span>x)".into();
        assert!(c.validate().unwrap_err().to_string().contains("trace"));
    }
}
