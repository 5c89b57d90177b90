//! The one place where error codes become HTTP and gRPC statuses, and where error bodies are
//! shaped: `google.rpc.Status` for OTLP endpoints (in the request's encoding), a small JSON
//! object for the query API. Retryable errors carry `Retry-After` (HTTP) or `RetryInfo` (gRPC),
//! as the OTLP spec asks.

use crate::error::{ErrorCode, ServiceError};
use crate::ingest::decode::Format;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use std::time::Duration;
use tonic_types::{ErrorDetails, StatusExt};

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
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::PastRetention => StatusCode::GONE,
        ErrorCode::TooCostly => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Timeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::Overloaded | ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub fn grpc_code(code: ErrorCode) -> tonic::Code {
    match code {
        ErrorCode::InvalidArgument | ErrorCode::UnsupportedMediaType => {
            tonic::Code::InvalidArgument
        }
        ErrorCode::PayloadTooLarge | ErrorCode::RateLimited | ErrorCode::TooCostly => {
            tonic::Code::ResourceExhausted
        }
        ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
        ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
        ErrorCode::NotFound => tonic::Code::NotFound,
        ErrorCode::PastRetention => tonic::Code::OutOfRange,
        ErrorCode::Timeout => tonic::Code::DeadlineExceeded,
        ErrorCode::Overloaded | ErrorCode::Unavailable => tonic::Code::Unavailable,
        ErrorCode::Internal => tonic::Code::Internal,
    }
}

fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArgument => "invalid_argument",
        ErrorCode::PayloadTooLarge => "payload_too_large",
        ErrorCode::UnsupportedMediaType => "unsupported_media_type",
        ErrorCode::Unauthenticated => "unauthenticated",
        ErrorCode::PermissionDenied => "permission_denied",
        ErrorCode::NotFound => "not_found",
        ErrorCode::PastRetention => "past_retention",
        ErrorCode::TooCostly => "too_costly",
        ErrorCode::Timeout => "timeout",
        ErrorCode::Overloaded => "overloaded",
        ErrorCode::RateLimited => "rate_limited",
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::Internal => "internal",
    }
}

fn builder(code: ErrorCode, retry_after: Option<Duration>) -> HttpResponseBuilder {
    let mut b = HttpResponse::build(http_status(code));
    if let Some(wait) = retry_after {
        b.insert_header(("Retry-After", wait.as_secs().max(1).to_string()));
    }
    if code == ErrorCode::Unauthenticated {
        b.insert_header(("WWW-Authenticate", "Bearer"));
    }
    b
}

/// An OTLP error reply: `google.rpc.Status` in the request's encoding (JSON when the request's
/// own content type was not understood).
pub fn otlp_error(e: &dyn ServiceError, format: Option<Format>) -> HttpResponse {
    let status = RpcStatus {
        code: grpc_code(e.code()) as i32,
        message: e.to_string(),
    };
    let mut b = builder(e.code(), e.retry_after());
    match format {
        Some(Format::Protobuf) => b
            .content_type(Format::Protobuf.content_type())
            .body(prost::Message::encode_to_vec(&status)),
        _ => b.json(serde_json::json!({"code": status.code, "message": status.message})),
    }
}

/// The body of a query API error.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(serde::Serialize)]
struct ErrorDetail<'a> {
    code: &'static str,
    message: &'a str,
    /// The request parameter at fault, when the error is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    param: Option<&'a str>,
}

/// A query API error: `{"error": {"code": "...", "message": "...", "param": "..."}}`.
pub fn json_error(code: ErrorCode, message: &str) -> HttpResponse {
    ApiError::new(code, message).error_response()
}

pub fn json_service_error(e: &dyn ServiceError) -> HttpResponse {
    ApiError::from_service(e).error_response()
}

/// A query API handler's error, from any layer's: handlers return
/// `Result<HttpResponse, ApiError>` and use `?`. The status follows the error's code, never
/// its text.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    param: Option<String>,
    retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, message)
    }

    pub fn from_service(e: &dyn ServiceError) -> ApiError {
        ApiError {
            code: e.code(),
            message: e.to_string(),
            param: e.param().map(str::to_string),
            retry_after: e.retry_after(),
        }
    }
}

impl<E: ServiceError> From<E> for ApiError {
    fn from(e: E) -> ApiError {
        ApiError::from_service(&e)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        http_status(self.code)
    }

    fn error_response(&self) -> HttpResponse {
        builder(self.code, self.retry_after).json(ErrorBody {
            error: ErrorDetail {
                code: code_name(self.code),
                message: &self.message,
                param: self.param.as_deref(),
            },
        })
    }
}

pub fn grpc_status(e: &dyn ServiceError) -> tonic::Status {
    let code = grpc_code(e.code());
    match e.retry_after() {
        Some(wait) => tonic::Status::with_error_details(
            code,
            e.to_string(),
            ErrorDetails::with_retry_info(Some(wait)),
        ),
        None => tonic::Status::new(code, e.to_string()),
    }
}
