//! Where a reader starts in a shard.

use std::time::SystemTime;

use crate::SequenceNumber;

/// Where a [`ShardReader`](crate::ShardReader) starts, as Kinesis's shard iterator types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartingPosition {
    /// The oldest record still retained.
    TrimHorizon,
    /// Just after the newest record: only records written from now on.
    Latest,
    /// At the record with this sequence number.
    AtSequence(SequenceNumber),
    /// Just after the record with this sequence number.
    AfterSequence(SequenceNumber),
    /// At the first record that arrived at or after this time (the trim horizon if older).
    AtTimestamp(SystemTime),
}
