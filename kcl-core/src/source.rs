//! The seam the worker reads streams through.

use async_trait::async_trait;

use crate::{ChildShard, Error, Record, ShardDescription, ShardId, StartingPosition, StreamName};

/// A stream service the worker can read: the in-process engine, a Kinesis-compatible server, or
/// Kinesis itself.
#[async_trait]
pub trait StreamSource: Send + Sync {
    /// Every shard of `stream` still within retention, open and closed, with lineage, ordered
    /// by shard id.
    async fn list_shards(&self, stream: &StreamName) -> Result<Vec<ShardDescription>, Error>;

    /// Opens a reader on one shard at `position`.
    async fn open_reader(
        &self,
        stream: &StreamName,
        shard: &ShardId,
        position: StartingPosition,
    ) -> Result<Box<dyn ShardReader>, Error>;
}

/// Reads one shard in order.
#[async_trait]
pub trait ShardReader: Send {
    /// The next records, at most `max_records` of them.
    ///
    /// On an open shard with nothing new, a source that can wait for data does so for a bounded
    /// time and may then return an empty batch. At the end of a closed shard the batch carries
    /// the child shards, and every later call returns the same end.
    async fn next_batch(&mut self, max_records: usize) -> Result<ReadBatch, Error>;
}

/// What one read returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadBatch {
    /// Records in shard order.
    pub records: Vec<Record>,
    /// How far the reader is behind the newest record of the shard, in milliseconds (0 when
    /// caught up).
    pub millis_behind_latest: u64,
    /// `Some` once the reader has reached the end of a closed shard: the shards that continue
    /// it.
    pub child_shards: Option<Vec<ChildShard>>,
}

impl ReadBatch {
    /// True when the reader reached the end of a closed shard.
    pub fn is_shard_end(&self) -> bool {
        self.child_shards.is_some()
    }
}
