//! Clauses on creating, reading and listing leases.

use std::sync::Arc;

use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::outcome::{not_found, ok, seq};
use super::{RACERS, Scope};
use crate::{
    Checkpoint, CheckpointUpdate, Fence, LeaseStore, NewLease, SequenceNumber, ShardId, TakeMode,
};

/// `create_lease_if_absent` is idempotent under races: of 32 concurrent creates of one key,
/// exactly one returns `true` and the stored lease is that one's; later creates change nothing.
pub async fn create_if_absent_is_idempotent_under_races(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("create-race");
    let key = scope.key(0);
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut racers = JoinSet::new();
    for i in 0..RACERS {
        let (store, key, barrier) = (store.clone(), key.clone(), barrier.clone());
        racers.spawn(async move {
            // Each racer proposes a different lease, so the stored one tells who won.
            let lease = NewLease::new(key, Checkpoint::Sequence(SequenceNumber::from(i as u128)))
                .with_parents(vec![ShardId::from_index(100 + i as u64)]);
            barrier.wait().await;
            (i, store.create_lease_if_absent(&lease).await)
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = racers.join_next().await {
        let (i, created) = joined.unwrap_or_else(|e| panic!("create racer panicked: {e}"));
        if ok(created, "racing create_lease_if_absent") {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "creators that got `true`: {winners:?}");
    let winner = winners[0];
    let lease = ok(store.get_lease(&key).await, "get after race").expect("lease exists after race");
    assert_eq!(
        lease.checkpoint,
        Checkpoint::Sequence(SequenceNumber::from(winner as u128))
    );
    assert_eq!(
        lease.parent_shard_ids,
        vec![ShardId::from_index(100 + winner as u64)]
    );
    assert_eq!((lease.owner, lease.epoch, lease.time_left), (None, 0, None));

    // A later create of a lease that was taken and checkpointed changes nothing.
    let worker = scope.worker("a");
    let taken = ok(
        store
            .take_lease(&key, 0, &worker, TakeMode::IfAvailable, super::LONG)
            .await,
        "take",
    );
    let fence = Fence::new(worker, taken.epoch);
    ok(
        store
            .checkpoint(&key, &fence, &CheckpointUpdate::commit(seq("1000")))
            .await,
        "checkpoint",
    );
    let again = NewLease::new(key.clone(), Checkpoint::TrimHorizon);
    assert!(!ok(
        store.create_lease_if_absent(&again).await,
        "create again"
    ));
    let after = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert_eq!(after.checkpoint, seq("1000"));
    assert_eq!(after.fence(), Some(fence));
}

/// `get_lease` and `list_leases` return what was created: every field, only the stream asked
/// for, ordered by shard id.
pub async fn get_and_list_return_what_was_created(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("get-list");
    let other = scope.stream_named("other");
    // Created out of order, to see the list come back ordered.
    for index in [2, 0, 1] {
        let lease = NewLease::new(scope.key(index), Checkpoint::Latest)
            .with_parents(vec![ShardId::from_index(10), ShardId::from_index(11)]);
        assert!(ok(store.create_lease_if_absent(&lease).await, "create"));
    }
    let elsewhere = NewLease::new(
        crate::LeaseKey::new(other.clone(), ShardId::from_index(0)),
        Checkpoint::TrimHorizon,
    );
    assert!(ok(
        store.create_lease_if_absent(&elsewhere).await,
        "create in another stream"
    ));

    let listed = ok(store.list_leases(&scope.stream()).await, "list");
    let shards: Vec<ShardId> = listed.iter().map(|l| l.key.shard.clone()).collect();
    assert_eq!(shards, (0..3).map(ShardId::from_index).collect::<Vec<_>>());
    for lease in &listed {
        assert_eq!(lease.key.stream, scope.stream());
        assert_eq!(lease.checkpoint, Checkpoint::Latest);
        assert_eq!(
            lease.parent_shard_ids,
            vec![ShardId::from_index(10), ShardId::from_index(11)]
        );
        assert!(lease.child_shard_ids.is_empty());
        assert_eq!(lease.owner, None);
        assert_eq!(lease.epoch, 0);
        assert_eq!(lease.pending_checkpoint, None);
        assert_eq!(lease.handoff_to, None);
        assert!(lease.is_available());
    }
    let got = ok(store.get_lease(&scope.key(1)).await, "get").expect("lease exists");
    assert_eq!(got, listed[1]);
    assert_eq!(ok(store.list_leases(&other).await, "list other").len(), 1);
    let empty = scope.stream_named("empty");
    assert!(ok(store.list_leases(&empty).await, "list empty").is_empty());
}

/// Every operation on a lease that does not exist is [`Error::NotFound`](crate::Error::NotFound)
/// (kind `lease`); `get_lease` is `None` and `delete_lease` is `false`.
pub async fn unknown_lease_is_not_found(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("unknown");
    let key = scope.key(7);
    let worker = scope.worker("a");
    let fence = Fence::new(worker.clone(), 1);
    assert_eq!(ok(store.get_lease(&key).await, "get"), None);
    not_found(
        store
            .take_lease(&key, 0, &worker, TakeMode::IfAvailable, super::LONG)
            .await,
        "take",
    );
    not_found(
        store
            .take_lease(&key, 0, &worker, TakeMode::Steal, super::LONG)
            .await,
        "steal",
    );
    not_found(store.renew_lease(&key, &fence, super::LONG).await, "renew");
    not_found(store.release_lease(&key, &fence).await, "release");
    not_found(
        store
            .checkpoint(&key, &fence, &CheckpointUpdate::commit(seq("1")))
            .await,
        "checkpoint",
    );
    not_found(
        store.request_handoff(&key, 1, &worker).await,
        "request_handoff",
    );
    not_found(
        store.complete_handoff(&key, &fence, super::LONG).await,
        "complete_handoff",
    );
    not_found(
        store
            .record_child_shards(&key, &fence, &[ShardId::from_index(8)])
            .await,
        "record_child_shards",
    );
    assert!(!ok(store.delete_lease(&key).await, "delete"));
    match store.renew_lease(&key, &fence, super::LONG).await {
        Err(crate::Error::NotFound { name, .. }) => {
            assert!(
                name.contains(key.shard.as_str()),
                "NotFound names the lease: {name}"
            )
        }
        other => panic!("renew of an unknown lease: {other:?}"),
    }
}
