//! The clause on resharding lineage and deleting finished leases.

use std::sync::Arc;

use super::Scope;
use super::durations::LONG;
use super::outcome::{lease_lost, not_found, ok};
use crate::{Checkpoint, CheckpointUpdate, LeaseStore, NewLease, ShardId, TakeMode};

/// Parents are stored at creation, children are recorded (fenced) by the parent's owner, and a
/// deleted lease is gone: `get` is `None`, operations on it are `NotFound`.
pub async fn child_shards_are_recorded_and_leases_deleted(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("lineage");
    let (parent, left, right) = (scope.key(0), scope.key(1), scope.key(2));
    let (a, b) = (scope.worker("a"), scope.worker("b"));
    let new = NewLease::new(parent.clone(), Checkpoint::TrimHorizon);
    assert!(ok(
        store.create_lease_if_absent(&new).await,
        "create parent"
    ));
    let held = ok(
        store
            .take_lease(&parent, 0, &a, TakeMode::IfAvailable, LONG)
            .await,
        "a takes",
    );
    let fence = held.fence().expect("a holds it");
    ok(
        store
            .checkpoint(
                &parent,
                &fence,
                &CheckpointUpdate::commit(Checkpoint::ShardEnd),
            )
            .await,
        "a reaches SHARD_END",
    );
    let children = vec![left.shard.clone(), right.shard.clone()];
    ok(
        store.record_child_shards(&parent, &fence, &children).await,
        "a records children",
    );
    let b_fence = crate::Fence::new(b, fence.epoch);
    lease_lost(
        store
            .record_child_shards(&parent, &b_fence, &[ShardId::from_index(9)])
            .await,
        "a non-owner records children",
    );
    for child in [&left, &right] {
        let new = NewLease::new(child.clone(), Checkpoint::TrimHorizon)
            .with_parents(vec![parent.shard.clone()]);
        assert!(ok(store.create_lease_if_absent(&new).await, "create child"));
    }

    let listed = ok(store.list_leases(&scope.stream()).await, "list");
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0].child_shard_ids, children);
    assert_eq!(listed[0].checkpoint, Checkpoint::ShardEnd);
    assert_eq!(listed[1].parent_shard_ids, vec![parent.shard.clone()]);
    assert_eq!(listed[2].parent_shard_ids, vec![parent.shard.clone()]);

    assert!(ok(store.delete_lease(&parent).await, "delete the parent"));
    assert_eq!(
        ok(store.get_lease(&parent).await, "get the deleted parent"),
        None
    );
    assert!(!ok(store.delete_lease(&parent).await, "delete twice"));
    not_found(
        store.renew_lease(&parent, &fence, LONG).await,
        "renew a deleted lease",
    );
    not_found(
        store
            .checkpoint(
                &parent,
                &fence,
                &CheckpointUpdate::commit(Checkpoint::ShardEnd),
            )
            .await,
        "checkpoint a deleted lease",
    );
    let left_over = ok(store.list_leases(&scope.stream()).await, "list");
    let shards: Vec<_> = left_over.iter().map(|l| l.key.shard.clone()).collect();
    assert_eq!(shards, children);
}
