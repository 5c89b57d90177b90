//! "Why is this trace slow": each span's duration as a percentile of its operation's recent
//! durations — its newest `MAX_DURATIONS` spans up to the trace's end, at most a window back —
//! with the operation's p50, p95 and p99, and the spans above p95 marked. At most
//! `MAX_OPERATIONS` operations of a trace are read, so a lookup reads at most
//! `MAX_OPERATIONS × MAX_DURATIONS` fast-field values, however many spans the window holds.

use crate::index::{Filter, IndexError, Store};
use crate::model::{ns_string, rfc3339, Span, TenantId};
use serde::Serialize;
use std::collections::BTreeMap;

/// Durations read per operation, at most: the newest ones.
pub const MAX_DURATIONS: usize = 10_000;
/// Distinct operations of one trace looked up, at most.
pub const MAX_OPERATIONS: usize = 50;
/// Fewer spans than this in the window and a span is never called slow for its operation.
pub const MIN_SAMPLE: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationLatency {
    pub service: String,
    pub operation: String,
    /// Its spans compared with: the newest, up to `MAX_DURATIONS`.
    pub spans: usize,
    /// Where they begin: the window's start when they are all the window holds.
    #[serde(serialize_with = "ns_string")]
    pub since_unix_nano: u64,
    pub p50_ns: Option<u64>,
    pub p95_ns: Option<u64>,
    pub p99_ns: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpanLatency {
    pub span_id: String,
    pub service: String,
    pub operation: String,
    pub duration_ns: u64,
    /// Percent of the operation's recent spans that took as long or less; `None`
    /// when the operation was not looked up.
    pub percentile: Option<f64>,
    /// Slower than the operation's p95, with at least `MIN_SAMPLE` spans to judge by.
    pub above_p95: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceLatency {
    #[serde(serialize_with = "ns_string")]
    pub window_start_unix_nano: u64,
    #[serde(serialize_with = "ns_string")]
    pub window_end_unix_nano: u64,
    pub window_start: String,
    pub window_end: String,
    pub operations: Vec<OperationLatency>,
    /// In the order given.
    pub spans: Vec<SpanLatency>,
    /// False when the trace had more than `MAX_OPERATIONS` operations.
    pub complete: bool,
}

/// The nearest-rank `q` quantile of sorted values.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Each span of `spans` against its operation's newest spans up to the trace's end, at most
/// `window_ns` before the trace's start.
pub fn of_spans(
    store: &Store,
    tenant: &TenantId,
    spans: &[Span],
    window_ns: u64,
) -> Result<TraceLatency, IndexError> {
    let start = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let end = spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
    let window = (start.saturating_sub(window_ns), end);
    let mut keys: Vec<(&str, &str)> = spans
        .iter()
        .map(|s| (s.service.as_str(), s.name.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let complete = keys.len() <= MAX_OPERATIONS;
    let mut sorted: BTreeMap<(&str, &str), Vec<u64>> = BTreeMap::new();
    let mut operations = Vec::new();
    for &(service, operation) in keys.iter().take(MAX_OPERATIONS) {
        let f = Filter {
            services: vec![service.to_string()],
            name: Some(operation.to_string()),
            start_ns: window.0,
            end_ns: window.1,
            ..Filter::default()
        };
        let (mut durations, since) = store.recent_durations(tenant, &f, MAX_DURATIONS)?;
        durations.sort_unstable();
        operations.push(OperationLatency {
            service: service.to_string(),
            operation: operation.to_string(),
            spans: durations.len(),
            since_unix_nano: since,
            p50_ns: quantile(&durations, 0.5),
            p95_ns: quantile(&durations, 0.95),
            p99_ns: quantile(&durations, 0.99),
        });
        sorted.insert((service, operation), durations);
    }
    let spans = spans
        .iter()
        .map(|s| {
            let d = s.duration_ns();
            let found = sorted.get(&(s.service.as_str(), s.name.as_str()));
            let percentile = found.filter(|v| !v.is_empty()).map(|v| {
                let at_or_below = v.partition_point(|&x| x <= d);
                (1000.0 * at_or_below as f64 / v.len() as f64).round() / 10.0
            });
            let above_p95 = found.is_some_and(|v| {
                v.len() >= MIN_SAMPLE && quantile(v, 0.95).is_some_and(|p95| d > p95)
            });
            SpanLatency {
                span_id: s.span_id.to_hex(),
                service: s.service.clone(),
                operation: s.name.clone(),
                duration_ns: d,
                percentile,
                above_p95,
            }
        })
        .collect();
    Ok(TraceLatency {
        window_start_unix_nano: window.0,
        window_end_unix_nano: window.1,
        window_start: rfc3339(window.0),
        window_end: rfc3339(window.1),
        operations,
        spans,
        complete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.95), Some(95));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&[7], 0.95), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
