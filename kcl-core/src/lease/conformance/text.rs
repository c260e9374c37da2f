//! The clause on free-form text: stored and read back unchanged, never spliced into SQL.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::Scope;
use super::durations::LONG;
use super::outcome::{ok, seq};
use crate::{
    Checkpoint, CheckpointUpdate, LeaseKey, LeaseStore, NewLease, PendingCheckpoint, ShardId,
    TakeMode, WorkerId,
};

/// Worker ids with quotes, `;`, SQL comments and non-ASCII text, application state that is not
/// UTF-8, the whole stream/shard alphabet and `AT_TIMESTAMP` are stored and read back unchanged.
///
/// Stream names and shard ids cannot hold quotes or `;` ([`StreamName`](crate::StreamName) and
/// [`ShardId`] refuse
/// them), so worker ids and application state are where such text reaches a store.
pub async fn free_text_round_trips_unchanged(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("text");
    let hostile = [
        "o'brien\"; DROP TABLE kcl_leases; --",
        "x' OR '1'='1",
        "$1 %s ? \\ \\' `tick` /* c */",
        "wörker-😀-名前",
    ];
    let owners: Vec<WorkerId> = hostile
        .iter()
        .map(|text| WorkerId::new(&format!("{text} {}", scope.worker("w"))))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("worker id: {e}"));
    let stream = scope.stream_named("Az09_.-");
    let shard = ShardId::new("shard.Odd-Name_9").unwrap_or_else(|e| panic!("shard id: {e}"));
    let key = LeaseKey::new(stream.clone(), shard.clone());
    let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    let new = NewLease::new(key.clone(), Checkpoint::AtTimestamp(at)).with_parents(vec![
        ShardId::new("p.A-b_1").unwrap_or_else(|e| panic!("{e}")),
    ]);
    assert!(ok(store.create_lease_if_absent(&new).await, "create"));
    let read = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert_eq!(read.key, key);
    assert_eq!(read.checkpoint, Checkpoint::AtTimestamp(at));
    assert_eq!(read.parent_shard_ids, new.parent_shard_ids);

    let mut epoch = 0;
    for owner in &owners {
        let taken = ok(
            store
                .take_lease(&key, epoch, owner, TakeMode::Steal, LONG)
                .await,
            "take with a hostile worker id",
        );
        epoch = taken.epoch;
        let read = ok(store.get_lease(&key).await, "get").expect("lease exists");
        assert_eq!(read.owner.as_ref(), Some(owner), "owner round-trips");
        let fence = read.fence().expect("owned");
        let state: Vec<u8> = owner.as_str().bytes().chain([0, 0xFF, 0xFE]).collect();
        let update = CheckpointUpdate::prepare(PendingCheckpoint::new(seq("1"), Some(state)));
        ok(
            store.checkpoint(&key, &fence, &update).await,
            "prepare with hostile state",
        );
        let read = ok(store.get_lease(&key).await, "get").expect("lease exists");
        assert_eq!(
            read.pending_checkpoint, update.pending,
            "state bytes round-trip"
        );
    }
    let requester = &owners[0];
    ok(
        store.request_handoff(&key, epoch, requester).await,
        "hostile requester",
    );
    let read = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert_eq!(read.handoff_to.as_ref(), Some(requester));

    for owner in &owners {
        ok(
            store.heartbeat(owner).await,
            "heartbeat with a hostile worker id",
        );
    }
    let live = ok(store.live_workers(LONG).await, "live workers");
    for owner in &owners {
        assert!(
            live.contains(owner),
            "{owner} is listed unchanged: {live:?}"
        );
        ok(store.deregister_worker(owner).await, "deregister");
    }
    let listed = ok(store.list_leases(&stream).await, "list");
    assert_eq!(listed.len(), 1, "the table is intact");
}
