//! `PostgresLeaseStore`: every lease write is one conditional statement; a refused write is
//! explained by reading the row and applying the contract's transition (`kcl_core::LeaseRow`).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kcl_core::{
    CheckpointUpdate, Error, Fence, Lease, LeaseCensus, LeaseKey, LeaseRow, LeaseStore,
    LivenessHold, NewLease, ShardId, StreamName, TakeMode, WorkerId, lease_duration_millis,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Postgres};

use crate::PostgresLeaseStoreConfig;
use crate::batches::slot;
use crate::census::decode_leases;
use crate::error_mapping::{connect_error, from_sqlx, redact};
use crate::liveness::Connector;
use crate::migrations;
use crate::row_codec::{decode, epoch_column, join_shard_ids, stage_and_number};
use crate::statements::{Statements, quoted};

/// A [`LeaseStore`] in a PostgreSQL table: for workers on many machines.
///
/// Expiry and heartbeats are judged on the server's clock (`now()`), so workers' clocks never
/// meet. Every take, renew, checkpoint and release is a single conditional `UPDATE` (one round
/// trip): on the epoch seen for a take, on owner and epoch for the fenced writes, and, for
/// checkpoints, on the stored checkpoint being behind the new one, with sequence numbers
/// compared as `NUMERIC` (exact at any length; Kinesis's have 56 digits). Only a refused write
/// costs a second round trip, to say why.
///
/// The table name is configurable ([`PostgresLeaseStoreConfig::table`]) so that several
/// applications share one database; [`connect`](Self::connect) creates or migrates the tables.
///
/// [Liveness](LeaseStore::hold_liveness) is a session-level advisory lock on a connection of
/// the hold's own (outside the pool), under a key from a database-wide sequence, recorded per
/// worker in `<table>_liveness`; a worker is [dead](LeaseStore::dead_workers) when its recorded
/// key can be locked (a shared lock, held only for the asking statement), which it can as soon
/// as the worker's session ends. The session ends at once when the worker's process dies on a running machine (its
/// kernel closes the socket); a machine that loses power or drops off the network is seen only
/// once the server's TCP keepalive (`tcp_keepalives_idle` and friends) gives the connection up,
/// and its leases expire first. Session advisory locks need a session of their own: behind
/// PgBouncer, connect in session pooling mode, or directly, never in transaction pooling mode.
#[derive(Debug, Clone)]
pub struct PostgresLeaseStore {
    pub(crate) pool: PgPool,
    pub(crate) sql: Arc<Statements>,
    /// Held across each multi-row write (renewals, group checkpoints): they lock their rows in
    /// whatever order the planner's join meets them, so two at once could each wait for a row
    /// the other locked. Clones share it.
    pub(crate) batch_writes: Arc<tokio::sync::Mutex<()>>,
    table: String,
    liveness: Connector,
}

fn not_found(key: &LeaseKey) -> Error {
    Error::not_found("lease", key.to_string())
}

/// Why a conditional write on `key` matched no row, given the row as it is now (`None`: gone)
/// and `check`, the same transition on it.
fn refusal(
    key: &LeaseKey,
    row: Option<(LeaseRow, i64)>,
    check: impl FnOnce(&mut LeaseRow, i64) -> Result<(), Error>,
) -> Error {
    match row {
        None => not_found(key),
        Some((mut row, now)) => match check(&mut row, now) {
            Err(refusal) => refusal,
            // The row changed between the write and the read (say, an unexpired lease
            // expired): the write was still refused, on a state that is gone.
            Ok(()) => Error::LeaseConflict {
                lease: key.to_string(),
                message: "the lease changed while it was being written; re-read it".into(),
            },
        },
    }
}

