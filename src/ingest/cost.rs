//! What a request will cost in memory once decoded and converted, known before that work is
//! done, so the in-flight budget (`admission`) is charged for it first. Decoding multiplies:
//! an empty protobuf span is 2 bytes on the wire and a 264-byte struct decoded (134×), and
//! conversion copies a record's resource into every record under it. Charging the body's
//! size let 15 MiB of empty spans take 2 GB; these estimates follow what decoding allocates.
//!
//! - Before decoding, `protobuf` walks the wire format with the OTLP schema (no allocation,
//!   a stack as deep as the nesting) and adds up the structs decoding will make; `json`
//!   counts objects (each becomes a struct) outside strings.
//! - After decoding, `conversion` adds what the model records will hold: per record its
//!   `Record` and its copy of the resource, twice (the records and their WAL encoding).

use crate::model::Signal;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as common;
use opentelemetry_proto::tonic::metrics::v1 as metrics;
use opentelemetry_proto::tonic::{logs::v1 as logs, resource::v1 as resource, trace::v1 as trace};
use std::mem::size_of;

/// Deeper nesting than prost decodes (its recursion limit) is refused here already.
const MAX_DEPTH: usize = 100;

/// The OTLP messages, as far as their decoded size is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Msg {
    TraceRequest,
    ResourceSpans,
    Resource,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
    LogsRequest,
    ResourceLogs,
    ScopeLogs,
    LogRecord,
    MetricsRequest,
    ResourceMetrics,
    ScopeMetrics,
    Metric,
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
    NumberPoint,
    HistogramPoint,
    ExponentialPoint,
    Buckets,
    SummaryPoint,
    Quantile,
    Exemplar,
}

/// What a length-delimited field of a message decodes into.
pub enum Field<M> {
    Message(M),
    /// Packed varints, each a `u64` once decoded.
    Varints,
    /// Strings, bytes, packed fixed-width numbers and unknown fields: at most their length.
    Bytes,
}

/// A protobuf schema as far as decoded size is concerned: what one message of each type
/// allocates, and what each length-delimited field becomes. OTLP's is `Msg`; the other
/// protocols weft reads (`compat`) describe theirs the same way.
pub trait Schema: Copy {
    /// The struct decoding allocates for one occurrence.
    fn size(self) -> usize;
    /// What field `n` (length-delimited) decodes into.
    fn field(self, n: u64) -> Field<Self>;
}

impl Schema for Msg {
    fn size(self) -> usize {
        use Msg::*;
        match self {
            TraceRequest | LogsRequest | MetricsRequest => 24,
            ResourceSpans => size_of::<trace::ResourceSpans>(),
            Resource => size_of::<resource::Resource>(),
            ScopeSpans => size_of::<trace::ScopeSpans>(),
            Scope => size_of::<common::InstrumentationScope>(),
            Span => size_of::<trace::Span>(),
            Event => size_of::<trace::span::Event>(),
            Link => size_of::<trace::span::Link>(),
            Status => size_of::<trace::Status>(),
            KeyValue => size_of::<common::KeyValue>(),
            AnyValue => size_of::<common::AnyValue>(),
            ArrayValue => size_of::<common::ArrayValue>(),
            KeyValueList => size_of::<common::KeyValueList>(),
            ResourceLogs => size_of::<logs::ResourceLogs>(),
            ScopeLogs => size_of::<logs::ScopeLogs>(),
            LogRecord => size_of::<logs::LogRecord>(),
            ResourceMetrics => size_of::<metrics::ResourceMetrics>(),
            ScopeMetrics => size_of::<metrics::ScopeMetrics>(),
            Metric => size_of::<metrics::Metric>(),
            Gauge => size_of::<metrics::Gauge>(),
            Sum => size_of::<metrics::Sum>(),
            Histogram => size_of::<metrics::Histogram>(),
            ExponentialHistogram => size_of::<metrics::ExponentialHistogram>(),
            Summary => size_of::<metrics::Summary>(),
            NumberPoint => size_of::<metrics::NumberDataPoint>(),
            HistogramPoint => size_of::<metrics::HistogramDataPoint>(),
            ExponentialPoint => size_of::<metrics::ExponentialHistogramDataPoint>(),
            Buckets => size_of::<metrics::exponential_histogram_data_point::Buckets>(),
            SummaryPoint => size_of::<metrics::SummaryDataPoint>(),
            Quantile => size_of::<metrics::summary_data_point::ValueAtQuantile>(),
            Exemplar => size_of::<metrics::Exemplar>(),
        }
    }

