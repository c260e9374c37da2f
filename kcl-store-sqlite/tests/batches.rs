//! The batch operations on a database file: each batch is one transaction (counted in the
//! write-ahead log, not timed), at one reading of the clock; an empty batch touches nothing; a
//! batch that cannot get the write lock fails whole and writes nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kcl_core::{
    Checkpoint, CheckpointUpdate, Error, Fence, LeaseKey, LeaseStore, NewLease, ShardId,
    StreamName, TakeMode, WorkerId,
};
use kcl_store_sqlite::{SqliteLeaseStore, SqliteLeaseStoreConfig};
use sqlx::{Connection, SqliteConnection};
use tokio::task::JoinSet;

/// Leases per batch.
const LEASES: u64 = 100;
const LEASE: Duration = Duration::from_secs(60);

fn database(dir: &tempfile::TempDir) -> (PathBuf, String) {
    let path = dir.path().join("leases.db");
    let url = format!("sqlite://{}", path.display());
    (path, url)
}

fn keys(stream: &str, count: u64) -> Vec<LeaseKey> {
    let stream = StreamName::new(stream).unwrap();
    (0..count)
        .map(|i| LeaseKey::new(stream.clone(), ShardId::from_index(i)))
        .collect()
}

fn new_leases(keys: &[LeaseKey]) -> Vec<NewLease> {
    keys.iter()
        .map(|key| NewLease::new(key.clone(), Checkpoint::TrimHorizon))
        .collect()
}

/// Creates `keys` in one batch and takes each for `owner`; their fences.
async fn hold(
    store: &SqliteLeaseStore,
    keys: &[LeaseKey],
    owner: &WorkerId,
) -> Vec<(LeaseKey, Fence)> {
    let created = store
        .create_leases_if_absent(&new_leases(keys))
        .await
        .unwrap();
    assert!(created.iter().all(|&c| c), "fresh leases are created");
    let mut held = Vec::new();
    for key in keys {
        let lease = store
            .take_lease(key, 0, owner, TakeMode::IfAvailable, LEASE)
            .await
            .unwrap();
        held.push((key.clone(), lease.fence().unwrap()));
    }
    held
}

/// The commits in the write-ahead log of the database at `path`: the frames of the log's
/// current generation (their salts match the header's) that end a transaction (a non-zero
/// database size), and the header's salts. SQLite appends at least one such frame per commit
/// and never rewrites a committed frame until it restarts the log, which changes the salts.
fn wal_commits(path: &Path) -> (u64, [u8; 8]) {
    let wal = std::fs::read(format!("{}-wal", path.display())).unwrap_or_default();
    if wal.len() < 32 {
        return (0, [0; 8]);
    }
    let word = |at: usize| u32::from_be_bytes(wal[at..at + 4].try_into().unwrap());
    let page_size = word(8) as usize;
    let salts: [u8; 8] = wal[16..24].try_into().unwrap();
    let mut commits = 0;
    let mut frame = 32;
    while frame + 24 + page_size <= wal.len() && wal[frame + 8..frame + 16] == salts {
        if word(frame + 4) != 0 {
            commits += 1;
        }
        frame += 24 + page_size;
    }
    (commits, salts)
}

