//! A lease store that fails on purpose: errors, hangs and lost replies in front of any other.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::lease::WorkerId;
use crate::lease::{
    CheckpointUpdate, Fence, Lease, LeaseCensus, LeaseKey, LeaseStore, LivenessHold, NewLease,
    TakeMode,
};
use crate::{Error, ShardId, StreamName};

/// One method of the [`LeaseStore`] trait, as the fault injector names it. A batch call is
/// one call of its single operation's kind ([`LeaseStore::renew_leases`] is a `RenewLease`,
/// and so on): its fault is the whole batch's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LeaseStoreOp {
    /// [`LeaseStore::create_lease_if_absent`].
    CreateLeaseIfAbsent,
    /// [`LeaseStore::get_lease`].
    GetLease,
    /// [`LeaseStore::list_leases`], and the taker's narrower reads
    /// ([`LeaseStore::lease_census`], [`LeaseStore::leases_held_by`]).
    ListLeases,
    /// [`LeaseStore::take_lease`].
    TakeLease,
    /// [`LeaseStore::renew_lease`].
    RenewLease,
    /// [`LeaseStore::release_lease`].
    ReleaseLease,
    /// [`LeaseStore::checkpoint`].
    Checkpoint,
    /// [`LeaseStore::request_handoff`].
    RequestHandoff,
    /// [`LeaseStore::complete_handoff`].
    CompleteHandoff,
    /// [`LeaseStore::record_child_shards`].
    RecordChildShards,
    /// [`LeaseStore::delete_lease`].
    DeleteLease,
    /// [`LeaseStore::heartbeat`].
    Heartbeat,
    /// [`LeaseStore::deregister_worker`].
    DeregisterWorker,
    /// [`LeaseStore::live_workers`].
    LiveWorkers,
    /// [`LeaseStore::hold_liveness`].
    HoldLiveness,
    /// [`LeaseStore::dead_workers`].
    DeadWorkers,
    /// [`LeaseStore::lease_changes`].
    LeaseChanges,
}

impl LeaseStoreOp {
    /// Every operation, in the trait's order.
    pub const ALL: [LeaseStoreOp; 17] = [
        LeaseStoreOp::CreateLeaseIfAbsent,
        LeaseStoreOp::GetLease,
        LeaseStoreOp::ListLeases,
        LeaseStoreOp::TakeLease,
        LeaseStoreOp::RenewLease,
        LeaseStoreOp::ReleaseLease,
        LeaseStoreOp::Checkpoint,
        LeaseStoreOp::RequestHandoff,
        LeaseStoreOp::CompleteHandoff,
        LeaseStoreOp::RecordChildShards,
        LeaseStoreOp::DeleteLease,
        LeaseStoreOp::Heartbeat,
        LeaseStoreOp::DeregisterWorker,
        LeaseStoreOp::LiveWorkers,
        LeaseStoreOp::HoldLiveness,
        LeaseStoreOp::DeadWorkers,
        LeaseStoreOp::LeaseChanges,
    ];

    /// The trait method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseStoreOp::CreateLeaseIfAbsent => "create_lease_if_absent",
            LeaseStoreOp::GetLease => "get_lease",
            LeaseStoreOp::ListLeases => "list_leases",
            LeaseStoreOp::TakeLease => "take_lease",
            LeaseStoreOp::RenewLease => "renew_lease",
            LeaseStoreOp::ReleaseLease => "release_lease",
            LeaseStoreOp::Checkpoint => "checkpoint",
            LeaseStoreOp::RequestHandoff => "request_handoff",
            LeaseStoreOp::CompleteHandoff => "complete_handoff",
            LeaseStoreOp::RecordChildShards => "record_child_shards",
            LeaseStoreOp::DeleteLease => "delete_lease",
            LeaseStoreOp::Heartbeat => "heartbeat",
            LeaseStoreOp::DeregisterWorker => "deregister_worker",
            LeaseStoreOp::LiveWorkers => "live_workers",
            LeaseStoreOp::HoldLiveness => "hold_liveness",
            LeaseStoreOp::DeadWorkers => "dead_workers",
            LeaseStoreOp::LeaseChanges => "lease_changes",
        }
    }

    /// True for operations that change the store: the ones where a lost reply leaves the
    /// caller unsure of what happened.
    pub fn is_write(self) -> bool {
        !matches!(
            self,
            LeaseStoreOp::GetLease
                | LeaseStoreOp::ListLeases
                | LeaseStoreOp::LiveWorkers
                | LeaseStoreOp::DeadWorkers
                | LeaseStoreOp::LeaseChanges
        )
    }
}

