//! The server kills the store's connections (`pg_terminate_backend`) while a worker checkpoints:
//! the store recovers, after transient errors the caller retries, and no acknowledged checkpoint
//! is lost.

mod test_database;

use std::sync::Arc;
use std::time::Duration;

use kcl_core::{
    Checkpoint, CheckpointUpdate, Error, LeaseKey, LeaseStore, NewLease, SequenceNumber, ShardId,
    StreamName, TakeMode, WorkerId,
};
use kcl_store_postgres::PostgresLeaseStore;
use sqlx::PgConnection;
use tokio::task::JoinSet;

const WRITES: u64 = 200;

/// Retries `op` on transient errors, as the worker does; returns the value and the number of
/// transient errors met.
async fn with_retries<T, F, Fut>(mut op: F) -> (T, u32)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut transient = 0;
    loop {
        match op().await {
            Ok(value) => return (value, transient),
            Err(e) if e.is_transient() && transient < 50 => {
                transient += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("after {transient} transient errors: {e}"),
        }
    }
}

async fn terminate_store_sessions(admin: &mut PgConnection, application_name: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = $1 AND pid <> pg_backend_pid()",
    )
    .bind(application_name)
    .fetch_one(admin)
    .await
    .unwrap_or_else(|e| panic!("terminating the store's sessions: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_recovers_from_killed_connections_without_losing_a_checkpoint() {
    let Some(config) = test_database::fresh_config("connection_loss").await else {
        return;
    };
    let Some(mut admin) = test_database::admin_connection().await else {
        return;
    };
    let application_name = format!("kcl-test-connection-loss-{}", std::process::id());
    let store = Arc::new(
        PostgresLeaseStore::connect_with(
            config
                .application_name(&application_name)
                .max_connections(4),
        )
        .await
        .unwrap(),
    );
    let stream = StreamName::new("orders").unwrap();

    // Writers checkpoint their own leases while, every few milliseconds, the server kills every
    // session of the store: queries in flight fail, pooled connections die.
    let mut writers = JoinSet::new();
    for w in 0..WRITERS {
        let store = store.clone();
        let key = LeaseKey::new(stream.clone(), ShardId::from_index(w));
        writers.spawn(async move { checkpoint_through_kills(&store, key).await });
    }
    let mut killed = 0;
    let mut kills = 0;
    while !writers.is_empty() {
        tokio::select! {
            joined = writers.join_next() => {
                if let Some(joined) = joined {
                    let errors = joined.unwrap_or_else(|e| panic!("writer panicked: {e}"));
                    println!("a writer finished after {errors} transient errors");
                }
            }
            () = tokio::time::sleep(Duration::from_millis(40)) => {
                killed += terminate_store_sessions(&mut admin, &application_name).await;
                kills += 1;
            }
        }
    }
    println!("{kills} kill rounds terminated {killed} sessions");
    assert!(killed > 0, "the test killed no session");

    // After the storm, every lease holds its last acknowledged checkpoint.
    for w in 0..WRITERS {
        let key = LeaseKey::new(stream.clone(), ShardId::from_index(w));
        let (read, _) = with_retries(|| store.get_lease(&key)).await;
        let read = read.unwrap();
        assert_eq!(
            read.checkpoint,
            checkpoint_at(WRITES),
            "{key}: the last checkpoint was kept"
        );
    }
}

const WRITERS: u64 = 4;

fn checkpoint_at(n: u64) -> Checkpoint {
    Checkpoint::Sequence(SequenceNumber::from(u128::from(n)))
}

/// Takes `key` and checkpoints 1..=WRITES on it, retrying transient errors and reading back
/// every 25th write; returns the number of transient errors met.
async fn checkpoint_through_kills(store: &PostgresLeaseStore, key: LeaseKey) -> u32 {
    let me = WorkerId::new(&format!("survivor-{}", key.shard)).unwrap();
    let new = NewLease::new(key.clone(), Checkpoint::TrimHorizon);
    let (_, mut transient) = with_retries(|| store.create_lease_if_absent(&new)).await;
    // A take whose reply was lost may have happened: re-read and take at the epoch seen, unless
    // the lease is already ours.
    let fence = loop {
        let (lease, errors) = with_retries(|| store.get_lease(&key)).await;
        transient += errors;
        let lease = lease.unwrap();
        if lease.is_held_by(&me) {
            break lease.fence().unwrap();
        }
        match store
            .take_lease(
                &key,
                lease.epoch,
                &me,
                TakeMode::IfAvailable,
                Duration::from_secs(120),
            )
            .await
        {
            Ok(taken) => break taken.fence().unwrap(),
            Err(e) if e.is_transient() => transient += 1,
            Err(e) => panic!("taking {key}: {e}"),
        }
    };
    for n in 1..=WRITES {
        let update = CheckpointUpdate::commit(checkpoint_at(n));
        // A write that failed transiently may or may not have happened; writing the same
        // checkpoint again is harmless, so the retry is safe.
        let ((), errors) = with_retries(|| store.checkpoint(&key, &fence, &update)).await;
        transient += errors;
        if n % 25 == 0 {
            let (read, errors) = with_retries(|| store.get_lease(&key)).await;
            transient += errors;
            let read = read.unwrap();
            assert_eq!(
                read.checkpoint,
                checkpoint_at(n),
                "{key}: write {n} was kept"
            );
            assert_eq!(
                read.fence(),
                Some(fence.clone()),
                "{key}: the lease is still ours"
            );
        }
    }
    transient
}