    /// Field numbers from the OTLP .proto files (opentelemetry-proto v1).
    fn field(self, n: u64) -> Field<Msg> {
        use Field::{Message as M, *};
        use Msg::*;
        match (self, n) {
            (TraceRequest, 1) => M(ResourceSpans),
            (ResourceSpans, 1) | (ResourceLogs, 1) | (ResourceMetrics, 1) => M(Resource),
            (ResourceSpans, 2) => M(ScopeSpans),
            (Resource, 1) | (Scope, 3) | (Span, 9) | (Event, 3) | (Link, 4) => M(KeyValue),
            (ScopeSpans, 1) | (ScopeLogs, 1) | (ScopeMetrics, 1) => M(Scope),
            (ScopeSpans, 2) => M(Span),
            (Span, 11) => M(Event),
            (Span, 13) => M(Link),
            (Span, 15) => M(Status),
            (KeyValue, 2) | (ArrayValue, 1) | (LogRecord, 5) => M(AnyValue),
            (AnyValue, 5) => M(ArrayValue),
            (AnyValue, 6) => M(KeyValueList),
            (KeyValueList, 1) | (LogRecord, 6) | (Metric, 12) => M(KeyValue),
            (LogsRequest, 1) => M(ResourceLogs),
            (ResourceLogs, 2) => M(ScopeLogs),
            (ScopeLogs, 2) => M(LogRecord),
            (MetricsRequest, 1) => M(ResourceMetrics),
            (ResourceMetrics, 2) => M(ScopeMetrics),
            (ScopeMetrics, 2) => M(Metric),
            (Metric, 5) => M(Gauge),
            (Metric, 7) => M(Sum),
            (Metric, 9) => M(Histogram),
            (Metric, 10) => M(ExponentialHistogram),
            (Metric, 11) => M(Summary),
            (Gauge, 1) | (Sum, 1) => M(NumberPoint),
            (Histogram, 1) => M(HistogramPoint),
            (ExponentialHistogram, 1) => M(ExponentialPoint),
            (Summary, 1) => M(SummaryPoint),
            (NumberPoint, 7) | (HistogramPoint, 9) | (ExponentialPoint, 1) => M(KeyValue),
            (SummaryPoint, 7) | (Exemplar, 7) => M(KeyValue),
            (NumberPoint, 5) | (HistogramPoint, 8) | (ExponentialPoint, 11) => M(Exemplar),
            (ExponentialPoint, 8) | (ExponentialPoint, 9) => M(Buckets),
            (Buckets, 2) => Varints,
            (SummaryPoint, 6) => M(Quantile),
            _ => Bytes,
        }
    }
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b < 0x80 {
            return Some(value);
        }
    }
    None
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Some(head)
}

/// Bytes decoding an OTLP export request of `signal` from protobuf `body` will allocate, or
/// why the body is not valid protobuf (decoding would fail the same way).
pub fn protobuf(signal: Signal, body: &[u8]) -> Result<usize, String> {
    let root = match signal {
        Signal::Spans => Msg::TraceRequest,
        Signal::Logs => Msg::LogsRequest,
        Signal::Metrics => Msg::MetricsRequest,
    };
    decoded_size(root, body)
}

