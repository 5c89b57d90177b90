//! OTLP requests (protobuf or JSON, already decoded into the generated types) become validated
//! model records. Invalid records are counted and described, never stored half-empty.

use super::traceids::Extractor;
use crate::model::{
    self, AttrValue, Attributes, Exemplar, KeyValue, LogRecord, MetricPoint, MetricValue, Record,
    Scope, SpanEvent, SpanId, SpanLink, Temporality, TraceId,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as common;
use opentelemetry_proto::tonic::metrics::v1 as metrics;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

/// How many rejection messages a reply quotes; the count is always exact.
const MAX_MESSAGES: usize = 5;

/// The outcome of converting one request: accepted records and what was refused.
#[derive(Debug, Default)]
pub struct Converted {
    pub records: Vec<Record>,
    pub rejected: u64,
    /// Rejections per counter reason (`invalid`, `too_many_attributes`, …).
    pub reasons: std::collections::BTreeMap<&'static str, u64>,
    pub messages: Vec<String>,
}

impl Converted {
    pub(crate) fn reject(&mut self, reason: &'static str, message: impl FnOnce() -> String) {
        self.rejected += 1;
        *self.reasons.entry(reason).or_default() += 1;
        if self.messages.len() < MAX_MESSAGES {
            self.messages.push(message());
        }
    }

    /// One line for the `partial_success.error_message` or the error status.
    pub fn summary(&self, noun: &str) -> String {
        if self.rejected == 0 {
            return String::new();
        }
        format!(
            "{} {noun} rejected: {}",
            self.rejected,
            self.messages.join("; ")
        )
    }
}

pub fn attr_value(v: Option<&common::AnyValue>) -> AttrValue {
    use common::any_value::Value;
    match v.and_then(|v| v.value.as_ref()) {
        None => AttrValue::Empty,
        Some(Value::StringValue(s)) => AttrValue::Str(s.clone()),
        Some(Value::BoolValue(b)) => AttrValue::Bool(*b),
        Some(Value::IntValue(i)) => AttrValue::Int(*i),
        Some(Value::DoubleValue(d)) => AttrValue::Double(*d),
        Some(Value::BytesValue(b)) => AttrValue::Bytes(b.clone()),
        Some(Value::ArrayValue(a)) => {
            AttrValue::Array(a.values.iter().map(|v| attr_value(Some(v))).collect())
        }
        Some(Value::KvlistValue(kv)) => AttrValue::Map(attributes(&kv.values)),
        // An index into a profiles string table: meaningless outside a profile.
        Some(Value::StringValueStrindex(_)) => AttrValue::Empty,
    }
}

pub fn attributes(kvs: &[common::KeyValue]) -> Attributes {
    kvs.iter()
        .map(|kv| KeyValue {
            key: kv.key.clone(),
            value: attr_value(kv.value.as_ref()),
        })
        .collect()
}

fn scope(s: Option<&common::InstrumentationScope>) -> Scope {
    Scope {
        name: s.map(|s| s.name.clone()).unwrap_or_default(),
        version: s.map(|s| s.version.clone()).unwrap_or_default(),
    }
}

/// `service.name` of a resource, with the OpenTelemetry fallback when it is missing.
pub fn service_name(resource: &Attributes) -> String {
    model::attr_str(resource, "service.name")
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown_service")
        .to_string()
}

fn optional_trace_id(b: &[u8]) -> Result<Option<TraceId>, model::IdError> {
    if b.is_empty() {
        Ok(None)
    } else {
        TraceId::from_bytes(b).map(Some)
    }
}

fn optional_span_id(b: &[u8]) -> Result<Option<SpanId>, model::IdError> {
    if b.is_empty() {
        Ok(None)
    } else {
        SpanId::from_bytes(b).map(Some)
    }
}

pub fn spans(req: ExportTraceServiceRequest) -> Converted {
    let mut out = Converted::default();
    for (ri, rs) in req.resource_spans.into_iter().enumerate() {
        let resource = attributes(rs.resource.as_ref().map_or(&[][..], |r| &r.attributes));
        let service = service_name(&resource);
        for (si, ss) in rs.scope_spans.into_iter().enumerate() {
            let scope = scope(ss.scope.as_ref());
            for (i, s) in ss.spans.into_iter().enumerate() {
                let at = || format!("resourceSpans[{ri}].scopeSpans[{si}].spans[{i}]");
                let ids = (|| {
                    let trace_id = TraceId::from_bytes(&s.trace_id)
                        .map_err(|e| format!("{}.traceId: {e}", at()))?;
                    let span_id = SpanId::from_bytes(&s.span_id)
                        .map_err(|e| format!("{}.spanId: {e}", at()))?;
                    let parent = optional_span_id(&s.parent_span_id)
                        .map_err(|e| format!("{}.parentSpanId: {e}", at()))?;
                    if s.start_time_unix_nano == 0 {
                        return Err(format!("{}.startTimeUnixNano is required", at()));
                    }
                    let links = s
                        .links
                        .iter()
                        .enumerate()
                        .map(|(li, l)| {
                            Ok(SpanLink {
                                trace_id: TraceId::from_bytes(&l.trace_id)
                                    .map_err(|e| format!("{}.links[{li}].traceId: {e}", at()))?,
                                span_id: SpanId::from_bytes(&l.span_id)
                                    .map_err(|e| format!("{}.links[{li}].spanId: {e}", at()))?,
                                attributes: attributes(&l.attributes),
                            })
                        })
                        .collect::<Result<Vec<_>, String>>()?;
                    Ok((trace_id, span_id, parent, links))
                })();
                let (trace_id, span_id, parent_span_id, links) = match ids {
                    Ok(ids) => ids,
                    Err(msg) => {
                        out.reject("invalid", || msg);
                        continue;
                    }
                };
                let status = s.status.unwrap_or_default();
                out.records.push(Record::Span(model::Span {
                    trace_id,
                    span_id,
                    parent_span_id,
                    trace_state: s.trace_state,
                    name: s.name,
                    kind: s.kind,
                    start_ns: s.start_time_unix_nano,
                    end_ns: s.end_time_unix_nano.max(s.start_time_unix_nano),
                    status_code: status.code,
                    status_message: status.message,
                    service: service.clone(),
                    resource: resource.clone(),
                    scope: scope.clone(),
                    // Spans keep no flags field: a "not sampled" flag becomes a marker.
                    attributes: crate::sampling::head::mark(attributes(&s.attributes), s.flags),
                    events: s
                        .events
                        .iter()
                        .map(|e| SpanEvent {
                            time_ns: e.time_unix_nano,
                            name: e.name.clone(),
                            attributes: attributes(&e.attributes),
                        })
                        .collect(),
                    links,
                }));
            }
        }
    }
    out
}

pub fn logs(req: ExportLogsServiceRequest, extractor: &Extractor) -> Converted {
    let mut out = Converted::default();
    for (ri, rl) in req.resource_logs.into_iter().enumerate() {
        let resource = attributes(rl.resource.as_ref().map_or(&[][..], |r| &r.attributes));
        let service = service_name(&resource);
        for (si, sl) in rl.scope_logs.into_iter().enumerate() {
            let scope = scope(sl.scope.as_ref());
            for (i, l) in sl.log_records.into_iter().enumerate() {
                let at = || format!("resourceLogs[{ri}].scopeLogs[{si}].logRecords[{i}]");
                let trace_id = match optional_trace_id(&l.trace_id) {
                    Ok(t) => t,
                    Err(e) => {
                        out.reject("invalid", || format!("{}.traceId: {e}", at()));
                        continue;
                    }
                };
                let span_id = match optional_span_id(&l.span_id) {
                    Ok(s) => s,
                    Err(e) => {
                        out.reject("invalid", || format!("{}.spanId: {e}", at()));
                        continue;
                    }
                };
                if l.time_unix_nano == 0 && l.observed_time_unix_nano == 0 {
                    out.reject("invalid", || {
                        format!("{}: timeUnixNano or observedTimeUnixNano is required", at())
                    });
                    continue;
                }
                let mut log = LogRecord {
                    time_ns: l.time_unix_nano,
                    observed_ns: l.observed_time_unix_nano,
                    severity_number: l.severity_number,
                    severity_text: l.severity_text,
                    body: attr_value(l.body.as_ref()),
                    event_name: l.event_name,
                    service: service.clone(),
                    resource: resource.clone(),
                    scope: scope.clone(),
                    attributes: attributes(&l.attributes),
                    trace_id,
                    span_id,
                    link: None,
                    flags: l.flags,
                };
                extractor.link(&mut log, "traceId");
                out.records.push(Record::Log(log));
            }
        }
    }
    out
}

fn temporality(t: i32) -> Option<Temporality> {
    match t {
        1 => Some(Temporality::Delta),
        2 => Some(Temporality::Cumulative),
        _ => None,
    }
}

fn exemplars(ex: &[metrics::Exemplar]) -> Result<Vec<Exemplar>, String> {
    ex.iter()
        .enumerate()
        .map(|(i, e)| {
            let value = match e.value {
                Some(metrics::exemplar::Value::AsDouble(d)) => d,
                Some(metrics::exemplar::Value::AsInt(n)) => n as f64,
                None => return Err(format!("exemplars[{i}] has no value")),
            };
            Ok(Exemplar {
                time_ns: e.time_unix_nano,
                value,
                trace_id: optional_trace_id(&e.trace_id)
                    .map_err(|err| format!("exemplars[{i}].traceId: {err}"))?,
                span_id: optional_span_id(&e.span_id)
                    .map_err(|err| format!("exemplars[{i}].spanId: {err}"))?,
                attributes: attributes(&e.filtered_attributes),
            })
        })
        .collect()
}

/// The fields every kind of data point shares.
struct PointCommon<'a> {
    attributes: &'a [common::KeyValue],
    start_ns: u64,
    time_ns: u64,
    exemplars: &'a [metrics::Exemplar],
    flags: u32,
}

