//! Correlation: joins what the indexes return into answers — the span tree of a trace with its
//! critical path and each span's logs, and logs without trace IDs as inferred candidates.
//! Depends on `index` and `model`.

pub mod baseline;
pub mod compare;
pub mod correlator;
pub mod diff;
pub mod incidents;
pub mod inferred;
pub mod latency;
pub mod metrics;
pub mod origin;
pub mod series;
pub mod service_map;
pub mod spike;
pub mod stats;
pub mod templates;
pub mod timeline;
pub mod trace_search;
pub mod trace_tree;
pub mod watch;
