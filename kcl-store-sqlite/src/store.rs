//! `SqliteLeaseStore`: every lease write is a `BEGIN IMMEDIATE` transaction that reads the row,
//! applies the contract's transition (`kcl_core::LeaseRow`) and writes it back.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use kcl_core::{
    CheckpointUpdate, Error, Fence, Lease, LeaseKey, LeaseRow, LeaseStore, LivenessHold, NewLease,
    ShardId, StreamName, TakeMode, WorkerId,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use crate::SqliteLeaseStoreConfig;
use crate::error_mapping::{from_io, from_sqlx};
use crate::liveness::LockDir;
use crate::migrations;
use crate::row_codec::{decode, epoch_column, join_shard_ids, lease_columns};

/// A [`LeaseStore`] in a SQLite database file: the embedded default, safe for several
/// processes on one machine.
///
/// The database runs in WAL mode (readers never wait for the writer) with
/// `synchronous = NORMAL` (a commit survives a process crash; a power cut may lose the last
/// commits, which re-processing covers) and a busy timeout. Each lease write is one
/// `BEGIN IMMEDIATE` transaction, so its read-check-write cannot interleave with another
/// process's; a lock held longer than the busy timeout is the transient [`Error::Unavailable`].
/// A batch ([`create_leases_if_absent`](LeaseStore::create_leases_if_absent),
/// [`renew_leases`](LeaseStore::renew_leases), [`checkpoint_many`](LeaseStore::checkpoint_many))
/// is one such transaction for all its leases, each decided on its own and the whole committed
/// once; it holds the lock while it works through them, so very large batches delay other
/// writers.
///
/// The change number ([`lease_changes`](LeaseStore::lease_changes)) is a counter in a one-row
/// table, `kcl_leases_changes`, that a write transaction adds one to, just before it commits,
/// if it created or deleted a lease or changed one as [`LeaseRow::changes_ownership`] says; the
/// other writes (renewals, other checkpoints, handoff requests, heartbeats) never touch it.
///
/// Expiry and heartbeats use this machine's clock, read once per operation after the write
/// lock is held. Sequence numbers are stored as text and compared as numbers in Rust, inside
/// that transaction (SQLite has no exact integer wider than 64 bits).
///
/// Liveness ([`hold_liveness`](LeaseStore::hold_liveness)) is an exclusive operating-system
/// lock ([`std::fs::File::try_lock`]) on a file of the directory `<database file>.liveness`
/// beside the database, which the operating system lets go of when the holding process dies;
/// holding the liveness of a worker whose hold is still in force, in this process or another,
/// is the transient [`Error::Unavailable`]. An in-memory database has no file to lock beside
/// it, so there `hold_liveness` is `Ok(None)` (no capability) and nobody is reported dead.
#[derive(Debug, Clone)]
pub struct SqliteLeaseStore {
    pool: SqlitePool,
    /// The liveness lock files; `None` for an in-memory database.
    liveness: Option<LockDir>,
}

/// Milliseconds since the Unix epoch on this machine's clock.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One lease's step inside a write transaction: the outer `Err` is a failure of the database
/// (abandon the transaction), the inner result this lease's own outcome.
type Step<T> = Result<Result<T, Error>, Error>;

/// What a write transaction changed, which decides how [`SqliteLeaseStore::finish`] ends it;
/// ordered, so that a batch's is the greatest of its leases'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Wrote {
    /// Nothing: roll back.
    Nothing,
    /// Leases, but not who may take what (renewals, other checkpoints, handoff requests):
    /// commit, leaving the change number alone.
    Leases,
    /// A lease created or deleted, or changed as [`LeaseRow::changes_ownership`] says: move the
    /// change number and commit.
    Ownership,
}

impl Wrote {
    /// `Ownership` if a lease was created or deleted, else `Nothing`.
    fn lease_created_or_deleted(done: bool) -> Self {
        if done {
            Wrote::Ownership
        } else {
            Wrote::Nothing
        }
    }
}

fn not_found(key: &LeaseKey) -> Error {
    Error::not_found("lease", key.to_string())
}

