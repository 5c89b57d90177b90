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
    /// The part of its own time that is on the critical path. Over a trace these sum to the
    /// longest root's duration: each moment of it belongs to exactly one span.
    pub critical_self_ns: u64,
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
                on_critical_path: critical.contains_key(&i),
                critical_self_ns: critical.get(&i).copied().unwrap_or(0),
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
    let mut path: Vec<usize> = critical.into_keys().collect();
    path.sort_by_key(|&i| (spans[i].start_ns, spans[i].span_id));
    TraceTree {
        nodes,
        critical_path: path.into_iter().map(|i| spans[i].span_id).collect(),
        trace_logs,
    }
}

/// OTLP span kinds that call out of the process.
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;

/// The children the critical path walks: the recorded ones, except that a childless span
/// that covers (nine tenths or more of) an outgoing call of its own service recorded as its
/// sibling — a framework's request-handler span beside the client call it made — is given
/// that call as its child. Otherwise the handler, finishing last, takes the request's whole
/// time as its own and the caller looks like the service that grew.
fn path_children(spans: &[Span], children: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let calls_out =
        |b: usize| !children[b].is_empty() || matches!(spans[b].kind, CLIENT | PRODUCER);
    let covers = |a: usize, b: usize| {
        let (x, y) = (&spans[a], &spans[b]);
        let overlap = x
            .end_ns
            .min(y.end_ns)
            .saturating_sub(x.start_ns.max(y.start_ns));
        a != b
            && x.service == y.service
            && children[a].is_empty()
            && !calls_out(a)
            && calls_out(b)
            && x.duration_ns() >= y.duration_ns()
            && overlap as f64 >= 0.9 * y.duration_ns() as f64
    };
    let mut out = children.to_vec();
    for kids in children {
        for &b in kids {
            // The shortest handler covering the call takes it.
            let Some(&a) = kids
                .iter()
                .filter(|&&a| covers(a, b))
                .min_by_key(|&&a| (spans[a].duration_ns(), spans[a].span_id))
            else {
                continue;
            };
            for list in out.iter_mut() {
                list.retain(|&x| x != b);
            }
            out[a].push(b);
        }
    }
    out
}

/// The spans that bound the trace's end-to-end time, each with the time it is on the path
/// itself: from the end of the longest root walking back, at each moment the child that
/// finished last before it (Jaeger's definition). A child's time is clamped to the part of
/// its parent's window it covers, so every moment of the root is counted once, by the span
/// that was working then rather than waiting.
fn critical_path(spans: &[Span], children: &[Vec<usize>], roots: &[usize]) -> HashMap<usize, u64> {
    let mut on_path: HashMap<usize, u64> = HashMap::new();
    let Some(&root) = roots
        .iter()
        .max_by_key(|&&i| (spans[i].duration_ns(), std::cmp::Reverse(spans[i].start_ns)))
    else {
        return on_path;
    };
    let children = path_children(spans, children);
    let mut stack = vec![(root, spans[root].start_ns, spans[root].end_ns)];
    while let Some((i, lo, hi)) = stack.pop() {
        if on_path.contains_key(&i) {
            continue;
        }
        let mut own = 0;
        let mut t = hi;
        let mut kids = children[i].clone();
        kids.sort_by_key(|&c| std::cmp::Reverse((spans[c].end_ns, spans[c].start_ns)));
        for c in kids {
            if t <= lo {
                break;
            }
            let (cs, ce) = (spans[c].start_ns, spans[c].end_ns);
            if cs >= t || ce <= lo {
                continue;
            }
            let until = ce.min(t);
            own += t - until;
            let from = cs.max(lo);
            stack.push((c, from, until));
            t = from;
        }
        own += t.saturating_sub(lo);
        on_path.insert(i, own);
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
        // On the path: root 90..100, a 0..20, b 20..30 and 80..90, c 30..80.
        let on_path: Vec<u64> = t.nodes.iter().map(|n| n.critical_self_ns).collect();
        assert_eq!(on_path, vec![10, 20, 20, 50]);
    }

    #[test]
    fn on_path_times_sum_to_the_duration_beside_a_whole_request_handler_span() {
        // A real gateway: the server span 0..5200; beside the outgoing client call (1..5199,
        // into the shop 2..5198) a childless handler span 2..5200 that lasts the whole request,
        // recorded as the call's sibling.
        let mut spans = vec![
            span(1, None, 0, 5200),
            span(2, Some(1), 2, 5200),
            span(3, Some(1), 1, 5199),
            span(4, Some(3), 2, 5198),
        ];
        spans[3].service = "shop".into();
        let t = build(&spans, &[]);
        let total: u64 = t.nodes.iter().map(|n| n.critical_self_ns).sum();
        assert_eq!(total, 5200, "{:?}", t.nodes);
        let shop = t.nodes.iter().find(|n| n.span == 3).unwrap();
        assert_eq!(
            shop.critical_self_ns, 5196,
            "the shop's work is the request's time"
        );
        let handler = t.nodes.iter().find(|n| n.span == 1).unwrap();
        assert!(handler.critical_self_ns <= 2, "{handler:?}");
        // Partly hidden children only count for what they cover.
        let spans = vec![
            span(1, None, 0, 100),
            span(2, Some(1), 50, 100),
            span(3, Some(1), 0, 80),
        ];
        let t = build(&spans, &[]);
        let on: Vec<(usize, u64)> = t
            .nodes
            .iter()
            .map(|n| (n.span, n.critical_self_ns))
            .collect();
        assert_eq!(on, vec![(0, 0), (2, 50), (1, 50)]);
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
