//! Stored spans back as OTLP `ResourceSpans` (one per service and resource, one scope group
//! per instrumentation scope, in start order): what Tempo's trace-by-ID answers carry, in
//! OTLP/JSON (hex IDs, as the opentelemetry-proto serde writes them) or protobuf.

use crate::model::{AttrValue, KeyValue, Span};
use opentelemetry_proto::tonic::common::v1 as common;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as trace;

pub fn any_value(v: &AttrValue) -> common::AnyValue {
    use common::any_value::Value;
    let value = match v {
        AttrValue::Empty => None,
        AttrValue::Str(s) => Some(Value::StringValue(s.clone())),
        AttrValue::Bool(b) => Some(Value::BoolValue(*b)),
        AttrValue::Int(i) => Some(Value::IntValue(*i)),
        AttrValue::Double(d) => Some(Value::DoubleValue(*d)),
        AttrValue::Bytes(b) => Some(Value::BytesValue(b.clone())),
        AttrValue::Array(a) => Some(Value::ArrayValue(common::ArrayValue {
            values: a.iter().map(any_value).collect(),
        })),
        AttrValue::Map(m) => Some(Value::KvlistValue(common::KeyValueList {
            values: key_values(m),
        })),
    };
    common::AnyValue { value }
}

pub fn key_values(attrs: &[KeyValue]) -> Vec<common::KeyValue> {
    attrs
        .iter()
        .map(|kv| common::KeyValue {
            key: kv.key.clone(),
            value: Some(any_value(&kv.value)),
            ..Default::default()
        })
        .collect()
}

fn span(s: &Span) -> trace::Span {
    trace::Span {
        trace_id: s.trace_id.0.to_vec(),
        span_id: s.span_id.0.to_vec(),
        trace_state: s.trace_state.clone(),
        parent_span_id: s.parent_span_id.map(|p| p.0.to_vec()).unwrap_or_default(),
        name: s.name.clone(),
        kind: s.kind,
        start_time_unix_nano: s.start_ns,
        end_time_unix_nano: s.end_ns,
        attributes: key_values(&s.attributes),
        events: s
            .events
            .iter()
            .map(|e| trace::span::Event {
                time_unix_nano: e.time_ns,
                name: e.name.clone(),
                attributes: key_values(&e.attributes),
                ..Default::default()
            })
            .collect(),
        links: s
            .links
            .iter()
            .map(|l| trace::span::Link {
                trace_id: l.trace_id.0.to_vec(),
                span_id: l.span_id.0.to_vec(),
                attributes: key_values(&l.attributes),
                ..Default::default()
            })
            .collect(),
        status: Some(trace::Status {
            code: s.status_code,
            message: s.status_message.clone(),
        }),
        ..Default::default()
    }
}

/// Spans grouped by resource, then scope, each group in start order.
pub fn resource_spans(spans: &[Span]) -> Vec<trace::ResourceSpans> {
    let mut out: Vec<trace::ResourceSpans> = Vec::new();
    let mut resources: Vec<(&str, &[KeyValue])> = Vec::new();
    let mut sorted: Vec<&Span> = spans.iter().collect();
    sorted.sort_by_key(|s| (s.start_ns, s.span_id));
    for s in sorted {
        let key = (s.service.as_str(), s.resource.as_slice());
        let ri = match resources.iter().position(|r| *r == key) {
            Some(i) => i,
            None => {
                resources.push(key);
                out.push(trace::ResourceSpans {
                    resource: Some(Resource {
                        attributes: key_values(&s.resource),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        let scopes = &mut out[ri].scope_spans;
        let si = match scopes.iter().position(|g| {
            g.scope
                .as_ref()
                .is_some_and(|sc| sc.name == s.scope.name && sc.version == s.scope.version)
        }) {
            Some(i) => i,
            None => {
                scopes.push(trace::ScopeSpans {
                    scope: Some(common::InstrumentationScope {
                        name: s.scope.name.clone(),
                        version: s.scope.version.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                scopes.len() - 1
            }
        };
        scopes[si].spans.push(span(s));
    }
    out
}
