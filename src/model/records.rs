//! The typed records weft stores: spans, log records and metric points, each already validated
//! and carrying the service it came from. The WAL stores them (postcard) and the index keeps
//! them as stored blobs, so these types are the on-disk format: add fields only at the end of a
//! struct and never reorder enum variants.

use super::ids::{SpanId, TraceId};
use serde::{Deserialize, Serialize};

/// An attribute value, as in OTLP's `AnyValue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AttrValue {
    Empty,
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<AttrValue>),
    Map(Vec<KeyValue>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: AttrValue,
}

pub type Attributes = Vec<KeyValue>;

impl AttrValue {
    /// Plain text for full-text indexing and for trace-ID extraction: strings as they are,
    /// composites as JSON.
    pub fn to_text(&self) -> String {
        match self {
            AttrValue::Str(s) => s.clone(),
            AttrValue::Empty => String::new(),
            other => other.to_json().to_string(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            AttrValue::Empty => Value::Null,
            AttrValue::Str(s) => Value::String(s.clone()),
            AttrValue::Bool(b) => Value::Bool(*b),
            AttrValue::Int(i) => Value::from(*i),
            AttrValue::Double(d) => serde_json::Number::from_f64(*d)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(d.to_string())),
            AttrValue::Bytes(b) => Value::String(hex::encode(b)),
            AttrValue::Array(a) => Value::Array(a.iter().map(AttrValue::to_json).collect()),
            AttrValue::Map(m) => attrs_to_json(m),
        }
    }

    pub fn from_json(v: &serde_json::Value) -> AttrValue {
        use serde_json::Value;
        match v {
            Value::Null => AttrValue::Empty,
            Value::Bool(b) => AttrValue::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => AttrValue::Int(i),
                None => AttrValue::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => AttrValue::Str(s.clone()),
            Value::Array(a) => AttrValue::Array(a.iter().map(AttrValue::from_json).collect()),
            Value::Object(o) => AttrValue::Map(
                o.iter()
                    .map(|(k, v)| KeyValue {
                        key: k.clone(),
                        value: AttrValue::from_json(v),
                    })
                    .collect(),
            ),
        }
    }
}

/// Attributes as one JSON object (later keys win, as OTLP leaves duplicates undefined).
pub fn attrs_to_json(attrs: &[KeyValue]) -> serde_json::Value {
    serde_json::Value::Object(
        attrs
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.to_json()))
            .collect(),
    )
}

pub fn attr_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match &kv.value {
            AttrValue::Str(s) => Some(s.as_str()),
            _ => None,
        })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    pub time_ns: u64,
    pub name: String,
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanLink {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub trace_state: String,
    pub name: String,
    /// OTLP `SpanKind` number (0 unspecified … 5 consumer).
    pub kind: i32,
    pub start_ns: u64,
    pub end_ns: u64,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    pub status_message: String,
    pub service: String,
    pub resource: Attributes,
    pub scope: Scope,
    pub attributes: Attributes,
    pub events: Vec<SpanEvent>,
    pub links: Vec<SpanLink>,
}

impl Span {
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// Whether the span failed: weft's one definition, used by RED errors, the service map,
    /// trace search and summaries, sampling and incident analysis. Its status is error, or —
    /// for the many systems that never set status — it is not explicitly OK and carries
    /// `http.response.status_code`/`http.status_code` ≥ 500, a non-zero
    /// `rpc.grpc.status_code`, or an `exception` event. An explicit OK is the code's own
    /// word that the operation succeeded, so it wins over the attributes.
    pub fn failed(&self) -> bool {
        match self.status_code {
            2 => true,
            1 => false,
            // One pass over the attributes: this runs for every span the indexer sees.
            _ => {
                self.attributes.iter().any(|kv| {
                    let code = || match &kv.value {
                        AttrValue::Int(i) => Some(*i),
                        AttrValue::Str(v) => v.parse().ok(),
                        AttrValue::Double(d) => Some(*d as i64),
                        _ => None,
                    };
                    match kv.key.as_str() {
                        "http.response.status_code" | "http.status_code" => {
                            code().is_some_and(|c| c >= 500)
                        }
                        "rpc.grpc.status_code" => code().is_some_and(|c| c != 0),
                        _ => false,
                    }
                }) || self.events.iter().any(|e| e.name == "exception")
            }
        }
    }
}

/// How a log record came to be linked to its trace. The API returns this with every link so a
/// user can tell a fact from a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkMethod {
    /// The record's own trace-context field (OTLP `traceId`, a JSON-lines `trace_id` key).
    Structured,
    /// A trace ID pattern matched one of the record's attributes.
    Attribute,
    /// A trace ID pattern matched the message text.
    Text,
}

