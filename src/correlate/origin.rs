//! Suspected origin of an incident: which service's own work or own failures explain it.
//!
//! The evidence, per service, from all three signals:
//! - **latency** (traces): how much the service's own time on the critical path grew per trace,
//!   window vs baseline. Only the moments a span is on the critical path count, so a caller
//!   that only waits for a slower callee does not grow. The time a client span waits beyond
//!   its callee's server span (network, a queue, a connection pool in front of the callee) is
//!   the *call's* time: it is counted for the callee, as "calls into it waited", not for the
//!   caller. A client span with no instrumented callee (a database) is the caller's own work;
//! - **errors** (traces and logs): in how many more traces the service is an error origin — it
//!   has a failed span none of whose descendants failed — than in the baseline. A span failed
//!   by `Span::failed` (status error, or, for the many systems that never set status, HTTP
//!   ≥ 500, a non-zero gRPC status or an exception event), or when an ERROR log names it. A client span
//!   that failed while its callee's server span did not (a wrong answer the caller rejected)
//!   is a failure of the call, counted for the callee;
//! - **signals** (logs and metrics): the service's own anomalies other than its RED latency and
//!   errors — error-log rates, new or over-represented log templates, resource and runtime
//!   metrics tied to it by resource attributes — each weighted by its robust score;
//! - **timing**: its first anomaly came first (1), second (1/2), …; services whose first
//!   anomalies began in the same step share the rank.
//!
//! Each of the first three is a share among the services (shares sum to 1 when any service
//! has that evidence), so no unit dominates another:
//!
//! score = 0.35 × Wl × latency share + 0.35 × We × error share + 0.15 × signal share
//!         + 0.15 × timing,
//!
//! where Wl and We weigh each trace signal by the size of the whole change, so that a share of
//! a tiny change counts little: Wl = growth of the mean trace's critical path / its baseline
//! length (at most 1), We = growth of the share of traces with an error origin / 10 points
//! (at most 1).
//!
//! Equal scores are ordered by the stronger evidence (latency + errors + signals shares),
//! then by depth in the call graph (a callee before its caller, as a callee explains its
//! caller and not the other way round), then by name only to stay deterministic.
//!
//! A service with anomalies but little own growth says why it ranks low: which callee the
//! growth of its spans is explained by.

use super::trace_tree;
use crate::model::{LogRecord, Span, SpanId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// OTLP span kinds.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;
/// Log severity number of ERROR.
const SEVERITY_ERROR: i32 = 17;

/// One piece of evidence, with its figures before (baseline) and during (window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// `traces`, `logs`, `metrics` or `timing`.
    pub signal: String,
    pub what: String,
    pub before: f64,
    pub during: f64,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    pub service: String,
    pub score: f64,
    pub latency_share: f64,
    pub error_share: f64,
    #[serde(default)]
    pub signal_share: f64,
    pub timing: f64,
    /// The evidence in words.
    pub evidence: Vec<String>,
    /// The same evidence with figures, per signal.
    #[serde(default)]
    pub signals: Vec<Evidence>,
    /// For a service ranked down: why (a callee explains its growth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranked_down: Option<String>,
}

/// A service's anomaly (or over-represented log template) as origin ranking weighs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    pub service: String,
    /// `errors`, `latency`, `error_logs`, `log_template` or `metric`.
    pub signal: String,
    pub what: String,
    pub start_ns: u64,
    pub score: f64,
    pub before: f64,
    pub during: f64,
    pub unit: String,
}

/// One trace with the logs that carry its ID.
#[derive(Debug, Clone, Default)]
pub struct TraceSample {
    pub spans: Vec<Span>,
    pub logs: Vec<LogRecord>,
}

/// Per service, what one trace shows.
#[derive(Debug, Default, Clone, Copy)]
struct PerService {
    own_ns: f64,
    /// Waiting of callers' client spans beyond this service's server spans.
    wait_ns: f64,
    error_origin: bool,
}

struct TraceFacts {
    per: BTreeMap<String, PerService>,
    /// Caller → callees seen.
    edges: Vec<(String, String)>,
    depth: BTreeMap<String, usize>,
}

