//! The reference lease store: a map behind a mutex, on the process's monotonic clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;

use crate::lease::{
    CheckpointUpdate, Fence, Lease, LeaseKey, LeaseRow, LeaseStore, LivenessHold, NewLease,
    TakeMode, WorkerId,
};
use crate::{Error, ShardId, StreamName};

/// A [`LeaseStore`] in one process's memory, on Tokio's clock (so a paused clock drives its
/// expiry under simulation): for tests, examples and single-process
/// applications, and the reference every other backend is checked against.
///
/// ```
/// use std::time::Duration;
/// use kcl_core::{
///     Checkpoint, CheckpointUpdate, InMemoryLeaseStore, LeaseKey, LeaseStore, NewLease, ShardId,
///     StreamName, TakeMode, WorkerId,
/// };
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let store = InMemoryLeaseStore::new();
/// let key = LeaseKey::new(StreamName::new("orders")?, ShardId::from_index(0));
/// store.create_lease_if_absent(&NewLease::new(key.clone(), Checkpoint::TrimHorizon)).await?;
///
/// let me = WorkerId::unique("worker")?;
/// let lease = store.take_lease(&key, 0, &me, TakeMode::IfAvailable, Duration::from_secs(10)).await?;
/// let fence = lease.fence().ok_or(kcl_core::Error::invalid("lease", "unowned"))?;
/// store.checkpoint(&key, &fence, &CheckpointUpdate::commit(Checkpoint::sequence("42")?)).await?;
/// # Ok::<(), kcl_core::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct InMemoryLeaseStore {
    origin: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    leases: BTreeMap<LeaseKey, LeaseRow>,
    heartbeats: HashMap<WorkerId, i64>,
    /// Workers that held liveness, each with its hold's token: alive while the token lives and
    /// is not revoked.
    liveness: HashMap<WorkerId, Weak<AtomicBool>>,
    /// Changes of ownership so far (the contract's clause 12).
    changes: u64,
}

/// The in-memory store's liveness: a token whose drop stands for the process's death, and
/// whose revocation for the loss of the hold while the process lives.
#[derive(Debug)]
struct TokenHold {
    revoked: Arc<AtomicBool>,
}

#[async_trait]
impl LivenessHold for TokenHold {
    async fn check(&self) -> Result<(), Error> {
        if self.revoked.load(Ordering::SeqCst) {
            return Err(Error::Unavailable {
                message: "this worker's liveness was revoked".to_owned(),
            });
        }
        Ok(())
    }
}

impl Default for InMemoryLeaseStore {
    fn default() -> Self {
        InMemoryLeaseStore::new()
    }
}

