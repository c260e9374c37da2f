//! Liveness bound to a worker's process: a session-level advisory lock, taken on a connection
//! of its own that nothing else uses. PostgreSQL lets go of the lock when the session ends: when
//! the process exits or is killed (the kernel closes the socket), when the hold is dropped (the
//! connection with it), or when the server terminates the session.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kcl_core::{Error, LivenessHold, WorkerId};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::sync::Mutex;

use crate::error_mapping::{connect_error, from_sqlx};

/// Takes a fresh advisory-lock key from the database-wide sequence (see migration 2) and tries
/// to lock it for this session.
const LOCK_NEW_KEY: &str = "SELECT key, pg_try_advisory_lock(key) \
    FROM (SELECT nextval('kcl_rs_liveness_keys') AS key) AS fresh";

/// Fresh keys tried before giving up: a key is only ever taken by someone else if another
/// program locks keys in the sequence's range.
const KEY_ATTEMPTS: usize = 3;

/// Opens the dedicated connections liveness holds keep: same server, user and
/// `application_name` as the store's pool.
#[derive(Clone)]
pub(crate) struct Connector {
    options: PgConnectOptions,
    timeout: Duration,
    /// Host, port and database, for error messages.
    target: Arc<str>,
}

impl fmt::Debug for Connector {
    // The options hold the password: only the target is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("target", &self.target)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Connections to `target` with `options`, each opened within `timeout`.
    pub(crate) fn new(options: PgConnectOptions, timeout: Duration, target: &str) -> Self {
        Connector {
            options,
            timeout,
            target: target.into(),
        }
    }

    /// Binds `worker`'s liveness to a new connection: locks a fresh key on it, then records
    /// (worker, key) with `record` (so a recorded key is locked from the moment it is visible).
    pub(crate) async fn hold(
        &self,
        worker: &WorkerId,
        record: &Arc<str>,
    ) -> Result<Box<dyn LivenessHold>, Error> {
        let mut connection =
            tokio::time::timeout(self.timeout, PgConnection::connect_with(&self.options))
                .await
                .map_err(|_| Error::Unavailable {
                    message: format!(
                        "cannot reach PostgreSQL at {} within {:?} for the liveness of {worker}",
                        self.target, self.timeout
                    ),
                })?
                .map_err(|e| connect_error(&self.target, e))?;
        let mut locked = None;
        for _ in 0..KEY_ATTEMPTS {
            let (key, granted): (i64, bool) = sqlx::query_as(LOCK_NEW_KEY)
                .fetch_one(&mut connection)
                .await
                .map_err(|e| from_sqlx(&format!("locking the liveness of {worker}"), e))?;
            if granted {
                locked = Some(key);
                break;
            }
        }
        let key = locked.ok_or_else(|| Error::Storage {
            message: format!(
                "{KEY_ATTEMPTS} fresh advisory-lock keys for the liveness of {worker} were all \
                 held by other sessions"
            ),
        })?;
        sqlx::query(AssertSqlSafe(Arc::clone(record)))
            .bind(worker.as_str())
            .bind(key)
            .execute(&mut connection)
            .await
            .map_err(|e| from_sqlx(&format!("recording the liveness of {worker}"), e))?;
        Ok(Box::new(PostgresLivenessHold {
            worker: worker.clone(),
            key,
            connection: Mutex::new(connection),
        }))
    }
}

/// A worker's liveness: the session holding advisory lock `key`. Dropping it closes the
/// connection, and the server ends the session and lets go of the lock.
#[derive(Debug)]
struct PostgresLivenessHold {
    worker: WorkerId,
    key: i64,
    connection: Mutex<PgConnection>,
}

#[async_trait]
impl LivenessHold for PostgresLivenessHold {
    /// One round trip on the dedicated connection: the session, and so the lock, lives as long
    /// as the connection answers. The cheapest exchange the protocol has (a `Sync` answered by
    /// `ReadyForQuery`, no statement to parse or run): workers check about ten times a second.
    /// A connection that failed once is never used again (sqlx does not reconnect it), so a
    /// lost hold stays lost.
    async fn check(&self) -> Result<(), Error> {
        let mut connection = self.connection.lock().await;
        connection.ping().await.map_err(|e| Error::Unavailable {
            message: format!(
                "the liveness of {} (advisory lock {}) is lost with its connection: {e}",
                self.worker, self.key
            ),
        })?;
        Ok(())
    }
}
