//! Metric queries and anomalies over the stored points: fetch what a selector names in a
//! window, evaluate it per step, and find spikes and level shifts in the result.

use super::series::{self, Selector, Series, Spec};
use super::stats::{self, AnomalyKind, Thresholds};
use crate::index::{Filter, IndexError, Store};
use crate::model::TenantId;
use serde::{Deserialize, Serialize};

/// Points one query may read; past it the query is refused with a message that says so.
pub const MAX_POINTS: usize = 500_000;

/// The series a selector names, evaluated per step. Points from one step before the window
/// are read too, so a cumulative counter's first step has a value to subtract.
pub fn query(
    store: &Store,
    tenant: &TenantId,
    selector: &Selector,
    spec: &Spec,
) -> Result<Vec<Series>, IndexError> {
    query_within(store, tenant, selector, spec, MAX_POINTS).map(|(series, _)| series)
}

/// `query`, reading at most `max_points` points (`IndexError::TooManyPoints` past it); also
/// returns how many it read.
pub fn query_within(
    store: &Store,
    tenant: &TenantId,
    selector: &Selector,
    spec: &Spec,
    max_points: usize,
) -> Result<(Vec<Series>, usize), IndexError> {
    let filter = Filter {
        start_ns: spec.start_ns.saturating_sub(spec.step_ns),
        end_ns: spec.end_ns.saturating_add(spec.step_ns),
        name: Some(selector.name.clone()),
        ..selector.pushdown()
    };
    let read = store.metric_points(tenant, &filter, max_points)?;
    let count = read.len();
    let points: Vec<_> = read
        .into_iter()
        .filter(|p| selector.matches(&series::labels_of(p)))
        .collect();
    Ok((series::evaluate(&points, spec)?, count))
}

/// An anomaly in one evaluated series, in time (and as incidents keep it on disk).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub start_ns: u64,
    pub peak_ns: u64,
    /// The start of the last anomalous step.
    pub end_ns: u64,
    pub score: f64,
    pub baseline: f64,
    pub peak_value: f64,
    pub ongoing: bool,
}

/// Runs the detector over a series' steps. Missing steps are gaps, not zeros, except for a
/// rate series once it exists: a step without data then means nothing happened (an error
/// rate that stops is back at 0, not frozen at its last value). Before its first point a
/// series has no baseline at all.
pub fn anomalies(s: &Series, spec: &Spec, t: &Thresholds) -> Vec<Anomaly> {
    let steps = spec.steps();
    let step_of = |ts: u64| ((ts - spec.start_ns) / spec.step_ns.max(1)) as usize;
    let mut values: Vec<Option<f64>> = vec![None; steps];
    if let (true, Some(first)) = (s.kind == "rate", s.points.first()) {
        for slot in values.iter_mut().skip(step_of(first.0)) {
            *slot = Some(0.0);
        }
    }
    for &(ts, v) in &s.points {
        if let Some(slot) = values.get_mut(step_of(ts)) {
            *slot = Some(v);
        }
    }
    let at = |i: usize| spec.start_ns + i as u64 * spec.step_ns;
    let t = sparse_baseline(s, spec, t);
    stats::detect(&values, &t)
        .into_iter()
        .map(|d| Anomaly {
            kind: d.kind,
            start_ns: at(d.start),
            peak_ns: at(d.peak),
            end_ns: at(d.end),
            score: d.score,
            baseline: d.baseline,
            peak_value: d.peak_value,
            ongoing: d.ongoing,
        })
        .collect()
}

/// The thresholds for a series reported less often than once a step (a metric exported every
/// 60 s, judged on 5 s steps): the baseline it needs is `min_baseline_points` steps' worth of
/// time, but never fewer than 3 of its own points. Counting its points alone would ask for
/// six minutes of history of a per-minute metric, more than a back-filled case often has.
fn sparse_baseline(s: &Series, spec: &Spec, t: &Thresholds) -> Thresholds {
    let mut gaps: Vec<f64> = s
        .points
        .windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].0) as f64)
        .filter(|g| *g > 0.0)
        .collect();
    let Some(interval) = stats::median(&mut gaps) else {
        return t.clone();
    };
    let per_step = spec.step_ns as f64 / interval;
    if per_step >= 1.0 {
        return t.clone();
    }
    let wanted = (t.min_baseline_points as f64 * per_step).ceil() as usize;
    Thresholds {
        min_baseline_points: wanted.clamp(3, t.min_baseline_points.max(3)),
        ..t.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_rate_that_stops_is_back_at_zero_not_ongoing() {
        // Errors at 0/s for 10 steps, 5/s for 3 steps, then no points at all for 3 steps.
        let mut points: Vec<(u64, f64)> = (0..10).map(|i| (i * S, 0.0)).collect();
        points.extend((10..13).map(|i| (i * S, 5.0)));
        let series = Series {
            name: "errors".into(),
            kind: "rate",
            unit: String::new(),
            labels: Default::default(),
            points,
            exemplars: Vec::new(),
        };
        let spec = Spec {
            start_ns: 0,
            end_ns: 15 * S,
            step_ns: S,
            quantiles: vec![],
            by: None,
        };
        let found = anomalies(&series, &spec, &Thresholds::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].start_ns, found[0].end_ns), (10 * S, 12 * S));
        assert!(
            !found[0].ongoing,
            "the steps after the last point are zeros"
        );
    }

    #[test]
    fn a_per_minute_metric_with_five_minutes_of_baseline_is_judged() {
        // Judged on 5 s steps: one point a minute, 5 of baseline, then a jump.
        let m = 60 * S;
        let mut points: Vec<(u64, f64)> = (0..5).map(|i| (i * m, 10.0 + i as f64 % 2.0)).collect();
        points.extend((5..8).map(|i| (i * m, 90.0)));
        let series = Series {
            name: "cpu".into(),
            kind: "gauge",
            unit: "1".into(),
            labels: Default::default(),
            points,
            exemplars: Vec::new(),
        };
        let spec = Spec {
            start_ns: 0,
            end_ns: 8 * m,
            step_ns: 5 * S,
            quantiles: vec![],
            by: None,
        };
        let found = anomalies(&series, &spec, &Thresholds::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].start_ns, 5 * m);
    }
}
