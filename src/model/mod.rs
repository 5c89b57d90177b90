//! Typed values that flow through weft: identifiers and records. Depends on nothing else in the
//! crate.

pub mod codec;
mod ids;
pub mod query_text;
mod records;
pub mod time;

#[cfg(test)]
pub mod testing;

pub use ids::*;
pub use records::*;
pub use time::{ns_string, rfc3339};
