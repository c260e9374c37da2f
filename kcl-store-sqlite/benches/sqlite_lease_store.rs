//! Fenced checkpoints per second and take/renew operations per second on `SqliteLeaseStore`
//! (a WAL database file) with 1 and 8 concurrent writers; `InMemoryLeaseStore` beside it for
//! reference. Run: `cargo bench -p kcl-store-sqlite`.

use std::sync::Arc;
use std::time::Duration;

use kcl_core::lease_store_load::{fenced_checkpoints, take_and_renew};
use kcl_core::{InMemoryLeaseStore, LeaseStore};
use kcl_store_sqlite::SqliteLeaseStore;

const MEASURE: Duration = Duration::from_secs(3);

async fn measure(name: &str, store: Arc<dyn LeaseStore>) -> Result<(), kcl_core::Error> {
    for writers in [1, 8] {
        let checkpoints = fenced_checkpoints(store.clone(), writers, MEASURE).await?;
        let take_renew = take_and_renew(store.clone(), writers, MEASURE).await?;
        println!(
            "| {name} | {writers} | {:.0} | {:.0} |",
            checkpoints.per_second(),
            take_renew.per_second()
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        println!("| store | writers | fenced checkpoints/s | take+renew ops/s |");
        println!("| --- | --- | --- | --- |");
        measure("in-memory (reference)", Arc::new(InMemoryLeaseStore::new())).await?;
        measure(
            "SQLite (WAL file)",
            Arc::new(SqliteLeaseStore::connect(&url).await?),
        )
        .await?;
        Ok(())
    })
}
