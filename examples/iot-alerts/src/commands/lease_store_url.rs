//! Opening the lease store a URL names.

use std::sync::Arc;

use kcl_core::LeaseStore;
use kcl_store_postgres::PostgresLeaseStore;
use kcl_store_sqlite::SqliteLeaseStore;

/// Opens (and migrates) the lease store at `url`: `sqlite://PATH` for processes on one machine,
/// `postgres://…` for processes on many.
pub async fn connect_lease_store(url: &str) -> Result<Arc<dyn LeaseStore>, String> {
    let opened: Result<Arc<dyn LeaseStore>, kcl_core::Error> = if url.starts_with("sqlite:") {
        SqliteLeaseStore::connect(url)
            .await
            .map(|store| Arc::new(store) as Arc<dyn LeaseStore>)
    } else {
        PostgresLeaseStore::connect(url)
            .await
            .map(|store| Arc::new(store) as Arc<dyn LeaseStore>)
    };
    opened.map_err(|error| format!("cannot open the lease store {url}: {error}"))
}
