//! Lease stores to run the worker against.

use std::sync::Arc;

use kcl_core::{InMemoryLeaseStore, LeaseStore};
use kcl_store_sqlite::SqliteLeaseStore;

/// The lease stores the worker tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `InMemoryLeaseStore`.
    InMemory,
    /// `SqliteLeaseStore` on a temporary file.
    Sqlite,
}

/// A store of `kind`, with what keeps it alive (the SQLite file's directory).
pub struct TestStore {
    /// The store.
    pub store: Arc<dyn LeaseStore>,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    /// Opens a fresh, empty store.
    pub async fn open(kind: StoreKind) -> TestStore {
        match kind {
            StoreKind::InMemory => TestStore {
                store: Arc::new(InMemoryLeaseStore::new()),
                _dir: None,
            },
            StoreKind::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}", dir.path().join("leases.db").display());
                let store = SqliteLeaseStore::connect(&url).await.expect("SQLite store");
                TestStore {
                    store: Arc::new(store),
                    _dir: Some(dir),
                }
            }
        }
    }
}
