//! Two traces side by side — a slow one against a normal one of the same operation: which
//! spans the second has that the first has not (added), which it lacks (missing), and which
//! take longer or shorter, in all and in their own (self) time.
//!
//! Spans are matched by their path in the tree: the service and name of each ancestor and of
//! the span itself. Spans with the same path (a loop of database calls) are one row, with how
//! many there are on each side and their summed durations.

use super::trace_tree;
use crate::model::{Span, TraceId};
use serde::Serialize;
use std::collections::BTreeMap;

/// A change smaller than this (or than `RELATIVE`) is no change.
const ABSOLUTE_NS: u64 = 1_000_000;
const RELATIVE: f64 = 0.2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub service: String,
    pub operation: String,
}

/// One side of a row: how many spans have the path, and their summed time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Side {
    pub spans: usize,
    pub errors: usize,
    pub duration_ns: u64,
    pub self_time_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the second trace.
    Added,
    /// Only in the first.
    Missing,
    Slower,
    Faster,
    Same,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// From the root down to the span.
    pub path: Vec<Step>,
    pub base: Side,
    pub other: Side,
    pub change: Change,
    /// Second minus first.
    pub duration_delta_ns: i64,
    pub self_time_delta_ns: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceSide {
    pub trace_id: TraceId,
    pub duration_ns: u64,
    pub spans: usize,
    pub errors: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub base: TraceSide,
    pub other: TraceSide,
    pub duration_delta_ns: i64,
    /// Largest self-time change first; unchanged rows last.
    pub rows: Vec<Row>,
    pub added: usize,
    pub missing: usize,
    pub slower: usize,
    pub faster: usize,
}

fn delta(a: u64, b: u64) -> i64 {
    (b as i128 - a as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Spans of one trace grouped by tree path.
fn by_path(spans: &[Span]) -> BTreeMap<Vec<(String, String)>, Side> {
    let tree = trace_tree::build(spans, &[]);
    let mut out: BTreeMap<Vec<(String, String)>, Side> = BTreeMap::new();
    let mut stack: Vec<(String, String)> = Vec::new();
    for node in &tree.nodes {
        let s = &spans[node.span];
        stack.truncate(node.depth);
        stack.push((s.service.clone(), s.name.clone()));
        let side = out.entry(stack.clone()).or_default();
        side.spans += 1;
        side.errors += s.failed() as usize;
        side.duration_ns += s.duration_ns();
        side.self_time_ns += node.self_time_ns;
    }
    out
}

fn trace_side(id: TraceId, spans: &[Span]) -> TraceSide {
    let start = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let end = spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
    TraceSide {
        trace_id: id,
        duration_ns: end.saturating_sub(start),
        spans: spans.len(),
        errors: spans.iter().filter(|s| s.failed()).count(),
    }
}

fn change(base: &Side, other: &Side) -> Change {
    if base.spans == 0 {
        return Change::Added;
    }
    if other.spans == 0 {
        return Change::Missing;
    }
    let (a, b) = (base.duration_ns, other.duration_ns);
    let moved = a.abs_diff(b);
    if moved < ABSOLUTE_NS || (moved as f64) < RELATIVE * a.max(1) as f64 {
        Change::Same
    } else if b > a {
        Change::Slower
    } else {
        Change::Faster
    }
}

/// `other` against `base`.
pub fn compare(
    base_id: TraceId,
    base_spans: &[Span],
    other_id: TraceId,
    other_spans: &[Span],
) -> Comparison {
    let (a, b) = (by_path(base_spans), by_path(other_spans));
    let mut paths: Vec<&Vec<(String, String)>> = a.keys().chain(b.keys()).collect();
    paths.sort();
    paths.dedup();
    let empty = Side::default();
    let mut rows: Vec<Row> = paths
        .into_iter()
        .map(|p| {
            let (base, other) = (a.get(p).unwrap_or(&empty), b.get(p).unwrap_or(&empty));
            Row {
                path: p
                    .iter()
                    .map(|(service, operation)| Step {
                        service: service.clone(),
                        operation: operation.clone(),
                    })
                    .collect(),
                change: change(base, other),
                duration_delta_ns: delta(base.duration_ns, other.duration_ns),
                self_time_delta_ns: delta(base.self_time_ns, other.self_time_ns),
                base: base.clone(),
                other: other.clone(),
            }
        })
        .collect();
    rows.sort_by_key(|r| {
        (
            r.change == Change::Same,
            std::cmp::Reverse(r.self_time_delta_ns.unsigned_abs()),
        )
    });
    let count = |c: Change| rows.iter().filter(|r| r.change == c).count();
    let (base, other) = (
        trace_side(base_id, base_spans),
        trace_side(other_id, other_spans),
    );
    Comparison {
        duration_delta_ns: delta(base.duration_ns, other.duration_ns),
        added: count(Change::Added),
        missing: count(Change::Missing),
        slower: count(Change::Slower),
        faster: count(Change::Faster),
        base,
        other,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::span;

    fn named(mut s: Span, service: &str, name: &str) -> Span {
        s.service = service.into();
        s.name = name.into();
        s
    }

    #[test]
    fn added_missing_slower_and_self_time() {
        // Normal: root 0..100 → db 10..30, cache 40..50.
        let normal = vec![
            named(span(1, None, 0, 100), "api", "GET"),
            named(span(2, Some(1), 10, 30), "db", "SELECT"),
            named(span(3, Some(1), 40, 50), "cache", "GET"),
        ];
        // Slow: root 0..400 → db 10..300 twice as a retry 300..390; no cache; a new queue call.
        let slow = vec![
            named(span(1, None, 0, 4_000_000), "api", "GET"),
            named(span(2, Some(1), 10, 3_000_000), "db", "SELECT"),
            named(span(4, Some(1), 3_000_000, 3_900_000), "db", "SELECT"),
            named(span(5, Some(1), 3_900_000, 3_950_000), "queue", "publish"),
        ];
        let c = compare(TraceId([1; 16]), &normal, TraceId([2; 16]), &slow);
        let row = |service: &str| {
            c.rows
                .iter()
                .find(|r| r.path.last().unwrap().service == service)
                .unwrap()
        };
        assert_eq!(row("queue").change, Change::Added);
        assert_eq!(row("cache").change, Change::Missing);
        let db = row("db");
        assert_eq!(db.change, Change::Slower);
        assert_eq!((db.base.spans, db.other.spans), (1, 2));
        assert_eq!(db.path.len(), 2, "root then db");
        // The root's own time: 100 - 30 = 70 before; 4 ms less 10..3.95 ms after.
        let root = row("api");
        assert_eq!(root.base.self_time_ns, 70);
        assert_eq!(root.other.self_time_ns, 50_010);
        assert_eq!((c.added, c.missing), (1, 1));
        assert_eq!(c.duration_delta_ns, 4_000_000 - 100);
        // The largest self-time change comes first.
        assert_eq!(c.rows[0].path.last().unwrap().service, "db");
    }
}
