//! Reading a shard ahead of its processor, within bounds on records and bytes.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::worker::WorkerConfig;
use crate::worker::backoff::Backoff;
use crate::{
    Error, ReadBatch, SequenceNumber, ShardId, StartingPosition, StreamName, StreamSource,
};

/// A batch read ahead, holding its share of the prefetch bounds until it is dropped.
pub(crate) struct Prefetched {
    pub(crate) batch: ReadBatch,
    _records: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

/// The reading task of one shard consumer; stops when dropped.
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
    ) -> Self {
        let (sender, batches) = mpsc::channel(64);
        let read_loop = ReadLoop {
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
    /// or repeated.
    async fn run(self, start: StartingPosition, sender: mpsc::Sender<Prefetched>) {
        let mut last_read: Option<SequenceNumber> = None;
        let mut backoff = Backoff::new(&self.config);
        'reopen: loop {
            let position = match &last_read {
                Some(sequence_number) => StartingPosition::AfterSequence(sequence_number.clone()),
                None => start.clone(),
            };
            let mut reader = match self
                .source
                .open_reader(&self.stream, &self.shard, position)
                .await
            {
                Ok(reader) => reader,
                Err(error) => {
                    self.pause(&error, &mut backoff).await;
                    continue 'reopen;
                }
            };
            loop {
                let batch = match reader.next_batch(self.config.max_records_per_batch).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        self.pause(&error, &mut backoff).await;
                        continue 'reopen;
                    }
                };
                backoff.reset();
                if batch.records.is_empty() && !batch.is_shard_end() {
                    continue;
                }
                if let Some(last) = batch.records.last() {
                    last_read = Some(last.sequence_number.clone());
                }
                let end = batch.is_shard_end();
                let Some(prefetched) = self.reserve(batch).await else {
                    return;
                };
                if sender.send(prefetched).await.is_err() || end {
                    return;
                }
            }
        }
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

    async fn pause(&self, error: &Error, backoff: &mut Backoff) {
        let delay = backoff.next_delay();
        if error.is_transient() {
            tracing::debug!(shard = %self.shard, %error, ?delay, "read failed; retrying");
        } else {
            tracing::warn!(shard = %self.shard, %error, ?delay, "read failed; retrying");
        }
        tokio::time::sleep(delay).await;
    }
}

/// Semaphore permits for `amount`, capped to the bound (and to what a semaphore can count).
fn permits(amount: usize, bound: usize) -> u32 {
    u32::try_from(amount.clamp(1, bound.max(1))).unwrap_or(u32::MAX)
}
