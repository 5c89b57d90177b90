//! Deleting whole traces from partitions, for sampling: the spans of traces a decision
//! dropped, and their logs by a rule. The index knows nothing of why; the caller names the
//! traces. Deletes run on the indexer thread (it owns every writer) and are committed at once
//! with the WAL position as payload (so a crash before it only leaves the traces in place to be
//! pruned again), then the partition is merged so the disk is given back.

use super::{IndexError, Store};
use crate::model::{Signal, TenantId, TraceId};
use std::ops::Bound;
use tantivy::collector::Count;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{Index, IndexWriter, Term};

/// Traces deleted per request, at most (one boolean query over a term set each).
pub const MAX_TRACES_PER_PRUNE: usize = 10_000;

/// Which of a pruned trace's logs go with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogsToDelete {
    None,
    /// Logs below this severity number (WARN and above stay).
    Below(u64),
    All,
}

#[derive(Debug, Clone)]
pub struct PruneRequest {
    pub tenant: TenantId,
    pub traces: Vec<TraceId>,
    pub logs: LogsToDelete,
    /// The time the traces' records lie within; only partitions overlapping it are touched.
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Store {
    /// Whether a metric point's exemplar names the trace, and whether a log at
    /// `min_severity` or above does: two term counts over every retained partition.
    pub fn trace_named(
        &self,
        tenant: &TenantId,
        trace_id: TraceId,
        min_severity: u64,
    ) -> Result<(bool, bool), IndexError> {
        let count = |signal: Signal, query: &dyn Query| -> Result<bool, IndexError> {
            for p in self.partitions(signal, 0, u64::MAX) {
                if p.reader.searcher().search(query, &Count)? > 0 {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        let trace = self.trace_query(tenant, trace_id);
        let exemplar = count(Signal::Metrics, &trace)?;
        let warn = BooleanQuery::new(vec![
            (Occur::Must, Box::new(trace) as Box<dyn Query>),
            (Occur::Must, self.severity_at_least(min_severity)),
        ]);
        Ok((exemplar, count(Signal::Logs, &warn)?))
    }

    /// The partitions of `signal` a prune request touches.
    pub(super) fn prune_partitions(
        &self,
        signal: Signal,
        req: &PruneRequest,
    ) -> Vec<super::PartitionKey> {
        let margin = self.partition_secs * 1_000_000_000;
        let (start, end) = match signal {
            // A trace's logs may fall just outside its spans' time.
            Signal::Logs => (
                req.start_ns.saturating_sub(margin),
                req.end_ns.saturating_add(margin),
            ),
            _ => (req.start_ns, req.end_ns),
        };
        self.partitions(signal, start, end)
            .iter()
            .map(|p| p.key)
            .collect()
    }
}

/// Queues the deletion of `req`'s records of `signal` in `writer`.
pub(super) fn delete(
    writer: &mut IndexWriter,
    store: &Store,
    signal: Signal,
    req: &PruneRequest,
) -> Result<(), IndexError> {
    let fields = &store.fields;
    let terms = req
        .traces
        .iter()
        .take(MAX_TRACES_PER_PRUNE)
        .map(|t| Term::from_field_text(fields.trace_id, &t.to_hex()));
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
        (
            Occur::Must,
            Box::new(TermQuery::new(
                Term::from_field_text(fields.tenant, req.tenant.as_str()),
                IndexRecordOption::Basic,
            )),
        ),
        (Occur::Must, Box::new(TermSetQuery::new(terms))),
    ];
    if signal == Signal::Logs {
        match req.logs {
            LogsToDelete::None => return Ok(()),
            LogsToDelete::All => {}
            LogsToDelete::Below(min) => clauses.push((
                Occur::MustNot,
                Box::new(RangeQuery::new(
                    Bound::Included(Term::from_field_u64(fields.severity, min)),
                    Bound::Unbounded,
                )),
            )),
        }
    }
    writer.delete_query(Box::new(BooleanQuery::new(clauses)))?;
    Ok(())
}

/// Merges the partition's segments into one in the background, which is when deleted
/// documents leave the disk (tantivy's merge policy does not merge for deletes alone).
pub(super) fn compact(writer: &mut IndexWriter, index: &Index) -> Result<(), IndexError> {
    let segments = index.searchable_segment_ids()?;
    if !segments.is_empty() {
        // Not waited for: the merge commits itself when done, off the indexer thread.
        drop(writer.merge(&segments));
    }
    Ok(())
}