impl fmt::Display for LeaseStoreOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one call to a [`FaultInjectingLeaseStore`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LeaseStoreFault {
    /// The call reaches nothing and answers [`Error::Unavailable`]: a refused connection, a
    /// database restarting.
    Unavailable,
    /// The call does not answer until the faults are released
    /// ([`FaultInjectingLeaseStore::release_hangs`] or [`clear`](FaultInjectingLeaseStore::clear)),
    /// and then goes through: a black-holed connection. A caller that gives up (drops the call's
    /// future, as a deadline does) cancels it, and nothing is written.
    Hang,
    /// The call goes through and its answer is lost: the write happened, the caller gets
    /// [`Error::Unavailable`] (the unknown outcome of the contract's clause 9).
    ReplyLost,
    /// The call goes through at once and its answer is held until the faults are released: a
    /// slow network on the way back. What a read answers is then stale by the time it arrives.
    SlowReply,
}

/// How many faults a [`FaultInjectingLeaseStore`] injected, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InjectedFaults {
    /// Calls answered [`Error::Unavailable`] without reaching the store.
    pub unavailable: u64,
    /// Calls held until released.
    pub hangs: u64,
    /// Calls that went through and answered [`Error::Unavailable`].
    pub replies_lost: u64,
    /// Calls that went through and whose answer was held until released.
    pub slow_replies: u64,
}

/// Decides, call by call, whether to inject a fault: a simulation draws from its seeded random
/// generator here.
type FaultDecider = dyn Fn(LeaseStoreOp) -> Option<LeaseStoreFault> + Send + Sync;

/// Wraps any [`LeaseStore`] and injects faults into its calls, to test what callers do when
/// the store fails: plain errors, calls that hang, and writes whose reply is lost.
///
/// Faults come from two places, scripted ones first:
/// - scripted with [`fail_next`](Self::fail_next): the next `times` calls of an operation (or
///   of any operation) fail with a given fault, for focused tests;
/// - a decider given to [`with_decider`](Self::with_decider), asked on every call without a
///   scripted fault, so that a simulation can draw faults from its own seeded generator.
///
/// Without faults it passes every call through unchanged, so it meets the whole
/// [`LeaseStore`] contract (it runs the conformance suite).
///
/// ```
/// use std::sync::Arc;
/// use kcl_core::{
///     Checkpoint, Error, FaultInjectingLeaseStore, InMemoryLeaseStore, LeaseKey, LeaseStore,
///     LeaseStoreFault, LeaseStoreOp, NewLease, ShardId, StreamName,
/// };
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let store = FaultInjectingLeaseStore::new(Arc::new(InMemoryLeaseStore::new()));
/// let key = LeaseKey::new(StreamName::new("orders")?, ShardId::from_index(0));
/// let lease = NewLease::new(key.clone(), Checkpoint::TrimHorizon);
///
/// // The write happens, but its caller hears that the store was unavailable.
/// store.fail_next(Some(LeaseStoreOp::CreateLeaseIfAbsent), LeaseStoreFault::ReplyLost, 1);
/// assert!(matches!(store.create_lease_if_absent(&lease).await, Err(Error::Unavailable { .. })));
/// // A retry finds the lease created.
/// assert_eq!(store.create_lease_if_absent(&lease).await, Ok(false));
/// assert_eq!(store.injected().replies_lost, 1);
/// # Ok::<(), kcl_core::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FaultInjectingLeaseStore {
    inner: Arc<dyn LeaseStore>,
    scripted: Mutex<Vec<ScriptedFault>>,
    decider: Option<Box<FaultDecider>>,
    /// Bumped to release every call hanging at the time; `released` wakes them. (A `Notify`
    /// wakes its waiters in the order they came, where a `watch` picks among them at random:
    /// a simulation replaying a seed needs the former.)
    releases: AtomicU64,
    released: Notify,
    hanging: AtomicUsize,
    unavailable: AtomicU64,
    hangs: AtomicU64,
    replies_lost: AtomicU64,
    slow_replies: AtomicU64,
}