fn trace_facts(t: &TraceSample) -> TraceFacts {
    let spans = &t.spans;
    let tree = trace_tree::build(spans, &[]);
    let by_id: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    let parent = |i: usize| {
        spans[i]
            .parent_span_id
            .and_then(|p| by_id.get(&p).copied())
            .filter(|&p| p != i)
    };
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    for i in 0..spans.len() {
        if let Some(p) = parent(i) {
            children[p].push(i);
        }
    }
    // A client span's callee: its child of another service that serves the call.
    let callee = |i: usize| {
        children[i].iter().copied().find(|&c| {
            spans[c].service != spans[i].service && matches!(spans[c].kind, SERVER | CONSUMER | 0)
        })
    };
    let mut out = TraceFacts {
        per: BTreeMap::new(),
        edges: Vec::new(),
        depth: BTreeMap::new(),
    };
    for n in &tree.nodes {
        let s = &spans[n.span];
        let d = out.depth.entry(s.service.clone()).or_insert(n.depth);
        *d = (*d).min(n.depth);
        let own = n.critical_self_ns as f64;
        match (matches!(s.kind, CLIENT | PRODUCER), callee(n.span)) {
            (true, Some(c)) => out.per.entry(spans[c].service.clone()).or_default().wait_ns += own,
            _ => out.per.entry(s.service.clone()).or_default().own_ns += own,
        }
        if let Some(p) = parent(n.span) {
            if spans[p].service != s.service {
                out.edges
                    .push((spans[p].service.clone(), s.service.clone()));
            }
        }
    }
    // Failures: by span, plus the spans (or, without a span, the service's root-most span)
    // an ERROR log names.
    let mut bad: Vec<bool> = spans.iter().map(Span::failed).collect();
    for l in t
        .logs
        .iter()
        .filter(|l| l.severity_number >= SEVERITY_ERROR)
    {
        let at = l
            .span_id
            .and_then(|id| by_id.get(&id).copied())
            .or_else(|| {
                tree.nodes
                    .iter()
                    .find(|n| spans[n.span].service == l.service)
                    .map(|n| n.span)
            });
        if let Some(i) = at {
            bad[i] = true;
        }
    }
    // An error origin: a failed span with no failed descendant.
    let mut failed_below = vec![false; spans.len()];
    for n in tree.nodes.iter().rev() {
        if let Some(p) = parent(n.span) {
            if bad[n.span] || failed_below[n.span] {
                failed_below[p] = true;
            }
        }
    }
    for i in 0..spans.len() {
        if bad[i] && !failed_below[i] {
            // A call that failed although its callee's server span did not (a wrong answer
            // the caller rejected, a connection cut) is the call's failure, as its waiting
            // is: counted for the callee.
            let at = match (matches!(spans[i].kind, CLIENT | PRODUCER), callee(i)) {
                (true, Some(c)) => c,
                _ => i,
            };
            out.per
                .entry(spans[at].service.clone())
                .or_default()
                .error_origin = true;
        }
    }
    out.edges.sort();
    out.edges.dedup();
    out
}

#[derive(Default)]
struct Totals {
    per: BTreeMap<String, (f64, f64, f64)>,
    n: usize,
}

impl Totals {
    fn mean(&self, s: &str) -> (f64, f64, f64) {
        let n = self.n.max(1) as f64;
        let (a, b, c) = self.per.get(s).copied().unwrap_or_default();
        (a / n, b / n, c / n)
    }
}

fn totals(
    traces: &[TraceSample],
    edges: &mut Vec<(String, String)>,
    depth: &mut BTreeMap<String, usize>,
) -> Totals {
    let mut t = Totals {
        n: traces.len(),
        ..Totals::default()
    };
    for tr in traces {
        let f = trace_facts(tr);
        for (s, e) in f.per {
            let acc = t.per.entry(s).or_default();
            acc.0 += e.own_ns;
            acc.1 += e.wait_ns;
            acc.2 += f64::from(u8::from(e.error_origin));
        }
        edges.extend(f.edges);
        for (s, d) in f.depth {
            let x = depth.entry(s).or_insert(d);
            *x = (*x).min(d);
        }
    }
    t
}

fn share(x: f64, total: f64) -> f64 {
    if total > 0.0 {
        x / total
    } else {
        0.0
    }
}

