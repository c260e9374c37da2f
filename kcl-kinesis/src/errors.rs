//! SDK errors as `kcl_core::Error`, so that [`kcl_core::Error::is_transient`] tells the worker
//! which ones to retry.

use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Maps the failure of SDK call `operation`.
pub(crate) fn from_sdk<E>(
    operation: &'static str,
    error: SdkError<E, HttpResponse>,
) -> kcl_core::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code();
            let message = format!(
                "{operation}: {}: {}",
                code.unwrap_or("HTTP error"),
                service.err().message().unwrap_or("(no message)")
            );
            from_code(code, status, message)
        }
        // A request the client could not build or send: sending it again will not help.
        SdkError::ConstructionFailure(_) => kcl_core::Error::invalid(
            "request",
            format!("{operation}: {}", DisplayErrorContext(&error)),
        ),
        SdkError::DispatchFailure(failure) if failure.is_user() => kcl_core::Error::invalid(
            "request",
            format!("{operation}: {}", DisplayErrorContext(&error)),
        ),
        // Timeouts, connection failures, unreadable responses: the service may answer later.
        _ => kcl_core::Error::Unavailable {
            message: format!("{operation}: {}", DisplayErrorContext(&error)),
        },
    }
}

/// Maps a Kinesis error type (`__type`) and HTTP status.
pub(crate) fn from_code(code: Option<&str>, status: u16, message: String) -> kcl_core::Error {
    match code {
        Some("ExpiredIteratorException") => kcl_core::Error::ExpiredIterator { message },
        Some(
            "ProvisionedThroughputExceededException"
            | "LimitExceededException"
            | "KMSThrottlingException"
            | "ThrottlingException"
            | "RequestLimitExceeded",
        ) => kcl_core::Error::Throttled { message },
        Some("ResourceNotFoundException") => kcl_core::Error::NotFound {
            kind: "stream or shard",
            name: message,
        },
        // To a read, a stream that is not ACTIVE: being created or updated, it soon will be;
        // being deleted, it will soon be not found.
        Some("ResourceInUseException") => kcl_core::Error::Unavailable { message },
        Some("InvalidArgumentException" | "ValidationException" | "SerializationException") => {
            kcl_core::Error::invalid("request", message)
        }
        Some(
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "MissingAuthenticationTokenException"
            | "ExpiredTokenException",
        ) => kcl_core::Error::invalid("credentials", message),
        _ if status >= 500 || status == 429 => kcl_core::Error::Unavailable { message },
        Some("InternalFailureException" | "InternalFailure" | "ServiceUnavailable") => {
            kcl_core::Error::Unavailable { message }
        }
        _ => kcl_core::Error::invalid("request", message),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_kinesis::error::ConnectorError;
    use aws_sdk_kinesis::operation::get_records::GetRecordsError;

    use super::*;

    #[test]
    fn throttling_expiry_and_outages_are_transient() {
        for (code, status) in [
            (Some("ProvisionedThroughputExceededException"), 400),
            (Some("LimitExceededException"), 400),
            (Some("ExpiredIteratorException"), 400),
            (Some("InternalFailureException"), 500),
            (None, 503),
            // A stream not ACTIVE yet (being created or updated) answers reads this way.
            (Some("ResourceInUseException"), 400),
        ] {
            assert!(
                from_code(code, status, String::new()).is_transient(),
                "{code:?} {status}"
            );
        }
    }

    #[test]
    fn decisions_are_not_transient() {
        for code in [
            "ResourceNotFoundException",
            "InvalidArgumentException",
            "ValidationException",
            "AccessDeniedException",
        ] {
            assert!(
                !from_code(Some(code), 400, String::new()).is_transient(),
                "{code}"
            );
        }
        assert!(matches!(
            from_code(Some("ExpiredIteratorException"), 400, String::new()),
            kcl_core::Error::ExpiredIterator { .. }
        ));
    }

    #[test]
    fn connection_failures_are_transient_and_requests_that_cannot_be_sent_are_not() {
        let failure = |error: ConnectorError| {
            from_sdk(
                "GetRecords",
                SdkError::<GetRecordsError, HttpResponse>::dispatch_failure(error),
            )
        };
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(failure(ConnectorError::io(refused.into())).is_transient());
        assert!(failure(ConnectorError::timeout("no answer".into())).is_transient());
        let unsendable = failure(ConnectorError::user("not an HTTP request".into()));
        assert!(
            matches!(
                unsendable,
                kcl_core::Error::InvalidArgument {
                    field: "request",
                    ..
                }
            ),
            "{unsendable}"
        );
    }
}