impl LinkMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkMethod::Structured => "structured",
            LinkMethod::Attribute => "attribute",
            LinkMethod::Text => "text",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceLink {
    pub method: LinkMethod,
    /// The field or attribute that held the ID (`traceId`, `http.headers.traceparent`, …).
    pub field: Option<String>,
    /// The configured pattern that matched, for attribute and text links.
    pub pattern: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub time_ns: u64,
    pub observed_ns: u64,
    pub severity_number: i32,
    pub severity_text: String,
    pub body: AttrValue,
    pub event_name: String,
    pub service: String,
    pub resource: Attributes,
    pub scope: Scope,
    pub attributes: Attributes,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub link: Option<TraceLink>,
    pub flags: u32,
}

impl LogRecord {
    /// The time the record is filed under: its own time, else when it was observed.
    pub fn effective_time_ns(&self) -> u64 {
        if self.time_ns != 0 {
            self.time_ns
        } else {
            self.observed_ns
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Temporality {
    Unspecified,
    Delta,
    Cumulative,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetricValue {
    Gauge(f64),
    Sum {
        value: f64,
        monotonic: bool,
        temporality: Temporality,
    },
    Histogram {
        count: u64,
        sum: Option<f64>,
        min: Option<f64>,
        max: Option<f64>,
        bounds: Vec<f64>,
        bucket_counts: Vec<u64>,
        temporality: Temporality,
    },
    ExponentialHistogram {
        count: u64,
        sum: Option<f64>,
        scale: i32,
        zero_count: u64,
        positive_offset: i32,
        positive: Vec<u64>,
        negative_offset: i32,
        negative: Vec<u64>,
        temporality: Temporality,
    },
    Summary {
        count: u64,
        sum: f64,
        quantiles: Vec<(f64, f64)>,
    },
}

impl MetricValue {
    pub fn kind(&self) -> &'static str {
        match self {
            MetricValue::Gauge(_) => "gauge",
            MetricValue::Sum { .. } => "sum",
            MetricValue::Histogram { .. } => "histogram",
            MetricValue::ExponentialHistogram { .. } => "exponential_histogram",
            MetricValue::Summary { .. } => "summary",
        }
    }
}

/// A measurement that points at the trace behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exemplar {
    pub time_ns: u64,
    pub value: f64,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub name: String,
    pub description: String,
    pub unit: String,
    pub time_ns: u64,
    pub start_ns: u64,
    pub service: String,
    pub resource: Attributes,
    pub scope: Scope,
    pub attributes: Attributes,
    pub value: MetricValue,
    pub exemplars: Vec<Exemplar>,
    pub flags: u32,
}

/// The three signals; each has its own index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Signal {
    Spans,
    Logs,
    Metrics,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Spans, Signal::Logs, Signal::Metrics];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Spans => "spans",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }

    /// What one record of the signal is called in messages (as OTLP counts them).
    pub fn record_noun(self) -> &'static str {
        match self {
            Signal::Spans => "spans",
            Signal::Logs => "log records",
            Signal::Metrics => "data points",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    Span(Span),
    Log(LogRecord),
    Metric(MetricPoint),
}

impl Record {
    pub fn signal(&self) -> Signal {
        match self {
            Record::Span(_) => Signal::Spans,
            Record::Log(_) => Signal::Logs,
            Record::Metric(_) => Signal::Metrics,
        }
    }

    /// When the record ends: a span's end, otherwise its time.
    pub fn end_ns(&self) -> u64 {
        match self {
            Record::Span(s) => s.end_ns,
            other => other.time_ns(),
        }
    }

    /// The time that decides the record's index partition.
    pub fn time_ns(&self) -> u64 {
        match self {
            Record::Span(s) => s.start_ns,
            Record::Log(l) => l.effective_time_ns(),
            Record::Metric(m) => m.time_ns,
        }
    }
}

/// What one acknowledged request contributes: records of one tenant. The unit of the WAL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub tenant: super::ids::TenantId,
    pub records: Vec<Record>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::span;

    fn with(status: i32, key: &str, value: AttrValue) -> Span {
        let mut s = span(1, None, 0, 1);
        s.status_code = status;
        s.attributes = vec![KeyValue {
            key: key.into(),
            value,
        }];
        s
    }

    #[test]
    fn a_span_failed_by_its_status_or_without_one_by_what_it_carries() {
        let http = "http.response.status_code";
        assert!(with(2, http, AttrValue::Int(200)).failed());
        assert!(with(0, http, AttrValue::Int(500)).failed());
        assert!(with(0, "http.status_code", AttrValue::Str("502".into())).failed());
        assert!(!with(0, http, AttrValue::Int(499)).failed());
        assert!(with(0, "rpc.grpc.status_code", AttrValue::Int(13)).failed());
        assert!(!with(0, "rpc.grpc.status_code", AttrValue::Int(0)).failed());
        // An explicit OK is the code's own word.
        assert!(!with(1, http, AttrValue::Int(500)).failed());
        let mut thrown = span(1, None, 0, 1);
        thrown.events.push(SpanEvent {
            time_ns: 0,
            name: "exception".into(),
            attributes: vec![],
        });
        assert!(thrown.failed());
        assert!(!span(1, None, 0, 1).failed());
    }
}
