//! A lease store that counts what passes through it: calls and rows per kind of operation, and
//! the latency of every renewal call, shared by every worker that wraps its own store with the
//! same [`StoreCounters`]. It forwards every operation, the batch ones included, to the store it
//! wraps, so the wrapped store's own batch implementations run, never the trait's defaults.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kcl_core::{
    CheckpointUpdate, Error, Fence, Lease, LeaseCensus, LeaseKey, LeaseStore, LivenessHold,
    NewLease, ShardId, StreamName, TakeMode, WorkerId,
};

/// What a lease-store call does, as the counters group them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// `renew_lease`, `renew_leases`.
    Renew,
    /// `list_leases`.
    List,
    /// `lease_census`: the taker's read of the table (rows in full plus one per owner).
    Census,
    /// `leases_held_by`.
    HeldBy,
    /// `take_lease`.
    Take,
    /// `checkpoint`, `checkpoint_many`.
    Checkpoint,
    /// `heartbeat`.
    Heartbeat,
    /// `dead_workers`: the death watch.
    Liveness,
    /// A check of the worker's own liveness hold (on the hold's connection).
    HoldCheck,
    /// `lease_changes`: the taker's look for changes.
    Changes,
    /// `live_workers`.
    LiveWorkers,
    /// `create_lease_if_absent`, `create_leases_if_absent`.
    Create,
    /// `get_lease`.
    Get,
    /// `request_handoff`, `complete_handoff`.
    Handoff,
    /// `release_lease`.
    Release,
    /// `delete_lease`.
    Delete,
    /// `record_child_shards`, `deregister_worker`, `hold_liveness`.
    Other,
}

impl CallKind {
    /// Every kind, in the order reports show them.
    pub const ALL: [CallKind; 17] = [
        CallKind::Renew,
        CallKind::List,
        CallKind::Census,
        CallKind::HeldBy,
        CallKind::Take,
        CallKind::Checkpoint,
        CallKind::Heartbeat,
        CallKind::Liveness,
        CallKind::HoldCheck,
        CallKind::Changes,
        CallKind::LiveWorkers,
        CallKind::Create,
        CallKind::Get,
        CallKind::Handoff,
        CallKind::Release,
        CallKind::Delete,
        CallKind::Other,
    ];

    /// A short lower-case name for tables.
    pub fn name(self) -> &'static str {
        match self {
            CallKind::Renew => "renew",
            CallKind::List => "list",
            CallKind::Census => "census",
            CallKind::HeldBy => "held_by",
            CallKind::Take => "take",
            CallKind::Checkpoint => "checkpoint",
            CallKind::Heartbeat => "heartbeat",
            CallKind::Liveness => "dead_workers",
            CallKind::HoldCheck => "hold_check",
            CallKind::Changes => "changes",
            CallKind::LiveWorkers => "live_workers",
            CallKind::Create => "create",
            CallKind::Get => "get",
            CallKind::Handoff => "handoff",
            CallKind::Release => "release",
            CallKind::Delete => "delete",
            CallKind::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The counters of one kind.
#[derive(Debug, Default)]
struct KindCounters {
    calls: AtomicU64,
    batch_calls: AtomicU64,
    rows: AtomicU64,
    errors: AtomicU64,
    cancelled: AtomicU64,
}

/// One kind's counts at one moment, or between two moments (see [`CallCounts::since`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCount {
    /// Calls made (one per call, a batch call counting once), counted when they start.
    pub calls: u64,
    /// Of `calls`, those to a batch operation (`renew_leases`, `checkpoint_many`,
    /// `create_leases_if_absent`).
    pub batch_calls: u64,
    /// Rows the calls touched: 1 for a single operation, the number of leases for a batch, the
    /// rows returned for `list_leases` and `live_workers`, and the workers asked about for
    /// `dead_workers`.
    pub rows: u64,
    /// Failed outcomes: calls that returned an error, and leases of a batch whose own outcome
    /// was an error (a lost lease, for instance).
    pub errors: u64,
    /// Calls abandoned before they answered (the worker's store-call deadline dropped them).
    pub cancelled: u64,
}

impl KindCount {
    fn minus(self, earlier: KindCount) -> KindCount {
        KindCount {
            calls: self.calls.saturating_sub(earlier.calls),
            batch_calls: self.batch_calls.saturating_sub(earlier.batch_calls),
            rows: self.rows.saturating_sub(earlier.rows),
            errors: self.errors.saturating_sub(earlier.errors),
            cancelled: self.cancelled.saturating_sub(earlier.cancelled),
        }
    }

