//! The change number (contract clause 12) on a database file of its own, so that nothing else
//! moves it: renewals, ordinary checkpoints, handoff requests, heartbeats and refused writes
//! leave it alone and never even write its row (a trigger this test adds counts the row's
//! updates), while a create, a take, `SHARD_END` and a delete move it once per transaction. A
//! database made before the number existed migrates to it at 0.

use std::str::FromStr;
use std::time::Duration;

use kcl_core::{
    Checkpoint, CheckpointUpdate, LeaseKey, LeaseStore, NewLease, PendingCheckpoint, ShardId,
    StreamName, TakeMode, WorkerId,
};
use kcl_store_sqlite::SqliteLeaseStore;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

const LEASE: Duration = Duration::from_secs(60);

fn database(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("leases.db").display())
}

fn key(index: u64) -> LeaseKey {
    LeaseKey::new(
        StreamName::new("orders").unwrap(),
        ShardId::from_index(index),
    )
}

fn seq(n: &str) -> Checkpoint {
    Checkpoint::sequence(n).unwrap()
}

/// The change number and the count of writes to its row, each checked against the last seen.
struct Watch<'a> {
    store: &'a SqliteLeaseStore,
    /// Its own connection, reading the count the trigger keeps.
    db: SqliteConnection,
    number: u64,
    writes: i64,
}

impl<'a> Watch<'a> {
    /// Adds the trigger that counts the updates of the change number's row, and reads both.
    async fn new(store: &'a SqliteLeaseStore, url: &str) -> Self {
        let mut db = SqliteConnection::connect(url).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE test_change_writes (at INTEGER PRIMARY KEY AUTOINCREMENT);
             CREATE TRIGGER test_count_change_writes AFTER UPDATE ON kcl_leases_changes
             BEGIN INSERT INTO test_change_writes (at) VALUES (NULL); END;",
        )
        .execute(&mut db)
        .await
        .unwrap();
        let mut watch = Watch {
            store,
            db,
            number: 0,
            writes: 0,
        };
        (watch.number, watch.writes) = watch.read().await;
        watch
    }

    async fn read(&mut self) -> (u64, i64) {
        let number = self.store.lease_changes().await.unwrap();
        let number = number.expect("the SQLite store keeps a change number");
        let writes = sqlx::query_scalar("SELECT count(*) FROM test_change_writes")
            .fetch_one(&mut self.db)
            .await
            .unwrap();
        (number, writes)
    }

    /// After `step`, the number is where it was and its row was not written.
    async fn unchanged(&mut self, step: &str) {
        let (number, writes) = self.read().await;
        assert_eq!(number, self.number, "{step} leaves the change number alone");
        assert_eq!(
            writes, self.writes,
            "{step} does not write the change number's row"
        );
    }

    /// After `step`, the number moved, by one write of its row.
    async fn moved_once(&mut self, step: &str) {
        let (number, writes) = self.read().await;
        assert_ne!(number, self.number, "{step} moves the change number");
        assert_eq!(
            writes,
            self.writes + 1,
            "{step} writes the change number's row once"
        );
        (self.number, self.writes) = (number, writes);
    }
}

