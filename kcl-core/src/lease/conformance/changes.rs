//! The clause on the change number takers read to skip listing the leases.

use std::sync::Arc;

use super::Scope;
use super::durations::LONG;
use super::outcome::{ok, seq};
use crate::{Checkpoint, CheckpointUpdate, LeaseStore, NewLease, TakeMode};

/// A store that keeps [`lease_changes`](LeaseStore::lease_changes) moves it with every change
/// a taker must see: a create, a take, a handoff completed, a release, `SHARD_END`, a delete.
/// (Other clauses may move it too when they share the store, so the clause never asserts that
/// it stood still.) A store that keeps none answers `None` every time.
pub async fn lease_changes_move_with_every_change_of_ownership(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("changes");
    let key = scope.key(0);
    let (a, b) = (scope.worker("a"), scope.worker("b"));
    let Some(mut last) = ok(store.lease_changes().await, "read the change number") else {
        assert_eq!(
            ok(store.lease_changes().await, "read it again"),
            None,
            "a store keeps a change number or not"
        );
        return;
    };
    let mut moved = |step: &str, now: Option<u64>| {
        let now = now.unwrap_or_else(|| panic!("{step}: the change number is gone"));
        assert_ne!(now, last, "{step} moves the change number");
        last = now;
    };
    let new = NewLease::new(key.clone(), Checkpoint::TrimHorizon);
    assert!(ok(store.create_lease_if_absent(&new).await, "create"));
    moved("a create", ok(store.lease_changes().await, "read"));
    let taken = ok(
        store
            .take_lease(&key, 0, &a, TakeMode::IfAvailable, LONG)
            .await,
        "a takes",
    );
    moved("a take", ok(store.lease_changes().await, "read"));
    let fence = taken.fence().expect("held");
    ok(
        store
            .checkpoint(&key, &fence, &CheckpointUpdate::commit(seq("5")))
            .await,
        "checkpoint",
    );
    ok(store.request_handoff(&key, fence.epoch, &b).await, "b asks");
    let handed = ok(
        store.complete_handoff(&key, &fence, LONG).await,
        "a hands over",
    );
    moved(
        "a completed handoff",
        ok(store.lease_changes().await, "read"),
    );
    let fence = handed.fence().expect("held by b");
    ok(store.release_lease(&key, &fence).await, "b releases");
    moved("a release", ok(store.lease_changes().await, "read"));
    let taken = ok(
        store
            .take_lease(&key, fence.epoch, &a, TakeMode::IfAvailable, LONG)
            .await,
        "a takes again",
    );
    moved("a take", ok(store.lease_changes().await, "read"));
    let fence = taken.fence().expect("held");
    ok(
        store
            .checkpoint(
                &key,
                &fence,
                &CheckpointUpdate::commit(Checkpoint::ShardEnd),
            )
            .await,
        "SHARD_END",
    );
    moved(
        "reaching SHARD_END",
        ok(store.lease_changes().await, "read"),
    );
    assert!(ok(store.delete_lease(&key).await, "delete"));
    moved("a delete", ok(store.lease_changes().await, "read"));
    let batch = [NewLease::new(scope.key(1), Checkpoint::TrimHorizon)];
    ok(store.create_leases_if_absent(&batch).await, "batch create");
    moved("a batch create", ok(store.lease_changes().await, "read"));
}
