//! Span reads behind trace search: the spans a search matches in the order it asks for, one
//! trace's shape read from fast fields alone, the terms a search form offers (services,
//! operations, attribute values) each checked against the tenant and window, and the
//! durations of one operation. Every read takes its bound from the caller.

use super::query::MAX_TRACE_RECORDS;
use super::schema::TIME;
use super::select::{Filter, Pick, STATUS_ERROR};
use super::{IndexError, Store};
use crate::model::{Record, Signal, Span, TenantId, TraceId};
use std::collections::{BTreeMap, BTreeSet};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, EnableScoring, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocAddress, DocId, DocSet, Order, Searcher, Term, TERMINATED};

/// The spans a search read, in its order.
#[derive(Debug, Default)]
pub struct Matches {
    pub spans: Vec<Span>,
    /// How many spans match in all, read or not.
    pub matched: u64,
}

/// One trace as its spans' fast fields tell it, without loading them: enough to summarise it.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceShape {
    pub spans: usize,
    pub errors: usize,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Spans and failed spans per service.
    pub services: BTreeMap<String, (usize, usize)>,
    /// The earliest span without a parent, else the earliest span.
    pub root: Option<Span>,
    /// No span without a parent was found among the earliest few: the root has not arrived.
    pub root_missing: bool,
    /// More than `MAX_TRACE_RECORDS` spans: the figures are those of the first ones.
    pub capped: bool,
}

/// A span's fast fields.
struct SpanFacts {
    time: i64,
    duration: u64,
    status: u64,
    service: String,
    part: usize,
    addr: DocAddress,
}

/// Root candidates loaded before a trace is said to have lost its root.
const ROOT_CANDIDATES: usize = 3;

impl Store {
    /// Spans matching `f`, newest (by start) or slowest first. At most `max_read` are loaded,
    /// and loading stops as soon as `enough` returns true for what has been read.
    pub fn matching_spans(
        &self,
        tenant: &TenantId,
        f: &Filter,
        pick: Pick,
        max_read: usize,
        mut enough: impl FnMut(&[Span]) -> bool,
    ) -> Result<Matches, IndexError> {
        self.check_retained(Signal::Spans, tenant, f.start_ns, f.end_ns)?;
        let query = self.filter_query(tenant, f);
        let limit = max_read.max(1);
        let mut searchers = Vec::new();
        let mut candidates: Vec<(u64, usize, DocAddress)> = Vec::new();
        let mut matched = 0u64;
        let mut parts = self.partitions(Signal::Spans, f.start_ns, f.end_ns);
        if pick == Pick::Oldest {
            parts.reverse();
        }
        for p in parts {
            let searcher = p.reader.searcher();
            let i = searchers.len();
            let top: Vec<(u64, DocAddress)> = if pick == Pick::Slowest {
                let by_duration =
                    TopDocs::with_limit(limit).order_by_fast_field::<u64>("duration", Order::Desc);
                let (n, top) = searcher.search(&query, &(Count, by_duration))?;
                matched += n as u64;
                top.into_iter().map(|(d, a)| (d.unwrap_or(0), a)).collect()
            } else if candidates.len() < limit {
                let order = match pick {
                    Pick::Oldest => Order::Asc,
                    _ => Order::Desc,
                };
                let by_time = TopDocs::with_limit(limit).order_by_fast_field::<i64>(TIME, order);
                let (n, top) = searcher.search(&query, &(Count, by_time))?;
                matched += n as u64;
                top.into_iter()
                    .map(|(t, a)| (t.unwrap_or(0).max(0) as u64, a))
                    .collect()
            } else {
                // Partitions are disjoint in time and come in the order asked for: once
                // `limit` spans are in hand, a later partition is only counted.
                matched += searcher.search(&query, &Count)? as u64;
                Vec::new()
            };
            candidates.extend(top.into_iter().map(|(k, a)| (k, i, a)));
            searchers.push(searcher);
        }
        match pick {
            Pick::Oldest => candidates.sort_by_key(|&(k, _, _)| k),
            _ => candidates.sort_by_key(|&(k, _, _)| std::cmp::Reverse(k)),
        }
        candidates.truncate(limit);
        let mut spans = Vec::new();
        for (_, i, addr) in candidates {
            if enough(&spans) {
                break;
            }
            if let Some(Record::Span(s)) = self.load(&searchers[i], addr)? {
                spans.push(s);
            }
        }
        Ok(Matches { spans, matched })
    }

