//! The Loki query API over weft's logs, for Grafana's Loki data source:
//! `/loki/api/v1/query_range`, `/loki/api/v1/query` (metric queries), `/loki/api/v1/labels`,
//! `/loki/api/v1/label/{name}/values`, `/loki/api/v1/series`, with the LogQL subset of
//! `logql`. Loki's own paths already carry their prefix, so they are served as they are.
//!
//! # Labels of a log
//!
//! Its resource attributes and its own attributes (structured metadata), names made
//! Prometheus-safe as for metrics (`service.name` → `service_name`), `service_name` always,
//! `detected_level` from the severity (`trace` … `fatal`, `unknown`), and — when the log is
//! linked to a trace — `trace_id` and `span_id`. Stream selectors and label filters match any
//! of them; the `trace_id` label is what Grafana's derived field links to Tempo.
//!
//! # Bounds (each checked before the work it bounds)
//!
//! At most `MAX_ENTRIES_SCANNED` log records read per query (a log query stops as soon as its
//! `limit` is filled; a metric query must read its whole window, so a window holding more is
//! refused), `limit` at most `MAX_LIMIT`, at most `promql::MAX_STEPS` steps and
//! `promql::MAX_SERIES_STEPS` series × steps.

use super::logql::{self, AggOp, Grouping, LogQuery, MetricQuery, Query, RangeFn, Stage};
use super::prom_series::{format_value, label_name, PromLabels};
use super::promql::{self, MAX_SERIES_STEPS, MAX_STEPS};
use crate::api::params::Params;
use crate::api::AppState;
use crate::correlate::correlator::{CorrelateError, Correlator};
use crate::index::{Filter, IndexError, Pick};
use crate::model::{LogRecord, Record, Signal, TenantId};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Log records one query may read.
pub const MAX_ENTRIES_SCANNED: usize = 100_000;
/// The most entries one log query may return, as Loki's `max_entries_limit_per_query`.
pub const MAX_LIMIT: usize = 5_000;
/// Records read to list label names and values: the newest of the window.
const LABEL_SCAN_ENTRIES: usize = 5_000;
const DEFAULT_LIMIT: usize = 100;
const HOUR_NS: u64 = 3_600_000_000_000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/loki/api/v1")
            .route("/query_range", web::get().to(query_range))
            .route("/query_range", web::post().to(query_range))
            .route("/query", web::get().to(query))
            .route("/query", web::post().to(query))
            .route("/labels", web::get().to(labels))
            .route("/label/{name}/values", web::get().to(label_values))
            .route("/series", web::get().to(series))
            .route("/series", web::post().to(series)),
    );
}

#[derive(Debug)]
pub enum LokiError {
    Bad(String),
    Index(IndexError),
}

impl From<crate::api::params::ParamError> for LokiError {
    fn from(e: crate::api::params::ParamError) -> LokiError {
        LokiError::Bad(e.message)
    }
}

impl From<CorrelateError> for LokiError {
    fn from(e: CorrelateError) -> Self {
        match e {
            // The reads LogQL makes have no subject to miss.
            CorrelateError::NotFound(m) => LokiError::Bad(m),
            CorrelateError::Index(e) => e.into(),
        }
    }
}

impl From<IndexError> for LokiError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::Query(m) => LokiError::Bad(m),
            other => LokiError::Index(other),
        }
    }
}

fn bad<T>(m: impl Into<String>) -> Result<T, LokiError> {
    Err(LokiError::Bad(m.into()))
}

/// `["<unix ns>", "<line>"]`.
#[derive(Debug, Serialize, PartialEq)]
pub struct Entry(pub String, pub String);

#[derive(Debug, Serialize, PartialEq)]
pub struct Stream {
    pub stream: PromLabels,
    pub values: Vec<Entry>,
}

/// `[<unix seconds>, "<value>"]`.
#[derive(Debug, Serialize, PartialEq)]
pub struct Point(pub f64, pub String);

