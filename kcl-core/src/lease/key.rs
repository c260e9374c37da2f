//! The key that names a lease: one lease per (stream, shard).

use std::fmt;

use crate::{ShardId, StreamName};

/// Names a lease: the shard `shard` of the stream `stream`.
///
/// Displayed as `stream/shard`, the form error messages use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseKey {
    /// The stream the shard belongs to.
    pub stream: StreamName,
    /// The shard the lease is for.
    pub shard: ShardId,
}

impl LeaseKey {
    /// The key of `shard` in `stream`.
    pub fn new(stream: StreamName, shard: ShardId) -> Self {
        LeaseKey { stream, shard }
    }
}

impl fmt::Display for LeaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.stream, self.shard)
    }
}