/// Bytes decoding protobuf `body` as a `root` message of schema `M` will allocate, or why
/// it is not valid protobuf.
pub fn decoded_size<M: Schema>(root: M, body: &[u8]) -> Result<usize, String> {
    let malformed = |what: &str| format!("malformed protobuf: {what}");
    let mut cost = root.size();
    // Depth-first, the enclosing messages' unread rest on a stack as deep as the nesting.
    let mut stack: Vec<(M, &[u8])> = Vec::new();
    let (mut msg, mut buf) = (root, body);
    loop {
        if buf.is_empty() {
            match stack.pop() {
                Some((m, b)) => (msg, buf) = (m, b),
                None => return Ok(cost),
            }
            continue;
        }
        let key = varint(&mut buf).ok_or_else(|| malformed("truncated field key"))?;
        let (number, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(&mut buf).ok_or_else(|| malformed("truncated varint"))?;
                if matches!(msg.field(number), Field::Varints) {
                    cost += 8;
                }
            }
            1 => {
                take(&mut buf, 8).ok_or_else(|| malformed("truncated fixed64"))?;
            }
            5 => {
                take(&mut buf, 4).ok_or_else(|| malformed("truncated fixed32"))?;
            }
            2 => {
                let len = varint(&mut buf)
                    .and_then(|l| usize::try_from(l).ok())
                    .ok_or_else(|| malformed("bad length"))?;
                let data = take(&mut buf, len).ok_or_else(|| malformed("truncated field"))?;
                match msg.field(number) {
                    Field::Message(child) => {
                        if stack.len() >= MAX_DEPTH {
                            return Err(malformed("nested deeper than 100 messages"));
                        }
                        stack.push((msg, buf));
                        cost += child.size();
                        (msg, buf) = (child, data);
                    }
                    Field::Varints => cost += 8 * data.iter().filter(|b| **b < 0x80).count(),
                    Field::Bytes => cost += len,
                }
            }
            _ => return Err(malformed("unsupported wire type")),
        }
    }
}

/// The largest struct one OTLP/JSON object can become.
const JSON_OBJECT_BYTES: usize = 264;

/// Bytes decoding a JSON body will allocate: a struct per object, and its strings and
/// numbers at most twice the text's length.
pub fn json(body: &[u8]) -> usize {
    let (mut objects, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' => objects += 1,
                _ => {}
            }
        }
    }
    objects * JSON_OBJECT_BYTES + 2 * body.len()
}

/// Bytes parsing JSON-lines logs will allocate: each line's JSON tree, and its record.
pub fn json_lines(body: &[u8]) -> usize {
    let lines = body.iter().filter(|b| **b == b'\n').count() + 1;
    2 * json(body) + lines * size_of::<crate::model::Record>()
}

/// Heap bytes of attributes once converted (keys, values, the model's `KeyValue`s).
fn attributes(kvs: &[common::KeyValue]) -> usize {
    kvs.iter()
        .map(|kv| {
            size_of::<crate::model::KeyValue>()
                + kv.key.len()
                + kv.value.as_ref().map_or(0, any_value)
        })
        .sum()
}

fn any_value(v: &common::AnyValue) -> usize {
    use common::any_value::Value;
    match &v.value {
        Some(Value::StringValue(s)) => s.len(),
        Some(Value::BytesValue(b)) => b.len(),
        Some(Value::ArrayValue(a)) => a.values.iter().map(|v| 32 + any_value(v)).sum(),
        Some(Value::KvlistValue(kv)) => attributes(&kv.values),
        _ => 0,
    }
}

/// What converting `records` records that share a resource of `resource` heap bytes adds:
/// each record's `Record` and its copy of the resource, in the records and in their WAL
/// encoding.
fn per_resource(records: usize, resource: Option<&resource::Resource>) -> usize {
    let copy = resource.map_or(0, |r| attributes(&r.attributes));
    records.saturating_mul(size_of::<crate::model::Record>() + 2 * copy)
}

/// What converting a decoded request into model records adds to what decoding allocated
/// (the records' own fields are about their decoded size again: counted as `decoded`).
pub fn conversion_spans(req: &ExportTraceServiceRequest, decoded: usize) -> usize {
    decoded
        + req
            .resource_spans
            .iter()
            .map(|rs| {
                let n = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
                per_resource(n, rs.resource.as_ref())
            })
            .sum::<usize>()
}

pub fn conversion_logs(req: &ExportLogsServiceRequest, decoded: usize) -> usize {
    decoded
        + req
            .resource_logs
            .iter()
            .map(|rl| {
                let n = rl.scope_logs.iter().map(|s| s.log_records.len()).sum();
                per_resource(n, rl.resource.as_ref())
            })
            .sum::<usize>()
}

