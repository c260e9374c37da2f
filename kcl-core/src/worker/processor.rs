//! The application's side: a `RecordProcessor` per shard, made by a factory.

use async_trait::async_trait;

use crate::lease::{Checkpoint, PendingCheckpoint};
use crate::worker::Checkpointer;
use crate::{Record, ShardId, StreamName};

/// What a processor may fail with; the worker logs it and applies its
/// [`ProcessorErrorPolicy`](crate::ProcessorErrorPolicy).
pub type ProcessorError = Box<dyn std::error::Error + Send + Sync>;

/// The shard a processor is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// The stream.
    pub stream: StreamName,
    /// The shard.
    pub shard_id: ShardId,
    /// The shards it was split or merged from; all of them were processed to their end first.
    pub parent_shard_ids: Vec<ShardId>,
}

/// Where processing of a shard resumes, handed to [`RecordProcessor::initialize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitializeInput {
    /// The shard.
    pub shard: ShardInfo,
    /// The committed checkpoint: records up to it were processed (by this or another worker).
    pub checkpoint: Checkpoint,
    /// A prepared but uncommitted checkpoint, with the application state saved with it.
    pub pending_checkpoint: Option<PendingCheckpoint>,
}

/// One batch for [`RecordProcessor::process_records`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRecordsInput {
    /// Records in shard order; never empty.
    pub records: Vec<Record>,
    /// How far the batch is behind the newest record of the shard, in milliseconds.
    pub millis_behind_latest: u64,
}

/// The application's logic for one shard. The worker creates one per shard it takes (with a
/// [`RecordProcessorFactory`]) and calls it from one task, in this order: `initialize`, then
/// `process_records` for each batch in shard order, then exactly one of `shard_ended`,
/// `shutdown_requested` or `lease_lost`.
///
/// Delivery is at least once: after a crash or a lost lease, records after the last checkpoint
/// are delivered again (to this or another worker's processor).
#[async_trait]
pub trait RecordProcessor: Send {
    /// Called once before the first batch.
    async fn initialize(&mut self, input: InitializeInput) -> Result<(), ProcessorError> {
        let _ = input;
        Ok(())
    }

    /// Processes one batch. Checkpoint with `checkpointer` when the work is safely done. An error
    /// or a panic is confined to this shard and handled by the worker's
    /// [`ProcessorErrorPolicy`](crate::ProcessorErrorPolicy).
    async fn process_records(
        &mut self,
        input: &ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError>;

    /// Called when every record of a closed shard was delivered. The processor must checkpoint
    /// with [`Checkpointer::checkpoint`] (which records `SHARD_END`): the shard's children start
    /// only after it. A processor that does not is reported, and the children wait. The default
    /// checkpoints.
    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ProcessorError> {
        checkpointer.checkpoint().await?;
        Ok(())
    }

    /// Called when the worker gives the shard up gracefully (shutdown, or a handoff to another
    /// worker for balance). Checkpoint here so that the next owner does not repeat work. The
    /// default checkpoints the records processed since the last checkpoint: those of batches
    /// whose `process_records` returned `Ok` (never a batch that failed). A processor that
    /// buffers records and finishes them later must override it.
    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        if checkpointer.has_unchecked_records() {
            checkpointer.checkpoint().await?;
        }
        Ok(())
    }

    /// Called when another worker took the lease: the checkpointer no longer writes, and the
    /// records after the last checkpoint will be processed again by the new owner.
    async fn lease_lost(&mut self) {}
}

/// Makes a [`RecordProcessor`] for each shard a worker takes.
pub trait RecordProcessorFactory: Send + Sync {
    /// A processor for `shard`.
    fn create(&self, shard: &ShardInfo) -> Box<dyn RecordProcessor>;
}

impl<F> RecordProcessorFactory for F
where
    F: Fn(&ShardInfo) -> Box<dyn RecordProcessor> + Send + Sync,
{
    fn create(&self, shard: &ShardInfo) -> Box<dyn RecordProcessor> {
        self(shard)
    }
}
