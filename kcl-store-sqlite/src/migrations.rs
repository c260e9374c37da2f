//! The embedded schema migrations, applied in order, tracked by SQLite's `user_version`.

use sqlx::{AssertSqlSafe, SqlitePool};

use crate::error_mapping::from_sqlx;
use kcl_core::Error;

/// Every migration, in order; the database's `user_version` is the count applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_create_leases.sql"),
    include_str!("../migrations/0002_liveness.sql"),
    include_str!("../migrations/0003_changes.sql"),
];

/// Brings the schema up to date. Safe to run from several processes at once: the check and the
/// migrations run in one `BEGIN IMMEDIATE` transaction.
pub(crate) async fn run(pool: &SqlitePool) -> Result<(), Error> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| from_sqlx("starting the schema migration", e))?;
    let applied: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| from_sqlx("reading the schema version", e))?;
    let applied = usize::try_from(applied).unwrap_or(0);
    if applied > MIGRATIONS.len() {
        return Err(Error::Storage {
            message: format!(
                "the database's lease schema is version {applied}, newer than this build's {}",
                MIGRATIONS.len()
            ),
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        sqlx::raw_sql(*migration)
            .execute(&mut *tx)
            .await
            .map_err(|e| from_sqlx(&format!("applying schema migration {}", index + 1), e))?;
        // PRAGMA takes no parameters; the value is our own integer.
        sqlx::query(AssertSqlSafe(format!(
            "PRAGMA user_version = {}",
            index + 1
        )))
        .execute(&mut *tx)
        .await
        .map_err(|e| from_sqlx("recording the schema version", e))?;
    }
    tx.commit()
        .await
        .map_err(|e| from_sqlx("committing the schema migration", e))
}