/// Counts the commits that `work` makes on the database at `path`. A reader on its own
/// connection holds a snapshot meanwhile, so SQLite cannot restart the log under the count
/// (checked: the salts must not change).
async fn commits_during<T>(url: &str, path: &Path, work: impl Future<Output = T>) -> (u64, T) {
    let mut reader = SqliteConnection::connect(url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    sqlx::query("SELECT count(*) FROM kcl_leases")
        .execute(&mut reader)
        .await
        .unwrap();
    let (before, salts) = wal_commits(path);
    let out = work.await;
    let (after, salts_after) = wal_commits(path);
    sqlx::query("ROLLBACK").execute(&mut reader).await.unwrap();
    assert_eq!(salts, salts_after, "the log was restarted during the count");
    (after - before, out)
}

/// The distinct expiries stored for the leases of `stream`.
async fn stored_expiries(url: &str, stream: &str) -> Vec<i64> {
    let mut db = SqliteConnection::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT DISTINCT expires_at_ms FROM kcl_leases WHERE stream = ?1 ORDER BY 1")
        .bind(stream)
        .fetch_all(&mut db)
        .await
        .unwrap()
}

/// Each batch call is exactly one commit however many leases it holds (a batch that writes
/// nothing commits nothing), where the same leases one by one are one commit each; and every
/// lease of a batch renewal gets the same expiry (one reading of the clock). Prints how much
/// faster the batch renewal is than single renewals, one after the other and concurrently (the
/// trait's default batches); the figures are not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_batch_is_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (path, url) = database(&dir);
    let store = SqliteLeaseStore::connect(&url).await.unwrap();
    let me = WorkerId::new("me").unwrap();
    let keys = keys("orders", LEASES);

    let (commits, created) = commits_during(
        &url,
        &path,
        store.create_leases_if_absent(&new_leases(&keys)),
    )
    .await;
    assert_eq!(created.unwrap(), vec![true; LEASES as usize]);
    assert_eq!(
        commits, 1,
        "a batch create of {LEASES} leases is one commit"
    );
    let (commits, created) = commits_during(
        &url,
        &path,
        store.create_leases_if_absent(&new_leases(&keys)),
    )
    .await;
    assert_eq!(created.unwrap(), vec![false; LEASES as usize]);
    assert_eq!(
        commits, 0,
        "a batch create that creates nothing commits nothing"
    );

    let mut held = Vec::new();
    for key in &keys {
        let lease = store
            .take_lease(key, 0, &me, TakeMode::IfAvailable, LEASE)
            .await
            .unwrap();
        held.push((key.clone(), lease.fence().unwrap()));
    }

    let (commits, renewed) = commits_during(&url, &path, store.renew_leases(&held, LEASE)).await;
    assert!(renewed.unwrap().iter().all(Result::is_ok));
    assert_eq!(
        commits, 1,
        "a batch renewal of {LEASES} leases is one commit"
    );
    assert_eq!(
        stored_expiries(&url, "orders").await.len(),
        1,
        "one reading of the clock for the whole batch"
    );

    // The count can tell: the same renewals one by one are a commit each.
    let (commits, ()) = commits_during(&url, &path, async {
        for (key, fence) in &held {
            store.renew_lease(key, fence, LEASE).await.unwrap();
        }
    })
    .await;
    assert_eq!(commits, LEASES, "single renewals commit one by one");

    let updates: Vec<_> = held
        .iter()
        .map(|(key, fence)| {
            let update = CheckpointUpdate::commit(Checkpoint::sequence("42").unwrap());
            (key.clone(), fence.clone(), update)
        })
        .collect();
    let (commits, written) = commits_during(&url, &path, store.checkpoint_many(&updates)).await;
    assert!(written.unwrap().iter().all(Result::is_ok));
    assert_eq!(commits, 1, "a batch of {LEASES} checkpoints is one commit");

    // Every fence one epoch on: every lease refused, nothing written, nothing committed.
    let stale: Vec<_> = held
        .iter()
        .map(|(key, fence)| {
            (
                key.clone(),
                Fence::new(fence.owner.clone(), fence.epoch + 1),
            )
        })
        .collect();
    let (commits, refused) = commits_during(&url, &path, store.renew_leases(&stale, LEASE)).await;
    let refused = refused.unwrap();
    assert!(
        refused
            .iter()
            .all(|r| matches!(r, Err(Error::LeaseLost { .. }))),
        "{refused:?}"
    );
    assert_eq!(
        commits, 0,
        "a batch with every lease refused commits nothing"
    );

    // Wall clock, for the report only.
    const ROUNDS: usize = 5;
    let (mut batch, mut one_by_one, mut concurrent) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let renewed = store.renew_leases(&held, LEASE).await.unwrap();
        assert!(renewed.iter().all(Result::is_ok));
        batch.push(started.elapsed());

        let started = Instant::now();
        for (key, fence) in &held {
            store.renew_lease(key, fence, LEASE).await.unwrap();
        }
        one_by_one.push(started.elapsed());

        let started = Instant::now();
        let mut renewals = JoinSet::new();
        for (key, fence) in held.clone() {
            let store = store.clone();
            renewals.spawn(async move { store.renew_lease(&key, &fence, LEASE).await });
        }
        while let Some(renewed) = renewals.join_next().await {
            renewed.unwrap().unwrap();
        }
        concurrent.push(started.elapsed());
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (batch, one_by_one, concurrent) = (
        median(&mut batch),
        median(&mut one_by_one),
        median(&mut concurrent),
    );
    println!(
        "renewing {LEASES} leases on a WAL file, median of {ROUNDS}: one batch {batch:?}; \
         {LEASES} single renewals one after the other {one_by_one:?} ({:.1}x the batch), \
         concurrently {concurrent:?} ({:.1}x the batch)",
        one_by_one.as_secs_f64() / batch.as_secs_f64(),
        concurrent.as_secs_f64() / batch.as_secs_f64(),
    );
}

