//! The one error type of `kcl-engine`.

use std::path::PathBuf;

/// What the engine refused or failed to do.
///
/// Every variant maps to the Kinesis error type a client would see
/// ([`Error::kinesis_error_type`]); validation failures name the field and the limit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request value broke a rule (Kinesis `InvalidArgumentException` /
    /// `ValidationException`).
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        /// The offending field, as Kinesis names it (`PartitionKey`, `Data`, `Records`, ...).
        field: &'static str,
        /// What is wrong, naming the limit.
        message: String,
    },
    /// No stream by that name.
    #[error("stream {stream} not found")]
    StreamNotFound {
        /// The stream asked for.
        stream: String,
    },
    /// No shard by that id in the stream (or it expired past retention).
    #[error("shard {shard} not found in stream {stream}")]
    ShardNotFound {
        /// The stream.
        stream: String,
        /// The shard asked for.
        shard: String,
    },
    /// The stream exists already, or is in a state that forbids the operation.
    #[error("resource in use: {message}")]
    ResourceInUse {
        /// What is in use.
        message: String,
    },
    /// A per-shard throughput limit was exceeded (only when limits are enabled).
    #[error("throughput exceeded on {shard} of {stream}: {limit}")]
    ThroughputExceeded {
        /// The stream.
        stream: String,
        /// The shard.
        shard: String,
        /// Which limit, e.g. `1000 records/s written`.
        limit: &'static str,
    },
    /// A limit on the number of things (streams, shards) was reached.
    #[error("limit exceeded: {message}")]
    LimitExceeded {
        /// Which limit.
        message: String,
    },
    /// Reading or writing the data directory failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file in the data directory holds something the engine did not write, or lacks what
    /// it wrote and made durable.
    #[error("corrupt data in {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, naming the shard when it is a shard's log.
        reason: String,
    },
    /// A shard's log failed to make its writes durable (an fsync failed) or to undo a failed
    /// write, so nothing is known about what it wrote since its last successful fsync. It shows
    /// none of that and refuses every write until the engine is reopened, which recovers from
    /// what the disk kept. Retrying does not help; reopening may.
    #[error("shard {shard} refuses writes until the engine is reopened: {reason} ({path})")]
    LogPoisoned {
        /// The shard.
        shard: String,
        /// The file or directory whose fsync or write failed.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

impl Error {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An equal error, for answering several records of a batch with one failure.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::InvalidArgument { field, message } => Error::InvalidArgument {
                field,
                message: message.clone(),
            },
            Error::StreamNotFound { stream } => Error::StreamNotFound {
                stream: stream.clone(),
            },
            Error::ShardNotFound { stream, shard } => Error::ShardNotFound {
                stream: stream.clone(),
                shard: shard.clone(),
            },
            Error::ResourceInUse { message } => Error::ResourceInUse {
                message: message.clone(),
            },
            Error::ThroughputExceeded {
                stream,
                shard,
                limit,
            } => Error::ThroughputExceeded {
                stream: stream.clone(),
                shard: shard.clone(),
                limit,
            },
            Error::LimitExceeded { message } => Error::LimitExceeded {
                message: message.clone(),
            },
            Error::Io { path, source } => Error::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::Corrupt { path, reason } => Error::Corrupt {
                path: path.clone(),
                reason: reason.clone(),
            },
            Error::LogPoisoned {
                shard,
                path,
                reason,
            } => Error::LogPoisoned {
                shard: shard.clone(),
                path: path.clone(),
                reason: reason.clone(),
            },
        }
    }

    /// The Kinesis error type (`__type`) a client receives for this error.
    pub fn kinesis_error_type(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "InvalidArgumentException",
            Error::StreamNotFound { .. } | Error::ShardNotFound { .. } => {
                "ResourceNotFoundException"
            }
            Error::ResourceInUse { .. } => "ResourceInUseException",
            Error::ThroughputExceeded { .. } => "ProvisionedThroughputExceededException",
            Error::LimitExceeded { .. } => "LimitExceededException",
            Error::Io { .. } | Error::Corrupt { .. } | Error::LogPoisoned { .. } => {
                "InternalFailureException"
            }
        }
    }
}

impl From<kcl_core::Error> for Error {
    fn from(error: kcl_core::Error) -> Self {
        match error {
            kcl_core::Error::InvalidArgument { field, message } => {
                Error::InvalidArgument { field, message }
            }
            other => Error::invalid("request", other.to_string()),
        }
    }
}

impl From<Error> for kcl_core::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument { field, message } => {
                kcl_core::Error::InvalidArgument { field, message }
            }
            Error::StreamNotFound { stream } => kcl_core::Error::not_found("stream", stream),
            Error::ShardNotFound { stream, shard } => {
                kcl_core::Error::not_found("shard", format!("{stream}/{shard}"))
            }
            Error::ResourceInUse { message } => kcl_core::Error::ResourceInUse { message },
            error @ Error::ThroughputExceeded { .. } => kcl_core::Error::Throttled {
                message: error.to_string(),
            },
            // Damaged or unusable storage stays so however often it is retried.
            error @ (Error::Corrupt { .. } | Error::LogPoisoned { .. }) => {
                kcl_core::Error::Storage {
                    message: error.to_string(),
                }
            }
            error @ (Error::LimitExceeded { .. } | Error::Io { .. }) => {
                kcl_core::Error::Unavailable {
                    message: error.to_string(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_can_tell_what_retrying_fixes_from_what_it_does_not() {
        let storage = [
            Error::Corrupt {
                path: "segment".into(),
                reason: "damaged frame".into(),
            },
            Error::LogPoisoned {
                shard: "shardId-000000000000".into(),
                path: "segment".into(),
                reason: "fsync failed".into(),
            },
        ];
        for error in storage {
            let core = kcl_core::Error::from(error);
            assert!(matches!(core, kcl_core::Error::Storage { .. }), "{core:?}");
            assert!(!core.is_transient());
        }
        let io = Error::io("segment", std::io::Error::other("EMFILE"));
        assert!(kcl_core::Error::from(io).is_transient());
        let gone = Error::ShardNotFound {
            stream: "s".into(),
            shard: "shardId-000000000000".into(),
        };
        assert_eq!(gone.kinesis_error_type(), "ResourceNotFoundException");
        assert!(matches!(
            kcl_core::Error::from(gone),
            kcl_core::Error::NotFound { kind: "shard", .. }
        ));
    }
}
