//! OTLP batches with fixed IDs and timestamps, built from the official generated types.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, Exemplar, Histogram, HistogramDataPoint, Metric, ResourceMetrics,
    ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};

/// 2026-11-26T10:00:00Z, the base time of every fixed batch.
pub const T0: u64 = 1_795_687_200_000_000_000;
pub const MS: u64 = 1_000_000;

/// A 16-byte trace ID that spells `n` in its low bytes (and a marker in its high bytes).
pub fn trace_id(n: u64) -> Vec<u8> {
    let mut b = vec![0xab; 8];
    b.extend_from_slice(&n.to_be_bytes());
    b
}

pub fn span_id(n: u64) -> Vec<u8> {
    let mut b = (n + 1).to_be_bytes().to_vec();
    b[0] = 0xcd;
    b
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

pub fn kv_double(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::DoubleValue(value)),
        }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", service), kv("host.name", "node-1")],
        ..Default::default()
    })
}

pub struct SpanSpec<'a> {
    pub trace: u64,
    pub span: u64,
    pub parent: Option<u64>,
    pub name: &'a str,
    pub start_ms: u64,
    pub duration_ms: u64,
    pub error: bool,
}

pub fn span(s: &SpanSpec) -> Span {
    Span {
        trace_id: trace_id(s.trace),
        span_id: span_id(s.span),
        parent_span_id: s.parent.map(span_id).unwrap_or_default(),
        name: s.name.into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: T0 + s.start_ms * MS,
        end_time_unix_nano: T0 + (s.start_ms + s.duration_ms) * MS,
        attributes: vec![
            kv("http.route", "/cart"),
            kv("span.number", &s.span.to_string()),
        ],
        status: Some(Status {
            code: if s.error { 2 } else { 1 },
            message: if s.error {
                "boom".into()
            } else {
                String::new()
            },
        }),
        ..Default::default()
    }
}

pub fn traces(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(service),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A log with optional trace context, `at_ms` after T0.
pub fn log(trace: Option<u64>, span: Option<u64>, body: &str, at_ms: u64) -> LogRecord {
    LogRecord {
        time_unix_nano: T0 + at_ms * MS,
        observed_time_unix_nano: T0 + at_ms * MS,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.into())),
        }),
        attributes: vec![kv("component", "db")],
        trace_id: trace.map(trace_id).unwrap_or_default(),
        span_id: span.map(span_id).unwrap_or_default(),
        ..Default::default()
    }
}

pub fn logs(service: &str, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(service),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A latency histogram point whose exemplar names `trace`/`span`.
pub fn histogram_with_exemplar(
    service: &str,
    trace: u64,
    span: u64,
    at_ms: u64,
) -> ExportMetricsServiceRequest {
    let point = HistogramDataPoint {
        attributes: vec![kv("http.route", "/cart")],
        start_time_unix_nano: T0,
        time_unix_nano: T0 + at_ms * MS,
        count: 3,
        sum: Some(0.9),
        bucket_counts: vec![1, 1, 1],
        explicit_bounds: vec![0.1, 0.5],
        exemplars: vec![Exemplar {
            time_unix_nano: T0 + at_ms * MS,
            value: Some(exemplar::Value::AsDouble(0.7)),
            trace_id: trace_id(trace),
            span_id: span_id(span),
            ..Default::default()
        }],
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(service),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "http.server.duration".into(),
                    unit: "s".into(),
                    data: Some(metric::Data::Histogram(Histogram {
                        data_points: vec![point],
                        aggregation_temporality: 2,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub fn encode(m: &impl prost::Message) -> Vec<u8> {
    m.encode_to_vec()
}

/// A trace of one root span (span 1, 1 ms at T0), the commonest request in these tests.
pub fn one_span_trace(service: &str, trace: u64, name: &str) -> ExportTraceServiceRequest {
    traces(
        service,
        vec![span(&SpanSpec {
            trace,
            span: 1,
            parent: None,
            name,
            start_ms: 0,
            duration_ms: 1,
            error: false,
        })],
    )
}
