//! The lease-store conformance suite against `SqliteLeaseStore`, each clause on its own file.

use std::path::PathBuf;
use std::sync::Arc;

use kcl_core::LeaseStore;
use kcl_store_sqlite::SqliteLeaseStore;

/// A fresh database file for `name` under Cargo's target tmp directory.
pub fn fresh_database(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kcl-store-sqlite");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let path = dir.join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    // The liveness lock files beside it.
    let _ = std::fs::remove_dir_all(format!("{}.liveness", path.display()));
    path
}

async fn store(clause: &'static str) -> Option<Arc<dyn LeaseStore>> {
    let path = fresh_database(clause);
    let store = SqliteLeaseStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", path.display()));
    Some(Arc::new(store))
}

kcl_core::lease_store_conformance_tests!(store);

/// The whole suite on an in-memory database (`sqlite::memory:`, one connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_in_memory() {
    let store = SqliteLeaseStore::connect("sqlite::memory:")
        .await
        .unwrap_or_else(|e| panic!("connecting to sqlite::memory: {e}"));
    kcl_core::lease_store_conformance::run_all(Arc::new(store)).await;
}
