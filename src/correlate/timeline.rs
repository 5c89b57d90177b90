//! The unified timeline: spans (start and end), logs with how each is linked (exact, or
//! inferred with a confidence), exemplars, metric anomalies and incident events, in one
//! chronological, paginated list.
//!
//! Pages are cut by a cursor (the key of the last entry returned), not by offsets, so a page
//! stays correct while data arrives. Each source is read from the cursor's time onwards, at
//! most a page's worth; when a source had more, the page ends before that source's last read
//! time, so no entry of any source can be skipped.

use super::inferred::{self, Inferred};
use super::watch::Watched;
use crate::index::{Filter, IndexError, Pick, Store};
use crate::model::{Exemplar, LogRecord, MetricPoint, Record, Signal, Span, TenantId, TraceId};

/// Spans that started this long before a page still get their end entry on it.
const CARRY_NS: u64 = 30_000_000_000;
/// The longest spans looked at for carried end entries.
const CARRY_SPANS: usize = 200;
/// Records read at one time at most, to finish a page at that time (metric points of one
/// export often share their time to the nanosecond). Pages go through a tie by the cursor's
/// key, re-reading the tie each page; a tie larger than this is refused rather than paged
/// short.
const TIE_CAP: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Start,
    Peak,
    End,
}

#[derive(Debug, Clone)]
pub enum Item {
    SpanStart(Box<Span>),
    SpanEnd(Box<Span>),
    /// A log; `inferred` is set for a log without a trace ID that was matched to a span.
    Log {
        log: Box<LogRecord>,
        inferred: Option<Box<Inferred>>,
    },
    Exemplar {
        point: Box<MetricPoint>,
        exemplar: Exemplar,
    },
    Anomaly {
        watched: Box<Watched>,
        phase: Phase,
    },
    Incident {
        id: String,
        opened: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub time_ns: u64,
    pub item: Item,
}

/// The total order of entries: time, then kind, then an identity within the kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub time_ns: u64,
    pub rank: u8,
    pub id: String,
}

impl Key {
    pub fn to_cursor(&self) -> String {
        format!("{}.{}.{}", self.time_ns, self.rank, self.id)
    }

    pub fn parse(cursor: &str) -> Result<Key, String> {
        let mut parts = cursor.splitn(3, '.');
        let bad = || format!("cursor: {cursor:?} is not a cursor this API returned");
        let time_ns = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let rank = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let id = parts.next().ok_or_else(bad)?.to_string();
        Ok(Key { time_ns, rank, id })
    }
}

/// FNV-1a: a stable identity for records without one (logs).
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in *p {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        h ^= 0xff;
    }
    h
}

/// A log's identity: service, time and body.
fn log_id(l: &LogRecord) -> u64 {
    fnv(&[
        l.service.as_bytes(),
        &l.time_ns.to_le_bytes(),
        l.body.to_text().as_bytes(),
    ])
}

impl Entry {
    pub fn key(&self) -> Key {
        let (rank, id) = match &self.item {
            Item::Incident { id, opened: true } => (0, id.clone()),
            Item::Anomaly { watched, phase } => (1 + *phase as u8, watched.series.clone()),
            Item::SpanStart(s) => (4, format!("{}{}", s.trace_id.to_hex(), s.span_id.to_hex())),
            Item::Log { log, .. } => (5, format!("{:016x}", log_id(log))),
            Item::Exemplar { point, exemplar } => (
                6,
                format!(
                    "{:016x}",
                    fnv(&[
                        point.name.as_bytes(),
                        &point.time_ns.to_le_bytes(),
                        &exemplar.trace_id.map(|t| t.0).unwrap_or_default(),
                        &exemplar.span_id.map(|s| s.0).unwrap_or_default(),
                    ])
                ),
            ),
            Item::SpanEnd(s) => (7, format!("{}{}", s.trace_id.to_hex(), s.span_id.to_hex())),
            Item::Incident { id, opened: false } => (8, id.clone()),
        };
        Key {
            time_ns: self.time_ns,
            rank,
            id,
        }
    }
}

