//! The one place where error codes become HTTP and gRPC statuses, and where error bodies are
//! shaped: `google.rpc.Status` for OTLP endpoints (in the request's encoding), a small JSON
//! object for the query API.

use crate::error::{ErrorCode, ServiceError};
use crate::ingest::decode::Format;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

/// `google.rpc.Status`, which OTLP/HTTP uses for error bodies (details are not used).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

pub fn http_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub fn grpc_code(code: ErrorCode) -> tonic::Code {
    match code {
        ErrorCode::InvalidArgument | ErrorCode::UnsupportedMediaType => {
            tonic::Code::InvalidArgument
        }
        ErrorCode::PayloadTooLarge => tonic::Code::ResourceExhausted,
        ErrorCode::NotFound => tonic::Code::NotFound,
        ErrorCode::Unavailable => tonic::Code::Unavailable,
        ErrorCode::Internal => tonic::Code::Internal,
    }
}

fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArgument => "invalid_argument",
        ErrorCode::PayloadTooLarge => "payload_too_large",
        ErrorCode::UnsupportedMediaType => "unsupported_media_type",
        ErrorCode::NotFound => "not_found",
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::Internal => "internal",
    }
}

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

fn with_retry_after(
    code: ErrorCode,
    mut b: actix_web::HttpResponseBuilder,
) -> actix_web::HttpResponseBuilder {
    if code == ErrorCode::Unavailable {
        b.insert_header(("Retry-After", RETRY_AFTER_SECS));
    }
    b
}

/// An OTLP error reply: `google.rpc.Status` in the request's encoding (JSON when the request's
/// own content type was not understood).
pub fn otlp_error(code: ErrorCode, message: &str, format: Option<Format>) -> HttpResponse {
    let status = RpcStatus {
        code: grpc_code(code) as i32,
        message: message.to_string(),
    };
    let mut b = with_retry_after(code, HttpResponse::build(http_status(code)));
    match format {
        Some(Format::Protobuf) => b
            .content_type(Format::Protobuf.content_type())
            .body(prost::Message::encode_to_vec(&status)),
        _ => b.json(serde_json::json!({"code": status.code, "message": status.message})),
    }
}

pub fn otlp_service_error(e: &dyn ServiceError, format: Option<Format>) -> HttpResponse {
    otlp_error(e.code(), &e.to_string(), format)
}

/// A query API error: `{"error": {"code": "...", "message": "..."}}`.
pub fn json_error(code: ErrorCode, message: &str) -> HttpResponse {
    with_retry_after(code, HttpResponse::build(http_status(code))).json(serde_json::json!({
        "error": {"code": code_name(code), "message": message}
    }))
}

pub fn json_service_error(e: &dyn ServiceError) -> HttpResponse {
    json_error(e.code(), &e.to_string())
}

pub fn grpc_status(e: &dyn ServiceError) -> tonic::Status {
    tonic::Status::new(grpc_code(e.code()), e.to_string())
}