    /// The shape of one trace over all retained time, from fast fields; `None` when the
    /// tenant has no span of it.
    pub fn trace_shape(
        &self,
        tenant: &TenantId,
        trace_id: TraceId,
    ) -> Result<Option<TraceShape>, IndexError> {
        let query = BooleanQuery::new(vec![
            (Occur::Must, self.term(self.fields.tenant, tenant.as_str())),
            (
                Occur::Must,
                self.term(self.fields.trace_id, &trace_id.to_hex()),
            ),
        ]);
        let mut facts: Vec<SpanFacts> = Vec::new();
        let mut searchers = Vec::new();
        let mut capped = false;
        for p in self.partitions(Signal::Spans, 0, u64::MAX) {
            let searcher = p.reader.searcher();
            let mut left = MAX_TRACE_RECORDS - facts.len();
            let docs = matching_docs(&searcher, &query, || {
                if left == 0 {
                    capped = true;
                    return Keep::Stop;
                }
                left -= 1;
                Keep::Yes
            })?;
            for (seg_ord, docs) in docs {
                let reader = searcher.segment_reader(seg_ord);
                let fast = reader.fast_fields();
                let (times, durations, statuses) =
                    (fast.i64(TIME)?, fast.u64("duration")?, fast.u64("status")?);
                let services = fast.str("service")?;
                for doc in docs {
                    let mut service = String::new();
                    if let Some(col) = &services {
                        if let Some(ord) = col.term_ords(doc).next() {
                            col.ord_to_str(ord, &mut service)?;
                        }
                    }
                    facts.push(SpanFacts {
                        time: times.first(doc).unwrap_or(0),
                        duration: durations.first(doc).unwrap_or(0),
                        status: statuses.first(doc).unwrap_or(0),
                        service,
                        part: searchers.len(),
                        addr: DocAddress::new(seg_ord, doc),
                    });
                }
            }
            searchers.push(searcher);
            if capped {
                break;
            }
        }
        if facts.is_empty() {
            return Ok(None);
        }
        let mut shape = TraceShape {
            spans: facts.len(),
            errors: 0,
            start_ns: u64::MAX,
            end_ns: 0,
            services: BTreeMap::new(),
            root: None,
            root_missing: false,
            capped,
        };
        for f in &facts {
            let start = f.time.max(0) as u64;
            let failed = f.status == STATUS_ERROR;
            shape.start_ns = shape.start_ns.min(start);
            shape.end_ns = shape.end_ns.max(start.saturating_add(f.duration));
            shape.errors += failed as usize;
            let entry = shape.services.entry(f.service.clone()).or_default();
            entry.0 += 1;
            entry.1 += failed as usize;
        }
        // The root starts first and lasts longest; with clock skew a child may start earlier,
        // so the first few are looked at for one without a parent.
        facts.sort_by_key(|f| (f.time, std::cmp::Reverse(f.duration)));
        for f in facts.iter().take(ROOT_CANDIDATES) {
            if let Some(Record::Span(s)) = self.load(&searchers[f.part], f.addr)? {
                let is_root = s.parent_span_id.is_none();
                if shape.root.is_none() || is_root {
                    shape.root = Some(s);
                }
                if is_root {
                    break;
                }
            }
        }
        shape.root_missing = shape
            .root
            .as_ref()
            .is_none_or(|r| r.parent_span_id.is_some());
        Ok(Some(shape))
    }

    /// Services, or span names, that spans of the tenant matching `f` carry, starting with
    /// `prefix`, in order; see `span_terms` for the bounds.
    pub fn span_text_values(
        &self,
        tenant: &TenantId,
        field: SpanTextField,
        f: &Filter,
        prefix: &str,
        limit: usize,
        max_scan: usize,
    ) -> Result<TermList<String>, IndexError> {
        let field = match field {
            SpanTextField::Service => self.fields.service,
            SpanTextField::Name => self.fields.name,
        };
        let scan = TermScan {
            field,
            prefix: prefix.as_bytes(),
            limit,
            max_scan,
        };
        self.span_terms(
            tenant,
            f,
            &scan,
            |key| Some(String::from_utf8_lossy(key).into_owned()),
            |key| {
                let mut t = Term::from_field_text(field, "");
                t.append_bytes(key);
                t
            },
        )
    }

