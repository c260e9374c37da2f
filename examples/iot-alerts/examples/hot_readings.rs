//! The README tour's `RecordProcessor`: the smallest useful processor, run as one of several
//! workers against `kcl engine serve`. The README quotes the part between the `tour` markers;
//! a test keeps the two the same.
//!
//! `cargo run -p iot-alerts --example hot_readings -- http://127.0.0.1:4567`

// tour: start
use std::sync::Arc;

use async_trait::async_trait;
use kcl_core::worker::{
    Checkpointer, InitialPosition, ProcessRecordsInput, ProcessorError, RecordProcessor, ShardInfo,
    Worker, WorkerConfig,
};
use kcl_kinesis::KinesisSource;
use kcl_store_sqlite::SqliteLeaseStore;

/// Prints the readings above 80 °C of one shard.
struct HotReadings {
    shard: ShardInfo,
}

#[async_trait]
impl RecordProcessor for HotReadings {
    async fn process_records(
        &mut self,
        input: &ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        for record in &input.records {
            // A record that is not JSON is skipped: one bad sensor must not block the shard.
            let Ok(reading) = serde_json::from_slice::<serde_json::Value>(&record.data) else {
                continue;
            };
            if reading["celsius"]
                .as_f64()
                .is_some_and(|celsius| celsius > 80.0)
            {
                println!("{} {reading}", self.shard.shard_id);
            }
        }
        // Done up to the batch's last record: after a crash, processing resumes after it.
        checkpointer.checkpoint().await?;
        Ok(())
    }

    // shard_ended and shutdown_requested: the defaults checkpoint what was processed (SHARD_END
    // at the end of a split or merged shard, which lets its children start).
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or("http://127.0.0.1:4567".into());
    let worker = Worker::builder()
        .stream("readings")?
        .source(Arc::new(KinesisSource::local(&endpoint)))
        .lease_store(Arc::new(
            SqliteLeaseStore::connect("sqlite://hot-leases.db").await?,
        ))
        .processor_factory(|shard: &ShardInfo| -> Box<dyn RecordProcessor> {
            Box::new(HotReadings {
                shard: shard.clone(),
            })
        })
        .config(WorkerConfig::default().initial_position(InitialPosition::TrimHorizon))
        .build()?;
    let handle = worker.start();
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await?; // checkpoints and releases every lease at once
    Ok(())
}
// tour: end
