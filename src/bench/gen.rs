//! Realistic telemetry for the load generator: traces of 5–20 spans across services, each span
//! with about ten attributes (20-character keys and values, the OpenTelemetry SDK benchmark
//! shape); logs with ~300-byte bodies, a third carrying trace context, a third with the ID only
//! in the text, a third with none; counters and histograms with exemplars.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, number_data_point, Exemplar, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

pub(crate) const SERVICES: [&str; 8] = [
    "frontend",
    "checkout",
    "cart",
    "payment",
    "inventory",
    "shipping",
    "auth",
    "recommendation",
];
pub(crate) const OPERATIONS: [&str; 6] = [
    "GET /api/items",
    "POST /api/cart",
    "charge",
    "reserve",
    "SELECT",
    "publish",
];
const WORDS: [&str; 24] = [
    "request",
    "completed",
    "failed",
    "timeout",
    "retrying",
    "connection",
    "database",
    "cache",
    "miss",
    "user",
    "order",
    "payment",
    "declined",
    "latency",
    "upstream",
    "queue",
    "backoff",
    "session",
    "expired",
    "inventory",
    "reserved",
    "shipment",
    "created",
    "slow",
];
/// Distinct attribute values: realistic cardinality, not one value per record.
const VALUE_POOL: usize = 1000;

pub(crate) fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn resource(service: &str, pod: usize) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", service),
            kv("k8s.pod.name", &format!("{service}-{pod:04}")),
            kv("host.name", &format!("node-{}", pod % 4)),
        ],
        ..Default::default()
    })
}