#[derive(Debug, Serialize, PartialEq)]
pub struct MatrixSeries {
    pub metric: PromLabels,
    pub values: Vec<Point>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct VectorSample {
    pub metric: PromLabels,
    pub value: Point,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub total_entries_returned: usize,
    pub total_lines_processed: usize,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Stats {
    pub summary: Summary,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "resultType", rename_all = "lowercase")]
pub enum QueryData {
    Streams {
        result: Vec<Stream>,
        stats: Stats,
    },
    Matrix {
        result: Vec<MatrixSeries>,
        stats: Stats,
    },
    Vector {
        result: Vec<VectorSample>,
        stats: Stats,
    },
}

#[derive(Serialize)]
struct Success<T: Serialize> {
    status: &'static str,
    data: T,
}

fn level_name(severity: i32) -> &'static str {
    match severity {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => "unknown",
    }
}

/// The labels of a log as documented above.
pub fn log_labels(l: &LogRecord) -> PromLabels {
    let mut out = PromLabels::new();
    for kv in l.resource.iter().chain(&l.attributes) {
        out.insert(label_name(&kv.key), kv.value.to_text());
    }
    out.insert("service_name".into(), l.service.clone());
    out.insert(
        "detected_level".into(),
        level_name(l.severity_number).into(),
    );
    if let Some(t) = l.trace_id {
        out.insert("trace_id".into(), t.to_hex());
    }
    if let Some(s) = l.span_id {
        out.insert("span_id".into(), s.to_hex());
    }
    out
}

fn flatten_json(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, v) in o {
                let key = if prefix.is_empty() {
                    label_name(k)
                } else {
                    format!("{prefix}_{}", label_name(k))
                };
                flatten_json(&key, v, out);
            }
        }
        serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        serde_json::Value::Null => out.push((prefix.to_string(), String::new())),
        serde_json::Value::Array(_) => {}
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// `key=value key2="quoted value"` pairs.
fn logfmt(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        rest = &rest[key_end..];
        let value = if let Some(after) = rest.strip_prefix('=') {
            if let Some(quoted) = after.strip_prefix('"') {
                let mut v = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                v.push(n);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => v.push(c),
                    }
                }
                rest = &quoted[end.min(quoted.len())..];
                v
            } else {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                rest = &after[end..];
                after[..end].to_string()
            }
        } else {
            String::new()
        };
        if !key.is_empty() {
            out.push((label_name(key), value));
        }
        rest = rest.trim_start();
    }
    out
}

/// Adds parsed labels; a name taken already gets `_extracted`, as in Loki.
fn add_parsed(labels: &mut PromLabels, parsed: Vec<(String, String)>) {
    for (k, v) in parsed {
        if labels.contains_key(&k) {
            labels.insert(format!("{k}_extracted"), v);
        } else {
            labels.insert(k, v);
        }
    }
}

/// A log through a query's selector and pipeline: its line and final labels, or `None`.
pub fn run_pipeline(q: &LogQuery, l: &LogRecord) -> Option<(String, PromLabels)> {
    let mut labels = log_labels(l);
    if !q
        .selector
        .iter()
        .all(|m| m.matches(labels.get(&m.name).map(String::as_str)))
    {
        return None;
    }
    let line = l.body.to_text();
    for stage in &q.stages {
        match stage {
            Stage::Line(f) => {
                if !f.matches(&line) {
                    return None;
                }
            }
            Stage::Json => match serde_json::from_str::<serde_json::Value>(&line) {
                Ok(v @ serde_json::Value::Object(_)) => {
                    let mut parsed = Vec::new();
                    flatten_json("", &v, &mut parsed);
                    add_parsed(&mut labels, parsed);
                }
                _ => {
                    labels.insert("__error__".into(), "JSONParserErr".into());
                }
            },
            Stage::Logfmt => add_parsed(&mut labels, logfmt(&line)),
            Stage::Drop(names) => {
                for n in names {
                    labels.remove(n);
                }
            }
            Stage::Labels(filters) => {
                let get = |k: &str| labels.get(k).cloned();
                if !filters.iter().all(|f| f.matches(&get)) {
                    return None;
                }
            }
        }
    }
    Some((line, labels))
}