/// Worker ids as read from a worker or liveness row.
fn decode_worker_ids(ids: &[String]) -> Result<Vec<WorkerId>, Error> {
    ids.iter()
        .map(|id| {
            WorkerId::new(id).map_err(|e| Error::Storage {
                message: format!("a PostgreSQL worker row does not decode: {e}"),
            })
        })
        .collect()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl PostgresLeaseStore {
    /// Connects to `url` (`postgres://user@host:5432/database`) with the default configuration
    /// (table `kcl_leases`) and creates or migrates the tables.
    ///
    /// A URL that does not parse is [`Error::InvalidArgument`] naming `database URL`; a server
    /// that cannot be reached is [`Error::Unavailable`] naming the host and port.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(PostgresLeaseStoreConfig::new(url)).await
    }

    /// Connects as `config` says and creates or migrates the tables.
    pub async fn connect_with(config: PostgresLeaseStoreConfig) -> Result<Self, Error> {
        config.validate()?;
        let options = PgConnectOptions::from_str(&config.url)
            .map_err(|e| Error::invalid("database URL", format!("{}: {e}", redact(&config.url))))?
            .application_name(&config.application_name);
        let target = format!(
            "{}:{} (database {:?})",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or(options.get_username())
        );
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(|e| match e {
                sqlx::Error::Configuration(_) => {
                    Error::invalid("database URL", format!("{}: {e}", redact(&config.url)))
                }
                other => connect_error(&target, other),
            })?;
        let leases = quoted(&config.table);
        let workers = quoted(&format!("{}_workers", config.table));
        let liveness = quoted(&format!("{}_liveness", config.table));
        let changes = quoted(&format!("{}_changes", config.table));
        migrations::run(&pool, &config.table, &leases, &workers, &liveness, &changes).await?;
        Ok(PostgresLeaseStore {
            pool,
            sql: Arc::new(Statements::new(&leases, &workers, &liveness, &changes)),
            batch_writes: Arc::new(tokio::sync::Mutex::new(())),
            table: config.table,
            liveness: Connector::new(options, config.acquire_timeout, &target),
        })
    }

    /// Drops every table (and the sequence) of the store named `table`, if they exist: the
    /// leases, workers, liveness and schema tables and the change sequence. For tests, and for
    /// retiring an application; workers of that table must be stopped first.
    pub async fn drop_tables(
        connection: &mut sqlx::PgConnection,
        table: &str,
    ) -> Result<(), Error> {
        crate::config::validate_table_name(table)?;
        let names = ["", "_workers", "_liveness", "_schema"]
            .map(|suffix| quoted(&format!("{table}{suffix}")))
            .join(", ");
        let changes = quoted(&format!("{table}_changes"));
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {names}; DROP SEQUENCE IF EXISTS {changes}"
        )))
        .execute(connection)
        .await
        .map_err(|e| from_sqlx(&format!("dropping the tables of {table}"), e))?;
        Ok(())
    }

    /// The lease table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The connection pool, for inspection and administration.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool's connections; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn query(
        sql: &Arc<str>,
    ) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(AssertSqlSafe(Arc::clone(sql)))
    }

    async fn fetch(&self, key: &LeaseKey) -> Result<Option<(LeaseRow, i64)>, Error> {
        let row = Self::query(&self.sql.select_one)
            .bind(key.stream.as_str())
            .bind(key.shard.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| from_sqlx(&format!("reading lease {key}"), e))?;
        row.as_ref().map(decode).transpose()
    }

    /// Why a conditional write on `key` matched no row: the lease is missing, or `check` (the
    /// same transition on the row as it is now) names the broken precondition.
    pub(crate) async fn explain_refusal(
        &self,
        key: &LeaseKey,
        check: impl FnOnce(&mut LeaseRow, i64) -> Result<(), Error>,
    ) -> Error {
        match self.fetch(key).await {
            Err(e) => e,
            Ok(row) => refusal(key, row, check),
        }
    }

    /// Why each conditional write of a batch on `keys` matched no row, as
    /// [`explain_refusal`](Self::explain_refusal) says for one, with the rows read in one
    /// query; `check` gets the index of the key in `keys`.
    pub(crate) async fn explain_refusals(
        &self,
        keys: &[&LeaseKey],
        check: impl Fn(usize, &mut LeaseRow, i64) -> Result<(), Error>,
    ) -> Vec<Error> {
        if keys.is_empty() {
            return Vec::new();
        }
        let rows = Self::query(&self.sql.select_many)
            .bind(
                keys.iter()
                    .map(|key| key.stream.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                keys.iter()
                    .map(|key| key.shard.as_str())
                    .collect::<Vec<_>>(),
            )
            .fetch_all(&self.pool)
            .await
            .map_err(|e| from_sqlx(&format!("reading {} leases", keys.len()), e))
            .and_then(|rows| rows.iter().map(decode).collect::<Result<Vec<_>, Error>>());
        let mut rows: BTreeMap<(String, String), (LeaseRow, i64)> = match rows {
            Ok(rows) => rows
                .into_iter()
                .map(|(row, now)| (slot(&row.key), (row, now)))
                .collect(),
            Err(error) => return keys.iter().map(|_| error.clone()).collect(),
        };
        keys.iter()
            .enumerate()
            .map(|(index, key)| {
                let row = rows.remove(&slot(key));
                refusal(key, row, |row, now| check(index, row, now))
            })
            .collect()
    }

    /// `Ok` unless `update` prepares a checkpoint behind the one it commits.
    pub(crate) fn pending_follows_committed(
        key: &LeaseKey,
        update: &CheckpointUpdate,
    ) -> Result<(), Error> {
        match (&update.checkpoint, &update.pending) {
            (Some(committed), Some(pending)) if !pending.checkpoint.may_follow(committed) => {
                Err(Error::CheckpointBackwards {
                    lease: key.to_string(),
                    current: committed.to_string(),
                    attempted: format!("pending {}", pending.checkpoint),
                })
            }
            _ => Ok(()),
        }
    }

    /// The lease a `RETURNING` write produced, or the reason none matched.
    async fn returned_or_explain(
        &self,
        key: &LeaseKey,
        returned: Result<Option<PgRow>, sqlx::Error>,
        what: &str,
        check: impl FnOnce(&mut LeaseRow, i64) -> Result<(), Error>,
    ) -> Result<Lease, Error> {
        match returned.map_err(|e| from_sqlx(&format!("{what} lease {key}"), e))? {
            Some(row) => decode(&row).map(|(lease, now)| lease.to_lease(now)),
            None => Err(self.explain_refusal(key, check).await),
        }
    }

    /// `Ok` if a write without `RETURNING` changed a row, or the reason it did not.
    async fn affected_or_explain(
        &self,
        key: &LeaseKey,
        done: Result<sqlx::postgres::PgQueryResult, sqlx::Error>,
        what: &str,
        check: impl FnOnce(&mut LeaseRow, i64) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let done = done.map_err(|e| from_sqlx(&format!("{what} lease {key}"), e))?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(self.explain_refusal(key, check).await)
        }
    }
}

