//! `kcl-store-postgres`: the kcl-rs [`LeaseStore`](kcl_core::LeaseStore) on PostgreSQL, for
//! workers on many machines. Expiry is judged on the server's clock; every lease write is one
//! conditional statement; the table name is configurable so applications share a database.
//!
//! ```no_run
//! use std::time::Duration;
//! use kcl_core::{
//!     Checkpoint, CheckpointUpdate, LeaseKey, LeaseStore, NewLease, ShardId, StreamName,
//!     TakeMode, WorkerId,
//! };
//! use kcl_store_postgres::{PostgresLeaseStore, PostgresLeaseStoreConfig};
//!
//! # async fn example() -> Result<(), kcl_core::Error> {
//! let config = PostgresLeaseStoreConfig::new("postgres://postgres@127.0.0.1:5432/test")
//!     .table("billing_leases");
//! let store = PostgresLeaseStore::connect_with(config).await?; // creates the tables
//!
//! let key = LeaseKey::new(StreamName::new("orders")?, ShardId::from_index(0));
//! store.create_lease_if_absent(&NewLease::new(key.clone(), Checkpoint::TrimHorizon)).await?;
//! let me = WorkerId::unique("worker")?;
//! let lease = store.take_lease(&key, 0, &me, TakeMode::IfAvailable, Duration::from_secs(10)).await?;
//! let fence = lease.fence().ok_or(kcl_core::Error::invalid("lease", "unowned"))?;
//! store.checkpoint(&key, &fence, &CheckpointUpdate::commit(Checkpoint::sequence("42")?)).await?;
//! # Ok(())
//! # }
//! ```

mod batches;
mod census;
mod config;
mod error_mapping;
mod liveness;
mod migrations;
mod row_codec;
mod statements;
mod store;

pub use config::{MAX_TABLE_NAME_LEN, PostgresLeaseStoreConfig};
pub use store::PostgresLeaseStore;
