//! One shard's processing: a task per held lease that delivers records in order to the
//! application's processor and ends the lease the way the processor's shard ended.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::lease::{Checkpoint, Fence, Lease, LeaseKey};
use crate::worker::backoff::Backoff;
use crate::worker::context::{HeldLease, Stop, WorkerContext, WorkerEvent};
use crate::worker::metrics::WorkerMetrics;
use crate::worker::prefetcher::Prefetcher;
use crate::worker::shard_sync::create_child_leases;
use crate::worker::{
    Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorError, ProcessorErrorPolicy,
    RecordProcessor, ShardInfo,
};
use crate::{ChildShard, Error};

/// Registers `lease` as held and starts its consumer task.
pub(crate) fn start(ctx: Arc<WorkerContext>, lease: Lease, consumers: &mut JoinSet<()>) {
    let Some(fence) = lease.fence() else {
        return;
    };
    let (stop_sender, stop) = watch::channel(Stop::Running);
    ctx.held().insert(
        lease.key.shard.clone(),
        HeldLease {
            fence: fence.clone(),
            stop: stop_sender,
            renewed_at: Instant::now(),
        },
    );
    let span = tracing::info_span!("shard", shard = %lease.key.shard, epoch = lease.epoch);
    let consumer = ShardConsumer {
        key: lease.key.clone(),
        fence,
        ctx,
        stop,
    };
    consumers.spawn(consumer.run(lease).instrument(span));
}

struct ShardConsumer {
    ctx: Arc<WorkerContext>,
    key: LeaseKey,
    fence: Fence,
    stop: watch::Receiver<Stop>,
}

/// How a consumer's run ended.
enum Outcome {
    Stopped(Stop),
    ShardEnded(Vec<ChildShard>),
    ReaderGone,
}

impl ShardConsumer {
    async fn run(mut self, lease: Lease) {
        let ctx = Arc::clone(&self.ctx);
        let shard = ShardInfo {
            stream: ctx.stream.clone(),
            shard_id: lease.key.shard.clone(),
            parent_shard_ids: lease.parent_shard_ids.clone(),
        };
        let mut processor = ctx.factory.create(&shard);
        let mut checkpointer = Checkpointer::new(
            Arc::clone(&ctx.store),
            self.key.clone(),
            self.fence.clone(),
            ctx.config.clone(),
            lease.checkpoint.clone(),
        );
        let initialized = guarded(processor.initialize(InitializeInput {
            shard,
            checkpoint: lease.checkpoint.clone(),
            pending_checkpoint: lease.pending_checkpoint.clone(),
        }))
        .await;
        let outcome = match (initialized, lease.checkpoint.resume_position()) {
            (Err(error), _) => {
                tracing::error!(%error, "processor failed to initialize; releasing the lease");
                Outcome::ReaderGone
            }
            (Ok(()), None) => Outcome::ShardEnded(Vec::new()),
            (Ok(()), Some(position)) => {
                let prefetcher = Prefetcher::start(
                    Arc::clone(&ctx.source),
                    ctx.stream.clone(),
                    lease.key.shard.clone(),
                    position,
                    ctx.config.clone(),
                );
                self.deliver(prefetcher, processor.as_mut(), &mut checkpointer)
                    .await
            }
        };
        self.finish(outcome, processor.as_mut(), &mut checkpointer)
            .await;
        ctx.forget(&self.key.shard, &self.fence);
    }