#[async_trait]
impl LeaseStore for PostgresLeaseStore {
    async fn create_lease_if_absent(&self, lease: &NewLease) -> Result<bool, Error> {
        let (stage, number) = stage_and_number(&lease.checkpoint);
        let done = Self::query(&self.sql.create)
            .bind(lease.key.stream.as_str())
            .bind(lease.key.shard.as_str())
            .bind(lease.checkpoint.to_string())
            .bind(stage)
            .bind(number)
            .bind(join_shard_ids(&lease.parent_shard_ids))
            .execute(&self.pool)
            .await
            .map_err(|e| from_sqlx(&format!("creating lease {}", lease.key), e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_lease(&self, key: &LeaseKey) -> Result<Option<Lease>, Error> {
        Ok(self.fetch(key).await?.map(|(row, now)| row.to_lease(now)))
    }

    async fn list_leases(&self, stream: &StreamName) -> Result<Vec<Lease>, Error> {
        let rows = Self::query(&self.sql.list)
            .bind(stream.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| from_sqlx(&format!("listing the leases of stream {stream}"), e))?;
        decode_leases(rows.iter())
    }

    async fn lease_census(
        &self,
        stream: &StreamName,
        worker: &WorkerId,
    ) -> Result<LeaseCensus, Error> {
        self.census(stream, worker).await
    }

    async fn leases_held_by(
        &self,
        stream: &StreamName,
        owner: &WorkerId,
    ) -> Result<Vec<Lease>, Error> {
        self.held_by(stream, owner).await
    }

    async fn create_leases_if_absent(&self, leases: &[NewLease]) -> Result<Vec<bool>, Error> {
        self.create_many(leases).await
    }

    async fn renew_leases(
        &self,
        leases: &[(LeaseKey, Fence)],
        duration: Duration,
    ) -> Result<Vec<Result<Lease, Error>>, Error> {
        self.renew_many(leases, duration).await
    }

    async fn checkpoint_many(
        &self,
        updates: &[(LeaseKey, Fence, CheckpointUpdate)],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        self.checkpoint_many_at_once(updates).await
    }

    async fn take_lease(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        taker: &WorkerId,
        mode: TakeMode,
        duration: Duration,
    ) -> Result<Lease, Error> {
        let duration_ms = lease_duration_millis(duration)?;
        let returned = Self::query(&self.sql.take)
            .bind(key.stream.as_str())
            .bind(key.shard.as_str())
            .bind(taker.as_str())
            .bind(epoch_column(seen_epoch)?)
            .bind(duration_ms)
            .bind(mode == TakeMode::Steal)
            .fetch_optional(&self.pool)
            .await;
        self.returned_or_explain(key, returned, "taking", |row, now| {
            row.take(now, seen_epoch, taker, mode, duration)
        })
        .await
    }

    async fn renew_lease(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        duration: Duration,
    ) -> Result<Lease, Error> {
        let duration_ms = lease_duration_millis(duration)?;
        let returned = Self::query(&self.sql.renew)
            .bind(key.stream.as_str())
            .bind(key.shard.as_str())
            .bind(fence.owner.as_str())
            .bind(epoch_column(fence.epoch)?)
            .bind(duration_ms)
            .fetch_optional(&self.pool)
            .await;
        self.returned_or_explain(key, returned, "renewing", |row, now| {
            row.renew(now, fence, duration)
        })
        .await
    }

    async fn release_lease(&self, key: &LeaseKey, fence: &Fence) -> Result<(), Error> {
        let done = Self::query(&self.sql.release)
            .bind(key.stream.as_str())
            .bind(key.shard.as_str())
            .bind(fence.owner.as_str())
            .bind(epoch_column(fence.epoch)?)
            .execute(&self.pool)
            .await;
        self.affected_or_explain(key, done, "releasing", |row, _| row.release(fence))
            .await
    }

    async fn checkpoint(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        update: &CheckpointUpdate,
    ) -> Result<(), Error> {
        // A pending checkpoint behind the one committed with it is refused before any SQL; the
        // statement checks both against the stored checkpoint.
        Self::pending_follows_committed(key, update)?;
        let (stage, number) = match &update.checkpoint {
            Some(checkpoint) => {
                let (stage, number) = stage_and_number(checkpoint);
                (Some(stage), number)
            }
            None => (None, None),
        };
        let pending = update.pending.as_ref();
        let (pending_stage, pending_number) = match pending {
            Some(p) => {
                let (stage, number) = stage_and_number(&p.checkpoint);
                (Some(stage), number)
            }
            None => (None, None),
        };
        let done = Self::query(&self.sql.checkpoint)
            .bind(key.stream.as_str())
            .bind(key.shard.as_str())
            .bind(fence.owner.as_str())
            .bind(epoch_column(fence.epoch)?)
            .bind(update.checkpoint.as_ref().map(ToString::to_string))
            .bind(stage)
            .bind(number)
            .bind(pending.map(|p| p.checkpoint.to_string()))
            .bind(pending.and_then(|p| p.state.as_deref()))
            .bind(pending_stage)
            .bind(pending_number)
            .execute(&self.pool)
            .await;
        self.affected_or_explain(key, done, "checkpointing", |row, _| {
            row.checkpoint(fence, update)
        })
        .await
    }

    async fn request_handoff(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        requester: &WorkerId,
    ) -> Result<(), Error> {
        let done = Self::query(&self.sql.request_handoff)
            .bind(key.stream.as_str())
            .bind(key.shard.as_str())
            .bind(epoch_column(seen_epoch)?)
            .bind(requester.as_str())
            .execute(&self.pool)
            .await;
        self.affected_or_explain(key, done, "requesting a handoff of", |row, _| {
            row.request_handoff(seen_epoch, requester)
        })
        .await
    }

    async fn complete_handoff(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        duration: Duration,
    ) -> Result<Lease, Error> {
        let duration_ms = lease_duration_millis(duration)?;
        let returned = Self::query(&self.sql.complete_handoff)
            .bind(key.stream.as_str())
            .bind(key.shard.as_str())
            .bind(fence.owner.as_str())
            .bind(epoch_column(fence.epoch)?)
            .bind(duration_ms)
            .fetch_optional(&self.pool)
            .await;
        self.returned_or_explain(key, returned, "handing off", |row, now| {
            row.complete_handoff(now, fence, duration)
        })
        .await
    }

    async fn record_child_shards(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        children: &[ShardId],
    ) -> Result<(), Error> {
        let done = Self::query(&self.sql.record_child_shards)
            .bind(key.stream.as_str())
            .bind(key.shard.as_str())
            .bind(fence.owner.as_str())
            .bind(epoch_column(fence.epoch)?)
            .bind(join_shard_ids(children))
            .execute(&self.pool)
            .await;
        self.affected_or_explain(key, done, "recording the children of", |row, _| {
            row.record_child_shards(fence, children)
        })
        .await
    }

    async fn delete_lease(&self, key: &LeaseKey) -> Result<bool, Error> {
        let done = Self::query(&self.sql.delete)
            .bind(key.stream.as_str())
            .bind(key.shard.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| from_sqlx(&format!("deleting lease {key}"), e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn heartbeat(&self, worker: &WorkerId) -> Result<(), Error> {
        Self::query(&self.sql.heartbeat)
            .bind(worker.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| from_sqlx(&format!("recording the heartbeat of {worker}"), e))?;
        Ok(())
    }

    async fn deregister_worker(&self, worker: &WorkerId) -> Result<(), Error> {
        Self::query(&self.sql.deregister)
            .bind(worker.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| from_sqlx(&format!("deregistering {worker}"), e))?;
        Ok(())
    }

    async fn live_workers(&self, timeout: Duration) -> Result<Vec<WorkerId>, Error> {
        let ids: Vec<String> =
            sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.sql.live_workers)))
                .bind(millis(timeout))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| from_sqlx("listing live workers", e))?;
        decode_worker_ids(&ids)
    }

    async fn hold_liveness(
        &self,
        worker: &WorkerId,
    ) -> Result<Option<Box<dyn LivenessHold>>, Error> {
        self.liveness
            .hold(worker, &self.sql.record_liveness)
            .await
            .map(Some)
    }

    async fn lease_changes(&self) -> Result<Option<u64>, Error> {
        let last: i64 = sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.sql.lease_changes)))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| from_sqlx("reading the lease change number", e))?;
        Ok(Some(last.unsigned_abs()))
    }

    async fn dead_workers(&self, workers: &[WorkerId]) -> Result<Vec<WorkerId>, Error> {
        let ids: Vec<&str> = workers.iter().map(WorkerId::as_str).collect();
        let dead: Vec<String> =
            sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.sql.dead_workers)))
                .bind(ids)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| from_sqlx("listing dead workers", e))?;
        decode_worker_ids(&dead)
    }
}
