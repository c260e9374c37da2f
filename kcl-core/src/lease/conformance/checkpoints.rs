//! Clauses on checkpoints: forward only, compared as numbers, prepare-then-commit.

use std::sync::Arc;

use super::Scope;
use super::durations::LONG;
use super::outcome::{backwards, ok, seq};
use crate::{
    Checkpoint, CheckpointUpdate, Error, LeaseStore, NewLease, PendingCheckpoint, TakeMode,
};

/// Checkpoints never move backwards: a lower sequence number (compared as numbers, not text),
/// an initial sentinel after a sequence number, or anything after `SHARD_END` is
/// [`Error::CheckpointBackwards`] and writes nothing, whoever owns the lease.
pub async fn checkpoints_never_move_backwards(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("backwards");
    let key = scope.key(0);
    let (a, b) = (scope.worker("a"), scope.worker("b"));
    let new = NewLease::new(key.clone(), Checkpoint::Latest);
    assert!(ok(store.create_lease_if_absent(&new).await, "create"));
    let held = ok(
        store
            .take_lease(&key, 0, &a, TakeMode::IfAvailable, LONG)
            .await,
        "a takes",
    );
    let fence = held.fence().expect("a holds it");
    let write = |cp: Checkpoint| {
        let (store, key, fence) = (store.clone(), key.clone(), fence.clone());
        async move {
            store
                .checkpoint(&key, &fence, &CheckpointUpdate::commit(cp))
                .await
        }
    };

    ok(write(seq("100")).await, "100");
    match write(seq("99")).await {
        Err(Error::CheckpointBackwards {
            current, attempted, ..
        }) => {
            assert_eq!((current.as_str(), attempted.as_str()), ("100", "99"));
        }
        other => panic!("99 after 100: expected CheckpointBackwards, got {other:?}"),
    }
    ok(write(seq("100")).await, "the same checkpoint again");
    ok(write(seq("999")).await, "999");
    // As text "1000" < "999"; as numbers it is ahead.
    ok(write(seq("1000")).await, "1000 after 999");
    backwards(write(seq("998")).await, "998 after 1000");
    let kinesis_sized = "49590338271490256608559692538361571095921575989136588898";
    ok(
        write(seq(kinesis_sized)).await,
        "a 56-digit sequence number",
    );
    backwards(
        write(seq(&"9".repeat(55))).await,
        "a 55-digit number after a 56-digit one",
    );
    backwards(
        write(Checkpoint::TrimHorizon).await,
        "TRIM_HORIZON after a sequence number",
    );
    backwards(
        write(Checkpoint::Latest).await,
        "LATEST after a sequence number",
    );
    let read = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert_eq!(read.checkpoint, seq(kinesis_sized));

    // The rule holds across owners: a thief cannot rewind either.
    let stolen = ok(
        store.take_lease(&key, 1, &b, TakeMode::Steal, LONG).await,
        "b steals",
    );
    let b_fence = stolen.fence().expect("b holds it");
    backwards(
        store
            .checkpoint(&key, &b_fence, &CheckpointUpdate::commit(seq("5")))
            .await,
        "b rewinds",
    );
    ok(
        store
            .checkpoint(
                &key,
                &b_fence,
                &CheckpointUpdate::commit(Checkpoint::ShardEnd),
            )
            .await,
        "SHARD_END",
    );
    ok(
        store
            .checkpoint(
                &key,
                &b_fence,
                &CheckpointUpdate::commit(Checkpoint::ShardEnd),
            )
            .await,
        "SHARD_END again",
    );
    backwards(
        store
            .checkpoint(
                &key,
                &b_fence,
                &CheckpointUpdate::commit(seq(&"9".repeat(60))),
            )
            .await,
        "a sequence number after SHARD_END",
    );
    let read = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert_eq!(read.checkpoint, Checkpoint::ShardEnd, "SHARD_END is final");
}

/// Prepare-then-commit: a pending checkpoint with application state is stored beside the
/// committed one, read back by the next owner, never behind the committed one, and cleared by a
/// commit.
pub async fn prepared_checkpoint_carries_application_state(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("prepare");
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
    let put = |update: CheckpointUpdate| {
        let (store, key, fence) = (store.clone(), key.clone(), fence.clone());
        async move { store.checkpoint(&key, &fence, &update).await }
    };
    let state = vec![0u8, 1, 255, b'\'', b';', b'"', 0xC3, 0x28];

    ok(put(CheckpointUpdate::commit(seq("10"))).await, "commit 10");
    let pending = PendingCheckpoint::new(seq("20"), Some(state.clone()));
    ok(
        put(CheckpointUpdate::prepare(pending.clone())).await,
        "prepare 20",
    );
    let read = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert_eq!(
        read.checkpoint,
        seq("10"),
        "prepare leaves the committed checkpoint"
    );
    assert_eq!(
        read.pending_checkpoint.as_ref(),
        Some(&pending),
        "state bytes round-trip"
    );

    backwards(
        put(CheckpointUpdate::prepare(PendingCheckpoint::new(
            seq("5"),
            None,
        )))
        .await,
        "a pending checkpoint behind the committed one",
    );
    ok(put(CheckpointUpdate::commit(seq("20"))).await, "commit 20");
    let read = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert_eq!(
        (read.checkpoint, read.pending_checkpoint),
        (seq("20"), None)
    );

    let both = CheckpointUpdate {
        checkpoint: Some(seq("30")),
        pending: Some(PendingCheckpoint::new(seq("40"), None)),
    };
    ok(put(both).await, "commit 30 and prepare 40");
    let behind = CheckpointUpdate {
        checkpoint: Some(seq("50")),
        pending: Some(PendingCheckpoint::new(seq("45"), Some(vec![1]))),
    };
    backwards(
        put(behind).await,
        "a pending checkpoint behind the one committed with it",
    );
    let read = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert_eq!(
        read.checkpoint,
        seq("30"),
        "the refused write changed nothing"
    );
    assert_eq!(
        read.pending_checkpoint,
        Some(PendingCheckpoint::new(seq("40"), None))
    );

    // The next owner sees what was prepared; an empty update clears it.
    let stolen = ok(
        store.take_lease(&key, 1, &b, TakeMode::Steal, LONG).await,
        "b steals",
    );
    assert_eq!(
        stolen.pending_checkpoint,
        Some(PendingCheckpoint::new(seq("40"), None))
    );
    let b_fence = stolen.fence().expect("b holds it");
    let clear = CheckpointUpdate {
        checkpoint: None,
        pending: None,
    };
    ok(
        store.checkpoint(&key, &b_fence, &clear).await,
        "b clears the pending checkpoint",
    );
    let read = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert_eq!(
        (read.checkpoint, read.pending_checkpoint),
        (seq("30"), None)
    );
}
