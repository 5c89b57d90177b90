//! Spike → traces: the traces behind a metric spike. The exemplars of the series' points in
//! the window come first (they were recorded by the thing that measured the spike); then other
//! traces of the series' services in the window, ranked by how much each explains a spike:
//! failed, and slow compared with the baseline median of the same operation. Each comes with
//! its error logs.

use super::series::{self, Selector};
use super::stats::median;
use crate::index::{Filter, IndexError, Pick, Store, SEVERITY_ERROR, STATUS_ERROR};
use crate::model::{LogRecord, Span, TenantId, TraceId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Spans looked at per kind (slowest, failed, baseline sample).
const CANDIDATES: usize = 200;

#[derive(Debug, Clone)]
pub struct RankedTrace {
    pub trace_id: TraceId,
    /// The exemplar value when an exemplar of the series names this trace.
    pub exemplar_value: Option<f64>,
    pub score: f64,
    pub reasons: Vec<String>,
    /// The trace's worst span among the series' services, when the trace has one.
    pub span: Option<Span>,
    pub baseline_median_ns: Option<u64>,
    /// The trace's root span, when known.
    pub root: Option<Span>,
    pub error_logs: Vec<LogRecord>,
}

#[derive(Debug, Clone, Default)]
pub struct SpikeReport {
    pub services: Vec<String>,
    pub exemplars: usize,
    pub traces: Vec<RankedTrace>,
}

/// How much one span explains a spike: 1 if it failed, plus up to 1 for slowness (1 at 20×
/// the baseline median or more, log scale), with the reasons in words.
pub fn span_score(span: &Span, median_ns: Option<u64>) -> (f64, Vec<String>) {
    let mut score = 0.0;
    let mut reasons = Vec::new();
    if span.failed() {
        score += 1.0;
        let msg = if span.status_message.is_empty() {
            String::new()
        } else {
            format!(": {}", span.status_message)
        };
        reasons.push(format!("{} {} failed{msg}", span.service, span.name));
    }
    if let Some(m) = median_ns.filter(|m| *m > 0) {
        let ratio = span.duration_ns() as f64 / m as f64;
        if ratio > 1.5 {
            score += (ratio.log10() / 20f64.log10()).min(1.0);
            reasons.push(format!(
                "{} {} took {:.1}× the baseline median ({:.1} ms vs {:.1} ms)",
                span.service,
                span.name,
                ratio,
                span.duration_ns() as f64 / 1e6,
                m as f64 / 1e6
            ));
        }
    }
    (score, reasons)
}

/// Median duration per (service, operation) of a sample.
fn medians(spans: &[Span]) -> HashMap<(String, String), u64> {
    let mut by_op: HashMap<(String, String), Vec<f64>> = HashMap::new();
    for s in spans {
        by_op
            .entry((s.service.clone(), s.name.clone()))
            .or_default()
            .push(s.duration_ns() as f64);
    }
    by_op
        .into_iter()
        .filter_map(|(k, mut v)| median(&mut v).map(|m| (k, m as u64)))
        .collect()
}

pub fn explain(
    store: &Store,
    tenant: &TenantId,
    selector: &Selector,
    start_ns: u64,
    end_ns: u64,
    limit: usize,
) -> Result<SpikeReport, IndexError> {
    let points = store.metric_points(
        tenant,
        &Filter {
            start_ns,
            end_ns,
            name: Some(selector.name.clone()),
            ..selector.pushdown()
        },
        super::metrics::MAX_POINTS,
    )?;
    let mut services = BTreeSet::new();
    let mut exemplars: BTreeMap<TraceId, f64> = BTreeMap::new();
    for p in points
        .iter()
        .filter(|p| selector.matches(&series::labels_of(p)))
    {
        services.insert(p.service.clone());
        for e in &p.exemplars {
            if let Some(t) = e.trace_id {
                let v = exemplars.entry(t).or_insert(e.value);
                *v = v.max(e.value);
            }
        }
    }
    let services: Vec<String> = services.into_iter().collect();
    let mut report = SpikeReport {
        exemplars: exemplars.len(),
        services: services.clone(),
        traces: Vec::new(),
    };
    if services.is_empty() {
        return Ok(report);
    }
    let window = Filter {
        services: services.clone(),
        start_ns,
        end_ns,
        ..Filter::default()
    };
    let (base_start, base_end) = super::baseline::before(start_ns, end_ns);
    let baseline = Filter {
        start_ns: base_start,
        end_ns: base_end,
        ..window.clone()
    };
    let mut base = store.select_spans(tenant, &baseline, Pick::Newest, CANDIDATES)?;
    if base.is_empty() {
        base = store.select_spans(tenant, &window, Pick::Oldest, CANDIDATES)?;
    }
    let medians = medians(&base);
    let mut candidates = store.select_spans(tenant, &window, Pick::Slowest, CANDIDATES)?;
    let failed = Filter {
        status: Some(STATUS_ERROR),
        ..window.clone()
    };
    candidates.extend(store.select_spans(tenant, &failed, Pick::Newest, CANDIDATES)?);
    // The best-scoring span per trace.
    let mut best: HashMap<TraceId, (f64, Vec<String>, Span)> = HashMap::new();
    for s in candidates {
        let m = medians.get(&(s.service.clone(), s.name.clone())).copied();
        let (score, reasons) = span_score(&s, m);
        if best.get(&s.trace_id).is_none_or(|b| score > b.0) {
            best.insert(s.trace_id, (score, reasons, s));
        }
    }
    let mut order: Vec<(bool, f64, TraceId)> = exemplars
        .keys()
        .map(|t| (true, best.get(t).map_or(0.0, |b| b.0), *t))
        .collect();
    order.extend(
        best.iter()
            .filter(|(t, _)| !exemplars.contains_key(t))
            .map(|(t, b)| (false, b.0, *t)),
    );
    order.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2)));
    for (_, _, trace_id) in order.into_iter().take(limit) {
        let records = store.trace(tenant, trace_id)?;
        // An exemplar's trace: its worst span of the series' services, scored the same way.
        let (score, mut reasons, span) = match best.remove(&trace_id) {
            Some((score, reasons, span)) => (score, reasons, Some(span)),
            None => records
                .spans
                .iter()
                .filter(|s| services.contains(&s.service))
                .map(|s| {
                    let (score, reasons) = span_score(
                        s,
                        medians.get(&(s.service.clone(), s.name.clone())).copied(),
                    );
                    (score, reasons, Some(s.clone()))
                })
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .unwrap_or((0.0, Vec::new(), None)),
        };
        let exemplar_value = exemplars.get(&trace_id).copied();
        if let Some(v) = exemplar_value {
            reasons.insert(0, format!("exemplar of {} (value {v})", selector.name));
        }
        report.traces.push(RankedTrace {
            trace_id,
            exemplar_value,
            score,
            reasons,
            baseline_median_ns: span
                .as_ref()
                .and_then(|s| medians.get(&(s.service.clone(), s.name.clone())).copied()),
            span,
            root: records
                .spans
                .iter()
                .find(|s| s.parent_span_id.is_none())
                .cloned(),
            error_logs: records
                .logs
                .into_iter()
                .filter(|l| l.severity_number as u64 >= SEVERITY_ERROR)
                .collect(),
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::span;

    #[test]
    fn failed_and_slow_spans_score_known_answers() {
        let fast = span(1, None, 0, 10_000_000);
        assert_eq!(span_score(&fast, Some(10_000_000)).0, 0.0);
        // 20× the median: slowness 1.0.
        let slow = span(2, None, 0, 200_000_000);
        let (score, reasons) = span_score(&slow, Some(10_000_000));
        assert!((score - 1.0).abs() < 1e-9);
        assert!(
            reasons[0].contains("20.0× the baseline median"),
            "{reasons:?}"
        );
        // 2× the median: log10(2)/log10(20) ≈ 0.231.
        let (score, _) = span_score(&span(3, None, 0, 20_000_000), Some(10_000_000));
        assert!((score - 0.2314).abs() < 1e-3, "{score}");
        let mut failed = span(4, None, 0, 10_000_000);
        failed.status_code = 2;
        failed.status_message = "db timeout".into();
        let (score, reasons) = span_score(&failed, Some(10_000_000));
        assert_eq!(score, 1.0);
        assert!(reasons[0].ends_with("failed: db timeout"));
        // A failed slow span outranks a failed fast one, which outranks a slow success.
        let mut failed_slow = slow.clone();
        failed_slow.status_code = 2;
        assert!(span_score(&failed_slow, Some(10_000_000)).0 > score);
        assert!(score > span_score(&span(5, None, 0, 100_000_000), Some(10_000_000)).0);
    }
}
