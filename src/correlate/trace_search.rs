//! Trace search: the traces that have a span matching every condition of a search (service,
//! operation, duration, status, span or resource attributes, time), newest or slowest first,
//! each summarised; and the lists a search form offers — services, operations of a service,
//! attribute keys and values.
//!
//! A hit is a trace, found from its matching spans and summarised from its own spans' fast
//! fields (see `Store::trace_shape`), so a summary costs a term lookup per partition and one
//! or a few documents, whatever the trace's size. Every search is bounded: at most
//! `MAX_SPANS_READ` matching spans are loaded and, slowest first, at most `SLOWEST_OVERSCAN`
//! times the page of traces are summarised; the answer says when a bound cut it short.

use crate::index::{Filter, IndexError, Pick, SpanTextField, Store, TermList};
use crate::model::{ns_string, rfc3339, Span, TenantId, TraceId};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// Matching spans loaded, at most, to find a page of traces.
pub const MAX_SPANS_READ: usize = 5000;
/// Slowest first, this many times the page is summarised, then ranked by trace duration: a
/// trace's slowest matching span need not be its root.
pub const SLOWEST_OVERSCAN: usize = 3;
/// The most traces one page may ask for.
pub const MAX_LIMIT: usize = 200;
/// Spans sampled (the newest of the window) to list attribute keys.
pub const KEY_SAMPLE_SPANS: usize = 2000;
/// Term-dictionary candidates looked at, at most, to list services, operations or values.
pub const MAX_TERMS_SCANNED: usize = 50_000;

/// A span status as a search names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanStatus {
    Unset,
    Ok,
    Error,
}

impl SpanStatus {
    pub fn parse(s: &str) -> Option<SpanStatus> {
        match s {
            "unset" => Some(SpanStatus::Unset),
            "ok" => Some(SpanStatus::Ok),
            "error" => Some(SpanStatus::Error),
            _ => None,
        }
    }

    /// The OTLP status code.
    pub fn code(self) -> u64 {
        match self {
            SpanStatus::Unset => 0,
            SpanStatus::Ok => 1,
            SpanStatus::Error => 2,
        }
    }

