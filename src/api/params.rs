//! Request parameters, the one parser every handler uses. weft's own API is strict: each
//! endpoint names the parameters it knows, an unknown or doubled one is an error that names
//! it. The compatibility APIs read the same way but leniently, as Prometheus, Loki, Tempo and
//! Jaeger do: unknown names are ignored, the last value wins, and a form-encoded POST body
//! adds to the query string (Grafana and promtool POST their queries). Times and durations are
//! `model::time`'s one grammar; every value error is a `ParamError` naming its parameter.

use crate::error::{ErrorCode, ServiceError};
use crate::model::time::{parse_duration_param, parse_time_param};
use crate::model::TraceId;
use actix_web::web;

/// A parameter that is missing, unknown, doubled or has a value that cannot be used. The
/// message names the parameter (and the limit, where one was passed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParamError {
    pub param: String,
    pub message: String,
}

impl ParamError {
    /// `message` must name `param` for a person reading it alone.
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> ParamError {
        ParamError {
            param: param.into(),
            message: message.into(),
        }
    }
}

/// A trace ID given as parameter `name` (a query parameter or a path segment).
pub fn trace_id(name: &str, value: &str) -> Result<TraceId, ParamError> {
    TraceId::from_hex(value).map_err(|e| ParamError::new(name, format!("{name}: {e}")))
}

impl ServiceError for ParamError {
    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
    }

    fn param(&self) -> Option<&str> {
        Some(&self.param)
    }
}

/// The compatibility APIs keep their protocols' own error enums, which carry text.
impl From<ParamError> for String {
    fn from(e: ParamError) -> String {
        e.message
    }
}

pub struct Params {
    pairs: Vec<(String, String)>,
}

/// The widest window a query may ask for, and the most steps it may return per series.
pub const MAX_STEPS: u64 = 11_000;
const DEFAULT_RANGE_NS: u64 = 3600 * 1_000_000_000;

fn decode(text: &str) -> Result<Vec<(String, String)>, ParamError> {
    web::Query::<Vec<(String, String)>>::from_query(text)
        .map(|q| q.into_inner())
        .map_err(|e| ParamError::new("query string", format!("query string: {e}")))
}

impl Params {
    /// Strict: only `allowed` names, each at most once.
    pub fn parse(query_string: &str, allowed: &[&str]) -> Result<Params, ParamError> {
        Params::parse_repeating(query_string, allowed, &[])
    }

    /// `parse`, with the parameters in `repeatable` allowed more than once (read with `all`).
    pub fn parse_repeating(
        query_string: &str,
        allowed: &[&str],
        repeatable: &[&str],
    ) -> Result<Params, ParamError> {
        let pairs = decode(query_string)?;
        for (i, (k, _)) in pairs.iter().enumerate() {
            if repeatable.contains(&k.as_str()) {
                continue;
            }
            if !allowed.contains(&k.as_str()) {
                return Err(ParamError::new(
                    k,
                    format!(
                        "unknown parameter {k:?}; this endpoint takes {}",
                        [allowed, repeatable].concat().join(", ")
                    ),
                ));
            }
            if pairs[..i].iter().any(|(earlier, _)| earlier == k) {
                return Err(ParamError::new(
                    k,
                    format!("parameter {k:?} is given twice"),
                ));
            }
        }
        Ok(Params { pairs })
    }

    /// Lenient, for the compatibility APIs: the query string's pairs, then the body's when it
    /// is a form; any name, any number of times.
    pub fn lenient(
        query_string: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Params, ParamError> {
        let mut pairs = decode(query_string)?;
        if content_type.is_some_and(|c| c.contains("application/x-www-form-urlencoded")) {
            let text = std::str::from_utf8(body)
                .map_err(|_| ParamError::new("body", "form body is not UTF-8"))?;
            pairs.extend(decode(text)?);
        }
        Ok(Params { pairs })
    }

    /// Every non-blank value of a parameter, in the order given.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The (last) value of `name`, if it is not blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str, ParamError> {
        self.get(name)
            .ok_or_else(|| ParamError::new(name, format!("{name} is required")))
    }

    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ParamError> {
        self.get(name)
            .map(|v| {
                v.parse::<T>().map_err(|_| {
                    ParamError::new(name, format!("{name}: {v:?} is not a valid number"))
                })
            })
            .transpose()
    }

    /// A time: RFC 3339, a Unix epoch number, `now` or `now-15m`.
    pub fn time(&self, name: &str) -> Result<Option<u64>, ParamError> {
        self.get(name)
            .map(|v| {
                parse_time_param(name, v, crate::now_ns()).map_err(|m| ParamError::new(name, m))
            })
            .transpose()
    }

