//! Per-record limits: attribute count, attribute value length, resource size, age, log body
//! length. A record over a limit is refused with a message that names the limit and the value
//! seen (log bodies may be truncated instead, by configuration).

use super::otlp::Converted;
use crate::config::{LimitsConfig, OverLimit};
use crate::model::time::MAX_TIME_NS;
use crate::model::{AttrValue, KeyValue, Record};

fn value_len(v: &AttrValue) -> usize {
    match v {
        AttrValue::Str(s) => s.len(),
        AttrValue::Bytes(b) => b.len(),
        AttrValue::Array(a) => a.iter().map(value_len).max().unwrap_or(0),
        AttrValue::Map(m) => m.iter().map(|kv| value_len(&kv.value)).max().unwrap_or(0),
        _ => 0,
    }
}

/// Bytes of a value in full (every element of an array or map).
fn value_bytes(v: &AttrValue) -> usize {
    match v {
        AttrValue::Array(a) => a.iter().map(value_bytes).sum(),
        AttrValue::Map(m) => m
            .iter()
            .map(|kv| kv.key.len() + value_bytes(&kv.value))
            .sum(),
        AttrValue::Empty => 0,
        AttrValue::Bool(_) => 1,
        AttrValue::Int(_) | AttrValue::Double(_) => 8,
        other => value_len(other),
    }
}

fn longest<'a>(attrs: impl Iterator<Item = &'a KeyValue>) -> Option<(&'a str, usize)> {
    attrs
        .map(|kv| (kv.key.as_str(), value_len(&kv.value)))
        .max_by_key(|(_, n)| *n)
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &mut String, max: usize) {
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
}

/// What a record breaks, if anything, as (counter reason, message).
fn check(
    record: &mut Record,
    limits: &LimitsConfig,
    now_ns: u64,
    truncated: &mut u64,
) -> Option<(&'static str, String)> {
    let latest = match &*record {
        Record::Span(s) => s.end_ns.max(s.start_ns),
        other => other.time_ns(),
    };
    if latest > MAX_TIME_NS {
        return Some((
            "time_out_of_range",
            format!("time {latest} ns is after 2262-04-11, the latest time weft stores"),
        ));
    }
    let age_ns = now_ns.saturating_sub(record.time_ns());
    if limits.max_record_age_secs > 0 && age_ns / 1_000_000_000 > limits.max_record_age_secs {
        return Some((
            "too_old",
            format!(
                "record is {} s old, over limits.max_record_age_secs = {}",
                age_ns / 1_000_000_000,
                limits.max_record_age_secs
            ),
        ));
    }
    let (resource, attributes) = match &*record {
        Record::Span(s) => (&s.resource, &s.attributes),
        Record::Log(l) => (&l.resource, &l.attributes),
        Record::Metric(m) => (&m.resource, &m.attributes),
    };
    let resource_bytes: usize = resource
        .iter()
        .map(|kv| kv.key.len() + value_bytes(&kv.value))
        .sum();
    if resource_bytes > limits.max_resource_bytes {
        return Some((
            "resource_too_large",
            format!(
                "resource is {resource_bytes} bytes, over limits.max_resource_bytes = {}",
                limits.max_resource_bytes
            ),
        ));
    }
    let count = resource.len() + attributes.len();
    if count > limits.max_attributes {
        return Some((
            "too_many_attributes",
            format!(
                "{count} attributes is over limits.max_attributes = {}",
                limits.max_attributes
            ),
        ));
    }
    if let Some((key, len)) = longest(resource.iter().chain(attributes)) {
        if len > limits.max_attribute_value_bytes {
            return Some((
                "attribute_value_too_long",
                format!(
                    "attribute {key:?} is {len} bytes, over limits.max_attribute_value_bytes = {}",
                    limits.max_attribute_value_bytes
                ),
            ));
        }
    }
    if let Record::Log(log) = record {
        let len = match &log.body {
            AttrValue::Str(s) => s.len(),
            other => other.to_text().len(),
        };
        if len > limits.max_log_body_bytes {
            match (limits.log_body_over_limit, &mut log.body) {
                (OverLimit::Truncate, AttrValue::Str(s)) => {
                    truncate(s, limits.max_log_body_bytes);
                    *truncated += 1;
                }
                _ => {
                    return Some((
                        "log_body_too_long",
                        format!(
                            "log body is {len} bytes, over limits.max_log_body_bytes = {}",
                            limits.max_log_body_bytes
                        ),
                    ))
                }
            }
        }
    }
    None
}

/// Applies the limits to every converted record; returns how many log bodies were truncated.
pub fn enforce(converted: &mut Converted, limits: &LimitsConfig, now_ns: u64) -> u64 {
    let mut truncated = 0;
    let records = std::mem::take(&mut converted.records);
    for (i, mut record) in records.into_iter().enumerate() {
        match check(&mut record, limits, now_ns, &mut truncated) {
            None => converted.records.push(record),
            Some((reason, message)) => {
                converted.reject(reason, || format!("record {i}: {message}"))
            }
        }
    }
    truncated
}
