//! Keeping held leases alive, on a task of its own so that slow processing never costs a lease.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::{Instant, MissedTickBehavior, interval_at};

use crate::Error;
use crate::worker::context::{Stop, WorkerContext, WorkerEvent};
use crate::worker::metrics::WorkerMetrics;

/// Every renewal interval: refreshes the worker's heartbeat and renews every held lease, in one
/// store call (one statement for PostgreSQL, one transaction for SQLite). A
/// renewal that reveals a handoff request tells the consumer to hand over; one that finds the
/// lease taken tells it the lease is lost. A lease whose local validity ran out (no renewal
/// answered for a lease duration: the store unreachable, or this process paused) is treated as
/// lost too: another worker may have taken it, so processing stops rather than duplicate work;
/// this worker takes it back once the store answers if nobody else did. Every store call has a
/// deadline (the worker wraps its store), so a hanging store cannot hold this loop up.
pub(crate) async fn renew_leases(ctx: Arc<WorkerContext>) {
    // Workers started together renew at different moments of the interval, not all at once.
    let period = ctx.config.renewal_interval();
    let mut ticks = interval_at(Instant::now() + period.mul_f64(ctx.fraction(1)), period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // A worker without its liveness hold takes nothing: it must not count in the others'
        // shares either.
        if !ctx.leaving.load(Ordering::SeqCst)
            && !ctx.liveness.is_lost()
            && let Err(error) = ctx.store.heartbeat(&ctx.id).await
        {
            tracing::warn!(%error, "heartbeat failed");
        }
        let held: Vec<_> = ctx
            .held()
            .iter()
            .filter(|(_, held)| !held.releasing)
            .map(|(shard, held)| (ctx.key(shard), held.fence.clone()))
            .collect();
        if held.is_empty() {
            continue;
        }
        let sent_at = Instant::now();
        let outcomes = match ctx
            .store
            .renew_leases(&held, ctx.config.lease_duration)
            .await
        {
            Ok(outcomes) => outcomes,
            // The whole batch failed (transient): each lease as if its own renewal had.
            Err(error) => held.iter().map(|_| Err(error.clone())).collect(),
        };
        for ((key, fence), outcome) in held.iter().zip(outcomes) {
            let shard = &key.shard;
            match outcome {
                Ok(lease) => {
                    ctx.renewed(shard, fence, sent_at);
                    if lease.handoff_to.as_ref().is_some_and(|to| to != &ctx.id) {
                        ctx.signal(shard, fence, Stop::Handoff);
                    }
                }
                Err(Error::LeaseLost { .. } | Error::NotFound { .. }) => {
                    tracing::info!(lease = %key, "lease lost to another worker");
                    WorkerMetrics::add(&ctx.metrics.leases_lost, 1);
                    ctx.signal(shard, fence, Stop::LeaseLost);
                }
                Err(error) if !ctx.is_valid(shard, fence) => {
                    tracing::warn!(lease = %key, %error, "lease not renewed for a lease duration; stopping its processing");
                    WorkerMetrics::add(&ctx.metrics.leases_lost, 1);
                    ctx.signal(shard, fence, Stop::LeaseLost);
                    let _ = ctx.events.send(WorkerEvent::LeaseLeftBehind);
                }
                Err(error) => tracing::warn!(lease = %key, %error, "renewal failed"),
            }
        }
    }
}
