//! One error-code vocabulary for every layer. Each layer has its own error enum and says which
//! code each variant is; `api::errors` is the one place that turns a code into an HTTP or gRPC
//! status.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed or names something invalid (HTTP 400, INVALID_ARGUMENT).
    InvalidArgument,
    /// The body is over a size limit (HTTP 413, RESOURCE_EXHAUSTED).
    PayloadTooLarge,
    /// A content type weft does not speak (HTTP 415, INVALID_ARGUMENT).
    UnsupportedMediaType,
    /// No credentials, or credentials weft does not know (HTTP 401, UNAUTHENTICATED).
    Unauthenticated,
    /// Valid credentials for something else (HTTP 403, PERMISSION_DENIED).
    PermissionDenied,
    /// Nothing matches (HTTP 404, NOT_FOUND).
    NotFound,
    /// The query's whole range lies before what retention keeps (HTTP 410, OUT_OF_RANGE): the
    /// data was deleted, which is not the same as none having been sent.
    PastRetention,
    /// A valid query that would cost more than a bound allows (HTTP 422, RESOURCE_EXHAUSTED);
    /// the message names the bound and how to narrow the query.
    TooCostly,
    /// weft is at its in-flight bound; retry later (HTTP 429, UNAVAILABLE with RetryInfo).
    Overloaded,
    /// The tenant is over its ingestion rate; retry later (HTTP 429, RESOURCE_EXHAUSTED with
    /// RetryInfo).
    RateLimited,
    /// The client did not send its request in time (HTTP 408, DEADLINE_EXCEEDED).
    Timeout,
    /// Temporarily unable to serve; retrying later can work (HTTP 503, UNAVAILABLE).
    Unavailable,
    /// A bug or an unexpected failure inside weft (HTTP 500, INTERNAL).
    Internal,
}

/// Implemented by every layer's error so the API can map it without knowing the layer.
pub trait ServiceError: std::error::Error {
    fn code(&self) -> ErrorCode;

    /// The request parameter the error is about, when it is about one.
    fn param(&self) -> Option<&str> {
        None
    }

    /// When a retry can succeed, how long to wait first.
    fn retry_after(&self) -> Option<Duration> {
        match self.code() {
            ErrorCode::Overloaded | ErrorCode::RateLimited | ErrorCode::Unavailable => {
                Some(Duration::from_secs(1))
            }
            _ => None,
        }
    }
}
