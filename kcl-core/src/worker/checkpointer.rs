//! Recording how far a shard is processed, fenced on the lease.

use std::sync::Arc;
use std::time::Instant;

use crate::lease::{Checkpoint, CheckpointUpdate, Fence, LeaseKey, LeaseStore, PendingCheckpoint};
use crate::worker::WorkerConfig;
use crate::worker::backoff::Backoff;
use crate::{Error, SequenceNumber};

/// Writes a shard's checkpoint for its processor.
///
/// Every write is fenced on the lease the worker holds (owner and epoch): once another worker
/// took the lease, every call answers [`Error::LeaseLost`] and nothing is written. Transient
/// store failures are retried with backoff for up to one lease duration.
pub struct Checkpointer {
    store: Arc<dyn LeaseStore>,
    key: LeaseKey,
    fence: Fence,
    config: WorkerConfig,
    committed: Checkpoint,
    last_delivered: Option<SequenceNumber>,
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
        store: Arc<dyn LeaseStore>,
        key: LeaseKey,
        fence: Fence,
        config: WorkerConfig,
        committed: Checkpoint,
    ) -> Self {
        Checkpointer {
            store,
            key,
            fence,
            config,
            committed,
            last_delivered: None,
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

    /// True when records were delivered after the last checkpoint.
    pub fn has_unchecked_records(&self) -> bool {
        match (&self.last_delivered, &self.committed) {
            (None, _) => false,
            (Some(delivered), Checkpoint::Sequence(committed)) => delivered > committed,
            (Some(_), _) => true,
        }
    }

    /// Checkpoints at the last delivered record; at the end of a closed shard (in
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

    /// Records a pending checkpoint at the last delivered record (or `SHARD_END`), with
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
        match &self.last_delivered {
            Some(last) => Ok(Checkpoint::Sequence(last.clone())),
            None => Err(Error::invalid(
                "checkpoint",
                format!("no record of {} was delivered yet", self.key),
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
        let started = Instant::now();
        let mut backoff = Backoff::new(&self.config);
        loop {
            match self.store.checkpoint(&self.key, &self.fence, &update).await {
                Ok(()) => {
                    if let Some(checkpoint) = update.checkpoint {
                        self.committed = checkpoint;
                    }
                    return Ok(());
                }
                Err(error @ Error::LeaseLost { .. }) => {
                    self.lost = true;
                    return Err(error);
                }
                // The lease was deleted: its shard was finished by another worker and its
                // children started. This worker no longer holds it.
                Err(Error::NotFound { .. }) => {
                    self.lost = true;
                    return Err(self.lost_error());
                }
                Err(error)
                    if error.is_transient() && started.elapsed() < self.config.lease_duration =>
                {
                    let delay = backoff.next_delay();
                    tracing::warn!(lease = %self.key, %error, ?delay, "checkpoint failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn lost_error(&self) -> Error {
        Error::LeaseLost {
            lease: self.key.to_string(),
            message: format!("{} no longer holds it", self.fence),
        }
    }

    /// The worker delivered records up to `sequence_number`.
    pub(crate) fn delivered(&mut self, sequence_number: SequenceNumber) {
        self.last_delivered = Some(sequence_number);
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
