//! What a worker's tasks share: identity, settings, seams, the leases held, and counters.

use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::lease::{Fence, LeaseKey, LeaseStore, WorkerId};
use crate::worker::checkpoint_writer::{CheckpointWriter, GroupFlusher};
use crate::worker::liveness::Liveness;
use crate::worker::metrics::WorkerMetrics;
use crate::worker::{RecordProcessorFactory, WorkerConfig};
use crate::{ShardId, StreamName, StreamSource};

/// Why a shard consumer must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Keep going.
    Running,
    /// Another worker asked for the lease: finish the batch, let the processor checkpoint, hand
    /// the lease over.
    Handoff,
    /// The worker shuts down: let the processor checkpoint, release the lease.
    Shutdown,
    /// Another worker took the lease: stop without writing.
    LeaseLost,
}

/// A lease this worker holds, and how to tell its consumer to stop.
pub(crate) struct HeldLease {
    pub(crate) fence: Fence,
    pub(crate) stop: watch::Sender<Stop>,
    /// Until when the lease is surely still this worker's, by this worker's own monotonic
    /// clock: a lease duration after the last successful renewal (or take) was sent, since the
    /// store set the expiry no earlier than that. Nothing is delivered after it.
    pub(crate) valid_until: Instant,
    /// Set while the consumer gives the lease up: the renewer stops renewing it, so that a
    /// release that cannot reach the store lets the lease expire instead of keeping it held
    /// with nobody processing it.
    pub(crate) releasing: bool,
    /// Nothing is delivered, released or handed over before this moment: the owner the lease
    /// was stolen from may still deliver until then.
    pub(crate) deliver_from: Option<Instant>,
}

/// A lease whose consumer stopped when the worker's liveness was lost: taken back at `epoch`
/// once liveness is held again, unless another worker took it meanwhile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Orphan {
    pub(crate) epoch: u64,
    /// Carried over to the consumer that takes it back (see [`HeldLease::deliver_from`]).
    pub(crate) deliver_from: Option<Instant>,
}

/// Something the coordinator should react to at once rather than at its next tick.
#[derive(Debug)]
pub(crate) enum WorkerEvent {
    /// A shard was processed to its end: its children may be takeable now.
    ShardEnded,
    /// A lease could not be released, or went unrenewed for a lease duration, and is left to
    /// expire: no taker learns of that from the store's change number, so this worker looks
    /// for it (and takes it back) itself.
    LeaseLeftBehind,
}

pub(crate) struct WorkerContext {
    pub(crate) id: WorkerId,
    pub(crate) stream: StreamName,
    pub(crate) config: WorkerConfig,
    pub(crate) source: Arc<dyn StreamSource>,
    pub(crate) store: Arc<dyn LeaseStore>,
    /// Where the shards' checkpoints are written (see [`WorkerConfig::group_checkpoints`]).
    pub(crate) checkpoints: CheckpointWriter,
    pub(crate) factory: Arc<dyn RecordProcessorFactory>,
    held: Mutex<BTreeMap<ShardId, HeldLease>>,
    pub(crate) events: mpsc::UnboundedSender<WorkerEvent>,
    pub(crate) metrics: WorkerMetrics,
    /// Set at graceful shutdown: the worker no longer heartbeats.
    pub(crate) leaving: AtomicBool,
    /// The worker's liveness hold.
    pub(crate) liveness: Liveness,
    /// Leases whose consumers were stopped because the liveness hold was lost, by shard.
    orphans: Mutex<BTreeMap<ShardId, Orphan>>,
}

impl WorkerContext {
    /// The context, and the flusher to run when checkpoints are grouped.
    pub(crate) fn new(
        id: WorkerId,
        stream: StreamName,
        config: WorkerConfig,
        source: Arc<dyn StreamSource>,
        store: Arc<dyn LeaseStore>,
        factory: Arc<dyn RecordProcessorFactory>,
        events: mpsc::UnboundedSender<WorkerEvent>,
    ) -> (Self, Option<GroupFlusher>) {
        let (checkpoints, flusher) =
            CheckpointWriter::new(Arc::clone(&store), config.group_checkpoints);
        let liveness = Liveness::new(
            config.store_call_deadline(),
            config.liveness_interval,
            crate::Backoff::new(config.initial_backoff, config.max_backoff, &id),
        );
        let ctx = WorkerContext {
            id,
            stream,
            config,
            source,
            store,
            checkpoints,
            factory,
            held: Mutex::new(BTreeMap::new()),
            events,
            metrics: WorkerMetrics::default(),
            leaving: AtomicBool::new(false),
            liveness,
            orphans: Mutex::new(BTreeMap::new()),
        };
        (ctx, flusher)
    }