    fn plus(self, other: KindCount) -> KindCount {
        KindCount {
            calls: self.calls + other.calls,
            batch_calls: self.batch_calls + other.batch_calls,
            rows: self.rows + other.rows,
            errors: self.errors + other.errors,
            cancelled: self.cancelled + other.cancelled,
        }
    }
}

/// Every kind's counts at one moment (a [`StoreCounters::snapshot`]), or between two.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallCounts {
    kinds: [KindCount; CallKind::ALL.len()],
}

impl CallCounts {
    /// The counts of `kind`.
    pub fn get(&self, kind: CallKind) -> KindCount {
        self.kinds[kind.index()]
    }

    /// The counts of every kind together.
    pub fn total(&self) -> KindCount {
        self.kinds
            .iter()
            .fold(KindCount::default(), |sum, count| sum.plus(*count))
    }

    /// What was counted after `earlier` (a snapshot of the same counters) until this one.
    pub fn since(&self, earlier: &CallCounts) -> CallCounts {
        let mut kinds = self.kinds;
        for (later, earlier) in kinds.iter_mut().zip(earlier.kinds.iter()) {
            *later = later.minus(*earlier);
        }
        CallCounts { kinds }
    }
}

/// Counters shared by every [`CountingLeaseStore`] made with them.
#[derive(Debug, Default)]
pub struct StoreCounters {
    kinds: [KindCounters; CallKind::ALL.len()],
    /// How long each `renew_lease` or `renew_leases` call took, in the order they finished.
    renew_latencies: Mutex<Vec<Duration>>,
}

impl StoreCounters {
    /// Fresh counters, at zero.
    pub fn new() -> Arc<StoreCounters> {
        Arc::new(StoreCounters::default())
    }

    /// Every kind's counts now.
    pub fn snapshot(&self) -> CallCounts {
        let mut counts = CallCounts::default();
        for (count, counters) in counts.kinds.iter_mut().zip(self.kinds.iter()) {
            let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
            *count = KindCount {
                calls: read(&counters.calls),
                batch_calls: read(&counters.batch_calls),
                rows: read(&counters.rows),
                errors: read(&counters.errors),
                cancelled: read(&counters.cancelled),
            };
        }
        counts
    }

    /// The latency of every renewal call (single or batch, one sample per call) finished since
    /// the last time they were taken, and forgets them. A call abandoned before it answered
    /// counts with the time until it was abandoned.
    pub fn take_renew_latencies(&self) -> Vec<Duration> {
        std::mem::take(&mut *lock(&self.renew_latencies))
    }

    fn kind(&self, kind: CallKind) -> &KindCounters {
        &self.kinds[kind.index()]
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One call in flight: counted when it starts, its outcome when it finishes, and as cancelled
/// if its future is dropped first.
struct Call<'a> {
    counters: &'a StoreCounters,
    kind: CallKind,
    started: Instant,
    finished: bool,
}

impl<'a> Call<'a> {
    fn start(counters: &'a StoreCounters, kind: CallKind, batch: bool, rows: u64) -> Call<'a> {
        let kind_counters = counters.kind(kind);
        kind_counters.calls.fetch_add(1, Ordering::Relaxed);
        if batch {
            kind_counters.batch_calls.fetch_add(1, Ordering::Relaxed);
        }
        kind_counters.rows.fetch_add(rows, Ordering::Relaxed);
        Call {
            counters,
            kind,
            started: Instant::now(),
            finished: false,
        }
    }

    /// Records the outcome: rows known only now (returned by a list) and failed outcomes.
    fn finish(mut self, rows: u64, errors: u64) {
        self.finished = true;
        let kind_counters = self.counters.kind(self.kind);
        kind_counters.rows.fetch_add(rows, Ordering::Relaxed);
        kind_counters.errors.fetch_add(errors, Ordering::Relaxed);
        self.record_latency();
    }

    fn record_latency(&self) {
        if self.kind == CallKind::Renew {
            lock(&self.counters.renew_latencies).push(self.started.elapsed());
        }
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.counters
                .kind(self.kind)
                .cancelled
                .fetch_add(1, Ordering::Relaxed);
            self.record_latency();
        }
    }
}

fn failed<T>(result: &Result<T, Error>) -> u64 {
    u64::from(result.is_err())
}

/// Failed outcomes of a batch call: the whole call, or each lease whose outcome failed.
fn failed_in_batch<T>(result: &Result<Vec<Result<T, Error>>, Error>) -> u64 {
    match result {
        Ok(outcomes) => outcomes.iter().filter(|outcome| outcome.is_err()).count() as u64,
        Err(_) => 1,
    }
}

fn count(n: usize) -> u64 {
    n as u64
}

/// A [`LeaseStore`] that forwards every call to the store it wraps and counts it in shared
/// [`StoreCounters`].
#[derive(Debug, Clone)]
pub struct CountingLeaseStore {
    inner: Arc<dyn LeaseStore>,
    counters: Arc<StoreCounters>,
}

impl CountingLeaseStore {
    /// Wraps `inner`, counting in `counters`.
    pub fn new(inner: Arc<dyn LeaseStore>, counters: Arc<StoreCounters>) -> CountingLeaseStore {
        CountingLeaseStore { inner, counters }
    }

