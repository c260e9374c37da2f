//! Where the SQLite lease store lives and how it waits for the lock.

use std::time::Duration;

use kcl_core::Error;

/// Configuration of a [`SqliteLeaseStore`](crate::SqliteLeaseStore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteLeaseStoreConfig {
    /// `sqlite://path/to/leases.db` (created if missing), `sqlite:///absolute/path.db`, or
    /// `sqlite::memory:` (one process only).
    pub url: String,
    /// How long a write waits for another connection or process to release the database lock
    /// before failing with the transient [`Error::Unavailable`]. Defaults to 5 s: several times
    /// the longest lease write, well under KCL's 10 s lease duration.
    pub busy_timeout: Duration,
    /// Connections in the pool. Defaults to 4: writes are serialized by SQLite anyway, more
    /// connections only let reads run beside them (WAL). `sqlite::memory:` always uses 1.
    pub max_connections: u32,
}

impl SqliteLeaseStoreConfig {
    /// The defaults for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        SqliteLeaseStoreConfig {
            url: url.into(),
            busy_timeout: Duration::from_secs(5),
            max_connections: 4,
        }
    }

    /// Sets [`busy_timeout`](Self::busy_timeout).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets [`max_connections`](Self::max_connections).
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections;
        self
    }

    /// True for an in-memory database, which lives only as long as its connection.
    pub(crate) fn is_in_memory(&self) -> bool {
        self.url.contains(":memory:") || self.url.contains("mode=memory")
    }

    /// Names the first field that is out of range.
    pub fn validate(&self) -> Result<(), Error> {
        if !self.url.starts_with("sqlite:") {
            return Err(Error::invalid(
                "database URL",
                format!(
                    "{:?} is not a SQLite URL (sqlite://path or sqlite::memory:)",
                    self.url
                ),
            ));
        }
        if self.max_connections == 0 {
            return Err(Error::invalid("max_connections", "must be at least 1"));
        }
        if self.busy_timeout.is_zero() {
            return Err(Error::invalid("busy_timeout", "must be longer than zero"));
        }
        Ok(())
    }
}
