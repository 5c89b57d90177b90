//! Prometheus remote write 1.0 (`POST /api/v1/write`): a snappy-compressed protobuf
//! `WriteRequest` of series with samples, exemplars and native histograms.
//!
//! # Mapping
//!
//! - `__name__` is the metric name, kept as sent (`http_requests_total`).
//! - Every other label becomes a point attribute under its own name (`job`, `instance`, `le`,
//!   `quantile`, …), so a series reads back with exactly the labels it was written with.
//! - The service (`service.name`) is the `service_name` label, else `job`, else
//!   `unknown_service`.
//! - Samples of names ending in `_total`, `_count`, `_sum` or `_bucket`, or typed `counter`,
//!   `histogram` or `summary` by metadata in the same request, are cumulative monotonic sums
//!   (so weft's own API rates them); others are gauges.
//! - Exemplars keep their labels as attributes; a `trace_id` (or `traceID`, `traceId`) label
//!   links the point to its trace and `span_id` (`spanID`, `spanId`) to its span. Prometheus
//!   sends exemplars apart from samples, so each series' exemplars are stored on a point of
//!   their own marked *no recorded value* (OTLP's flag), which adds no sample to the series.
//! - Native histograms become exponential histograms (schema = scale); Prometheus bucket `i`,
//!   `(base^(i-1), base^i]`, is OTLP bucket `i-1`.
//! - Staleness markers are not samples and are not stored.
//!
//! # Status codes (as the remote-write spec asks)
//!
//! 204 when everything was stored; 400 for a payload that cannot be decoded, or whose series
//! were invalid (the valid ones are stored and the message counts the rest; a retry cannot
//! help, so Prometheus drops the batch); 413 past `http.max_body_bytes`; 429 and 503 only when
//! a retry can succeed (in-flight or tenant rate limit, WAL replaying or unwritable).

