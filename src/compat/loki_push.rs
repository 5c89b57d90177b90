//! Loki push (`POST /loki/api/v1/push`): JSON (`application/json`, gzip allowed) or
//! snappy-compressed protobuf `PushRequest` (`application/x-protobuf`).
//!
//! # Mapping
//!
//! - Each stream label becomes a resource attribute under its own name.
//! - The service (`service.name`) is the first of the labels `service_name`, `service`, `app`,
//!   `application`, `job`, `container`; else `unknown_service`.
//! - Structured metadata become log attributes; a `trace_id` (`traceID`, `traceId`) entry is
//!   the log's own trace context, `span_id` (`spanID`, `spanId`) its span.
//! - The severity comes from a `level` (`detected_level`, `severity`, `lvl`) label or metadata
//!   entry, by name.
//! - Logs without trace context are linked by the configured patterns — their metadata as
//!   `key=value`, then the line — exactly as any other log.
//!
//! Success is 204, as Loki answers; errors are text with Loki's statuses (400 bad payload,
//! 413, 415, 429/503 when a retry can succeed).

use super::{body, charge, text_error};
use crate::api::AppState;
use crate::ingest::decode::DecodeError;
use crate::ingest::jsonlines::severity_number;
use crate::ingest::otlp::Converted;
use crate::ingest::request::RequestError;
use crate::ingest::traceids::Extractor;
use crate::ingest::IngestError;
use crate::model::{AttrValue, KeyValue, LogRecord, Record, Scope, Signal, SpanId, TraceId};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// The label set as text: `{app="shop", env="prod"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<ProtoTimestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoTimestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[derive(Debug, Deserialize)]
pub struct JsonPush {
    pub streams: Vec<JsonStream>,
}

#[derive(Debug, Deserialize)]
pub struct JsonStream {
    #[serde(default)]
    pub stream: BTreeMap<String, String>,
    pub values: Vec<Vec<serde_json::Value>>,
}

/// One entry of one stream, whichever encoding it came in.
pub struct Entry {
    time_ns: Result<u64, String>,
    pub line: String,
    pub metadata: Vec<(String, String)>,
}

const SERVICE_LABELS: [&str; 6] = [
    "service_name",
    "service",
    "app",
    "application",
    "job",
    "container",
];
const LEVEL_KEYS: [&str; 4] = ["level", "detected_level", "severity", "lvl"];
const TRACE_ID_KEYS: [&str; 3] = ["trace_id", "traceID", "traceId"];
const SPAN_ID_KEYS: [&str; 3] = ["span_id", "spanID", "spanId"];

fn json_entry(v: &[serde_json::Value]) -> Result<Entry, String> {
    let ts = match v.first() {
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        _ => None,
    };
    let line = match v.get(1) {
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => return Err("must be [\"<unix epoch ns>\", \"<line>\", {metadata}?]".into()),
    };
    let metadata = match v.get(2) {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Object(o)) => o
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        Some(_) => return Err("structured metadata must be an object".into()),
    };
    if v.len() > 3 {
        return Err(format!("has {} elements, at most 3", v.len()));
    }
    Ok(Entry {
        time_ns: ts
            .filter(|&t| t > 0)
            .ok_or_else(|| "timestamp must be Unix epoch nanoseconds as a string".into()),
        line,
        metadata,
    })
}

fn proto_time(t: &Option<ProtoTimestamp>) -> Result<u64, String> {
    let t = t.as_ref().ok_or("timestamp is required")?;
    if t.seconds <= 0 || !(0..1_000_000_000).contains(&t.nanos) {
        return Err(format!(
            "timestamp {}s {}ns is not after the Unix epoch",
            t.seconds, t.nanos
        ));
    }
    (t.seconds as u64)
        .checked_mul(1_000_000_000)
        .map(|s| s + t.nanos as u64)
        .ok_or_else(|| "timestamp is out of range".into())
}

