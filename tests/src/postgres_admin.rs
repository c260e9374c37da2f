//! The PostgreSQL server the multi-process tests keep leases in: where it is, whether a test may
//! skip without it, a fresh table per run, and killing the workers' sessions.

use kcl_store_postgres::{PostgresLeaseStore, PostgresLeaseStoreConfig};
use sqlx::{Connection, PgConnection};

/// `KCL_TEST_POSTGRES_URL`, or the local server CI starts.
pub fn url() -> String {
    std::env::var("KCL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// True under CI (`CI` set and not `false`/`0`): a missing server then fails tests.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// An administrative connection, or `None` (with a notice) when the server is unreachable
/// outside CI. Under CI an unreachable server fails the test.
pub async fn connect() -> Option<PgConnection> {
    match PgConnection::connect(&url()).await {
        Ok(connection) => Some(connection),
        Err(e) if under_ci() => {
            panic!("PostgreSQL at {} is unreachable and CI is set: {e}", url())
        }
        Err(e) => {
            eprintln!(
                "SKIPPED: PostgreSQL at {} is unreachable ({e}); set KCL_TEST_POSTGRES_URL",
                url()
            );
            None
        }
    }
}

/// Drops the lease store's tables for `table` ([`PostgresLeaseStore::drop_tables`]).
pub async fn drop_tables(admin: &mut PgConnection, table: &str) {
    PostgresLeaseStore::drop_tables(admin, table)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Drops the tables of `table` left by an earlier run and creates them afresh, once, rather
/// than several worker processes racing to.
pub async fn fresh_tables(admin: &mut PgConnection, table: &str) {
    drop_tables(admin, table).await;
    PostgresLeaseStore::connect_with(
        PostgresLeaseStoreConfig::new(url())
            .table(table)
            .max_connections(1),
    )
    .await
    .unwrap_or_else(|e| panic!("creating the lease table {table}: {e}"))
    .close()
    .await;
}

/// Terminates every session whose `application_name` is `name` (the workers' pools); returns
/// how many.
pub async fn terminate_sessions(admin: &mut PgConnection, name: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = $1 AND pid <> pg_backend_pid()",
    )
    .bind(name)
    .fetch_one(admin)
    .await
    .unwrap_or_else(|e| panic!("terminating the sessions of {name}: {e}"))
}
