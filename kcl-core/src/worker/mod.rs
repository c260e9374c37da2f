//! The worker: takes shard leases, runs the application's [`RecordProcessor`] over each shard,
//! checkpoints fenced on the lease, balances shards across workers and follows resharding
//! parent before child.
//!
//! Each worker runs one coordinating task (taking, balancing, shard sync), one renewal task
//! (so slow processing never costs a lease) and one consumer task per held lease, which reads
//! ahead within bounds and delivers batches in order.

mod checkpoint_writer;
mod checkpointer;
mod closure_processor;
mod config;
mod context;
mod coordinator;
mod lease_renewer;
mod lease_taker;
mod liveness;
mod metrics;
mod prefetcher;
mod processor;
mod shard_consumer;
mod shard_sync;

pub use checkpointer::{Checkpointer, PreparedCheckpoint};
pub use closure_processor::process_with;
pub use config::{InitialPosition, ProcessorErrorPolicy, WorkerConfig};
pub use coordinator::{Worker, WorkerBuilder, WorkerHandle};
pub use metrics::MetricsSnapshot;
pub use processor::{
    InitializeInput, ProcessRecordsInput, ProcessorError, RecordProcessor, RecordProcessorFactory,
    ShardInfo,
};