/// The families of entries a timeline can be narrowed to (`kinds=`): a span's start and end,
/// a log, an exemplar, an anomaly's start, peak and end, an incident's opening and closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Span,
    Log,
    Exemplar,
    Anomaly,
    Incident,
}

impl Kind {
    pub const NAMES: &'static str = "span, log, exemplar, anomaly, incident";

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "span" => Kind::Span,
            "log" => Kind::Log,
            "exemplar" => Kind::Exemplar,
            "anomaly" => Kind::Anomaly,
            "incident" => Kind::Incident,
            _ => return None,
        })
    }
}

/// Which entries a page keeps: of these kinds (empty: all) and of these services (empty:
/// all; incident events belong to no one service and are always kept).
#[derive(Debug, Clone, Default)]
pub struct Narrow {
    pub kinds: Vec<Kind>,
    pub services: Vec<String>,
}

impl Narrow {
    pub fn keeps(&self, e: &Entry) -> bool {
        let (kind, service) = match &e.item {
            Item::SpanStart(s) | Item::SpanEnd(s) => (Kind::Span, Some(&s.service)),
            Item::Log { log, .. } => (Kind::Log, Some(&log.service)),
            Item::Exemplar { point, .. } => (Kind::Exemplar, Some(&point.service)),
            Item::Anomaly { watched, .. } => (Kind::Anomaly, Some(&watched.service)),
            Item::Incident { .. } => (Kind::Incident, None),
        };
        (self.kinds.is_empty() || self.kinds.contains(&kind))
            && (self.services.is_empty() || service.is_none_or(|s| self.services.contains(s)))
    }

    /// Drops what the page is not to show. Each source keeps its `complete_before`, so paging
    /// stays exact: a narrowed page may be short and still have a next one.
    pub fn apply(&self, sources: &mut [Source]) {
        if self.kinds.is_empty() && self.services.is_empty() {
            return;
        }
        for s in sources {
            s.entries.retain(|e| self.keeps(e));
        }
    }
}

/// What one source contributes to a page.
pub struct Source {
    pub entries: Vec<Entry>,
    /// `Some(t)` when the source had more than it returned: its entries are complete only
    /// before `t`.
    pub complete_before: Option<u64>,
}

impl Source {
    pub fn complete(entries: Vec<Entry>) -> Source {
        Source {
            entries,
            complete_before: None,
        }
    }
}

pub struct Page {
    pub entries: Vec<Entry>,
    /// The cursor of the next page, when there may be one.
    pub next: Option<Key>,
}

/// The time the page of these sources after `after` will end at (`end_ns` when it holds
/// everything up to the end), without building it: what else is read for the page (live
/// anomalies) need not look past it.
pub fn page_end(sources: &[Source], after: Option<&Key>, limit: usize, end_ns: u64) -> u64 {
    let bound = sources.iter().filter_map(|s| s.complete_before).min();
    let mut keys: Vec<Key> = sources
        .iter()
        .flat_map(|s| &s.entries)
        .map(Entry::key)
        .filter(|k| after.is_none_or(|a| k > a))
        .filter(|k| bound.is_none_or(|b| k.time_ns < b))
        .collect();
    keys.sort();
    keys.dedup();
    match keys.get(limit.saturating_sub(1)) {
        Some(k) if keys.len() >= limit => k.time_ns,
        _ => bound.map_or(end_ns, |b| b.saturating_sub(1).min(end_ns)),
    }
}

