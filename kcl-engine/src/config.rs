//! How an engine is set up: where records live, how durable writes are, which limits apply.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::clock::{Clock, SystemClock};
use crate::file_sync::{FileSync, OsFileSync};

/// Where the engine keeps records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// In memory only: nothing survives the process. For tests and throwaway runs.
    InMemory,
    /// Per-shard segment files and stream metadata under this directory.
    Directory(PathBuf),
}

/// When appended records are forced to disk (fsync). Every policy hands records to the operating
/// system before acknowledging them, so a crash of the engine's process loses nothing; the
/// policies differ in what a crash of the machine can lose.
///
/// Under every policy readers see a record as soon as it is acknowledged, and a sequence number
/// never names two records: after a machine crash cut off records that were already read, the
/// records written next get higher numbers than any issued before (a new generation of the
/// shard's log), and a reader positioned at a lost number continues with them. A failed fsync
/// is final for the shard: it shows only what an fsync covered and refuses writes with
/// [`Error::LogPoisoned`](crate::Error::LogPoisoned) until the engine is reopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Never fsync (except when a shard closes or a segment is sealed); the operating system
    /// writes back when it likes, and a machine crash may lose any acknowledged record written
    /// since.
    Never,
    /// Group commit: fsync every shard written to at this interval. A machine crash loses at
    /// most this much of acknowledged writes.
    Interval(Duration),
    /// Fsync before acknowledging every write. A machine crash loses no acknowledged record.
    Always,
}

/// Per-shard throughput limits, as Kinesis provisions a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThroughputLimits {
    /// Bytes (data plus partition key) written per second. Kinesis: 1 MiB.
    pub write_bytes_per_sec: u64,
    /// Records written per second. Kinesis: 1,000.
    pub write_records_per_sec: u64,
    /// Bytes read per second. Kinesis: 2 MiB.
    pub read_bytes_per_sec: u64,
    /// Read calls per second. Kinesis: 5.
    pub reads_per_sec: u64,
}

impl ThroughputLimits {
    /// The limits of a provisioned Kinesis shard.
    pub const KINESIS: ThroughputLimits = ThroughputLimits {
        write_bytes_per_sec: 1024 * 1024,
        write_records_per_sec: 1000,
        read_bytes_per_sec: 2 * 1024 * 1024,
        reads_per_sec: 5,
    };
}

/// The engine's configuration. Start from [`EngineConfig::in_memory`] or
/// [`EngineConfig::durable`] and adjust with the setters.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where records live. No default: choose with the constructor.
    pub storage: Storage,
    /// When writes are fsynced. Defaults to group commit every 10 ms.
    pub durability: Durability,
    /// Size at which a shard's segment file is sealed and a new one started. Defaults to
    /// 64 MiB; retention deletes whole segments.
    pub segment_bytes: u64,
    /// Per-shard throughput limits; `None` (the default) means unlimited.
    pub throughput_limits: Option<ThroughputLimits>,
    /// How long an in-process reader waits on an empty open shard for a record before it
    /// returns an empty batch. Defaults to 1 s.
    pub read_wait: Duration,
    /// How often retention is enforced in the background. Defaults to 60 s.
    pub retention_check_interval: Duration,
    /// The clock for arrival times and retention. Defaults to the system clock.
    pub clock: Arc<dyn Clock>,
    /// How the shard logs fsync. Defaults to the operating system's ([`OsFileSync`]).
    pub file_sync: Arc<dyn FileSync>,
}

impl EngineConfig {
    /// An engine that keeps everything in memory.
    pub fn in_memory() -> Self {
        Self::with_storage(Storage::InMemory)
    }

    /// An engine that keeps its data under `data_dir`, created if absent.
    pub fn durable(data_dir: impl Into<PathBuf>) -> Self {
        Self::with_storage(Storage::Directory(data_dir.into()))
    }

    fn with_storage(storage: Storage) -> Self {
        EngineConfig {
            storage,
            durability: Durability::Interval(Duration::from_millis(10)),
            segment_bytes: 64 * 1024 * 1024,
            throughput_limits: None,
            read_wait: Duration::from_secs(1),
            retention_check_interval: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
            file_sync: Arc::new(OsFileSync),
        }
    }

    /// Sets the durability policy.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the segment size.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Enables per-shard throughput limits.
    pub fn throughput_limits(mut self, limits: ThroughputLimits) -> Self {
        self.throughput_limits = Some(limits);
        self
    }

    /// Sets how long readers wait for new records.
    pub fn read_wait(mut self, wait: Duration) -> Self {
        self.read_wait = wait;
        self
    }

    /// Sets how often retention is enforced.
    pub fn retention_check_interval(mut self, interval: Duration) -> Self {
        self.retention_check_interval = interval;
        self
    }

    /// Sets the clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets how the shard logs fsync: a [`SimulatedDisk`](crate::SimulatedDisk) in tests.
    pub fn file_sync(mut self, file_sync: Arc<dyn FileSync>) -> Self {
        self.file_sync = file_sync;
        self
    }

    /// Checks the values, naming the first bad field.
    pub fn validate(&self) -> Result<(), Error> {
        if let Durability::Interval(interval) = self.durability
            && interval.is_zero()
        {
            return Err(Error::invalid(
                "durability",
                "the group-commit interval must be above zero (use Durability::Always)",
            ));
        }
        if self.segment_bytes < 4096 {
            return Err(Error::invalid("segment_bytes", "must be at least 4096"));
        }
        if self.read_wait > Duration::from_secs(60) {
            return Err(Error::invalid("read_wait", "must be at most 60 s"));
        }
        if self.retention_check_interval.is_zero() {
            return Err(Error::invalid(
                "retention_check_interval",
                "must be above zero",
            ));
        }
        if let Some(limits) = self.throughput_limits {
            let rates = [
                limits.write_bytes_per_sec,
                limits.write_records_per_sec,
                limits.read_bytes_per_sec,
                limits.reads_per_sec,
            ];
            if rates.contains(&0) {
                return Err(Error::invalid(
                    "throughput_limits",
                    "every rate must be above zero",
                ));
            }
        }
        Ok(())
    }
}
