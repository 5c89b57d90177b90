//! Times as weft reads and writes them. The one grammar for times and durations that people
//! and clients write: in query
//! parameters (`start`, `end`, `step`, `baseline_*`), in JSON-lines records and anywhere else.
//!
//! - A time is RFC 3339 (`2026-11-26T10:00:00Z`), a Unix epoch number whose unit is told by
//!   its magnitude (seconds below 10^11, then ms, µs, ns; fractions allowed), `now`, or
//!   `now-<duration>` / `now+<duration>`.
//! - A duration is a number with a unit: `ns`, `us`, `ms`, `s`, `m`, `h`, `d`, `w` (fractions
//!   allowed: `1.5m`), or several added up (`1h30m`); a bare number is seconds.
//!
//! Times are nanoseconds since the epoch as `u64`, but the indexes keep them as `i64`, so no
//! time past `MAX_TIME_NS` (2262-04-11) is accepted: it would be stored clamped. Answers
//! spell times as RFC 3339 (`rfc3339`) and nanoseconds as decimal strings (`ns_string`).

/// Nanoseconds since the epoch as RFC 3339 in UTC, to the nanosecond.
pub fn rfc3339(ns: u64) -> String {
    chrono::DateTime::from_timestamp_nanos(i64::try_from(ns).unwrap_or(i64::MAX))
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Serializes nanoseconds as a decimal string, as OTLP/JSON does: JavaScript numbers lose
/// precision past 2^53. For `#[serde(serialize_with = "ns_string")]`.
pub fn ns_string<S: serde::Serializer>(ns: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ns.to_string())
}

/// The latest time weft stores: `i64::MAX` nanoseconds, 2262-04-11T23:47:16Z.
pub const MAX_TIME_NS: u64 = i64::MAX as u64;

/// Nanoseconds from a Unix epoch number whose unit is told by its magnitude. Integers are
/// scaled exactly; only fractional values go through floating point.
fn epoch_ns(text: &str) -> Option<u64> {
    const UNITS: [(f64, u64); 3] = [(1e11, 1_000_000_000), (1e14, 1_000_000), (1e17, 1_000)];
    if let Ok(n) = text.parse::<u64>() {
        let scale = UNITS
            .iter()
            .find(|(below, _)| (n as f64) < *below)
            .map_or(1, |u| u.1);
        return n.checked_mul(scale);
    }
    let f: f64 = text.parse().ok()?;
    if !f.is_finite() || f < 0.0 {
        return None;
    }
    let scale = UNITS
        .iter()
        .find(|(below, _)| f < *below)
        .map_or(1, |u| u.1);
    let ns = f * scale as f64;
    (ns < u64::MAX as f64).then_some(ns as u64)
}

/// An absolute time: RFC 3339 or an epoch number. `None` when it is neither or past
/// `MAX_TIME_NS`.
pub fn parse_time(text: &str) -> Option<u64> {
    let text = text.trim();
    let ns = match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) => u64::try_from(t.timestamp_nanos_opt()?).ok()?,
        Err(_) => epoch_ns(text)?,
    };
    (ns <= MAX_TIME_NS).then_some(ns)
}

/// A duration in nanoseconds, or `None` when it is not one or does not fit: one number with
/// a unit, or several added up as Prometheus and Go write them (`1h30m`, `1m30s`).
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Some(ns) = one_duration(text) {
        return Some(ns);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let unit_start = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let unit_len = rest[unit_start..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len() - unit_start);
        if unit_start == 0 || unit_len == 0 {
            return None;
        }
        let (part, tail) = rest.split_at(unit_start + unit_len);
        total = total.checked_add(one_duration(part)?)?;
        rest = tail;
    }
    (!text.is_empty()).then_some(total)
}

/// One number and its unit (none: seconds).
fn one_duration(text: &str) -> Option<u64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: f64 = num.parse().ok()?;
    let per = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "" | "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        "d" => 86_400e9,
        "w" => 604_800e9,
        _ => return None,
    };
    let ns = n * per;
    (ns.is_finite() && ns < u64::MAX as f64).then_some(ns as u64)
}

