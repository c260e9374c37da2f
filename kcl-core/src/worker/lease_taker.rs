//! Taking leases: unowned and expired ones and those of workers the store proves dead first,
//! then balancing by asking owners above their share to hand leases over, several per cycle,
//! stealing when a handoff times out.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::lease::{Checkpoint, Lease, LeaseCensus, LeaseKey, TakeMode, WorkerId};
use crate::worker::context::{Orphan, WorkerContext};
use crate::worker::metrics::WorkerMetrics;
use crate::worker::shard_consumer;
use crate::worker::shard_sync::parents_finished;
use crate::{Error, ShardId};

/// Runs the taking cycles of one worker and remembers the handoffs it asked for.
pub(crate) struct LeaseTaker {
    ctx: Arc<WorkerContext>,
    /// Handoffs requested: shard → when, and at which epoch.
    requested: BTreeMap<ShardId, (Instant, u64)>,
    /// Cycles run so far. The first only takes available leases: balancing waits until workers
    /// starting together have all heartbeated.
    cycles: u64,
    /// The other owners of unexpired leases and the other live workers at the last cycle, if
    /// this worker is one of the few that watch for deaths between cycles (see [`is_watcher`]);
    /// empty otherwise.
    watched: Vec<WorkerId>,
    /// Whether this worker was one of the watchers at the last cycle (see [`is_watcher`]);
    /// true until a cycle tells.
    watcher: bool,
    /// The workers the last cycle found dead.
    known_dead: BTreeSet<WorkerId>,
    /// What the last listing of the leases saw, to tell whether a cycle may skip the next.
    last_listing: Option<Listing>,
    /// The store's change number as last read, and when it was first read at that value.
    changes: Option<(u64, Instant)>,
}

/// In lease durations, how long a cycle may go on skipping the census because nothing changed.
/// A lease can come free without a change the store counts: its owner stops renewing it while
/// still heartbeating. The owner's own failed release makes it look at once
/// ([`WorkerEvent::LeaseLeftBehind`](crate::worker::context::WorkerEvent)); this bounds the
/// rest, as cheaply as a read per worker per minute at default leases.
const SAFETY_READ_AFTER: u32 = 6;

/// How long after the store's change number moved a listing surely shows the change: the
/// number may move a moment before the change commits (contract clause 12).
const CHANGE_SETTLING: Duration = Duration::from_secs(1);

/// What a cycle that listed the leases saw.
struct Listing {
    /// When it listed.
    at: Instant,
    /// The store's change number read just before.
    changes: u64,
    /// The live workers.
    workers: Vec<WorkerId>,
    /// True if it found nothing to do: it took nothing, asked for no handoff, and none is
    /// pending.
    settled: bool,
    /// When the first lease whose owner missed a renewal expires.
    expiry: Option<Instant>,
}

impl LeaseTaker {
    pub(crate) fn new(ctx: Arc<WorkerContext>) -> Self {
        LeaseTaker {
            ctx,
            requested: BTreeMap::new(),
            cycles: 0,
            watched: Vec::new(),
            watcher: true,
            known_dead: BTreeSet::new(),
            last_listing: None,
            changes: None,
        }
    }

    /// True if this worker is one of the few that watch for deaths between cycles and sync
    /// the shards periodically (see [`is_watcher`]).
    pub(crate) fn is_watcher(&self) -> bool {
        self.watcher
    }

    /// Between cycles: true if one of the workers watched has died since the last cycle (one store call, made only while this worker holds liveness).
    pub(crate) async fn sees_a_death(&self) -> bool {
        if self.watched.is_empty() || !self.ctx.liveness.is_held() {
            return false;
        }
        match self.ctx.store.dead_workers(&self.watched).await {
            Ok(dead) => dead.iter().any(|worker| !self.known_dead.contains(worker)),
            Err(error) => {
                tracing::debug!(%error, "asking which workers died failed");
                false
            }
        }
    }

