//! One shard's processing: a task per held lease that delivers records in order to the
//! application's processor and ends the lease the way the processor's shard ended.
//!
//! The consumer is a state machine: initializing → delivering → ending the shard (at the end
//! of a closed shard) → releasing (or handing over) → done, with "lease lost" reachable from
//! every state that waits. Its registration as a held lease is a value that unregisters the
//! lease when dropped, and a consumer that panics releases its lease.

mod callbacks;
mod registration;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use crate::lease::{Checkpoint, Fence, Lease, LeaseKey};
use crate::worker::context::{Stop, WorkerContext, WorkerEvent};
use crate::worker::metrics::WorkerMetrics;
use crate::worker::prefetcher::Prefetcher;
use crate::worker::shard_sync::create_child_leases;
use crate::worker::{
    Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorErrorPolicy, RecordProcessor,
    ShardInfo,
};
use crate::{Backoff, ChildShard, Error, StartingPosition};
use callbacks::{guarded, guarded_infallible};
use registration::Registration;

/// Registers `lease` as held (valid by the local clock until `valid_until`) and starts its
/// consumer task, which delivers nothing before `deliver_from` if given (the previous owner may
/// still be delivering until then).
pub(crate) fn start(
    ctx: Arc<WorkerContext>,
    lease: Lease,
    valid_until: Instant,
    deliver_from: Option<Instant>,
    consumers: &mut JoinSet<()>,
) {
    let Some(fence) = lease.fence() else {
        return;
    };
    let shard = lease.key.shard.clone();
    let (registration, stop) =
        Registration::new(&ctx, shard, fence.clone(), valid_until, deliver_from);
    let span = tracing::info_span!("shard", shard = %lease.key.shard, epoch = lease.epoch);
    let consumer = ShardConsumer {
        backoff: ctx.backoff(&lease.key.shard),
        key: lease.key.clone(),
        fence,
        ctx,
        stop,
        deliver_from,
        _registration: registration,
    };
    consumers.spawn(consumer.run(lease).instrument(span));
}

struct ShardConsumer {
    ctx: Arc<WorkerContext>,
    key: LeaseKey,
    fence: Fence,
    stop: watch::Receiver<Stop>,
    backoff: Backoff,
    /// Nothing is delivered, released or handed over before this moment.
    deliver_from: Option<Instant>,
    _registration: Registration,
}

/// Where a consumer is.
enum State {
    /// Reading from `position` and delivering batches.
    Delivering(StartingPosition),
    /// The closed shard was delivered to its end; these shards continue it.
    EndingShard(Vec<ChildShard>),
    /// Giving the lease up gracefully.
    Releasing(Release),
    /// Another worker has (or may have) the lease: stop without writing.
    LeaseLost,
    /// Nothing left to do.
    Done,
}

/// How a lease is given up.
enum Release {
    /// Shutdown, an initialization failure or an unreadable shard: the processor may
    /// checkpoint, then the lease is released for any worker to take.
    Stop,
    /// Another worker asked for the lease: the processor may checkpoint, then the lease goes
    /// straight to the requester.
    Handoff,
    /// The shard was processed to its end: release, and tell the coordinator its children may
    /// start.
    Finished,
}

/// The application's side of one lease: its processor and checkpointer.
struct Session {
    processor: Box<dyn RecordProcessor>,
    checkpointer: Checkpointer,
}

impl ShardConsumer {
    async fn run(mut self, lease: Lease) {
        let ran = AssertUnwindSafe(self.run_states(lease))
            .catch_unwind()
            .await;
        if ran.is_err() {
            tracing::error!("the shard consumer panicked; releasing its lease");
            self.release().await;
        }
    }

