//! Writing records to a stream: in-process to the engine, or through the Kinesis API.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use kcl_engine::{Engine, PutRecordsEntry};

use super::OutgoingRecord;

/// The most records one write carries (PutRecords' limit).
pub const MAX_RECORDS_PER_WRITE: usize = 500;

/// Writes batches of records to one stream.
#[async_trait]
pub trait RecordWriter: Send + Sync {
    /// Writes up to [`MAX_RECORDS_PER_WRITE`] records: every one, or an error saying why not.
    async fn write(&self, records: &[OutgoingRecord]) -> Result<(), String>;
}

/// Writes to an engine in this process.
pub struct EngineWriter {
    engine: Engine,
    stream: String,
}

impl EngineWriter {
    /// A writer to `stream` of `engine`.
    pub fn new(engine: Engine, stream: &str) -> Self {
        EngineWriter {
            engine,
            stream: stream.to_owned(),
        }
    }
}

#[async_trait]
impl RecordWriter for EngineWriter {
    async fn write(&self, records: &[OutgoingRecord]) -> Result<(), String> {
        let entries: Vec<PutRecordsEntry> = records
            .iter()
            .map(|record| PutRecordsEntry::new(record.partition_key.clone(), record.data.clone()))
            .collect();
        // A put returns once the records reached the operating system (group commit fsyncs
        // later), a matter of microseconds: no need to leave the async thread.
        let results = self
            .engine
            .put_records(&self.stream, &entries)
            .map_err(|error| format!("writing to {}: {error}", self.stream))?;
        for result in results {
            result.map_err(|error| format!("writing to {}: {error}", self.stream))?;
        }
        Ok(())
    }
}

/// Writes through the Kinesis API (`kcl engine serve`, or Kinesis), retrying throttled and
/// failed records with backoff.
pub struct KinesisWriter {
    client: aws_sdk_kinesis::Client,
    stream: String,
}

/// Attempts per batch before giving up.
const ATTEMPTS: u32 = 8;

impl KinesisWriter {
    /// A writer to `stream` through `client`.
    pub fn new(client: aws_sdk_kinesis::Client, stream: &str) -> Self {
        KinesisWriter {
            client,
            stream: stream.to_owned(),
        }
    }
}

#[async_trait]
impl RecordWriter for KinesisWriter {
    async fn write(&self, records: &[OutgoingRecord]) -> Result<(), String> {
        let mut pending: Vec<PutRecordsRequestEntry> = records
            .iter()
            .map(|record| {
                PutRecordsRequestEntry::builder()
                    .partition_key(record.partition_key.clone())
                    .data(Blob::new(record.data.to_vec()))
                    .build()
                    .map_err(|error| format!("a record cannot be sent: {error}"))
            })
            .collect::<Result<_, _>>()?;
        let mut last_problem = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
            }
            let sent = self
                .client
                .put_records()
                .stream_name(&self.stream)
                .set_records(Some(pending.clone()))
                .send()
                .await;
            let output = match sent {
                Ok(output) => output,
                Err(error) => {
                    last_problem = format!("PutRecords failed: {}", DisplayErrorContext(&error));
                    tracing::warn!(attempt, "{last_problem}; retrying");
                    continue;
                }
            };
            if output.failed_record_count().unwrap_or(0) == 0 {
                return Ok(());
            }
            // Results come in request order; keep the failed records for the next attempt.
            let mut failed = Vec::new();
            for (entry, result) in pending.into_iter().zip(output.records()) {
                if let Some(code) = result.error_code() {
                    last_problem =
                        format!("{code}: {}", result.error_message().unwrap_or("no message"));
                    failed.push(entry);
                }
            }
            pending = failed;
        }
        Err(format!(
            "records still failing after {ATTEMPTS} attempts: {last_problem}"
        ))
    }
}