    /// The counters this store counts in.
    pub fn counters(&self) -> &Arc<StoreCounters> {
        &self.counters
    }

    fn start(&self, kind: CallKind, batch: bool, rows: u64) -> Call<'_> {
        Call::start(&self.counters, kind, batch, rows)
    }
}

#[async_trait]
impl LeaseStore for CountingLeaseStore {
    async fn create_lease_if_absent(&self, lease: &NewLease) -> Result<bool, Error> {
        let call = self.start(CallKind::Create, false, 1);
        let result = self.inner.create_lease_if_absent(lease).await;
        call.finish(0, failed(&result));
        result
    }

    async fn get_lease(&self, key: &LeaseKey) -> Result<Option<Lease>, Error> {
        let call = self.start(CallKind::Get, false, 1);
        let result = self.inner.get_lease(key).await;
        call.finish(0, failed(&result));
        result
    }

    async fn list_leases(&self, stream: &StreamName) -> Result<Vec<Lease>, Error> {
        let call = self.start(CallKind::List, false, 0);
        let result = self.inner.list_leases(stream).await;
        let rows = result.as_ref().map_or(0, |leases| count(leases.len()));
        call.finish(rows, failed(&result));
        result
    }

    async fn lease_census(
        &self,
        stream: &StreamName,
        worker: &WorkerId,
    ) -> Result<LeaseCensus, Error> {
        let call = self.start(CallKind::Census, false, 0);
        let result = self.inner.lease_census(stream, worker).await;
        let rows = result.as_ref().map_or(0, |census| {
            count(census.leases.len() + census.settled.len())
        });
        call.finish(rows, failed(&result));
        result
    }

    async fn leases_held_by(
        &self,
        stream: &StreamName,
        owner: &WorkerId,
    ) -> Result<Vec<Lease>, Error> {
        let call = self.start(CallKind::HeldBy, false, 0);
        let result = self.inner.leases_held_by(stream, owner).await;
        let rows = result.as_ref().map_or(0, |leases| count(leases.len()));
        call.finish(rows, failed(&result));
        result
    }

    async fn take_lease(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        taker: &WorkerId,
        mode: TakeMode,
        duration: Duration,
    ) -> Result<Lease, Error> {
        let call = self.start(CallKind::Take, false, 1);
        let result = self
            .inner
            .take_lease(key, seen_epoch, taker, mode, duration)
            .await;
        call.finish(0, failed(&result));
        result
    }

    async fn create_leases_if_absent(&self, leases: &[NewLease]) -> Result<Vec<bool>, Error> {
        let call = self.start(CallKind::Create, true, count(leases.len()));
        let result = self.inner.create_leases_if_absent(leases).await;
        call.finish(0, failed(&result));
        result
    }

    async fn renew_leases(
        &self,
        leases: &[(LeaseKey, Fence)],
        duration: Duration,
    ) -> Result<Vec<Result<Lease, Error>>, Error> {
        let call = self.start(CallKind::Renew, true, count(leases.len()));
        let result = self.inner.renew_leases(leases, duration).await;
        call.finish(0, failed_in_batch(&result));
        result
    }

    async fn checkpoint_many(
        &self,
        updates: &[(LeaseKey, Fence, CheckpointUpdate)],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let call = self.start(CallKind::Checkpoint, true, count(updates.len()));
        let result = self.inner.checkpoint_many(updates).await;
        call.finish(0, failed_in_batch(&result));
        result
    }