fn log_record(
    labels: &[(String, String)],
    entry: Entry,
    extractor: &Extractor,
    now_ns: u64,
) -> Result<LogRecord, String> {
    let time_ns = entry.time_ns?;
    let label = |keys: &[&str]| {
        keys.iter().find_map(|k| {
            labels
                .iter()
                .find(|(n, v)| n == k && !v.is_empty())
                .map(|(_, v)| v.clone())
        })
    };
    let service = label(&SERVICE_LABELS).unwrap_or_else(|| "unknown_service".into());
    let mut resource: Vec<KeyValue> = labels
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: AttrValue::Str(v.clone()),
        })
        .collect();
    if !labels.iter().any(|(k, _)| k == "service.name") {
        resource.push(KeyValue {
            key: "service.name".into(),
            value: AttrValue::Str(service.clone()),
        });
    }
    let mut trace_id = None;
    let mut trace_field = "trace_id";
    let mut span_id = None;
    let mut attributes = Vec::with_capacity(entry.metadata.len());
    for (k, v) in entry.metadata {
        if TRACE_ID_KEYS.contains(&k.as_str()) && trace_id.is_none() {
            if let Ok(t) = TraceId::from_hex(&v) {
                trace_id = Some(t);
                trace_field = TRACE_ID_KEYS
                    .iter()
                    .find(|n| **n == k)
                    .copied()
                    .unwrap_or("trace_id");
                continue;
            }
        }
        if SPAN_ID_KEYS.contains(&k.as_str()) && span_id.is_none() {
            if let Ok(s) = SpanId::from_hex(&v) {
                span_id = Some(s);
                continue;
            }
        }
        attributes.push(KeyValue {
            key: k,
            value: AttrValue::Str(v),
        });
    }
    let level = label(&LEVEL_KEYS).or_else(|| {
        attributes.iter().find_map(|kv| {
            LEVEL_KEYS
                .contains(&kv.key.as_str())
                .then(|| kv.value.to_text())
        })
    });
    let mut log = LogRecord {
        time_ns,
        observed_ns: now_ns,
        severity_number: level.as_deref().map_or(0, severity_number),
        severity_text: level.unwrap_or_default(),
        body: AttrValue::Str(entry.line),
        event_name: String::new(),
        service,
        resource,
        scope: Scope {
            name: "loki".into(),
            version: String::new(),
        },
        attributes,
        trace_id,
        span_id,
        link: None,
        flags: 0,
    };
    extractor.link(&mut log, trace_field);
    Ok(log)
}

/// One stream of a push: its labels (or why they are invalid) and its entries.
pub type Stream = (Result<Vec<(String, String)>, String>, Vec<Entry>);

/// The entries of a push in model terms; every entry is accepted or rejected on its own.
pub fn convert(streams: Vec<Stream>, extractor: &Extractor, now_ns: u64) -> Converted {
    let mut out = Converted::default();
    for (si, (labels, entries)) in streams.into_iter().enumerate() {
        let labels = match labels {
            Ok(l) => l,
            Err(e) => {
                for _ in &entries {
                    out.reject("invalid", || format!("streams[{si}].stream: {e}"));
                }
                continue;
            }
        };
        for (i, e) in entries.into_iter().enumerate() {
            match log_record(&labels, e, extractor, now_ns) {
                Ok(log) => out.records.push(Record::Log(log)),
                Err(msg) => out.reject("invalid", || format!("streams[{si}].values[{i}]: {msg}")),
            }
        }
    }
    out
}

/// Decodes a push body by its content type into model records.
pub fn decode(
    content_type: &str,
    body: &[u8],
    extractor: &Extractor,
    now_ns: u64,
) -> Result<Converted, DecodeError> {
    Ok(convert(parse(content_type, body)?, extractor, now_ns))
}

/// A push body's streams, JSON or protobuf by its content type.
pub fn parse(content_type: &str, body: &[u8]) -> Result<Vec<Stream>, DecodeError> {
    Ok(if content_type.contains("json") {
        let push: JsonPush = serde_json::from_slice(body).map_err(|e| DecodeError::Json {
            message: "a Loki push request",
            error: e.to_string(),
        })?;
        push.streams
            .into_iter()
            .map(|s| {
                let labels = Ok(s.stream.into_iter().collect());
                let entries = s
                    .values
                    .iter()
                    .map(|v| {
                        json_entry(v).unwrap_or_else(|e| Entry {
                            time_ns: Err(e),
                            line: String::new(),
                            metadata: Vec::new(),
                        })
                    })
                    .collect();
                (labels, entries)
            })
            .collect::<Vec<_>>()
    } else {
        let push: PushRequest =
            prost::Message::decode(body).map_err(|e| DecodeError::Protobuf {
                message: "a Loki PushRequest",
                error: e.to_string(),
            })?;
        push.streams
            .into_iter()
            .map(|s| {
                let labels = super::logql::parse_label_set(&s.labels);
                let entries = s
                    .entries
                    .into_iter()
                    .map(|e| Entry {
                        time_ns: proto_time(&e.timestamp),
                        line: e.line,
                        metadata: e
                            .structured_metadata
                            .into_iter()
                            .map(|p| (p.name, p.value))
                            .collect(),
                    })
                    .collect();
                (labels, entries)
            })
            .collect()
    })
}

