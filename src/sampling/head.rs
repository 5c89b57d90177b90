//! Head sampling as the sender did it: whether a span says it was not sampled, and how many
//! spans each stored span stands for (its adjusted count), so RED counts stay unbiased after
//! any sampling upstream. Pure functions over `model`; ingest and the RED aggregator call them.

use crate::model::{AttrValue, KeyValue, Span};

/// The attribute ingest adds to a span whose W3C trace flags say "not sampled". Spans carry
/// no flags field of their own (that would change the stored format), so this marker is how
/// the indexer learns it; it is weft's own key, never a sender's.
pub const UNSAMPLED_ATTR: &str = "weft.head.unsampled";

/// OTLP `SpanFlags`: the low byte is the W3C trace flags, bit 0 "sampled"; bit 8 says the
/// producer set the flags at all (`HAS_IS_REMOTE`, written by every current SDK).
const W3C_SAMPLED: u32 = 0x01;

/// Whether OTLP span flags say "not sampled". Zero means the producer did not say (older
/// SDKs and converters leave the field unset), which is not the same as "not sampled".
pub fn flags_say_unsampled(flags: u32) -> bool {
    flags != 0 && flags & W3C_SAMPLED == 0
}

/// `attributes` with the unsampled marker added when the flags say so.
pub fn mark(mut attributes: Vec<KeyValue>, flags: u32) -> Vec<KeyValue> {
    if flags_say_unsampled(flags) {
        attributes.push(KeyValue {
            key: UNSAMPLED_ATTR.into(),
            value: AttrValue::Bool(true),
        });
    }
    attributes
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a AttrValue> {
    span.attributes
        .iter()
        .rev()
        .find(|kv| kv.key == key)
        .map(|kv| &kv.value)
}

fn number(v: &AttrValue) -> Option<f64> {
    match v {
        AttrValue::Int(i) => Some(*i as f64),
        AttrValue::Double(d) => Some(*d),
        AttrValue::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The OpenTracing `sampling.priority` of a span, when it has one.
pub fn priority(span: &Span) -> Option<f64> {
    attr(span, "sampling.priority").and_then(number)
}

/// Whether the span was marked not sampled at the head: by its W3C flags (see `mark`) or by
/// `sampling.priority = 0`.
pub fn unsampled(span: &Span) -> bool {
    matches!(attr(span, UNSAMPLED_ATTR), Some(AttrValue::Bool(true))) || priority(span) == Some(0.0)
}

/// The rejection threshold of OTel's `ot=th:…` tracestate value, as a probability of keeping.
/// `th` is up to 14 hex digits of a 56-bit threshold with trailing zeros left off; a span is
/// kept when its randomness is at least the threshold, so `p = 1 - th / 2^56`.
pub fn otel_probability(trace_state: &str) -> Option<f64> {
    let ot = trace_state
        .split(',')
        .find_map(|member| member.trim().strip_prefix("ot="))?;
    let th = ot.split(';').find_map(|kv| kv.strip_prefix("th:"))?;
    if th.is_empty() || th.len() > 14 || !th.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{th:0<14}");
    let threshold = u64::from_str_radix(&padded, 16).ok()? as f64;
    let p = 1.0 - threshold / (1u64 << 56) as f64;
    (p > 0.0).then_some(p)
}

/// The Jaeger SDK convention: `sampler.type = probabilistic` with `sampler.param = p`.
fn jaeger_probability(span: &Span) -> Option<f64> {
    match attr(span, "sampler.type") {
        Some(AttrValue::Str(t)) if t == "probabilistic" => {}
        _ => return None,
    }
    attr(span, "sampler.param")
        .and_then(number)
        .filter(|p| *p > 0.0 && *p <= 1.0)
}

/// How many spans this one stands for. A span kept at 1-in-10 counts 10; one whose priority
/// forced it through, and one that says nothing, count 1. A span that says it was not sampled
/// counts 1 too (it is the only evidence of itself) unless it carries the threshold that
/// rejected it: then its sampled siblings already stand for it (OTel gives it an adjusted
/// count of 0), and counting it again would double it. OTel's tracestate threshold wins over
/// the Jaeger attributes.
pub fn adjusted_count(span: &Span) -> f64 {
    if unsampled(span) {
        return match otel_probability(&span.trace_state) {
            Some(p) if p < 1.0 => 0.0,
            _ => 1.0,
        };
    }
    if priority(span).is_some_and(|p| p > 0.0) {
        return 1.0;
    }
    otel_probability(&span.trace_state)
        .or_else(|| jaeger_probability(span))
        .map_or(1.0, |p| 1.0 / p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::span;

    fn with(trace_state: &str, attrs: &[(&str, AttrValue)]) -> Span {
        let mut s = span(1, None, 0, 10);
        s.trace_state = trace_state.into();
        s.attributes = attrs
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.to_string(),
                value: v.clone(),
            })
            .collect();
        s
    }

    #[test]
    fn otel_thresholds_give_the_adjusted_count() {
        // th:8 is a threshold of one half; th:0 keeps everything; 1-in-10 is e6666666666666 (rounded).
        assert_eq!(adjusted_count(&with("ot=th:8;rv:9b8233f7e3a151", &[])), 2.0);
        assert_eq!(adjusted_count(&with("vendor=x,ot=th:0", &[])), 1.0);
        let ten = adjusted_count(&with("ot=rv:ab;th:e6666666666666", &[]));
        assert!((ten - 10.0).abs() < 1e-6, "{ten}");
        assert_eq!(adjusted_count(&with("ot=th:zz", &[])), 1.0);
        assert_eq!(adjusted_count(&with("ot=th:123456789012345", &[])), 1.0);
        assert_eq!(adjusted_count(&with("", &[])), 1.0);
    }

    #[test]
    fn jaeger_attributes_and_priority() {
        let jaeger = [
            ("sampler.type", AttrValue::Str("probabilistic".into())),
            ("sampler.param", AttrValue::Double(0.25)),
        ];
        assert_eq!(adjusted_count(&with("", &jaeger)), 4.0);
        let mut forced = jaeger.to_vec();
        forced.push(("sampling.priority", AttrValue::Int(1)));
        assert_eq!(adjusted_count(&with("", &forced)), 1.0);
        let zero = with("", &[("sampling.priority", AttrValue::Str("0".into()))]);
        assert!(unsampled(&zero));
    }

    #[test]
    fn flags_zero_is_unknown_not_unsampled() {
        assert!(!flags_say_unsampled(0));
        assert!(!flags_say_unsampled(0x101));
        assert!(flags_say_unsampled(0x100));
        let mut s = span(1, None, 0, 1);
        s.attributes = mark(vec![], 0x300);
        assert!(unsampled(&s));
        assert_eq!(adjusted_count(&s), 1.0);
        s.trace_state = "ot=th:c".into();
        assert_eq!(adjusted_count(&s), 0.0, "its sampled siblings count for it");
    }
}
