//! The clause on liveness bound to a worker's process (optional capability).

use std::sync::Arc;
use std::time::Duration;

use super::Scope;
use super::outcome::ok;
use crate::{LeaseStore, WorkerId};

/// How long a store may take to notice a hold that was let go (a closed connection's session
/// ending on the database server).
const NOTICE: Duration = Duration::from_secs(10);

/// A worker is reported dead once its liveness hold is dropped (as its process's death drops
/// it), never while the hold lives, never if it never held liveness, and not after it
/// deregistered; holding again makes it alive. A store without the capability reports nobody
/// dead.
pub async fn a_dropped_liveness_hold_reports_the_worker_dead(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("liveness");
    let (a, b, never) = (scope.worker("a"), scope.worker("b"), scope.worker("never"));
    let all = [a.clone(), b.clone(), never.clone()];
    let Some(hold_a) = ok(store.hold_liveness(&a).await, "a holds liveness") else {
        let dead = ok(store.dead_workers(&all).await, "dead workers");
        assert!(
            dead.is_empty(),
            "a store without liveness reports nobody dead: {dead:?}"
        );
        return;
    };
    let hold_b = ok(store.hold_liveness(&b).await, "b holds liveness")
        .expect("a store that gave a liveness hold to one worker gives one to another");
    let dead = ok(store.dead_workers(&all).await, "dead workers");
    assert!(dead.is_empty(), "nobody let go of liveness: {dead:?}");
    ok(hold_a.check().await, "a's hold is in force");

    drop(hold_a);
    assert_eq!(
        dead_within_notice(&store, &all, std::slice::from_ref(&a)).await,
        std::slice::from_ref(&a),
        "a let go of its hold: a, and only a, is dead"
    );
    ok(hold_b.check().await, "b's hold is untouched by a's");

    let hold_a = ok(store.hold_liveness(&a).await, "a holds liveness again")
        .expect("the store gave a hold before");
    let dead = ok(store.dead_workers(&all).await, "dead workers");
    assert!(
        dead.is_empty(),
        "a holds liveness again, so it is alive: {dead:?}"
    );

    // A worker that deregistered is not reported, even after it let go.
    ok(store.deregister_worker(&b).await, "b deregisters");
    drop(hold_b);
    drop(hold_a);
    assert_eq!(
        dead_within_notice(&store, &all, std::slice::from_ref(&a)).await,
        std::slice::from_ref(&a),
        "b deregistered before letting go; a did not"
    );
    ok(store.deregister_worker(&a).await, "a deregisters");
    let dead = ok(store.dead_workers(&all).await, "dead workers");
    assert!(
        dead.is_empty(),
        "deregistered workers are not reported: {dead:?}"
    );
}

/// The dead workers among `workers`, once they are `expected` or [`NOTICE`] has passed.
async fn dead_within_notice(
    store: &Arc<dyn LeaseStore>,
    workers: &[WorkerId],
    expected: &[WorkerId],
) -> Vec<WorkerId> {
    let deadline = tokio::time::Instant::now() + NOTICE;
    loop {
        let dead = ok(store.dead_workers(workers).await, "dead workers");
        if dead == expected || tokio::time::Instant::now() >= deadline {
            return dead;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
