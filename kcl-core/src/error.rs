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
    /// A fenced lease operation (renew, checkpoint, release, handoff) was refused because the
    /// lease is no longer held with the owner and epoch presented: another worker took it, or it
    /// was released. Nothing was written. The caller must stop processing the shard.
    #[error("lease lost on {lease}: {message}")]
    LeaseLost {
        /// The lease, as `stream/shard`.
        lease: String,
        /// Who holds it now, at which epoch, and what was presented.
        message: String,
    },
    /// A conditional lease write found the lease in another state than the caller assumed (its
    /// epoch moved on, it is held and not expired, no handoff was requested). Nothing was
    /// written; re-read the lease before deciding again.
    #[error("lease conflict on {lease}: {message}")]
    LeaseConflict {
        /// The lease, as `stream/shard`.
        lease: String,
        /// Which precondition failed.
        message: String,
    },
    /// A checkpoint would move a lease's position backwards (below the current sequence
    /// number, or anything after `SHARD_END`). Nothing was written.
    #[error("checkpoint on {lease} would move backwards from {current} to {attempted}")]
    CheckpointBackwards {
        /// The lease, as `stream/shard`.
        lease: String,
        /// The checkpoint stored now.
        current: String,
        /// The checkpoint that was refused.
        attempted: String,
    },
    /// The backend failed in a way retrying will not fix (a schema that does not match, a row
    /// that does not decode, a permission the database refuses).
    #[error("storage failure: {message}")]
    Storage {
        /// What failed, naming the backend.
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
