//! Where the PostgreSQL lease store lives: URL, table name, pool.

use std::time::Duration;

use kcl_core::Error;

/// The longest table name accepted: PostgreSQL's 63-byte identifiers, less the `_workers`,
/// `_schema` and `_liveness` suffixes of the tables derived from it.
pub const MAX_TABLE_NAME_LEN: usize = 48;

/// Configuration of a [`PostgresLeaseStore`](crate::PostgresLeaseStore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresLeaseStoreConfig {
    /// `postgres://user[:password]@host[:port]/database[?options]`.
    pub url: String,
    /// The lease table; the worker table is `<table>_workers`, the liveness table
    /// `<table>_liveness` and the schema version table `<table>_schema`. Several applications share one database with one table each. 1–48
    /// characters of `[a-z0-9_]`, not starting with a digit. Defaults to `kcl_leases`.
    pub table: String,
    /// Connections in the pool. Defaults to 10: enough for a worker's renewer, taker and
    /// checkpointing shard consumers at once.
    pub max_connections: u32,
    /// How long an operation waits for a pooled connection (or a new one) before failing with
    /// the transient [`Error::Unavailable`]. Defaults to 10 s, KCL's lease duration.
    pub acquire_timeout: Duration,
    /// The `application_name` the store's sessions show in `pg_stat_activity`. Defaults to
    /// `kcl-rs`.
    pub application_name: String,
}

impl PostgresLeaseStoreConfig {
    /// The defaults for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresLeaseStoreConfig {
            url: url.into(),
            table: "kcl_leases".to_owned(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            application_name: "kcl-rs".to_owned(),
        }
    }

    /// Sets [`table`](Self::table).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Sets [`max_connections`](Self::max_connections).
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections;
        self
    }

    /// Sets [`acquire_timeout`](Self::acquire_timeout).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets [`application_name`](Self::application_name).
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// Names the first field that is out of range.
    pub fn validate(&self) -> Result<(), Error> {
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return Err(Error::invalid(
                "database URL",
                format!(
                    "{:?} is not a PostgreSQL URL (postgres://user@host:port/database)",
                    crate::error_mapping::redact(&self.url)
                ),
            ));
        }
        validate_table_name(&self.table)?;
        if self.max_connections == 0 {
            return Err(Error::invalid("max_connections", "must be at least 1"));
        }
        if self.acquire_timeout.is_zero() {
            return Err(Error::invalid(
                "acquire_timeout",
                "must be longer than zero",
            ));
        }
        Ok(())
    }
}

/// Table names are spliced into SQL (identifiers cannot be parameters), so only a safe
/// alphabet is accepted, and the name is quoted as well.
pub(crate) fn validate_table_name(table: &str) -> Result<(), Error> {
    let valid_start = table
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let valid_rest = table
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if table.is_empty() || table.len() > MAX_TABLE_NAME_LEN || !valid_start || !valid_rest {
        return Err(Error::invalid(
            "table",
            format!(
                "{table:?} is not 1-{MAX_TABLE_NAME_LEN} characters of [a-z0-9_] starting with a \
                 letter or _"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_a_safe_alphabet() {
        for good in ["kcl_leases", "_x", "app2_leases"] {
            assert!(validate_table_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "Leases",
            "a-b",
            "a\"b",
            "a;drop",
            "a b",
            &"x".repeat(49),
        ] {
            assert!(
                matches!(
                    validate_table_name(bad),
                    Err(Error::InvalidArgument { field: "table", .. })
                ),
                "{bad:?}"
            );
        }
    }
}
