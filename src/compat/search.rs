//! Trace search for Tempo and Jaeger, on weft's own trace search (`correlate::trace_search`):
//! what a filter surely needs goes to the index as a `TraceQuery`; each trace found is then
//! read whole and kept when one of its spans meets the whole filter (TraceQL's `||`, regexes
//! and comparisons the index cannot answer) and the trace-level conditions.
//!
//! Bound: at most `MAX_TRACES_READ` traces are read whole per search (`trace_search`'s page
//! limit); fewer than asked come back when the filter rejects more than the overscan, and the
//! answer says how many were inspected.

use super::traceql::{Pushdown, SpanFilter, TraceFacts};
use crate::correlate::correlator::{CorrelateError, Correlator};
use crate::correlate::trace_search::{self, SpanStatus, TraceOrder, TraceQuery, TraceSummary};
use crate::model::{Span, TenantId};

/// Traces read whole per search, at most.
pub const MAX_TRACES_READ: usize = trace_search::MAX_LIMIT;
/// How many more traces than asked the index is asked for when the filter checks more than
/// the index could.
const OVERSCAN: usize = 4;

/// What a search asks, beyond the span filter.
#[derive(Debug, Clone)]
pub struct Search {
    pub filter: SpanFilter,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Trace duration, at least and at most (Tempo's `minDuration`/`maxDuration`).
    pub min_trace_ns: Option<u64>,
    pub max_trace_ns: Option<u64>,
    pub limit: usize,
}

/// A trace found: its summary, its spans, and which of them met the filter.
pub struct Found {
    pub summary: TraceSummary,
    pub spans: Vec<Span>,
    pub matched: Vec<usize>,
}

pub struct Results {
    pub traces: Vec<Found>,
    pub inspected: usize,
}

fn query(p: Pushdown, s: &Search, limit: usize) -> TraceQuery {
    TraceQuery {
        service: p.service,
        operation: p.name,
        min_duration_ns: p.min_duration_ns,
        max_duration_ns: p.max_duration_ns,
        status: p.status_error.then_some(SpanStatus::Error),
        attributes: p.attributes,
        start_ns: s.start_ns,
        end_ns: s.end_ns,
        order: TraceOrder::Newest,
        limit,
    }
}

/// The newest traces of the window with a span that meets `s.filter`, up to `s.limit`.
pub fn search(c: &Correlator, tenant: &TenantId, s: &Search) -> Result<Results, CorrelateError> {
    let pushdown = s.filter.pushdown();
    let limit = s.limit.clamp(1, MAX_TRACES_READ);
    let ask = (limit * OVERSCAN).min(MAX_TRACES_READ);
    let found = c.search_traces(tenant, &query(pushdown, s, ask))?;
    let mut out = Results {
        traces: Vec::new(),
        inspected: 0,
    };
    for summary in found.traces {
        if out.traces.len() >= limit {
            break;
        }
        if s.min_trace_ns.is_some_and(|m| summary.duration_ns < m)
            || s.max_trace_ns.is_some_and(|m| summary.duration_ns > m)
        {
            continue;
        }
        out.inspected += 1;
        let spans = match c.trace_spans(tenant, summary.trace_id) {
            Ok(spans) => spans,
            // Deleted (retention, sampling) since the search found it.
            Err(CorrelateError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        let facts = TraceFacts {
            duration_ns: summary.duration_ns,
            root_name: summary.root_operation.clone(),
            root_service: summary.root_service.clone(),
        };
        let matched: Vec<usize> = spans
            .iter()
            .enumerate()
            .filter(|(_, sp)| s.filter.matches(sp, &facts))
            .map(|(i, _)| i)
            .collect();
        if !matched.is_empty() {
            out.traces.push(Found {
                summary,
                spans,
                matched,
            });
        }
    }
    Ok(out)
}