#[derive(Debug)]
struct ScriptedFault {
    op: Option<LeaseStoreOp>,
    fault: LeaseStoreFault,
    remaining: usize,
}

impl fmt::Debug for FaultInjectingLeaseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultInjectingLeaseStore")
            .field("inner", &self.inner)
            .field("scripted", &*self.scripted())
            .field("decider", &self.decider.is_some())
            .field("injected", &self.injected())
            .finish()
    }
}

impl FaultInjectingLeaseStore {
    /// Passes every call to `inner` until faults are scripted.
    pub fn new(inner: Arc<dyn LeaseStore>) -> Self {
        FaultInjectingLeaseStore {
            inner,
            scripted: Mutex::new(Vec::new()),
            decider: None,
            releases: AtomicU64::new(0),
            released: Notify::new(),
            hanging: AtomicUsize::new(0),
            unavailable: AtomicU64::new(0),
            hangs: AtomicU64::new(0),
            replies_lost: AtomicU64::new(0),
            slow_replies: AtomicU64::new(0),
        }
    }

    /// Asks `decider` for a fault on every call that has no scripted one.
    pub fn with_decider(
        inner: Arc<dyn LeaseStore>,
        decider: impl Fn(LeaseStoreOp) -> Option<LeaseStoreFault> + Send + Sync + 'static,
    ) -> Self {
        FaultInjectingLeaseStore {
            decider: Some(Box::new(decider)),
            ..FaultInjectingLeaseStore::new(inner)
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn LeaseStore> {
        &self.inner
    }

    /// Makes the next `times` calls of `op` (of any operation if `None`) fail with `fault`.
    /// Scripted faults apply in the order they were scripted.
    pub fn fail_next(&self, op: Option<LeaseStoreOp>, fault: LeaseStoreFault, times: usize) {
        if times > 0 {
            self.scripted().push(ScriptedFault {
                op,
                fault,
                remaining: times,
            });
        }
    }

    /// Forgets the scripted faults and releases every hanging call. The decider, if any, stays.
    pub fn clear(&self) {
        self.scripted().clear();
        self.release_hangs();
    }

    /// Lets every call hanging now go through. Calls that hang later wait for the next release.
    pub fn release_hangs(&self) {
        self.releases.fetch_add(1, Ordering::SeqCst);
        self.released.notify_waiters();
    }

    /// How many calls are hanging now.
    pub fn hanging_calls(&self) -> usize {
        self.hanging.load(Ordering::SeqCst)
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> InjectedFaults {
        InjectedFaults {
            unavailable: self.unavailable.load(Ordering::SeqCst),
            hangs: self.hangs.load(Ordering::SeqCst),
            replies_lost: self.replies_lost.load(Ordering::SeqCst),
            slow_replies: self.slow_replies.load(Ordering::SeqCst),
        }
    }

    fn scripted(&self) -> MutexGuard<'_, Vec<ScriptedFault>> {
        // The list is changed by single pushes, clears and decrements: it is whole after a panic.
        self.scripted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The fault for this call of `op`: the first scripted one that matches, else the decider's.
    fn fault_for(&self, op: LeaseStoreOp) -> Option<LeaseStoreFault> {
        let scripted = {
            let mut scripted = self.scripted();
            let found = scripted
                .iter_mut()
                .position(|rule| rule.op.is_none_or(|wanted| wanted == op));
            found.map(|index| {
                let fault = scripted[index].fault;
                scripted[index].remaining -= 1;
                if scripted[index].remaining == 0 {
                    scripted.remove(index);
                }
                fault
            })
        };
        scripted.or_else(|| self.decider.as_ref().and_then(|decide| decide(op)))
    }

    /// Runs `call` (a call of `op` on the inner store, not yet started) under this call's fault.
    async fn call<T>(
        &self,
        op: LeaseStoreOp,
        call: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match self.fault_for(op) {
            None => call.await,
            Some(LeaseStoreFault::Unavailable) => {
                self.unavailable.fetch_add(1, Ordering::SeqCst);
                Err(injected(op, "unavailable"))
            }
            Some(LeaseStoreFault::Hang) => {
                self.hangs.fetch_add(1, Ordering::SeqCst);
                self.hang().await;
                call.await
            }
            Some(LeaseStoreFault::ReplyLost) => {
                self.replies_lost.fetch_add(1, Ordering::SeqCst);
                let _ = call.await;
                Err(injected(op, "reply lost"))
            }
            Some(LeaseStoreFault::SlowReply) => {
                self.slow_replies.fetch_add(1, Ordering::SeqCst);
                let answer = call.await;
                self.hang().await;
                answer
            }
        }
    }

    /// Waits for the next release; dropping the future gives up waiting.
    async fn hang(&self) {
        let hung_at = self.releases.load(Ordering::SeqCst);
        let _hanging = HangingCall::enter(&self.hanging);
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before looking, so a release in between still wakes this call.
            released.as_mut().enable();
            if self.releases.load(Ordering::SeqCst) != hung_at {
                return;
            }
            released.await;
        }
    }
}

/// Counts a call as hanging while it lives, so a cancelled call stops counting.
struct HangingCall<'a>(&'a AtomicUsize);

impl<'a> HangingCall<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        HangingCall(count)
    }
}

