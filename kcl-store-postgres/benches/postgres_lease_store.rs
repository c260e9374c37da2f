//! Fenced checkpoints per second and take/renew operations per second on `PostgresLeaseStore`
//! (the server at `KCL_TEST_POSTGRES_URL`, default the local one) with 1 and 8 concurrent
//! writers; `InMemoryLeaseStore` beside it for reference. Run: `cargo bench -p kcl-store-postgres`.

use std::sync::Arc;
use std::time::Duration;

use kcl_core::lease_store_load::{fenced_checkpoints, take_and_renew};
use kcl_core::{InMemoryLeaseStore, LeaseStore};
use kcl_store_postgres::{PostgresLeaseStore, PostgresLeaseStoreConfig};
use sqlx::{Connection, PgConnection};

const MEASURE: Duration = Duration::from_secs(3);
const TABLE: &str = "kcl_bench_leases";

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
    let url = std::env::var("KCL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut admin = PgConnection::connect(&url).await?;
        sqlx::raw_sql(
            "DROP TABLE IF EXISTS kcl_bench_leases, kcl_bench_leases_workers, \
             kcl_bench_leases_schema",
        )
        .execute(&mut admin)
        .await?;
        let store =
            PostgresLeaseStore::connect_with(PostgresLeaseStoreConfig::new(&url).table(TABLE))
                .await?;
        println!("| store | writers | fenced checkpoints/s | take+renew ops/s |");
        println!("| --- | --- | --- | --- |");
        measure("in-memory (reference)", Arc::new(InMemoryLeaseStore::new())).await?;
        measure("PostgreSQL (local server)", Arc::new(store)).await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
