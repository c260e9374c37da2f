//! What the source tests share: the engine's server on an ephemeral port, records to read, a
//! quick configuration, and faults between the SDK and the server.
#![allow(dead_code)]

pub mod faults;

use std::net::SocketAddr;
use std::time::Duration;

use kcl_engine::http::{HttpConfig, KinesisServer};
use kcl_engine::{Engine, PutRecordsEntry};
use kcl_kinesis::{BackoffConfig, KinesisSourceConfig};

/// Serves `engine` on an ephemeral port until the returned sender is used or dropped; returns
/// the endpoint URL.
pub async fn serve(
    engine: Engine,
    config: HttpConfig,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let server = KinesisServer::bind(engine, config.listen(SocketAddr::from(([127, 0, 0, 1], 0))))
        .await
        .expect("bind");
    let endpoint = server.endpoint_url();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    (endpoint, stop)
}

/// Writes `count` records to `stream`, with data `{prefix}-{i}`.
pub fn put(engine: &Engine, stream: &str, prefix: &str, count: usize) {
    let entries: Vec<PutRecordsEntry> = (0..count)
        .map(|i| PutRecordsEntry::new(format!("key-{i}"), format!("{prefix}-{i}")))
        .collect();
    for result in engine.put_records(stream, &entries).expect("put") {
        result.expect("record accepted");
    }
}

/// Short idle polls and backoff pauses, three retries per call.
pub fn quick() -> KinesisSourceConfig {
    KinesisSourceConfig::default()
        .idle_poll_interval(Duration::from_millis(20))
        .backoff(BackoffConfig {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(50),
            max_retries: 3,
        })
}

/// The data of `records`, as text.
pub fn data(records: &[kcl_core::Record]) -> Vec<String> {
    records
        .iter()
        .map(|record| String::from_utf8_lossy(&record.data).into_owned())
        .collect()
}