    /// True if this worker may deliver a batch now (see [`Liveness::confirm`]). If not, every
    /// held lease's consumer is told to stop without writing, its renewals stop, and the lease
    /// is remembered to be taken back once liveness is held again.
    pub(crate) async fn confirm_liveness(&self) -> bool {
        if self.liveness.confirm().await {
            return true;
        }
        let mut held = self.held();
        let mut orphans = self.orphans();
        for (shard, lease) in held.iter_mut().filter(|(_, lease)| !lease.releasing) {
            let orphan = Orphan {
                epoch: lease.fence.epoch,
                deliver_from: lease.deliver_from,
            };
            orphans.insert(shard.clone(), orphan);
            lease.releasing = true;
            lease.stop.send_replace(Stop::LeaseLost);
        }
        false
    }

    /// The leases to take back once liveness is held again (see
    /// [`WorkerContext::confirm_liveness`]).
    pub(crate) fn orphans(&self) -> MutexGuard<'_, BTreeMap<ShardId, Orphan>> {
        self.orphans
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The leases held. Nothing awaits while it is locked.
    /// A fraction in [0, 1) particular to this worker and `salt`: what spreads the periodic
    /// work of workers started together over time.
    pub(crate) fn fraction(&self, salt: u64) -> f64 {
        let mut hasher = DefaultHasher::new();
        (self.id.as_str(), salt).hash(&mut hasher);
        (hasher.finish() % 1_000) as f64 / 1_000.0
    }

    pub(crate) fn held(&self) -> MutexGuard<'_, BTreeMap<ShardId, HeldLease>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn key(&self, shard: &ShardId) -> LeaseKey {
        LeaseKey::new(self.stream.clone(), shard.clone())
    }

    /// Tells the consumer of `shard` to stop, if it still holds the lease at `fence`. A lost
    /// lease overrides any other reason; otherwise the first reason wins.
    pub(crate) fn signal(&self, shard: &ShardId, fence: &Fence, stop: Stop) {
        if let Some(held) = self.held().get(shard).filter(|held| &held.fence == fence) {
            held.stop.send_if_modified(|current| {
                let change = *current == Stop::Running || stop == Stop::LeaseLost;
                if change {
                    *current = stop;
                }
                change
            });
        }
    }

    /// Records a successful renewal of `shard` at `fence`, sent at `sent_at`.
    pub(crate) fn renewed(&self, shard: &ShardId, fence: &Fence, sent_at: Instant) {
        if let Some(held) = self
            .held()
            .get_mut(shard)
            .filter(|held| &held.fence == fence)
        {
            held.valid_until = held.valid_until.max(sent_at + self.config.lease_duration);
        }
    }

    /// Marks the lease of `shard` at `fence` as being given up: no more renewals.
    pub(crate) fn releasing(&self, shard: &ShardId, fence: &Fence) {
        if let Some(held) = self
            .held()
            .get_mut(shard)
            .filter(|held| &held.fence == fence)
        {
            held.releasing = true;
        }
    }

    /// True while the lease of `shard` at `fence` is held and valid by the local clock.
    pub(crate) fn is_valid(&self, shard: &ShardId, fence: &Fence) -> bool {
        self.held()
            .get(shard)
            .is_some_and(|held| &held.fence == fence && Instant::now() < held.valid_until)
    }

    /// A backoff for retries on `shard`, jittered by a generator seeded with this worker's id
    /// and the shard.
    pub(crate) fn backoff(&self, shard: &ShardId) -> crate::Backoff {
        crate::Backoff::new(
            self.config.initial_backoff,
            self.config.max_backoff,
            &(self.id.as_str(), shard.as_str()),
        )
    }

    /// Forgets `shard` if it is still held at `fence`.
    pub(crate) fn forget(&self, shard: &ShardId, fence: &Fence) {
        let mut held = self.held();
        if held.get(shard).is_some_and(|h| &h.fence == fence) {
            held.remove(shard);
        }
    }
}
