//! Writes records whose payload says which key wrote them and in what order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kcl_engine::{Engine, PutRecordsEntry};
use tokio::task::JoinHandle;

/// A record's payload: `key:n`, where `n` counts the key's records from 0.
pub fn payload(key: &str, n: u64) -> String {
    format!("{key}:{n}")
}

/// Reads back a payload written by [`payload`].
pub fn parse_payload(data: &[u8]) -> (String, u64) {
    let text = std::str::from_utf8(data).expect("utf-8 payload");
    let (key, n) = text.rsplit_once(':').expect("key:n payload");
    (key.to_owned(), n.parse().expect("counter"))
}

/// Writes batches of records over `keys` keys, round robin, until stopped.
pub struct Producer {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Vec<u64>>,
}

impl Producer {
    /// Starts writing `batch` records every `every` to `stream`.
    pub fn start(engine: Engine, stream: &str, keys: usize, batch: usize, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stream = stream.to_owned();
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut counts = vec![0u64; keys];
            let mut next_key = 0;
            while !stopped.load(Ordering::SeqCst) {
                let entries: Vec<PutRecordsEntry> = (0..batch)
                    .map(|_| {
                        let key = format!("key-{next_key}");
                        let entry =
                            PutRecordsEntry::new(key.clone(), payload(&key, counts[next_key]));
                        counts[next_key] += 1;
                        next_key = (next_key + 1) % keys;
                        entry
                    })
                    .collect();
                for result in engine.put_records(&stream, &entries).expect("put_records") {
                    result.expect("record accepted");
                }
                tokio::time::sleep(every).await;
            }
            counts
        });
        Producer { stop, task }
    }

    /// Stops and returns how many records each key got (`key-i` at index `i`).
    pub async fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("producer task")
    }
}