/// Ranks services, best suspect first, from window and baseline traces sampled the same way
/// and the incident's anomalies.
pub fn rank(
    window: &[TraceSample],
    baseline: &[TraceSample],
    sightings: &[Sighting],
) -> Vec<Origin> {
    let mut edges = Vec::new();
    let mut depth = BTreeMap::new();
    let w = totals(window, &mut edges, &mut depth);
    let b = totals(baseline, &mut edges, &mut depth);
    edges.sort();
    edges.dedup();
    let mut services: Vec<String> = w.per.keys().cloned().collect();
    for s in sightings
        .iter()
        .map(|s| &s.service)
        .filter(|s| !s.is_empty())
    {
        if !services.contains(s) {
            services.push(s.clone());
        }
    }
    services.sort();
    // Timing: rank of the step each service's first anomaly began in, ties sharing it.
    let mut first: BTreeMap<&str, u64> = BTreeMap::new();
    // Log templates are counted over the whole window: they have no start of their own.
    for s in sightings.iter().filter(|s| s.signal != "log_template") {
        let f = first.entry(&s.service).or_insert(s.start_ns);
        *f = (*f).min(s.start_ns);
    }
    let mut starts: Vec<u64> = first.values().copied().collect();
    starts.sort_unstable();
    starts.dedup();
    let timing = |s: &str| {
        first
            .get(s)
            .and_then(|t| starts.iter().position(|x| x == t))
            .map_or(0.0, |i| 1.0 / (i as f64 + 1.0))
    };
    let signal_strength = |s: &str| -> f64 {
        sightings
            .iter()
            .filter(|x| x.service == s && !matches!(x.signal.as_str(), "errors" | "latency"))
            .map(|x| x.score.abs().min(100.0))
            .sum()
    };
    struct Growth {
        lat: f64,
        err: f64,
        sig: f64,
    }
    let growth: Vec<Growth> = services
        .iter()
        .map(|s| {
            let (ow, ww, ew) = w.mean(s);
            let (ob, wb, eb) = b.mean(s);
            Growth {
                lat: ((ow + ww) - (ob + wb)).max(0.0),
                err: (ew - eb).max(0.0),
                sig: signal_strength(s),
            }
        })
        .collect();
    let lat_total: f64 = growth.iter().map(|g| g.lat).sum();
    let err_total: f64 = growth.iter().map(|g| g.err).sum();
    let sig_total: f64 = growth.iter().map(|g| g.sig).sum();
    let (nw, nb) = (w.n, b.n);
    // How much each trace signal says at all: shares of a tiny change are still shares, so
    // each is weighed by the size of the whole change — the growth of the mean trace's
    // critical path against its baseline length (full weight at +100 %), and the growth of
    // the share of traces with an error origin (full weight at +10 points).
    let base_len: f64 = services
        .iter()
        .map(|s| {
            let (o, wt, _) = b.mean(s);
            o + wt
        })
        .sum();
    let lat_weight = if base_len > 0.0 {
        (lat_total / base_len).min(1.0)
    } else {
        f64::from(u8::from(lat_total > 0.0))
    };
    let err_weight = (err_total / 0.10).min(1.0);
    let mut out: Vec<Origin> = services
        .iter()
        .zip(&growth)
        .map(|(s, g)| {
            let latency_share = share(g.lat, lat_total);
            let error_share = share(g.err, err_total);
            let signal_share = share(g.sig, sig_total);
            let timing = timing(s);
            let (ow, ww, ew) = w.mean(s);
            let (ob, wb, eb) = b.mean(s);
            let mut signals = Vec::new();
            if (ow - ob).max(0.0) > 0.0 && g.lat > 0.0 {
                signals.push(Evidence {
                    signal: "traces".into(),
                    what: format!("own critical-path time per trace ({nw} traces vs {nb})"),
                    before: ob / 1e6,
                    during: ow / 1e6,
                    unit: "ms".into(),
                });
            }
            if ww - wb > 0.0 && g.lat > 0.0 {
                signals.push(Evidence {
                    signal: "traces".into(),
                    what: "callers' wait beyond its server spans per trace (network, queue)".into(),
                    before: wb / 1e6,
                    during: ww / 1e6,
                    unit: "ms".into(),
                });
            }
            if g.err > 0.0 {
                signals.push(Evidence {
                    signal: "traces".into(),
                    what: "traces in which it is the error origin".into(),
                    before: eb * 100.0,
                    during: ew * 100.0,
                    unit: "%".into(),
                });
            }
            let mut own: Vec<&Sighting> = sightings
                .iter()
                .filter(|x| x.service == *s && !matches!(x.signal.as_str(), "errors" | "latency"))
                .collect();
            own.sort_by(|a, b| {
                b.score
                    .abs()
                    .total_cmp(&a.score.abs())
                    .then(a.what.cmp(&b.what))
            });
            for x in own.iter().take(5) {
                signals.push(Evidence {
                    signal: if x.signal == "metric" {
                        "metrics"
                    } else {
                        "logs"
                    }
                    .into(),
                    what: x.what.clone(),
                    before: x.before,
                    during: x.during,
                    unit: x.unit.clone(),
                });
            }
            if let Some(i) = first
                .get(s.as_str())
                .and_then(|t| starts.iter().position(|x| x == t))
            {
                signals.push(Evidence {
                    signal: "timing".into(),
                    what: format!("its first anomaly began in step {} of the incident", i + 1),
                    before: 0.0,
                    during: first[s.as_str()] as f64 / 1e9,
                    unit: "s".into(),
                });
            }
            let evidence = signals
                .iter()
                .map(|e| {
                    if e.signal == "timing" {
                        e.what.clone()
                    } else {
                        format!(
                            "{}: {:.1} {u} before, {:.1} {u} during",
                            e.what,
                            e.before,
                            e.during,
                            u = e.unit
                        )
                    }
                })
                .collect();
            Origin {
                service: s.clone(),
                score: 0.35 * lat_weight * latency_share
                    + 0.35 * err_weight * error_share
                    + 0.15 * signal_share
                    + 0.15 * timing,
                latency_share,
                error_share,
                signal_share,
                timing,
                evidence,
                signals,
                ranked_down: None,
            }
        })
        .filter(|o| o.score > 0.0)
        .collect();
    let strength = |o: &Origin| o.latency_share + o.error_share + o.signal_share;
    let deep = |s: &str| depth.get(s).copied().unwrap_or(0);
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(strength(b).total_cmp(&strength(a)))
            .then(deep(&b.service).cmp(&deep(&a.service)))
            .then(a.service.cmp(&b.service))
    });
    // Why a service with anomalies ranks below another: the callee (direct or further down)
    // with the most evidence explains it.
    let scores: BTreeMap<String, f64> = out
        .iter()
        .map(|o| (o.service.clone(), strength(o)))
        .collect();
    for o in out.iter_mut().skip(1) {
        let mut below: Vec<&String> = Vec::new();
        let mut frontier = vec![&o.service];
        while let Some(x) = frontier.pop() {
            for (_, c) in edges.iter().filter(|(p, c)| p == x && c != &o.service) {
                if !below.contains(&c) && below.len() < 1000 {
                    below.push(c);
                    frontier.push(c);
                }
            }
        }
        let mine = strength(o);
        if let Some((c, v)) = below
            .iter()
            .filter_map(|c| scores.get(*c).map(|v| (*c, *v)))
            .filter(|(_, v)| *v > mine)
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(a.0)))
        {
            o.ranked_down = Some(format!(
                "explained by callee {c} ({:.0}% of the evidence vs {:.0}% its own)",
                v / 3.0 * 100.0,
                mine / 3.0 * 100.0
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::span;
    use crate::model::{AttrValue, KeyValue};

    const MS: u64 = 1_000_000;

    fn sample(spans: Vec<Span>) -> TraceSample {
        TraceSample {
            spans,
            logs: vec![],
        }
    }

    /// frontend(1) → checkout(2) → inventory(3), durations given per service's own work.
    fn chain(front_self: u64, checkout_self: u64, inventory: u64, failing: bool) -> TraceSample {
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
        sample(vec![fe, co, inv])
    }

    fn sighting(service: &str, signal: &str, start_ns: u64) -> Sighting {
        Sighting {
            service: service.into(),
            signal: signal.into(),
            what: format!("{signal} of {service}"),
            start_ns,
            score: 10.0,
            before: 1.0,
            during: 5.0,
            unit: "ms".into(),
        }
    }

    #[test]
    fn the_service_whose_own_work_grew_and_failed_ranks_first() {
        let baseline: Vec<TraceSample> = (0..10).map(|_| chain(5, 10, 8, false)).collect();
        // Inventory slows from 8 to 808 ms; half of the traces fail from inventory up.
        let window: Vec<TraceSample> = (0..10).map(|i| chain(5, 10, 808, i % 2 == 0)).collect();
        let seen = vec![
            sighting("checkout", "latency", 0),
            sighting("inventory", "latency", 5),
        ];
        let ranked = rank(&window, &baseline, &seen);
        assert_eq!(ranked[0].service, "inventory", "{ranked:?}");
        assert!((ranked[0].latency_share - 1.0).abs() < 1e-9);
        assert!((ranked[0].error_share - 1.0).abs() < 1e-9);
        assert!((ranked[0].score - (0.35 + 0.35 + 0.15 * 0.5)).abs() < 1e-9);
        assert_eq!(ranked[1].service, "checkout");
        assert!((ranked[1].score - 0.15).abs() < 1e-9);
        assert!(
            ranked[0].evidence[0].contains("8.0 ms before, 808.0 ms during"),
            "{:?}",
            ranked[0].evidence
        );
        assert!(ranked[1]
            .ranked_down
            .as_deref()
            .unwrap()
            .contains("callee inventory"));
        assert!(ranked.iter().all(|o| o.service != "frontend"));
    }

    #[test]
    fn ties_in_time_share_the_credit_and_are_not_broken_by_name() {
        // Two services start in the same step; only "zeta" has a metric anomaly of its own.
        let baseline: Vec<TraceSample> = (0..5).map(|_| chain(5, 10, 8, false)).collect();
        let seen = vec![
            sighting("alpha", "latency", 10),
            sighting("zeta", "latency", 10),
            sighting("zeta", "metric", 10),
        ];
        let ranked = rank(&baseline, &baseline, &seen);
        assert_eq!(ranked[0].service, "zeta", "{ranked:?}");
        let alpha = ranked.iter().find(|o| o.service == "alpha").unwrap();
        assert_eq!(
            alpha.timing, ranked[0].timing,
            "the same step, the same credit"
        );
    }

    #[test]
    fn failures_without_status_count_and_network_wait_is_the_callees() {
        let mk = |net_ms: u64, failing: bool| {
            // frontend server 0..T → frontend client call → payment server (10 ms work).
            let total = 12 + 2 * net_ms;
            let mut fe = span(1, None, 0, total * MS);
            fe.service = "frontend".into();
            fe.kind = SERVER;
            let mut call = span(2, Some(1), MS, (total - 1) * MS);
            call.service = "frontend".into();
            call.kind = CLIENT;
            let mut pay = span(3, Some(2), (1 + net_ms) * MS, (11 + net_ms) * MS);
            pay.service = "payment".into();
            pay.kind = SERVER;
            if failing {
                pay.attributes.push(KeyValue {
                    key: "http.response.status_code".into(),
                    value: AttrValue::Int(503),
                });
                fe.attributes.push(KeyValue {
                    key: "http.status_code".into(),
                    value: AttrValue::Str("500".into()),
                });
            }
            sample(vec![fe, call, pay])
        };
        let base: Vec<TraceSample> = (0..8).map(|_| mk(1, false)).collect();
        let window: Vec<TraceSample> = (0..8).map(|i| mk(200, i % 2 == 0)).collect();
        let seen = vec![
            sighting("frontend", "latency", 0),
            sighting("payment", "latency", 0),
        ];
        let ranked = rank(&window, &base, &seen);
        assert_eq!(ranked[0].service, "payment", "{ranked:?}");
        assert!((ranked[0].error_share - 1.0).abs() < 1e-9);
        assert!(ranked[0]
            .signals
            .iter()
            .any(|e| e.what.contains("callers' wait")));
        assert!(window[0].spans[2].failed());
        assert!(!window[1].spans[2].failed());
    }
}
