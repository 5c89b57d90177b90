//! The service map: services and the calls between them, read from the spans of a window — a
//! call is a span whose parent span belongs to another service — with request rate, error
//! rate and p95 per service and per call.
//!
//! Bounded: the newest `MAX_MAP_SPANS` spans of the window are read. When the window holds
//! more, the map covers the part of the window those spans span, and says so; rates are per
//! second of what was covered. A span whose parent fell outside what was read counts for its
//! service but draws no call.

use super::latency::quantile;
use crate::index::{Filter, IndexError, Pick, Store};
use crate::model::{ns_string, rfc3339, SpanId, TenantId};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Spans read, at most, for one map.
pub const MAX_MAP_SPANS: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub requests: usize,
    pub errors: usize,
    pub rate_per_sec: f64,
    pub error_rate: f64,
    pub p95_ns: u64,
}

/// A service; its requests are its entry spans (no parent, or a parent in another service).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub service: String,
    /// Every span of the service that was read.
    pub spans: usize,
    /// Requests that start a trace here (no parent span).
    pub roots: usize,
    #[serde(flatten)]
    pub stats: Stats,
}

/// Calls from one service to another: the callee's entry spans under a caller's span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    #[serde(flatten)]
    pub stats: Stats,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceMap {
    #[serde(serialize_with = "ns_string")]
    pub start_time_unix_nano: u64,
    #[serde(serialize_with = "ns_string")]
    pub end_time_unix_nano: u64,
    pub start: String,
    pub end: String,
    /// Where the spans read begin: the window's start unless the bound cut it.
    #[serde(serialize_with = "ns_string")]
    pub covered_from_unix_nano: u64,
    pub covered_from: String,
    pub spans_read: usize,
    pub spans_in_window: u64,
    pub complete: bool,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

#[derive(Default)]
struct Acc {
    requests: usize,
    errors: usize,
    durations: Vec<u64>,
}

impl Acc {
    fn add(&mut self, duration: u64, failed: bool) {
        self.requests += 1;
        self.errors += failed as usize;
        self.durations.push(duration);
    }

    fn stats(mut self, secs: f64) -> Stats {
        self.durations.sort_unstable();
        Stats {
            requests: self.requests,
            errors: self.errors,
            rate_per_sec: round3(self.requests as f64 / secs),
            error_rate: round3(self.errors as f64 / self.requests.max(1) as f64),
            p95_ns: quantile(&self.durations, 0.95).unwrap_or(0),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn build(
    store: &Store,
    tenant: &TenantId,
    start_ns: u64,
    end_ns: u64,
) -> Result<ServiceMap, IndexError> {
    let f = Filter {
        start_ns,
        end_ns,
        ..Filter::default()
    };
    let read = store.matching_spans(tenant, &f, Pick::Newest, MAX_MAP_SPANS, |_| false)?;
    let spans = &read.spans;
    let complete = spans.len() as u64 >= read.matched;
    let covered_from = if complete {
        start_ns
    } else {
        spans.iter().map(|s| s.start_ns).min().unwrap_or(start_ns)
    };
    let secs = ((end_ns.saturating_sub(covered_from)) as f64 / 1e9).max(1e-3);
    let service_of: HashMap<SpanId, &str> = spans
        .iter()
        .map(|s| (s.span_id, s.service.as_str()))
        .collect();
    let mut nodes: BTreeMap<&str, (usize, usize, Acc)> = BTreeMap::new();
    let mut edges: BTreeMap<(&str, &str), Acc> = BTreeMap::new();
    for s in spans {
        let failed = s.failed();
        let node = nodes.entry(s.service.as_str()).or_default();
        node.0 += 1;
        match s.parent_span_id {
            None => {
                node.1 += 1;
                node.2.add(s.duration_ns(), failed);
            }
            Some(p) => match service_of.get(&p) {
                Some(&caller) if caller != s.service => {
                    node.2.add(s.duration_ns(), failed);
                    edges
                        .entry((caller, s.service.as_str()))
                        .or_default()
                        .add(s.duration_ns(), failed);
                }
                Some(_) => {}
                // The parent was not read (outside the window, or not arrived): an entry.
                None => node.2.add(s.duration_ns(), failed),
            },
        }
    }
    Ok(ServiceMap {
        start_time_unix_nano: start_ns,
        end_time_unix_nano: end_ns,
        start: rfc3339(start_ns),
        end: rfc3339(end_ns),
        covered_from_unix_nano: covered_from,
        covered_from: rfc3339(covered_from),
        spans_read: spans.len(),
        spans_in_window: read.matched,
        complete,
        nodes: nodes
            .into_iter()
            .map(|(service, (spans, roots, acc))| Node {
                service: service.to_string(),
                spans,
                roots,
                stats: acc.stats(secs),
            })
            .collect(),
        edges: edges
            .into_iter()
            .map(|((from, to), acc)| Edge {
                from: from.to_string(),
                to: to.to_string(),
                stats: acc.stats(secs),
            })
            .collect(),
    })
}
