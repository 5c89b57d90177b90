//! An incident's suspected origins and exemplar traces, from the stored data of its window.
//!
//! Window and baseline are compared trace with trace, sampled the same way: the window (first
//! anomaly to close, or to latest activity) and a baseline of the same length just before it
//! (at least a minute) are each cut into `SLICES` equal slices, and from each slice the newest
//! spans of the incident's services give up to `PER_SLICE` traces. Both samples are sorted by
//! trace ID before they are read, so the same stored data gives the same ranking whenever
//! and however often it is analysed.

use super::{Incident, SpanRef, TraceRef};
use crate::correlate::diff;
use crate::correlate::origin::{self, Sighting, TraceSample};
use crate::index::{Filter, IndexError, Pick, Store, STATUS_ERROR};
use crate::model::{Span, TenantId, TraceId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Slices of the window (and of the baseline) each sample is drawn from.
const SLICES: u64 = 6;
/// Traces taken per slice: up to 60 a side.
const PER_SLICE: usize = 10;
/// Spans read per slice to find that many traces.
const SPANS_PER_SLICE: usize = 200;
/// Exemplar traces kept per incident.
const EXEMPLAR_TRACES: usize = 10;
/// Candidates for exemplars beyond the sample: the slowest and the failed of the window.
const EXEMPLAR_CANDIDATES: usize = 30;

fn ids_of(spans: Vec<crate::model::Span>, into: &mut BTreeSet<TraceId>, cap: usize) {
    let before = into.len();
    for s in spans {
        if into.len() >= before + cap {
            break;
        }
        into.insert(s.trace_id);
    }
}

/// Up to `SLICES × PER_SLICE` traces of `services` in `[start, end)`, spread over the span.
fn sample(
    store: &Store,
    tenant: &TenantId,
    services: &[String],
    start: u64,
    end: u64,
) -> Result<BTreeSet<TraceId>, IndexError> {
    let mut ids = BTreeSet::new();
    let len = end.saturating_sub(start).max(SLICES);
    for k in 0..SLICES {
        let f = Filter {
            services: services.to_vec(),
            start_ns: start + len * k / SLICES,
            end_ns: (start + len * (k + 1) / SLICES).saturating_sub(1),
            ..Filter::default()
        };
        ids_of(
            store.select_spans(tenant, &f, Pick::Newest, SPANS_PER_SLICE)?,
            &mut ids,
            PER_SLICE,
        );
    }
    Ok(ids)
}

fn read(
    store: &Store,
    tenant: &TenantId,
    ids: &BTreeSet<TraceId>,
) -> Result<Vec<TraceSample>, IndexError> {
    let mut out = Vec::new();
    for t in ids {
        let r = store.trace(tenant, *t)?;
        if !r.spans.is_empty() {
            out.push(TraceSample {
                spans: r.spans,
                logs: r.logs,
            });
        }
    }
    Ok(out)
}

/// The incident's anomalies as origin ranking weighs them.
pub fn sightings(inc: &Incident) -> Vec<Sighting> {
    inc.anomalies
        .iter()
        .filter(|a| !a.service.is_empty())
        .map(|a| Sighting {
            service: a.service.clone(),
            signal: a.signal.clone(),
            what: a.series.clone(),
            start_ns: a.anomaly.start_ns,
            score: a.anomaly.score,
            before: a.anomaly.baseline,
            during: a.anomaly.peak_value,
            unit: a.unit.clone(),
        })
        .collect()
}

/// Log severity number of WARN: the templates looked at as origin evidence start there.
const SEVERITY_WARN: i32 = 13;
/// Over-represented templates kept per service.
const TEMPLATES_PER_SERVICE: usize = 3;

/// Per service, the WARN-and-above log templates of the window's traces that are new or
/// over-represented against the baseline's (as "what is different" ranks them for a whole
/// window), as evidence for that service.
fn log_templates(window: &[TraceSample], baseline: &[TraceSample], start_ns: u64) -> Vec<Sighting> {
    type Counts = BTreeMap<String, (HashMap<String, u64>, u64)>;
    let count = |traces: &[TraceSample]| {
        let mut per: Counts = BTreeMap::new();
        for l in traces.iter().flat_map(|t| t.logs.iter()) {
            let e = per.entry(l.service.clone()).or_default();
            e.1 += 1;
            if l.severity_number >= SEVERITY_WARN {
                *e.0.entry(diff::log_feature(l)).or_default() += 1;
            }
        }
        per
    };
    let (w, mut b) = (count(window), count(baseline));
    let mut out = Vec::new();
    for (service, counts) in w {
        let base = b.remove(&service).unwrap_or_default();
        for d in diff::rank(
            diff::FeatureKind::LogTemplate,
            counts,
            base,
            TEMPLATES_PER_SERVICE,
        ) {
            let share = |c: u64, n: u64| c as f64 * 100.0 / n.max(1) as f64;
            out.push(Sighting {
                service: service.clone(),
                signal: "log_template".into(),
                what: format!("log template {}", d.feature),
                start_ns,
                score: d.lift,
                before: share(d.baseline_count, d.baseline_total),
                during: share(d.window_count, d.window_total),
                unit: "% of its logs".into(),
            });
        }
    }
    out
}

/// Ranks the suspected origins and picks the exemplar traces of an incident.
pub fn analyse(
    store: &Store,
    tenant: &TenantId,
    inc: &mut Incident,
    step_ns: u64,
) -> Result<(), IndexError> {
    let start = inc.start_ns;
    let end = inc.end_ns(step_ns);
    let window_ids = sample(store, tenant, &inc.services, start, end)?;
    let (base_start, base_end) = crate::correlate::baseline::before(start, end);
    let base_ids = sample(store, tenant, &inc.services, base_start, base_end)?;
    let window = read(store, tenant, &window_ids)?;
    let baseline = read(store, tenant, &base_ids)?;
    let mut seen = sightings(inc);
    seen.extend(log_templates(&window, &baseline, inc.start_ns));
    inc.origins = origin::rank(&window, &baseline, &seen);

    // Exemplars: the anomalies' own, the slowest and the failed of the window, and the
    // sample; those through the top origin first, failed there, then slowest there.
    let mut extra: BTreeSet<TraceId> = inc
        .anomalies
        .iter()
        .flat_map(|a| a.exemplars.iter())
        .filter_map(|e| e.trace_id)
        .filter(|t| !window_ids.contains(t))
        .collect();
    let f = Filter {
        services: inc.services.clone(),
        start_ns: start,
        end_ns: end,
        ..Filter::default()
    };
    ids_of(
        store.select_spans(tenant, &f, Pick::Slowest, EXEMPLAR_CANDIDATES)?,
        &mut extra,
        EXEMPLAR_CANDIDATES,
    );
    let failed_filter = Filter {
        status: Some(STATUS_ERROR),
        ..f
    };
    ids_of(
        store.select_spans(tenant, &failed_filter, Pick::Newest, EXEMPLAR_CANDIDATES)?,
        &mut extra,
        EXEMPLAR_CANDIDATES,
    );
    extra.retain(|t| !window_ids.contains(t));
    let mut candidates = window;
    candidates.extend(read(store, tenant, &extra)?);
    let top = inc.origins.first().map(|o| o.service.clone());
    let mut refs: Vec<(bool, bool, u64, String, TraceRef)> = candidates
        .iter()
        .map(|t| {
            let spans = &t.spans;
            let worst = spans
                .iter()
                .filter(|s| Some(&s.service) == top.as_ref())
                .max_by_key(|s| (s.failed(), s.duration_ns(), s.span_id));
            let mut services: Vec<String> = spans.iter().map(|s| s.service.clone()).collect();
            services.sort();
            services.dedup();
            let trace_id = spans[0].trace_id.to_hex();
            let r = TraceRef {
                trace_id: trace_id.clone(),
                root: spans
                    .iter()
                    .find(|s| s.parent_span_id.is_none())
                    .map(SpanRef::from),
                origin_span: worst.map(SpanRef::from),
                services,
                failed: spans.iter().any(Span::failed),
            };
            (
                worst.is_some(),
                worst.is_some_and(Span::failed),
                worst.map_or(0, |w| w.duration_ns()),
                trace_id,
                r,
            )
        })
        .collect();
    refs.sort_by(|a, b| (b.0, b.1, b.2).cmp(&(a.0, a.1, a.2)).then(a.3.cmp(&b.3)));
    refs.dedup_by(|a, b| a.3 == b.3);
    inc.exemplar_traces = refs
        .into_iter()
        .take(EXEMPLAR_TRACES)
        .map(|r| r.4)
        .collect();
    Ok(())
}
