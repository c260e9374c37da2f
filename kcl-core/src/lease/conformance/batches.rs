//! Clauses on the batch operations: each lease in a batch is decided on its own, with its own
//! fence, exactly as the single operation would decide it.

use std::sync::Arc;

use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::durations::LONG;
use super::outcome::{backwards, lease_lost, not_found, ok, seq};
use super::{RACERS, Scope};
use crate::{
    Checkpoint, CheckpointUpdate, Fence, LeaseKey, LeaseStore, NewLease, PendingCheckpoint,
    ShardId, TakeMode,
};

/// Leases in one batch.
const BATCH: u64 = 6;

/// Creates and takes leases `0..count` of `scope` for `owner`; their fences.
async fn held_batch(
    store: &Arc<dyn LeaseStore>,
    scope: &Scope,
    owner: &crate::WorkerId,
    count: u64,
) -> Vec<(LeaseKey, Fence)> {
    let leases: Vec<NewLease> = (0..count)
        .map(|i| NewLease::new(scope.key(i), Checkpoint::TrimHorizon))
        .collect();
    let created = ok(store.create_leases_if_absent(&leases).await, "batch create");
    assert_eq!(
        created,
        vec![true; count as usize],
        "a fresh batch is created"
    );
    let mut held = Vec::new();
    for i in 0..count {
        let key = scope.key(i);
        let taken = ok(
            store
                .take_lease(&key, 0, owner, TakeMode::IfAvailable, LONG)
                .await,
            "take a lease of the batch",
        );
        held.push((key, taken.fence().expect("taken")));
    }
    held
}

/// A batch renewal renews each lease on its own fence: a lease stolen since, one released,
/// one deleted and one given with a wrong epoch are reported lost (or not found) and left as
/// they are, while the others in the same batch are renewed; the results come in input order.
pub async fn batch_renewal_reports_exactly_the_lost_leases(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("batch-renew");
    let (a, b) = (scope.worker("a"), scope.worker("b"));
    let mut held = held_batch(&store, &scope, &a, BATCH).await;
    // Lease 1 stolen by b, lease 3 released by a, lease 4 deleted, lease 5 fenced one epoch on.
    let stolen = ok(
        store
            .take_lease(&held[1].0, held[1].1.epoch, &b, TakeMode::Steal, LONG)
            .await,
        "b steals lease 1",
    );
    ok(
        store.release_lease(&held[3].0, &held[3].1).await,
        "a releases lease 3",
    );
    assert!(ok(store.delete_lease(&held[4].0).await, "delete lease 4"));
    held[5].1 = Fence::new(a.clone(), held[5].1.epoch + 1);
    // A lease of another stream, in the same batch.
    let other = LeaseKey::new(scope.stream_named("other"), ShardId::from_index(0));
    assert!(ok(
        store
            .create_lease_if_absent(&NewLease::new(other.clone(), Checkpoint::TrimHorizon))
            .await,
        "create on another stream"
    ));
    let other_fence = ok(
        store
            .take_lease(&other, 0, &a, TakeMode::IfAvailable, LONG)
            .await,
        "take on another stream",
    )
    .fence()
    .expect("taken");
    held.push((other.clone(), other_fence.clone()));
    ok(
        store.request_handoff(&held[2].0, held[2].1.epoch, &b).await,
        "b asks for lease 2",
    );

    let renewed = ok(store.renew_leases(&held, LONG).await, "batch renewal");
    assert_eq!(renewed.len(), held.len(), "one result per lease, in order");
    for (i, result) in renewed.into_iter().enumerate() {
        let (key, fence) = &held[i];
        match i {
            1 | 3 | 5 => lease_lost(result, &format!("batch renewal of lease {i}")),
            4 => not_found(result, "batch renewal of a deleted lease"),
            _ => {
                let lease = ok(result, &format!("batch renewal of lease {i}"));
                assert_eq!(&lease.key, key, "result {i} is for its own lease");
                assert_eq!(
                    lease.fence().as_ref(),
                    Some(fence),
                    "renewal keeps the fence"
                );
                assert!(!lease.is_expired());
                let expected_handoff = (i == 2).then(|| b.clone());
                assert_eq!(
                    lease.handoff_to, expected_handoff,
                    "a renewal shows a handoff request on its lease only"
                );
            }
        }
    }
    let after = ok(store.get_lease(&held[1].0).await, "get lease 1").expect("exists");
    assert_eq!(
        after.fence(),
        stolen.fence(),
        "the thief's lease is untouched"
    );
    let after = ok(store.get_lease(&held[3].0).await, "get lease 3").expect("exists");
    assert_eq!(after.owner, None, "a released lease stays released");
    assert!(
        ok(store.renew_leases(&[], LONG).await, "empty batch renewal").is_empty(),
        "an empty batch answers nothing"
    );
}

