//! The worker: its builder, its coordinating task, and the handle that stops it.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, Interval, MissedTickBehavior, interval, interval_at};
use tracing::Instrument;

use crate::lease::{DeadlineLeaseStore, Fence, LeaseStore, WorkerId};
use crate::worker::checkpoint_writer::GroupFlusher;
use crate::worker::context::{Stop, WorkerContext, WorkerEvent};
use crate::worker::lease_renewer::renew_leases;
use crate::worker::lease_taker::LeaseTaker;
use crate::worker::metrics::MetricsSnapshot;
use crate::worker::shard_sync::{self, delete_finished_parents};
use crate::worker::{RecordProcessorFactory, WorkerConfig};
use crate::{Error, ShardId, StreamName, StreamSource};

/// Processes a stream's shards together with the other workers sharing its lease store.
///
/// ```no_run
/// # async fn example(
/// #     source: std::sync::Arc<dyn kcl_core::StreamSource>,
/// #     store: std::sync::Arc<dyn kcl_core::LeaseStore>,
/// # ) -> Result<(), kcl_core::Error> {
/// use kcl_core::worker::{Worker, process_with};
///
/// let worker = Worker::builder()
///     .stream("readings")?
///     .source(source)
///     .lease_store(store)
///     .processor_factory(process_with(|_shard, records| {
///         println!("{} records", records.len());
///         Ok(())
///     }))
///     .build()?;
/// let handle = worker.start();
/// // ... later
/// handle.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub struct Worker {
    ctx: Arc<WorkerContext>,
    events: mpsc::UnboundedReceiver<WorkerEvent>,
    /// Writes grouped checkpoints, when the configuration groups them.
    checkpoint_flusher: Option<GroupFlusher>,
}

/// Assembles a [`Worker`].
#[derive(Default)]
pub struct WorkerBuilder {
    stream: Option<StreamName>,
    source: Option<Arc<dyn StreamSource>>,
    store: Option<Arc<dyn LeaseStore>>,
    factory: Option<Arc<dyn RecordProcessorFactory>>,
    config: WorkerConfig,
    name: Option<String>,
    id: Option<WorkerId>,
}

impl WorkerBuilder {
    /// The stream to process (required).
    pub fn stream(mut self, stream: &str) -> Result<Self, Error> {
        self.stream = Some(StreamName::new(stream)?);
        Ok(self)
    }

    /// Where records are read (required).
    pub fn source(mut self, source: Arc<dyn StreamSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// Where leases and checkpoints are kept (required).
    pub fn lease_store(mut self, store: Arc<dyn LeaseStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Makes the application's processor for each shard (required).
    pub fn processor_factory(mut self, factory: impl RecordProcessorFactory + 'static) -> Self {
        self.factory = Some(Arc::new(factory));
        self
    }

    /// The settings; defaults otherwise.
    pub fn config(mut self, config: WorkerConfig) -> Self {
        self.config = config;
        self
    }

    /// A readable prefix for the worker's id (defaults to `worker`); the id adds the process
    /// id, the start time and a counter, so every start is a new worker.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// A fixed id instead of a unique one (see [`WorkerBuilder::name`]): for deterministic
    /// simulations and tests. Never give two running workers, or two starts of one, the same
    /// id: a reused id hides a dead worker behind a live one.
    pub fn worker_id(mut self, id: WorkerId) -> Self {
        self.id = Some(id);
        self
    }

    /// Checks the settings and builds the worker. Every call the worker makes to the lease
    /// store gets a deadline of [`WorkerConfig::store_call_deadline`].
    pub fn build(self) -> Result<Worker, Error> {
        self.config.validate()?;
        let missing = |what: &'static str| Error::invalid(what, "is required");
        let (events, receiver) = mpsc::unbounded_channel();
        let id = match self.id {
            Some(id) => id,
            None => WorkerId::unique(self.name.as_deref().unwrap_or("worker"))?,
        };
        let store = self.store.ok_or_else(|| missing("lease_store"))?;
        let store: Arc<dyn LeaseStore> = Arc::new(DeadlineLeaseStore::new(
            store,
            self.config.store_call_deadline(),
            self.config.store_listing_deadline(),
        ));
        let (ctx, checkpoint_flusher) = WorkerContext::new(
            id,
            self.stream.ok_or_else(|| missing("stream"))?,
            self.config,
            self.source.ok_or_else(|| missing("source"))?,
            store,
            self.factory.ok_or_else(|| missing("processor_factory"))?,
            events,
        );
        Ok(Worker {
            ctx: Arc::new(ctx),
            events: receiver,
            checkpoint_flusher,
        })
    }
}

impl Worker {
    /// A builder.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::default()
    }

    /// This worker's id, unique to this start.
    pub fn id(&self) -> &WorkerId {
        &self.ctx.id
    }

    /// Starts the worker on the current Tokio runtime.
    pub fn start(self) -> WorkerHandle {
        let (shutdown, shutdown_requested) = watch::channel(false);
        let span = tracing::info_span!("worker", id = %self.ctx.id, stream = %self.ctx.stream);
        let ctx = Arc::clone(&self.ctx);
        let task = tokio::spawn(
            coordinate(
                ctx,
                self.events,
                self.checkpoint_flusher,
                shutdown_requested,
            )
            .instrument(span),
        );
        WorkerHandle {
            ctx: self.ctx,
            shutdown,
            task,
        }
    }
}

/// Controls a running worker.
pub struct WorkerHandle {
    ctx: Arc<WorkerContext>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WorkerHandle {
    /// The worker's id.
    pub fn id(&self) -> &WorkerId {
        &self.ctx.id
    }

    /// The shards whose leases the worker holds now.
    pub fn held_shards(&self) -> Vec<ShardId> {
        self.ctx.held().keys().cloned().collect()
    }

    /// The worker's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.ctx.metrics.snapshot()
    }

