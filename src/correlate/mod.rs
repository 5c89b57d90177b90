//! Correlation: joins what the indexes return into answers. `correlator::Correlator` is the
//! room's front door — every API (weft's own, the UI's) asks it, and it calls the rest:
//!
//! - traces: `trace_tree` (span tree, self time, critical path), `inferred` (logs without a
//!   trace ID offered as candidates), `trace_search`, `latency`, `compare`, `service_map`;
//! - metrics: `series` (selectors and per-step evaluation), `metrics` and `stats` (anomaly
//!   detection), `spike` (the traces behind a spike);
//! - windows: `baseline` (the one rule for "what came before"), `diff` and `templates` (what is
//!   different), `timeline` (one ordered, paged stream of every signal);
//! - incidents: `watch` (what the detector watches), `incidents` (store, detector and
//!   analysis), `origin` (where an incident began).
//!
//! Depends on `index`, `model` and `config`; knows no transport.

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