    async fn renew_lease(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        duration: Duration,
    ) -> Result<Lease, Error> {
        let call = self.start(CallKind::Renew, false, 1);
        let result = self.inner.renew_lease(key, fence, duration).await;
        call.finish(0, failed(&result));
        result
    }

    async fn release_lease(&self, key: &LeaseKey, fence: &Fence) -> Result<(), Error> {
        let call = self.start(CallKind::Release, false, 1);
        let result = self.inner.release_lease(key, fence).await;
        call.finish(0, failed(&result));
        result
    }

    async fn checkpoint(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        update: &CheckpointUpdate,
    ) -> Result<(), Error> {
        let call = self.start(CallKind::Checkpoint, false, 1);
        let result = self.inner.checkpoint(key, fence, update).await;
        call.finish(0, failed(&result));
        result
    }

    async fn request_handoff(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        requester: &WorkerId,
    ) -> Result<(), Error> {
        let call = self.start(CallKind::Handoff, false, 1);
        let result = self.inner.request_handoff(key, seen_epoch, requester).await;
        call.finish(0, failed(&result));
        result
    }

    async fn complete_handoff(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        duration: Duration,
    ) -> Result<Lease, Error> {
        let call = self.start(CallKind::Handoff, false, 1);
        let result = self.inner.complete_handoff(key, fence, duration).await;
        call.finish(0, failed(&result));
        result
    }

    async fn record_child_shards(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        children: &[ShardId],
    ) -> Result<(), Error> {
        let call = self.start(CallKind::Other, false, 1);
        let result = self.inner.record_child_shards(key, fence, children).await;
        call.finish(0, failed(&result));
        result
    }

    async fn delete_lease(&self, key: &LeaseKey) -> Result<bool, Error> {
        let call = self.start(CallKind::Delete, false, 1);
        let result = self.inner.delete_lease(key).await;
        call.finish(0, failed(&result));
        result
    }

    async fn heartbeat(&self, worker: &WorkerId) -> Result<(), Error> {
        let call = self.start(CallKind::Heartbeat, false, 1);
        let result = self.inner.heartbeat(worker).await;
        call.finish(0, failed(&result));
        result
    }

    async fn deregister_worker(&self, worker: &WorkerId) -> Result<(), Error> {
        let call = self.start(CallKind::Other, false, 1);
        let result = self.inner.deregister_worker(worker).await;
        call.finish(0, failed(&result));
        result
    }

    async fn live_workers(&self, timeout: Duration) -> Result<Vec<WorkerId>, Error> {
        let call = self.start(CallKind::LiveWorkers, false, 0);
        let result = self.inner.live_workers(timeout).await;
        let rows = result.as_ref().map_or(0, |workers| count(workers.len()));
        call.finish(rows, failed(&result));
        result
    }

    async fn hold_liveness(
        &self,
        worker: &WorkerId,
    ) -> Result<Option<Box<dyn LivenessHold>>, Error> {
        let call = self.start(CallKind::Other, false, 1);
        let result = self.inner.hold_liveness(worker).await;
        call.finish(0, failed(&result));
        let counters = Arc::clone(&self.counters);
        result.map(|hold| {
            hold.map(|inner| Box::new(CountingHold { inner, counters }) as Box<dyn LivenessHold>)
        })
    }

    async fn lease_changes(&self) -> Result<Option<u64>, Error> {
        let call = self.start(CallKind::Changes, false, 1);
        let result = self.inner.lease_changes().await;
        call.finish(0, failed(&result));
        result
    }

    async fn dead_workers(&self, workers: &[WorkerId]) -> Result<Vec<WorkerId>, Error> {
        let call = self.start(CallKind::Liveness, false, count(workers.len()));
        let result = self.inner.dead_workers(workers).await;
        call.finish(0, failed(&result));
        result
    }
}

/// A liveness hold whose checks are counted.
#[derive(Debug)]
struct CountingHold {
    inner: Box<dyn LivenessHold>,
    counters: Arc<StoreCounters>,
}

