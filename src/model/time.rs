//! Times as the JSON answers spell them.

use serde::Serializer;

/// Nanoseconds since the epoch as RFC 3339 in UTC, to the nanosecond.
pub fn rfc3339(ns: u64) -> String {
    chrono::DateTime::from_timestamp_nanos(i64::try_from(ns).unwrap_or(i64::MAX))
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Serializes nanoseconds as a decimal string, as OTLP/JSON does: JavaScript numbers lose
/// precision past 2^53. For `#[serde(serialize_with = "ns_string")]`.
pub fn ns_string<S: Serializer>(ns: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ns.to_string())
}
