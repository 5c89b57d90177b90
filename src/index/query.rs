//! Reads: everything of one trace, and log search. Each runs over the partitions it needs,
//! always filtered by tenant. Blocking: call from `spawn_blocking`.

use super::schema::{TIME, UNLINKED};
use super::{Fields, IndexError, Partition, Store};
use crate::model::{LogRecord, MetricPoint, Record, Signal, Span, TenantId, TraceId};
use std::ops::Bound;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{Order, Term};

/// The most records of one signal a trace lookup returns.
pub const MAX_TRACE_RECORDS: usize = 10_000;

#[derive(Debug, Default)]
pub struct TraceRecords {
    /// In start-time order.
    pub spans: Vec<Span>,
    /// In time order.
    pub logs: Vec<LogRecord>,
    /// Metric points with an exemplar naming the trace, in time order.
    pub metrics: Vec<MetricPoint>,
}

#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// tantivy query syntax over the body; `attrs.k:v`, `resource.k:v`, `service:x` work too.
    pub q: String,
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    pub service: Option<String>,
    pub min_severity: Option<u64>,
    pub limit: usize,
}

/// A user's log query in tantivy syntax: words are ANDed, the body is the default field.
pub fn parse_text_query(fields: &Fields, q: &str) -> Result<Box<dyn Query>, IndexError> {
    crate::model::query_text::check("q", q).map_err(|e| IndexError::Query(e.to_string()))?;
    let mut parser = QueryParser::new(
        fields.schema.clone(),
        vec![fields.body],
        tantivy::tokenizer::TokenizerManager::default(),
    );
    parser.set_conjunction_by_default();
    parser
        .parse_query(q)
        .map_err(|e| IndexError::Query(format!("q: {e}")))
}

/// A schema error while running a user's query is the query's fault (`body:*` asks for an
/// exists-query on a field that has no fast values), not weft's: a 400, not a 500.
fn user_query_error(e: IndexError) -> IndexError {
    match e {
        IndexError::Tantivy(tantivy::TantivyError::SchemaError(m)) => {
            IndexError::Query(format!("q: {m}"))
        }
        other => other,
    }
}

