//! Zipkin v2 spans (`POST /api/v2/spans`), as JSON or as protobuf `ListOfSpans`
//! (`Content-Type: application/x-protobuf`), into the span store with the same IDs.
//!
//! # Mapping
//!
//! - `traceId` (16 or 32 hex digits; 64-bit IDs are left-padded), `id`, `parentId` as sent.
//! - `localEndpoint.serviceName` is the service; `remoteEndpoint` becomes `peer.service`,
//!   `network.peer.address` and `network.peer.port`.
//! - `kind` CLIENT, SERVER, PRODUCER, CONSUMER map to OTLP's client, server, producer,
//!   consumer; none is internal.
//! - `timestamp` and `duration` are microseconds.
//! - `tags` become string attributes; an `error` tag makes the span's status an error with
//!   the tag's value as its message.
//! - `annotations` become span events named by their value.
//! - `shared` and `debug` are kept as attributes `zipkin.shared` and `zipkin.debug`.
//!
//! Success is 202 with an empty body, as Zipkin answers; a body that cannot be decoded, or
//! whose spans are all invalid, is 400 with a text message that names the span and field.

use super::{body, charge, text_error};
use crate::api::AppState;
use crate::ingest::decode::DecodeError;
use crate::ingest::otlp::Converted;
use crate::ingest::request::RequestError;
use crate::ingest::IngestError;
use crate::model::{AttrValue, KeyValue, Record, Scope, Signal, Span, SpanEvent, SpanId, TraceId};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonEndpoint {
    pub service_name: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub port: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct JsonAnnotation {
    pub timestamp: u64,
    pub value: String,
}

/// A Zipkin v2 span as JSON; unknown fields are ignored, as Zipkin does.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonSpan {
    pub trace_id: String,
    pub id: String,
    pub parent_id: Option<String>,
    pub name: Option<String>,
    pub kind: Option<String>,
    pub timestamp: Option<u64>,
    pub duration: Option<u64>,
    pub local_endpoint: Option<JsonEndpoint>,
    pub remote_endpoint: Option<JsonEndpoint>,
    #[serde(default)]
    pub annotations: Vec<JsonAnnotation>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub debug: Option<bool>,
    pub shared: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoEndpoint {
    #[prost(string, tag = "1")]
    pub service_name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub ipv4: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub ipv6: Vec<u8>,
    #[prost(int32, tag = "4")]
    pub port: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoAnnotation {
    #[prost(fixed64, tag = "1")]
    pub timestamp: u64,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `zipkin.proto3.Span`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoSpan {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub parent_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub id: Vec<u8>,
    /// 0 unspecified, 1 client, 2 server, 3 producer, 4 consumer.
    #[prost(int32, tag = "4")]
    pub kind: i32,
    #[prost(string, tag = "5")]
    pub name: String,
    #[prost(fixed64, tag = "6")]
    pub timestamp: u64,
    #[prost(uint64, tag = "7")]
    pub duration: u64,
    #[prost(message, optional, tag = "8")]
    pub local_endpoint: Option<ProtoEndpoint>,
    #[prost(message, optional, tag = "9")]
    pub remote_endpoint: Option<ProtoEndpoint>,
    #[prost(message, repeated, tag = "10")]
    pub annotations: Vec<ProtoAnnotation>,
    #[prost(map = "string, string", tag = "11")]
    pub tags: std::collections::HashMap<String, String>,
    #[prost(bool, tag = "12")]
    pub debug: bool,
    #[prost(bool, tag = "13")]
    pub shared: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListOfSpans {
    #[prost(message, repeated, tag = "1")]
    pub spans: Vec<ProtoSpan>,
}

impl ProtoEndpoint {
    fn to_json(&self) -> JsonEndpoint {
        let ip = |b: &[u8]| match b.len() {
            4 => Some(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
            16 => <[u8; 16]>::try_from(b)
                .ok()
                .map(|a| std::net::Ipv6Addr::from(a).to_string()),
            _ => None,
        };
        JsonEndpoint {
            service_name: Some(self.service_name.clone()).filter(|s| !s.is_empty()),
            ipv4: ip(&self.ipv4),
            ipv6: ip(&self.ipv6),
            port: (self.port != 0).then_some(self.port as i64),
        }
    }
}

impl ProtoSpan {
    /// The protobuf span in the JSON span's terms, so there is one mapping to the model.
    fn into_json(self) -> JsonSpan {
        JsonSpan {
            trace_id: hex::encode(&self.trace_id),
            id: hex::encode(&self.id),
            parent_id: (!self.parent_id.is_empty()).then(|| hex::encode(&self.parent_id)),
            name: Some(self.name),
            kind: match self.kind {
                1 => Some("CLIENT".into()),
                2 => Some("SERVER".into()),
                3 => Some("PRODUCER".into()),
                4 => Some("CONSUMER".into()),
                _ => None,
            },
            timestamp: (self.timestamp != 0).then_some(self.timestamp),
            duration: (self.duration != 0).then_some(self.duration),
            local_endpoint: self.local_endpoint.as_ref().map(ProtoEndpoint::to_json),
            remote_endpoint: self.remote_endpoint.as_ref().map(ProtoEndpoint::to_json),
            annotations: self
                .annotations
                .into_iter()
                .map(|a| JsonAnnotation {
                    timestamp: a.timestamp,
                    value: a.value,
                })
                .collect(),
            tags: self.tags.into_iter().collect(),
            debug: self.debug.then_some(true),
            shared: self.shared.then_some(true),
        }
    }
}

fn str_attr(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: AttrValue::Str(value.into()),
    }
}

/// OTLP span kind of a Zipkin kind.
fn kind(k: Option<&str>) -> Result<i32, String> {
    match k.map(str::to_ascii_uppercase).as_deref() {
        None => Ok(1),
        Some("SERVER") => Ok(2),
        Some("CLIENT") => Ok(3),
        Some("PRODUCER") => Ok(4),
        Some("CONSUMER") => Ok(5),
        Some(other) => Err(format!(
            "kind {other:?} is not CLIENT, SERVER, PRODUCER or CONSUMER"
        )),
    }
}

fn model_span(s: JsonSpan) -> Result<Span, String> {
    let trace_id = TraceId::from_hex(&s.trace_id).map_err(|e| format!("traceId: {e}"))?;
    let span_id = SpanId::from_hex(&s.id).map_err(|e| format!("id: {e}"))?;
    let parent_span_id = s
        .parent_id
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(SpanId::from_hex)
        .transpose()
        .map_err(|e| format!("parentId: {e}"))?;
    let start_us = s
        .timestamp
        .filter(|&t| t > 0)
        .ok_or("timestamp (microseconds) is required")?;
    let start_ns = start_us
        .checked_mul(1000)
        .ok_or("timestamp is out of range")?;
    let end_ns = start_ns.saturating_add(s.duration.unwrap_or(0).saturating_mul(1000));
    let service = s
        .local_endpoint
        .as_ref()
        .and_then(|e| e.service_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "unknown_service".into());
    let mut resource = vec![str_attr("service.name", service.clone())];
    if let Some(l) = &s.local_endpoint {
        if let Some(ip) = l.ipv4.as_ref().or(l.ipv6.as_ref()) {
            resource.push(str_attr("host.ip", ip.clone()));
        }
    }
    let mut attributes: Vec<KeyValue> = Vec::with_capacity(s.tags.len() + 4);
    let mut status_code = 0;
    let mut status_message = String::new();
    for (k, v) in s.tags {
        if k == "error" {
            status_code = 2;
            status_message = v.clone();
        }
        attributes.push(str_attr(&k, v));
    }
    if let Some(r) = &s.remote_endpoint {
        if let Some(n) = r.service_name.as_ref().filter(|n| !n.is_empty()) {
            attributes.push(str_attr("peer.service", n.clone()));
        }
        if let Some(ip) = r.ipv4.as_ref().or(r.ipv6.as_ref()) {
            attributes.push(str_attr("network.peer.address", ip.clone()));
        }
        if let Some(port) = r.port {
            attributes.push(KeyValue {
                key: "network.peer.port".into(),
                value: AttrValue::Int(port),
            });
        }
    }
    for (flag, key) in [(s.shared, "zipkin.shared"), (s.debug, "zipkin.debug")] {
        if flag == Some(true) {
            attributes.push(KeyValue {
                key: key.into(),
                value: AttrValue::Bool(true),
            });
        }
    }
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: String::new(),
        name: s.name.unwrap_or_default(),
        kind: kind(s.kind.as_deref())?,
        start_ns,
        end_ns,
        status_code,
        status_message,
        service,
        resource,
        scope: Scope {
            name: "zipkin".into(),
            version: String::new(),
        },
        attributes,
        events: s
            .annotations
            .into_iter()
            .map(|a| SpanEvent {
                time_ns: a.timestamp.saturating_mul(1000),
                name: a.value,
                attributes: Vec::new(),
            })
            .collect(),
        links: Vec::new(),
    })
}

/// Spans of one request; each invalid span is rejected on its own, naming its index.
pub fn convert(spans: Vec<JsonSpan>) -> Converted {
    let mut out = Converted::default();
    for (i, s) in spans.into_iter().enumerate() {
        match model_span(s) {
            Ok(span) => out.records.push(Record::Span(span)),
            Err(msg) => out.reject("invalid", || format!("spans[{i}].{msg}")),
        }
    }
    out
}

/// Decodes a body as JSON (the default) or protobuf by its content type.
pub fn decode(content_type: Option<&str>, body: &[u8]) -> Result<Vec<JsonSpan>, DecodeError> {
    let protobuf = content_type.is_some_and(|c| c.contains("protobuf"));
    if protobuf {
        let list: ListOfSpans =
            prost::Message::decode(body).map_err(|e| DecodeError::Protobuf {
                message: "zipkin ListOfSpans",
                error: e.to_string(),
            })?;
        Ok(list.spans.into_iter().map(ProtoSpan::into_json).collect())
    } else {
        serde_json::from_slice(body).map_err(|e| DecodeError::Json {
            message: "a list of zipkin v2 spans",
            error: e.to_string(),
        })
    }
}

/// `POST /api/v2/spans`.
pub async fn spans(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let tenant = match state.auth.from_http(&req) {
        Ok(t) => t,
        Err(e) => return text_error(&e),
    };
    let mut held = charge();
    let body = match body(&req, payload, &state, Signal::Spans, &mut held, false).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let content_type = crate::api::otlp_http::header(&req, "content-type");
    let admission = state.ingest.admission();
    let decoded = (|| {
        let size = if content_type.is_some_and(|c| c.contains("protobuf")) {
            crate::ingest::cost::decoded_size(super::cost::Zipkin::List, &body).map_err(
                |error| DecodeError::Protobuf {
                    message: "zipkin ListOfSpans",
                    error,
                },
            )?
        } else {
            crate::ingest::cost::json(&body)
        };
        admission.grow(&mut held, size)?;
        let spans = decode(content_type, &body)?;
        admission.grow(&mut held, super::cost::zipkin_conversion(&spans))?;
        Ok::<_, RequestError>(spans)
    })();
    let decoded = match decoded {
        Ok(s) => s,
        Err(e) => {
            state
                .ingest
                .count_refused_request(Signal::Spans, e.reason());
            return text_error(&e);
        }
    };
    match state
        .ingest
        .ingest(tenant, Signal::Spans, convert(decoded))
        .await
    {
        Ok(o) if o.rejected == 0 => HttpResponse::Accepted().finish(),
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

    #[test]
    fn json_spans_map_to_the_model() {
        let body = br#"[{"traceId":"5af7183fb1d4cf5f","id":"352bff9a74ca9ad2","parentId":"6b221d5bc9e6496c",
            "name":"get /api","kind":"SERVER","timestamp":1556604172355737,"duration":1431,
            "localEndpoint":{"serviceName":"backend","ipv4":"192.168.99.1","port":3306},
            "remoteEndpoint":{"serviceName":"frontend","ipv4":"172.19.0.2","port":58648},
            "annotations":[{"timestamp":1556604172355800,"value":"wr"}],
            "tags":{"http.method":"GET","error":"timeout"},"shared":true},
            {"traceId":"nothex","id":"1"}]"#;
        let c = convert(decode(Some("application/json"), body).unwrap());
        assert_eq!(c.rejected, 1);
        assert!(
            c.messages[0].starts_with("spans[1].traceId"),
            "{:?}",
            c.messages
        );
        let Record::Span(s) = &c.records[0] else {
            panic!()
        };
        assert_eq!(s.trace_id.to_hex(), "00000000000000005af7183fb1d4cf5f");
        assert_eq!(s.parent_span_id.unwrap().to_hex(), "6b221d5bc9e6496c");
        assert_eq!((s.kind, s.service.as_str()), (2, "backend"));
        assert_eq!(s.start_ns, 1_556_604_172_355_737_000);
        assert_eq!(s.duration_ns(), 1_431_000);
        assert_eq!((s.status_code, s.status_message.as_str()), (2, "timeout"));
        assert_eq!(s.events[0].name, "wr");
        let keys: Vec<_> = s.attributes.iter().map(|k| k.key.as_str()).collect();
        assert!(keys.contains(&"peer.service") && keys.contains(&"zipkin.shared"));
    }

    #[test]
    fn protobuf_spans_take_the_same_path() {
        let list = ListOfSpans {
            spans: vec![ProtoSpan {
                trace_id: vec![1; 16],
                id: vec![2; 8],
                kind: 1,
                name: "call".into(),
                timestamp: 1_700_000_000_000_000,
                duration: 5,
                local_endpoint: Some(ProtoEndpoint {
                    service_name: "api".into(),
                    ipv4: vec![10, 0, 0, 1],
                    ..Default::default()
                }),
                ..Default::default()
            }],
        };
        let body = prost::Message::encode_to_vec(&list);
        let c = convert(decode(Some("application/x-protobuf"), &body).unwrap());
        let Record::Span(s) = &c.records[0] else {
            panic!()
        };
        assert_eq!(s.trace_id.to_hex(), "01".repeat(16));
        assert_eq!((s.kind, s.service.as_str()), (3, "api"));
        assert!(s
            .resource
            .iter()
            .any(|k| k.value == AttrValue::Str("10.0.0.1".into())));
        assert!(decode(Some("application/x-protobuf"), b"\xff\xff").is_err());
        assert!(decode(None, b"{").is_err());
    }
}