/// An empty batch answers an empty list without touching the database: it does so even once
/// the store is closed, where any real call fails.
#[tokio::test]
async fn an_empty_batch_never_touches_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (_, url) = database(&dir);
    let store = SqliteLeaseStore::connect(&url).await.unwrap();
    let key = keys("orders", 1).remove(0);
    store.close().await;
    assert!(store.create_leases_if_absent(&[]).await.unwrap().is_empty());
    assert!(store.renew_leases(&[], LEASE).await.unwrap().is_empty());
    assert!(store.checkpoint_many(&[]).await.unwrap().is_empty());
    let fence = Fence::new(WorkerId::new("me").unwrap(), 1);
    assert!(
        store.renew_leases(&[(key, fence)], LEASE).await.is_err(),
        "a closed store refuses a batch that is not empty"
    );
}

/// Another connection holds the write lock past the busy timeout: each batch fails as a whole
/// with the transient `Unavailable` (no per-lease results) and writes nothing; retried once the
/// lock is gone, it succeeds.
#[tokio::test]
async fn a_batch_that_cannot_lock_fails_whole_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, url) = database(&dir);
    let config = SqliteLeaseStoreConfig::new(&url).busy_timeout(Duration::from_millis(200));
    let store = SqliteLeaseStore::connect_with(config).await.unwrap();
    let me = WorkerId::new("me").unwrap();
    let held = hold(&store, &keys("orders", 4), &me).await;
    let updates: Vec<_> = held
        .iter()
        .map(|(key, fence)| {
            let update = CheckpointUpdate::commit(Checkpoint::sequence("7").unwrap());
            (key.clone(), fence.clone(), update)
        })
        .collect();
    let more = new_leases(&keys("more", 3));

    let mut blocker = SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let transient = |what: &str, e: Error| {
        assert!(
            matches!(e, Error::Unavailable { .. }) && e.is_transient(),
            "{what}: {e:?}"
        );
    };
    transient(
        "checkpoints",
        store.checkpoint_many(&updates).await.unwrap_err(),
    );
    transient(
        "renewal",
        store.renew_leases(&held, LEASE).await.unwrap_err(),
    );
    transient(
        "creates",
        store.create_leases_if_absent(&more).await.unwrap_err(),
    );
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();

    for (key, _) in &held {
        let lease = store.get_lease(key).await.unwrap().unwrap();
        assert_eq!(lease.checkpoint, Checkpoint::TrimHorizon, "nothing written");
    }
    let stream = StreamName::new("more").unwrap();
    assert!(store.list_leases(&stream).await.unwrap().is_empty());

    let written = store.checkpoint_many(&updates).await.unwrap();
    assert!(written.iter().all(Result::is_ok), "{written:?}");
    assert_eq!(
        store.create_leases_if_absent(&more).await.unwrap(),
        vec![true; 3]
    );
}