impl Store {
    pub(super) fn term(&self, field: tantivy::schema::Field, value: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        ))
    }

    /// Documents of `partition` matching `query`, ordered by time.
    fn fetch(
        &self,
        partition: &Partition,
        query: &dyn Query,
        limit: usize,
        order: Order,
    ) -> Result<Vec<Record>, IndexError> {
        let searcher = partition.reader.searcher();
        let hits = searcher.search(
            query,
            &TopDocs::with_limit(limit).order_by_fast_field::<i64>(TIME, order),
        )?;
        let mut out = Vec::with_capacity(hits.len());
        for (_, addr) in hits {
            out.extend(self.load(&searcher, addr)?);
        }
        Ok(out)
    }

    /// Every span, log and exemplar-carrying metric point of a trace, over all retained time.
    pub fn trace(&self, tenant: &TenantId, trace_id: TraceId) -> Result<TraceRecords, IndexError> {
        let mut out = TraceRecords::default();
        for signal in Signal::ALL {
            for r in self.trace_records(signal, tenant, trace_id)? {
                match r {
                    Record::Span(s) => out.spans.push(s),
                    Record::Log(l) => out.logs.push(l),
                    Record::Metric(m) => out.metrics.push(m),
                }
            }
        }
        out.spans.sort_by_key(|s| (s.start_ns, s.span_id));
        out.logs.sort_by_key(|l| l.effective_time_ns());
        out.metrics.sort_by_key(|m| m.time_ns);
        Ok(out)
    }

    /// The spans of a trace alone, in start order.
    pub fn trace_spans(
        &self,
        tenant: &TenantId,
        trace_id: TraceId,
    ) -> Result<Vec<Span>, IndexError> {
        let mut spans: Vec<Span> = self
            .trace_records(Signal::Spans, tenant, trace_id)?
            .into_iter()
            .filter_map(|r| match r {
                Record::Span(s) => Some(s),
                _ => None,
            })
            .collect();
        spans.sort_by_key(|s| (s.start_ns, s.span_id));
        Ok(spans)
    }

    /// Everything of one trace, of one tenant.
    pub(super) fn trace_query(&self, tenant: &TenantId, trace_id: TraceId) -> BooleanQuery {
        BooleanQuery::new(vec![
            (Occur::Must, self.term(self.fields.tenant, tenant.as_str())),
            (
                Occur::Must,
                self.term(self.fields.trace_id, &trace_id.to_hex()),
            ),
        ])
    }

    /// Up to `MAX_TRACE_RECORDS` records of one signal of a trace, over all retained time.
    fn trace_records(
        &self,
        signal: Signal,
        tenant: &TenantId,
        trace_id: TraceId,
    ) -> Result<Vec<Record>, IndexError> {
        let query = self.trace_query(tenant, trace_id);
        let mut records = Vec::new();
        for p in self.partitions(signal, 0, u64::MAX) {
            let left = MAX_TRACE_RECORDS - records.len().min(MAX_TRACE_RECORDS);
            if left == 0 {
                break;
            }
            records.extend(self.fetch(&p, &query, left, Order::Asc)?);
        }
        Ok(records)
    }

    /// Logs of any of `services` that carry no trace ID, in `[start_ns, end_ns]`, oldest
    /// first: one query for every service of a trace.
    pub fn unlinked_logs(
        &self,
        tenant: &TenantId,
        services: &[&str],
        start_ns: u64,
        end_ns: u64,
        limit: usize,
    ) -> Result<Vec<LogRecord>, IndexError> {
        let any_service: Vec<(Occur, Box<dyn Query>)> = services
            .iter()
            .map(|s| (Occur::Should, self.term(self.fields.service, s)))
            .collect();
        let query = BooleanQuery::new(vec![
            (Occur::Must, self.term(self.fields.tenant, tenant.as_str())),
            (Occur::Must, Box::new(BooleanQuery::new(any_service))),
            (Occur::Must, self.term(self.fields.link, UNLINKED)),
            (Occur::Must, self.time_range(start_ns, end_ns)),
        ]);
        let mut out = Vec::new();
        let mut parts = self.partitions(Signal::Logs, start_ns, end_ns);
        parts.reverse();
        for p in parts {
            if out.len() >= limit {
                break;
            }
            for r in self.fetch(&p, &query, limit - out.len(), Order::Asc)? {
                if let Record::Log(l) = r {
                    out.push(l);
                }
            }
        }
        Ok(out)
    }

    /// How many spans of `service` started in `[start_ns, end_ns]`, over every trace.
    pub fn count_spans(
        &self,
        tenant: &TenantId,
        service: &str,
        start_ns: u64,
        end_ns: u64,
    ) -> Result<u64, IndexError> {
        let query = BooleanQuery::new(vec![
            (Occur::Must, self.term(self.fields.tenant, tenant.as_str())),
            (Occur::Must, self.term(self.fields.service, service)),
            (Occur::Must, self.time_range(start_ns, end_ns)),
        ]);
        let mut n = 0;
        for p in self.partitions(Signal::Spans, start_ns, end_ns) {
            n += p
                .reader
                .searcher()
                .search(&query, &tantivy::collector::Count)? as u64;
        }
        Ok(n)
    }

    pub(super) fn time_range(&self, start_ns: u64, end_ns: u64) -> Box<dyn Query> {
        let clamp = |ns: u64| i64::try_from(ns).unwrap_or(i64::MAX);
        Box::new(RangeQuery::new(
            Bound::Included(Term::from_field_i64(self.fields.time, clamp(start_ns))),
            Bound::Included(Term::from_field_i64(self.fields.time, clamp(end_ns))),
        ))
    }

    /// Logs of this OTLP severity number or more severe.
    pub(super) fn severity_at_least(&self, min: u64) -> Box<dyn Query> {
        Box::new(RangeQuery::new(
            Bound::Included(Term::from_field_u64(self.fields.severity, min)),
            Bound::Unbounded,
        ))
    }

    /// Logs matching `q`, newest first.
    pub fn search_logs(
        &self,
        tenant: &TenantId,
        q: &LogQuery,
    ) -> Result<Vec<LogRecord>, IndexError> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, self.term(self.fields.tenant, tenant.as_str()))];
        if !q.q.trim().is_empty() {
            clauses.push((Occur::Must, parse_text_query(&self.fields, &q.q)?));
        }
        let start = q.start_ns.unwrap_or(0);
        let end = q.end_ns.unwrap_or(u64::MAX);
        self.check_retained(Signal::Logs, tenant, start, end)?;
        if q.start_ns.is_some() || q.end_ns.is_some() {
            clauses.push((Occur::Must, self.time_range(start, end)));
        }
        if let Some(service) = &q.service {
            clauses.push((Occur::Must, self.term(self.fields.service, service)));
        }
        if let Some(min) = q.min_severity {
            clauses.push((Occur::Must, self.severity_at_least(min)));
        }
        let query = BooleanQuery::new(clauses);
        let mut out = Vec::new();
        // Partitions are disjoint in time and come newest first: stop once the page is full.
        for p in self.partitions(Signal::Logs, start, end) {
            if out.len() >= q.limit {
                break;
            }
            let found = self
                .fetch(&p, &query, q.limit - out.len(), Order::Desc)
                .map_err(user_query_error)?;
            for r in found {
                if let Record::Log(l) = r {
                    out.push(l);
                }
            }
        }
        Ok(out)
    }
}