use super::{body, charge, text_error};
use crate::api::AppState;
use crate::ingest::decode::DecodeError;
use crate::ingest::otlp::Converted;
use crate::ingest::request::RequestError;
use crate::ingest::IngestError;
use crate::model::{
    AttrValue, Exemplar, KeyValue, MetricPoint, MetricValue, Record, Scope, Signal, SpanId,
    Temporality, TraceId,
};
use actix_web::{web, HttpRequest, HttpResponse};
use std::collections::HashMap;

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<PromExemplar>,
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PromExemplar {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// 0 unknown, 1 counter, 2 gauge, 3 histogram, 4 gauge histogram, 5 summary, 6 info,
    /// 7 stateset.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// A native histogram: integer counts as deltas between neighbouring buckets, or float counts
/// as absolute values.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(oneof = "HistogramCount", tags = "1, 2")]
    pub count: Option<HistogramCount>,
    #[prost(double, tag = "3")]
    pub sum: f64,
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    #[prost(oneof = "ZeroCount", tags = "6, 7")]
    pub zero_count: Option<ZeroCount>,
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    #[prost(int32, tag = "14")]
    pub reset_hint: i32,
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum HistogramCount {
    #[prost(uint64, tag = "1")]
    CountInt(u64),
    #[prost(double, tag = "2")]
    CountFloat(f64),
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ZeroCount {
    #[prost(uint64, tag = "6")]
    ZeroCountInt(u64),
    #[prost(double, tag = "7")]
    ZeroCountFloat(f64),
}

/// The label that names a metric.
pub const NAME_LABEL: &str = "__name__";
/// Prometheus' staleness marker: a NaN with this bit pattern.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
use crate::correlate::series::FLAG_NO_RECORDED_VALUE as NO_RECORDED_VALUE;
/// Buckets one native histogram may span (gaps included); Prometheus keeps 160 by default.
const MAX_NATIVE_BUCKETS: u64 = 4096;
const SCOPE: &str = "prometheus.remote_write";
const SERVICE_LABELS: [&str; 2] = ["service_name", "job"];
const TRACE_ID_LABELS: [&str; 3] = ["trace_id", "traceID", "traceId"];
const SPAN_ID_LABELS: [&str; 3] = ["span_id", "spanID", "spanId"];

/// Whether samples of `name` are counters: by the request's metadata, else by the suffixes
/// Prometheus naming conventions give counters and the parts of histograms and summaries.
fn is_counter(name: &str, types: &HashMap<&str, i32>) -> bool {
    let family = ["_bucket", "_count", "_sum", "_total"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    match types.get(name).or_else(|| types.get(family)) {
        Some(1) => true,
        // The family's own series of a summary are its quantiles: gauges.
        Some(3) | Some(4) | Some(5) => family != name,
        Some(_) => false,
        None => family != name,
    }
}

fn time_ns(ms: i64) -> Result<u64, String> {
    if ms <= 0 {
        return Err(format!("timestamp {ms} ms is not after the Unix epoch"));
    }
    (ms as u64)
        .checked_mul(1_000_000)
        .ok_or_else(|| format!("timestamp {ms} ms is out of range"))
}

fn id_of<T>(
    labels: &[Label],
    names: &[&str],
    parse: fn(&str) -> Result<T, crate::model::IdError>,
) -> Result<Option<T>, String> {
    match labels.iter().find(|l| names.contains(&l.name.as_str())) {
        None => Ok(None),
        Some(l) => parse(&l.value)
            .map(Some)
            .map_err(|e| format!("exemplar label {}: {e}", l.name)),
    }
}

fn exemplar(e: &PromExemplar) -> Result<Exemplar, String> {
    Ok(Exemplar {
        time_ns: time_ns(e.timestamp)?,
        value: e.value,
        trace_id: id_of(&e.labels, &TRACE_ID_LABELS, TraceId::from_hex)?,
        span_id: id_of(&e.labels, &SPAN_ID_LABELS, SpanId::from_hex)?,
        attributes: e
            .labels
            .iter()
            .filter(|l| {
                !TRACE_ID_LABELS.contains(&l.name.as_str())
                    && !SPAN_ID_LABELS.contains(&l.name.as_str())
            })
            .map(|l| KeyValue {
                key: l.name.clone(),
                value: AttrValue::Str(l.value.clone()),
            })
            .collect(),
    })
}

/// Contiguous bucket counts from Prometheus spans, with the Prometheus index of the first.
fn native_buckets(
    spans: &[BucketSpan],
    deltas: &[i64],
    floats: &[f64],
) -> Result<(i32, Vec<u64>), String> {
    let Some(first) = spans.first() else {
        return Ok((0, Vec::new()));
    };
    let width: u64 = spans.iter().map(|s| s.length as u64).sum::<u64>()
        + spans
            .iter()
            .skip(1)
            .map(|s| s.offset.unsigned_abs() as u64)
            .sum::<u64>();
    if width > MAX_NATIVE_BUCKETS {
        return Err(format!(
            "native histogram spans {width} buckets, over the limit of {MAX_NATIVE_BUCKETS}"
        ));
    }
    let filled: usize = spans.iter().map(|s| s.length as usize).sum();
    let given = if floats.is_empty() {
        deltas.len()
    } else {
        floats.len()
    };
    if given != filled {
        return Err(format!(
            "native histogram spans hold {filled} buckets but {given} counts are given"
        ));
    }
    let mut counts: Vec<u64> = Vec::with_capacity(width as usize);
    let mut absolute = 0i64;
    let mut next = 0usize;
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            if s.offset < 0 {
                return Err(
                    "native histogram span offsets after the first must not be negative".into(),
                );
            }
            counts.resize(counts.len() + s.offset as usize, 0);
        }
        for _ in 0..s.length {
            let c = if floats.is_empty() {
                absolute = absolute.saturating_add(deltas[next]);
                absolute
            } else {
                floats[next].round() as i64
            };
            next += 1;
            if c < 0 {
                return Err(format!("native histogram bucket count {c} is negative"));
            }
            counts.push(c as u64);
        }
    }
    Ok((first.offset, counts))
}

fn native_histogram(h: &Histogram) -> Result<MetricValue, String> {
    if !(-4..=8).contains(&h.schema) {
        return Err(format!(
            "native histogram schema {} is not -4 to 8",
            h.schema
        ));
    }
    let count = match h.count {
        Some(HistogramCount::CountInt(n)) => n,
        Some(HistogramCount::CountFloat(f)) if f >= 0.0 => f.round() as u64,
        _ => return Err("native histogram count is missing or negative".into()),
    };
    let zero_count = match h.zero_count {
        Some(ZeroCount::ZeroCountInt(n)) => n,
        Some(ZeroCount::ZeroCountFloat(f)) if f >= 0.0 => f.round() as u64,
        None => 0,
        _ => return Err("native histogram zero count is negative".into()),
    };
    let (pos_index, positive) =
        native_buckets(&h.positive_spans, &h.positive_deltas, &h.positive_counts)?;
    let (neg_index, negative) =
        native_buckets(&h.negative_spans, &h.negative_deltas, &h.negative_counts)?;
    Ok(MetricValue::ExponentialHistogram {
        count,
        sum: Some(h.sum),
        scale: h.schema,
        zero_count,
        positive_offset: pos_index.saturating_sub(1),
        positive,
        negative_offset: neg_index.saturating_sub(1),
        negative,
        // A gauge histogram (reset hint 3) is a snapshot; every other one accumulates.
        temporality: Temporality::Cumulative,
    })
}

/// Turns a decoded request into model records; each invalid series is rejected whole, with a
/// message that names it.
pub fn convert(req: WriteRequest) -> Converted {
    let mut out = Converted::default();
    let types: HashMap<&str, i32> = req
        .metadata
        .iter()
        .map(|m| (m.metric_family_name.as_str(), m.r#type))
        .collect();
    for (i, ts) in req.timeseries.iter().enumerate() {
        let mut points = Vec::new();
        if let Err(msg) = series_points(ts, &types, &mut points) {
            out.reject("invalid", || format!("timeseries[{i}]: {msg}"));
            continue;
        }
        out.records.extend(points.into_iter().map(Record::Metric));
    }
    out
}

fn series_points(
    ts: &TimeSeries,
    types: &HashMap<&str, i32>,
    out: &mut Vec<MetricPoint>,
) -> Result<(), String> {
    let name = ts
        .labels
        .iter()
        .find(|l| l.name == NAME_LABEL)
        .map(|l| l.value.as_str())
        .filter(|n| !n.is_empty())
        .ok_or("has no __name__ label")?;
    let mut seen = std::collections::HashSet::new();
    for l in &ts.labels {
        if l.name.is_empty() {
            return Err(format!("series {name:?} has a label with an empty name"));
        }
        if !seen.insert(l.name.as_str()) {
            return Err(format!("series {name:?} has label {:?} twice", l.name));
        }
    }
    let label = |n: &str| ts.labels.iter().find(|l| l.name == n).map(|l| &l.value);
    let service = SERVICE_LABELS
        .iter()
        .find_map(|n| label(n).filter(|v| !v.is_empty()))
        .cloned()
        .unwrap_or_else(|| "unknown_service".into());
    let attributes: Vec<KeyValue> = ts
        .labels
        .iter()
        .filter(|l| l.name != NAME_LABEL)
        .map(|l| KeyValue {
            key: l.name.clone(),
            value: AttrValue::Str(l.value.clone()),
        })
        .collect();
    let counter = is_counter(name, types);
    let value_of = |v: f64| {
        if counter {
            MetricValue::Sum {
                value: v,
                monotonic: true,
                temporality: Temporality::Cumulative,
            }
        } else {
            MetricValue::Gauge(v)
        }
    };
    let point = |time_ns: u64, value: MetricValue| MetricPoint {
        name: name.to_string(),
        description: String::new(),
        unit: String::new(),
        time_ns,
        start_ns: 0,
        service: service.clone(),
        resource: vec![KeyValue {
            key: "service.name".into(),
            value: AttrValue::Str(service.clone()),
        }],
        scope: Scope {
            name: SCOPE.into(),
            version: String::new(),
        },
        attributes: attributes.clone(),
        value,
        exemplars: Vec::new(),
        flags: 0,
    };
    for s in &ts.samples {
        if s.value.to_bits() == STALE_NAN {
            continue;
        }
        out.push(point(time_ns(s.timestamp)?, value_of(s.value)));
    }
    for h in &ts.histograms {
        out.push(point(time_ns(h.timestamp)?, native_histogram(h)?));
    }
    if !ts.exemplars.is_empty() {
        let exemplars = ts
            .exemplars
            .iter()
            .map(exemplar)
            .collect::<Result<Vec<_>, _>>()?;
        let last = exemplars
            .iter()
            .max_by_key(|e| e.time_ns)
            .expect("not empty");
        let mut p = point(last.time_ns, value_of(last.value));
        p.flags = NO_RECORDED_VALUE;
        p.exemplars = exemplars;
        out.push(p);
    }
    Ok(())
}

/// `POST /api/v1/write`.
pub async fn write(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let ingest = &state.ingest;
    let content_type = crate::api::otlp_http::header(&req, "content-type").unwrap_or("");
    if !content_type.is_empty() && !content_type.contains("protobuf") {
        ingest.count_refused_request(Signal::Metrics, "unsupported_media_type");
        return text_error(&DecodeError::UnsupportedMediaType(content_type.to_string()));
    }
    let tenant = match state.auth.from_http(&req) {
        Ok(t) => t,
        Err(e) => return text_error(&e),
    };
    let mut held = charge();
    let body = match body(&req, payload, &state, Signal::Metrics, &mut held, true).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let malformed = |error: String| DecodeError::Protobuf {
        message: "WriteRequest",
        error,
    };
    let decoded = (|| {
        let size = crate::ingest::cost::decoded_size(super::cost::RemoteWrite::Request, &body)
            .map_err(malformed)?;
        ingest.admission().grow(&mut held, size)?;
        let decoded: WriteRequest =
            prost::Message::decode(&body[..]).map_err(|e| malformed(e.to_string()))?;
        ingest
            .admission()
            .grow(&mut held, super::cost::remote_write_conversion(&decoded))?;
        Ok::<_, RequestError>(decoded)
    })();
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => {
            ingest.count_refused_request(Signal::Metrics, e.reason());
            return text_error(&e);
        }
    };
    match ingest
        .ingest(tenant, Signal::Metrics, convert(decoded))
        .await
    {
        Ok(o) if o.rejected == 0 => HttpResponse::NoContent().finish(),
        // Remote write has no partial success: the valid series are stored and the rest is
        // a client error that a retry cannot mend.
        Ok(o) => text_error(&IngestError::AllRejected(format!(
            "{} stored; {}",
            o.accepted, o.message
        ))),
        Err(e) => text_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect()
    }

    fn metric(r: &Record) -> &MetricPoint {
        match r {
            Record::Metric(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn samples_exemplars_and_labels_map_as_documented() {
        let req = WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: labels(&[
                        ("__name__", "http_requests_total"),
                        ("job", "checkout"),
                        ("code", "500"),
                    ]),
                    samples: vec![
                        Sample {
                            value: 3.0,
                            timestamp: 1_700_000_000_000,
                        },
                        Sample {
                            value: f64::from_bits(STALE_NAN),
                            timestamp: 1_700_000_015_000,
                        },
                    ],
                    exemplars: vec![PromExemplar {
                        labels: labels(&[
                            ("trace_id", "4BF92F3577B34DA6A3CE929D0E0E4736"),
                            ("span_id", "00f067aa0ba902b7"),
                            ("user", "bob"),
                        ]),
                        value: 1.0,
                        timestamp: 1_700_000_000_500,
                    }],
                    histograms: vec![],
                },
                TimeSeries {
                    labels: labels(&[("__name__", "queue_depth"), ("service_name", "cart")]),
                    samples: vec![Sample {
                        value: 7.0,
                        timestamp: 1_700_000_000_000,
                    }],
                    ..Default::default()
                },
                TimeSeries {
                    labels: labels(&[("job", "nameless")]),
                    samples: vec![Sample {
                        value: 1.0,
                        timestamp: 1,
                    }],
                    ..Default::default()
                },
            ],
            metadata: vec![],
        };
        let c = convert(req);
        assert_eq!(c.rejected, 1);
        assert!(c.messages[0].starts_with("timeseries[2]: has no __name__"));
        assert_eq!(c.records.len(), 3, "the stale marker is not stored");
        let counter = metric(&c.records[0]);
        assert_eq!(counter.service, "checkout");
        assert!(
            matches!(counter.value, MetricValue::Sum { value, monotonic: true, .. } if value == 3.0)
        );
        assert_eq!(counter.time_ns, 1_700_000_000_000_000_000);
        let keys: Vec<_> = counter.attributes.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["job", "code"]);
        let ex = metric(&c.records[1]);
        assert_eq!(ex.flags, NO_RECORDED_VALUE);
        let e = &ex.exemplars[0];
        assert_eq!(
            e.trace_id.unwrap().to_hex(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(e.span_id.unwrap().to_hex(), "00f067aa0ba902b7");
        assert_eq!(e.attributes.len(), 1);
        let gauge = metric(&c.records[2]);
        assert_eq!(gauge.service, "cart");
        assert!(matches!(gauge.value, MetricValue::Gauge(v) if v == 7.0));
    }

    #[test]
    fn metadata_and_suffixes_decide_counters() {
        let none = HashMap::new();
        assert!(is_counter("x_total", &none));
        assert!(is_counter("x_bucket", &none));
        assert!(!is_counter("x", &none));
        let summary: HashMap<&str, i32> = [("rpc", 5), ("temp_total", 2)].into();
        assert!(!is_counter("rpc", &summary));
        assert!(is_counter("rpc_count", &summary));
        assert!(!is_counter("temp_total", &summary), "metadata says gauge");
    }

    #[test]
    fn native_histograms_become_exponential_with_shifted_offsets() {
        // Buckets at Prometheus indexes 1,2 then (gap of 1) 4: counts 2, 3, 1 as deltas.
        let h = Histogram {
            count: Some(HistogramCount::CountInt(7)),
            sum: 12.5,
            schema: 0,
            zero_count: Some(ZeroCount::ZeroCountInt(1)),
            positive_spans: vec![
                BucketSpan {
                    offset: 1,
                    length: 2,
                },
                BucketSpan {
                    offset: 1,
                    length: 1,
                },
            ],
            positive_deltas: vec![2, 1, -2],
            timestamp: 1_700_000_000_000,
            ..Default::default()
        };
        let MetricValue::ExponentialHistogram {
            positive_offset,
            positive,
            zero_count,
            count,
            ..
        } = native_histogram(&h).unwrap()
        else {
            panic!()
        };
        assert_eq!((positive_offset, positive), (0, vec![2, 3, 0, 1]));
        assert_eq!((zero_count, count), (1, 7));
        let huge = Histogram {
            positive_spans: vec![
                BucketSpan {
                    offset: 0,
                    length: 1,
                },
                BucketSpan {
                    offset: i32::MAX,
                    length: 1,
                },
            ],
            positive_deltas: vec![1, 1],
            ..h.clone()
        };
        assert!(native_histogram(&huge).unwrap_err().contains("4096"));
        let short = Histogram {
            positive_deltas: vec![1],
            ..h
        };
        assert!(native_histogram(&short).unwrap_err().contains("counts"));
    }
}