impl InMemoryLeaseStore {
    /// An empty store.
    pub fn new() -> Self {
        InMemoryLeaseStore {
            origin: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }

    /// Ends `worker`'s current liveness hold while its process lives, as a database that
    /// terminates the hold's session would: the worker is reported dead at once, and its hold's
    /// [`check`](LivenessHold::check) fails. `false` if it held none.
    pub fn revoke_liveness(&self, worker: &WorkerId) -> bool {
        let revoked = self.state().liveness.get(worker).and_then(Weak::upgrade);
        revoked.is_some_and(|revoked| !revoked.swap(true, Ordering::SeqCst))
    }

    /// Milliseconds since the store was made: monotonic, so expiry never jumps with the wall clock.
    fn now_ms(&self) -> i64 {
        i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every transition validates before it mutates, so a panic elsewhere cannot leave a
        // half-written row behind: the data is still good after poisoning.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `change` to the row for `key` at the current time and returns the lease after it.
    fn update(
        &self,
        key: &LeaseKey,
        change: impl FnOnce(&mut LeaseRow, i64) -> Result<(), Error>,
    ) -> Result<Lease, Error> {
        let now = self.now_ms();
        let mut state = self.state();
        let row = state
            .leases
            .get_mut(key)
            .ok_or_else(|| Error::not_found("lease", key.to_string()))?;
        let mut next = row.clone();
        change(&mut next, now)?;
        let changed = row.changes_ownership(&next);
        *row = next;
        let lease = row.to_lease(now);
        if changed {
            state.changes += 1;
        }
        Ok(lease)
    }
}

#[async_trait]
impl LeaseStore for InMemoryLeaseStore {
    async fn create_lease_if_absent(&self, lease: &NewLease) -> Result<bool, Error> {
        let mut state = self.state();
        if state.leases.contains_key(&lease.key) {
            return Ok(false);
        }
        state.leases.insert(lease.key.clone(), LeaseRow::new(lease));
        state.changes += 1;
        Ok(true)
    }

    async fn get_lease(&self, key: &LeaseKey) -> Result<Option<Lease>, Error> {
        let now = self.now_ms();
        Ok(self.state().leases.get(key).map(|row| row.to_lease(now)))
    }

    async fn list_leases(&self, stream: &StreamName) -> Result<Vec<Lease>, Error> {
        let now = self.now_ms();
        Ok(self
            .state()
            .leases
            .values()
            .filter(|row| &row.key.stream == stream)
            .map(|row| row.to_lease(now))
            .collect())
    }

    async fn take_lease(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        taker: &WorkerId,
        mode: TakeMode,
        duration: Duration,
    ) -> Result<Lease, Error> {
        self.update(key, |row, now| {
            row.take(now, seen_epoch, taker, mode, duration)
        })
    }

    async fn renew_lease(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        duration: Duration,
    ) -> Result<Lease, Error> {
        self.update(key, |row, now| row.renew(now, fence, duration))
    }

    async fn release_lease(&self, key: &LeaseKey, fence: &Fence) -> Result<(), Error> {
        self.update(key, |row, _| row.release(fence)).map(drop)
    }

    async fn checkpoint(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        update: &CheckpointUpdate,
    ) -> Result<(), Error> {
        self.update(key, |row, _| row.checkpoint(fence, update))
            .map(drop)
    }

    async fn request_handoff(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        requester: &WorkerId,
    ) -> Result<(), Error> {
        self.update(key, |row, _| row.request_handoff(seen_epoch, requester))
            .map(drop)
    }

    async fn complete_handoff(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        duration: Duration,
    ) -> Result<Lease, Error> {
        self.update(key, |row, now| row.complete_handoff(now, fence, duration))
    }

    async fn record_child_shards(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        children: &[ShardId],
    ) -> Result<(), Error> {
        self.update(key, |row, _| row.record_child_shards(fence, children))
            .map(drop)
    }

    async fn delete_lease(&self, key: &LeaseKey) -> Result<bool, Error> {
        let mut state = self.state();
        let deleted = state.leases.remove(key).is_some();
        if deleted {
            state.changes += 1;
        }
        Ok(deleted)
    }

    async fn heartbeat(&self, worker: &WorkerId) -> Result<(), Error> {
        let now = self.now_ms();
        self.state().heartbeats.insert(worker.clone(), now);
        Ok(())
    }

    async fn deregister_worker(&self, worker: &WorkerId) -> Result<(), Error> {
        let mut state = self.state();
        state.heartbeats.remove(worker);
        state.liveness.remove(worker);
        Ok(())
    }

    async fn live_workers(&self, timeout: Duration) -> Result<Vec<WorkerId>, Error> {
        let now = self.now_ms();
        let timeout = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let mut live: Vec<WorkerId> = self
            .state()
            .heartbeats
            .iter()
            .filter(|(_, at)| now.saturating_sub(**at) < timeout)
            .map(|(worker, _)| worker.clone())
            .collect();
        live.sort();
        Ok(live)
    }

    async fn hold_liveness(
        &self,
        worker: &WorkerId,
    ) -> Result<Option<Box<dyn LivenessHold>>, Error> {
        let revoked = Arc::new(AtomicBool::new(false));
        self.state()
            .liveness
            .insert(worker.clone(), Arc::downgrade(&revoked));
        Ok(Some(Box::new(TokenHold { revoked })))
    }

    async fn lease_changes(&self) -> Result<Option<u64>, Error> {
        Ok(Some(self.state().changes))
    }

    async fn dead_workers(&self, workers: &[WorkerId]) -> Result<Vec<WorkerId>, Error> {
        let state = self.state();
        let mut dead: Vec<WorkerId> = workers
            .iter()
            .filter(|worker| {
                state.liveness.get(*worker).is_some_and(|token| {
                    token
                        .upgrade()
                        .is_none_or(|revoked| revoked.load(Ordering::SeqCst))
                })
            })
            .cloned()
            .collect();
        dead.sort();
        dead.dedup();
        Ok(dead)
    }
}