    /// One cycle. Errors of the store are logged; the next cycle tries again. Returns how soon
    /// another cycle would find something to do, if sooner than usual: a pending handoff (the
    /// owner notices it at its next renewal), or a lease whose owner stopped renewing it (it
    /// can be taken the moment it expires).
    ///
    /// A `routine` cycle (one that runs because its time came, not because something happened)
    /// skips listing the leases when the last listing found nothing to do and nothing has
    /// changed since (see [`LeaseTaker::nothing_changed`]): with many workers on one table,
    /// listing it is what costs.
    pub(crate) async fn run_cycle(
        &mut self,
        consumers: &mut JoinSet<()>,
        routine: bool,
    ) -> Option<Duration> {
        let expiring = match self.cycle(consumers, routine).await {
            Ok(expiring) => expiring,
            Err(error) => {
                tracing::warn!(%error, "taking leases failed");
                // What changed meanwhile is unknown: the next cycle reads the census.
                self.last_listing = None;
                None
            }
        };
        self.cycles += 1;
        // The owner answers at its next renewal, at any moment within a renewal interval: look
        // four times per interval so the lease starts here soon after it is handed over.
        let handoffs = (!self.requested.is_empty()).then(|| self.ctx.config.renewal_interval() / 4);
        match (handoffs, expiring) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How long until the next cycle when nothing is pending: the taker interval, give or take
    /// a fifth, varied from cycle to cycle and worker to worker so that workers started
    /// together do not all list the lease table at the same moments.
    pub(crate) fn usual_wait(&self) -> Duration {
        self.ctx
            .config
            .taker_interval
            .mul_f64(0.8 + 0.4 * self.fraction(self.cycles))
    }

    /// Between half and one and a half `period`, particular to this worker.
    pub(crate) fn spread_over(&self, period: Duration) -> Duration {
        period.mul_f64(0.5 + self.fraction(u64::MAX))
    }

    /// A fraction in [0, 1) particular to this worker and `salt`.
    fn fraction(&self, salt: u64) -> f64 {
        self.ctx.fraction(salt)
    }

    /// The time until the first lease expires whose owner missed a renewal or is not among the
    /// live `workers` (one shutting down stops renewing once its consumers are done; nothing
    /// the store counts as a change marks its leases' expiry), plus a margin for clocks read at
    /// different moments. Missed by half an interval: a lease read just before its owner renews
    /// it has a moment less than a renewal interval fewer left than a fresh one, and would
    /// otherwise look missed at every other read.
    fn next_expiry(&self, census: &LeaseCensus, workers: &[WorkerId]) -> Option<Duration> {
        let config = &self.ctx.config;
        let watched = |owner: Option<&WorkerId>, left: Duration| {
            let missed = config.renewal_interval().mul_f64(1.5);
            let departed = owner.is_some_and(|owner| !workers.contains(owner));
            !left.is_zero() && (departed || left + missed < config.lease_duration)
        };
        let listed = census
            .leases
            .iter()
            .filter(|lease| {
                lease.checkpoint != Checkpoint::ShardEnd && !lease.is_held_by(&self.ctx.id)
            })
            .filter_map(|lease| lease.time_left.map(|left| (lease.owner.as_ref(), left)));
        let settled = census
            .settled
            .iter()
            .map(|tally| (Some(&tally.owner), tally.soonest_expiry));
        listed
            .chain(settled)
            .filter(|(owner, left)| watched(*owner, *left))
            .map(|(_, left)| left)
            .min()
            .map(|left| left + Duration::from_millis(20))
    }

    /// True if a listing now would show nothing the last one did not: the store keeps a change
    /// number and it has not moved since a second before the last listing, the live workers
    /// are the same, that listing found nothing to do, no lease it saw is due to expire, and it
    /// is younger than [`SAFETY_READ_AFTER`] lease durations.
    fn nothing_changed(&self, changes: Option<u64>, workers: &[WorkerId]) -> bool {
        let now = Instant::now();
        let (Some(last), Some(changes), Some((_, first_read))) =
            (&self.last_listing, changes, self.changes)
        else {
            return false;
        };
        last.settled
            && last.changes == changes
            && last.at >= first_read + CHANGE_SETTLING
            && last.workers == workers
            && last.expiry.is_none_or(|expiry| now < expiry)
            && now < last.at + self.ctx.config.lease_duration * SAFETY_READ_AFTER
            && self.requested.is_empty()
            && self.ctx.orphans().is_empty()
    }

    /// Reads the store's change number, noting when it first showed this value. `None` if the
    /// store keeps none, or if reading it failed: the cycle lists the leases either way.
    async fn read_changes(&mut self) -> Option<u64> {
        let changes = match self.ctx.store.lease_changes().await {
            Ok(changes) => changes?,
            Err(error) => {
                tracing::debug!(%error, "reading the lease table's change number failed; listing it");
                return None;
            }
        };
        if self.changes.is_none_or(|(seen, _)| seen != changes) {
            self.changes = Some((changes, Instant::now()));
        }
        Some(changes)
    }

    async fn cycle(
        &mut self,
        consumers: &mut JoinSet<()>,
        routine: bool,
    ) -> Result<Option<Duration>, Error> {
        let ctx = Arc::clone(&self.ctx);
        // Other workers may see this one dead: it takes nothing until it holds liveness again.
        if ctx.liveness.is_lost() {
            return Ok(None);
        }
        self.retake_orphans(consumers).await?;
        let changes = self.read_changes().await;
        let mut workers = ctx.store.live_workers(ctx.config.lease_duration).await?;
        if routine && self.nothing_changed(changes, &workers) {
            let now = Instant::now();
            return Ok(self
                .last_listing
                .as_ref()
                .and_then(|last| last.expiry)
                .map(|expiry| expiry.saturating_duration_since(now)));
        }
        let listed_at = Instant::now();
        let mut census = ctx.store.lease_census(&ctx.stream, &ctx.id).await?;
        let live = workers.clone();
        let dead = self.find_dead(&census, &workers).await;
        workers.retain(|worker| !dead.contains(worker));
        if !workers.contains(&ctx.id) {
            workers.push(ctx.id.clone());
        }
        // The census only counts the dead workers' settled leases: read them in full.
        for owner in &dead {
            if census.settled.iter().any(|tally| &tally.owner == owner) {
                let leases = ctx.store.leases_held_by(&ctx.stream, owner).await?;
                census.expand(owner, leases);
            }
        }
        let leases = &census.leases;
        let by_shard: BTreeMap<ShardId, &Lease> = leases
            .iter()
            .map(|lease| (lease.key.shard.clone(), lease))
            .collect();
        // Leases with work left whose parents are done: what balancing shares out.
        let active: Vec<&Lease> = leases
            .iter()
            .filter(|lease| lease.checkpoint != Checkpoint::ShardEnd)
            .filter(|lease| parents_finished(lease, &by_shard))
            .collect();
        // Balanced: every worker holds the floor or the ceiling of the fair share.
        let shared = active.len() + census.settled.iter().map(|t| t.leases).sum::<usize>();
        let floor = shared / workers.len().max(1);
        let target = shared.div_ceil(workers.len().max(1));
        let mut expiring = self.next_expiry(&census, &workers);
        if !ctx.orphans().is_empty() {
            let soon = ctx.config.liveness_interval;
            expiring = Some(expiring.map_or(soon, |expiring| expiring.min(soon)));
        }

        // Whether this cycle did or left anything to do: if so, the next lists again.
        let mut tried_to_take = false;
        // Leases handed to this worker (a completed handoff) start here. The listing may be
        // stale (this worker's own consumer may have released or handed the lease on since):
        // only a fresh read decides. Leases left when liveness was lost are only taken back,
        // at their epoch (above).
        for lease in &active {
            if lease.is_held_by(&ctx.id)
                && !ctx.held().contains_key(&lease.key.shard)
                && !ctx.orphans().contains_key(&lease.key.shard)
            {
                self.requested.remove(&lease.key.shard);
                self.start_handed_over(lease, consumers).await?;
                tried_to_take = true;
            }
        }
        // Leases being given up (a finished shard, a handoff) no longer count: their release
        // may be in the census already, with the consumer not yet gone.
        let mut mine = ctx.held().values().filter(|held| !held.releasing).count();

        // Unowned and expired leases, and those of dead workers, up to this worker's share.
        let owner_dead = |lease: &Lease| lease.owner.as_ref().is_some_and(|o| dead.contains(o));
        let mut available: Vec<&Lease> = active
            .iter()
            .copied()
            .filter(|lease| lease.is_available() || owner_dead(lease))
            .filter(|lease| !ctx.held().contains_key(&lease.key.shard))
            .collect();
        // Each worker first goes for the leases that fall to it when the shards are dealt out
        // among the live workers by hash, so that workers starting together take different
        // leases rather than racing for the same ones; then for the rest, in its own order.
        let dealt_to_me = dealer(&workers, &ctx.id);
        // The watchers (see [`is_watcher`]) share a dead worker's leases out among themselves
        // by hash and take them whatever their share: processing resumes within a liveness
        // interval, and balancing moves the surplus on afterwards.
        let mut watchers = workers.clone();
        watchers.sort();
        watchers.truncate(WATCHERS);
        let rescued_by_me = dealer(&watchers, &ctx.id);
        let rescue = |lease: &Lease| owner_dead(lease) && rescued_by_me(lease.key.shard.as_str());
        available.sort_by_key(|lease| {
            let shard = lease.key.shard.as_str();
            (!rescue(lease), !dealt_to_me(shard), self.spread(shard))
        });
        // Takes lost to other workers one after another mean the census is stale (workers
        // starting together take thousands of leases at once): read it again soon, rather than
        // try every lease it showed.
        let mut lost_in_a_row = 0;
        let mut stale = false;
        for lease in available {
            if mine >= target && !rescue(lease) {
                break;
            }
            if lost_in_a_row == LOST_TAKES_BEFORE_A_NEW_CENSUS {
                stale = true;
                let soon = ctx.config.taker_interval / 10;
                expiring = Some(expiring.map_or(soon, |expiring| expiring.min(soon)));
                break;
            }
            tried_to_take = true;
            let taken = if lease.is_available() {
                self.take(
                    &lease.key,
                    lease.epoch,
                    TakeMode::IfAvailable,
                    None,
                    consumers,
                )
                .await?
            } else {
                // Its owner may have started a batch on a liveness check begun just before it
                // died: delivery waits out the period such a check vouches for.
                let owner_stops = Instant::now() + ctx.liveness.freshness();
                let taken = self
                    .take(
                        &lease.key,
                        lease.epoch,
                        TakeMode::Steal,
                        Some(owner_stops),
                        consumers,
                    )
                    .await?;
                if taken {
                    tracing::info!(shard = %lease.key.shard, owner = ?lease.owner, "took the lease of a dead worker");
                    WorkerMetrics::add(&ctx.metrics.leases_taken_from_dead, 1);
                }
                taken
            };
            if taken {
                mine += 1;
                lost_in_a_row = 0;
            } else {
                lost_in_a_row += 1;
            }
        }
        self.forget_dead(&dead, &census).await;
        let mut listing = Listing {
            at: listed_at,
            changes: changes.unwrap_or_default(),
            workers: live,
            settled: false,
            expiry: expiring.map(|left| listed_at + left),
        };
        if mine >= target || self.cycles == 0 || stale {
            self.requested.clear();
            listing.settled = self.cycles > 0 && !tried_to_take;
            self.last_listing = changes.map(|_| listing);
            return Ok(expiring);
        }

        // Balance: ask owners above the share for leases, as many as this worker lacks.
        // Requests that another requester overwrote, or that the owner answered, are dropped.
        self.requested.retain(|shard, (_, epoch)| {
            by_shard.get(shard).is_some_and(|lease| {
                lease.epoch == *epoch && lease.handoff_to.as_ref() == Some(&ctx.id)
            })
        });
        // Below the floor, take from anyone above the floor; at the floor, take one from anyone
        // above the ceiling. Either way nobody is pushed below the floor, so moves never cycle.
        let (goal, above) = if mine < floor {
            (floor, floor)
        } else {
            (target, target)
        };
        let mut lacking = goal.saturating_sub(mine);
        let pending: Vec<(ShardId, Instant)> = self
            .requested
            .iter()
            .map(|(shard, (asked_at, _))| (shard.clone(), *asked_at))
            .collect();
        for (shard, asked_at) in pending {
            if lacking == 0 {
                break;
            }
            lacking -= 1;
            // Steal only from an owner that renewed since the request (alive, and will learn
            // of the steal at its next renewal). One that did not may be paused with its lease
            // still valid by its own clock: its lease is taken when it expires.
            if asked_at.elapsed() >= ctx.config.handoff_timeout
                && let Some(lease) = by_shard.get(&shard)
                && let Some(left) = lease.time_left
                && listed_at + left > asked_at + ctx.config.lease_duration
            {
                tracing::info!(%shard, "handoff timed out; stealing");
                tried_to_take = true;
                // A renewal whose reply the owner never got told it nothing of the request, and
                // nothing more of its lease either: by its own clock the lease is valid at most
                // until the expiry listed here. Delivery waits for that moment.
                let owner_stops = listed_at + left + Duration::from_millis(20);
                if self
                    .take(
                        &lease.key,
                        lease.epoch,
                        TakeMode::Steal,
                        Some(owner_stops),
                        consumers,
                    )
                    .await?
                {
                    WorkerMetrics::add(&ctx.metrics.leases_stolen, 1);
                }
                self.requested.remove(&shard);
            }
        }
        let candidates = self
            .handoff_candidates(&census, &workers, above, lacking)
            .await?;
        for lease in candidates.into_iter().take(lacking) {
            match ctx
                .store
                .request_handoff(&lease.key, lease.epoch, &ctx.id)
                .await
            {
                Ok(()) => {
                    tracing::debug!(shard = %lease.key.shard, owner = ?lease.owner, "asked for handoff");
                    self.requested
                        .insert(lease.key.shard.clone(), (Instant::now(), lease.epoch));
                }
                Err(Error::LeaseConflict { .. } | Error::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        listing.settled = !tried_to_take && self.requested.is_empty() && mine >= floor;
        self.last_listing = changes.map(|_| listing);
        Ok(expiring)
    }

    /// Up to `lacking` leases to ask for, of live owners holding more than `above`: each such
    /// owner's spare leases (read in full, unexpired, unfinished and not asked for already),
    /// owners and leases in an order particular to this worker.
    async fn handoff_candidates(
        &self,
        census: &LeaseCensus,
        workers: &[WorkerId],
        above: usize,
        lacking: usize,
    ) -> Result<Vec<Lease>, Error> {
        let ctx = &self.ctx;
        let mut owners: Vec<&WorkerId> = census
            .settled
            .iter()
            .map(|tally| &tally.owner)
            .chain(
                census
                    .leases
                    .iter()
                    .filter_map(|lease| lease.owner.as_ref()),
            )
            .filter(|owner| *owner != &ctx.id && workers.contains(owner))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        owners.sort_by_key(|owner| self.spread(owner.as_str()));
        let mut candidates = Vec::new();
        for owner in owners {
            if candidates.len() >= lacking {
                break;
            }
            let spare = census.held_by(owner).saturating_sub(above);
            if spare == 0 {
                continue;
            }
            let mut leases = ctx.store.leases_held_by(&ctx.stream, owner).await?;
            // A lease of a worker that stopped renewing it will expire: nothing to ask for.
            leases.retain(|lease| {
                !lease.is_expired()
                    && lease.checkpoint != Checkpoint::ShardEnd
                    && lease.handoff_to.is_none()
            });
            leases.sort_by_key(|lease| self.spread(lease.key.shard.as_str()));
            candidates.extend(leases.into_iter().take(spare));
        }
        candidates.sort_by_key(|lease| self.spread(lease.key.shard.as_str()));
        candidates.truncate(lacking);
        Ok(candidates)
    }

    /// Of the other owners of unexpired leases and the other live workers, those the store
    /// proves dead (none unless this worker holds liveness). Remembers them for the death watch
    /// until the next cycle, if this worker keeps one.
    async fn find_dead(
        &mut self,
        census: &LeaseCensus,
        workers: &[WorkerId],
    ) -> BTreeSet<WorkerId> {
        let ctx = &self.ctx;
        let listed = census
            .leases
            .iter()
            .filter(|lease| lease.checkpoint != Checkpoint::ShardEnd && !lease.is_expired())
            .filter_map(|lease| lease.owner.as_ref());
        let others: BTreeSet<&WorkerId> = listed
            .chain(census.settled.iter().map(|tally| &tally.owner))
            .chain(workers.iter())
            .filter(|worker| *worker != &ctx.id)
            .collect();
        let others: Vec<WorkerId> = others.into_iter().cloned().collect();
        self.watcher = is_watcher(&ctx.id, &others);
        self.watched = if self.watcher {
            others.clone()
        } else {
            Vec::new()
        };
        self.known_dead.clear();
        if !ctx.liveness.is_held() {
            return BTreeSet::new();
        }
        match ctx.store.dead_workers(&others).await {
            Ok(dead) => self.known_dead = dead.into_iter().collect(),
            Err(error) => tracing::warn!(%error, "asking which workers died failed"),
        }
        self.known_dead.clone()
    }

    /// Deregisters the dead workers that own no unexpired lease any more, so that they leave
    /// the live-worker list and the store forgets their liveness.
    async fn forget_dead(&self, dead: &BTreeSet<WorkerId>, census: &LeaseCensus) {
        for worker in dead {
            if census.held_by(worker) == 0
                && let Err(error) = self.ctx.store.deregister_worker(worker).await
            {
                tracing::debug!(%worker, %error, "deregistering a dead worker failed");
            }
        }
    }

    /// Takes back, at the epoch they were held at, the leases whose consumers stopped when this
    /// worker's liveness was lost (one whose consumer is still stopping waits for the next
    /// cycle). A lease another worker took meanwhile is left to it.
    async fn retake_orphans(&self, consumers: &mut JoinSet<()>) -> Result<(), Error> {
        let orphans: Vec<(ShardId, Orphan)> = self
            .ctx
            .orphans()
            .iter()
            .map(|(shard, orphan)| (shard.clone(), *orphan))
            .collect();
        for (shard, orphan) in orphans {
            if self.ctx.held().contains_key(&shard) {
                continue;
            }
            let key = self.ctx.key(&shard);
            let (epoch, deliver_from) = (orphan.epoch, orphan.deliver_from);
            self.take(&key, epoch, TakeMode::Steal, deliver_from, consumers)
                .await?;
            self.ctx.orphans().remove(&shard);
        }
        Ok(())
    }

    /// Takes the lease at `seen_epoch` and starts its consumer, which delivers nothing before
    /// `deliver_from` if given; `false` if another worker got there first.
    async fn take(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        mode: TakeMode,
        deliver_from: Option<Instant>,
        consumers: &mut JoinSet<()>,
    ) -> Result<bool, Error> {
        let ctx = &self.ctx;
        let sent_at = Instant::now();
        match ctx
            .store
            .take_lease(key, seen_epoch, &ctx.id, mode, ctx.config.lease_duration)
            .await
        {
            Ok(taken) => {
                tracing::info!(shard = %taken.key.shard, epoch = taken.epoch, ?mode, "took lease");
                let valid_until = sent_at + ctx.config.lease_duration;
                self.start(taken, valid_until, deliver_from, consumers);
                Ok(true)
            }
            Err(Error::LeaseConflict { .. } | Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Starts the consumer of a lease the listing shows held by this worker without a consumer
    /// here (another worker handed it over), if a fresh read still shows it so. It is taken
    /// again at the epoch read rather than started at it: another worker that saw this one dead
    /// (its liveness lost and found again) may be stealing that epoch, and only one take wins.
    async fn start_handed_over(
        &self,
        listed: &Lease,
        consumers: &mut JoinSet<()>,
    ) -> Result<(), Error> {
        let Some(lease) = self.ctx.store.get_lease(&listed.key).await? else {
            return Ok(());
        };
        if lease.is_held_by(&self.ctx.id)
            && !lease.is_expired()
            && !self.ctx.held().contains_key(&lease.key.shard)
        {
            self.take(&lease.key, lease.epoch, TakeMode::Steal, None, consumers)
                .await?;
        }
        Ok(())
    }

    /// Starts a consumer for `lease`, valid by the local clock until `valid_until`, delivering
    /// from `deliver_from` on if given.
    fn start(
        &self,
        lease: Lease,
        valid_until: Instant,
        deliver_from: Option<Instant>,
        consumers: &mut JoinSet<()>,
    ) {
        WorkerMetrics::add(&self.ctx.metrics.leases_taken, 1);
        let ctx = Arc::clone(&self.ctx);
        shard_consumer::start(ctx, lease, valid_until, deliver_from, consumers);
    }

    /// An order of shards particular to this worker, so that workers balancing at the same time
    /// go for different leases.
    fn spread(&self, name: &str) -> u64 {
        let mut hasher = DefaultHasher::new();
        (self.ctx.id.as_str(), name).hash(&mut hasher);
        hasher.finish()
    }
}

/// Deals shards out among `workers` by hash: a test, the same for every worker that sees the
/// same workers, of whether a shard falls to `me`.
fn dealer(workers: &[WorkerId], me: &WorkerId) -> impl Fn(&str) -> bool {
    let mut sorted: Vec<&WorkerId> = workers.iter().collect();
    sorted.sort();
    sorted.dedup();
    let seat = sorted.iter().position(|worker| *worker == me);
    let seats = sorted.len().max(1) as u64;
    move |shard| {
        let mut hasher = DefaultHasher::new();
        shard.hash(&mut hasher);
        seat.is_some_and(|seat| hasher.finish() % seats == seat as u64)
    }
}

/// Takes lost in a row after which a taker cycle stops taking and reads the census again soon.
const LOST_TAKES_BEFORE_A_NEW_CENSUS: usize = 3;

/// How many workers watch for deaths between taker cycles.
const WATCHERS: usize = 4;

/// Whether `me` is one of the [`WATCHERS`] first workers by id among itself and `others`
/// (ordered by id): those ask the store about every other worker once a liveness interval.
/// The watch so costs the store a few statements per interval, however many workers there
/// are. A watcher that sees a death takes some of the dead worker's leases at once; that moves
/// the store's change number, so every other worker's next taker cycle reads the census, asks
/// about every owner and takes its share: takeover within about a taker interval. A group of
/// at most [`WATCHERS`] workers all watch, and take over within a liveness interval.
fn is_watcher(me: &WorkerId, others: &[WorkerId]) -> bool {
    others.partition_point(|other| other < me) < WATCHERS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<WorkerId> {
        names
            .iter()
            .map(|name| WorkerId::new(name).unwrap())
            .collect()
    }

    #[test]
    fn shards_are_dealt_to_exactly_one_worker_each() {
        let workers = ids(&["c", "a", "b"]);
        let dealers: Vec<_> = workers.iter().map(|me| dealer(&workers, me)).collect();
        let mut dealt = [0usize; 3];
        for index in 0..3_000u64 {
            let shard = crate::ShardId::from_index(index);
            let takers: Vec<usize> = (0..3).filter(|&w| dealers[w](shard.as_str())).collect();
            assert_eq!(takers.len(), 1, "{shard} dealt to {takers:?}");
            dealt[takers[0]] += 1;
        }
        assert!(dealt.iter().all(|&n| n > 800), "roughly even: {dealt:?}");
        let stranger = WorkerId::new("z").unwrap();
        assert!(
            !dealer(&workers, &stranger)("shardId-000000000001"),
            "not a live worker"
        );
    }

    #[test]
    fn the_first_few_workers_by_id_watch() {
        let others = ids(&["b", "c", "e", "f", "g"]);
        let watching: Vec<&str> = ["a", "d", "d0", "e0", "z"]
            .into_iter()
            .filter(|me| is_watcher(&WorkerId::new(me).unwrap(), &others))
            .collect();
        assert_eq!(
            watching,
            ["a", "d", "d0", "e0"],
            "fewer than four others before them"
        );
        assert!(is_watcher(
            &WorkerId::new("z").unwrap(),
            &ids(&["a", "b", "c"])
        ));
        assert!(is_watcher(&WorkerId::new("z").unwrap(), &[]));
    }
}