impl Drop for HangingCall<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn injected(op: LeaseStoreOp, what: &str) -> Error {
    Error::Unavailable {
        message: format!("injected fault: {op} {what}"),
    }
}

#[async_trait]
impl LeaseStore for FaultInjectingLeaseStore {
    async fn create_lease_if_absent(&self, lease: &NewLease) -> Result<bool, Error> {
        self.call(
            LeaseStoreOp::CreateLeaseIfAbsent,
            self.inner.create_lease_if_absent(lease),
        )
        .await
    }

    async fn get_lease(&self, key: &LeaseKey) -> Result<Option<Lease>, Error> {
        self.call(LeaseStoreOp::GetLease, self.inner.get_lease(key))
            .await
    }

    async fn list_leases(&self, stream: &StreamName) -> Result<Vec<Lease>, Error> {
        self.call(LeaseStoreOp::ListLeases, self.inner.list_leases(stream))
            .await
    }

    async fn lease_census(
        &self,
        stream: &StreamName,
        worker: &WorkerId,
    ) -> Result<LeaseCensus, Error> {
        self.call(
            LeaseStoreOp::ListLeases,
            self.inner.lease_census(stream, worker),
        )
        .await
    }

    async fn leases_held_by(
        &self,
        stream: &StreamName,
        owner: &WorkerId,
    ) -> Result<Vec<Lease>, Error> {
        self.call(
            LeaseStoreOp::ListLeases,
            self.inner.leases_held_by(stream, owner),
        )
        .await
    }

    async fn take_lease(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        taker: &WorkerId,
        mode: TakeMode,
        duration: Duration,
    ) -> Result<Lease, Error> {
        self.call(
            LeaseStoreOp::TakeLease,
            self.inner
                .take_lease(key, seen_epoch, taker, mode, duration),
        )
        .await
    }