/// Merges sources into one page after `after`, of at most `limit` entries.
pub fn page(sources: Vec<Source>, after: Option<&Key>, limit: usize) -> Page {
    let bound = sources.iter().filter_map(|s| s.complete_before).min();
    let mut all: Vec<(Key, Entry)> = sources
        .into_iter()
        .flat_map(|s| s.entries)
        .map(|e| (e.key(), e))
        .filter(|(k, _)| after.is_none_or(|a| k > a))
        .filter(|(k, _)| bound.is_none_or(|b| k.time_ns < b))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all.dedup_by(|a, b| a.0 == b.0);
    let more = all.len() > limit || bound.is_some();
    all.truncate(limit);
    // A page narrowed to nothing (`Narrow`) still goes on: past everything before the bound,
    // which every source had complete.
    let past_bound = bound
        .map(|b| Key {
            time_ns: b.saturating_sub(1),
            rank: u8::MAX,
            id: String::new(),
        })
        .filter(|k| after.is_none_or(|a| k > a));
    let next = if more {
        all.last().map(|(k, _)| k.clone()).or(past_bound)
    } else {
        None
    };
    Page {
        entries: all.into_iter().map(|(_, e)| e).collect(),
        next,
    }
}

fn span_entries(spans: &[Span], from: u64, to: u64) -> Vec<Entry> {
    let mut out = Vec::with_capacity(spans.len() * 2);
    for s in spans {
        if (from..=to).contains(&s.start_ns) {
            out.push(Entry {
                time_ns: s.start_ns,
                item: Item::SpanStart(Box::new(s.clone())),
            });
        }
        if (from..=to).contains(&s.end_ns) {
            out.push(Entry {
                time_ns: s.end_ns,
                item: Item::SpanEnd(Box::new(s.clone())),
            });
        }
    }
    out
}

/// Exemplar entries sit at the time of the metric point that carries them (when the series
/// reported the trace); the exemplar's own time travels with it.
fn exemplar_entries(
    points: &[MetricPoint],
    only: Option<TraceId>,
    from: u64,
    to: u64,
) -> Vec<Entry> {
    let mut out = Vec::new();
    for p in points.iter().filter(|p| (from..=to).contains(&p.time_ns)) {
        for e in &p.exemplars {
            if e.trace_id.is_none() || only.is_some_and(|t| e.trace_id != Some(t)) {
                continue;
            }
            out.push(Entry {
                time_ns: p.time_ns,
                item: Item::Exemplar {
                    point: Box::new(p.clone()),
                    exemplar: e.clone(),
                },
            });
        }
    }
    out
}

fn log_entries(logs: Vec<LogRecord>, inferred: Vec<Inferred>) -> Vec<Entry> {
    let mut out: Vec<Entry> = logs
        .into_iter()
        .map(|l| Entry {
            time_ns: l.effective_time_ns(),
            item: Item::Log {
                log: Box::new(l),
                inferred: None,
            },
        })
        .collect();
    out.extend(inferred.into_iter().map(|i| Entry {
        time_ns: i.log.effective_time_ns(),
        item: Item::Log {
            log: Box::new(i.log.clone()),
            inferred: Some(Box::new(i)),
        },
    }));
    out
}

/// The whole of one trace: its spans, its logs (exact links and inferred candidates) and the
/// exemplars that name it.
pub fn of_trace(
    store: &Store,
    tenant: &TenantId,
    trace_id: TraceId,
    margin_ns: u64,
    max_inferred: usize,
) -> Result<Vec<Source>, IndexError> {
    let records = store.trace(tenant, trace_id)?;
    let inferred = inferred::infer(store, tenant, &records.spans, margin_ns, max_inferred)?;
    let mut entries = span_entries(&records.spans, 0, u64::MAX);
    entries.extend(log_entries(records.logs, inferred));
    entries.extend(exemplar_entries(
        &records.metrics,
        Some(trace_id),
        0,
        u64::MAX,
    ));
    Ok(vec![Source::complete(entries)])
}