pub struct Generator {
    rng: StdRng,
    keys: Vec<String>,
    values: Vec<String>,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let word = |rng: &mut StdRng| -> String {
            (0..20)
                .map(|_| (b'a' + rng.random_range(0..26u8)) as char)
                .collect()
        };
        let keys = (0..10).map(|_| word(&mut rng)).collect();
        let values = (0..VALUE_POOL).map(|_| word(&mut rng)).collect();
        Self { rng, keys, values }
    }

    fn id<const N: usize>(&mut self) -> Vec<u8> {
        let mut b = [0u8; N];
        self.rng.fill(&mut b[..]);
        b[0] |= 1; // never all zero
        b.to_vec()
    }

    fn attributes(&mut self) -> Vec<KeyValue> {
        (0..self.keys.len())
            .map(|i| {
                let v = self.rng.random_range(0..self.values.len());
                kv(&self.keys[i].clone(), &self.values[v].clone())
            })
            .collect()
    }

    fn sentence(&mut self, bytes: usize) -> String {
        let mut s = String::with_capacity(bytes + 16);
        while s.len() < bytes {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(WORDS[self.rng.random_range(0..WORDS.len())]);
        }
        s
    }

    /// One trace of 5–20 spans over several services, ending at `now_ns`. Spans are grouped by
    /// service as SDKs send them. Returns the request, its span count and the trace ID.
    pub fn trace(&mut self, now_ns: u64) -> (Vec<ResourceSpans>, usize, Vec<u8>) {
        let trace_id = self.id::<16>();
        let count = self.rng.random_range(5..=20);
        let start = now_ns.saturating_sub(2_000_000_000);
        let mut by_service: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
        let mut ids: Vec<Vec<u8>> = Vec::with_capacity(count);
        let failed = self.rng.random_range(0..20) == 0;
        for i in 0..count {
            let span_id = self.id::<8>();
            let parent = if i == 0 {
                Vec::new()
            } else {
                ids[self.rng.random_range(0..i)].clone()
            };
            let service = if i == 0 {
                SERVICES[0]
            } else {
                SERVICES[self.rng.random_range(0..SERVICES.len())]
            };
            let offset = i as u64 * 3_000_000;
            let duration = self.rng.random_range(1_000_000..200_000_000u64);
            by_service.entry(service).or_default().push(Span {
                trace_id: trace_id.clone(),
                span_id: span_id.clone(),
                parent_span_id: parent,
                name: OPERATIONS[self.rng.random_range(0..OPERATIONS.len())].to_string(),
                kind: if i == 0 { 2 } else { 3 },
                start_time_unix_nano: start + offset,
                end_time_unix_nano: start + offset + duration,
                attributes: self.attributes(),
                status: Some(Status {
                    code: if failed && i == count - 1 { 2 } else { 0 },
                    message: String::new(),
                }),
                ..Default::default()
            });
            ids.push(span_id);
        }
        let resource_spans = by_service
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: resource(service, self.rng.random_range(0..32)),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        (resource_spans, count, trace_id)
    }

    /// Whole traces until at least `min_spans` spans. Returns the request, its span count and
    /// the ID of its first trace.
    pub fn spans(
        &mut self,
        min_spans: usize,
        now_ns: u64,
    ) -> (ExportTraceServiceRequest, usize, Vec<u8>) {
        let mut req = ExportTraceServiceRequest::default();
        let mut total = 0;
        let mut first = Vec::new();
        while total < min_spans {
            let (rs, n, id) = self.trace(now_ns);
            if first.is_empty() {
                first = id;
            }
            req.resource_spans.extend(rs);
            total += n;
        }
        (req, total, first)
    }

    /// `n` log records of one service; the first always carries trace context so freshness
    /// can be probed by trace ID. Returns the request and that trace ID.
    pub fn logs(&mut self, n: usize, now_ns: u64) -> (ExportLogsServiceRequest, Vec<u8>) {
        let service = SERVICES[self.rng.random_range(0..SERVICES.len())];
        let mut first = Vec::new();
        let records = (0..n)
            .map(|i| {
                let trace_id = self.id::<16>();
                let span_id = self.id::<8>();
                let mode = if i == 0 {
                    0
                } else {
                    self.rng.random_range(0..3)
                };
                let mut body = self.sentence(250);
                let (tid, sid) = match mode {
                    0 => (trace_id.clone(), span_id),
                    1 => {
                        body.push_str(&format!(
                            " traceparent=00-{}-{}-01",
                            hex::encode(&trace_id),
                            hex::encode(&span_id)
                        ));
                        (Vec::new(), Vec::new())
                    }
                    _ => (Vec::new(), Vec::new()),
                };
                if i == 0 {
                    first = trace_id;
                }
                let error = self.rng.random_range(0..10) == 0;
                LogRecord {
                    time_unix_nano: now_ns,
                    observed_time_unix_nano: now_ns,
                    severity_number: if error { 17 } else { 9 },
                    severity_text: if error { "ERROR" } else { "INFO" }.to_string(),
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(body)),
                    }),
                    attributes: self.attributes()[..4].to_vec(),
                    trace_id: tid,
                    span_id: sid,
                    ..Default::default()
                }
            })
            .collect();
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource(service, self.rng.random_range(0..32)),
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        (req, first)
    }

    /// `n` counter data points (the counters of `metrics(2n)`): what remote write sends as
    /// samples.
    pub fn counters(&mut self, n: usize, now_ns: u64) -> ExportMetricsServiceRequest {
        let mut req = self.metrics(2 * n, now_ns);
        for rm in &mut req.resource_metrics {
            for sm in &mut rm.scope_metrics {
                sm.metrics
                    .retain(|m| matches!(m.data, Some(metric::Data::Sum(_))));
            }
        }
        req
    }

    /// `n` data points: request counters and latency histograms per service and route, each
    /// histogram point with an exemplar naming a trace.
    pub fn metrics(&mut self, n: usize, now_ns: u64) -> ExportMetricsServiceRequest {
        let service = SERVICES[self.rng.random_range(0..SERVICES.len())];
        let mut counters = Vec::new();
        let mut histograms = Vec::new();
        for i in 0..n {
            let route = OPERATIONS[i % OPERATIONS.len()];
            let labels = vec![
                kv("http.route", route),
                kv("http.status_code", if i % 13 == 0 { "500" } else { "200" }),
            ];
            if i % 2 == 0 {
                counters.push(NumberDataPoint {
                    attributes: labels,
                    start_time_unix_nano: now_ns - 60_000_000_000,
                    time_unix_nano: now_ns,
                    value: Some(number_data_point::Value::AsInt(
                        self.rng.random_range(0..100_000),
                    )),
                    ..Default::default()
                });
            } else {
                let counts: Vec<u64> = (0..6).map(|_| self.rng.random_range(0..50)).collect();
                histograms.push(HistogramDataPoint {
                    attributes: labels,
                    start_time_unix_nano: now_ns - 60_000_000_000,
                    time_unix_nano: now_ns,
                    count: counts.iter().sum(),
                    sum: Some(12.5),
                    bucket_counts: counts,
                    explicit_bounds: vec![0.005, 0.01, 0.05, 0.1, 0.5],
                    exemplars: vec![Exemplar {
                        time_unix_nano: now_ns,
                        value: Some(exemplar::Value::AsDouble(self.rng.random_range(0.001..2.0))),
                        trace_id: self.id::<16>(),
                        span_id: self.id::<8>(),
                        ..Default::default()
                    }],
                    ..Default::default()
                });
            }
        }
        let metrics = vec![
            Metric {
                name: "http.server.request.count".into(),
                unit: "1".into(),
                data: Some(metric::Data::Sum(Sum {
                    data_points: counters,
                    aggregation_temporality: 2,
                    is_monotonic: true,
                })),
                ..Default::default()
            },
            Metric {
                name: "http.server.request.duration".into(),
                unit: "s".into(),
                data: Some(metric::Data::Histogram(Histogram {
                    data_points: histograms,
                    aggregation_temporality: 2,
                })),
                ..Default::default()
            },
        ];
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource(service, self.rng.random_range(0..32)),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    /// A word that log bodies contain, for search queries.
    pub fn word(&mut self) -> &'static str {
        WORDS[self.rng.random_range(0..WORDS.len())]
    }
}
