//! Suspected origin of an incident: which service's own work or own failures explain it.
//!
//! For each service, three kinds of evidence, each a share among the services:
//! - latency: how much its self time on the critical path grew per trace, window vs baseline
//!   (a slow database behind a service shows up as that service's self time, not its
//!   callers', who only wait);
//! - errors: in how many more failed traces it is the error origin — a failed span with no
//!   failed child — than in the baseline;
//! - timing: its first anomaly came first (1), second (1/2), …
//!
//! score = 0.45 × latency share + 0.45 × error share + 0.10 × timing.

use super::trace_tree;
use crate::model::{Span, SpanId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    pub service: String,
    pub score: f64,
    pub latency_share: f64,
    pub error_share: f64,
    pub timing: f64,
    pub evidence: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy)]
struct PerService {
    self_time_ns: f64,
    error_origins: f64,
}

/// Per service: critical-path self time and error-origin count of one trace.
fn trace_evidence(spans: &[Span]) -> BTreeMap<String, PerService> {
    let mut out: BTreeMap<String, PerService> = BTreeMap::new();
    let tree = trace_tree::build(spans, &[]);
    for n in tree.nodes.iter().filter(|n| n.on_critical_path) {
        let s = &spans[n.span];
        out.entry(s.service.clone()).or_default().self_time_ns += n.self_time_ns as f64;
    }
    let failed_parents: HashSet<SpanId> = spans
        .iter()
        .filter(|s| s.status_code == 2)
        .filter_map(|s| s.parent_span_id)
        .collect();
    for s in spans.iter().filter(|s| s.status_code == 2) {
        if !failed_parents.contains(&s.span_id) {
            out.entry(s.service.clone()).or_default().error_origins += 1.0;
        }
    }
    out
}

fn totals(traces: &[Vec<Span>]) -> (BTreeMap<String, PerService>, usize) {
    let mut sum: BTreeMap<String, PerService> = BTreeMap::new();
    for t in traces {
        for (service, e) in trace_evidence(t) {
            let acc = sum.entry(service).or_default();
            acc.self_time_ns += e.self_time_ns;
            // A trace counts once per service it has an error origin in.
            acc.error_origins += e.error_origins.min(1.0);
        }
    }
    (sum, traces.len())
}

/// Ranks services, best suspect first. `first_anomaly` lists services in the order their
/// first anomaly started.
pub fn rank(window: &[Vec<Span>], baseline: &[Vec<Span>], first_anomaly: &[String]) -> Vec<Origin> {
    let (w, nw) = totals(window);
    let (b, nb) = totals(baseline);
    let per = |m: &BTreeMap<String, PerService>, n: usize, s: &str| {
        let e = m.get(s).copied().unwrap_or_default();
        let n = n.max(1) as f64;
        (e.self_time_ns / n, e.error_origins / n)
    };
    let mut services: Vec<String> = w.keys().cloned().collect();
    for s in first_anomaly {
        if !services.contains(s) {
            services.push(s.clone());
        }
    }
    let growth: Vec<(f64, f64)> = services
        .iter()
        .map(|s| {
            let (lw, ew) = per(&w, nw, s);
            let (lb, eb) = per(&b, nb, s);
            ((lw - lb).max(0.0), (ew - eb).max(0.0))
        })
        .collect();
    let lat_total: f64 = growth.iter().map(|g| g.0).sum();
    let err_total: f64 = growth.iter().map(|g| g.1).sum();
    let mut out: Vec<Origin> = services
        .iter()
        .zip(&growth)
        .map(|(s, &(dl, de))| {
            let latency_share = if lat_total > 0.0 { dl / lat_total } else { 0.0 };
            let error_share = if err_total > 0.0 { de / err_total } else { 0.0 };
            let timing = first_anomaly
                .iter()
                .position(|x| x == s)
                .map_or(0.0, |i| 1.0 / (i as f64 + 1.0));
            let (lw, ew) = per(&w, nw, s);
            let (lb, eb) = per(&b, nb, s);
            let mut evidence = Vec::new();
            if dl > 0.0 {
                evidence.push(format!(
                    "critical-path self time {:.0} ms per trace, {:.0} ms in the baseline \
                     ({:.0}% of the growth, {nw} traces vs {nb})",
                    lw / 1e6,
                    lb / 1e6,
                    latency_share * 100.0
                ));
            }
            if de > 0.0 {
                evidence.push(format!(
                    "error origin in {:.0}% of traces, {:.0}% in the baseline ({:.0}% of the \
                     growth)",
                    ew * 100.0,
                    eb * 100.0,
                    error_share * 100.0
                ));
            }
            if let Some(i) = first_anomaly.iter().position(|x| x == s) {
                evidence.push(format!("its first anomaly was number {} to start", i + 1));
            }
            Origin {
                service: s.clone(),
                score: 0.45 * latency_share + 0.45 * error_share + 0.10 * timing,
                latency_share,
                error_share,
                timing,
                evidence,
            }
        })
        .filter(|o| o.score > 0.0)
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.service.cmp(&b.service)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::span;

    const MS: u64 = 1_000_000;

    /// frontend(1) → checkout(2) → inventory(3), durations given per service's own work.
    fn chain(front_self: u64, checkout_self: u64, inventory: u64, failing: bool) -> Vec<Span> {
        let mut inv = span(3, Some(2), 0, inventory * MS);
        inv.service = "inventory".into();
        let mut co = span(2, Some(1), 0, (inventory + checkout_self) * MS);
        co.service = "checkout".into();
        let mut fe = span(1, None, 0, (inventory + checkout_self + front_self) * MS);
        fe.service = "frontend".into();
        if failing {
            for s in [&mut inv, &mut co, &mut fe] {
                s.status_code = 2;
            }
        }
        vec![fe, co, inv]
    }

    #[test]
    fn the_service_whose_own_work_grew_and_failed_first_ranks_first() {
        let baseline: Vec<Vec<Span>> = (0..10).map(|_| chain(5, 10, 8, false)).collect();
        // Inventory slows from 8 to 808 ms; half of the traces fail from inventory up.
        let window: Vec<Vec<Span>> = (0..10).map(|i| chain(5, 10, 808, i % 2 == 0)).collect();
        let order = vec!["checkout".to_string(), "inventory".to_string()];
        let ranked = rank(&window, &baseline, &order);
        assert_eq!(ranked[0].service, "inventory", "{ranked:?}");
        // All latency growth and all error-origin growth are inventory's.
        assert!((ranked[0].latency_share - 1.0).abs() < 1e-9);
        assert!((ranked[0].error_share - 1.0).abs() < 1e-9);
        assert!((ranked[0].score - (0.45 + 0.45 + 0.10 * 0.5)).abs() < 1e-9);
        // Checkout's only evidence is its earlier anomaly.
        assert_eq!(ranked[1].service, "checkout");
        assert!((ranked[1].score - 0.10).abs() < 1e-9);
        assert!(ranked[0].evidence[0].contains("808 ms per trace, 8 ms in the baseline"));
        assert!(ranked.iter().all(|o| o.service != "frontend"));
    }
}