/// Every kind of data point gives its shared fields the same way.
trait DataPoint {
    fn common(&self) -> PointCommon<'_>;
}

macro_rules! data_point {
    ($t:ty, $exemplars:ident) => {
        impl DataPoint for $t {
            fn common(&self) -> PointCommon<'_> {
                PointCommon {
                    attributes: &self.attributes,
                    start_ns: self.start_time_unix_nano,
                    time_ns: self.time_unix_nano,
                    exemplars: data_point!(@exemplars self, $exemplars),
                    flags: self.flags,
                }
            }
        }
    };
    (@exemplars $self:ident, with) => { &$self.exemplars };
    (@exemplars $self:ident, without) => { &[] };
}

data_point!(metrics::NumberDataPoint, with);
data_point!(metrics::HistogramDataPoint, with);
data_point!(metrics::ExponentialHistogramDataPoint, with);
// Summaries carry no exemplars in OTLP.
data_point!(metrics::SummaryDataPoint, without);

/// The one rule for values that are not numbers, in both encodings: NaN and ±Infinity are not
/// stored (OTLP/JSON spells them as strings, which the JSON decoder cannot read as a value).
const FINITE_ONLY: &str = "non-finite values (NaN, Infinity) are not stored";

fn number_value(p: &metrics::NumberDataPoint) -> Result<f64, String> {
    match p.value {
        Some(metrics::number_data_point::Value::AsDouble(d)) if d.is_finite() => Ok(d),
        Some(metrics::number_data_point::Value::AsDouble(d)) => {
            Err(format!("asDouble is {d}: {FINITE_ONLY}"))
        }
        Some(metrics::number_data_point::Value::AsInt(n)) => Ok(n as f64),
        None => Err(format!("has no value (asDouble or asInt; {FINITE_ONLY})")),
    }
}