    async fn run_states(&mut self, lease: Lease) {
        let ctx = Arc::clone(&self.ctx);
        let shard = ShardInfo {
            stream: ctx.stream.clone(),
            shard_id: lease.key.shard.clone(),
            parent_shard_ids: lease.parent_shard_ids.clone(),
        };
        let processor = match callbacks::create(ctx.factory.as_ref(), &shard) {
            Ok(processor) => processor,
            Err(error) => {
                tracing::error!(%error, "the processor factory failed; releasing the lease");
                return self.release().await;
            }
        };
        let checkpointer = Checkpointer::new(
            ctx.checkpoints.clone(),
            self.key.clone(),
            self.fence.clone(),
            ctx.config.clone(),
            ctx.backoff(&lease.key.shard),
            lease.checkpoint.clone(),
        );
        let mut session = Session {
            processor,
            checkpointer,
        };
        let mut state = self.initialize(&lease, shard, &mut session).await;
        loop {
            state = match state {
                State::Delivering(position) => self.deliver(position, &mut session).await,
                State::EndingShard(children) => self.end_shard(children, &mut session).await,
                State::Releasing(release) => {
                    self.give_up(release, &mut session).await;
                    State::Done
                }
                State::LeaseLost => {
                    session.checkpointer.mark_lost();
                    if let Err(error) = guarded_infallible(session.processor.lease_lost()).await {
                        tracing::error!(%error, "lease_lost failed");
                    }
                    State::Done
                }
                State::Done => return,
            };
        }
    }

    /// Initializes the processor and decides where delivery starts. A lease still at `LATEST`
    /// (from an older table) is pinned first, so no later owner resolves it again.
    async fn initialize(
        &mut self,
        lease: &Lease,
        shard: ShardInfo,
        session: &mut Session,
    ) -> State {
        let initialized = guarded(session.processor.initialize(InitializeInput {
            shard,
            checkpoint: lease.checkpoint.clone(),
            pending_checkpoint: lease.pending_checkpoint.clone(),
        }))
        .await;
        if let Err(error) = initialized {
            tracing::error!(%error, "processor failed to initialize; releasing the lease");
            return State::Releasing(Release::Stop);
        }
        let mut checkpoint = lease.checkpoint.clone();
        if checkpoint == Checkpoint::Latest {
            let pinned = match self
                .ctx
                .source
                .pin_latest(&self.ctx.stream, &self.key.shard)
                .await
            {
                Ok(pinned) => pinned,
                Err(error) => {
                    tracing::warn!(%error, "could not pin LATEST; releasing the lease");
                    return State::Releasing(Release::Stop);
                }
            };
            match session.checkpointer.pin(pinned.clone()).await {
                Ok(()) => checkpoint = pinned,
                Err(Error::LeaseLost { .. }) => return State::LeaseLost,
                Err(error) => {
                    tracing::warn!(%error, "could not pin LATEST; releasing the lease");
                    return State::Releasing(Release::Stop);
                }
            }
        }
        match checkpoint.resume_position() {
            Some(position) => State::Delivering(position),
            None => State::EndingShard(Vec::new()),
        }
    }

    /// Delivers batches in order until the shard ends, the reader gives up, or the consumer is
    /// told to stop. A batch is delivered only while the lease is valid by the local clock.
    async fn deliver(&mut self, position: StartingPosition, session: &mut Session) -> State {
        let ctx = Arc::clone(&self.ctx);
        if let Some(from) = self.deliver_from {
            let wait = from.saturating_duration_since(Instant::now());
            tracing::info!(
                ?wait,
                "waiting until the previous owner's lease ran out by its clock"
            );
            if let Some(stop) = self.pause_unless_stopped(wait).await {
                return stopped(stop);
            }
        }
        let mut prefetcher = Prefetcher::start(
            Arc::clone(&ctx.source),
            ctx.stream.clone(),
            self.key.shard.clone(),
            position,
            ctx.config.clone(),
            ctx.backoff(&self.key.shard),
        );
        loop {
            let stop = *self.stop.borrow_and_update();
            if stop != Stop::Running {
                return stopped(stop);
            }
            let prefetched = tokio::select! {
                biased;
                _ = self.stop.changed() => continue,
                prefetched = prefetcher.batches.recv() => prefetched,
            };
            let Some(prefetched) = prefetched else {
                return State::Releasing(Release::Stop);
            };
            let batch = &prefetched.batch;
            if !batch.records.is_empty() {
                let input = ProcessRecordsInput {
                    records: batch.records.clone(),
                    millis_behind_latest: batch.millis_behind_latest,
                };
                if let Some(stop) = self.process(&input, session).await {
                    return stopped(stop);
                }
            }
            if let Some(children) = &batch.child_shards {
                return State::EndingShard(children.clone());
            }
        }
    }

