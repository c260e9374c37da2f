//! Clauses on taking leases: the conditional write on the epoch seen, expiry and stealing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::durations::{LONG, SHORT, wait_for_short_lease_to_expire};
use super::outcome::{conflict, ok};
use super::{RACERS, Scope};
use crate::{Checkpoint, Error, LeaseKey, LeaseStore, NewLease, TakeMode, WorkerId};

/// Runs [`RACERS`] tasks that take `key` at `seen_epoch` in `mode` at once; asserts exactly one
/// wins, every other gets [`Error::LeaseConflict`], and the stored lease is the winner's at the
/// next epoch. Returns the winner.
pub async fn race_to_take(
    store: &Arc<dyn LeaseStore>,
    scope: &Scope,
    key: &LeaseKey,
    seen_epoch: u64,
    mode: TakeMode,
    duration: Duration,
) -> WorkerId {
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut racers = JoinSet::new();
    for i in 0..RACERS {
        let (store, key, barrier) = (store.clone(), key.clone(), barrier.clone());
        let worker = scope.worker(&format!("racer-{i}"));
        racers.spawn(async move {
            barrier.wait().await;
            let taken = store
                .take_lease(&key, seen_epoch, &worker, mode, duration)
                .await;
            (worker, taken)
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = racers.join_next().await {
        let (worker, taken) = joined.unwrap_or_else(|e| panic!("take racer panicked: {e}"));
        match taken {
            Ok(lease) => {
                assert_eq!(lease.owner.as_ref(), Some(&worker));
                assert_eq!(lease.epoch, seen_epoch + 1);
                winners.push(worker);
            }
            Err(Error::LeaseConflict { .. }) => {}
            Err(other) => panic!("racing take ({mode:?}) by {worker}: unexpected error {other}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "{RACERS} tasks raced to take ({mode:?}) at epoch {seen_epoch}; winners: {winners:?}"
    );
    let winner = winners.remove(0);
    let lease = ok(store.get_lease(key).await, "get after race").expect("lease exists");
    assert_eq!(
        lease.owner.as_ref(),
        Some(&winner),
        "stored owner is the winner"
    );
    assert_eq!(
        lease.epoch,
        seen_epoch + 1,
        "the take bumped the epoch once"
    );
    winner
}

/// Exactly one of 32 tasks wins when they race to take the same lease: unowned, then expired,
/// then (stealing) held.
pub async fn exactly_one_winner_when_32_tasks_race_to_take(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("take-race");
    let key = scope.key(0);
    let new = NewLease::new(key.clone(), Checkpoint::TrimHorizon);
    assert!(ok(store.create_lease_if_absent(&new).await, "create"));

    race_to_take(&store, &scope, &key, 0, TakeMode::IfAvailable, SHORT).await;

    wait_for_short_lease_to_expire().await;
    let expired = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert!(
        expired.is_expired(),
        "the winner's short lease expired: {expired:?}"
    );
    race_to_take(&store, &scope, &key, 1, TakeMode::IfAvailable, LONG).await;

    race_to_take(&store, &scope, &key, 2, TakeMode::Steal, LONG).await;
}

/// An expired lease can be taken; an unexpired one cannot, unless stolen.
pub async fn expired_lease_can_be_taken_unexpired_needs_steal(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("expiry");
    let key = scope.key(0);
    let (a, b, c) = (scope.worker("a"), scope.worker("b"), scope.worker("c"));
    let new = NewLease::new(key.clone(), Checkpoint::TrimHorizon);
    assert!(ok(store.create_lease_if_absent(&new).await, "create"));

    let held = ok(
        store
            .take_lease(&key, 0, &a, TakeMode::IfAvailable, LONG)
            .await,
        "a takes",
    );
    assert!(!held.is_expired() && !held.is_available());
    assert!(
        held.time_left.is_some_and(|left| left > SHORT),
        "time left: {:?}",
        held.time_left
    );
    conflict(
        store
            .take_lease(&key, 1, &b, TakeMode::IfAvailable, LONG)
            .await,
        "b takes a's unexpired lease without steal",
    );
    let after = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert_eq!(
        (after.owner.as_ref(), after.epoch),
        (Some(&a), 1),
        "refused take wrote nothing"
    );

    let stolen = ok(
        store.take_lease(&key, 1, &b, TakeMode::Steal, SHORT).await,
        "b steals",
    );
    assert_eq!((stolen.owner.as_ref(), stolen.epoch), (Some(&b), 2));

    wait_for_short_lease_to_expire().await;
    let expired = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert!(
        expired.is_expired() && expired.is_available(),
        "b's lease expired: {expired:?}"
    );
    assert_eq!(expired.time_left, Some(Duration::ZERO));
    let taken = ok(
        store
            .take_lease(&key, 2, &c, TakeMode::IfAvailable, LONG)
            .await,
        "c takes b's expired lease",
    );
    assert_eq!((taken.owner.as_ref(), taken.epoch), (Some(&c), 3));
}

/// A take on an epoch that moved on is a conflict, steal or not, and writes nothing.
pub async fn take_on_a_stale_epoch_is_a_conflict(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("stale-epoch");
    let key = scope.key(0);
    let (a, b) = (scope.worker("a"), scope.worker("b"));
    let new = NewLease::new(key.clone(), Checkpoint::TrimHorizon);
    assert!(ok(store.create_lease_if_absent(&new).await, "create"));
    let held = ok(
        store
            .take_lease(&key, 0, &a, TakeMode::IfAvailable, LONG)
            .await,
        "a takes",
    );

    conflict(
        store.take_lease(&key, 0, &b, TakeMode::Steal, LONG).await,
        "steal at epoch 0",
    );
    conflict(
        store.take_lease(&key, 5, &b, TakeMode::Steal, LONG).await,
        "steal at epoch 5",
    );
    let fence = held.fence().expect("a holds it");
    ok(store.release_lease(&key, &fence).await, "a releases");
    conflict(
        store
            .take_lease(&key, 0, &b, TakeMode::IfAvailable, LONG)
            .await,
        "take a released lease at its old epoch",
    );
    let after = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert_eq!(
        (after.owner, after.epoch),
        (None, 1),
        "refused takes wrote nothing"
    );
    let taken = ok(
        store
            .take_lease(&key, 1, &b, TakeMode::IfAvailable, LONG)
            .await,
        "b takes",
    );
    assert_eq!(taken.epoch, 2);
    match store
        .take_lease(&key, 2, &a, TakeMode::Steal, Duration::ZERO)
        .await
    {
        Err(Error::InvalidArgument { .. }) => {}
        other => {
            panic!("a take for a zero lease duration: expected InvalidArgument, got {other:?}")
        }
    }
}