/// The oldest `limit` records in the window, and, when there were more, the time before which
/// they are complete. Records sharing the last time are all read (up to `TIE_CAP`), so a page
/// never ends between two records of one time and always moves forward.
fn oldest(
    store: &Store,
    signal: Signal,
    tenant: &TenantId,
    window: &Filter,
    limit: usize,
) -> Result<(Vec<Record>, Option<u64>), IndexError> {
    let mut got = store.select(signal, tenant, window, Pick::Oldest, limit)?;
    let Some(last) = got
        .last()
        .filter(|_| got.len() >= limit)
        .map(Record::time_ns)
    else {
        return Ok((got, None));
    };
    got.retain(|r| r.time_ns() < last);
    let tie = Filter {
        start_ns: last,
        end_ns: last,
        ..window.clone()
    };
    let tied = store.select(signal, tenant, &tie, Pick::Oldest, TIE_CAP + 1)?;
    if tied.len() > TIE_CAP {
        return Err(IndexError::TooCostly(format!(
            "more than {TIE_CAP} {} share the time {last} ns, too many to page through; \
             narrow the timeline to fewer services",
            signal.as_str()
        )));
    }
    got.extend(tied);
    Ok((got, Some(last + 1)))
}

/// A window of some services' data, and the page asked of it.
pub struct ServiceWindow<'a> {
    pub services: &'a [String],
    pub start_ns: u64,
    pub end_ns: u64,
    pub after: Option<&'a Key>,
    pub limit: usize,
    /// Inference margin for logs without a trace ID.
    pub margin_ns: u64,
}

/// Everything of some services in a window, from the cursor's time on: spans, logs (unlinked
/// ones matched to the spans read), and exemplars.
pub fn of_services(
    store: &Store,
    tenant: &TenantId,
    w: &ServiceWindow,
) -> Result<Vec<Source>, IndexError> {
    let (services, start_ns, end_ns, limit, margin_ns) =
        (w.services, w.start_ns, w.end_ns, w.limit, w.margin_ns);
    let from = w.after.map_or(start_ns, |k| k.time_ns.max(start_ns));
    let window = Filter {
        services: services.to_vec(),
        start_ns: from,
        end_ns,
        ..Filter::default()
    };
    let fetch = limit + 1;
    let (started, spans_complete) = oldest(store, Signal::Spans, tenant, &window, fetch)?;
    let carried_filter = Filter {
        start_ns: from.saturating_sub(CARRY_NS),
        end_ns: from.saturating_sub(1),
        ..window.clone()
    };
    let carried = store.select(
        Signal::Spans,
        tenant,
        &carried_filter,
        Pick::Slowest,
        CARRY_SPANS,
    )?;
    let spans: Vec<Span> = started
        .into_iter()
        .chain(carried)
        .filter_map(|r| match r {
            Record::Span(s) => Some(s),
            _ => None,
        })
        .collect();
    let (logs, logs_complete) = oldest(store, Signal::Logs, tenant, &window, fetch)?;
    let (linked, unlinked): (Vec<LogRecord>, Vec<LogRecord>) = logs
        .into_iter()
        .filter_map(|r| match r {
            Record::Log(l) => Some(l),
            _ => None,
        })
        .partition(|l| l.trace_id.is_some());
    let inferred = inferred::link(store, tenant, &spans, unlinked.clone(), margin_ns)?;
    let matched: std::collections::HashSet<u64> = inferred.iter().map(|i| log_id(&i.log)).collect();
    let unmatched: Vec<LogRecord> = unlinked
        .into_iter()
        .filter(|l| !matched.contains(&log_id(l)))
        .collect();
    let mut log_list = linked;
    log_list.extend(unmatched);
    let (points, points_complete) = oldest(store, Signal::Metrics, tenant, &window, fetch)?;
    let points: Vec<MetricPoint> = points
        .into_iter()
        .filter_map(|r| match r {
            Record::Metric(m) => Some(m),
            _ => None,
        })
        .collect();
    Ok(vec![
        Source {
            entries: span_entries(&spans, from, end_ns),
            complete_before: spans_complete,
        },
        Source {
            entries: log_entries(log_list, inferred),
            complete_before: logs_complete,
        },
        Source {
            entries: exemplar_entries(&points, None, from, end_ns),
            complete_before: points_complete,
        },
    ])
}

