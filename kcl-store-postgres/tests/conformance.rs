//! The lease-store conformance suite against `PostgresLeaseStore` on the local server, each
//! clause on its own table.

mod test_database;

use std::sync::Arc;

use kcl_core::LeaseStore;

async fn store(clause: &'static str) -> Option<Arc<dyn LeaseStore>> {
    let store = test_database::fresh_store(clause).await?;
    Some(Arc::new(store))
}

kcl_core::lease_store_conformance_tests!(store);

/// Every clause on one table, one after another: clauses keep to their own names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_table() {
    if let Some(store) = test_database::fresh_store("run_all_on_one_table").await {
        kcl_core::lease_store_conformance::run_all(Arc::new(store)).await;
    }
}
