//! Selections the correlation engine makes: records of some services in a window, by time or
//! slowest first, error spans, one trace's error logs, metric points of a metric, counts per
//! step. One filter type builds every such query, always tenant-scoped.

use super::schema::TIME;
use super::{IndexError, Store};
use crate::model::{MetricPoint, Record, Signal, Span, TenantId, TraceId};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{DocAddress, Order, TantivyDocument, Term};

/// OTLP status code of a failed span.
pub const STATUS_ERROR: u64 = 2;
/// The lowest OTLP severity number of an ERROR log.
pub const SEVERITY_ERROR: u64 = 17;

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Any of these services; empty means every service.
    pub services: Vec<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub trace_id: Option<TraceId>,
    /// Span status code, exactly.
    pub status: Option<u64>,
    /// Log severity number, at least.
    pub min_severity: Option<u64>,
    /// Span, metric or log event name, exactly.
    pub name: Option<String>,
    /// Record attributes equal to these values (as text: `"200"` finds the string and the
    /// number). Narrows what is read; callers still check exact matches themselves.
    pub attrs: Vec<(String, String)>,
    /// Record or resource attributes equal to these values, as tracing backends match tags:
    /// each pair holds in one or the other. Exact, like `attrs`.
    pub tags: Vec<(String, String)>,
    /// Span duration in nanoseconds, at least and at most.
    pub min_duration_ns: Option<u64>,
    pub max_duration_ns: Option<u64>,
}

/// Which records a selection keeps when more match than it may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Oldest,
    Newest,
    /// Spans only: the longest first.
    Slowest,
}

