//! A load generator for lease stores: fenced checkpoints and take/renew operations per second
//! with N concurrent writers. Used by every backend's bench binary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::lease::conformance::Scope;
use crate::{
    Checkpoint, CheckpointUpdate, Error, LeaseKey, LeaseStore, NewLease, SequenceNumber, TakeMode,
};

/// Operations completed by all writers over a measured interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Operations that succeeded.
    pub operations: u64,
    /// The measured interval.
    pub elapsed: Duration,
}

impl Throughput {
    /// Operations per second.
    pub fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// The lease duration writers hold their leases for while measuring.
const HOLD: Duration = Duration::from_secs(300);

async fn own_lease(
    store: &Arc<dyn LeaseStore>,
    scope: &Scope,
    writer: usize,
) -> Result<(LeaseKey, crate::Fence), Error> {
    let key = scope.key(writer as u64);
    store
        .create_lease_if_absent(&NewLease::new(key.clone(), Checkpoint::TrimHorizon))
        .await?;
    let worker = scope.worker(&format!("writer-{writer}"));
    let lease = store
        .take_lease(&key, 0, &worker, TakeMode::IfAvailable, HOLD)
        .await?;
    let fence = lease
        .fence()
        .ok_or_else(|| Error::invalid("lease", "taken lease has no owner"))?;
    Ok((key, fence))
}

async fn run_writers<F, Fut>(
    store: Arc<dyn LeaseStore>,
    writers: usize,
    duration: Duration,
    label: &str,
    body: F,
) -> Result<Throughput, Error>
where
    F: Fn(Arc<dyn LeaseStore>, LeaseKey, crate::Fence, Instant) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<u64, Error>> + Send + 'static,
{
    let scope = Scope::new(label);
    let mut leases = Vec::with_capacity(writers);
    for writer in 0..writers {
        leases.push(own_lease(&store, &scope, writer).await?);
    }
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for (key, fence) in leases {
        tasks.spawn(body.clone()(store.clone(), key, fence, deadline));
    }
    let mut operations = 0;
    while let Some(joined) = tasks.join_next().await {
        operations += joined.map_err(|e| Error::invalid("writer", e.to_string()))??;
    }
    Ok(Throughput {
        operations,
        elapsed: start.elapsed(),
    })
}

/// `writers` tasks, each holding its own lease, commit increasing checkpoints (each a fenced,
/// forward-only write) for `duration`.
pub async fn fenced_checkpoints(
    store: Arc<dyn LeaseStore>,
    writers: usize,
    duration: Duration,
) -> Result<Throughput, Error> {
    run_writers(
        store,
        writers,
        duration,
        "bench-checkpoint",
        |store, key, fence, deadline| async move {
            let mut n: u128 = 0;
            while Instant::now() < deadline {
                n += 1;
                let update = CheckpointUpdate::commit(Checkpoint::Sequence(SequenceNumber::from(
                    49_590_338_271_490_256_608_559_692_538_361_571_095u128 + n,
                )));
                store.checkpoint(&key, &fence, &update).await?;
            }
            Ok(n as u64)
        },
    )
    .await
}

/// `writers` tasks, each on its own lease, alternate a take (a steal at the epoch they hold,
/// so it always succeeds) and a renew, for `duration`; each counts as one operation.
pub async fn take_and_renew(
    store: Arc<dyn LeaseStore>,
    writers: usize,
    duration: Duration,
) -> Result<Throughput, Error> {
    run_writers(
        store,
        writers,
        duration,
        "bench-take-renew",
        |store, key, fence, deadline| async move {
            let mut operations = 0u64;
            let mut epoch = fence.epoch;
            while Instant::now() < deadline {
                let taken = store
                    .take_lease(&key, epoch, &fence.owner, TakeMode::Steal, HOLD)
                    .await?;
                epoch = taken.epoch;
                let fence = crate::Fence::new(fence.owner.clone(), epoch);
                store.renew_lease(&key, &fence, HOLD).await?;
                operations += 2;
            }
            Ok(operations)
        },
    )
    .await
}