/// A batch of checkpoints writes each on its own fence and never backwards: a stolen lease's
/// checkpoint is lost, a backwards one refused, and the others (a commit, a prepared checkpoint
/// with application state) are written, in one call.
pub async fn batch_checkpoints_are_fenced_one_by_one(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("batch-checkpoint");
    let (a, b) = (scope.worker("a"), scope.worker("b"));
    let held = held_batch(&store, &scope, &a, BATCH).await;
    for (key, fence) in &held {
        ok(
            store
                .checkpoint(key, fence, &CheckpointUpdate::commit(seq("100")))
                .await,
            "first checkpoint",
        );
    }
    ok(
        store
            .take_lease(&held[1].0, held[1].1.epoch, &b, TakeMode::Steal, LONG)
            .await,
        "b steals lease 1",
    );
    let prepared = PendingCheckpoint::new(seq("300"), Some(vec![0, 255, 7]));
    let updates: Vec<(LeaseKey, Fence, CheckpointUpdate)> = held
        .iter()
        .enumerate()
        .map(|(i, (key, fence))| {
            let update = match i {
                2 => CheckpointUpdate::commit(seq("99")),
                3 => CheckpointUpdate::prepare(prepared.clone()),
                _ => CheckpointUpdate::commit(seq(&format!("{}", 200 + i))),
            };
            (key.clone(), fence.clone(), update)
        })
        .collect();
    let written = ok(store.checkpoint_many(&updates).await, "batch checkpoint");
    assert_eq!(
        written.len(),
        updates.len(),
        "one result per update, in order"
    );
    for (i, result) in written.into_iter().enumerate() {
        match i {
            1 => lease_lost(result, "batch checkpoint of a stolen lease"),
            2 => backwards(result, "batch checkpoint behind the stored one"),
            _ => ok(result, &format!("batch checkpoint of lease {i}")),
        }
    }
    for (i, (key, _)) in held.iter().enumerate() {
        let lease = ok(store.get_lease(key).await, "get").expect("exists");
        let expected = match i {
            1..=3 => seq("100"),
            _ => seq(&format!("{}", 200 + i)),
        };
        assert_eq!(lease.checkpoint, expected, "checkpoint of lease {i}");
        let expected_pending = (i == 3).then(|| prepared.clone());
        assert_eq!(
            lease.pending_checkpoint, expected_pending,
            "pending checkpoint of lease {i}"
        );
    }
}

/// Racing batch creates of overlapping leases create each lease exactly once: for every key,
/// exactly one racer got `true`, and a later batch creates only what is missing.
pub async fn batch_creates_race_to_one_creator_per_lease(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("batch-create");
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut racers = JoinSet::new();
    for racer in 0..RACERS as u64 {
        let (store, scope, barrier) = (store.clone(), scope.clone(), barrier.clone());
        racers.spawn(async move {
            // Racer r proposes leases r..r+BATCH: neighbours overlap on all but one.
            let leases: Vec<NewLease> = (racer..racer + BATCH)
                .map(|i| NewLease::new(scope.key(i), Checkpoint::TrimHorizon))
                .collect();
            barrier.wait().await;
            (racer, store.create_leases_if_absent(&leases).await)
        });
    }
    let mut creators = vec![0usize; (RACERS as u64 + BATCH) as usize];
    while let Some(joined) = racers.join_next().await {
        let (racer, created) =
            joined.unwrap_or_else(|e| panic!("batch create racer panicked: {e}"));
        let created = ok(created, "racing batch create");
        assert_eq!(created.len(), BATCH as usize, "one answer per lease");
        for (offset, created) in created.into_iter().enumerate() {
            if created {
                creators[racer as usize + offset] += 1;
            }
        }
    }
    let expected_leases = RACERS + BATCH as usize - 1;
    assert_eq!(
        &creators[..expected_leases],
        vec![1; expected_leases].as_slice(),
        "creators per lease"
    );
    let leases = ok(store.list_leases(&scope.stream()).await, "list");
    assert_eq!(leases.len(), expected_leases);
    let again = ok(
        store
            .create_leases_if_absent(&[
                NewLease::new(scope.key(0), seq("5")),
                NewLease::new(scope.key(1_000), seq("5")),
            ])
            .await,
        "a later batch",
    );
    assert_eq!(
        again,
        vec![false, true],
        "only the missing lease is created"
    );
    let kept = ok(store.get_lease(&scope.key(0)).await, "get").expect("exists");
    assert_eq!(
        kept.checkpoint,
        Checkpoint::TrimHorizon,
        "an existing lease is unchanged"
    );
    assert!(
        ok(store.create_leases_if_absent(&[]).await, "empty batch").is_empty(),
        "an empty batch creates nothing"
    );
}

/// Renewals and group checkpoints of the same leases, racing with their leases in different
/// orders (a worker's renewer and its checkpoint flusher), all succeed: a store that locks a
/// batch's rows one by one must never let two batches wait for each other in a cycle.
pub async fn racing_batches_of_the_same_leases_all_succeed(store: Arc<dyn LeaseStore>) {
    const LEASES: u64 = 24;
    const ROUNDS: usize = 4;
    let scope = Scope::new("batch-race");
    let owner = scope.worker("a");
    let held = held_batch(&store, &scope, &owner, LEASES).await;
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut racers = JoinSet::new();
    for racer in 0..RACERS {
        let (store, barrier) = (store.clone(), barrier.clone());
        // Racer r sends the leases rotated by r, odd racers backwards.
        let mut mine = held.clone();
        mine.rotate_left(racer % held.len());
        if racer % 2 == 1 {
            mine.reverse();
        }
        racers.spawn(async move {
            barrier.wait().await;
            for _ in 0..ROUNDS {
                let renewed = store.renew_leases(&mine, LONG).await?;
                let updates: Vec<(LeaseKey, Fence, CheckpointUpdate)> = mine
                    .iter()
                    .map(|(key, fence)| {
                        let update = CheckpointUpdate::commit(seq("100"));
                        (key.clone(), fence.clone(), update)
                    })
                    .collect();
                let written = store.checkpoint_many(&updates).await?;
                for outcome in renewed.into_iter().map(|r| r.map(|_| ())).chain(written) {
                    outcome?;
                }
            }
            Ok::<(), crate::Error>(())
        });
    }
    while let Some(joined) = racers.join_next().await {
        let outcome = joined.unwrap_or_else(|e| panic!("batch racer panicked: {e}"));
        ok(
            outcome,
            "racing renewals and checkpoints of the same leases",
        );
    }
}
