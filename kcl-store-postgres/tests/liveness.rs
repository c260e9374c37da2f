//! The server ends a liveness hold's session (`pg_terminate_backend`) while its process lives:
//! the worker is reported dead, and the hold's `check` says it is lost.

mod test_database;

use std::time::Duration;

use kcl_core::{Error, LeaseStore, WorkerId};
use kcl_store_postgres::PostgresLeaseStore;

/// How long the server may take to end a terminated session.
const NOTICE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_liveness_session_reports_the_worker_dead_and_fails_its_check() {
    let Some(config) = test_database::fresh_config("liveness_session_terminated").await else {
        return;
    };
    let Some(mut admin) = test_database::admin_connection().await else {
        return;
    };
    let application_name = format!("kcl-test-liveness-terminated-{}", std::process::id());
    let store = PostgresLeaseStore::connect_with(config.application_name(&application_name))
        .await
        .unwrap();
    let (killed, spared) = (
        WorkerId::unique("killed").unwrap(),
        WorkerId::unique("spared").unwrap(),
    );
    let both = [killed.clone(), spared.clone()];
    let killed_hold = store.hold_liveness(&killed).await.unwrap().unwrap();
    let terminated = terminate_liveness_sessions(&mut admin, &application_name).await;
    assert_eq!(
        terminated, 1,
        "one session of the store held an advisory lock"
    );
    let spared_hold = store.hold_liveness(&spared).await.unwrap().unwrap();

    let deadline = tokio::time::Instant::now() + NOTICE;
    let dead = loop {
        let dead = store.dead_workers(&both).await.unwrap();
        if !dead.is_empty() || tokio::time::Instant::now() >= deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        dead,
        std::slice::from_ref(&killed),
        "the terminated session's worker, and only it"
    );
    let lost = killed_hold.check().await;
    assert!(
        matches!(lost, Err(Error::Unavailable { .. })),
        "the terminated hold reports its loss: {lost:?}"
    );
    spared_hold.check().await.unwrap();

    // Holding again makes the worker alive.
    let _again = store.hold_liveness(&killed).await.unwrap().unwrap();
    assert_eq!(
        store.dead_workers(&both).await.unwrap(),
        Vec::<WorkerId>::new()
    );
}

/// Terminates the sessions of `application_name` holding an advisory lock (the liveness holds'
/// dedicated connections, not the pool's); returns how many.
async fn terminate_liveness_sessions(
    admin: &mut sqlx::PgConnection,
    application_name: &str,
) -> i64 {
    sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(a.pid)) FROM pg_stat_activity AS a \
         WHERE a.application_name = $1 AND a.pid IN \
           (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)",
    )
    .bind(application_name)
    .fetch_one(admin)
    .await
    .unwrap_or_else(|e| panic!("terminating the liveness sessions: {e}"))
}
