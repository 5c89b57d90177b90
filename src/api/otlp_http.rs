//! OTLP/HTTP (`/v1/traces`, `/v1/logs`, `/v1/metrics`) and JSON-lines logs (`/api/v1/logs`,
//! POST). Handlers only read the body, decode, and hand over to the ingest service.

use super::errors::otlp_error;
use super::AppState;
use crate::ingest::admission::{Admission, Charge};
use crate::ingest::decode::{self, DecodeError, Format};
use crate::ingest::request::{ExportRequest, RequestError};
use crate::ingest::{cost, jsonlines, Outcome};
use crate::model::Signal;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::time::Duration;

pub(crate) fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Reads the body within `http.body_timeout_secs`, refusing it as soon as it passes `limit`
/// (before and after gzip), and charges the in-flight budget for its bytes as they arrive: a
/// client that sends headers and then nothing holds no memory, and not for long.
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    state: &AppState,
    charge: &mut Charge,
) -> Result<bytes::Bytes, RequestError> {
    let limit = state.config.http.max_body_bytes;
    let admission = state.ingest.admission();
    let too_large = || DecodeError::TooLarge {
        limit,
        inflated: false,
    };
    let declared: Option<usize> = header(req, "content-length").and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large().into());
    }
    let secs = state.config.http.body_timeout_secs;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut body = bytes::BytesMut::new();
    loop {
        let next = tokio::time::timeout_at(deadline, payload.next())
            .await
            .map_err(|_| DecodeError::Timeout { secs })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| DecodeError::Protobuf {
            message: "request body",
            error: e.to_string(),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large().into());
        }
        admission.grow(charge, chunk.len())?;
        body.extend_from_slice(&chunk);
    }
    let received = body.len();
    let body = decode::decompress(header(req, "content-encoding"), body.freeze(), limit)?;
    if body.len() != received {
        // Inflated: the compressed bytes are gone, the inflated ones are held.
        admission.grow(charge, body.len())?;
    }
    Ok(body)
}

/// One OTLP/HTTP export: the shared path of the three signals.
async fn export<R: ExportRequest>(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    respond: fn(Outcome) -> Vec<u8>,
    respond_json: fn(Outcome) -> serde_json::Value,
) -> HttpResponse {
    let ingest = &state.ingest;
    let format = match Format::from_content_type(header(&req, "content-type")) {
        Ok(f) => f,
        Err(e) => {
            ingest.count_refused_request(R::SIGNAL, e.reason());
            return otlp_error(&e, None);
        }
    };
    let tenant = match state.auth.from_http(&req) {
        Ok(t) => t,
        Err(e) => return otlp_error(&e, Some(format)),
    };
    let mut charge = Admission::empty_charge();
    let converted = match read_body(&req, payload, &state, &mut charge).await {
        Ok(body) => ingest.decode_export::<R>(format, &body, &mut charge),
        Err(e) => Err(e),
    };
    let converted = match converted {
        Ok(c) => c,
        Err(e) => {
            ingest.count_refused_request(R::SIGNAL, e.reason());
            return otlp_error(&e, Some(format));
        }
    };
    match ingest.ingest(tenant, R::SIGNAL, converted).await {
        Ok(outcome) => match format {
            Format::Protobuf => HttpResponse::Ok()
                .content_type(format.content_type())
                .body(respond(outcome)),
            Format::Json => HttpResponse::Ok().json(respond_json(outcome)),
        },
        Err(e) => otlp_error(&e, Some(format)),
    }
}

/// OTLP/JSON partial success; omitted when nothing was rejected, as the spec asks.
fn partial_json(o: &Outcome, field: &str) -> serde_json::Value {
    if o.rejected == 0 {
        serde_json::json!({})
    } else {
        serde_json::json!({"partialSuccess": {field: o.rejected.to_string(), "errorMessage": o.message}})
    }
}

pub fn trace_response(o: Outcome) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (o.rejected > 0).then_some(ExportTracePartialSuccess {
            rejected_spans: o.rejected as i64,
            error_message: o.message,
        }),
    }
}

pub fn logs_response(o: Outcome) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: (o.rejected > 0).then_some(ExportLogsPartialSuccess {
            rejected_log_records: o.rejected as i64,
            error_message: o.message,
        }),
    }
}

pub fn metrics_response(o: Outcome) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: (o.rejected > 0).then_some(ExportMetricsPartialSuccess {
            rejected_data_points: o.rejected as i64,
            error_message: o.message,
        }),
    }
}

pub async fn traces(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    export::<ExportTraceServiceRequest>(
        req,
        payload,
        state,
        |o| prost::Message::encode_to_vec(&trace_response(o)),
        |o| partial_json(&o, "rejectedSpans"),
    )
    .await
}

pub async fn logs(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    export::<ExportLogsServiceRequest>(
        req,
        payload,
        state,
        |o| prost::Message::encode_to_vec(&logs_response(o)),
        |o| partial_json(&o, "rejectedLogRecords"),
    )
    .await
}

pub async fn metrics(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    export::<ExportMetricsServiceRequest>(
        req,
        payload,
        state,
        |o| prost::Message::encode_to_vec(&metrics_response(o)),
        |o| partial_json(&o, "rejectedDataPoints"),
    )
    .await
}

/// `POST /api/v1/logs`: newline-delimited JSON objects; any content type is read as such.
pub async fn json_lines(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let ingest = &state.ingest;
    let tenant = match state.auth.from_http(&req) {
        Ok(t) => t,
        Err(e) => return super::errors::json_service_error(&e),
    };
    let mut charge = Admission::empty_charge();
    let body = match read_body(&req, payload, &state, &mut charge)
        .await
        .and_then(|b| {
            if b.iter().all(u8::is_ascii_whitespace) {
                return Err(DecodeError::Empty.into());
            }
            ingest.admission().grow(&mut charge, cost::json_lines(&b))?;
            Ok(b)
        }) {
        Ok(b) => b,
        Err(e) => {
            ingest.count_refused_request(Signal::Logs, e.reason());
            return super::errors::json_service_error(&e);
        }
    };
    let converted = jsonlines::parse(&body, ingest.extractor(), crate::now_ns());
    let errors = converted.messages.clone();
    match ingest.ingest(tenant, Signal::Logs, converted).await {
        Ok(o) => HttpResponse::Ok().json(serde_json::json!({
            "accepted": o.accepted,
            "rejected": o.rejected,
            "errors": errors,
        })),
        Err(e) => super::errors::json_service_error(&e),
    }
}