    /// A duration: `250ms`, `1.5m`, `1h30m`, or a number of seconds.
    pub fn duration(&self, name: &str) -> Result<Option<u64>, ParamError> {
        self.get(name)
            .map(|v| parse_duration_param(name, v).map_err(|m| ParamError::new(name, m)))
            .transpose()
    }

    /// `limit`: `default` when absent, otherwise 1 to `max`.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ParamError> {
        match self.number::<usize>("limit")? {
            None => Ok(default),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(n) => Err(ParamError::new(
                "limit",
                format!("limit must be 1 to {max}, got {n}"),
            )),
        }
    }

    /// `start`/`end`; the default window is the hour up to now.
    pub fn window(&self) -> Result<(u64, u64), ParamError> {
        let end = self.time("end")?.unwrap_or_else(crate::now_ns);
        let start = self
            .time("start")?
            .unwrap_or_else(|| end.saturating_sub(DEFAULT_RANGE_NS));
        if start > end {
            return Err(ParamError::new("start", "start is after end"));
        }
        Ok((start, end))
    }

    /// `step` as a duration; by default the window in about 240 steps, never finer than a
    /// second. At most `MAX_STEPS` steps.
    pub fn step(&self, start: u64, end: u64) -> Result<u64, ParamError> {
        let step = self
            .duration("step")?
            .unwrap_or_else(|| ((end - start) / 240).max(1_000_000_000));
        if step == 0 {
            return Err(ParamError::new("step", "step must be greater than 0"));
        }
        if (end - start) / step > MAX_STEPS {
            return Err(ParamError::new(
                "step",
                format!(
                    "step: {} ms gives more than {MAX_STEPS} steps over the window; use a larger step",
                    step / 1_000_000
                ),
            ));
        }
        Ok(step)
    }

    /// A comma-separated list.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_named_in_errors() {
        let p = Params::parse("query=up&step=15s", &["query", "step"]).unwrap();
        assert_eq!(p.get("query"), Some("up"));
        assert_eq!(p.step(0, 3600 * 1_000_000_000).unwrap(), 15_000_000_000);
        let e = Params::parse("colour=red", &["query"]).err().unwrap();
        assert_eq!(e.param, "colour");
        assert!(
            e.message.contains("colour") && e.message.contains("query"),
            "{e}"
        );
        let e = Params::parse("a=1&a=2", &["a"]).err().unwrap();
        assert!(e.message.contains("twice") && e.param == "a", "{e}");
        let p = Params::parse("step=1ms", &["step"]).unwrap();
        let e = p.step(0, 3600 * 1_000_000_000).unwrap_err();
        assert!(e.param == "step" && e.message.contains("11000"), "{e}");
        let p = Params::parse("limit=ten", &["limit"]).unwrap();
        assert_eq!(p.number::<usize>("limit").unwrap_err().param, "limit");
        assert_eq!(p.limit(5, 10).unwrap_err().param, "limit");
    }

    /// One grammar: what `step` takes, `start=now-…` takes too, in both modes.
    #[test]
    fn one_grammar_for_times_and_durations() {
        let p = Params::parse(
            "start=now-1.5m&end=now&step=1m30s",
            &["start", "end", "step"],
        )
        .unwrap();
        let (start, end) = p.window().unwrap();
        // `now` is read once per parameter, so allow the moment between the two reads.
        assert!((end - start).abs_diff(90_000_000_000) < 1_000_000_000);
        assert_eq!(p.step(start, end).unwrap(), 90_000_000_000);
        let p = Params::parse("start=now-1h30m", &["start"]).unwrap();
        assert!(p.window().is_ok());
    }

    #[test]
    fn lenient_reads_forms_repeats_and_unknown_names() {
        let f = Params::lenient(
            "match[]=up&match[]=down&start=10",
            Some("application/x-www-form-urlencoded"),
            b"query=sum(up)&unknown=1",
        )
        .unwrap();
        assert_eq!(f.all("match[]"), ["up", "down"]);
        assert_eq!(f.get("query"), Some("sum(up)"));
        assert_eq!(f.time("start").unwrap(), Some(10_000_000_000));
        assert_eq!(f.required("end").unwrap_err().param, "end");
        let f = Params::lenient("step=fast&limit=x", None, b"").unwrap();
        assert_eq!(f.duration("step").unwrap_err().param, "step");
        assert_eq!(f.number::<usize>("limit").unwrap_err().param, "limit");
    }
}
