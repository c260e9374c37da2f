//! The embedded schema migrations, applied in order and recorded in `<table>_schema`.

use sqlx::{AssertSqlSafe, PgPool};

use crate::error_mapping::from_sqlx;
use kcl_core::Error;

/// Every migration, in order; `{leases}`, `{workers}`, `{liveness}` and `{changes}` stand for
/// the quoted table (and sequence) names.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_create_leases.sql"),
    include_str!("../migrations/0002_liveness.sql"),
    include_str!("../migrations/0003_changes.sql"),
    include_str!("../migrations/0004_owner_index.sql"),
];

/// Brings the tables named by `table` up to date. Safe to run from many processes at once: one
/// transaction holding an advisory lock per table name does the check and the migrations.
pub(crate) async fn run(
    pool: &PgPool,
    table: &str,
    leases: &str,
    workers: &str,
    liveness: &str,
    changes: &str,
) -> Result<(), Error> {
    let schema = crate::statements::quoted(&format!("{table}_schema"));
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| from_sqlx("starting the schema migration", e))?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("kcl-rs lease schema {table}"))
        .execute(&mut *tx)
        .await
        .map_err(|e| from_sqlx("locking the schema migration", e))?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {schema} (version INTEGER PRIMARY KEY, \
         applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )))
    .execute(&mut *tx)
    .await
    .map_err(|e| from_sqlx("creating the schema version table", e))?;
    let applied: Option<i32> =
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT max(version) FROM {schema}")))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| from_sqlx("reading the schema version", e))?;
    let applied = usize::try_from(applied.unwrap_or(0)).unwrap_or(0);
    if applied > MIGRATIONS.len() {
        return Err(Error::Storage {
            message: format!(
                "the lease schema of table {table} is version {applied}, newer than this \
                 build's {}",
                MIGRATIONS.len()
            ),
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        let sql = migration
            .replace("{leases}", leases)
            .replace("{workers}", workers)
            .replace("{liveness}", liveness)
            .replace("{changes}", changes);
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .map_err(|e| from_sqlx(&format!("applying schema migration {}", index + 1), e))?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {schema} (version) VALUES ($1)"
        )))
        .bind(i32::try_from(index + 1).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await
        .map_err(|e| from_sqlx("recording the schema version", e))?;
    }
    tx.commit()
        .await
        .map_err(|e| from_sqlx("committing the schema migration", e))
}