    /// Values of the attribute `key`, on the span or on its resource, that spans of the tenant
    /// matching `f` carry: strings starting with `prefix` (and, when `prefix` is empty, numbers
    /// and booleans too), strings first, each in the index's order.
    pub fn span_attribute_values(
        &self,
        tenant: &TenantId,
        key: &str,
        f: &Filter,
        prefix: &str,
        limit: usize,
        max_scan: usize,
    ) -> Result<TermList<serde_json::Value>, IndexError> {
        let mut out = TermList::default();
        for field in [self.fields.attrs, self.fields.resource] {
            // Term-dictionary keys of a JSON field: path, end-of-path byte, type, value.
            let path = Term::from_field_json_path(field, key, true);
            let path_len = path.serialized_value_bytes().len();
            let mut start = path.clone();
            if !prefix.is_empty() {
                start.append_type_and_str(prefix);
            }
            let scan = TermScan {
                field,
                prefix: start.serialized_value_bytes(),
                limit: limit.saturating_sub(out.values.len()),
                max_scan: max_scan.saturating_sub(out.scanned),
            };
            let found = self.span_terms(
                tenant,
                f,
                &scan,
                |k| json_term_value(&k[path_len..]),
                |k| {
                    let mut t = path.clone();
                    t.append_bytes(&k[path_len..]);
                    t
                },
            )?;
            out.scanned += found.scanned;
            out.complete &= found.complete;
            for v in found.values {
                if !out.values.contains(&v) {
                    out.values.push(v);
                }
            }
        }
        Ok(out)
    }

    /// Terms of `scan.field` starting with `scan.prefix` in the span partitions of `f`'s
    /// window, kept when a span of the tenant matching `f` has one. The term dictionaries are
    /// shared by tenants, so every candidate is checked; at most `max_scan` are looked at and
    /// `limit` kept, and the list says whether it is complete.
    fn span_terms<T>(
        &self,
        tenant: &TenantId,
        f: &Filter,
        scan: &TermScan,
        decode: impl Fn(&[u8]) -> Option<T>,
        term_of: impl Fn(&[u8]) -> Term,
    ) -> Result<TermList<T>, IndexError> {
        self.check_retained(Signal::Spans, tenant, f.start_ns, f.end_ns)?;
        let searchers: Vec<Searcher> = self
            .partitions(Signal::Spans, f.start_ns, f.end_ns)
            .iter()
            .map(|p| p.reader.searcher())
            .collect();
        let mut candidates: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut complete = true;
        'scan: for searcher in &searchers {
            for seg in searcher.segment_readers() {
                let inverted = seg.inverted_index(scan.field)?;
                let mut terms = inverted.terms().range().ge(scan.prefix).into_stream()?;
                while terms.advance() {
                    if !terms.key().starts_with(scan.prefix) {
                        break;
                    }
                    if candidates.len() >= scan.max_scan {
                        complete = false;
                        break 'scan;
                    }
                    candidates.insert(terms.key().to_vec());
                }
            }
        }
        let scanned = candidates.len();
        let filter = self.filter_query(tenant, f);
        let mut values = Vec::new();
        for key in candidates {
            if values.len() >= scan.limit {
                complete = false;
                break;
            }
            let Some(value) = decode(&key) else { continue };
            let query = BooleanQuery::new(vec![
                (Occur::Must, Box::new(filter.clone()) as Box<dyn Query>),
                (
                    Occur::Must,
                    Box::new(TermQuery::new(term_of(&key), IndexRecordOption::Basic)),
                ),
            ]);
            for searcher in &searchers {
                if any_match(searcher, &query)? {
                    values.push(value);
                    break;
                }
            }
        }
        Ok(TermList {
            values,
            scanned,
            complete,
        })
    }

    /// Durations of the newest spans matching `f`, at most `max`: the window is read back
    /// from its end in growing slices (1 s, then 4×, 16×, …) until `max` are found, so the cost
    /// follows the spans read, not every span the window holds. Returns the durations and the
    /// start of the oldest slice read (`f.start_ns` when the whole window was read).
    pub fn recent_durations(
        &self,
        tenant: &TenantId,
        f: &Filter,
        max: usize,
    ) -> Result<(Vec<u64>, u64), IndexError> {
        let mut out = Vec::new();
        let mut width = 1_000_000_000u64;
        let mut hi = f.end_ns;
        loop {
            let lo = hi.saturating_sub(width).max(f.start_ns);
            let slice = Filter {
                start_ns: lo,
                end_ns: hi,
                ..f.clone()
            };
            let query = self.filter_query(tenant, &slice);
            for p in self.partitions(Signal::Spans, lo, hi) {
                let searcher = p.reader.searcher();
                let mut left = max - out.len();
                let docs = matching_docs(&searcher, &query, || {
                    if left == 0 {
                        return Keep::Stop;
                    }
                    left -= 1;
                    Keep::Yes
                })?;
                for (seg_ord, docs) in docs {
                    let durations = searcher
                        .segment_reader(seg_ord)
                        .fast_fields()
                        .u64("duration")?;
                    out.extend(docs.into_iter().filter_map(|d| durations.first(d)));
                }
            }
            if out.len() >= max || lo <= f.start_ns {
                return Ok((out, lo));
            }
            hi = lo - 1;
            width = width.saturating_mul(4);
        }
    }
}

