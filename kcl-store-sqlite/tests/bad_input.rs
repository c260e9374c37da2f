//! Bad URLs, unopenable files, a lock held too long and what survives a reopen.

use std::time::Duration;

use kcl_core::{
    Checkpoint, CheckpointUpdate, Error, LeaseKey, LeaseStore, NewLease, ShardId, StreamName,
    TakeMode, WorkerId,
};
use kcl_store_sqlite::{SqliteLeaseStore, SqliteLeaseStoreConfig};
use sqlx::Connection;

fn temp_url(dir: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite://{}", dir.path().join(name).display())
}

#[tokio::test]
async fn a_url_that_is_not_sqlite_is_an_invalid_argument_naming_the_url() {
    for bad in ["postgres://localhost/x", "leases.db", ""] {
        match SqliteLeaseStore::connect(bad).await {
            Err(Error::InvalidArgument { field, message }) => {
                assert_eq!(field, "database URL");
                assert!(message.contains(&format!("{bad:?}")), "{message}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    match SqliteLeaseStore::connect("sqlite://x.db?mode=nonsense").await {
        Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "database URL"),
        other => panic!("unknown mode: {other:?}"),
    }
}

#[tokio::test]
async fn a_file_that_cannot_be_opened_is_a_storage_error_naming_it() {
    let url = "sqlite:///nonexistent-directory-kcl/leases.db";
    match SqliteLeaseStore::connect(url).await {
        Err(Error::Storage { message }) => assert!(message.contains(url), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bad_configuration_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteLeaseStoreConfig::new(temp_url(&dir, "a.db")).max_connections(0);
    assert!(matches!(
        SqliteLeaseStore::connect_with(config).await,
        Err(Error::InvalidArgument {
            field: "max_connections",
            ..
        })
    ));
}

#[tokio::test]
async fn connect_creates_the_file_and_leases_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested-leases.db");
    let url = format!("sqlite://{}", path.display());
    let key = LeaseKey::new(StreamName::new("orders").unwrap(), ShardId::from_index(3));
    let me = WorkerId::new("me").unwrap();
    {
        let store = SqliteLeaseStore::connect(&url).await.unwrap();
        assert!(path.exists());
        store
            .create_lease_if_absent(&NewLease::new(key.clone(), Checkpoint::TrimHorizon))
            .await
            .unwrap();
        let lease = store
            .take_lease(&key, 0, &me, TakeMode::IfAvailable, Duration::from_secs(60))
            .await
            .unwrap();
        let fence = lease.fence().unwrap();
        store
            .checkpoint(
                &key,
                &fence,
                &CheckpointUpdate::commit(Checkpoint::sequence("77").unwrap()),
            )
            .await
            .unwrap();
        store.close().await;
    }
    // Reopening runs the migrations again: they must be a no-op on an up-to-date schema.
    let store = SqliteLeaseStore::connect(&url).await.unwrap();
    let lease = store.get_lease(&key).await.unwrap().unwrap();
    assert_eq!(lease.checkpoint, Checkpoint::sequence("77").unwrap());
    assert_eq!(lease.owner, Some(me));
}

/// Another connection holds the write lock longer than the busy timeout: the store's write is
/// the transient `Unavailable`, never a lost lease or a conflict, and succeeds once the lock is
/// gone.
#[tokio::test]
async fn a_lock_held_past_the_busy_timeout_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    let url = temp_url(&dir, "busy.db");
    let config = SqliteLeaseStoreConfig::new(&url).busy_timeout(Duration::from_millis(200));
    let store = SqliteLeaseStore::connect_with(config).await.unwrap();
    let key = LeaseKey::new(StreamName::new("orders").unwrap(), ShardId::from_index(0));
    store
        .create_lease_if_absent(&NewLease::new(key.clone(), Checkpoint::TrimHorizon))
        .await
        .unwrap();

    let mut blocker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let me = WorkerId::new("me").unwrap();
    let blocked = store
        .take_lease(&key, 0, &me, TakeMode::IfAvailable, Duration::from_secs(60))
        .await;
    match &blocked {
        Err(e @ Error::Unavailable { message }) => {
            assert!(e.is_transient());
            assert!(message.contains("busy"), "{message}");
        }
        other => panic!("expected Unavailable while another connection holds the lock: {other:?}"),
    }
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    let lease = store
        .take_lease(&key, 0, &me, TakeMode::IfAvailable, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        lease.epoch, 1,
        "the retried take succeeded once; the blocked one wrote nothing"
    );
}

#[test]
fn lease_errors_are_not_transient() {
    for decision in [
        Error::LeaseLost {
            lease: "s/x".into(),
            message: String::new(),
        },
        Error::LeaseConflict {
            lease: "s/x".into(),
            message: String::new(),
        },
        Error::CheckpointBackwards {
            lease: "s/x".into(),
            current: "2".into(),
            attempted: "1".into(),
        },
        Error::Storage {
            message: String::new(),
        },
        Error::not_found("lease", "s/x"),
    ] {
        assert!(!decision.is_transient(), "{decision}");
    }
}