/// `POST /loki/api/v1/push`.
pub async fn push(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let ingest = &state.ingest;
    let content_type = crate::api::otlp_http::header(&req, "content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    let protobuf = content_type.contains("protobuf");
    if !protobuf && !content_type.contains("json") {
        ingest.count_refused_request(Signal::Logs, "unsupported_media_type");
        return text_error(&DecodeError::UnsupportedMediaType(content_type));
    }
    let tenant = match state.auth.from_http(&req) {
        Ok(t) => t,
        Err(e) => return text_error(&e),
    };
    let mut held = charge();
    let body = match body(&req, payload, &state, Signal::Logs, &mut held, protobuf).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let streams = (|| {
        let decoded = if protobuf {
            crate::ingest::cost::decoded_size(super::cost::LokiPush::Request, &body).map_err(
                |error| DecodeError::Protobuf {
                    message: "a Loki PushRequest",
                    error,
                },
            )?
        } else {
            crate::ingest::cost::json(&body)
        };
        ingest.admission().grow(&mut held, decoded)?;
        let streams = parse(&content_type, &body)?;
        ingest
            .admission()
            .grow(&mut held, super::cost::loki_conversion(&streams))?;
        Ok::<_, RequestError>(streams)
    })();
    let streams = match streams {
        Ok(s) => s,
        Err(e) => {
            ingest.count_refused_request(Signal::Logs, e.reason());
            return text_error(&e);
        }
    };
    let converted = convert(streams, ingest.extractor(), crate::now_ns());
    match ingest.ingest(tenant, Signal::Logs, converted).await {
        Ok(o) if o.rejected == 0 => HttpResponse::NoContent().finish(),
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
    use crate::config::ExtractConfig;
    use crate::model::LinkMethod;

    fn extractor() -> Extractor {
        Extractor::new(&ExtractConfig::default()).unwrap()
    }

    fn logs(c: &Converted) -> Vec<&LogRecord> {
        c.records
            .iter()
            .map(|r| match r {
                Record::Log(l) => l,
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn json_push_maps_labels_metadata_and_trace_ids() {
        let body = br#"{"streams":[{"stream":{"app":"shop","level":"error","env":"prod"},
            "values":[["1700000000000000001","card declined traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
                      ["1700000000000000002","retry",{"traceID":"5b8efff798038103d269b633813fc60c","user":"bob"}],
                      ["yesterday","bad"]]}]}"#;
        let c = decode("application/json", body, &extractor(), 9).unwrap();
        assert_eq!(c.rejected, 1);
        assert!(c.messages[0].contains("values[2]"), "{:?}", c.messages);
        let l = logs(&c);
        assert_eq!((l[0].service.as_str(), l[0].severity_number), ("shop", 17));
        assert_eq!(l[0].link.as_ref().unwrap().method, LinkMethod::Text);
        assert!(l[0].resource.iter().any(|kv| kv.key == "env"));
        assert_eq!(l[1].link.as_ref().unwrap().method, LinkMethod::Structured);
        assert_eq!(
            l[1].link.as_ref().unwrap().field.as_deref(),
            Some("traceID")
        );
        assert_eq!(l[1].attributes.len(), 1);
        assert_eq!(l[1].time_ns, 1_700_000_000_000_000_002);
    }

    #[test]
    fn protobuf_push_parses_the_label_string() {
        let push = PushRequest {
            streams: vec![
                StreamAdapter {
                    labels: r#"{job="api", pod="p-1"}"#.into(),
                    entries: vec![EntryAdapter {
                        timestamp: Some(ProtoTimestamp {
                            seconds: 1_700_000_000,
                            nanos: 5,
                        }),
                        line: "hello trace_id=4bf92f3577b34da6a3ce929d0e0e4736".into(),
                        structured_metadata: vec![],
                    }],
                    hash: 0,
                },
                StreamAdapter {
                    labels: "{job=api".into(),
                    entries: vec![EntryAdapter::default()],
                    hash: 0,
                },
            ],
        };
        let body = prost::Message::encode_to_vec(&push);
        let c = decode("application/x-protobuf", &body, &extractor(), 9).unwrap();
        assert_eq!(c.rejected, 1, "{:?}", c.messages);
        let l = logs(&c);
        assert_eq!(l[0].service, "api");
        assert_eq!(l[0].time_ns, 1_700_000_000_000_000_005);
        assert!(l[0].trace_id.is_some());
        assert!(decode("application/x-protobuf", b"\xff", &extractor(), 9).is_err());
    }
}
