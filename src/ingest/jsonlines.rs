//! JSON-lines logs, one object per line, as applications write them. Recognised keys (the
//! first present wins; every other key is kept as an attribute):
//!
//! | meaning   | keys                                                                  |
//! |-----------|-----------------------------------------------------------------------|
//! | time      | `ts`, `timestamp`, `time`, `@timestamp`, `datetime`                   |
//! | severity  | `level`, `severity`, `lvl`, `loglevel`, `log.level`, `severity_text`  |
//! | message   | `msg`, `message`, `body`, `log`, `text`                               |
//! | service   | `service`, `service.name`, `service_name`, `app`, `application`       |
//! | trace ID  | `trace_id`, `traceId`, `trace.id`, `traceid`                          |
//! | span ID   | `span_id`, `spanId`, `span.id`, `spanid`                              |
//!
//! Times are RFC 3339 strings or Unix epoch numbers (seconds, milliseconds, microseconds or
//! nanoseconds, told apart by magnitude). Severity names map to OTLP severity numbers; numeric
//! levels 10–60 in steps of ten are bunyan/pino levels, other numbers 1–24 OTLP severity numbers. A trace ID
//! field that is not a valid ID is kept as an attribute rather than dropping the line.

use super::otlp::Converted;
use super::traceids::Extractor;
use crate::model::{time, AttrValue, KeyValue, LogRecord, Record, Scope, SpanId, TraceId};
use serde_json::{Map, Value};

const TIME_KEYS: &[&str] = &["ts", "timestamp", "time", "@timestamp", "datetime"];
const SEVERITY_KEYS: &[&str] = &[
    "level",
    "severity",
    "lvl",
    "loglevel",
    "log.level",
    "severity_text",
];
const MESSAGE_KEYS: &[&str] = &["msg", "message", "body", "log", "text"];
const SERVICE_KEYS: &[&str] = &[
    "service",
    "service.name",
    "service_name",
    "app",
    "application",
];
const TRACE_KEYS: &[&str] = &["trace_id", "traceId", "trace.id", "traceid"];
const SPAN_KEYS: &[&str] = &["span_id", "spanId", "span.id", "spanid"];

/// OTLP severity number for a level name, by its usual spellings.
pub fn severity_number(name: &str) -> i32 {
    match name.trim().to_ascii_lowercase().as_str() {
        "trace" | "trc" | "finest" => 1,
        "debug" | "dbg" | "fine" => 5,
        "info" | "information" | "informational" | "notice" => 9,
        "warn" | "warning" | "wrn" => 13,
        "error" | "err" | "eror" | "severe" => 17,
        "fatal" | "critical" | "crit" | "panic" | "alert" | "emergency" | "emerg" => 21,
        _ => 0,
    }
}

fn take<'a>(obj: &mut Map<String, Value>, keys: &[&'a str]) -> Option<(&'a str, Value)> {
    keys.iter().find_map(|k| obj.remove(*k).map(|v| (*k, v)))
}

/// Nanoseconds since the epoch from an RFC 3339 string or an epoch number of any unit
/// (`model::time`); 0 means the record carries no time of its own.
pub fn parse_time(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => time::parse_time(&n.to_string()),
        Value::String(s) => time::parse_time(s),
        _ => None,
    }
}

fn severity(v: &Value) -> (i32, String) {
    match v {
        Value::String(s) => (severity_number(s), s.clone()),
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(0);
            let number = match n {
                // bunyan/pino levels first: JSON-lines loggers emit these far more often than
                // the OTLP numbers they collide with.
                10 | 20 | 30 | 40 | 50 | 60 => [1, 5, 9, 13, 17, 21][(n / 10 - 1) as usize],
                1..=24 => n as i32,
                _ => 0,
            };
            (number, n.to_string())
        }
        other => (0, other.to_string()),
    }
}

fn text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn parse_line(line: &str, extractor: &Extractor, now_ns: u64) -> Result<LogRecord, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(mut obj) = value else {
        return Err("expected a JSON object".into());
    };
    let time_ns = match take(&mut obj, TIME_KEYS) {
        Some((key, v)) => parse_time(&v).ok_or_else(|| {
            format!("field {key:?}: {v} is neither an RFC 3339 time nor a Unix epoch number")
        })?,
        None => 0,
    };
    let (severity_number, severity_text) = take(&mut obj, SEVERITY_KEYS)
        .map(|(_, v)| severity(&v))
        .unwrap_or((0, String::new()));
    let body = take(&mut obj, MESSAGE_KEYS).map_or(AttrValue::Empty, |(_, v)| match v {
        Value::String(s) => AttrValue::Str(s),
        other => AttrValue::from_json(&other),
    });
    let service = take(&mut obj, SERVICE_KEYS)
        .map(|(_, v)| text(v))
        .unwrap_or_else(|| "unknown_service".into());
    let mut trace_field = "trace_id";
    let trace_id = match take(&mut obj, TRACE_KEYS) {
        Some((key, v)) => match TraceId::from_hex(&text(v.clone())) {
            Ok(t) => {
                trace_field = key;
                Some(t)
            }
            Err(_) => {
                obj.insert(key.to_string(), v);
                None
            }
        },
        None => None,
    };
    let span_id = match take(&mut obj, SPAN_KEYS) {
        Some((key, v)) => match SpanId::from_hex(&text(v.clone())) {
            Ok(s) => Some(s),
            Err(_) => {
                obj.insert(key.to_string(), v);
                None
            }
        },
        None => None,
    };
    let mut log = LogRecord {
        time_ns,
        observed_ns: now_ns,
        severity_number,
        severity_text,
        body,
        event_name: String::new(),
        resource: vec![KeyValue {
            key: "service.name".into(),
            value: AttrValue::Str(service.clone()),
        }],
        service,
        scope: Scope {
            name: String::new(),
            version: String::new(),
        },
        attributes: obj
            .into_iter()
            .map(|(key, v)| KeyValue {
                key,
                value: AttrValue::from_json(&v),
            })
            .collect(),
        trace_id,
        span_id,
        link: None,
        flags: 0,
    };
    extractor.link(&mut log, trace_field);
    Ok(log)
}