    async fn renew_lease(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        duration: Duration,
    ) -> Result<Lease, Error> {
        self.call(
            LeaseStoreOp::RenewLease,
            self.inner.renew_lease(key, fence, duration),
        )
        .await
    }

    async fn create_leases_if_absent(&self, leases: &[NewLease]) -> Result<Vec<bool>, Error> {
        self.call(
            LeaseStoreOp::CreateLeaseIfAbsent,
            self.inner.create_leases_if_absent(leases),
        )
        .await
    }

    async fn renew_leases(
        &self,
        leases: &[(LeaseKey, Fence)],
        duration: Duration,
    ) -> Result<Vec<Result<Lease, Error>>, Error> {
        self.call(
            LeaseStoreOp::RenewLease,
            self.inner.renew_leases(leases, duration),
        )
        .await
    }

    async fn checkpoint_many(
        &self,
        updates: &[(LeaseKey, Fence, CheckpointUpdate)],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        self.call(
            LeaseStoreOp::Checkpoint,
            self.inner.checkpoint_many(updates),
        )
        .await
    }

    async fn release_lease(&self, key: &LeaseKey, fence: &Fence) -> Result<(), Error> {
        self.call(
            LeaseStoreOp::ReleaseLease,
            self.inner.release_lease(key, fence),
        )
        .await
    }

    async fn checkpoint(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        update: &CheckpointUpdate,
    ) -> Result<(), Error> {
        self.call(
            LeaseStoreOp::Checkpoint,
            self.inner.checkpoint(key, fence, update),
        )
        .await
    }

    async fn request_handoff(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        requester: &WorkerId,
    ) -> Result<(), Error> {
        self.call(
            LeaseStoreOp::RequestHandoff,
            self.inner.request_handoff(key, seen_epoch, requester),
        )
        .await
    }

    async fn complete_handoff(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        duration: Duration,
    ) -> Result<Lease, Error> {
        self.call(
            LeaseStoreOp::CompleteHandoff,
            self.inner.complete_handoff(key, fence, duration),
        )
        .await
    }

    async fn record_child_shards(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        children: &[ShardId],
    ) -> Result<(), Error> {
        self.call(
            LeaseStoreOp::RecordChildShards,
            self.inner.record_child_shards(key, fence, children),
        )
        .await
    }

    async fn delete_lease(&self, key: &LeaseKey) -> Result<bool, Error> {
        self.call(LeaseStoreOp::DeleteLease, self.inner.delete_lease(key))
            .await
    }

    async fn heartbeat(&self, worker: &WorkerId) -> Result<(), Error> {
        self.call(LeaseStoreOp::Heartbeat, self.inner.heartbeat(worker))
            .await
    }

    async fn deregister_worker(&self, worker: &WorkerId) -> Result<(), Error> {
        self.call(
            LeaseStoreOp::DeregisterWorker,
            self.inner.deregister_worker(worker),
        )
        .await
    }

    async fn live_workers(&self, timeout: Duration) -> Result<Vec<WorkerId>, Error> {
        self.call(LeaseStoreOp::LiveWorkers, self.inner.live_workers(timeout))
            .await
    }

    async fn hold_liveness(
        &self,
        worker: &WorkerId,
    ) -> Result<Option<Box<dyn LivenessHold>>, Error> {
        self.call(LeaseStoreOp::HoldLiveness, self.inner.hold_liveness(worker))
            .await
    }

    async fn lease_changes(&self) -> Result<Option<u64>, Error> {
        self.call(LeaseStoreOp::LeaseChanges, self.inner.lease_changes())
            .await
    }

    async fn dead_workers(&self, workers: &[WorkerId]) -> Result<Vec<WorkerId>, Error> {
        self.call(LeaseStoreOp::DeadWorkers, self.inner.dead_workers(workers))
            .await
    }
}
