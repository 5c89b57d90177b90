//! weft: a log-metric-trace correlation service.
//!
//! ```text
//!  clients ──► ingest ──► model ──► wal ──► index ──► correlate ──► api ──► users / UI
//! ```
//!
//! A request is decoded once into typed `model` records, made durable in the `wal`, and only
//! then acknowledged; the indexer thread adds acknowledged batches to time-partitioned tantivy
//! `index`es, linked by trace ID; queries read the indexes, never the WAL.
//!
//! Dependency rule: `api → {ingest, correlate, index}`; `ingest → {wal, model}`;
//! `index → {wal, model}`; `correlate → {index, model}`; `model`, `config`, `error` depend on
//! nothing inside the crate. `server` wires them together.

pub mod api;
pub mod bench;
pub mod compat;
pub mod config;
pub mod correlate;
pub mod demo;
pub mod error;
pub mod eval;
pub mod health;
pub mod index;
pub mod ingest;
pub mod model;
pub mod notify;
pub mod sampling;
pub mod server;
pub mod telemetry;
pub mod ui;
pub mod wal;

/// Wall-clock time in nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