    /// Stops gracefully: every processor gets `shutdown_requested` (and may checkpoint), every
    /// lease is released at once so that other workers take it at their next taker cycle, and
    /// the worker leaves the live-worker list.
    pub async fn shutdown(self) -> Result<(), Error> {
        let _ = self.shutdown.send(true);
        self.task.await.map_err(|error| Error::Unavailable {
            message: format!("the worker's task failed: {error}"),
        })
    }

    /// Stops at once, as a crash would: nothing is checkpointed or released. The worker's
    /// liveness hold goes with it, so where the store can tell (see
    /// [`WorkerConfig::liveness_interval`]) other workers take the leases at once; otherwise
    /// once they expire.
    pub fn abort(self) {
        self.task.abort();
    }
}

/// The worker's main task: takes and balances leases, syncs shards, reacts to shard ends, and
/// shuts down. Consumers and the renewer run in a `JoinSet` it owns, so aborting this task
/// stops them all.
async fn coordinate(
    ctx: Arc<WorkerContext>,
    mut events: mpsc::UnboundedReceiver<WorkerEvent>,
    checkpoint_flusher: Option<GroupFlusher>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    if let Some(flusher) = checkpoint_flusher {
        tasks.spawn(flusher.run().in_current_span());
    }
    ctx.liveness.acquire(ctx.store.as_ref(), &ctx.id).await;
    if let Err(error) = ctx.store.heartbeat(&ctx.id).await {
        tracing::warn!(%error, "first heartbeat failed");
    }
    tasks.spawn(renew_leases(Arc::clone(&ctx)).in_current_span());
    sync_shards(&ctx).await;
    let mut taker = LeaseTaker::new(Arc::clone(&ctx));
    let mut taker_ticks = interval(ctx.config.taker_interval);
    taker_ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first cycle only takes available leases; balancing starts half a renewal interval
    // later, once workers that started together have all registered their heartbeats.
    let soon = taker.run_cycle(&mut tasks, false).await;
    let first_balancing = ctx.config.renewal_interval() / 2;
    taker_ticks.reset_after(soon.map_or(first_balancing, |soon| soon.min(first_balancing)));
    let sync_every = ctx.config.shard_sync_interval;
    // The first sync comes after half to one and a half intervals, varied per worker, so that
    // workers started together do not all list the table at the same moments afterwards.
    let mut sync_ticks = interval_at(Instant::now() + taker.spread_over(sync_every), sync_every);
    sync_ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut liveness_ticks = interval(ctx.config.liveness_interval);
    liveness_ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            _ = taker_ticks.tick() => {
                take_leases(&mut taker, &mut tasks, &mut taker_ticks, true).await;
            }
            _ = liveness_ticks.tick() => {
                if watch_liveness(&ctx, &taker).await {
                    take_leases(&mut taker, &mut tasks, &mut taker_ticks, false).await;
                }
            }
            // One watcher's sync would do; the few keep each other's company.
            _ = sync_ticks.tick() => if taker.is_watcher() { sync_shards(&ctx).await },
            Some(event) = events.recv() => {
                let _ = taker.run_cycle(&mut tasks, false).await;
                if let WorkerEvent::ShardEnded = event
                    && let Err(error) = delete_finished_parents(&ctx).await
                {
                    tracing::warn!(%error, "cleaning up finished leases failed");
                }
            }
            Some(joined) = tasks.join_next() => {
                if let Err(error) = joined {
                    tracing::error!(%error, "a worker task ended abnormally");
                }
            }
        }
    }
    shut_down(&ctx, tasks).await;
}

