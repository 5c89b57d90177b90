//! OTLP/HTTP (`/v1/traces`, `/v1/logs`, `/v1/metrics`) and JSON-lines logs (`/api/v1/logs`,
//! POST). Handlers only read the body, decode, and hand over to the ingest service.

use super::errors::otlp_error;
use super::AppState;
use crate::error::ServiceError;
use crate::ingest::admission::{Admission, AdmissionError, Charge, BYTES_PER_BODY_BYTE};
use crate::ingest::decode::{self, DecodeError, Format};
use crate::ingest::otlp::{self, Converted};
use crate::ingest::{jsonlines, IngestService, Outcome};
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

pub(crate) fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Why a body could not be read.
pub(crate) enum BodyError {
    Decode(DecodeError),
    Admission(AdmissionError),
}

impl BodyError {
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            BodyError::Decode(e) => e.reason(),
            BodyError::Admission(e) => e.reason(),
        }
    }

    pub(crate) fn as_service_error(&self) -> &dyn ServiceError {
        match self {
            BodyError::Decode(e) => e,
            BodyError::Admission(e) => e,
        }
    }
}

/// Reads the body, refusing it as soon as it passes `limit` (before and after gzip), and
/// charges the in-flight budget for it before buffering: a flood gets 429s, not memory.
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    state: &AppState,
    charge: &mut Charge,
) -> Result<bytes::Bytes, BodyError> {
    let limit = state.config.http.max_body_bytes;
    let admission = state.ingest.admission();
    let too_large = || {
        BodyError::Decode(DecodeError::TooLarge {
            limit,
            inflated: false,
        })
    };
    let declared: Option<usize> = header(req, "content-length").and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    if let Some(n) = declared {
        admission.grow(charge, n).map_err(BodyError::Admission)?;
    }
    let mut body = bytes::BytesMut::with_capacity(declared.unwrap_or(8192).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            BodyError::Decode(DecodeError::Protobuf {
                message: "request body",
                error: e.to_string(),
            })
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        if declared.is_none() {
            admission
                .grow(charge, chunk.len())
                .map_err(BodyError::Admission)?;
        }
        body.extend_from_slice(&chunk);
    }
    let charged = declared.unwrap_or(body.len());
    let body = decode::decompress(header(req, "content-encoding"), body.freeze(), limit)
        .map_err(BodyError::Decode)?;
    // Top up to the full charge for the decompressed body and what decoding makes of it.
    let full = body.len() * BYTES_PER_BODY_BYTE;
    admission
        .grow(charge, full.saturating_sub(charged))
        .map_err(BodyError::Admission)?;
    Ok(body)
}

/// One OTLP/HTTP export: the shared path of the three signals.
async fn export<Req>(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    signal: Signal,
    convert: fn(&IngestService, Req) -> Converted,
    respond: fn(Outcome) -> Vec<u8>,
    respond_json: fn(Outcome) -> serde_json::Value,
) -> HttpResponse
where
    Req: prost::Message + Default + serde::de::DeserializeOwned,
{
    let ingest = &state.ingest;
    let refuse = |e: DecodeError, format: Option<Format>| {
        ingest.count_refused_request(signal, e.reason());
        otlp_error(&e, format)
    };
    let format = match Format::from_content_type(header(&req, "content-type")) {
        Ok(f) => f,
        Err(e) => return refuse(e, None),
    };
    let tenant = match state.auth.from_http(&req) {
        Ok(t) => t,
        Err(e) => return otlp_error(&e, Some(format)),
    };
    let mut charge = Admission::empty_charge();
    let body = match read_body(&req, payload, &state, &mut charge).await {
        Ok(b) => b,
        Err(e) => {
            ingest.count_refused_request(signal, e.reason());
            return otlp_error(e.as_service_error(), Some(format));
        }
    };
    let message: Req = match decode::decode_otlp(format, &body) {
        Ok(m) => m,
        Err(e) => return refuse(e, Some(format)),
    };
    let converted = convert(ingest, message);
    match ingest.ingest(tenant, signal, converted).await {
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
        Signal::Spans,
        |_, m| otlp::spans(m),
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
        Signal::Logs,
        |ingest, m| otlp::logs(m, ingest.extractor()),
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
        Signal::Metrics,
        |_, m| otlp::metrics(m),
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
    let body = match read_body(&req, payload, &state, &mut charge).await {
        Ok(b) => b,
        Err(e) => {
            ingest.count_refused_request(Signal::Logs, e.reason());
            return super::errors::json_service_error(e.as_service_error());
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