/// Bucket counts added up, or an error when they overflow (a count past 2^64 is no count).
fn total_count(counts: &[u64]) -> Result<u64, String> {
    counts.iter().try_fold(0u64, |a, &c| {
        a.checked_add(c)
            .ok_or_else(|| "bucket counts add up to more than 2^64".to_string())
    })
}

fn require_temporality(t: i32) -> Result<Temporality, String> {
    temporality(t).ok_or_else(|| {
        format!("aggregationTemporality must be 1 (delta) or 2 (cumulative), got {t}")
    })
}

/// Every data point of a metric with the value it carries, or why it is invalid. OTLP/JSON
/// decoders fill fields they cannot read with defaults, so the checks here are what catches
/// a point that lost its data on the way in.
fn points(data: &Data) -> Vec<(PointCommon<'_>, Result<MetricValue, String>)> {
    match data {
        Data::Gauge(g) => g
            .data_points
            .iter()
            .map(|p| (p.common(), number_value(p).map(MetricValue::Gauge)))
            .collect(),
        Data::Sum(s) => s
            .data_points
            .iter()
            .map(|p| {
                let value = require_temporality(s.aggregation_temporality).and_then(|t| {
                    Ok(MetricValue::Sum {
                        value: number_value(p)?,
                        monotonic: s.is_monotonic,
                        temporality: t,
                    })
                });
                (p.common(), value)
            })
            .collect(),
        Data::Histogram(h) => h
            .data_points
            .iter()
            .map(|p| {
                let value = require_temporality(h.aggregation_temporality).and_then(|t| {
                    if !p.bucket_counts.is_empty()
                        && p.bucket_counts.len() != p.explicit_bounds.len() + 1
                    {
                        return Err(format!(
                            "has {} bucketCounts for {} explicitBounds (expected {})",
                            p.bucket_counts.len(),
                            p.explicit_bounds.len(),
                            p.explicit_bounds.len() + 1
                        ));
                    }
                    let total = total_count(&p.bucket_counts)?;
                    if !p.bucket_counts.is_empty() && total != p.count {
                        return Err(format!(
                            "count is {} but bucketCounts add up to {total}",
                            p.count
                        ));
                    }
                    Ok(MetricValue::Histogram {
                        count: p.count,
                        sum: p.sum,
                        min: p.min,
                        max: p.max,
                        bounds: p.explicit_bounds.clone(),
                        bucket_counts: p.bucket_counts.clone(),
                        temporality: t,
                    })
                });
                (p.common(), value)
            })
            .collect(),
        Data::ExponentialHistogram(h) => h
            .data_points
            .iter()
            .map(|p| {
                let value = require_temporality(h.aggregation_temporality).and_then(|t| {
                    let pos = p.positive.clone().unwrap_or_default();
                    let neg = p.negative.clone().unwrap_or_default();
                    let total = total_count(&[
                        p.zero_count,
                        total_count(&pos.bucket_counts)?,
                        total_count(&neg.bucket_counts)?,
                    ])?;
                    if total != p.count {
                        return Err(format!(
                            "count is {} but zeroCount and bucket counts add up to {total}",
                            p.count
                        ));
                    }
                    Ok(MetricValue::ExponentialHistogram {
                        count: p.count,
                        sum: p.sum,
                        scale: p.scale,
                        zero_count: p.zero_count,
                        positive_offset: pos.offset,
                        positive: pos.bucket_counts,
                        negative_offset: neg.offset,
                        negative: neg.bucket_counts,
                        temporality: t,
                    })
                });
                (p.common(), value)
            })
            .collect(),
        Data::Summary(s) => s
            .data_points
            .iter()
            .map(|p| {
                (
                    p.common(),
                    Ok(MetricValue::Summary {
                        count: p.count,
                        sum: p.sum,
                        quantiles: p
                            .quantile_values
                            .iter()
                            .map(|q| (q.quantile, q.value))
                            .collect(),
                    }),
                )
            })
            .collect(),
    }
}

