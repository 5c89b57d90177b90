//! A trace as a tree: spans in parent/child order with their depth, each span's own time
//! (its duration less what its children cover), the critical path, and which logs belong to
//! which span. Built iteratively so a deep or malformed trace (orphans, cycles) cannot blow the
//! stack or loop.

use crate::model::{LogRecord, Span, SpanId};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Index into the spans given to `build`.
    pub span: usize,
    pub depth: usize,
    /// Its parent is named but not among the trace's spans (not yet arrived, or dropped).
    pub missing_parent: bool,
    pub on_critical_path: bool,
    /// Duration not covered by any child.
    pub self_time_ns: u64,
    /// Indexes into the logs given to `build`.
    pub logs: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceTree {
    /// Depth-first, children by start time.
    pub nodes: Vec<Node>,
    /// Span IDs on the critical path of the longest root, in start order.
    pub critical_path: Vec<SpanId>,
    /// Logs whose span is not in the trace (or that name no span).
    pub trace_logs: Vec<usize>,
}

/// Length of the union of intervals, each clamped to `[lo, hi)`.
fn covered(mut intervals: Vec<(u64, u64)>, lo: u64, hi: u64) -> u64 {
    intervals.sort_unstable();
    let (mut total, mut cursor) = (0, lo);
    for (s, e) in intervals {
        let (s, e) = (s.max(cursor), e.min(hi));
        if e > s {
            total += e - s;
            cursor = e;
        }
    }
    total
}

pub fn build(spans: &[Span], logs: &[LogRecord]) -> TraceTree {
    let by_id: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        match s.parent_span_id.and_then(|p| by_id.get(&p)) {
            Some(&parent) if parent != i => children[parent].push(i),
            _ => roots.push(i),
        }
    }
    let by_start = |v: &mut Vec<usize>| v.sort_by_key(|&i| (spans[i].start_ns, spans[i].span_id));
    children.iter_mut().for_each(by_start);
    by_start(&mut roots);

    // Depth-first order. Spans caught in a parent cycle are never reached from a root: they
    // are added as roots afterwards, once each.
    let mut visited = vec![false; spans.len()];
    let mut order: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    let walk = |start: usize, order: &mut Vec<(usize, usize)>, visited: &mut Vec<bool>| {
        let mut stack = vec![(start, 0)];
        while let Some((i, depth)) = stack.pop() {
            if std::mem::replace(&mut visited[i], true) {
                continue;
            }
            order.push((i, depth));
            stack.extend(children[i].iter().rev().map(|&c| (c, depth + 1)));
        }
    };
    for &r in &roots {
        walk(r, &mut order, &mut visited);
    }
    for i in 0..spans.len() {
        if !visited[i] {
            walk(i, &mut order, &mut visited);
        }
    }

    let critical = critical_path(spans, &children, &roots);
    let mut nodes: Vec<Node> = order
        .iter()
        .map(|&(i, depth)| {
            let s = &spans[i];
            let kids = children[i]
                .iter()
                .map(|&c| (spans[c].start_ns, spans[c].end_ns))
                .collect();
            Node {
                span: i,
                depth,
                missing_parent: s.parent_span_id.is_some_and(|p| !by_id.contains_key(&p)),
                on_critical_path: critical.contains(&i),
                self_time_ns: s.duration_ns() - covered(kids, s.start_ns, s.end_ns),
                logs: Vec::new(),
            }
        })
        .collect();
    let position: HashMap<usize, usize> = nodes
        .iter()
        .enumerate()
        .map(|(n, node)| (node.span, n))
        .collect();
    let mut trace_logs = Vec::new();
    for (li, log) in logs.iter().enumerate() {
        match log.span_id.and_then(|s| by_id.get(&s)) {
            Some(i) => nodes[position[i]].logs.push(li),
            None => trace_logs.push(li),
        }
    }
    let mut path: Vec<usize> = critical.into_iter().collect();
    path.sort_by_key(|&i| (spans[i].start_ns, spans[i].span_id));
    TraceTree {
        nodes,
        critical_path: path.into_iter().map(|i| spans[i].span_id).collect(),
        trace_logs,
    }
}

