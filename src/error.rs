//! One error-code vocabulary for every layer. Each layer has its own error enum and says which
//! code each variant is; `api::errors` is the one place that turns a code into an HTTP or gRPC
//! status.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed or names something invalid (HTTP 400, INVALID_ARGUMENT).
    InvalidArgument,
    /// The body is over a size limit (HTTP 413, INVALID_ARGUMENT / RESOURCE_EXHAUSTED).
    PayloadTooLarge,
    /// A content type weft does not speak (HTTP 415, INVALID_ARGUMENT).
    UnsupportedMediaType,
    /// Nothing matches (HTTP 404, NOT_FOUND).
    NotFound,
    /// Temporarily unable to serve; retrying later can work (HTTP 503, UNAVAILABLE).
    Unavailable,
    /// A bug or an unexpected failure inside weft (HTTP 500, INTERNAL).
    Internal,
}

/// Implemented by every layer's error so the API can map it without knowing the layer.
pub trait ServiceError: std::error::Error {
    fn code(&self) -> ErrorCode;
}
