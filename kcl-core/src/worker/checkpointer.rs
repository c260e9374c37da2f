//! Recording how far a shard is processed, fenced on the lease.

use crate::lease::{Checkpoint, CheckpointUpdate, Fence, LeaseKey, PendingCheckpoint};
use crate::worker::WorkerConfig;
use crate::worker::checkpoint_writer::CheckpointWriter;
use crate::{Backoff, Error, SequenceNumber, retry_transient};

/// Writes a shard's checkpoint for its processor.
///
/// Every write is fenced on the lease the worker holds (owner and epoch): once another worker
/// took the lease, every call answers [`Error::LeaseLost`] and nothing is written. Transient
/// store failures are retried with backoff for up to one lease duration.
///
/// The checkpointer knows which records were *processed* (their batch's `process_records`
/// returned `Ok`), not only delivered: outside `process_records` (in `shutdown_requested` or
/// `shard_ended`), [`checkpoint`](Self::checkpoint), [`prepare`](Self::prepare) and
/// [`has_unchecked_records`](Self::has_unchecked_records) cover processed records only, so a
/// batch that failed is never checkpointed by accident. Inside `process_records` they also
/// cover the batch being processed: the processor checkpoints when its work is done.
pub struct Checkpointer {
    writer: CheckpointWriter,
    key: LeaseKey,
    fence: Fence,
    config: WorkerConfig,
    backoff: Backoff,
    committed: Checkpoint,
    /// The last record handed to the processor, whether or not its batch succeeded.
    last_delivered: Option<SequenceNumber>,
    /// The last record of the batch `process_records` is working on, while it is.
    in_flight: Option<SequenceNumber>,
    /// The last record of the last batch whose processing returned `Ok`.
    processed: Option<SequenceNumber>,
    shard_end: bool,
    lost: bool,
}

/// A checkpoint recorded as pending by [`Checkpointer::prepare`], to commit with
/// [`Checkpointer::commit`] once the application's own side effects are done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedCheckpoint {
    checkpoint: Checkpoint,
}

impl PreparedCheckpoint {
    /// The checkpoint that committing will record.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
}

impl Checkpointer {
    pub(crate) fn new(
        writer: CheckpointWriter,
        key: LeaseKey,
        fence: Fence,
        config: WorkerConfig,
        backoff: Backoff,
        committed: Checkpoint,
    ) -> Self {
        Checkpointer {
            writer,
            key,
            fence,
            config,
            backoff,
            committed,
            last_delivered: None,
            in_flight: None,
            processed: None,
            shard_end: false,
            lost: false,
        }
    }

    /// The lease this checkpointer writes to.
    pub fn lease(&self) -> &LeaseKey {
        &self.key
    }

    /// The lease's epoch while this worker holds it: every write is fenced on it.
    pub fn lease_epoch(&self) -> u64 {
        self.fence.epoch
    }

    /// The last checkpoint written (or found when the shard was taken).
    pub fn last_checkpoint(&self) -> &Checkpoint {
        &self.committed
    }

    /// The sequence number of the last record delivered to the processor, if any.
    pub fn last_delivered(&self) -> Option<&SequenceNumber> {
        self.last_delivered.as_ref()
    }

    /// The sequence number of the last record whose batch was processed successfully (its
    /// `process_records` returned `Ok`), if any.
    pub fn last_processed(&self) -> Option<&SequenceNumber> {
        self.processed.as_ref()
    }

    /// True when records were processed after the last checkpoint (inside `process_records`,
    /// the batch being processed counts).
    pub fn has_unchecked_records(&self) -> bool {
        match (self.covered(), &self.committed) {
            (None, _) => false,
            (Some(covered), Checkpoint::Sequence(committed)) => covered > committed,
            (Some(_), _) => true,
        }
    }

    /// What a checkpoint without a sequence number covers: the batch in flight, or else the
    /// records processed.
    fn covered(&self) -> Option<&SequenceNumber> {
        self.in_flight.as_ref().or(self.processed.as_ref())
    }

    /// Checkpoints at the last processed record (inside `process_records`: the last record of
    /// the batch); at the end of a closed shard (in
    /// [`RecordProcessor::shard_ended`](crate::worker::RecordProcessor::shard_ended)), records
    /// `SHARD_END`, which lets the shard's children start.
    pub async fn checkpoint(&mut self) -> Result<(), Error> {
        let target = self.current_target()?;
        self.write(CheckpointUpdate::commit(target)).await
    }

    /// Checkpoints at `sequence_number`, which must be a delivered record's and not below the
    /// last checkpoint.
    pub async fn checkpoint_at(&mut self, sequence_number: &SequenceNumber) -> Result<(), Error> {
        let target = self.checked_target(sequence_number)?;
        self.write(CheckpointUpdate::commit(target)).await
    }