/// A time parameter named `name` (for the error): an absolute time, `now`, or `now±duration`.
pub fn parse_time_param(name: &str, text: &str, now_ns: u64) -> Result<u64, String> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("now") {
        let rest = rest.trim();
        if rest.is_empty() {
            return Ok(now_ns);
        }
        // The sign is one character; split after it, not after a byte (it may not be ASCII).
        let sign_len = rest.chars().next().map_or(0, char::len_utf8);
        let (sign, d) = rest.split_at(sign_len);
        let delta = parse_duration(d)
            .filter(|_| sign == "-" || sign == "+")
            .ok_or_else(|| format!("{name}: {text:?} is not like now-15m or now-1.5h"))?;
        return Ok(if sign == "-" {
            now_ns.saturating_sub(delta)
        } else {
            now_ns.saturating_add(delta).min(MAX_TIME_NS)
        });
    }
    parse_time(text).ok_or_else(|| {
        format!(
            "{name}: {text:?} is neither RFC 3339, a Unix epoch number nor now-<duration> \
             (and no time after 2262-04-11 is stored)"
        )
    })
}

/// A duration parameter named `name` (for the error).
pub fn parse_duration_param(name: &str, text: &str) -> Result<u64, String> {
    parse_duration(text).ok_or_else(|| {
        format!("{name}: {text:?} is not a duration like 500ms, 15s, 1.5m, 1h30m, 1d or 1w")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn times() {
        let now = 10_000 * S;
        assert_eq!(parse_time_param("start", "now", now).unwrap(), now);
        assert_eq!(
            parse_time_param("start", "now-15m", now).unwrap(),
            now - 900 * S
        );
        assert_eq!(
            parse_time_param("start", "now-1.5m", now).unwrap(),
            now - 90 * S
        );
        assert_eq!(
            parse_time_param("end", "now+1h", now).unwrap(),
            now + 3600 * S
        );
        assert_eq!(
            parse_time_param("start", "2026-11-26T10:00:00Z", now).unwrap(),
            1_795_687_200 * S
        );
        assert_eq!(
            parse_time_param("start", "1700000000", now).unwrap(),
            1_700_000_000 * S
        );
        assert_eq!(
            parse_time_param("start", "1700000000123", now).unwrap(),
            1_700_000_000_123_000_000
        );
        assert_eq!(parse_time_param("start", "0", now).unwrap(), 0);
        let err = parse_time_param("end", "tomorrow", now).unwrap_err();
        assert!(err.starts_with("end:"), "{err}");
        assert!(parse_time_param("start", "now-3y", now).is_err());
        assert!(parse_time_param("start", "now*3m", now).is_err());
        // Found by the query_params fuzzer: a multi-byte unit once split a character.
        assert!(parse_time_param("start", "now-15\u{99}", now).is_err());
        // Found by the query_params fuzzer: a multi-byte character where the sign goes.
        assert!(parse_time_param("start", "now\u{fffd}\u{fffd}=", now).is_err());
        // Past what the index can hold.
        assert!(parse_time_param("end", "2300-01-01T00:00:00Z", now).is_err());
        assert!(parse_time("18446744073709551615").is_none());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1.5m"), Some(90 * S));
        assert_eq!(parse_duration("500ms"), Some(S / 2));
        assert_eq!(parse_duration("15"), Some(15 * S));
        assert_eq!(parse_duration("2w"), Some(14 * 86_400 * S));
        assert_eq!(parse_duration("250us"), Some(250_000));
        assert!(parse_duration("5y").is_none());
        assert!(parse_duration("fast").is_none());
        assert!(parse_duration("1e400s").is_none());
        assert_eq!(parse_duration("1h30m"), Some(5400 * S));
        assert_eq!(parse_duration("1m30s"), Some(90 * S));
        assert_eq!(parse_duration("1.5s"), Some(3 * S / 2));
        for bad in ["", "5x", "m5", "-1", "1h5", "1h 30m"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert!(parse_duration_param("step", "x")
            .unwrap_err()
            .starts_with("step:"));
    }
}
