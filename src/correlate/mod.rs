//! Correlation: joins what the indexes return into answers — the span tree of a trace with its
//! critical path and each span's logs, and logs without trace IDs as inferred candidates.
//! Depends on `index` and `model`.

pub mod inferred;
pub mod metrics;
pub mod series;
pub mod stats;
pub mod trace_tree;