/// Runs a taker cycle (`routine` when its time came, see [`LeaseTaker::run_cycle`]), and
/// schedules the next: sooner than usual if it has work pending.
async fn take_leases(
    taker: &mut LeaseTaker,
    tasks: &mut JoinSet<()>,
    ticks: &mut Interval,
    routine: bool,
) {
    let soon = taker.run_cycle(tasks, routine).await;
    let usual = taker.usual_wait();
    ticks.reset_after(soon.map_or(usual, |soon| soon.min(usual)));
}

/// Every liveness interval: confirms this worker's liveness hold (which stops every consumer if
/// it is lost) or, once lost, tries to hold it again; and looks for owners that died. True if a
/// taker cycle should run now: a death was seen, or liveness is held again and the leases left
/// when it was lost can be taken back.
async fn watch_liveness(ctx: &WorkerContext, taker: &LeaseTaker) -> bool {
    if ctx.liveness.is_lost() {
        return ctx.liveness.reacquire(ctx.store.as_ref(), &ctx.id).await;
    }
    ctx.confirm_liveness().await && taker.sees_a_death().await
}

async fn sync_shards(ctx: &WorkerContext) {
    if let Err(error) = shard_sync::sync(ctx).await {
        tracing::warn!(%error, "shard sync failed");
    }
}

/// Leaves the live-worker list (so that the others' share grows before the leases come free),
/// tells every consumer to stop, and waits (up to a lease duration) for them to checkpoint and
/// release.
async fn shut_down(ctx: &WorkerContext, mut tasks: JoinSet<()>) {
    ctx.leaving.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Err(error) = ctx.store.deregister_worker(&ctx.id).await {
        tracing::warn!(%error, "leaving the live-worker list failed");
    }
    let held: Vec<_> = ctx
        .held()
        .iter()
        .map(|(shard, held)| (shard.clone(), held.fence.clone()))
        .collect();
    for (shard, fence) in &held {
        ctx.signal(shard, fence, Stop::Shutdown);
    }
    let deadline = Instant::now() + ctx.config.lease_duration;
    while !ctx.held().is_empty() {
        tokio::select! {
            biased;
            joined = tasks.join_next() => if joined.is_none() { break },
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!("consumers did not stop within a lease duration");
                break;
            }
        }
    }
    tasks.abort_all();
    release_orphans(ctx).await;
    // Deregistered, so nobody sees the dropped hold as a death (if deregistering failed, the
    // others take what is left at once, which is as well).
    ctx.liveness.release();
}

/// Releases, fenced on the epoch they were held at, the leases left when liveness was lost, so
/// that they need not expire first; those whose previous owner may still deliver are left to
/// expire.
async fn release_orphans(ctx: &WorkerContext) {
    let now = Instant::now();
    let orphans: Vec<(ShardId, u64)> = ctx
        .orphans()
        .iter()
        .filter(|(_, orphan)| orphan.deliver_from.is_none_or(|from| from <= now))
        .map(|(shard, orphan)| (shard.clone(), orphan.epoch))
        .collect();
    for (shard, epoch) in orphans {
        let fence = Fence::new(ctx.id.clone(), epoch);
        if let Err(error) = ctx.store.release_lease(&ctx.key(&shard), &fence).await {
            tracing::debug!(%shard, %error, "a lease left when liveness was lost was not released");
        }
    }
}