    /// The span's status as search sees it: error when it failed (`Span::failed`, so also
    /// an unset status with HTTP ≥ 500 and the like), else the OTLP code.
    pub fn of(span: &Span) -> SpanStatus {
        match span.status_code {
            _ if span.failed() => SpanStatus::Error,
            1 => SpanStatus::Ok,
            _ => SpanStatus::Unset,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceOrder {
    /// Traces of the most recently started matching spans, by trace start.
    Newest,
    /// Traces of the slowest matching spans, by trace duration.
    Slowest,
}

/// What a search asks for. Every condition holds on one span of the trace (as in Jaeger).
#[derive(Debug, Clone)]
pub struct TraceQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub min_duration_ns: Option<u64>,
    pub max_duration_ns: Option<u64>,
    pub status: Option<SpanStatus>,
    /// Span or resource attributes, each equal to its value (several are ANDed).
    pub attributes: Vec<(String, String)>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub order: TraceOrder,
    pub limit: usize,
}

impl TraceQuery {
    fn filter(&self) -> Filter {
        Filter {
            services: self.service.iter().cloned().collect(),
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            status: self.status.map(SpanStatus::code),
            name: self.operation.clone(),
            tags: self.attributes.clone(),
            min_duration_ns: self.min_duration_ns,
            max_duration_ns: self.max_duration_ns,
            ..Filter::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSpans {
    pub service: String,
    pub spans: usize,
    pub errors: usize,
}

/// The span of a trace that matched the search (the first one read).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchedSpan {
    pub span_id: String,
    pub service: String,
    pub operation: String,
    #[serde(serialize_with = "ns_string")]
    pub start_time_unix_nano: u64,
    pub duration_ns: u64,
    pub status: SpanStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceSummary {
    pub trace_id: TraceId,
    pub root_service: String,
    pub root_operation: String,
    /// No span without a parent was found: the root has not arrived (or was dropped), and
    /// `root_*` name the earliest span.
    pub root_span_missing: bool,
    #[serde(serialize_with = "ns_string")]
    pub start_time_unix_nano: u64,
    pub start: String,
    pub duration_ns: u64,
    pub span_count: usize,
    pub error_count: usize,
    /// Services touched, most spans first.
    pub services: Vec<ServiceSpans>,
    pub matched_span: MatchedSpan,
    /// The trace has more spans than a trace read returns; the figures are of the first ones.
    pub spans_capped: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchBounds {
    pub max_spans_read: usize,
    pub max_traces_summarised: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceSearch {
    pub traces: Vec<TraceSummary>,
    pub order: TraceOrder,
    /// Spans matching every condition in the window.
    pub spans_matched: u64,
    /// Of them, loaded to find the traces.
    pub spans_read: usize,
    pub traces_summarised: usize,
    /// False when a bound stopped the search before the page was full.
    pub complete: bool,
    pub bounds: SearchBounds,
    /// What cut the search short, when something did.
    pub note: Option<String>,
}

fn summary(shape: crate::index::TraceShape, id: TraceId, matched: &Span) -> TraceSummary {
    let mut services: Vec<ServiceSpans> = shape
        .services
        .into_iter()
        .map(|(service, (spans, errors))| ServiceSpans {
            service,
            spans,
            errors,
        })
        .collect();
    services.sort_by(|a, b| b.spans.cmp(&a.spans).then(a.service.cmp(&b.service)));
    let (root_service, root_operation) =
        shape.root.map(|r| (r.service, r.name)).unwrap_or_default();
    TraceSummary {
        trace_id: id,
        root_service,
        root_operation,
        root_span_missing: shape.root_missing,
        start_time_unix_nano: shape.start_ns,
        start: rfc3339(shape.start_ns),
        duration_ns: shape.end_ns.saturating_sub(shape.start_ns),
        span_count: shape.spans,
        error_count: shape.errors,
        services,
        matched_span: MatchedSpan {
            span_id: matched.span_id.to_hex(),
            service: matched.service.clone(),
            operation: matched.name.clone(),
            start_time_unix_nano: matched.start_ns,
            duration_ns: matched.duration_ns(),
            status: SpanStatus::of(matched),
        },
        spans_capped: shape.capped,
    }
}

/// The traces with a span matching `q`, summarised, in `q.order`.
pub fn search(store: &Store, tenant: &TenantId, q: &TraceQuery) -> Result<TraceSearch, IndexError> {
    let wanted = match q.order {
        TraceOrder::Newest => q.limit,
        TraceOrder::Slowest => q.limit * SLOWEST_OVERSCAN,
    };
    let pick = match q.order {
        TraceOrder::Newest => Pick::Newest,
        TraceOrder::Slowest => Pick::Slowest,
    };
    let mut traces_seen = 0;
    let mut counted = 0;
    let mut seen: HashSet<TraceId> = HashSet::new();
    let matches = store.matching_spans(tenant, &q.filter(), pick, MAX_SPANS_READ, |spans| {
        for s in &spans[counted..] {
            if seen.insert(s.trace_id) {
                traces_seen += 1;
            }
        }
        counted = spans.len();
        traces_seen >= wanted
    })?;
    // The first matching span read of each trace, in the order read.
    let mut firsts: Vec<&Span> = Vec::new();
    let mut taken = HashSet::new();
    for s in &matches.spans {
        if firsts.len() < wanted && taken.insert(s.trace_id) {
            firsts.push(s);
        }
    }
    let mut traces = Vec::with_capacity(firsts.len());
    for s in &firsts {
        if let Some(shape) = store.trace_shape(tenant, s.trace_id)? {
            traces.push(summary(shape, s.trace_id, s));
        }
    }
    let summarised = traces.len();
    match q.order {
        TraceOrder::Newest => traces.sort_by_key(|t| std::cmp::Reverse(t.start_time_unix_nano)),
        TraceOrder::Slowest => traces.sort_by_key(|t| std::cmp::Reverse(t.duration_ns)),
    }
    traces.truncate(q.limit);
    let read = matches.spans.len();
    let cut = firsts.len() < wanted && (read as u64) < matches.matched;
    Ok(TraceSearch {
        note: cut.then(|| {
            format!(
                "{} of {} matching spans were read (the bound) and they belong to {} traces; \
                 narrow the search to see more",
                read,
                matches.matched,
                firsts.len()
            )
        }),
        traces,
        order: q.order,
        spans_matched: matches.matched,
        spans_read: read,
        traces_summarised: summarised,
        complete: !cut,
        bounds: SearchBounds {
            max_spans_read: MAX_SPANS_READ,
            max_traces_summarised: wanted,
        },
    })
}

/// A list a search form offers, and whether it is complete.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NameList<T: Serialize> {
    pub values: Vec<T>,
    /// False when a bound (`limit` or the candidates scanned) cut the list.
    pub complete: bool,
}

impl<T: Serialize> From<TermList<T>> for NameList<T> {
    fn from(t: TermList<T>) -> Self {
        NameList {
            values: t.values,
            complete: t.complete,
        }
    }
}

/// What a list is read from: a window, optionally one service, a prefix and a bound.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub service: Option<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub prefix: String,
    pub limit: usize,
}

impl ListQuery {
    fn filter(&self) -> Filter {
        Filter {
            services: self.service.iter().cloned().collect(),
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            ..Filter::default()
        }
    }
}

/// Services with spans in the window.
pub fn services(
    store: &Store,
    tenant: &TenantId,
    q: &ListQuery,
) -> Result<NameList<String>, IndexError> {
    let f = Filter {
        services: Vec::new(),
        ..q.filter()
    };
    store
        .span_text_values(
            tenant,
            SpanTextField::Service,
            &f,
            &q.prefix,
            q.limit,
            MAX_TERMS_SCANNED,
        )
        .map(NameList::from)
}

/// Span names (operations) of `q.service` (or every service) in the window.
pub fn operations(
    store: &Store,
    tenant: &TenantId,
    q: &ListQuery,
) -> Result<NameList<String>, IndexError> {
    store
        .span_text_values(
            tenant,
            SpanTextField::Name,
            &q.filter(),
            &q.prefix,
            q.limit,
            MAX_TERMS_SCANNED,
        )
        .map(NameList::from)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttributeScope {
    Span,
    Resource,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributeKey {
    pub key: String,
    pub scope: AttributeScope,
    /// Spans of the sample that carry it.
    pub spans: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributeKeys {
    pub keys: Vec<AttributeKey>,
    /// The newest spans of the window the keys were read from.
    pub sampled_spans: usize,
    /// Spans in the window (of the service) in all.
    pub spans_in_window: u64,
    pub complete: bool,
}

/// Attribute keys (span and resource) seen on the newest `KEY_SAMPLE_SPANS` spans of the
/// window, most common first. Keys only rarer spans carry can be missing: `complete` says
/// whether the sample was every span.
pub fn attribute_keys(
    store: &Store,
    tenant: &TenantId,
    q: &ListQuery,
) -> Result<AttributeKeys, IndexError> {
    let matches =
        store.matching_spans(tenant, &q.filter(), Pick::Newest, KEY_SAMPLE_SPANS, |_| {
            false
        })?;
    let mut counts: BTreeMap<(String, AttributeScope), usize> = BTreeMap::new();
    for s in &matches.spans {
        for (attrs, scope) in [
            (&s.attributes, AttributeScope::Span),
            (&s.resource, AttributeScope::Resource),
        ] {
            let mut keys: Vec<&str> = attrs.iter().map(|kv| kv.key.as_str()).collect();
            keys.sort_unstable();
            keys.dedup();
            for k in keys.into_iter().filter(|k| k.starts_with(&q.prefix)) {
                *counts.entry((k.to_string(), scope)).or_default() += 1;
            }
        }
    }
    let mut keys: Vec<AttributeKey> = counts
        .into_iter()
        .map(|((key, scope), spans)| AttributeKey { key, scope, spans })
        .collect();
    keys.sort_by(|a, b| b.spans.cmp(&a.spans).then(a.key.cmp(&b.key)));
    let cut = keys.len() > q.limit;
    keys.truncate(q.limit);
    Ok(AttributeKeys {
        keys,
        sampled_spans: matches.spans.len(),
        spans_in_window: matches.matched,
        complete: !cut && matches.spans.len() as u64 >= matches.matched,
    })
}

/// Values of the attribute `key` (span or resource) on spans of the window, strings
/// starting with `q.prefix`.
pub fn attribute_values(
    store: &Store,
    tenant: &TenantId,
    key: &str,
    q: &ListQuery,
) -> Result<NameList<serde_json::Value>, IndexError> {
    store
        .span_attribute_values(
            tenant,
            key,
            &q.filter(),
            &q.prefix,
            q.limit,
            MAX_TERMS_SCANNED,
        )
        .map(NameList::from)
}
