//! A lease store that can be switched off, to test what workers do while the store is down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use kcl_core::{
    CheckpointUpdate, Error, Fence, Lease, LeaseKey, LeaseStore, NewLease, ShardId, StreamName,
    TakeMode, WorkerId,
};

/// Wraps a store; while [`StoreOutage::begin`] is in effect every call fails with
/// [`Error::Unavailable`], as an unreachable database does.
#[derive(Debug)]
pub struct StoreOutage {
    inner: Arc<dyn LeaseStore>,
    down: AtomicBool,
}

impl StoreOutage {
    /// Wraps `inner`, up.
    pub fn new(inner: Arc<dyn LeaseStore>) -> Arc<Self> {
        Arc::new(StoreOutage {
            inner,
            down: AtomicBool::new(false),
        })
    }

    /// From now on every call fails.
    pub fn begin(&self) {
        self.down.store(true, Ordering::SeqCst);
    }

    /// From now on calls reach the store again.
    pub fn end(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), Error> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::Unavailable {
                message: "lease store outage (test)".to_owned(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl LeaseStore for StoreOutage {
    async fn create_lease_if_absent(&self, lease: &NewLease) -> Result<bool, Error> {
        self.check()?;
        self.inner.create_lease_if_absent(lease).await
    }

    async fn get_lease(&self, key: &LeaseKey) -> Result<Option<Lease>, Error> {
        self.check()?;
        self.inner.get_lease(key).await
    }

    async fn list_leases(&self, stream: &StreamName) -> Result<Vec<Lease>, Error> {
        self.check()?;
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
        self.check()?;
        self.inner
            .take_lease(key, seen_epoch, taker, mode, duration)
            .await
    }

    async fn renew_lease(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        duration: Duration,
    ) -> Result<Lease, Error> {
        self.check()?;
        self.inner.renew_lease(key, fence, duration).await
    }

    async fn release_lease(&self, key: &LeaseKey, fence: &Fence) -> Result<(), Error> {
        self.check()?;
        self.inner.release_lease(key, fence).await
    }

    async fn checkpoint(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        update: &CheckpointUpdate,
    ) -> Result<(), Error> {
        self.check()?;
        self.inner.checkpoint(key, fence, update).await
    }

    async fn request_handoff(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        requester: &WorkerId,
    ) -> Result<(), Error> {
        self.check()?;
        self.inner.request_handoff(key, seen_epoch, requester).await
    }

    async fn complete_handoff(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        duration: Duration,
    ) -> Result<Lease, Error> {
        self.check()?;
        self.inner.complete_handoff(key, fence, duration).await
    }

    async fn record_child_shards(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        children: &[ShardId],
    ) -> Result<(), Error> {
        self.check()?;
        self.inner.record_child_shards(key, fence, children).await
    }

    async fn delete_lease(&self, key: &LeaseKey) -> Result<bool, Error> {
        self.check()?;
        self.inner.delete_lease(key).await
    }

    async fn heartbeat(&self, worker: &WorkerId) -> Result<(), Error> {
        self.check()?;
        self.inner.heartbeat(worker).await
    }

    async fn deregister_worker(&self, worker: &WorkerId) -> Result<(), Error> {
        self.check()?;
        self.inner.deregister_worker(worker).await
    }

    async fn live_workers(&self, timeout: Duration) -> Result<Vec<WorkerId>, Error> {
        self.check()?;
        self.inner.live_workers(timeout).await
    }
}