    /// Records a pending checkpoint where [`checkpoint`](Self::checkpoint) would (or `SHARD_END`), with
    /// application `state` that the next owner's processor receives in
    /// [`InitializeInput::pending_checkpoint`](crate::worker::InitializeInput) if this worker
    /// stops before committing.
    pub async fn prepare(&mut self, state: Option<Vec<u8>>) -> Result<PreparedCheckpoint, Error> {
        let checkpoint = self.current_target()?;
        self.prepare_checkpoint(checkpoint, state).await
    }

    /// Records a pending checkpoint at `sequence_number`, with application `state`.
    pub async fn prepare_at(
        &mut self,
        sequence_number: &SequenceNumber,
        state: Option<Vec<u8>>,
    ) -> Result<PreparedCheckpoint, Error> {
        let checkpoint = self.checked_target(sequence_number)?;
        self.prepare_checkpoint(checkpoint, state).await
    }

    /// Commits a prepared checkpoint (and clears the pending one).
    pub async fn commit(&mut self, prepared: PreparedCheckpoint) -> Result<(), Error> {
        self.write(CheckpointUpdate::commit(prepared.checkpoint))
            .await
    }

    async fn prepare_checkpoint(
        &mut self,
        checkpoint: Checkpoint,
        state: Option<Vec<u8>>,
    ) -> Result<PreparedCheckpoint, Error> {
        let pending = PendingCheckpoint::new(checkpoint.clone(), state);
        self.write(CheckpointUpdate::prepare(pending)).await?;
        Ok(PreparedCheckpoint { checkpoint })
    }

    fn current_target(&self) -> Result<Checkpoint, Error> {
        if self.shard_end {
            return Ok(Checkpoint::ShardEnd);
        }
        match self.covered() {
            Some(last) => Ok(Checkpoint::Sequence(last.clone())),
            None => Err(Error::invalid(
                "checkpoint",
                format!("no record of {} was processed yet", self.key),
            )),
        }
    }

    fn checked_target(&self, sequence_number: &SequenceNumber) -> Result<Checkpoint, Error> {
        match &self.last_delivered {
            Some(last) if sequence_number <= last => {}
            _ => {
                return Err(Error::invalid(
                    "SequenceNumber",
                    format!(
                        "{sequence_number} is beyond the last record delivered on {} ({})",
                        self.key,
                        self.last_delivered
                            .as_ref()
                            .map_or_else(|| "none".to_owned(), ToString::to_string)
                    ),
                ));
            }
        }
        let target = Checkpoint::Sequence(sequence_number.clone());
        if !target.may_follow(&self.committed) {
            return Err(Error::CheckpointBackwards {
                lease: self.key.to_string(),
                current: self.committed.to_string(),
                attempted: target.to_string(),
            });
        }
        Ok(target)
    }

    async fn write(&mut self, update: CheckpointUpdate) -> Result<(), Error> {
        if self.lost {
            return Err(self.lost_error());
        }
        let (writer, key, fence) = (&self.writer, &self.key, &self.fence);
        let written = retry_transient(
            "checkpoint",
            &mut self.backoff,
            self.config.lease_duration,
            || writer.checkpoint(key, fence, &update),
        )
        .await;
        self.backoff.reset();
        match written {
            Ok(()) => {
                if let Some(checkpoint) = update.checkpoint {
                    self.committed = checkpoint;
                }
                Ok(())
            }
            Err(error @ Error::LeaseLost { .. }) => {
                self.lost = true;
                Err(error)
            }
            // The lease was deleted: its shard was finished by another worker and its
            // children started. This worker no longer holds it.
            Err(Error::NotFound { .. }) => {
                self.lost = true;
                Err(self.lost_error())
            }
            Err(error) => Err(error),
        }
    }

    /// Replaces a `LATEST` checkpoint found on a lease with the position it names now, so that
    /// every later owner starts there too.
    pub(crate) async fn pin(&mut self, pinned: Checkpoint) -> Result<(), Error> {
        self.write(CheckpointUpdate::commit(pinned)).await
    }

    fn lost_error(&self) -> Error {
        Error::LeaseLost {
            lease: self.key.to_string(),
            message: format!("{} no longer holds it", self.fence),
        }
    }

    /// The worker hands the processor a batch ending at `last`.
    pub(crate) fn batch_delivered(&mut self, last: SequenceNumber) {
        self.last_delivered = Some(last.clone());
        self.in_flight = Some(last);
    }

    /// The batch's processing ended: successfully (or skipped by policy), so its records count
    /// as processed, or not.
    pub(crate) fn batch_finished(&mut self, processed: bool) {
        let batch = self.in_flight.take();
        if processed {
            self.processed = batch;
        }
    }

    /// The worker delivered the last record of a closed shard.
    pub(crate) fn reached_shard_end(&mut self) {
        self.shard_end = true;
    }

    /// True once a write found the lease taken by another worker.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost
    }

    /// The renewer found the lease taken: no more writes.
    pub(crate) fn mark_lost(&mut self) {
        self.lost = true;
    }
}