pub fn conversion_metrics(req: &ExportMetricsServiceRequest, decoded: usize) -> usize {
    use metrics::metric::Data;
    let points = |m: &metrics::Metric| match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    };
    decoded
        + req
            .resource_metrics
            .iter()
            .map(|rm| {
                let n = rm
                    .scope_metrics
                    .iter()
                    .flat_map(|s| &s.metrics)
                    .map(points)
                    .sum();
                per_resource(n, rm.resource.as_ref())
            })
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn kv(k: &str, v: &str) -> common::KeyValue {
        common::KeyValue {
            key: k.into(),
            value: Some(common::AnyValue {
                value: Some(common::any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn spans(n: usize, attrs: usize) -> ExportTraceServiceRequest {
        let span = trace::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "GET /checkout".into(),
            attributes: (0..attrs)
                .map(|i| kv(&format!("key.{i}"), "value"))
                .collect(),
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![trace::ResourceSpans {
                resource: Some(resource::Resource {
                    attributes: vec![kv("service.name", "shop")],
                    ..Default::default()
                }),
                scope_spans: vec![trace::ScopeSpans {
                    spans: vec![span; n],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn empty_spans_cost_their_structs_not_their_two_bytes() {
        let body = spans(10_000, 0).encode_to_vec();
        let empty = ExportTraceServiceRequest {
            resource_spans: vec![trace::ResourceSpans {
                scope_spans: vec![trace::ScopeSpans {
                    spans: vec![trace::Span::default(); 10_000],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let cost = protobuf(Signal::Spans, &empty).unwrap();
        assert!(empty.len() < 25_000, "{}", empty.len());
        assert!(cost >= 10_000 * size_of::<trace::Span>(), "{cost}");
        // A realistic body costs a few times its size, not a hundred.
        let real = protobuf(Signal::Spans, &body).unwrap();
        assert!(
            real > body.len() && real < 10 * body.len(),
            "{real} for {}",
            body.len()
        );
    }

    #[test]
    fn the_estimate_covers_what_decoding_allocates() {
        let req = spans(100, 10);
        let body = req.encode_to_vec();
        let cost = protobuf(Signal::Spans, &body).unwrap();
        // Structs alone: 100 spans with 10 attributes each, key-values and values.
        let structs = 100
            * (size_of::<trace::Span>()
                + 10 * (size_of::<common::KeyValue>() + size_of::<common::AnyValue>()));
        assert!(cost >= structs, "{cost} < {structs}");
        let decoded = ExportTraceServiceRequest::decode(&body[..]).unwrap();
        assert_eq!(decoded, req);
    }

    #[test]
    fn malformed_and_too_deep_bodies_are_refused() {
        assert!(protobuf(Signal::Spans, &[0x0a, 0xff]).is_err());
        assert!(
            protobuf(Signal::Logs, &[0x0b]).is_err(),
            "wire type 3 (groups)"
        );
        // KeyValue → AnyValue → KeyValueList → KeyValue … 200 levels deep.
        let mut v = common::AnyValue::default();
        for _ in 0..200 {
            v = common::AnyValue {
                value: Some(common::any_value::Value::KvlistValue(
                    common::KeyValueList {
                        values: vec![common::KeyValue {
                            key: "k".into(),
                            value: Some(v),
                            ..Default::default()
                        }],
                    },
                )),
            };
        }
        let mut req = spans(1, 0);
        req.resource_spans[0].scope_spans[0].spans[0].attributes = vec![common::KeyValue {
            key: "deep".into(),
            value: Some(v),
            ..Default::default()
        }];
        let e = protobuf(Signal::Spans, &req.encode_to_vec()).unwrap_err();
        assert!(e.contains("deeper"), "{e}");
    }

    #[test]
    fn json_objects_are_counted_outside_strings() {
        assert_eq!(json(b"[{},{}]"), 2 * JSON_OBJECT_BYTES + 14);
        assert_eq!(json(br#"{"a":"{{\"{"}"#), JSON_OBJECT_BYTES + 26);
    }

    #[test]
    fn conversion_counts_the_resource_once_per_record() {
        let mut req = spans(3000, 0);
        let big = "x".repeat(1 << 20);
        req.resource_spans[0].resource = Some(resource::Resource {
            attributes: vec![kv("big", &big)],
            ..Default::default()
        });
        assert!(conversion_spans(&req, 0) > 3000 * 2 * (1 << 20));
    }
}