#[async_trait]
impl LivenessHold for CountingHold {
    async fn check(&self) -> Result<(), Error> {
        let call = Call::start(&self.counters, CallKind::HoldCheck, false, 1);
        let result = self.inner.check().await;
        call.finish(0, failed(&result));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kcl_core::InMemoryLeaseStore;

    /// A store whose batch renewal answers what no default could: proof that the wrapper
    /// forwards the batch call rather than falling back to the trait's default.
    #[derive(Debug)]
    struct BatchOnly(InMemoryLeaseStore);

    #[async_trait]
    impl LeaseStore for BatchOnly {
        async fn create_lease_if_absent(&self, lease: &NewLease) -> Result<bool, Error> {
            self.0.create_lease_if_absent(lease).await
        }
        async fn get_lease(&self, key: &LeaseKey) -> Result<Option<Lease>, Error> {
            self.0.get_lease(key).await
        }
        async fn list_leases(&self, stream: &StreamName) -> Result<Vec<Lease>, Error> {
            self.0.list_leases(stream).await
        }
        async fn take_lease(
            &self,
            key: &LeaseKey,
            seen_epoch: u64,
            taker: &WorkerId,
            mode: TakeMode,
            duration: Duration,
        ) -> Result<Lease, Error> {
            self.0
                .take_lease(key, seen_epoch, taker, mode, duration)
                .await
        }
        async fn renew_leases(
            &self,
            leases: &[(LeaseKey, Fence)],
            _duration: Duration,
        ) -> Result<Vec<Result<Lease, Error>>, Error> {
            Ok(leases
                .iter()
                .map(|(key, _)| Err(Error::not_found("lease", format!("batch {key}"))))
                .collect())
        }
        async fn renew_lease(
            &self,
            _key: &LeaseKey,
            _fence: &Fence,
            _duration: Duration,
        ) -> Result<Lease, Error> {
            panic!("the single renewal must not be called for a batch")
        }
        async fn release_lease(&self, key: &LeaseKey, fence: &Fence) -> Result<(), Error> {
            self.0.release_lease(key, fence).await
        }
        async fn checkpoint(
            &self,
            key: &LeaseKey,
            fence: &Fence,
            update: &CheckpointUpdate,
        ) -> Result<(), Error> {
            self.0.checkpoint(key, fence, update).await
        }
        async fn request_handoff(
            &self,
            key: &LeaseKey,
            seen_epoch: u64,
            requester: &WorkerId,
        ) -> Result<(), Error> {
            self.0.request_handoff(key, seen_epoch, requester).await
        }
        async fn complete_handoff(
            &self,
            key: &LeaseKey,
            fence: &Fence,
            duration: Duration,
        ) -> Result<Lease, Error> {
            self.0.complete_handoff(key, fence, duration).await
        }
        async fn record_child_shards(
            &self,
            key: &LeaseKey,
            fence: &Fence,
            children: &[ShardId],
        ) -> Result<(), Error> {
            self.0.record_child_shards(key, fence, children).await
        }
        async fn delete_lease(&self, key: &LeaseKey) -> Result<bool, Error> {
            self.0.delete_lease(key).await
        }
        async fn heartbeat(&self, worker: &WorkerId) -> Result<(), Error> {
            self.0.heartbeat(worker).await
        }
        async fn deregister_worker(&self, worker: &WorkerId) -> Result<(), Error> {
            self.0.deregister_worker(worker).await
        }
        async fn live_workers(&self, timeout: Duration) -> Result<Vec<WorkerId>, Error> {
            self.0.live_workers(timeout).await
        }
    }

    fn key(shard: &str) -> LeaseKey {
        LeaseKey::new(
            StreamName::new("s").expect("stream"),
            ShardId::new(shard).expect("shard"),
        )
    }

    #[tokio::test]
    async fn batch_renewals_are_forwarded_and_counted_as_one_call_of_many_rows() {
        let counters = StoreCounters::new();
        let store = CountingLeaseStore::new(
            Arc::new(BatchOnly(InMemoryLeaseStore::new())),
            Arc::clone(&counters),
        );
        let owner = WorkerId::new("w").expect("worker id");
        let fence = Fence::new(owner, 1);
        let leases = vec![(key("a"), fence.clone()), (key("b"), fence)];
        let outcomes = store
            .renew_leases(&leases, Duration::from_secs(1))
            .await
            .expect("batch");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Err(Error::NotFound { .. }))),
            "the wrapped store's batch answered: {outcomes:?}"
        );
        let renew = counters.snapshot().get(CallKind::Renew);
        assert_eq!(
            renew,
            KindCount {
                calls: 1,
                batch_calls: 1,
                rows: 2,
                errors: 2,
                cancelled: 0
            }
        );
        assert_eq!(counters.take_renew_latencies().len(), 1);
        assert!(counters.take_renew_latencies().is_empty());
    }
}
