//! `kcl-store-sqlite`: the kcl-rs [`LeaseStore`](kcl_core::LeaseStore) on SQLite, the embedded
//! default. One database file holds the lease table of an application; several worker processes
//! on one machine share it safely.
//!
//! ```
//! use std::time::Duration;
//! use kcl_core::{
//!     Checkpoint, CheckpointUpdate, LeaseKey, LeaseStore, NewLease, ShardId, StreamName,
//!     TakeMode, WorkerId,
//! };
//! use kcl_store_sqlite::SqliteLeaseStore;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let url = format!("sqlite://{}", dir.path().join("leases.db").display());
//! let store = SqliteLeaseStore::connect(&url).await?; // creates the file and the schema
//!
//! let key = LeaseKey::new(StreamName::new("orders")?, ShardId::from_index(0));
//! store.create_lease_if_absent(&NewLease::new(key.clone(), Checkpoint::TrimHorizon)).await?;
//! let me = WorkerId::unique("worker")?;
//! let lease = store.take_lease(&key, 0, &me, TakeMode::IfAvailable, Duration::from_secs(10)).await?;
//! let fence = lease.fence().ok_or(kcl_core::Error::invalid("lease", "unowned"))?;
//! store.checkpoint(&key, &fence, &CheckpointUpdate::commit(Checkpoint::sequence("42")?)).await?;
//!
//! // A worker that lost the lease can never checkpoint again.
//! let thief = WorkerId::unique("thief")?;
//! store.take_lease(&key, lease.epoch, &thief, TakeMode::Steal, Duration::from_secs(10)).await?;
//! let late = CheckpointUpdate::commit(Checkpoint::sequence("43")?);
//! let refused = store.checkpoint(&key, &fence, &late).await;
//! assert!(matches!(refused, Err(kcl_core::Error::LeaseLost { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod error_mapping;
mod liveness;
mod migrations;
mod row_codec;
mod store;

pub use config::SqliteLeaseStoreConfig;
pub use store::SqliteLeaseStore;