    /// Delivers batches in order until the shard ends or the consumer is told to stop.
    async fn deliver(
        &mut self,
        mut prefetcher: Prefetcher,
        processor: &mut dyn RecordProcessor,
        checkpointer: &mut Checkpointer,
    ) -> Outcome {
        loop {
            let stop = *self.stop.borrow_and_update();
            if stop != Stop::Running {
                return Outcome::Stopped(stop);
            }
            let prefetched = tokio::select! {
                biased;
                _ = self.stop.changed() => continue,
                prefetched = prefetcher.batches.recv() => prefetched,
            };
            let Some(prefetched) = prefetched else {
                return Outcome::ReaderGone;
            };
            let batch = &prefetched.batch;
            if let Some(last) = batch.records.last() {
                checkpointer.delivered(last.sequence_number.clone());
                let input = ProcessRecordsInput {
                    records: batch.records.clone(),
                    millis_behind_latest: batch.millis_behind_latest,
                };
                if let Some(stop) = self.process(&input, processor, checkpointer).await {
                    return Outcome::Stopped(stop);
                }
                if checkpointer.is_lost() {
                    return Outcome::Stopped(Stop::LeaseLost);
                }
            }
            if let Some(children) = &batch.child_shards {
                return Outcome::ShardEnded(children.clone());
            }
        }
    }

