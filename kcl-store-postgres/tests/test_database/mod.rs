//! The PostgreSQL server the tests use, and a fresh table per test so tests run in parallel.

#![allow(dead_code)]

use kcl_store_postgres::{PostgresLeaseStore, PostgresLeaseStoreConfig};
use sqlx::{Connection, PgConnection};

/// `KCL_TEST_POSTGRES_URL`, or the local server CI starts.
pub fn url() -> String {
    std::env::var("KCL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A connection for administration, or `None` (with a notice) when the server is unreachable
/// outside CI. Under `CI=true` an unreachable server fails the test.
pub async fn admin_connection() -> Option<PgConnection> {
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

/// A table name for `name`: readable, within PostgreSQL's identifier limit, unique per name.
pub fn table_for(name: &str) -> String {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let readable: String = name
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
        .take(28)
        .collect();
    format!("t_{readable}_{:08x}", hash as u32)
}

/// The store's configuration for test `name`, on its own table (dropped first if a previous
/// run left it).
pub async fn fresh_config(name: &str) -> Option<PostgresLeaseStoreConfig> {
    let mut admin = admin_connection().await?;
    let table = table_for(name);
    PostgresLeaseStore::drop_tables(&mut admin, &table)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Some(PostgresLeaseStoreConfig::new(url()).table(table))
}

/// A store for test `name` on a fresh table.
pub async fn fresh_store(name: &str) -> Option<PostgresLeaseStore> {
    let config = fresh_config(name).await?;
    Some(
        PostgresLeaseStore::connect_with(config)
            .await
            .unwrap_or_else(|e| panic!("connecting the store for {name}: {e}")),
    )
}
