//! Per-shard record logs: where a shard's records are kept, in memory or in segment files.

mod disk;
mod frame;
mod memory;
mod recovery;
mod segment;

use std::time::SystemTime;

use kcl_core::Record;

use crate::Error;
use crate::sequence::Position;

pub(crate) use disk::{DiskLog, DiskLogOptions};
pub(crate) use memory::MemoryLog;

/// An append-only log of one shard's records, addressed by offset (0, 1, 2, ... in append
/// order). The shard serialises access; a log is never used from two threads at once.
///
/// Each record is numbered in a generation as well (see [`crate::sequence`]): a durable log
/// begins a new one when it is first written after being opened, so that offsets a machine crash
/// handed out again never get the numbers they had. Positions (generation, offset) increase
/// along the log.
pub(crate) trait ShardLog: Send {
    /// The offset the next appended record gets: the end of the records the log shows. (A
    /// durable log poisoned by a failed fsync shows only what an fsync covered, and takes no
    /// more appends.)
    fn next_offset(&self) -> u64;

    /// The offset of the oldest retained record (equal to `next_offset` when nothing is
    /// retained).
    fn first_offset(&self) -> u64;

    /// The generation the next appended records are numbered in. The first call after a durable
    /// log was opened begins a new one, durably, before it returns.
    fn writing_generation(&mut self) -> Result<u32, Error>;

    /// Appends `records`, which get offsets `next_offset()..` in order (their sequence numbers
    /// already encode those offsets and [`ShardLog::writing_generation`]). Before this returns the records are handed to the OS, so
    /// a crash of the process keeps them; [`ShardLog::sync`] makes them survive a machine crash.
    fn append(&mut self, records: &[Record]) -> Result<(), Error>;

    /// Up to `max_records` records starting at offset `from`, where
    /// `first_offset() <= from <= next_offset()`. Stops once the records' data reaches
    /// `max_bytes`, but returns at least one record when one is available.
    fn read(
        &mut self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, Error>;

    /// The generation of the record at `offset`, between `first_offset()` and `next_offset()`
    /// (at `next_offset()`, the active segment's: the next record's once writing has begun).
    fn generation_at(&self, offset: u64) -> u32;

    /// Whether a record may ever have been numbered `position` by this log: a position before
    /// the next record's, or, while a durable log has not been written since it was opened, any
    /// position in its newest generation, because a crash may have cut off what it numbered.
    fn was_issued(&self, position: Position) -> bool;

    /// The offset of the first record, retained or still to come, whose position is at or after
    /// `position`; `next_offset()` when no retained record is.
    fn seek(&self, position: Position) -> u64;

    /// The offset of the first retained record that arrived at or after `time`
    /// (`next_offset()` when there is none).
    fn offset_at_time(&mut self, time: SystemTime) -> Result<u64, Error>;

    /// When the newest record arrived, `None` for a log that never held one.
    fn last_arrival(&self) -> Option<SystemTime>;

    /// Drops records that arrived before `cutoff`. A log may keep some older records (the disk
    /// log deletes whole segments only) but never drops a newer one.
    fn trim_before(&mut self, cutoff: SystemTime) -> Result<(), Error>;

    /// Makes every appended record durable (fsync). A no-op in memory. A failure poisons a
    /// durable log for good ([`Error::LogPoisoned`]): it is not retried, because a later fsync
    /// may succeed without the pages the failed one lost.
    fn sync(&mut self) -> Result<(), Error>;
}