    /// Processes one batch under the error policy. Returns a stop reason if the consumer was
    /// told to stop while retrying.
    async fn process(
        &mut self,
        input: &ProcessRecordsInput,
        processor: &mut dyn RecordProcessor,
        checkpointer: &mut Checkpointer,
    ) -> Option<Stop> {
        let mut backoff = Backoff::new(&self.ctx.config);
        loop {
            match guarded(processor.process_records(input, checkpointer)).await {
                Ok(()) => {
                    WorkerMetrics::add(
                        &self.ctx.metrics.records_processed,
                        input.records.len() as u64,
                    );
                    return None;
                }
                Err(_) if checkpointer.is_lost() => return Some(Stop::LeaseLost),
                Err(error) => {
                    WorkerMetrics::add(&self.ctx.metrics.processor_failures, 1);
                    if self.ctx.config.on_processor_error == ProcessorErrorPolicy::Skip {
                        tracing::error!(%error, records = input.records.len(), "processing failed; skipping the batch");
                        return None;
                    }
                    let delay = backoff.next_delay();
                    tracing::error!(%error, ?delay, "processing failed; retrying the batch");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.stop.wait_for(|stop| *stop != Stop::Running) => {}
                    }
                    let stop = *self.stop.borrow();
                    if stop != Stop::Running {
                        return Some(stop);
                    }
                }
            }
        }
    }

    /// Ends the lease the way the run ended.
    async fn finish(
        &mut self,
        outcome: Outcome,
        processor: &mut dyn RecordProcessor,
        checkpointer: &mut Checkpointer,
    ) {
        let ctx = Arc::clone(&self.ctx);
        match outcome {
            Outcome::Stopped(Stop::LeaseLost) => {
                checkpointer.mark_lost();
                if let Err(error) = guarded(async {
                    processor.lease_lost().await;
                    Ok(())
                })
                .await
                {
                    tracing::error!(%error, "lease_lost failed");
                }
            }
            Outcome::Stopped(Stop::Shutdown | Stop::Running) | Outcome::ReaderGone => {
                self.shutdown_processor(processor, checkpointer).await;
                self.release().await;
            }
            Outcome::Stopped(Stop::Handoff) => {
                self.shutdown_processor(processor, checkpointer).await;
                match ctx
                    .store
                    .complete_handoff(&self.key, &self.fence, ctx.config.lease_duration)
                    .await
                {
                    Ok(lease) => {
                        WorkerMetrics::add(&ctx.metrics.handoffs_completed, 1);
                        tracing::info!(to = ?lease.owner, "handed the lease over");
                    }
                    Err(error) => {
                        tracing::info!(%error, "handoff not completed; releasing the lease");
                        self.release().await;
                    }
                }
            }
            Outcome::ShardEnded(children) => {
                self.end_shard(children, processor, checkpointer).await
            }
        }
    }

    async fn shutdown_processor(
        &mut self,
        processor: &mut dyn RecordProcessor,
        checkpointer: &mut Checkpointer,
    ) {
        if let Err(error) = guarded(processor.shutdown_requested(checkpointer)).await {
            tracing::error!(%error, "shutdown_requested failed");
        }
    }

    /// At the end of a closed shard: creates the children's leases, has the processor
    /// checkpoint `SHARD_END` (reporting and retrying a processor that does not), then releases
    /// the finished lease so that the children can start.
    async fn end_shard(
        &mut self,
        children: Vec<ChildShard>,
        processor: &mut dyn RecordProcessor,
        checkpointer: &mut Checkpointer,
    ) {
        let ctx = Arc::clone(&self.ctx);
        let mut backoff = Backoff::new(&ctx.config);
        if checkpointer.last_checkpoint() != &Checkpoint::ShardEnd {
            loop {
                let recorded = async {
                    create_child_leases(&ctx, &children).await?;
                    let ids: Vec<_> = children.iter().map(|c| c.shard_id.clone()).collect();
                    ctx.store
                        .record_child_shards(&self.key, &self.fence, &ids)
                        .await
                }
                .await;
                match recorded {
                    Ok(()) => break,
                    Err(error @ (Error::LeaseLost { .. } | Error::NotFound { .. })) => {
                        tracing::info!(%error, "lease lost at shard end");
                        checkpointer.mark_lost();
                        processor.lease_lost().await;
                        return;
                    }
                    Err(error) => {
                        let delay = backoff.next_delay();
                        tracing::warn!(%error, ?delay, "recording child shards failed; retrying");
                        match self.pause_unless_stopped(delay).await {
                            None => {}
                            Some(Stop::LeaseLost) => {
                                checkpointer.mark_lost();
                                processor.lease_lost().await;
                                return;
                            }
                            Some(_) => return self.release().await,
                        }
                    }
                }
            }
            checkpointer.reached_shard_end();
            loop {
                if let Err(error) = guarded(processor.shard_ended(checkpointer)).await {
                    tracing::error!(%error, "shard_ended failed");
                }
                if checkpointer.last_checkpoint() == &Checkpoint::ShardEnd {
                    break;
                }
                // A refused SHARD_END checkpoint means the lease is gone, not a careless processor.
                if checkpointer.is_lost() {
                    processor.lease_lost().await;
                    return;
                }
                WorkerMetrics::add(&ctx.metrics.shard_ends_not_checkpointed, 1);
                let delay = backoff.next_delay();
                tracing::error!(
                    lease = %self.key,
                    ?delay,
                    "the processor returned from shard_ended without checkpointing SHARD_END; \
                     the shard's children wait until it does"
                );
                match self.pause_unless_stopped(delay).await {
                    None => {}
                    Some(Stop::LeaseLost) => {
                        checkpointer.mark_lost();
                        processor.lease_lost().await;
                        return;
                    }
                    Some(_) => return self.release().await,
                }
            }
        }
        self.release().await;
        let _ = ctx.events.send(WorkerEvent::ShardEnded);
    }

    /// Sleeps `delay` unless told to stop first; returns the stop reason if so.
    async fn pause_unless_stopped(&mut self, delay: std::time::Duration) -> Option<Stop> {
        tokio::select! {
            _ = tokio::time::sleep(delay) => None,
            stop = self.stop.wait_for(|stop| *stop != Stop::Running) => {
                Some(stop.map_or(Stop::Shutdown, |stop| *stop))
            }
        }
    }

    /// Gives the lease up, keeping its checkpoint. Transient failures are retried for a lease
    /// duration; after that the lease simply expires.
    async fn release(&self) {
        let ctx = &self.ctx;
        let mut backoff = Backoff::new(&ctx.config);
        let started = std::time::Instant::now();
        loop {
            match ctx.store.release_lease(&self.key, &self.fence).await {
                Ok(()) => return,
                Err(error)
                    if error.is_transient() && started.elapsed() < ctx.config.lease_duration =>
                {
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(error) => {
                    tracing::info!(%error, "could not release the lease; it will expire");
                    return;
                }
            }
        }
    }
}

/// Runs a processor call, turning a panic into an error confined to this shard.
async fn guarded<F>(call: F) -> Result<(), ProcessorError>
where
    F: std::future::Future<Output = Result<(), ProcessorError>>,
{
    match AssertUnwindSafe(call).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            Err(format!("processor panicked: {message}").into())
        }
    }
}
