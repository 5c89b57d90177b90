//! Query-string parameters of the read API: each endpoint names the parameters it knows, an
//! unknown one is an error that names it, and every value error names its parameter.

use crate::model::time::{parse_duration_param, parse_time_param};
use actix_web::web;
use std::collections::BTreeMap;

pub struct Params {
    values: BTreeMap<String, String>,
    /// Parameters that may be given more than once, every value in order.
    repeated: BTreeMap<String, Vec<String>>,
}

/// The widest window a query may ask for, and the most steps it may return per series.
pub const MAX_STEPS: u64 = 11_000;
const DEFAULT_RANGE_NS: u64 = 3600 * 1_000_000_000;

impl Params {
    pub fn parse(query_string: &str, allowed: &[&str]) -> Result<Params, String> {
        Params::parse_repeating(query_string, allowed, &[])
    }

    /// `parse`, with the parameters in `repeatable` allowed more than once (read with `all`).
    pub fn parse_repeating(
        query_string: &str,
        allowed: &[&str],
        repeatable: &[&str],
    ) -> Result<Params, String> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query_string)
            .map_err(|e| format!("query string: {e}"))?
            .into_inner();
        let mut values = BTreeMap::new();
        let mut repeated: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            if repeatable.contains(&k.as_str()) {
                repeated.entry(k).or_default().push(v);
                continue;
            }
            if !allowed.contains(&k.as_str()) {
                return Err(format!(
                    "unknown parameter {k:?}; this endpoint takes {}",
                    [allowed, repeatable].concat().join(", ")
                ));
            }
            if values.insert(k.clone(), v).is_some() {
                return Err(format!("parameter {k:?} is given twice"));
            }
        }
        Ok(Params { values, repeated })
    }

    /// Every value of a repeatable parameter, in the order given.
    pub fn all(&self, name: &str) -> &[String] {
        self.repeated.get(name).map_or(&[], Vec::as_slice)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name).ok_or_else(|| format!("{name} is required"))
    }

    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        self.get(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| format!("{name}: {v:?} is not a valid number"))
            })
            .transpose()
    }

    /// `start`/`end` (RFC 3339, epoch, `now-15m`); the default window is the hour up to now.
    pub fn window(&self) -> Result<(u64, u64), String> {
        let now = crate::now_ns();
        let end = match self.get("end") {
            Some(v) => parse_time_param("end", v, now)?,
            None => now,
        };
        let start = match self.get("start") {
            Some(v) => parse_time_param("start", v, now)?,
            None => end.saturating_sub(DEFAULT_RANGE_NS),
        };
        if start > end {
            return Err("start is after end".into());
        }
        Ok((start, end))
    }

    /// `step` as a duration (`model::time`); by default the window in about
    /// 240 steps, never finer than a second. At most `MAX_STEPS` steps.
    pub fn step(&self, start: u64, end: u64) -> Result<u64, String> {
        let step = match self.get("step") {
            Some(v) => parse_duration_param("step", v)?,
            None => ((end - start) / 240).max(1_000_000_000),
        };
        if step == 0 {
            return Err("step must be greater than 0".into());
        }
        if (end - start) / step > MAX_STEPS {
            return Err(format!(
                "step: {} ms gives more than {MAX_STEPS} steps over the window; use a larger step",
                step / 1_000_000
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
        assert!(e.contains("colour") && e.contains("query"), "{e}");
        assert!(Params::parse("a=1&a=2", &["a"])
            .err()
            .unwrap()
            .contains("twice"));
        let p = Params::parse("step=1ms", &["step"]).unwrap();
        assert!(p
            .step(0, 3600 * 1_000_000_000)
            .unwrap_err()
            .contains("11000"));
        let p = Params::parse("limit=ten", &["limit"]).unwrap();
        assert!(p.number::<usize>("limit").unwrap_err().contains("limit"));
    }
}