    /// Processes one batch under the error policy, retrying a failed one after a backoff.
    /// Returns a stop reason if the consumer must stop instead (told to, or the lease is lost
    /// or no longer valid by the local clock).
    async fn process(
        &mut self,
        input: &ProcessRecordsInput,
        session: &mut Session,
    ) -> Option<Stop> {
        let ctx = Arc::clone(&self.ctx);
        let last = input.records.last()?;
        loop {
            // Other workers take every lease of a worker whose liveness is gone: deliver only
            // on a check that began less than a liveness interval ago.
            if !ctx.confirm_liveness().await {
                return Some(Stop::LeaseLost);
            }
            if !ctx.is_valid(&self.key.shard, &self.fence) {
                tracing::warn!(
                    "the lease is no longer valid by the local clock; stopping delivery"
                );
                return Some(Stop::LeaseLost);
            }
            let checkpointer = &mut session.checkpointer;
            checkpointer.batch_delivered(last.sequence_number.clone());
            let result = guarded(session.processor.process_records(input, checkpointer)).await;
            match result {
                Ok(()) => {
                    checkpointer.batch_finished(true);
                    self.backoff.reset();
                    WorkerMetrics::add(&ctx.metrics.records_processed, input.records.len() as u64);
                    // A processor may swallow the checkpoint's lease-lost error: the lease is
                    // gone all the same, and the next batch belongs to its new owner.
                    return checkpointer.is_lost().then_some(Stop::LeaseLost);
                }
                Err(_) if checkpointer.is_lost() => {
                    checkpointer.batch_finished(false);
                    return Some(Stop::LeaseLost);
                }
                Err(error) => {
                    let skip = ctx.config.on_processor_error == ProcessorErrorPolicy::Skip;
                    checkpointer.batch_finished(skip);
                    WorkerMetrics::add(&ctx.metrics.processor_failures, 1);
                    if skip {
                        tracing::error!(%error, records = input.records.len(), "processing failed; skipping the batch");
                        return None;
                    }
                    let delay = self.backoff.next_delay();
                    tracing::error!(%error, ?delay, "processing failed; retrying the batch");
                    if let Some(stop) = self.pause_unless_stopped(delay).await {
                        return Some(stop);
                    }
                }
            }
        }
    }

