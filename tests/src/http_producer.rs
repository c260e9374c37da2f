//! A producer over the Kinesis API at a steady rate, remembering which records the server
//! acknowledged: those are the ones that must be processed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use tokio::task::JoinHandle;

use crate::producer::payload;

/// What the producer wrote.
#[derive(Debug, Default, Clone)]
pub struct Produced {
    /// Records the server acknowledged, as (key, n).
    pub acknowledged: BTreeSet<(String, u64)>,
    /// Records whose put failed or went unanswered (they may or may not be in the stream).
    pub unacknowledged: u64,
}

/// Writes `batch` records every `every` over `keys` keys, round robin, each key's records
/// numbered from 0 in write order. A record whose put fails is not retried (its number is not
/// reused), so every key's numbers still increase along its shard.
pub struct HttpProducer {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Produced>,
}

impl HttpProducer {
    /// Starts writing to `stream` through `client`.
    pub fn start(
        client: Client,
        stream: &str,
        keys: usize,
        batch: usize,
        every: Duration,
    ) -> HttpProducer {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let stream = stream.to_owned();
        let task = tokio::spawn(async move {
            let mut produced = Produced::default();
            let mut counts = vec![0u64; keys];
            let mut next_key = 0;
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stopped.load(Ordering::SeqCst) {
                ticks.tick().await;
                let mut written = Vec::with_capacity(batch);
                let mut entries = Vec::with_capacity(batch);
                for _ in 0..batch {
                    let key = format!("key-{next_key}");
                    let n = counts[next_key];
                    counts[next_key] += 1;
                    next_key = (next_key + 1) % keys;
                    entries.push(
                        PutRecordsRequestEntry::builder()
                            .partition_key(&key)
                            .data(Blob::new(payload(&key, n)))
                            .build()
                            .expect("a complete entry"),
                    );
                    written.push((key, n));
                }
                let sent = client
                    .put_records()
                    .stream_name(&stream)
                    .set_records(Some(entries))
                    .send()
                    .await;
                match sent {
                    Ok(output) => {
                        let unanswered = written.len().saturating_sub(output.records().len());
                        produced.unacknowledged += unanswered as u64;
                        for (result, record) in output.records().iter().zip(written) {
                            if result.error_code().is_none() && result.sequence_number().is_some() {
                                produced.acknowledged.insert(record);
                            } else {
                                produced.unacknowledged += 1;
                            }
                        }
                    }
                    Err(_) => produced.unacknowledged += batch as u64,
                }
            }
            produced
        });
        HttpProducer { stop, task }
    }

    /// Stops after the batch in flight and returns what was written.
    pub async fn stop(self) -> Produced {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the producer task")
    }
}
