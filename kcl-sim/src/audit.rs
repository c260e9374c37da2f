//! The shared lease store, with every write it applies recorded in the history.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kcl_core::{
    CheckpointUpdate, Error, Fence, InMemoryLeaseStore, Lease, LeaseKey, LeaseStore, LivenessHold,
    NewLease, ShardId, StreamName, TakeMode, WorkerId,
};

use crate::history::{Event, History, WorkerName};

/// The in-memory lease store every worker shares (each through its own fault injector), as the
/// store itself sees its writes: what it applied, when, and with which expiry.
///
/// `InMemoryLeaseStore` never awaits inside a call, so on the single-threaded runtime a call
/// and the reads around it run with no other task in between: what is read before and after a
/// write is exactly the row the write changed.
#[derive(Debug)]
pub(crate) struct AuditedLeaseStore {
    inner: InMemoryLeaseStore,
    history: Arc<History>,
}

impl AuditedLeaseStore {
    pub(crate) fn new(history: Arc<History>) -> Self {
        AuditedLeaseStore {
            inner: InMemoryLeaseStore::new(),
            history,
        }
    }

    /// The store without auditing, for the checks' own reads.
    pub(crate) fn inner(&self) -> &InMemoryLeaseStore {
        &self.inner
    }

    /// Ends `worker`'s liveness hold while it runs (see
    /// [`InMemoryLeaseStore::revoke_liveness`]), and records it. `false` if it held none in
    /// force (a worker whose hold was revoked and not yet taken again, or never taken).
    pub(crate) fn revoke_liveness(&self, worker: &WorkerId) -> bool {
        let revoked = self.inner.revoke_liveness(worker);
        if revoked {
            self.history.record(Event::LivenessRevoked {
                worker: name(worker),
            });
        }
        revoked
    }

    fn expires(&self, lease: &Lease) -> Duration {
        self.history.now() + lease.time_left.unwrap_or(Duration::ZERO)
    }
}

/// The simulation's name of a worker, which is its id.
pub(crate) fn name(worker: &WorkerId) -> WorkerName {
    worker.as_str().into()
}

#[async_trait]
impl LeaseStore for AuditedLeaseStore {
    async fn create_lease_if_absent(&self, lease: &NewLease) -> Result<bool, Error> {
        let created = self.inner.create_lease_if_absent(lease).await?;
        if created {
            self.history.record(Event::LeaseCreated {
                shard: lease.key.shard.clone(),
                checkpoint: lease.checkpoint.clone(),
                parents: lease.parent_shard_ids.clone(),
            });
        }
        Ok(created)
    }

    async fn get_lease(&self, key: &LeaseKey) -> Result<Option<Lease>, Error> {
        self.inner.get_lease(key).await
    }

    async fn list_leases(&self, stream: &StreamName) -> Result<Vec<Lease>, Error> {
        self.inner.list_leases(stream).await
    }

    async fn take_lease(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        taker: &WorkerId,
        mode: TakeMode,
        duration: Duration,
    ) -> Result<Lease, Error> {
        let lease = self
            .inner
            .take_lease(key, seen_epoch, taker, mode, duration)
            .await?;
        self.history.record(Event::LeaseTaken {
            shard: key.shard.clone(),
            owner: name(taker),
            epoch: lease.epoch,
            steal: mode == TakeMode::Steal,
            expires: self.expires(&lease),
        });
        Ok(lease)
    }

    async fn renew_lease(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        duration: Duration,
    ) -> Result<Lease, Error> {
        let lease = self.inner.renew_lease(key, fence, duration).await?;
        self.history.record(Event::LeaseRenewed {
            shard: key.shard.clone(),
            owner: name(&fence.owner),
            epoch: fence.epoch,
            expires: self.expires(&lease),
        });
        Ok(lease)
    }

    async fn release_lease(&self, key: &LeaseKey, fence: &Fence) -> Result<(), Error> {
        self.inner.release_lease(key, fence).await?;
        self.history.record(Event::LeaseReleased {
            shard: key.shard.clone(),
            owner: name(&fence.owner),
            epoch: fence.epoch,
        });
        Ok(())
    }

    async fn checkpoint(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        update: &CheckpointUpdate,
    ) -> Result<(), Error> {
        let before = self.inner.get_lease(key).await?;
        self.inner.checkpoint(key, fence, update).await?;
        // Fencing checked again, independently of the store that enforced it.
        let holder = before.map(|lease| (lease.owner, lease.epoch));
        if holder != Some((Some(fence.owner.clone()), fence.epoch)) {
            self.history.record(Event::CheckpointByNonOwner {
                shard: key.shard.clone(),
                fence: fence.to_string(),
                holder: format!("{holder:?}"),
            });
        }
        if let Some(checkpoint) = &update.checkpoint {
            self.history.record(Event::LeaseCheckpointed {
                shard: key.shard.clone(),
                owner: name(&fence.owner),
                epoch: fence.epoch,
                checkpoint: checkpoint.clone(),
            });
        }
        Ok(())
    }

    async fn request_handoff(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        requester: &WorkerId,
    ) -> Result<(), Error> {
        self.inner.request_handoff(key, seen_epoch, requester).await
    }

    async fn complete_handoff(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        duration: Duration,
    ) -> Result<Lease, Error> {
        let lease = self.inner.complete_handoff(key, fence, duration).await?;
        if let Some(to) = &lease.owner {
            self.history.record(Event::LeaseHandedOver {
                shard: key.shard.clone(),
                to: name(to),
                epoch: lease.epoch,
                expires: self.expires(&lease),
            });
        }
        Ok(lease)
    }

    async fn record_child_shards(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        children: &[ShardId],
    ) -> Result<(), Error> {
        self.inner.record_child_shards(key, fence, children).await
    }

    async fn delete_lease(&self, key: &LeaseKey) -> Result<bool, Error> {
        let deleted = self.inner.delete_lease(key).await?;
        if deleted {
            self.history.record(Event::LeaseDeleted {
                shard: key.shard.clone(),
            });
        }
        Ok(deleted)
    }

    async fn heartbeat(&self, worker: &WorkerId) -> Result<(), Error> {
        self.inner.heartbeat(worker).await
    }

    async fn deregister_worker(&self, worker: &WorkerId) -> Result<(), Error> {
        self.inner.deregister_worker(worker).await
    }

    async fn live_workers(&self, timeout: Duration) -> Result<Vec<WorkerId>, Error> {
        self.inner.live_workers(timeout).await
    }

    async fn hold_liveness(
        &self,
        worker: &WorkerId,
    ) -> Result<Option<Box<dyn LivenessHold>>, Error> {
        self.inner.hold_liveness(worker).await
    }

    async fn lease_changes(&self) -> Result<Option<u64>, Error> {
        self.inner.lease_changes().await
    }

    async fn dead_workers(&self, workers: &[WorkerId]) -> Result<Vec<WorkerId>, Error> {
        self.inner.dead_workers(workers).await
    }
}
