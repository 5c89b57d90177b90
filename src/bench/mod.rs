//! Benchmarks that print figures: a load generator (`weft bench load`) that any OTLP endpoint
//! can be measured with, and the suite (`weft bench run`) that measures weft against its own
//! ceiling — the same server with `--sink null`, which receives and decodes but stores
//! nothing — in the same run, so every figure also stands as a ratio on a noisy machine.
//! Nothing here is used by the server.

pub mod compat;
pub mod gen;
pub mod load;
pub mod sampling;
mod suite;

pub(crate) use suite::{wait_indexed, Served};

pub use suite::{run_suite, SuiteOptions};
