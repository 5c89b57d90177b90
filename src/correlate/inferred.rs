//! Logs that carry no trace ID, offered as inferred candidates for a span: same service, the
//! same host, pod or container when both sides name one, and a time within the span widened by
//! a margin. Each candidate says how confident the guess is and why, and is never mixed with
//! the exact links.
//!
//! Confidence = time × place × (1 / concurrent spans): 1.0 inside the span, falling to 0.5 at
//! the edge of the margin; 1.0 when host, pod or container match, 0.7 when neither side says;
//! divided by how many spans of that service (over every trace) were active around the chosen
//! span, since the log could belong to any of them.

use crate::index::{IndexError, Store};
use crate::model::{attr_str, LogRecord, Span, SpanId, TenantId, TraceId};
use std::collections::HashMap;

/// Resource attributes that place a record on one machine or process.
const PLACE_KEYS: [&str; 3] = ["k8s.pod.name", "container.id", "host.name"];

#[derive(Debug, Clone, PartialEq)]
pub struct Inferred {
    pub log: LogRecord,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub confidence: f64,
    pub reason: String,
}

/// `Some(true)` when a place attribute both sides have agrees, `Some(false)` when one
/// disagrees, `None` when they share none.
fn same_place(span: &Span, log: &LogRecord) -> Option<(bool, &'static str)> {
    PLACE_KEYS.iter().find_map(|k| {
        match (attr_str(&span.resource, k), attr_str(&log.resource, k)) {
            (Some(a), Some(b)) => Some((a == b, *k)),
            _ => None,
        }
    })
}

/// 1.0 inside the span, linearly down to 0.5 at `margin` outside it, `None` beyond.
fn time_score(span: &Span, t: u64, margin: u64) -> Option<f64> {
    let outside = if t < span.start_ns {
        span.start_ns - t
    } else {
        t.saturating_sub(span.end_ns)
    };
    (outside <= margin).then(|| 1.0 - 0.5 * outside as f64 / margin.max(1) as f64)
}

/// Inferred candidates for the spans of one trace: the unlinked logs of each service around
/// its spans, best first.
pub fn infer(
    store: &Store,
    tenant: &TenantId,
    spans: &[Span],
    margin_ns: u64,
    max_logs: usize,
) -> Result<Vec<Inferred>, IndexError> {
    let (Some(start), Some(end)) = (
        spans.iter().map(|s| s.start_ns).min(),
        spans.iter().map(|s| s.end_ns).max(),
    ) else {
        return Ok(Vec::new());
    };
    let mut services: Vec<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    // One read over the trace's whole window; `link` then keeps each log near a span of its
    // own service only.
    let logs = store.unlinked_logs(
        tenant,
        &services,
        start.saturating_sub(margin_ns),
        end.saturating_add(margin_ns),
        max_logs,
    )?;
    let mut out = link(store, tenant, spans, logs, margin_ns)?;
    out.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    Ok(out)
}

/// Links each log without a trace ID to its best span among `spans` (same service, place and
/// time), scored; logs no span fits are left out. Concurrency is counted once per chosen span.
pub fn link(
    store: &Store,
    tenant: &TenantId,
    spans: &[Span],
    logs: Vec<LogRecord>,
    margin_ns: u64,
) -> Result<Vec<Inferred>, IndexError> {
    let mut out = Vec::new();
    let mut concurrency: HashMap<SpanId, u64> = HashMap::new();
    for log in logs {
        let t = log.effective_time_ns();
        // The best span: in place and time, the innermost (shortest) first.
        let best = spans
            .iter()
            .filter(|s| s.service == log.service)
            .filter_map(|s| {
                let place = same_place(s, &log);
                if place.is_some_and(|(same, _)| !same) {
                    return None;
                }
                Some((s, time_score(s, t, margin_ns)?, place))
            })
            .max_by(|a, b| {
                a.1.total_cmp(&b.1)
                    .then(b.0.duration_ns().cmp(&a.0.duration_ns()))
            });
        let Some((span, time, place)) = best else {
            continue;
        };
        let service = &span.service;
        let concurrent = match concurrency.get(&span.span_id) {
            Some(&n) => n,
            None => {
                let from = span.start_ns.saturating_sub(span.duration_ns() + margin_ns);
                let to = span.end_ns.saturating_add(margin_ns);
                let n = store.count_spans(tenant, service, from, to)?.max(1);
                concurrency.insert(span.span_id, n);
                n
            }
        };
        let place_factor = if place.is_some() { 1.0 } else { 0.7 };
        let confidence = time * place_factor / concurrent as f64;
        let place_text = match place {
            Some((_, key)) => format!("same {key}"),
            None => "no host, pod or container to compare".to_string(),
        };
        let time_text = if time >= 1.0 {
            "inside the span".to_string()
        } else {
            "within the margin of the span".to_string()
        };
        out.push(Inferred {
            reason: format!(
                "same service {service}, {place_text}, {time_text}; {concurrent} span(s) of \
                 {service} active around it"
            ),
            trace_id: span.trace_id,
            span_id: span.span_id,
            confidence,
            log,
        });
    }
    Ok(out)
}