/// What the index can narrow by before any log is read: a lone `service_name=`.
fn pushdown(q: &LogQuery, start_ns: u64, end_ns: u64) -> Filter {
    let services = q
        .selector
        .iter()
        .filter(|m| m.name == "service_name" && m.op == logql::MatchOp::Eq)
        .map(|m| m.value.clone())
        .take(1)
        .collect();
    Filter {
        services,
        start_ns,
        end_ns,
        ..Filter::default()
    }
}

/// Reads the window in slices from the end `pick` starts at, handing each log to `visit`
/// until it says stop; refuses past `MAX_ENTRIES_SCANNED` records. Returns how many it read.
fn scan(
    c: &Correlator,
    tenant: &TenantId,
    f: &Filter,
    pick: Pick,
    mut visit: impl FnMut(LogRecord) -> bool,
) -> Result<usize, LokiError> {
    let mut read = 0usize;
    let mut width: u64 = 1_000_000_000;
    let (mut from, mut to) = match pick {
        Pick::Oldest => (f.start_ns, f.start_ns.saturating_add(width - 1)),
        _ => (f.end_ns.saturating_sub(width - 1), f.end_ns),
    };
    loop {
        let slice = Filter {
            start_ns: from.max(f.start_ns),
            end_ns: to.min(f.end_ns),
            ..f.clone()
        };
        let left = MAX_ENTRIES_SCANNED - read;
        let records = c.select(Signal::Logs, tenant, &slice, pick, left + 1)?;
        if records.len() > left {
            return bad(format!(
                "the query would read more than {MAX_ENTRIES_SCANNED} log entries; narrow the \
                 time range or the stream selector"
            ));
        }
        read += records.len();
        for r in records {
            if let Record::Log(l) = r {
                if !visit(l) {
                    return Ok(read);
                }
            }
        }
        let done = match pick {
            Pick::Oldest => slice.end_ns >= f.end_ns,
            _ => slice.start_ns <= f.start_ns,
        };
        if done {
            return Ok(read);
        }
        width = width.saturating_mul(4);
        (from, to) = match pick {
            Pick::Oldest => (slice.end_ns + 1, slice.end_ns.saturating_add(width)),
            _ => (slice.start_ns.saturating_sub(width), slice.start_ns - 1),
        };
    }
}

/// Up to `limit` entries of a log query, newest or oldest first, grouped into streams.
pub fn log_streams(
    c: &Correlator,
    tenant: &TenantId,
    q: &LogQuery,
    (start_ns, end_ns): (u64, u64),
    limit: usize,
    forward: bool,
) -> Result<QueryData, LokiError> {
    let mut streams: BTreeMap<PromLabels, Vec<Entry>> = BTreeMap::new();
    let mut returned = 0;
    let pick = if forward { Pick::Oldest } else { Pick::Newest };
    let scanned = scan(c, tenant, &pushdown(q, start_ns, end_ns), pick, |l| {
        if let Some((line, labels)) = run_pipeline(q, &l) {
            streams
                .entry(labels)
                .or_default()
                .push(Entry(l.effective_time_ns().to_string(), line));
            returned += 1;
        }
        returned < limit
    })?;
    Ok(QueryData::Streams {
        result: streams
            .into_iter()
            .map(|(stream, values)| Stream { stream, values })
            .collect(),
        stats: Stats {
            summary: Summary {
                total_entries_returned: returned,
                total_lines_processed: scanned,
            },
        },
    })
}

/// Steps of a metric query, in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Steps {
    pub start_ns: u64,
    pub end_ns: u64,
    pub step_ns: u64,
}

impl Steps {
    fn count(&self) -> u64 {
        (self.end_ns - self.start_ns) / self.step_ns.max(1) + 1
    }

    fn times(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.count()).map(|i| self.start_ns + i * self.step_ns)
    }
}