impl SqliteLeaseStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path/leases.db`,
    /// `sqlite::memory:`) with the default configuration, and migrates its schema.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(SqliteLeaseStoreConfig::new(url)).await
    }

    /// Opens the database `config` names and migrates its schema.
    pub async fn connect_with(config: SqliteLeaseStoreConfig) -> Result<Self, Error> {
        config.validate()?;
        let options = SqliteConnectOptions::from_str(&config.url)
            .map_err(|e| Error::invalid("database URL", format!("{:?}: {e}", config.url)))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(config.busy_timeout);
        // Every process must name the same lock files, whatever its working directory.
        let database = (!config.is_in_memory() && !options.get_filename().as_os_str().is_empty())
            .then(|| options.get_filename().to_owned());
        let pool_options = if config.is_in_memory() {
            // An in-memory database lives as long as its one connection: never close it.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(config.max_connections)
        };
        let pool = pool_options
            .acquire_timeout(config.busy_timeout + Duration::from_secs(25))
            .connect_with(options)
            .await
            .map_err(|e| match e {
                sqlx::Error::Configuration(_) => {
                    Error::invalid("database URL", format!("{:?}: {e}", config.url))
                }
                other => Error::Storage {
                    message: format!("cannot open SQLite database {:?}: {other}", config.url),
                },
            })?;
        migrations::run(&pool).await?;
        // Connecting created the file, so it can be made absolute now.
        let liveness = database
            .map(|path| {
                std::fs::canonicalize(&path)
                    .map(|path| LockDir::beside(&path))
                    .map_err(|e| from_io(&format!("resolving {}", path.display()), e))
            })
            .transpose()?;
        Ok(SqliteLeaseStore { pool, liveness })
    }

    /// Closes the pool's connections; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Inserts `lease` unowned at epoch 0 unless its key exists, inside `tx`; `true` if this
    /// insert created it.
    async fn insert_if_absent(
        tx: &mut Transaction<'static, Sqlite>,
        lease: &NewLease,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "INSERT INTO kcl_leases (stream, shard, epoch, checkpoint, parent_shard_ids) \
             VALUES (?1, ?2, 0, ?3, ?4) ON CONFLICT (stream, shard) DO NOTHING",
        )
        .bind(lease.key.stream.as_str())
        .bind(lease.key.shard.as_str())
        .bind(lease.checkpoint.to_string())
        .bind(join_shard_ids(&lease.parent_shard_ids))
        .execute(&mut **tx)
        .await
        .map_err(|e| from_sqlx(&format!("creating lease {}", lease.key), e))?;
        Ok(done.rows_affected() == 1)
    }

    /// The lease row for `key` inside `tx`; a missing or undecodable row is this lease's own
    /// outcome, not a failure of the database.
    async fn fetch_row(tx: &mut Transaction<'static, Sqlite>, key: &LeaseKey) -> Step<LeaseRow> {
        let row = sqlx::query(concat!(
            "SELECT ",
            lease_columns!(),
            " FROM kcl_leases WHERE stream = ?1 AND shard = ?2"
        ))
        .bind(key.stream.as_str())
        .bind(key.shard.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| from_sqlx(&format!("reading lease {key}"), e))?;
        Ok(row.as_ref().map_or_else(|| Err(not_found(key)), decode))
    }

    /// Writes `row` back inside `tx`; an epoch SQLite cannot store is this lease's own outcome.
    async fn write_row(tx: &mut Transaction<'static, Sqlite>, row: &LeaseRow) -> Step<()> {
        let epoch = match epoch_column(row.epoch) {
            Ok(epoch) => epoch,
            Err(refused) => return Ok(Err(refused)),
        };
        let pending = row.pending_checkpoint.as_ref();
        sqlx::query(
            "UPDATE kcl_leases SET owner = ?3, epoch = ?4, expires_at_ms = ?5, checkpoint = ?6, \
             pending_checkpoint = ?7, pending_state = ?8, child_shard_ids = ?9, handoff_to = ?10 \
             WHERE stream = ?1 AND shard = ?2",
        )
        .bind(row.key.stream.as_str())
        .bind(row.key.shard.as_str())
        .bind(row.owner.as_ref().map(WorkerId::as_str))
        .bind(epoch)
        .bind(row.expires_at_ms)
        .bind(row.checkpoint.to_string())
        .bind(pending.map(|p| p.checkpoint.to_string()))
        .bind(pending.and_then(|p| p.state.as_deref()))
        .bind(join_shard_ids(&row.child_shard_ids))
        .bind(row.handoff_to.as_ref().map(WorkerId::as_str))
        .execute(&mut **tx)
        .await
        .map_err(|e| from_sqlx(&format!("writing lease {}", row.key), e))?;
        Ok(Ok(()))
    }

    /// One lease's step of a write transaction: reads the row for `key`, applies `change` at
    /// `now` and writes the result back, answering the row written and whether it changed who
    /// may take what. A refused change writes nothing and is this lease's outcome; the
    /// transaction goes on for the others.
    async fn step(
        tx: &mut Transaction<'static, Sqlite>,
        key: &LeaseKey,
        now: i64,
        change: impl FnOnce(&mut LeaseRow, i64) -> Result<(), Error> + Send,
    ) -> Step<(LeaseRow, Wrote)> {
        let before = match Self::fetch_row(tx, key).await? {
            Ok(row) => row,
            Err(refused) => return Ok(Err(refused)),
        };
        let mut row = before.clone();
        if let Err(refused) = change(&mut row, now) {
            return Ok(Err(refused));
        }
        let wrote = if before.changes_ownership(&row) {
            Wrote::Ownership
        } else {
            Wrote::Leases
        };
        Ok(Self::write_row(tx, &row).await?.map(|()| (row, wrote)))
    }

    /// Takes the database's write lock: a `BEGIN IMMEDIATE` transaction, so that no other
    /// connection or process writes between its reads and its writes.
    async fn begin_write(&self, what: &str) -> Result<Transaction<'static, Sqlite>, Error> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| from_sqlx(&format!("locking the database to {what}"), e))
    }

    /// Commits `tx` if it `wrote` anything, else rolls it back, releasing the write lock now
    /// rather than when the connection is next used. The one place the change number moves:
    /// by one, inside `tx`, if `tx` changed who may take what.
    async fn finish(
        mut tx: Transaction<'static, Sqlite>,
        wrote: Wrote,
        what: &str,
    ) -> Result<(), Error> {
        if wrote == Wrote::Nothing {
            let _ = tx.rollback().await;
            return Ok(());
        }
        if wrote == Wrote::Ownership {
            let moved = sqlx::query("UPDATE kcl_leases_changes SET changes = changes + 1")
                .execute(&mut *tx)
                .await
                .map_err(|e| from_sqlx(&format!("moving the change number to {what}"), e))?;
            // Without its row the number would stand still and takers stop looking.
            if moved.rows_affected() != 1 {
                return Err(Error::Storage {
                    message: format!("the change number's row is missing, to {what}"),
                });
            }
        }
        tx.commit()
            .await
            .map_err(|e| from_sqlx(&format!("committing the transaction to {what}"), e))
    }

    /// Applies each `(key, change)` in order as [`step`](Self::step) does, all inside one
    /// `BEGIN IMMEDIATE` transaction at one reading of the clock, and commits once: each lease's
    /// own outcome, in input order. An `Err` for the whole call is a failure of the database,
    /// after which nothing of the batch is committed. No changes, no transaction.
    async fn transitions<F>(
        &self,
        what: &str,
        changes: Vec<(&LeaseKey, F)>,
    ) -> Result<Vec<Result<Lease, Error>>, Error>
    where
        F: FnOnce(&mut LeaseRow, i64) -> Result<(), Error> + Send,
    {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write(what).await?;
        // Read the clock only once the write lock is held, so time spent waiting for it does not
        // shorten the leases being granted.
        let now = now_ms();
        let mut outcomes = Vec::with_capacity(changes.len());
        for (key, change) in changes {
            outcomes.push(Self::step(&mut tx, key, now, change).await?);
        }
        let wrote = outcomes.iter().flatten().map(|(_, wrote)| *wrote).max();
        Self::finish(tx, wrote.unwrap_or(Wrote::Nothing), what).await?;
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.map(|(row, _)| row.to_lease(now)))
            .collect())
    }

    /// Reads the lease for `key`, applies `change` at the current time and writes the result,
    /// all inside one `BEGIN IMMEDIATE` transaction; a refused change writes nothing. A batch
    /// of one for [`transitions`](Self::transitions).
    async fn transition(
        &self,
        key: &LeaseKey,
        change: impl FnOnce(&mut LeaseRow, i64) -> Result<(), Error> + Send,
    ) -> Result<Lease, Error> {
        let mut outcomes = self
            .transitions(&format!("update lease {key}"), vec![(key, change)])
            .await?;
        // One change, one outcome.
        outcomes.pop().unwrap_or_else(|| Err(not_found(key)))
    }
}

#[async_trait]
impl LeaseStore for SqliteLeaseStore {
    /// A batch of one: a create moves the change number in its own transaction.
    async fn create_lease_if_absent(&self, lease: &NewLease) -> Result<bool, Error> {
        let created = self
            .create_leases_if_absent(std::slice::from_ref(lease))
            .await?;
        Ok(created == [true])
    }

    /// All in one `BEGIN IMMEDIATE` transaction, committed once: a reader sees none or all of
    /// the leases it created.
    async fn create_leases_if_absent(&self, leases: &[NewLease]) -> Result<Vec<bool>, Error> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let what = format!("create {} lease(s)", leases.len());
        let mut tx = self.begin_write(&what).await?;
        let mut created = Vec::with_capacity(leases.len());
        for lease in leases {
            created.push(Self::insert_if_absent(&mut tx, lease).await?);
        }
        let wrote = Wrote::lease_created_or_deleted(created.contains(&true));
        Self::finish(tx, wrote, &what).await?;
        Ok(created)
    }

    /// All in one `BEGIN IMMEDIATE` transaction at one reading of the clock, committed once;
    /// a lease lost or not found is that lease's result and writes nothing.
    async fn renew_leases(
        &self,
        leases: &[(LeaseKey, Fence)],
        duration: Duration,
    ) -> Result<Vec<Result<Lease, Error>>, Error> {
        let changes = leases
            .iter()
            .map(|(key, fence)| {
                (key, move |row: &mut LeaseRow, now| {
                    row.renew(now, fence, duration)
                })
            })
            .collect();
        self.transitions(&format!("renew {} leases", leases.len()), changes)
            .await
    }

    /// All in one `BEGIN IMMEDIATE` transaction, committed once; a lease lost, not found or
    /// a checkpoint behind the stored one is that update's result and writes nothing.
    async fn checkpoint_many(
        &self,
        updates: &[(LeaseKey, Fence, CheckpointUpdate)],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let changes = updates
            .iter()
            .map(|(key, fence, update)| {
                (key, move |row: &mut LeaseRow, _: i64| {
                    row.checkpoint(fence, update)
                })
            })
            .collect();
        let outcomes = self
            .transitions(&format!("write {} checkpoints", updates.len()), changes)
            .await?;
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.map(drop))
            .collect())
    }

    async fn get_lease(&self, key: &LeaseKey) -> Result<Option<Lease>, Error> {
        let row = sqlx::query(concat!(
            "SELECT ",
            lease_columns!(),
            " FROM kcl_leases WHERE stream = ?1 AND shard = ?2"
        ))
        .bind(key.stream.as_str())
        .bind(key.shard.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| from_sqlx(&format!("reading lease {key}"), e))?;
        let now = now_ms();
        row.as_ref()
            .map(|row| decode(row).map(|lease| lease.to_lease(now)))
            .transpose()
    }

    async fn list_leases(&self, stream: &StreamName) -> Result<Vec<Lease>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            lease_columns!(),
            " FROM kcl_leases WHERE stream = ?1 ORDER BY shard"
        ))
        .bind(stream.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| from_sqlx(&format!("listing the leases of stream {stream}"), e))?;
        let now = now_ms();
        rows.iter()
            .map(|row| decode(row).map(|lease| lease.to_lease(now)))
            .collect()
    }

    async fn take_lease(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        taker: &WorkerId,
        mode: TakeMode,
        duration: Duration,
    ) -> Result<Lease, Error> {
        self.transition(key, |row, now| {
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
        self.transition(key, |row, now| row.renew(now, fence, duration))
            .await
    }

    async fn release_lease(&self, key: &LeaseKey, fence: &Fence) -> Result<(), Error> {
        self.transition(key, |row, _| row.release(fence))
            .await
            .map(drop)
    }

    async fn checkpoint(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        update: &CheckpointUpdate,
    ) -> Result<(), Error> {
        self.transition(key, |row, _| row.checkpoint(fence, update))
            .await
            .map(drop)
    }

    async fn request_handoff(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        requester: &WorkerId,
    ) -> Result<(), Error> {
        self.transition(key, |row, _| row.request_handoff(seen_epoch, requester))
            .await
            .map(drop)
    }

    async fn complete_handoff(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        duration: Duration,
    ) -> Result<Lease, Error> {
        self.transition(key, |row, now| row.complete_handoff(now, fence, duration))
            .await
    }

    async fn record_child_shards(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        children: &[ShardId],
    ) -> Result<(), Error> {
        self.transition(key, |row, _| row.record_child_shards(fence, children))
            .await
            .map(drop)
    }

    /// In one `BEGIN IMMEDIATE` transaction with the change number it moves.
    async fn delete_lease(&self, key: &LeaseKey) -> Result<bool, Error> {
        let what = format!("delete lease {key}");
        let mut tx = self.begin_write(&what).await?;
        let done = sqlx::query("DELETE FROM kcl_leases WHERE stream = ?1 AND shard = ?2")
            .bind(key.stream.as_str())
            .bind(key.shard.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| from_sqlx(&format!("deleting lease {key}"), e))?;
        let deleted = done.rows_affected() == 1;
        Self::finish(tx, Wrote::lease_created_or_deleted(deleted), &what).await?;
        Ok(deleted)
    }

    async fn heartbeat(&self, worker: &WorkerId) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO kcl_workers (worker_id, heartbeat_at_ms) VALUES (?1, ?2) \
             ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at_ms = excluded.heartbeat_at_ms",
        )
        .bind(worker.as_str())
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(|e| from_sqlx(&format!("recording the heartbeat of {worker}"), e))?;
        Ok(())
    }

    async fn deregister_worker(&self, worker: &WorkerId) -> Result<(), Error> {
        sqlx::query("DELETE FROM kcl_workers WHERE worker_id = ?1")
            .bind(worker.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| from_sqlx(&format!("deregistering {worker}"), e))?;
        let lock_file: Option<i64> =
            sqlx::query_scalar("DELETE FROM kcl_liveness WHERE worker_id = ?1 RETURNING id")
                .bind(worker.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| from_sqlx(&format!("forgetting the liveness of {worker}"), e))?;
        // The row is gone, so the file no longer matters: removing it only tidies up.
        if let (Some(dir), Some(id)) = (&self.liveness, lock_file)
            && let Err(e) = dir.remove(id)
        {
            tracing::warn!(%worker, error = %e, "a deregistered worker's liveness lock file stays");
        }
        Ok(())
    }

    async fn live_workers(&self, timeout: Duration) -> Result<Vec<WorkerId>, Error> {
        let timeout = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT worker_id FROM kcl_workers WHERE heartbeat_at_ms > ?1 ORDER BY worker_id",
        )
        .bind(now_ms().saturating_sub(timeout))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| from_sqlx("listing live workers", e))?;
        ids.iter()
            .map(|id| {
                WorkerId::new(id).map_err(|e| Error::Storage {
                    message: format!("a SQLite worker row does not decode: {e}"),
                })
            })
            .collect()
    }

    async fn hold_liveness(
        &self,
        worker: &WorkerId,
    ) -> Result<Option<Box<dyn LivenessHold>>, Error> {
        let Some(dir) = &self.liveness else {
            return Ok(None);
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO kcl_liveness (worker_id) VALUES (?1) \
             ON CONFLICT (worker_id) DO UPDATE SET worker_id = excluded.worker_id RETURNING id",
        )
        .bind(worker.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| from_sqlx(&format!("recording the liveness of {worker}"), e))?;
        let hold = dir.hold(id, worker)?;
        // Only now is an unlocked file proof of death.
        let held = sqlx::query("UPDATE kcl_liveness SET held = 1 WHERE id = ?1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| from_sqlx(&format!("recording the liveness of {worker}"), e))?;
        if held.rows_affected() == 0 {
            return Err(Error::Unavailable {
                message: format!("{worker} deregistered while taking its liveness"),
            });
        }
        Ok(Some(Box::new(hold)))
    }

    /// One read of the counter row, without a transaction.
    async fn lease_changes(&self) -> Result<Option<u64>, Error> {
        let changes: i64 = sqlx::query_scalar("SELECT changes FROM kcl_leases_changes")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| from_sqlx("reading the change number", e))?;
        u64::try_from(changes)
            .map(Some)
            .map_err(|_| Error::Storage {
                message: format!("the change number {changes} is negative"),
            })
    }

    async fn dead_workers(&self, workers: &[WorkerId]) -> Result<Vec<WorkerId>, Error> {
        let Some(dir) = &self.liveness else {
            return Ok(Vec::new());
        };
        // One query for all: the table has a row per worker that ever held liveness here.
        let held: Vec<(String, i64)> =
            sqlx::query_as("SELECT worker_id, id FROM kcl_liveness WHERE held = 1")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| from_sqlx("reading the workers' liveness", e))?;
        let held: BTreeMap<String, i64> = held.into_iter().collect();
        let mut dead = Vec::new();
        for worker in workers.iter().collect::<BTreeSet<_>>() {
            if let Some(&id) = held.get(worker.as_str())
                && dir.is_released(id)?
            {
                dead.push(worker.clone());
            }
        }
        Ok(dead)
    }
}
