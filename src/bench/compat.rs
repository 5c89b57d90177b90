//! The generator's records in the protocols of weft's compatibility ingest, so `bench`
//! measures Prometheus remote write and Loki push on the very records it sends as OTLP: one
//! counter data point is one remote-write sample, one log record one Loki entry.

use crate::compat::loki_push::{
    EntryAdapter, LabelPairAdapter, ProtoTimestamp, PushRequest, StreamAdapter,
};
use crate::compat::prom_series::{label_name, metric_name};
use crate::compat::remote_write::{Label, Sample, TimeSeries, WriteRequest};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};

/// Which protocol a load speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Otlp,
    /// Metrics only: counter points as samples, snappy protobuf to `/api/v1/write`.
    RemoteWrite,
    /// Logs only: snappy protobuf to `/loki/api/v1/push`.
    LokiPush,
}

fn text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        _ => String::new(),
    }
}

fn label(name: &str, value: String) -> Label {
    Label {
        name: name.to_string(),
        value,
    }
}

/// Every number data point as one series with one sample (labels as Prometheus would scrape
/// them: `job` for the service, the other attributes made label-safe).
pub fn remote_write(req: &ExportMetricsServiceRequest) -> WriteRequest {
    let mut timeseries = Vec::new();
    for rm in &req.resource_metrics {
        let resource = rm.resource.as_ref().map_or(&[][..], |r| &r.attributes);
        let job = resource
            .iter()
            .find(|kv| kv.key == "service.name")
            .map(text)
            .unwrap_or_default();
        for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            let points = match &m.data {
                Some(Data::Sum(s)) => &s.data_points,
                Some(Data::Gauge(g)) => &g.data_points,
                _ => continue,
            };
            for p in points {
                let mut labels = vec![
                    label("__name__", format!("{}_total", metric_name(&m.name))),
                    label("job", job.clone()),
                ];
                labels.extend(
                    p.attributes
                        .iter()
                        .map(|kv| label(&label_name(&kv.key), text(kv))),
                );
                let value = match p.value {
                    Some(number_data_point::Value::AsInt(i)) => i as f64,
                    Some(number_data_point::Value::AsDouble(d)) => d,
                    None => continue,
                };
                timeseries.push(TimeSeries {
                    labels,
                    samples: vec![Sample {
                        value,
                        timestamp: (p.time_unix_nano / 1_000_000) as i64,
                    }],
                    ..Default::default()
                });
            }
        }
    }
    WriteRequest {
        timeseries,
        metadata: Vec::new(),
    }
}

/// One stream per resource (its attributes as labels), each record an entry with its
/// attributes and trace context as structured metadata.
pub fn loki_push(req: &ExportLogsServiceRequest) -> PushRequest {
    let streams = req
        .resource_logs
        .iter()
        .map(|rl| {
            let resource = rl.resource.as_ref().map_or(&[][..], |r| &r.attributes);
            let labels: Vec<String> = resource
                .iter()
                .map(|kv| format!("{}={:?}", label_name(&kv.key), text(kv)))
                .collect();
            let entries = rl
                .scope_logs
                .iter()
                .flat_map(|s| &s.log_records)
                .map(|l| {
                    let mut metadata: Vec<LabelPairAdapter> = l
                        .attributes
                        .iter()
                        .map(|kv| LabelPairAdapter {
                            name: kv.key.clone(),
                            value: text(kv),
                        })
                        .collect();
                    if !l.trace_id.is_empty() {
                        metadata.push(LabelPairAdapter {
                            name: "trace_id".into(),
                            value: hex::encode(&l.trace_id),
                        });
                    }
                    let line = match l.body.as_ref().and_then(|b| b.value.as_ref()) {
                        Some(any_value::Value::StringValue(s)) => s.clone(),
                        _ => String::new(),
                    };
                    EntryAdapter {
                        timestamp: Some(ProtoTimestamp {
                            seconds: (l.time_unix_nano / 1_000_000_000) as i64,
                            nanos: (l.time_unix_nano % 1_000_000_000) as i32,
                        }),
                        line,
                        structured_metadata: metadata,
                    }
                })
                .collect();
            StreamAdapter {
                labels: format!("{{{}}}", labels.join(", ")),
                entries,
                hash: 0,
            }
        })
        .collect();
    PushRequest { streams }
}
