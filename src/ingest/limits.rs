//! Per-record limits: attribute count, attribute value length, log body length. A record over a
//! limit is refused with a message that names the limit and the value seen (log bodies may be
//! truncated instead, by configuration).

use super::otlp::Converted;
use crate::config::{LimitsConfig, OverLimit};
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
    truncated: &mut u64,
) -> Option<(&'static str, String)> {
    let (resource, attributes) = match &*record {
        Record::Span(s) => (&s.resource, &s.attributes),
        Record::Log(l) => (&l.resource, &l.attributes),
        Record::Metric(m) => (&m.resource, &m.attributes),
    };
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
pub fn enforce(converted: &mut Converted, limits: &LimitsConfig) -> u64 {
    let mut truncated = 0;
    let records = std::mem::take(&mut converted.records);
    for (i, mut record) in records.into_iter().enumerate() {
        match check(&mut record, limits, &mut truncated) {
            None => converted.records.push(record),
            Some((reason, message)) => {
                converted.reject(reason, || format!("record {i}: {message}"))
            }
        }
    }
    truncated
}