/// Parses a whole body; every line is accepted or rejected on its own.
pub fn parse(body: &[u8], extractor: &Extractor, now_ns: u64) -> Converted {
    let mut out = Converted::default();
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        // Refused, not stored with U+FFFD in place of what the client sent.
        let line = match std::str::from_utf8(line) {
            Ok(l) => l.trim(),
            Err(e) => {
                out.reject("invalid", || {
                    format!(
                        "line {}: not valid UTF-8 at byte {}",
                        i + 1,
                        e.valid_up_to()
                    )
                });
                continue;
            }
        };
        if line.is_empty() {
            continue;
        }
        match parse_line(line, extractor, now_ns) {
            Ok(log) => out.records.push(Record::Log(log)),
            Err(e) => out.reject("invalid", || format!("line {}: {e}", i + 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ExtractConfig;
    use crate::model::LinkMethod;

    fn logs(body: &str) -> Converted {
        parse(
            body.as_bytes(),
            &Extractor::new(&ExtractConfig::default()).unwrap(),
            7,
        )
    }

    fn only(c: &Converted) -> &LogRecord {
        assert_eq!(c.records.len(), 1, "{:?}", c.messages);
        match &c.records[0] {
            Record::Log(l) => l,
            _ => unreachable!(),
        }
    }

    #[test]
    fn recognises_common_names_and_keeps_the_rest() {
        let c = logs(
            r#"{"ts":"2026-11-26T10:00:00Z","level":"error","msg":"card declined","service":"checkout","trace_id":"4BF92F3577B34DA6A3CE929D0E0E4736","user":"bob","http":{"status":502}}"#,
        );
        let l = only(&c);
        assert_eq!(l.time_ns, 1_795_687_200_000_000_000);
        assert_eq!((l.severity_number, l.severity_text.as_str()), (17, "error"));
        assert_eq!(l.body, AttrValue::Str("card declined".into()));
        assert_eq!(l.service, "checkout");
        assert_eq!(
            l.trace_id.unwrap().to_hex(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let link = l.link.as_ref().unwrap();
        assert_eq!(
            (link.method, link.field.as_deref()),
            (LinkMethod::Structured, Some("trace_id"))
        );
        let keys: Vec<_> = l.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, vec!["http", "user"]);
    }

    #[test]
    fn epoch_units_and_bad_lines() {
        for (v, want) in [
            ("1700000000", 1_700_000_000_000_000_000u64),
            ("1700000000.5", 1_700_000_000_500_000_000),
            ("1700000000123", 1_700_000_000_123_000_000),
            ("1700000000123456", 1_700_000_000_123_456_000),
            ("1700000000123456789", 1_700_000_000_123_456_789),
        ] {
            let c = logs(&format!(r#"{{"time":{v},"message":"m"}}"#));
            assert_eq!(only(&c).time_ns, want, "{v}");
        }
        let c = logs("{\"msg\":\"ok\"}\nnot json\n\n[1,2]\n{\"ts\":\"yesterday\"}\n");
        assert_eq!(c.records.len(), 1);
        assert_eq!(c.rejected, 3);
        assert!(
            c.messages[0].starts_with("line 2: invalid JSON"),
            "{:?}",
            c.messages
        );
        assert!(c.messages[1].starts_with("line 4: expected a JSON object"));
        assert!(c.messages[2].contains("\"ts\""), "{:?}", c.messages);
        assert_eq!(only_first(&c).observed_ns, 7);
    }

    fn only_first(c: &Converted) -> &LogRecord {
        match &c.records[0] {
            Record::Log(l) => l,
            _ => unreachable!(),
        }
    }

    #[test]
    fn invalid_trace_field_is_kept_and_text_still_links() {
        let c = logs(
            r#"{"msg":"retry traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","trace_id":"nope","level":30}"#,
        );
        let l = only(&c);
        assert_eq!(l.severity_number, 9);
        assert_eq!(l.link.as_ref().unwrap().method, LinkMethod::Text);
        assert!(l.attributes.iter().any(|kv| kv.key == "trace_id"));
    }
}
