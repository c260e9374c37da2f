//! The Kinesis JSON 1.1 protocol around an action: which action `X-Amz-Target` names, which
//! content types are spoken, and how answers and errors are written (status, headers, body).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::actions::{Action, Reply};
use super::error::ApiError;

/// The service prefix of `X-Amz-Target`.
const TARGET_PREFIX: &str = "Kinesis_20131202.";

/// The content type of requests and answers.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The action a request's `X-Amz-Target` names.
pub(crate) fn action(headers: &HeaderMap) -> Result<Action, ApiError> {
    let target = headers
        .get("x-amz-target")
        .ok_or_else(|| {
            ApiError::unknown_operation(format!(
                "missing X-Amz-Target header; expected {TARGET_PREFIX}<Action>"
            ))
        })?
        .to_str()
        .map_err(|_| ApiError::unknown_operation("X-Amz-Target is not ASCII text"))?;
    let name = target.strip_prefix(TARGET_PREFIX).ok_or_else(|| {
        ApiError::unknown_operation(format!(
            "X-Amz-Target {} does not start with {TARGET_PREFIX}",
            super::validate::describe_value(target)
        ))
    })?;
    Action::named(name).ok_or_else(|| {
        ApiError::unknown_operation(format!(
            "unknown operation {}",
            super::validate::describe_value(name)
        ))
    })
}

/// Refuses bodies this server cannot read. JSON is read whatever the declared type (clients
/// send `application/x-amz-json-1.1`, some `application/json`); CBOR, which the Java SDK sends
/// unless told otherwise, is refused with a message saying how to turn it off.
pub(crate) fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if content_type.contains("cbor") {
        return Err(ApiError::serialization(
            "CBOR requests are not supported; use JSON (for the AWS Java SDK and KCL, set \
             AWS_CBOR_DISABLE=true or -Dcom.amazonaws.sdk.disableCbor=true)",
        ));
    }
    Ok(())
}

/// The declared body length, if the request declares one.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse().ok())
}

/// Hands out `x-amzn-RequestId` values: a random prefix per server and a counter, in the
/// shape of a UUID.
#[derive(Debug)]
pub(crate) struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new(prefix: u64) -> Self {
        RequestIds {
            prefix,
            next: AtomicU64::new(0),
        }
    }

    pub(crate) fn next(&self) -> String {
        let count = self.next.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            self.prefix >> 32,
            (self.prefix >> 16) & 0xffff,
            self.prefix & 0xfff,
            (count >> 48) & 0xfff,
            count & 0xffff_ffff_ffff
        )
    }
}

/// The HTTP response for an action's outcome.
pub(crate) fn respond(request_id: &str, outcome: Result<Reply, ApiError>) -> Response {
    let (status, body, error_type) = match outcome {
        Ok(Some(value)) => (StatusCode::OK, value.to_string(), None),
        Ok(None) => (StatusCode::OK, String::new(), None),
        Err(error) => {
            if error.status.is_server_error() {
                tracing::error!(kind = error.kind, message = %error.message, "request failed");
            } else {
                tracing::debug!(kind = error.kind, message = %error.message, "request refused");
            }
            let body = json!({ "__type": error.kind, "message": error.message }).to_string();
            (error.status, body, Some(error.kind))
        }
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-RequestId", id);
    }
    if let Some(kind) = error_type {
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(kind));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert("x-amz-target", value);
        }
        headers
    }

    #[test]
    fn the_target_names_the_action() {
        assert_eq!(
            action(&target("Kinesis_20131202.PutRecords")),
            Ok(Action::PutRecords)
        );
        for bad in [
            "",
            "Kinesis_20131202.Nope",
            "DynamoDB_20120810.PutItem",
            "PutRecords",
        ] {
            assert_eq!(
                action(&target(bad)).map_err(|e| e.kind),
                Err("UnknownOperationException"),
                "{bad:?}"
            );
        }
        assert_eq!(
            action(&HeaderMap::new()).map_err(|e| e.kind),
            Err("UnknownOperationException")
        );
    }

    #[test]
    fn request_ids_differ() {
        let ids = RequestIds::new(0x0123_4567_89ab_cdef);
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36, "{a}");
    }
}