impl Store {
    pub(super) fn filter_query(&self, tenant: &TenantId, f: &Filter) -> BooleanQuery {
        let term = |field, v: &str| self.term(field, v);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Must, term(self.fields.tenant, tenant.as_str())),
            (Occur::Must, self.time_range(f.start_ns, f.end_ns)),
        ];
        if !f.services.is_empty() {
            let any: Vec<(Occur, Box<dyn Query>)> = f
                .services
                .iter()
                .map(|s| (Occur::Should, term(self.fields.service, s)))
                .collect();
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        if let Some(t) = f.trace_id {
            clauses.push((Occur::Must, term(self.fields.trace_id, &t.to_hex())));
        }
        if let Some(name) = &f.name {
            clauses.push((Occur::Must, term(self.fields.name, name)));
        }
        for (key, value) in &f.attrs {
            clauses.push((
                Occur::Must,
                Box::new(self.attr_equals(self.fields.attrs, key, value)),
            ));
        }
        for (key, value) in &f.tags {
            let either: Vec<(Occur, Box<dyn Query>)> = [self.fields.attrs, self.fields.resource]
                .into_iter()
                .map(|field| {
                    let q: Box<dyn Query> = Box::new(self.attr_equals(field, key, value));
                    (Occur::Should, q)
                })
                .collect();
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(either))));
        }
        if f.min_duration_ns.is_some() || f.max_duration_ns.is_some() {
            let bound = |v: Option<u64>| {
                v.map_or(Bound::Unbounded, |ns| {
                    Bound::Included(Term::from_field_u64(self.fields.duration, ns))
                })
            };
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    bound(f.min_duration_ns),
                    bound(f.max_duration_ns),
                )),
            ));
        }
        if let Some(status) = f.status {
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_u64(self.fields.status, status),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if let Some(min) = f.min_severity {
            clauses.push((Occur::Must, self.severity_at_least(min)));
        }
        BooleanQuery::new(clauses)
    }

    /// An attribute of the JSON `field` equal to `value` under any type it could have been
    /// sent with.
    fn attr_equals(&self, field: Field, key: &str, value: &str) -> BooleanQuery {
        let typed = |append: &dyn Fn(&mut Term)| {
            let mut t = Term::from_field_json_path(field, key, true);
            append(&mut t);
            t
        };
        let mut typed_terms = vec![typed(&|t| t.append_type_and_str(value))];
        if let Ok(i) = value.parse::<i64>() {
            typed_terms.push(typed(&|t| t.append_type_and_fast_value(i)));
            if let Ok(u) = u64::try_from(i) {
                typed_terms.push(typed(&|t| t.append_type_and_fast_value(u)));
            }
        }
        if let Ok(x) = value.parse::<f64>() {
            typed_terms.push(typed(&|t| t.append_type_and_fast_value(x)));
        }
        if let Ok(b) = value.parse::<bool>() {
            typed_terms.push(typed(&|t| t.append_type_and_fast_value(b)));
        }
        let typed = typed_terms;
        BooleanQuery::new(
            typed
                .into_iter()
                .map(|t| {
                    let q: Box<dyn Query> = Box::new(TermQuery::new(t, IndexRecordOption::Basic));
                    (Occur::Should, q)
                })
                .collect(),
        )
    }

    /// Up to `limit` records of `signal` matching `f`, in the order `pick` names.
    ///
    /// In time order over a wide window, the window is read in growing slices from the end
    /// the order starts at (1 s, then 4×, 16×, …), so the cost follows the records returned,
    /// not every record the window holds: sorting by time means visiting each match.
    pub fn select(
        &self,
        signal: Signal,
        tenant: &TenantId,
        f: &Filter,
        pick: Pick,
        limit: usize,
    ) -> Result<Vec<Record>, IndexError> {
        const FIRST_SLICE_NS: u64 = 1_000_000_000;
        self.check_retained(signal, tenant, f.start_ns, f.end_ns)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        if pick == Pick::Slowest || f.end_ns.saturating_sub(f.start_ns) <= FIRST_SLICE_NS {
            return self.select_all(signal, tenant, f, pick, limit);
        }
        let mut out = Vec::new();
        let mut width = FIRST_SLICE_NS;
        let (mut from, mut to) = match pick {
            Pick::Oldest => (f.start_ns, f.start_ns.saturating_add(width)),
            _ => (f.end_ns.saturating_sub(width), f.end_ns),
        };
        loop {
            let slice = Filter {
                start_ns: from.max(f.start_ns),
                end_ns: to.min(f.end_ns),
                ..f.clone()
            };
            out.extend(self.select_all(signal, tenant, &slice, pick, limit - out.len())?);
            let done = match pick {
                Pick::Oldest => slice.end_ns >= f.end_ns,
                _ => slice.start_ns <= f.start_ns,
            };
            if out.len() >= limit || done {
                return Ok(out);
            }
            width = width.saturating_mul(4);
            (from, to) = match pick {
                Pick::Oldest => (slice.end_ns + 1, slice.end_ns.saturating_add(width)),
                _ => (slice.start_ns.saturating_sub(width), slice.start_ns - 1),
            };
        }
    }

    /// `select` of spans, as spans.
    pub fn select_spans(
        &self,
        tenant: &TenantId,
        f: &Filter,
        pick: Pick,
        limit: usize,
    ) -> Result<Vec<Span>, IndexError> {
        Ok(self
            .select(Signal::Spans, tenant, f, pick, limit)?
            .into_iter()
            .filter_map(|r| match r {
                Record::Span(s) => Some(s),
                _ => None,
            })
            .collect())
    }

    /// `select` over the whole window at once.
    fn select_all(
        &self,
        signal: Signal,
        tenant: &TenantId,
        f: &Filter,
        pick: Pick,
        limit: usize,
    ) -> Result<Vec<Record>, IndexError> {
        let query = self.filter_query(tenant, f);
        let mut hits: Vec<(i64, Record)> = Vec::new();
        let mut parts = self.partitions(signal, f.start_ns, f.end_ns);
        if pick == Pick::Oldest {
            parts.reverse();
        }
        for p in parts {
            // Partitions are disjoint in time: in time order, stop once the page is full.
            if pick != Pick::Slowest && hits.len() >= limit {
                break;
            }
            let searcher = p.reader.searcher();
            let (field, order) = match pick {
                Pick::Oldest => (TIME, Order::Asc),
                Pick::Newest => (TIME, Order::Desc),
                Pick::Slowest => ("duration", Order::Desc),
            };
            let addrs: Vec<DocAddress> = if pick == Pick::Slowest {
                searcher
                    .search(
                        &query,
                        &TopDocs::with_limit(limit).order_by_fast_field::<u64>(field, order),
                    )?
                    .into_iter()
                    .map(|(_, a)| a)
                    .collect()
            } else {
                searcher
                    .search(
                        &query,
                        &TopDocs::with_limit(limit - hits.len())
                            .order_by_fast_field::<i64>(field, order),
                    )?
                    .into_iter()
                    .map(|(_, a)| a)
                    .collect()
            };
            for a in addrs {
                if let Some(r) = self.load(&searcher, a)? {
                    let key = match (&r, pick) {
                        (Record::Span(s), Pick::Slowest) => {
                            -(s.duration_ns().min(i64::MAX as u64) as i64)
                        }
                        _ => 0,
                    };
                    hits.push((key, r));
                }
            }
        }
        if pick == Pick::Slowest {
            hits.sort_by_key(|(k, _)| *k);
            hits.truncate(limit);
        }
        Ok(hits.into_iter().map(|(_, r)| r).collect())
    }

    pub(crate) fn load(
        &self,
        searcher: &tantivy::Searcher,
        addr: DocAddress,
    ) -> Result<Option<Record>, IndexError> {
        // A damaged block is that segment's problem, said so, not a bare i/o error (and not a
        // panic on the blocking pool, should a decoder panic on garbage).
        let damaged = |why: String| {
            let segment = searcher.segment_reader(addr.segment_ord).segment_id();
            IndexError::Damaged(format!(
                "a stored block of index segment {} does not decode ({why}); that partition is \
                 damaged, the others still answer",
                segment.uuid_string()
            ))
        };
        let doc: TantivyDocument =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| searcher.doc(addr))) {
                Ok(Ok(doc)) => doc,
                Ok(Err(e)) => return Err(damaged(e.to_string())),
                Err(_) => return Err(damaged("the decoder panicked".into())),
            };
        let Some(raw) = doc.get_first(self.fields.raw).and_then(|v| v.as_bytes()) else {
            return Ok(None);
        };
        match crate::model::codec::decode_record(raw) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                // Counted and logged, so a format problem is seen, not a quietly short answer.
                self.telemetry
                    .records_undecodable
                    .with_label_values(&["index"])
                    .inc();
                tracing::error!(error = %e, "stored record does not decode; left out of the answer");
                Ok(None)
            }
        }
    }

    /// Every metric point named `f.name` in the window. More than `limit` is an error that
    /// says so, rather than a silently partial series.
    pub fn metric_points(
        &self,
        tenant: &TenantId,
        f: &Filter,
        limit: usize,
    ) -> Result<Vec<MetricPoint>, IndexError> {
        self.check_retained(Signal::Metrics, tenant, f.start_ns, f.end_ns)?;
        let query = self.filter_query(tenant, f);
        let mut out = Vec::new();
        for p in self.partitions(Signal::Metrics, f.start_ns, f.end_ns) {
            let searcher = p.reader.searcher();
            let mut addrs: Vec<DocAddress> = searcher
                .search(&query, &DocSetCollector)?
                .into_iter()
                .collect();
            if out.len() + addrs.len() > limit {
                return Err(IndexError::TooManyPoints { limit });
            }
            // In store order: neighbouring documents share a compressed block, which is then
            // decompressed once instead of once per document.
            addrs.sort_unstable();
            for a in addrs {
                if let Some(Record::Metric(m)) = self.load(&searcher, a)? {
                    out.push(m);
                }
            }
        }
        Ok(out)
    }

    /// How many records match `f` per service and per step of `step_ns` from `f.start_ns`,
    /// read from fast fields without loading a document.
    pub fn count_by_service(
        &self,
        signal: Signal,
        tenant: &TenantId,
        f: &Filter,
        step_ns: u64,
    ) -> Result<BTreeMap<String, Vec<u64>>, IndexError> {
        self.check_retained(signal, tenant, f.start_ns, f.end_ns)?;
        let query = self.filter_query(tenant, f);
        let steps = ((f.end_ns.saturating_sub(f.start_ns)) / step_ns.max(1)) as usize + 1;
        let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for p in self.partitions(signal, f.start_ns, f.end_ns) {
            let searcher = p.reader.searcher();
            let addrs = searcher.search(&query, &DocSetCollector)?;
            let mut by_segment: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
            for a in addrs {
                by_segment.entry(a.segment_ord).or_default().push(a.doc_id);
            }
            for (seg, docs) in by_segment {
                let reader = searcher.segment_reader(seg);
                let fast = reader.fast_fields();
                let times = fast.i64(TIME)?;
                let Some(services) = fast.str("service")? else {
                    continue;
                };
                let mut name = String::new();
                for d in docs {
                    let (Some(t), Some(ord)) = (times.first(d), services.term_ords(d).next())
                    else {
                        continue;
                    };
                    name.clear();
                    services.ord_to_str(ord, &mut name)?;
                    let i =
                        ((t.max(0) as u64).saturating_sub(f.start_ns) / step_ns.max(1)) as usize;
                    if i < steps {
                        out.entry(name.clone()).or_insert_with(|| vec![0; steps])[i] += 1;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Names of the metrics a tenant has points of in the window, sorted.
    pub fn metric_names(
        &self,
        tenant: &TenantId,
        start_ns: u64,
        end_ns: u64,
    ) -> Result<Vec<String>, IndexError> {
        self.check_retained(Signal::Metrics, tenant, start_ns, end_ns)?;
        let mut candidates = BTreeSet::new();
        let parts = self.partitions(Signal::Metrics, start_ns, end_ns);
        for p in &parts {
            let searcher = p.reader.searcher();
            for seg in searcher.segment_readers() {
                let inverted = seg.inverted_index(self.fields.name)?;
                let mut terms = inverted.terms().stream()?;
                while terms.advance() {
                    candidates.insert(String::from_utf8_lossy(terms.key()).into_owned());
                }
            }
        }
        // The term dictionary spans tenants: keep names this tenant has in the window.
        let mut names = Vec::new();
        for name in candidates {
            let f = Filter {
                start_ns,
                end_ns,
                name: Some(name.clone()),
                ..Filter::default()
            };
            let query = self.filter_query(tenant, &f);
            for p in &parts {
                if p.reader
                    .searcher()
                    .search(&query, &tantivy::collector::Count)?
                    > 0
                {
                    names.push(name);
                    break;
                }
            }
        }
        Ok(names)
    }
}