pub fn metrics(req: ExportMetricsServiceRequest) -> Converted {
    let mut out = Converted::default();
    for (ri, rm) in req.resource_metrics.into_iter().enumerate() {
        let resource = attributes(rm.resource.as_ref().map_or(&[][..], |r| &r.attributes));
        let service = service_name(&resource);
        for (si, sm) in rm.scope_metrics.into_iter().enumerate() {
            let scope = scope(sm.scope.as_ref());
            for (mi, m) in sm.metrics.into_iter().enumerate() {
                let at = || format!("resourceMetrics[{ri}].scopeMetrics[{si}].metrics[{mi}]");
                let Some(data) = m.data.as_ref() else {
                    out.reject("invalid", || {
                        format!(
                            "{} ({:?}) has no data (gauge, sum, histogram, …)",
                            at(),
                            m.name
                        )
                    });
                    continue;
                };
                for (pi, (c, value)) in points(data).into_iter().enumerate() {
                    let checked = value.and_then(|v| {
                        if m.name.is_empty() {
                            return Err("metric name is required".into());
                        }
                        if c.time_ns == 0 {
                            return Err("timeUnixNano is required".into());
                        }
                        Ok((v, exemplars(c.exemplars)?))
                    });
                    match checked {
                        Ok((value, exemplars)) => out.records.push(Record::Metric(MetricPoint {
                            name: m.name.clone(),
                            description: m.description.clone(),
                            unit: m.unit.clone(),
                            time_ns: c.time_ns,
                            start_ns: c.start_ns,
                            service: service.clone(),
                            resource: resource.clone(),
                            scope: scope.clone(),
                            attributes: attributes(c.attributes),
                            value,
                            exemplars,
                            flags: c.flags,
                        })),
                        Err(msg) => out.reject("invalid", || {
                            format!("{} ({:?}) dataPoints[{pi}] {msg}", at(), m.name)
                        }),
                    }
                }
            }
        }
    }
    out
}
