//! The seam the worker reads streams through.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::{
    Checkpoint, ChildShard, Error, Record, ShardDescription, ShardId, StartingPosition, StreamName,
};

/// How far before its own clock's "now" a source that cannot name the newest record pins
/// `LATEST` (see [`StreamSource::pin_latest`]): the clock difference between this machine and
/// the stream service that it tolerates without skipping records. Records that arrived within
/// it before the pin are delivered too (at least once, never lost).
pub const LATEST_CLOCK_MARGIN: Duration = Duration::from_secs(5);

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

    /// Where `LATEST` is on `shard` now, as a checkpoint that names a fixed position: a lease
    /// created at `LATEST` keeps this, so that every owner (a new one after a crash, a reader
    /// reopened after an error) starts at the same place and nothing written in between is
    /// skipped.
    ///
    /// The default, for services that cannot name their newest record, is `AT_TIMESTAMP` of
    /// this machine's clock less [`LATEST_CLOCK_MARGIN`]. A source that knows its shards' newest
    /// record answers exactly: a checkpoint at it, or `TRIM_HORIZON` when none is retained.
    async fn pin_latest(&self, stream: &StreamName, shard: &ShardId) -> Result<Checkpoint, Error> {
        let _ = (stream, shard);
        let now = SystemTime::now();
        Ok(Checkpoint::AtTimestamp(
            now.checked_sub(LATEST_CLOCK_MARGIN).unwrap_or(now),
        ))
    }
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
