//! Request parameters as the compatibility APIs take them: from the query string and, for
//! POSTs, a form-encoded body (Grafana and promtool POST their Prometheus queries); names may
//! repeat (`match[]`), and unknown ones are ignored, as Prometheus, Loki, Tempo and Jaeger
//! ignore them. Every value error names its parameter.

use actix_web::web;

pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// The query string's pairs, then the body's when it is a form.
    pub fn parse(
        query_string: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Form, String> {
        let mut pairs = decode(query_string)?;
        if content_type.is_some_and(|c| c.contains("application/x-www-form-urlencoded")) {
            let text =
                std::str::from_utf8(body).map_err(|_| "form body is not UTF-8".to_string())?;
            pairs.extend(decode(text)?);
        }
        Ok(Form { pairs })
    }

    /// The last value of `name`, if it is not blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format!("parameter {name:?} is required"))
    }

    /// Every value of a repeated parameter.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
            .collect()
    }

    /// A time: RFC 3339, a Unix epoch number (seconds, with fractions, or ms/µs/ns by
    /// magnitude), or `now-15m`.
    pub fn time_ns(&self, name: &str) -> Result<Option<u64>, String> {
        self.get(name)
            .map(|v| crate::model::time::parse_time_param(name, v, crate::now_ns()))
            .transpose()
    }

    /// A duration: `5m`, `1h30m`, `250ms`, or a number of seconds.
    pub fn duration_ns(&self, name: &str) -> Result<Option<u64>, String> {
        self.get(name)
            .map(|v| {
                duration_ns(v).ok_or_else(|| {
                    format!("invalid parameter {name:?}: {v:?} is not a duration like 15s or 1h30m")
                })
            })
            .transpose()
    }

    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        self.get(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| format!("invalid parameter {name:?}: {v:?} is not a valid number"))
            })
            .transpose()
    }
}

fn decode(text: &str) -> Result<Vec<(String, String)>, String> {
    web::Query::<Vec<(String, String)>>::from_query(text)
        .map(|q| q.into_inner())
        .map_err(|e| format!("query string: {e}"))
}

/// A duration in nanoseconds as weft reads one (`model::time`: `250ms`, `1.5s`, a number of
/// seconds), or several added up as Prometheus and Go write them (`1h30m`, `1m30s`).
pub fn duration_ns(v: &str) -> Option<u64> {
    let v = v.trim();
    if let Some(ns) = crate::model::time::parse_duration(v) {
        return Some(ns);
    }
    let mut total: u64 = 0;
    let mut rest = v;
    while !rest.is_empty() {
        let unit_start = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let unit_len = rest[unit_start..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len() - unit_start);
        let (part, tail) = rest.split_at(unit_start + unit_len);
        if unit_start == 0 || unit_len == 0 {
            return None;
        }
        total = total.checked_add(crate::model::time::parse_duration(part)?)?;
        rest = tail;
    }
    (!v.is_empty()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_repeated_parameters() {
        assert_eq!(duration_ns("1h30m"), Some(5_400_000_000_000));
        assert_eq!(duration_ns("250ms"), Some(250_000_000));
        assert_eq!(duration_ns("15"), Some(15_000_000_000));
        assert_eq!(duration_ns("0.5"), Some(500_000_000));
        assert_eq!(duration_ns("1.5s"), Some(1_500_000_000));
        assert_eq!(duration_ns("1m30s"), Some(90_000_000_000));
        for bad in ["", "5x", "m5", "-1", "1e400", "1h5"] {
            assert_eq!(duration_ns(bad), None, "{bad}");
        }
        let f = Form::parse(
            "match[]=up&match[]=down&start=10",
            Some("application/x-www-form-urlencoded"),
            b"query=sum(up)&unknown=1",
        )
        .unwrap();
        assert_eq!(f.all("match[]"), ["up", "down"]);
        assert_eq!(f.get("query"), Some("sum(up)"));
        assert_eq!(f.time_ns("start").unwrap(), Some(10_000_000_000));
        assert!(f.required("end").unwrap_err().contains("end"));
        let f = Form::parse("step=fast&limit=x", None, b"").unwrap();
        assert!(f.duration_ns("step").unwrap_err().contains("step"));
        assert!(f.number::<usize>("limit").unwrap_err().contains("limit"));
    }
}