fn group(labels: &PromLabels, grouping: Option<&Grouping>) -> PromLabels {
    match grouping {
        None => PromLabels::new(),
        Some(Grouping::By(keep)) => labels
            .iter()
            .filter(|(k, _)| keep.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(Grouping::Without(drop)) => labels
            .iter()
            .filter(|(k, _)| !drop.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// Series of a metric query: per label set, a value at each step that has one.
type MetricSeries = BTreeMap<PromLabels, Vec<(u64, f64)>>;

fn eval_metric(
    m: &MetricQuery,
    entries: &BTreeMap<PromLabels, Vec<(u64, u64)>>,
    steps: &Steps,
) -> MetricSeries {
    match m {
        MetricQuery::Range { func, range_ns, .. } => {
            let secs = *range_ns as f64 / 1e9;
            let mut out = MetricSeries::new();
            for (labels, times) in entries {
                let mut points = Vec::new();
                for t in steps.times() {
                    let from = times.partition_point(|(x, _)| *x <= t.saturating_sub(*range_ns));
                    let to = times.partition_point(|(x, _)| *x <= t);
                    if to <= from {
                        continue;
                    }
                    let window = &times[from..to];
                    let bytes = || window.iter().map(|(_, b)| *b as f64).sum::<f64>();
                    let v = match func {
                        RangeFn::CountOverTime => window.len() as f64,
                        RangeFn::Rate => window.len() as f64 / secs,
                        RangeFn::BytesOverTime => bytes(),
                        RangeFn::BytesRate => bytes() / secs,
                    };
                    points.push((t, v));
                }
                if !points.is_empty() {
                    out.insert(labels.clone(), points);
                }
            }
            out
        }
        MetricQuery::Aggregate {
            op,
            grouping,
            inner,
        } => {
            let op = match op {
                AggOp::Sum => "sum",
                AggOp::Avg => "avg",
                AggOp::Min => "min",
                AggOp::Max => "max",
                AggOp::Count => "count",
            };
            let mut grouped: BTreeMap<PromLabels, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
            for (labels, points) in eval_metric(inner, entries, steps) {
                let slot = grouped
                    .entry(group(&labels, grouping.as_ref()))
                    .or_default();
                for (t, v) in points {
                    slot.entry(t).or_default().push(v);
                }
            }
            grouped
                .into_iter()
                .map(|(l, by_t)| {
                    let points = by_t
                        .into_iter()
                        .map(|(t, xs)| (t, promql::reduce(op, &xs)))
                        .collect();
                    (l, points)
                })
                .collect()
        }
    }
}

/// A metric query's series at every step; the whole window is read, so it is refused when
/// it holds more than `MAX_ENTRIES_SCANNED` logs.
pub fn metric_series(
    c: &Correlator,
    tenant: &TenantId,
    m: &MetricQuery,
    steps: Steps,
) -> Result<(MetricSeries, usize), LokiError> {
    if steps.count() > MAX_STEPS as u64 {
        return bad(format!(
            "the query has {} steps, over the limit of {MAX_STEPS}; use a larger step",
            steps.count()
        ));
    }
    let (logs, range_ns) = m.range();
    let from = steps.start_ns.saturating_sub(range_ns);
    let mut entries: BTreeMap<PromLabels, Vec<(u64, u64)>> = BTreeMap::new();
    let scanned = scan(
        c,
        tenant,
        &pushdown(logs, from, steps.end_ns),
        Pick::Oldest,
        |l| {
            if let Some((line, labels)) = run_pipeline(logs, &l) {
                entries
                    .entry(labels)
                    .or_default()
                    .push((l.effective_time_ns(), line.len() as u64));
            }
            true
        },
    )?;
    let cost = entries.len().saturating_mul(steps.count() as usize);
    if cost > MAX_SERIES_STEPS {
        return bad(format!(
            "the query makes {} series over {} steps, over the limit of {MAX_SERIES_STEPS} \
             series × steps; aggregate with sum by (…), narrow the selector or use a larger step",
            entries.len(),
            steps.count()
        ));
    }
    for times in entries.values_mut() {
        times.sort_unstable();
    }
    Ok((eval_metric(m, &entries, &steps), scanned))
}

fn stats(returned: usize, scanned: usize) -> Stats {
    Stats {
        summary: Summary {
            total_entries_returned: returned,
            total_lines_processed: scanned,
        },
    }
}

fn point(t_ns: u64, v: f64) -> Point {
    Point(t_ns as f64 / 1e9, format_value(v))
}

fn text_error(status: actix_web::http::StatusCode, m: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(m + "\n")
}

fn loki_error(e: LokiError) -> HttpResponse {
    use actix_web::http::StatusCode;
    match e {
        LokiError::Bad(m) => text_error(StatusCode::BAD_REQUEST, m),
        LokiError::Index(e) => text_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn request(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<(TenantId, Params), HttpResponse> {
    let tenant = state
        .auth
        .from_http(req)
        .map_err(|e| super::text_error(&e))?;
    let form = Params::lenient(
        req.query_string(),
        crate::api::otlp_http::header(req, "content-type"),
        body,
    )
    .map_err(|e| loki_error(LokiError::from(e)))?;
    Ok((tenant, form))
}

fn window(form: &Params) -> Result<(u64, u64), LokiError> {
    let end = form.time("end")?.unwrap_or_else(crate::now_ns);
    let start = form.time("start")?.unwrap_or(end.saturating_sub(HOUR_NS));
    if start > end {
        return bad("the query time range ends before it starts (start > end)");
    }
    Ok((start, end))
}

fn limit(form: &Params) -> Result<usize, LokiError> {
    let limit = form.number::<usize>("limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return bad(format!(
            "max entries limit per query exceeded, limit > max_entries_limit ({limit} > {MAX_LIMIT})"
        ));
    }
    Ok(limit)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LokiError> + Send + 'static,
) -> Result<T, HttpResponse> {
    match web::block(f).await {
        Ok(r) => r.map_err(loki_error),
        Err(e) => Err(loki_error(LokiError::Bad(e.to_string()))),
    }
}

/// `/loki/api/v1/query_range?query=&start=&end=&limit=&direction=&step=`.
pub async fn query_range(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (tenant, form) = match request(&req, &state, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let parsed = (|| {
        let q = logql::parse(form.required("query")?).map_err(LokiError::Bad)?;
        let (start, end) = window(&form)?;
        let limit = limit(&form)?;
        let forward = match form.get("direction") {
            None | Some("backward") | Some("BACKWARD") => false,
            Some("forward") | Some("FORWARD") => true,
            Some(other) => {
                return bad(format!(
                    "invalid direction {other:?}: use forward or backward"
                ))
            }
        };
        let step = match form.duration("step")? {
            Some(0) => {
                return bad("zero or negative query resolution step widths are not accepted")
            }
            Some(s) => s,
            None => ((end - start) / 250).max(1_000_000_000),
        };
        Ok((q, (start, end), limit, forward, step))
    })();
    let (q, w, limit, forward, step) = match parsed {
        Ok(v) => v,
        Err(e) => return loki_error(e),
    };
    let c = state.correlator.clone();
    let answer = blocking(move || match q {
        Query::Logs(l) => log_streams(&c, &tenant, &l, w, limit, forward),
        Query::Metric(m) => {
            let steps = Steps {
                start_ns: w.0,
                end_ns: w.1,
                step_ns: step,
            };
            let (series, scanned) = metric_series(&c, &tenant, &m, steps)?;
            Ok(QueryData::Matrix {
                stats: stats(0, scanned),
                result: series
                    .into_iter()
                    .map(|(metric, points)| MatrixSeries {
                        metric,
                        values: points.into_iter().map(|(t, v)| point(t, v)).collect(),
                    })
                    .collect(),
            })
        }
    })
    .await;
    match answer {
        Ok(data) => HttpResponse::Ok().json(Success {
            status: "success",
            data,
        }),
        Err(r) => r,
    }
}

/// `/loki/api/v1/query?query=&time=`: metric queries at one instant.
pub async fn query(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let (tenant, form) = match request(&req, &state, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let parsed = (|| {
        let q = logql::parse(form.required("query")?).map_err(LokiError::Bad)?;
        let Query::Metric(m) = q else {
            return bad(
                "log queries are not supported as an instant query type, please change \
                 your query to a range query type",
            );
        };
        let t = form.time("time")?.unwrap_or_else(crate::now_ns);
        Ok((m, t))
    })();
    let (m, t) = match parsed {
        Ok(v) => v,
        Err(e) => return loki_error(e),
    };
    let c = state.correlator.clone();
    let answer = blocking(move || {
        let steps = Steps {
            start_ns: t,
            end_ns: t,
            step_ns: 1,
        };
        let (series, scanned) = metric_series(&c, &tenant, &m, steps)?;
        Ok(QueryData::Vector {
            stats: stats(0, scanned),
            result: series
                .into_iter()
                .filter_map(|(metric, points)| {
                    let (t, v) = points.first().copied()?;
                    Some(VectorSample {
                        metric,
                        value: point(t, v),
                    })
                })
                .collect(),
        })
    })
    .await;
    match answer {
        Ok(data) => HttpResponse::Ok().json(Success {
            status: "success",
            data,
        }),
        Err(r) => r,
    }
}

/// Label sets of the newest logs in the window, of a selector's logs when given.
fn label_sets(
    c: &Correlator,
    tenant: &TenantId,
    selector: Option<&LogQuery>,
    (start_ns, end_ns): (u64, u64),
) -> Result<BTreeSet<PromLabels>, LokiError> {
    let f = match selector {
        Some(q) => pushdown(q, start_ns, end_ns),
        None => Filter {
            start_ns,
            end_ns,
            ..Filter::default()
        },
    };
    let mut out = BTreeSet::new();
    for r in c.select(Signal::Logs, tenant, &f, Pick::Newest, LABEL_SCAN_ENTRIES)? {
        let Record::Log(l) = r else { continue };
        let labels = match selector {
            Some(q) => match run_pipeline(q, &l) {
                Some((_, labels)) => labels,
                None => continue,
            },
            None => log_labels(&l),
        };
        out.insert(labels);
    }
    Ok(out)
}

/// The tenant, optional stream selector and window of a label listing.
type LabelRequest = (TenantId, Option<LogQuery>, (u64, u64));

fn label_request(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<LabelRequest, HttpResponse> {
    let (tenant, form) = request(req, state, body)?;
    let parsed = (|| {
        let selector = match form.get("query").or_else(|| form.get("match[]")) {
            None => None,
            Some(q) => match logql::parse(q).map_err(LokiError::Bad)? {
                Query::Logs(l) => Some(l),
                Query::Metric(_) => {
                    return bad("a stream selector is expected, not a metric query")
                }
            },
        };
        Ok((selector, window(&form)?))
    })();
    let (selector, w) = parsed.map_err(loki_error)?;
    Ok((tenant, selector, w))
}

/// `/loki/api/v1/labels?start=&end=`.
pub async fn labels(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (tenant, selector, w) = match label_request(&req, &state, &[]) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let c = state.correlator.clone();
    match blocking(move || label_sets(&c, &tenant, selector.as_ref(), w)).await {
        Ok(sets) => {
            let names: BTreeSet<String> = sets.into_iter().flat_map(|l| l.into_keys()).collect();
            HttpResponse::Ok().json(Success {
                status: "success",
                data: names,
            })
        }
        Err(r) => r,
    }
}

/// `/loki/api/v1/label/{name}/values?start=&end=&query=`.
pub async fn label_values(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (tenant, selector, w) = match label_request(&req, &state, &[]) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let name = path.into_inner();
    let c = state.correlator.clone();
    match blocking(move || label_sets(&c, &tenant, selector.as_ref(), w)).await {
        Ok(sets) => {
            let values: BTreeSet<String> = sets
                .into_iter()
                .filter_map(|mut l| l.remove(&name))
                .collect();
            HttpResponse::Ok().json(Success {
                status: "success",
                data: values,
            })
        }
        Err(r) => r,
    }
}

/// `/loki/api/v1/series?match[]=&start=&end=`.
pub async fn series(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (tenant, selector, w) = match label_request(&req, &state, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if selector.is_none() {
        return loki_error(LokiError::Bad(
            "match[] is required: a stream selector".into(),
        ));
    }
    let c = state.correlator.clone();
    match blocking(move || label_sets(&c, &tenant, selector.as_ref(), w)).await {
        Ok(sets) => HttpResponse::Ok().json(Success {
            status: "success",
            data: sets,
        }),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttrValue, KeyValue, Scope, TraceId};

    fn log(body: &str) -> LogRecord {
        LogRecord {
            time_ns: 5,
            observed_ns: 5,
            severity_number: 17,
            severity_text: "error".into(),
            body: AttrValue::Str(body.into()),
            event_name: String::new(),
            service: "cart".into(),
            resource: vec![KeyValue {
                key: "k8s.pod.name".into(),
                value: AttrValue::Str("cart-1".into()),
            }],
            scope: Scope {
                name: String::new(),
                version: String::new(),
            },
            attributes: vec![KeyValue {
                key: "user".into(),
                value: AttrValue::Str("bob".into()),
            }],
            trace_id: Some(TraceId([7; 16])),
            span_id: None,
            link: None,
            flags: 0,
        }
    }

    fn logs_query(q: &str) -> LogQuery {
        match logql::parse(q).unwrap() {
            Query::Logs(l) => l,
            _ => panic!(),
        }
    }

    #[test]
    fn labels_pipelines_and_parsers() {
        let l = log(r#"{"status": 503, "req": {"path": "/cart"}, "user": "eve"}"#);
        let labels = log_labels(&l);
        assert_eq!(labels["k8s_pod_name"], "cart-1");
        assert_eq!(labels["detected_level"], "error");
        assert_eq!(labels["trace_id"], "07".repeat(16));
        let q = logs_query(
            r#"{service_name="cart"} |= "status" | json | status >= 500 and req_path="/cart""#,
        );
        let (_, out) = run_pipeline(&q, &l).unwrap();
        assert_eq!(out["user_extracted"], "eve");
        assert!(run_pipeline(&logs_query(r#"{service_name="cart"} |= "nope""#), &l).is_none());
        assert!(run_pipeline(&logs_query(r#"{service_name="shop"}"#), &l).is_none());
        let q = logs_query(r#"{detected_level="error"} | json | drop __error__"#);
        let (_, out) = run_pipeline(&q, &log("not json")).unwrap();
        assert!(!out.contains_key("__error__"));
        assert_eq!(
            logfmt(r#"level=warn msg="slow query" dur=1.5s empty="#),
            vec![
                ("level".to_string(), "warn".to_string()),
                ("msg".into(), "slow query".into()),
                ("dur".into(), "1.5s".into()),
                ("empty".into(), String::new())
            ]
        );
        let q = logs_query(r#"{service_name="cart"} | logfmt | dur > 1s"#);
        assert!(run_pipeline(&q, &log("msg=x dur=1.5s")).is_some());
        assert!(run_pipeline(&q, &log("msg=x dur=500ms")).is_none());
    }

    #[test]
    fn counts_over_time_per_step_and_summed() {
        let m = match logql::parse(r#"sum by (detected_level) (count_over_time({app="a"}[10s]))"#)
            .unwrap()
        {
            Query::Metric(m) => m,
            _ => panic!(),
        };
        let s = 1_000_000_000u64;
        let mut entries = BTreeMap::new();
        let labels = |pod: &str| -> PromLabels {
            [("detected_level", "error"), ("pod", pod)]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        entries.insert(labels("a"), vec![(s, 3), (2 * s, 3), (15 * s, 3)]);
        entries.insert(labels("b"), vec![(9 * s, 3)]);
        let out = eval_metric(
            &m,
            &entries,
            &Steps {
                start_ns: 10 * s,
                end_ns: 20 * s,
                step_ns: 10 * s,
            },
        );
        let (l, points) = out.into_iter().next().unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(points, vec![(10 * s, 3.0), (20 * s, 1.0)]);
    }
}
