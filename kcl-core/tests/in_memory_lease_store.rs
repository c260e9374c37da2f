//! The lease-store conformance suite against the reference backend, `InMemoryLeaseStore`.

use std::sync::Arc;

use kcl_core::{InMemoryLeaseStore, LeaseStore};

async fn store(_clause: &'static str) -> Option<Arc<dyn LeaseStore>> {
    Some(Arc::new(InMemoryLeaseStore::new()))
}

kcl_core::lease_store_conformance_tests!(store);

/// Every clause, one after another, on one shared store: clauses keep to their own names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_store() {
    kcl_core::lease_store_conformance::run_all(Arc::new(InMemoryLeaseStore::new())).await;
}