#[tokio::test]
async fn only_changes_of_ownership_move_the_number() {
    let dir = tempfile::tempdir().unwrap();
    let url = database(&dir);
    let store = SqliteLeaseStore::connect(&url).await.unwrap();
    let mut watch = Watch::new(&store, &url).await;
    assert_eq!(watch.number, 0, "a new database starts at 0");
    let (me, other) = (
        WorkerId::new("me").unwrap(),
        WorkerId::new("other").unwrap(),
    );
    let keys = [key(0), key(1), key(2)];
    let new: Vec<_> = keys
        .iter()
        .map(|key| NewLease::new(key.clone(), Checkpoint::TrimHorizon))
        .collect();

    store.create_leases_if_absent(&new).await.unwrap();
    watch.moved_once("a batch create of 3 leases").await;
    assert!(!store.create_lease_if_absent(&new[0]).await.unwrap());
    watch.unchanged("a create of a lease that exists").await;
    let first = store
        .take_lease(&keys[0], 0, &me, TakeMode::IfAvailable, LEASE)
        .await
        .unwrap();
    watch.moved_once("a take").await;
    let second = store
        .take_lease(&keys[1], 0, &me, TakeMode::IfAvailable, LEASE)
        .await
        .unwrap();
    watch.moved_once("a take").await;
    let (f0, f1) = (first.fence().unwrap(), second.fence().unwrap());

    store.renew_lease(&keys[0], &f0, LEASE).await.unwrap();
    watch.unchanged("a renewal").await;
    let renewed = store
        .renew_leases(
            &[(keys[0].clone(), f0.clone()), (keys[1].clone(), f1.clone())],
            LEASE,
        )
        .await
        .unwrap();
    assert!(renewed.iter().all(Result::is_ok), "{renewed:?}");
    watch.unchanged("a batch renewal").await;
    store
        .checkpoint(&keys[0], &f0, &CheckpointUpdate::commit(seq("10")))
        .await
        .unwrap();
    watch.unchanged("a checkpoint").await;
    let pending = PendingCheckpoint::new(seq("20"), Some(b"state".to_vec()));
    store
        .checkpoint(&keys[0], &f0, &CheckpointUpdate::prepare(pending))
        .await
        .unwrap();
    watch.unchanged("a prepared checkpoint").await;
    let written = store
        .checkpoint_many(&[
            (
                keys[0].clone(),
                f0.clone(),
                CheckpointUpdate::commit(seq("20")),
            ),
            (
                keys[1].clone(),
                f1.clone(),
                CheckpointUpdate::commit(seq("30")),
            ),
        ])
        .await
        .unwrap();
    assert!(written.iter().all(Result::is_ok), "{written:?}");
    watch.unchanged("a batch of checkpoints").await;
    store
        .request_handoff(&keys[1], f1.epoch, &other)
        .await
        .unwrap();
    watch.unchanged("a handoff request").await;
    let renewed = store.renew_lease(&keys[1], &f1, LEASE).await.unwrap();
    assert_eq!(renewed.handoff_to.as_ref(), Some(&other));
    watch.unchanged("a renewal that sees the request").await;
    store.heartbeat(&me).await.unwrap();
    store.heartbeat(&other).await.unwrap();
    store.heartbeat(&me).await.unwrap();
    watch.unchanged("heartbeats").await;

    // Refused writes write nothing.
    let conflict = store
        .take_lease(&keys[0], 0, &other, TakeMode::Steal, LEASE)
        .await;
    assert!(conflict.is_err(), "a take on a stale epoch: {conflict:?}");
    let stale = kcl_core::Fence::new(other.clone(), f0.epoch);
    assert!(store.renew_lease(&keys[0], &stale, LEASE).await.is_err());
    assert!(store.release_lease(&keys[0], &stale).await.is_err());
    assert!(!store.delete_lease(&key(9)).await.unwrap());
    watch.unchanged("refused writes").await;

    // The changes a taker must see.
    let stolen = store
        .take_lease(&keys[1], f1.epoch, &other, TakeMode::Steal, LEASE)
        .await
        .unwrap();
    watch.moved_once("a steal").await;
    let f1 = stolen.fence().unwrap();
    let ended = store
        .checkpoint_many(&[
            (
                keys[0].clone(),
                f0.clone(),
                CheckpointUpdate::commit(Checkpoint::ShardEnd),
            ),
            (
                keys[1].clone(),
                f1.clone(),
                CheckpointUpdate::commit(Checkpoint::ShardEnd),
            ),
        ])
        .await
        .unwrap();
    assert!(ended.iter().all(Result::is_ok), "{ended:?}");
    watch.moved_once("a batch reaching SHARD_END twice").await;
    store
        .checkpoint(
            &keys[0],
            &f0,
            &CheckpointUpdate::commit(Checkpoint::ShardEnd),
        )
        .await
        .unwrap();
    watch.unchanged("SHARD_END written again").await;
    store.release_lease(&keys[0], &f0).await.unwrap();
    watch.moved_once("a release").await;
    assert!(store.delete_lease(&keys[0]).await.unwrap());
    watch.moved_once("a delete").await;
    assert!(store.create_lease_if_absent(&new[0]).await.unwrap());
    watch.moved_once("a create").await;
}

/// A database at schema version 2, made before the change number, with a lease in it: the
/// store migrates it to version 3 with the number at 0, and connecting again keeps the count.
#[tokio::test]
async fn an_old_database_migrates_to_a_change_number_of_zero() {
    let dir = tempfile::tempdir().unwrap();
    let url = database(&dir);
    let options = SqliteConnectOptions::from_str(&url)
        .unwrap()
        .create_if_missing(true);
    let mut db = SqliteConnection::connect_with(&options).await.unwrap();
    for migration in [
        include_str!("../migrations/0001_create_leases.sql"),
        include_str!("../migrations/0002_liveness.sql"),
    ] {
        sqlx::raw_sql(migration).execute(&mut db).await.unwrap();
    }
    sqlx::query("PRAGMA user_version = 2")
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO kcl_leases (stream, shard, epoch, checkpoint) VALUES (?1, ?2, 0, ?3)")
        .bind("orders")
        .bind(key(0).shard.as_str())
        .bind(Checkpoint::TrimHorizon.to_string())
        .execute(&mut db)
        .await
        .unwrap();

    let store = SqliteLeaseStore::connect(&url).await.unwrap();
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(version, 3, "migrated to schema version 3");
    assert_eq!(store.lease_changes().await.unwrap(), Some(0));
    assert!(store.get_lease(&key(0)).await.unwrap().is_some());
    let me = WorkerId::new("me").unwrap();
    store
        .take_lease(&key(0), 0, &me, TakeMode::IfAvailable, LEASE)
        .await
        .unwrap();
    let moved = store.lease_changes().await.unwrap();
    assert_eq!(moved, Some(1), "the migrated number moves");
    store.close().await;

    let again = SqliteLeaseStore::connect(&url).await.unwrap();
    assert_eq!(
        again.lease_changes().await.unwrap(),
        moved,
        "connecting again migrates nothing"
    );
}
