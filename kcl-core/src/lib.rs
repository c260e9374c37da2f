//! kcl-rs: a consumer framework for sharded streams, the Kinesis Client Library done in Rust.
//!
//! This crate holds the vocabulary every other crate speaks: stream names, shard ids, sequence
//! numbers, hash key ranges, shard lineage, records and starting positions, and the
//! [`StreamSource`] / [`ShardReader`] seam through which the worker reads a stream.
//!
//! ```
//! use kcl_core::{HashKey, HashKeyRange, SequenceNumber, ShardId, StreamName};
//!
//! let stream = StreamName::new("sensor-readings")?;
//! let shard = ShardId::from_index(0);
//! // A partition key routes to the shard whose range holds its MD5 hash.
//! let two_shards = [HashKeyRange::uniform_slice(0, 2), HashKeyRange::uniform_slice(1, 2)];
//! let key = HashKey::of_partition_key("sensor-17");
//! assert_eq!(two_shards.iter().filter(|r| r.contains(key)).count(), 1);
//! // Sequence numbers compare as numbers, whatever their length.
//! assert!("9".parse::<SequenceNumber>()? < "10".parse()?);
//! # let _ = (stream, shard);
//! # Ok::<(), kcl_core::Error>(())
//! ```

mod error;
mod hash_key;
mod lease;
mod position;
mod record;
mod retry;
mod sequence_number;
mod shard;
mod shard_id;
mod source;
mod stream_name;
pub mod worker;

pub use error::Error;
pub use hash_key::{HashKey, HashKeyRange};
#[cfg(feature = "test-util")]
pub use lease::conformance as lease_store_conformance;
#[cfg(feature = "test-util")]
pub use lease::load as lease_store_load;
pub use lease::{
    Checkpoint, CheckpointUpdate, Fence, InMemoryLeaseStore, Lease, LeaseCensus, LeaseKey,
    LeaseRow, LeaseStore, LivenessHold, MAX_WORKER_ID_LEN, NewLease, OwnerTally, PendingCheckpoint,
    TakeMode, WorkerId, lease_duration_millis,
};
pub use lease::{FaultInjectingLeaseStore, InjectedFaults, LeaseStoreFault, LeaseStoreOp};
pub use position::StartingPosition;
pub use record::{MAX_PARTITION_KEY_CHARS, PartitionKey, Record};
pub use retry::{Backoff, retry_transient};
pub use sequence_number::SequenceNumber;
pub use shard::{ChildShard, ShardDescription};
pub use shard_id::ShardId;
pub use source::{LATEST_CLOCK_MARGIN, ReadBatch, ShardReader, StreamSource};
pub use stream_name::{MAX_STREAM_NAME_LEN, StreamName};
