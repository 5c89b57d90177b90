//! Typed values that flow through weft: identifiers and records. Depends on nothing else in the
//! crate.

mod ids;
mod records;
mod time;

#[cfg(test)]
pub mod testing;

pub use ids::*;
pub use records::*;
pub use time::{ns_string, rfc3339};