/// The text fields of a span a search form lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanTextField {
    Service,
    Name,
}

/// Which terms a list reads, and its bounds.
struct TermScan<'a> {
    field: Field,
    prefix: &'a [u8],
    limit: usize,
    max_scan: usize,
}

/// Values a list read found, how many candidates it looked at, and whether it saw them all.
#[derive(Debug, Clone, PartialEq)]
pub struct TermList<T> {
    pub values: Vec<T>,
    pub scanned: usize,
    pub complete: bool,
}

impl<T> Default for TermList<T> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            scanned: 0,
            complete: true,
        }
    }
}

/// A JSON term's type and value bytes as a JSON value.
fn json_term_value(bytes: &[u8]) -> Option<serde_json::Value> {
    use tantivy::schema::Type;
    let v = tantivy::schema::ValueBytes::wrap(bytes);
    Some(match Type::from_code(*bytes.first()?)? {
        Type::Str => serde_json::Value::String(v.as_str()?.to_string()),
        Type::I64 => v.as_i64()?.into(),
        Type::U64 => v.as_u64()?.into(),
        Type::F64 => serde_json::Number::from_f64(v.as_f64()?)?.into(),
        Type::Bool => v.as_bool()?.into(),
        _ => return None,
    })
}

/// What `matching_docs` does with the next match.
enum Keep {
    Yes,
    Stop,
}

/// Live documents matching `query`, grouped by segment, until `keep` says stop.
fn matching_docs(
    searcher: &Searcher,
    query: &dyn Query,
    mut keep: impl FnMut() -> Keep,
) -> Result<Vec<(u32, Vec<DocId>)>, IndexError> {
    let weight = query.weight(EnableScoring::disabled_from_searcher(searcher))?;
    let mut out = Vec::new();
    for (ord, reader) in searcher.segment_readers().iter().enumerate() {
        let mut scorer = weight.scorer(reader, 1.0)?;
        let alive = reader.alive_bitset();
        let mut docs = Vec::new();
        let mut doc = scorer.doc();
        while doc != TERMINATED {
            if alive.is_none_or(|a| a.is_alive(doc)) {
                if let Keep::Stop = keep() {
                    out.push((ord as u32, docs));
                    return Ok(out);
                }
                docs.push(doc);
            }
            doc = scorer.advance();
        }
        out.push((ord as u32, docs));
    }
    Ok(out)
}

/// Whether any live document matches `query`: stops at the first.
fn any_match(searcher: &Searcher, query: &dyn Query) -> Result<bool, IndexError> {
    let mut found = false;
    matching_docs(searcher, query, || {
        found = true;
        Keep::Stop
    })?;
    Ok(found)
}
