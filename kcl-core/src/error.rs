//! The one error type of `kcl-core`.

/// What went wrong in the framework or in a stream source it reads through.
///
/// Errors fall in two families the worker treats differently: transient ones
/// ([`Error::is_transient`]: throttling, an unavailable backend, an expired iterator) are
/// retried with backoff; every other one is a decision (bad input, a missing resource) and is
/// never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value broke a rule; `field` names the value as Kinesis names it and `message` the
    /// rule, including the limit.
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        /// The offending field, e.g. `PartitionKey` or `StreamName`.
        field: &'static str,
        /// What is wrong with it, naming the limit that was broken.
        message: String,
    },
    /// A stream, shard or other resource does not exist.
    #[error("{kind} not found: {name}")]
    NotFound {
        /// What kind of thing was looked up: `stream`, `shard`, ...
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The resource exists but is in a state that forbids the operation (a stream that is
    /// being deleted, a stream name already taken).
    #[error("resource in use: {message}")]
    ResourceInUse {
        /// What is in use and why.
        message: String,
    },
    /// A per-shard throughput limit was exceeded; retry later.
    #[error("throughput exceeded: {message}")]
    Throttled {
        /// Which limit, on which shard.
        message: String,
    },
    /// A shard iterator or reader position is too old to use; reopen the reader.
    #[error("expired iterator: {message}")]
    ExpiredIterator {
        /// What expired.
        message: String,
    },
    /// The backend could not be reached or failed in a way that may succeed on retry.
    #[error("unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
    },
}

impl Error {
    /// Builds an [`Error::InvalidArgument`].
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field,
            message: message.into(),
        }
    }

    /// Builds an [`Error::NotFound`].
    pub fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Error::NotFound {
            kind,
            name: name.into(),
        }
    }

    /// True for errors that may go away on retry (throttling, an unreachable backend, an
    /// expired iterator); false for decisions that retrying cannot change.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Throttled { .. } | Error::Unavailable { .. } | Error::ExpiredIterator { .. }
        )
    }
}
