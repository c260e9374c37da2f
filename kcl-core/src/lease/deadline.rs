//! A deadline on every lease-store call, so that a store that hangs (a black-holed connection)
//! looks like one that fails, and the worker's lease deadlines keep their meaning.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::lease::{
    CheckpointUpdate, Fence, Lease, LeaseCensus, LeaseKey, LeaseStore, LivenessHold, NewLease,
    TakeMode, WorkerId,
};
use crate::{Error, ShardId, StreamName};

/// Wraps a store so that a call not answered within `deadline` (`listing_deadline` for a
/// listing of the leases) fails with [`Error::Unavailable`] (transient; the outcome of a write
/// is then unknown, as the store contract says of every transient error).
#[derive(Debug)]
pub(crate) struct DeadlineLeaseStore {
    inner: Arc<dyn LeaseStore>,
    deadline: Duration,
    listing_deadline: Duration,
}

impl DeadlineLeaseStore {
    pub(crate) fn new(
        inner: Arc<dyn LeaseStore>,
        deadline: Duration,
        listing_deadline: Duration,
    ) -> Self {
        DeadlineLeaseStore {
            inner,
            deadline,
            listing_deadline,
        }
    }

    async fn bounded<T>(
        &self,
        call: &'static str,
        future: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        Self::within(self.deadline, call, future).await
    }

    async fn within<T>(
        deadline: Duration,
        call: &'static str,
        future: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::time::timeout(deadline, future)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Unavailable {
                    message: format!("the lease store did not answer {call} within {deadline:?}"),
                })
            })
    }
}

#[async_trait]
impl LeaseStore for DeadlineLeaseStore {
    async fn create_lease_if_absent(&self, lease: &NewLease) -> Result<bool, Error> {
        self.bounded(
            "create_lease_if_absent",
            self.inner.create_lease_if_absent(lease),
        )
        .await
    }

    async fn get_lease(&self, key: &LeaseKey) -> Result<Option<Lease>, Error> {
        self.bounded("get_lease", self.inner.get_lease(key)).await
    }

    async fn list_leases(&self, stream: &StreamName) -> Result<Vec<Lease>, Error> {
        Self::within(
            self.listing_deadline,
            "list_leases",
            self.inner.list_leases(stream),
        )
        .await
    }

    async fn lease_census(
        &self,
        stream: &StreamName,
        worker: &WorkerId,
    ) -> Result<LeaseCensus, Error> {
        Self::within(
            self.listing_deadline,
            "lease_census",
            self.inner.lease_census(stream, worker),
        )
        .await
    }

    async fn leases_held_by(
        &self,
        stream: &StreamName,
        owner: &WorkerId,
    ) -> Result<Vec<Lease>, Error> {
        Self::within(
            self.listing_deadline,
            "leases_held_by",
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
        self.bounded(
            "take_lease",
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
        self.bounded("renew_lease", self.inner.renew_lease(key, fence, duration))
            .await
    }

    async fn create_leases_if_absent(&self, leases: &[NewLease]) -> Result<Vec<bool>, Error> {
        self.bounded(
            "create_leases_if_absent",
            self.inner.create_leases_if_absent(leases),
        )
        .await
    }

    async fn renew_leases(
        &self,
        leases: &[(LeaseKey, Fence)],
        duration: Duration,
    ) -> Result<Vec<Result<Lease, Error>>, Error> {
        self.bounded("renew_leases", self.inner.renew_leases(leases, duration))
            .await
    }

    async fn checkpoint_many(
        &self,
        updates: &[(LeaseKey, Fence, CheckpointUpdate)],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        self.bounded("checkpoint_many", self.inner.checkpoint_many(updates))
            .await
    }

    async fn release_lease(&self, key: &LeaseKey, fence: &Fence) -> Result<(), Error> {
        self.bounded("release_lease", self.inner.release_lease(key, fence))
            .await
    }

    async fn checkpoint(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        update: &CheckpointUpdate,
    ) -> Result<(), Error> {
        self.bounded("checkpoint", self.inner.checkpoint(key, fence, update))
            .await
    }

    async fn request_handoff(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        requester: &WorkerId,
    ) -> Result<(), Error> {
        self.bounded(
            "request_handoff",
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
        self.bounded(
            "complete_handoff",
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
        self.bounded(
            "record_child_shards",
            self.inner.record_child_shards(key, fence, children),
        )
        .await
    }

    async fn delete_lease(&self, key: &LeaseKey) -> Result<bool, Error> {
        self.bounded("delete_lease", self.inner.delete_lease(key))
            .await
    }

    async fn heartbeat(&self, worker: &WorkerId) -> Result<(), Error> {
        self.bounded("heartbeat", self.inner.heartbeat(worker))
            .await
    }

    async fn deregister_worker(&self, worker: &WorkerId) -> Result<(), Error> {
        self.bounded("deregister_worker", self.inner.deregister_worker(worker))
            .await
    }

    async fn live_workers(&self, timeout: Duration) -> Result<Vec<WorkerId>, Error> {
        self.bounded("live_workers", self.inner.live_workers(timeout))
            .await
    }

    async fn hold_liveness(
        &self,
        worker: &WorkerId,
    ) -> Result<Option<Box<dyn LivenessHold>>, Error> {
        self.bounded("hold_liveness", self.inner.hold_liveness(worker))
            .await
    }

    async fn lease_changes(&self) -> Result<Option<u64>, Error> {
        self.bounded("lease_changes", self.inner.lease_changes())
            .await
    }

    async fn dead_workers(&self, workers: &[WorkerId]) -> Result<Vec<WorkerId>, Error> {
        self.bounded("dead_workers", self.inner.dead_workers(workers))
            .await
    }
}