    /// At the end of a closed shard: creates the children's leases, has the processor
    /// checkpoint `SHARD_END` (reporting and retrying a processor that does not), then releases
    /// the finished lease so that the children can start.
    async fn end_shard(&mut self, children: Vec<ChildShard>, session: &mut Session) -> State {
        let ctx = Arc::clone(&self.ctx);
        if session.checkpointer.last_checkpoint() == &Checkpoint::ShardEnd {
            return State::Releasing(Release::Finished);
        }
        loop {
            // Fenced first: an owner that lost the lease (or whose lease ran out by its own
            // clock) creates no lease for the children.
            let recorded = async {
                let ids: Vec<_> = children.iter().map(|c| c.shard_id.clone()).collect();
                ctx.store
                    .record_child_shards(&self.key, &self.fence, &ids)
                    .await?;
                if !ctx.is_valid(&self.key.shard, &self.fence) {
                    return Err(Error::LeaseLost {
                        lease: self.key.to_string(),
                        message: "not renewed for a lease duration".to_owned(),
                    });
                }
                create_child_leases(&ctx, &children).await
            }
            .await;
            match recorded {
                Ok(()) => break,
                Err(error @ (Error::LeaseLost { .. } | Error::NotFound { .. })) => {
                    tracing::info!(%error, "lease lost at shard end");
                    return State::LeaseLost;
                }
                Err(error) => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(%error, ?delay, "recording child shards failed; retrying");
                    if let Some(stop) = self.pause_unless_stopped(delay).await {
                        return stopped(stop);
                    }
                }
            }
        }
        session.checkpointer.reached_shard_end();
        loop {
            if let Err(error) =
                guarded(session.processor.shard_ended(&mut session.checkpointer)).await
            {
                tracing::error!(%error, "shard_ended failed");
            }
            if session.checkpointer.last_checkpoint() == &Checkpoint::ShardEnd {
                return State::Releasing(Release::Finished);
            }
            // A refused SHARD_END checkpoint means the lease is gone, not a careless processor.
            if session.checkpointer.is_lost() {
                return State::LeaseLost;
            }
            WorkerMetrics::add(&ctx.metrics.shard_ends_not_checkpointed, 1);
            let delay = self.backoff.next_delay();
            tracing::error!(
                lease = %self.key,
                ?delay,
                "the processor returned from shard_ended without checkpointing SHARD_END; \
                 the shard's children wait until it does"
            );
            if let Some(stop) = self.pause_unless_stopped(delay).await {
                return stopped(stop);
            }
        }
    }

    /// Gives the lease up the way `release` says; not before `deliver_from`, so that the next
    /// owner cannot start while the owner it was stolen from may still deliver.
    async fn give_up(&mut self, release: Release, session: &mut Session) {
        let ctx = Arc::clone(&self.ctx);
        if let Some(from) = self.deliver_from {
            tokio::time::sleep_until(from).await;
        }
        match release {
            Release::Stop => {
                self.shutdown_processor(session).await;
                self.release().await;
            }
            Release::Handoff => {
                self.shutdown_processor(session).await;
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
            Release::Finished => {
                self.release().await;
                let _ = ctx.events.send(WorkerEvent::ShardEnded);
            }
        }
    }

    async fn shutdown_processor(&mut self, session: &mut Session) {
        if let Err(error) = guarded(
            session
                .processor
                .shutdown_requested(&mut session.checkpointer),
        )
        .await
        {
            tracing::error!(%error, "shutdown_requested failed");
        }
    }

    /// Sleeps `delay` unless told to stop first; returns the stop reason if so.
    async fn pause_unless_stopped(&mut self, delay: Duration) -> Option<Stop> {
        tokio::select! {
            biased;
            stop = self.stop.wait_for(|stop| *stop != Stop::Running) => {
                Some(stop.map_or(Stop::Shutdown, |stop| *stop))
            }
            _ = tokio::time::sleep(delay) => None,
        }
    }

    /// Gives the lease up, keeping its checkpoint. Transient failures are retried for a lease
    /// duration; after that the lease simply expires.
    async fn release(&mut self) {
        let ctx = Arc::clone(&self.ctx);
        ctx.releasing(&self.key.shard, &self.fence);
        let released = crate::retry_transient(
            "releasing the lease",
            &mut self.backoff,
            ctx.config.lease_duration,
            || ctx.store.release_lease(&self.key, &self.fence),
        )
        .await;
        if let Err(error) = released {
            tracing::info!(%error, "could not release the lease; it will expire");
            if error.is_transient() {
                let _ = ctx.events.send(WorkerEvent::LeaseLeftBehind);
            }
        }
    }
}

/// The state a stop request leads to.
fn stopped(stop: Stop) -> State {
    match stop {
        Stop::LeaseLost => State::LeaseLost,
        Stop::Handoff => State::Releasing(Release::Handoff),
        Stop::Shutdown | Stop::Running => State::Releasing(Release::Stop),
    }
}
