//! The kcl-rs local stream engine: Kinesis semantics on one machine, in memory or durable.
//!
//! Streams of shards; records routed by the MD5 of their partition key; readers at every
//! Kinesis starting position that wait for new records instead of polling; splits, merges and
//! uniform rescaling with lineage; retention; optional per-shard throughput limits; and per-shard
//! append-only segment files that survive a crash. The engine is a
//! [`StreamSource`](kcl_core::StreamSource), so the worker reads it in-process. With the `http`
//! feature, [`http::KinesisServer`] serves it over the Kinesis JSON API, so boto3, the AWS CLI,
//! the AWS SDKs and `kcl-kinesis` use it as they would Kinesis.
//!
//! ```
//! use kcl_core::StartingPosition;
//! use kcl_engine::{Engine, EngineConfig, PutRecordsEntry, StreamOptions};
//!
//! # fn main() -> Result<(), kcl_engine::Error> {
//! let engine = Engine::open(EngineConfig::in_memory())?;
//! engine.create_stream("readings", StreamOptions::with_shards(2))?;
//! let written = engine.put_record("readings", PutRecordsEntry::new("sensor-1", "21.5"))?;
//!
//! let mut reader = engine.open_reader(
//!     "readings",
//!     written.shard_id.as_str(),
//!     StartingPosition::TrimHorizon,
//! )?;
//! let batch = reader.read(100)?;
//! assert_eq!(batch.records[0].data, "21.5");
//! assert_eq!(batch.records[0].sequence_number, written.sequence_number);
//! # Ok(())
//! # }
//! ```

mod clock;
mod config;
mod engine;
mod error;
mod file_sync;
mod limits;
mod log;
mod maintenance;
mod metadata;
mod put;
mod reader;
mod resharding;
mod sequence;
mod shard;
mod shard_filter;
mod simulated_disk;
mod source;
mod stream;

#[cfg(feature = "http")]
pub mod http;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Durability, EngineConfig, Storage, ThroughputLimits};
pub use engine::Engine;
pub use error::Error;
pub use file_sync::{FileSync, OsFileSync};
pub use put::{MAX_BYTES_PER_PUT, MAX_RECORDS_PER_PUT, PutRecordOutput, PutRecordsEntry};
pub use reader::{EngineShardReader, MAX_READ_BYTES, MAX_READ_RECORDS};
pub use shard_filter::ShardFilter;
pub use simulated_disk::SimulatedDisk;
pub use stream::{
    DEFAULT_MAX_RECORD_SIZE_KIB, MAX_MAX_RECORD_SIZE_KIB, MAX_OPEN_SHARDS, MAX_RETENTION_HOURS,
    MIN_RETENTION_HOURS, StreamDescription, StreamOptions, StreamStatus, StreamSummary,
};