/// The spans that bound the trace's end-to-end time: from the end of the longest root walking
/// back, at each moment the child that finished last before it, recursively (Jaeger's
/// definition).
fn critical_path(
    spans: &[Span],
    children: &[Vec<usize>],
    roots: &[usize],
) -> std::collections::HashSet<usize> {
    let mut on_path = std::collections::HashSet::new();
    let Some(&root) = roots
        .iter()
        .max_by_key(|&&i| (spans[i].duration_ns(), std::cmp::Reverse(spans[i].start_ns)))
    else {
        return on_path;
    };
    let mut stack = vec![(root, spans[root].end_ns)];
    while let Some((i, until)) = stack.pop() {
        if !on_path.insert(i) {
            continue;
        }
        let mut t = spans[i].end_ns.min(until);
        let mut kids = children[i].clone();
        kids.sort_by_key(|&c| std::cmp::Reverse(spans[c].end_ns));
        for c in kids {
            if spans[c].start_ns < t && spans[c].start_ns >= spans[i].start_ns {
                stack.push((c, t));
                t = spans[c].start_ns;
            }
        }
    }
    on_path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{self, span};

    fn log_for(span: Option<u8>) -> LogRecord {
        let mut log = testing::log("x");
        log.span_id = span.map(|s| SpanId([s; 8]));
        log
    }

    fn names(spans: &[Span], t: &TraceTree) -> Vec<(String, usize)> {
        t.nodes
            .iter()
            .map(|n| (spans[n.span].name.clone(), n.depth))
            .collect()
    }

    #[test]
    fn tree_order_depth_self_time_and_logs() {
        // root 0..100; a 0..30 and b 20..90 under it; c 30..80 under b. Given out of order.
        let spans = vec![
            span(4, Some(2), 30, 80),
            span(2, Some(1), 20, 90),
            span(1, None, 0, 100),
            span(3, Some(1), 0, 30),
        ];
        let logs = vec![
            log_for(Some(4)),
            log_for(None),
            log_for(Some(9)),
            log_for(Some(1)),
        ];
        let t = build(&spans, &logs);
        assert_eq!(
            names(&spans, &t),
            vec![
                ("s1".into(), 0),
                ("s3".into(), 1),
                ("s2".into(), 1),
                ("s4".into(), 2)
            ]
        );
        let self_times: Vec<u64> = t.nodes.iter().map(|n| n.self_time_ns).collect();
        // root: 100 less the union of 0..30 and 20..90 (0..90) = 10; b: 70 - 50 = 20.
        assert_eq!(self_times, vec![10, 30, 20, 50]);
        assert_eq!(t.nodes[0].logs, vec![3]);
        assert_eq!(t.nodes[3].logs, vec![0]);
        assert_eq!(t.trace_logs, vec![1, 2]);
        // Walking back from 100: b ends last (90) and starts at 20, then a covers 0..20;
        // inside b, c. Every span is on this path.
        let ids: Vec<u8> = t.critical_path.iter().map(|s| s.0[0]).collect();
        assert_eq!(ids, vec![1, 3, 2, 4]);
    }

    #[test]
    fn a_child_hidden_behind_a_later_one_is_not_critical() {
        // root 0..100; a 10..40, b 50..95: a finished before b started, both critical;
        // c 60..70 under root runs in parallel with b and is not.
        let spans = vec![
            span(1, None, 0, 100),
            span(2, Some(1), 10, 40),
            span(3, Some(1), 50, 95),
            span(4, Some(1), 60, 70),
        ];
        let t = build(&spans, &[]);
        let ids: Vec<u8> = t.critical_path.iter().map(|s| s.0[0]).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert!(
            !t.nodes
                .iter()
                .find(|n| n.span == 3)
                .unwrap()
                .on_critical_path
        );
    }

    #[test]
    fn orphans_and_cycles_are_kept_once() {
        // 5's parent is missing; 6 and 7 name each other; 8 names itself.
        let spans = vec![
            span(5, Some(99), 0, 10),
            span(6, Some(7), 1, 2),
            span(7, Some(6), 2, 3),
            span(8, Some(8), 3, 4),
        ];
        let t = build(&spans, &[]);
        assert_eq!(t.nodes.len(), 4);
        let mut seen: Vec<usize> = t.nodes.iter().map(|n| n.span).collect();
        seen.sort();
        assert_eq!(seen, vec![0, 1, 2, 3]);
        assert!(t.nodes.iter().find(|n| n.span == 0).unwrap().missing_parent);
    }

    #[test]
    fn a_deep_trace_does_not_recurse() {
        let id = |i: u64| SpanId((i + 1).to_be_bytes());
        let spans: Vec<Span> = (0..20_000u64)
            .map(|i| {
                let mut s = span(0, None, i, 40_000 - i);
                s.span_id = id(i);
                s.parent_span_id = i.checked_sub(1).map(id);
                s
            })
            .collect();
        let t = build(&spans, &[]);
        assert_eq!(t.nodes.last().unwrap().depth, 19_999);
        assert_eq!(t.critical_path.len(), 20_000);
    }
}
