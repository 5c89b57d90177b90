//! Correlation: joins what the indexes return into answers — the span tree of a trace with its
//! critical path and each span's logs. Depends on `model` (and, as it grows, on `index`).

pub mod trace_tree;
