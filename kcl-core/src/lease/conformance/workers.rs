//! The clause on worker registration and liveness.

use std::sync::Arc;
use std::time::Duration;

use super::Scope;
use super::durations::LONG;
use super::outcome::ok;
use crate::LeaseStore;

/// Heartbeats register workers; the live-worker list drops a worker whose heartbeat stopped for
/// longer than the timeout, keeps one that goes on, and drops a deregistered one at once.
pub async fn live_workers_drop_a_stopped_heartbeat(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("workers");
    let (a, b) = (scope.worker("a"), scope.worker("b"));
    ok(store.heartbeat(&a).await, "a heartbeats");
    ok(store.heartbeat(&b).await, "b heartbeats");
    ok(store.heartbeat(&a).await, "a heartbeats again");
    let live = ok(store.live_workers(LONG).await, "live workers");
    assert_eq!(
        live.iter().filter(|w| **w == a).count(),
        1,
        "a is listed once: {live:?}"
    );
    assert!(live.contains(&b), "{live:?}");
    let mut sorted = live.clone();
    sorted.sort();
    assert_eq!(live, sorted, "live workers are ordered by id");

    // b stops; a keeps going.
    let timeout = Duration::from_millis(1000);
    tokio::time::sleep(timeout + Duration::from_millis(300)).await;
    ok(store.heartbeat(&a).await, "a heartbeats");
    let live = ok(store.live_workers(timeout).await, "live workers");
    assert!(live.contains(&a), "a heartbeats, so it is live: {live:?}");
    assert!(!live.contains(&b), "b stopped heartbeating: {live:?}");

    ok(store.deregister_worker(&a).await, "a deregisters");
    let live = ok(store.live_workers(LONG).await, "live workers");
    assert!(!live.contains(&a), "a deregistered: {live:?}");
    assert!(
        live.contains(&b),
        "b is still within the long timeout: {live:?}"
    );
    ok(store.deregister_worker(&b).await, "b deregisters");
    ok(
        store.deregister_worker(&b).await,
        "deregistering twice is harmless",
    );
}
