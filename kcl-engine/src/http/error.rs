//! The errors the API answers with: a Kinesis error type, an HTTP status and a message.

use axum::http::StatusCode;

/// An error as a Kinesis client receives it: `{"__type": kind, "message": message}` with the
/// status code and the `x-amzn-ErrorType` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }

    /// A value breaks a constraint of the API model (length, range, pattern, a missing member).
    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    /// The body is not JSON, or a member has the wrong JSON type.
    pub(crate) fn serialization(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "SerializationException", message)
    }

    /// A value is well formed but not acceptable here.
    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidArgumentException", message)
    }

    /// No such stream or shard.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            message,
        )
    }

    /// A missing or unknown `X-Amz-Target`, or a request that is no Kinesis call at all.
    pub(crate) fn unknown_operation(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            message,
        )
    }

    /// A shard iterator older than the iterator lifetime.
    pub(crate) fn expired_iterator(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ExpiredIteratorException", message)
    }

    /// A pagination token older than its lifetime.
    pub(crate) fn expired_next_token(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ExpiredNextTokenException",
            message,
        )
    }

    /// A body larger than the server accepts. The status says so (413); the type is the one a
    /// Kinesis client knows.
    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ValidationException",
            message,
        )
    }

    /// The request's body did not arrive in time. SDKs retry this type.
    pub(crate) fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeoutException",
            message,
        )
    }

    /// The server failed; the request may succeed when retried.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailureException",
            message,
        )
    }
}

impl From<crate::Error> for ApiError {
    fn from(error: crate::Error) -> Self {
        let kind = error.kinesis_error_type();
        let status = if kind == "InternalFailureException" {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, kind, error.to_string())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}
