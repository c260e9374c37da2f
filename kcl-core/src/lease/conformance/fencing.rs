//! Clauses on fencing: renew, checkpoint and release are conditional on owner and epoch.

use std::sync::Arc;

use super::Scope;
use super::durations::{LONG, SHORT, wait_for_short_lease_to_expire};
use super::outcome::{conflict, lease_lost, ok, seq};
use crate::{Checkpoint, CheckpointUpdate, Fence, LeaseStore, NewLease, ShardId, TakeMode};

/// A stolen lease's previous owner fails to renew, checkpoint, release, hand off or record
/// children ([`Error::LeaseLost`](crate::Error::LeaseLost)), and nothing it tried is written; a
/// fence with the right owner and a wrong epoch fails the same way.
pub async fn stolen_lease_owner_cannot_renew_or_checkpoint(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("stolen");
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
    let a_fence = held.fence().expect("a holds it");
    ok(
        store
            .checkpoint(&key, &a_fence, &CheckpointUpdate::commit(seq("10")))
            .await,
        "a checkpoints",
    );

    let stolen = ok(
        store.take_lease(&key, 1, &b, TakeMode::Steal, LONG).await,
        "b steals",
    );
    let b_fence = stolen.fence().expect("b holds it");

    lease_lost(
        store.renew_lease(&key, &a_fence, LONG).await,
        "a renews after the steal",
    );
    lease_lost(
        store
            .checkpoint(&key, &a_fence, &CheckpointUpdate::commit(seq("20")))
            .await,
        "a checkpoints after the steal",
    );
    lease_lost(
        store.release_lease(&key, &a_fence).await,
        "a releases after the steal",
    );
    lease_lost(
        store.complete_handoff(&key, &a_fence, LONG).await,
        "a completes a handoff after the steal",
    );
    lease_lost(
        store
            .record_child_shards(&key, &a_fence, &[ShardId::from_index(1)])
            .await,
        "a records children after the steal",
    );
    for wrong_epoch in [b_fence.epoch - 1, b_fence.epoch + 1] {
        let forged = Fence::new(b.clone(), wrong_epoch);
        lease_lost(
            store
                .checkpoint(&key, &forged, &CheckpointUpdate::commit(seq("30")))
                .await,
            "checkpoint with the owner's id and a wrong epoch",
        );
        lease_lost(
            store.renew_lease(&key, &forged, LONG).await,
            "renew with a wrong epoch",
        );
    }

    let after = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert_eq!(
        after.checkpoint,
        seq("10"),
        "no refused checkpoint was written"
    );
    assert_eq!(after.fence(), Some(b_fence.clone()));
    assert!(after.child_shard_ids.is_empty());
    ok(
        store
            .checkpoint(&key, &b_fence, &CheckpointUpdate::commit(seq("20")))
            .await,
        "b checkpoints",
    );

    // And back: a steals it again, and now b is the one fenced out.
    let retaken = ok(
        store.take_lease(&key, 2, &a, TakeMode::Steal, LONG).await,
        "a steals back",
    );
    lease_lost(
        store
            .checkpoint(&key, &b_fence, &CheckpointUpdate::commit(seq("25")))
            .await,
        "b checkpoints after a stole it back",
    );
    lease_lost(
        store
            .checkpoint(&key, &a_fence, &CheckpointUpdate::commit(seq("25")))
            .await,
        "a's fence from its earlier holding",
    );
    let a_again = retaken.fence().expect("a holds it");
    ok(
        store
            .checkpoint(&key, &a_again, &CheckpointUpdate::commit(seq("25")))
            .await,
        "a checkpoints with its new epoch",
    );
}

/// Renewal keeps a lease from expiring; fencing is by epoch, not by time, so an owner whose lease
/// expired but was not taken may still renew it.
pub async fn renew_keeps_the_lease_from_expiring(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("renew");
    let key = scope.key(0);
    let (a, b) = (scope.worker("a"), scope.worker("b"));
    let new = NewLease::new(key.clone(), Checkpoint::TrimHorizon);
    assert!(ok(store.create_lease_if_absent(&new).await, "create"));
    let held = ok(
        store
            .take_lease(&key, 0, &a, TakeMode::IfAvailable, SHORT)
            .await,
        "a takes",
    );
    let fence = held.fence().expect("a holds it");

    let renewed = ok(store.renew_lease(&key, &fence, LONG).await, "a renews");
    assert_eq!(
        renewed.fence(),
        Some(fence.clone()),
        "renewal keeps owner and epoch"
    );
    assert!(
        renewed.time_left.is_some_and(|left| left > SHORT),
        "{:?}",
        renewed.time_left
    );
    wait_for_short_lease_to_expire().await;
    let later = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert!(
        !later.is_expired(),
        "the renewed lease outlived its first duration: {later:?}"
    );
    conflict(
        store
            .take_lease(&key, 1, &b, TakeMode::IfAvailable, LONG)
            .await,
        "b takes a renewed lease",
    );

    ok(
        store.renew_lease(&key, &fence, SHORT).await,
        "a renews briefly",
    );
    wait_for_short_lease_to_expire().await;
    let expired = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert!(expired.is_expired(), "{expired:?}");
    let revived = ok(
        store.renew_lease(&key, &fence, LONG).await,
        "a renews its expired lease",
    );
    assert!(!revived.is_expired());
    assert_eq!(revived.epoch, fence.epoch);
}

/// Release leaves the lease unowned with its checkpoint and epoch; the releaser is fenced out and
/// another worker can take it at once.
pub async fn release_keeps_the_checkpoint_and_frees_the_lease(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("release");
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
    let fence = held.fence().expect("a holds it");
    ok(
        store
            .checkpoint(&key, &fence, &CheckpointUpdate::commit(seq("7")))
            .await,
        "a checkpoints",
    );
    ok(store.release_lease(&key, &fence).await, "a releases");

    let released = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert_eq!(released.owner, None);
    assert_eq!(released.time_left, None);
    assert_eq!(released.epoch, 1, "release keeps the epoch");
    assert_eq!(
        released.checkpoint,
        seq("7"),
        "release keeps the checkpoint"
    );
    assert!(released.is_available());
    lease_lost(
        store
            .checkpoint(&key, &fence, &CheckpointUpdate::commit(seq("8")))
            .await,
        "a checkpoints after releasing",
    );
    lease_lost(
        store.renew_lease(&key, &fence, LONG).await,
        "a renews after releasing",
    );
    lease_lost(store.release_lease(&key, &fence).await, "a releases twice");

    let taken = ok(
        store
            .take_lease(&key, 1, &b, TakeMode::IfAvailable, LONG)
            .await,
        "b takes",
    );
    assert_eq!(taken.checkpoint, seq("7"));
    assert_eq!(taken.epoch, 2);
}