/// Anomaly entries (start, peak, end) of watched series, within the window.
pub fn anomaly_entries(watched: &[Watched], start_ns: u64, end_ns: u64) -> Vec<Entry> {
    let mut out = Vec::new();
    for w in watched {
        let a = &w.anomaly;
        let mut phases = vec![(Phase::Start, a.start_ns), (Phase::Peak, a.peak_ns)];
        if !a.ongoing {
            phases.push((Phase::End, a.end_ns));
        }
        for (phase, t) in phases {
            if (start_ns..=end_ns).contains(&t) {
                out.push(Entry {
                    time_ns: t,
                    item: Item::Anomaly {
                        watched: Box::new(w.clone()),
                        phase,
                    },
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{log, span};
    use std::collections::HashMap;

    /// Entries counted by kind.
    fn kinds(entries: &[Entry]) -> HashMap<&'static str, usize> {
        let mut out = HashMap::new();
        for e in entries {
            let k = match e.item {
                Item::SpanStart(_) => "span_start",
                Item::SpanEnd(_) => "span_end",
                Item::Log { .. } => "log",
                Item::Exemplar { .. } => "exemplar",
                Item::Anomaly { .. } => "anomaly",
                Item::Incident { .. } => "incident",
            };
            *out.entry(k).or_insert(0) += 1;
        }
        out
    }

    fn at(t: u64, body: &str) -> Entry {
        let mut l = log(body);
        l.time_ns = t;
        Entry {
            time_ns: t,
            item: Item::Log {
                log: Box::new(l),
                inferred: None,
            },
        }
    }

    #[test]
    fn pages_merge_in_order_and_never_skip() {
        // Source a is complete; source b had more than it returned, after time 25.
        let a = Source::complete(vec![at(10, "a1"), at(30, "a2"), at(20, "a3")]);
        let b = Source {
            entries: vec![at(15, "b1"), at(25, "b2")],
            complete_before: Some(25),
        };
        let p = page(vec![a, b], None, 10);
        let times: Vec<u64> = p.entries.iter().map(|e| e.time_ns).collect();
        // 25 and 30 wait for the next page: b may hold more before 30.
        assert_eq!(times, vec![10, 15, 20]);
        let next = p.next.expect("more to come");
        assert_eq!(next.time_ns, 20);
        let cursor = Key::parse(&next.to_cursor()).unwrap();
        assert_eq!(cursor, next);
        // The next page, read from the cursor's time on.
        let a = Source::complete(vec![at(20, "a3"), at(30, "a2")]);
        let b = Source::complete(vec![at(25, "b2"), at(26, "b3")]);
        let p = page(vec![a, b], Some(&cursor), 2);
        let times: Vec<u64> = p.entries.iter().map(|e| e.time_ns).collect();
        assert_eq!(times, vec![25, 26]);
        let p = page(
            vec![Source::complete(vec![at(30, "a2")])],
            p.next.as_ref(),
            2,
        );
        assert_eq!(p.entries.len(), 1);
        assert!(p.next.is_none());
        assert!(Key::parse("x.1.y").is_err());
    }

    #[test]
    fn a_span_gives_start_and_end_entries_and_kinds_sort_within_a_time() {
        let s = span(1, None, 100, 200);
        let e = span_entries(&[s], 0, 150);
        assert_eq!(e.len(), 1, "the end is outside the window");
        let s = span(1, None, 100, 200);
        let mut entries = span_entries(&[s], 0, 300);
        entries.push(at(100, "same time as the start"));
        let p = page(vec![Source::complete(entries)], None, 10);
        let k = kinds(&p.entries);
        assert_eq!((k["span_start"], k["span_end"], k["log"]), (1, 1, 1));
        assert!(matches!(p.entries[0].item, Item::SpanStart(_)));
        assert!(matches!(p.entries[1].item, Item::Log { .. }));
    }
}
