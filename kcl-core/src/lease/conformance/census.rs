//! The clause on the census a taker reads instead of the whole table.

use std::sync::Arc;
use std::time::Duration;

use super::Scope;
use super::durations::{LONG, SHORT};
use super::outcome::ok;
use crate::{
    Checkpoint, CheckpointUpdate, Lease, LeaseCensus, LeaseKey, LeaseStore, NewLease, TakeMode,
    WorkerId,
};

/// A lease as the clause compares it: everything but the exact time left (read at different
/// moments), of which only whether it ran out counts.
fn comparable(lease: &Lease) -> (Lease, bool) {
    let expired = lease.is_expired();
    let mut lease = lease.clone();
    lease.time_left = lease.time_left.map(|_| Duration::ZERO);
    (lease, expired)
}

fn shards(leases: &[Lease]) -> Vec<String> {
    leases
        .iter()
        .map(|lease| lease.key.shard.to_string())
        .collect()
}

/// [`lease_census`](LeaseStore::lease_census) is [`LeaseCensus::of`] the caller and the
/// listing: unowned, expired, finished and asked-for leases, the caller's own, and an awaited
/// parent with its child in full; other workers' settled leases counted per owner, with their
/// soonest expiry. [`leases_held_by`](LeaseStore::leases_held_by) lists one owner's leases.
pub async fn census_counts_what_others_hold_in_peace(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("census");
    let stream = scope.stream();
    let (me, b, c) = (scope.worker("me"), scope.worker("b"), scope.worker("c"));
    let create = |index: u64, parents: Vec<crate::ShardId>| {
        NewLease::new(scope.key(index), Checkpoint::TrimHorizon).with_parents(parents)
    };
    for index in (0..=6).chain(8..=9) {
        assert!(ok(
            store
                .create_lease_if_absent(&create(index, Vec::new()))
                .await,
            "create"
        ));
    }
    let parent = scope.key(6).shard;
    assert!(ok(
        store.create_lease_if_absent(&create(7, vec![parent])).await,
        "create child"
    ));
    let take = |key: LeaseKey, worker: WorkerId, duration: Duration| {
        let store = Arc::clone(&store);
        async move {
            ok(
                store
                    .take_lease(&key, 0, &worker, TakeMode::IfAvailable, duration)
                    .await,
                "take",
            )
        }
    };
    take(scope.key(1), me.clone(), LONG).await;
    let expiring = take(scope.key(2), b.clone(), SHORT).await;
    take(scope.key(3), b.clone(), LONG).await;
    let ended = take(scope.key(4), b.clone(), LONG).await;
    let end = CheckpointUpdate::commit(Checkpoint::ShardEnd);
    let fence = ended.fence().expect("held");
    ok(
        store.checkpoint(&ended.key, &fence, &end).await,
        "SHARD_END",
    );
    let asked = take(scope.key(5), b.clone(), LONG).await;
    ok(
        store.request_handoff(&asked.key, asked.epoch, &me).await,
        "ask for it",
    );
    for index in [6, 8, 9] {
        take(scope.key(index), c.clone(), LONG).await;
    }
    tokio::time::sleep(SHORT * 2).await;
    assert!(
        ok(store.get_lease(&expiring.key).await, "read").is_some_and(|l| l.is_expired()),
        "the short lease expired"
    );

    let census = ok(store.lease_census(&stream, &me).await, "census");
    let reference = LeaseCensus::of(&me, ok(store.list_leases(&stream).await, "list"));
    assert_eq!(
        shards(&census.leases),
        [0, 1, 2, 4, 5, 6, 7].map(|index| scope.key(index).shard.to_string()),
        "in full: unowned, mine, expired, finished, asked for, an awaited parent, its child"
    );
    assert_eq!(
        census.leases.iter().map(comparable).collect::<Vec<_>>(),
        reference.leases.iter().map(comparable).collect::<Vec<_>>(),
        "the leases in full are those of a listing"
    );
    let tallies: Vec<(WorkerId, usize)> = census
        .settled
        .iter()
        .map(|tally| (tally.owner.clone(), tally.leases))
        .collect();
    assert_eq!(
        tallies,
        [(b.clone(), 1), (c.clone(), 2)],
        "settled, counted per owner"
    );
    for tally in &census.settled {
        assert!(
            tally.soonest_expiry <= LONG && tally.soonest_expiry + Duration::from_secs(60) > LONG,
            "{}'s soonest expiry is about a long lease from now: {:?}",
            tally.owner,
            tally.soonest_expiry
        );
    }

    let held = ok(store.leases_held_by(&stream, &c).await, "c's leases");
    assert_eq!(
        shards(&held),
        [6, 8, 9].map(|index| scope.key(index).shard.to_string()),
        "one owner's leases, by shard"
    );
    let held = ok(store.leases_held_by(&stream, &b).await, "b's leases");
    assert_eq!(
        shards(&held),
        [2, 3, 4, 5].map(|index| scope.key(index).shard.to_string()),
        "expired and finished ones too"
    );
}
