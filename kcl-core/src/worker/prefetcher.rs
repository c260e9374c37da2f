//! Reading a shard ahead of its processor, within bounds on records and bytes.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::worker::WorkerConfig;
use crate::{
    Backoff, ChildShard, Error, ReadBatch, SequenceNumber, ShardId, StartingPosition, StreamName,
    StreamSource,
};

/// A batch read ahead, holding its share of the prefetch bounds until it is dropped.
pub(crate) struct Prefetched {
    pub(crate) batch: ReadBatch,
    _records: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

/// The reading task of one shard consumer; stops when dropped. The channel closes when the
/// shard cannot be read any more (an error retrying will not fix); a shard that no longer
/// exists (retention removed it) ends like a closed shard, with the children the listing
/// names.
pub(crate) struct Prefetcher {
    pub(crate) batches: mpsc::Receiver<Prefetched>,
    task: JoinHandle<()>,
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct ReadLoop {
    source: Arc<dyn StreamSource>,
    stream: StreamName,
    shard: ShardId,
    config: WorkerConfig,
    backoff: Backoff,
    records: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
}

impl Prefetcher {
    /// Starts reading `shard` at `position`.
    pub(crate) fn start(
        source: Arc<dyn StreamSource>,
        stream: StreamName,
        shard: ShardId,
        position: StartingPosition,
        config: WorkerConfig,
        backoff: Backoff,
    ) -> Self {
        let (sender, batches) = mpsc::channel(64);
        let read_loop = ReadLoop {
            backoff,
            records: Arc::new(Semaphore::new(config.prefetch_max_records)),
            bytes: Arc::new(Semaphore::new(config.prefetch_max_bytes)),
            source,
            stream,
            shard,
            config,
        };
        let task = tokio::spawn(read_loop.run(position, sender));
        Prefetcher { batches, task }
    }
}

impl ReadLoop {
    /// Reads until the shard ends or the consumer goes away. A failed read is retried with
    /// backoff from a reader reopened just after the last record read, so nothing is skipped
    /// or repeated; an error that is not transient ends the loop.
    async fn run(mut self, start: StartingPosition, sender: mpsc::Sender<Prefetched>) {
        let mut last_read: Option<SequenceNumber> = None;
        loop {
            let position = match &last_read {
                Some(sequence_number) => StartingPosition::AfterSequence(sequence_number.clone()),
                None => start.clone(),
            };
            let error = match self
                .source
                .open_reader(&self.stream, &self.shard, position)
                .await
            {
                Ok(mut reader) => loop {
                    let batch = match reader.next_batch(self.config.max_records_per_batch).await {
                        Ok(batch) => batch,
                        Err(error) => break error,
                    };
                    self.backoff.reset();
                    if batch.records.is_empty() && !batch.is_shard_end() {
                        continue;
                    }
                    if let Some(last) = batch.records.last() {
                        last_read = Some(last.sequence_number.clone());
                    }
                    let end = batch.is_shard_end();
                    if !self.forward(batch, &sender).await || end {
                        return;
                    }
                },
                Err(error) => error,
            };
            if let Error::NotFound { kind: "shard", .. } = error
                && let Some(children) = self.children_if_gone().await
            {
                tracing::warn!(
                    shard = %self.shard,
                    after = ?last_read,
                    "the shard no longer exists (retention removed it): records after this \
                     position that were not read are lost; ending it so its children start"
                );
                let end = ReadBatch {
                    child_shards: Some(children),
                    ..ReadBatch::default()
                };
                self.forward(end, &sender).await;
                return;
            }
            if !error.is_transient() && !matches!(error, Error::NotFound { .. }) {
                tracing::error!(shard = %self.shard, %error, "the shard cannot be read; giving it up");
                return;
            }
            let delay = self.backoff.next_delay();
            tracing::debug!(shard = %self.shard, %error, ?delay, "read failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// Hands a batch to the consumer; `false` once the consumer is gone.
    async fn forward(&self, batch: ReadBatch, sender: &mpsc::Sender<Prefetched>) -> bool {
        match self.reserve(batch).await {
            Some(prefetched) => sender.send(prefetched).await.is_ok(),
            None => false,
        }
    }

    /// If the stream no longer lists the shard, the shards that continue it. A shard that is
    /// still listed was not found for another reason (a lagging replica): retried.
    async fn children_if_gone(&self) -> Option<Vec<ChildShard>> {
        let shards = self.source.list_shards(&self.stream).await.ok()?;
        if shards.iter().any(|shard| shard.shard_id == self.shard) {
            return None;
        }
        Some(
            shards
                .iter()
                .filter(|shard| shard.parents().any(|parent| parent == &self.shard))
                .map(|shard| ChildShard {
                    shard_id: shard.shard_id.clone(),
                    parent_shards: shard.parents().cloned().collect(),
                    hash_key_range: shard.hash_key_range,
                })
                .collect(),
        )
    }

    /// Waits until the batch fits within the prefetch bounds (a batch larger than a bound takes
    /// all of it).
    async fn reserve(&self, batch: ReadBatch) -> Option<Prefetched> {
        let records = permits(batch.records.len(), self.config.prefetch_max_records);
        let bytes: usize = batch.records.iter().map(|record| record.data.len()).sum();
        let bytes = permits(bytes, self.config.prefetch_max_bytes);
        let records = Arc::clone(&self.records)
            .acquire_many_owned(records)
            .await
            .ok()?;
        let bytes = Arc::clone(&self.bytes)
            .acquire_many_owned(bytes)
            .await
            .ok()?;
        Some(Prefetched {
            batch,
            _records: records,
            _bytes: bytes,
        })
    }
}

/// Semaphore permits for `amount`, capped to the bound (and to what a semaphore can count).
fn permits(amount: usize, bound: usize) -> u32 {
    u32::try_from(amount.clamp(1, bound.max(1))).unwrap_or(u32::MAX)
}
