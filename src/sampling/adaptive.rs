//! Adaptive sampling to a budget: every interval, per tenant, one probability per root
//! (service, operation) such that the expected kept spans per second stay within the budget,
//! while every operation keeps at least `min_traces_per_interval` traces however rare it is
//! (Jaeger's adaptive sampling has the same floor). Counts are of traces as sent (weighted by
//! the root span's adjusted count), so a head sampler that already applies these
//! probabilities does not make them fall further each interval.

use crate::model::TenantId;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};

/// (service, operation) of a trace's root span.
pub type Operation = (String, String);

/// Operations tracked per tenant, at most; traces of further ones count under the tenant's
/// default probability.
const MAX_OPERATIONS: usize = 2000;

#[derive(Debug, Clone, Default)]
struct Seen {
    traces: f64,
    spans: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probabilities {
    pub default: f64,
    pub per_operation: BTreeMap<Operation, f64>,
}

pub struct Adaptive {
    budget_spans_per_sec: f64,
    interval_secs: f64,
    min_traces: f64,
    window: Mutex<HashMap<TenantId, HashMap<Operation, Seen>>>,
    current: Mutex<HashMap<TenantId, Probabilities>>,
}

impl Adaptive {
    pub fn new(budget_spans_per_sec: f64, interval_secs: u64, min_traces: u64) -> Self {
        Self {
            budget_spans_per_sec,
            interval_secs: interval_secs as f64,
            min_traces: min_traces as f64,
            window: Mutex::new(HashMap::new()),
            current: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.budget_spans_per_sec > 0.0
    }

    /// Counts a decided trace: its root operation, its spans, and how many traces it stands for.
    pub fn observe(&self, tenant: &TenantId, root: &Operation, spans: u64, weight: f64) {
        if !self.enabled() {
            return;
        }
        let mut window = self.window.lock();
        let ops = window.entry(tenant.clone()).or_default();
        if !ops.contains_key(root) && ops.len() >= MAX_OPERATIONS {
            return;
        }
        let seen = ops.entry(root.clone()).or_default();
        seen.traces += weight;
        seen.spans += spans as f64 * weight;
    }

    /// Recomputes every tenant's probabilities from the interval just ended and starts the next.
    pub fn recompute(&self) {
        if !self.enabled() {
            return;
        }
        let window = std::mem::take(&mut *self.window.lock());
        let budget = self.budget_spans_per_sec * self.interval_secs;
        let mut current = self.current.lock();
        for (tenant, ops) in window {
            let mut next = solve(&ops, budget, self.min_traces);
            // An operation quiet this interval keeps its last probability: its SDKs still
            // ask, and one quiet interval says nothing about its rate.
            if let Some(previous) = current.get(&tenant) {
                for (op, p) in &previous.per_operation {
                    next.per_operation.entry(op.clone()).or_insert(*p);
                }
            }
            current.insert(tenant, next);
        }
    }

    /// The probability for a trace rooted at `root`; 1 before the first interval.
    pub fn probability(&self, tenant: &TenantId, root: Option<&Operation>) -> f64 {
        let current = self.current.lock();
        let Some(p) = current.get(tenant) else {
            return 1.0;
        };
        root.and_then(|r| p.per_operation.get(r))
            .copied()
            .unwrap_or(p.default)
    }

    pub fn current(&self, tenant: &TenantId) -> Option<Probabilities> {
        self.current.lock().get(tenant).cloned()
    }

    /// Every tenant's probabilities (for /metrics).
    pub fn all(&self) -> Vec<(TenantId, Probabilities)> {
        let mut out: Vec<_> = self
            .current
            .lock()
            .iter()
            .map(|(t, p)| (t.clone(), p.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// One probability `p` for all operations, raised to each operation's floor
/// (`min_traces / traces`), with `p` the largest that keeps the expected spans within
/// `budget` (bisection: the expected spans grow with `p`). When the floors alone exceed the
/// budget, the floors win: a rare operation is never sampled away.
fn solve(ops: &HashMap<Operation, Seen>, budget: f64, min_traces: f64) -> Probabilities {
    let floor = |s: &Seen| (min_traces / s.traces.max(f64::MIN_POSITIVE)).min(1.0);
    let at = |p: f64, s: &Seen| p.max(floor(s)).min(1.0);
    let expected = |p: f64| ops.values().map(|s| at(p, s) * s.spans).sum::<f64>();
    let p = if expected(1.0) <= budget {
        1.0
    } else {
        let (mut lo, mut hi) = (0.0, 1.0);
        for _ in 0..60 {
            let mid = (lo + hi) / 2.0;
            if expected(mid) <= budget {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    };
    Probabilities {
        default: p,
        per_operation: ops.iter().map(|(op, s)| (op.clone(), at(p, s))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str) -> Operation {
        ("svc".into(), name.into())
    }

    #[test]
    fn holds_the_budget_and_keeps_rare_operations() {
        // 60 s interval, budget 100 spans/s = 6000 spans. "hot": 10000 traces of 5 spans;
        // "rare": 3 traces of 2 spans, floor 2 traces.
        let a = Adaptive::new(100.0, 60, 2);
        let t = TenantId::default();
        for _ in 0..10_000 {
            a.observe(&t, &op("hot"), 5, 1.0);
        }
        for _ in 0..3 {
            a.observe(&t, &op("rare"), 2, 1.0);
        }
        assert_eq!(a.probability(&t, Some(&op("hot"))), 1.0);
        a.recompute();
        let hot = a.probability(&t, Some(&op("hot")));
        let rare = a.probability(&t, Some(&op("rare")));
        let expected = hot * 50_000.0 + rare * 6.0;
        assert!(expected <= 6000.0 && expected > 5990.0, "{expected}");
        assert!((rare - 2.0 / 3.0).abs() < 1e-9, "{rare}");
        // Weighted observations (a head sampler at 1/10): the same rates, the same answer.
        for _ in 0..1000 {
            a.observe(&t, &op("hot"), 5, 10.0);
        }
        a.recompute();
        assert!((a.probability(&t, Some(&op("hot"))) - 6000.0 / 50_000.0).abs() < 1e-3);
    }

    #[test]
    fn under_budget_keeps_everything() {
        let a = Adaptive::new(1000.0, 10, 1);
        let t = TenantId::default();
        a.observe(&t, &op("x"), 10, 1.0);
        a.recompute();
        assert_eq!(a.probability(&t, None), 1.0);
    }
}
