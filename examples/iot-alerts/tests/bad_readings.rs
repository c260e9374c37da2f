//! Records that are not readings are counted and skipped: the processor never fails on them,
//! the shard goes on (a later reading still raises its alert) and the checkpoint moves past
//! them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iot_alerts::alerting::{
    Alert, AlertKind, AlertRules, AlertSettings, AlertSink, CheckpointPolicy, ProcessingStats,
    alert_processors,
};
use kcl_core::worker::{InitialPosition, Worker, WorkerConfig};
use kcl_core::{Checkpoint, InMemoryLeaseStore, LeaseStore, StreamName};
use kcl_engine::{Engine, EngineConfig, PutRecordsEntry, StreamOptions};

#[derive(Default)]
struct Collected(Mutex<Vec<Alert>>);

impl AlertSink for Collected {
    fn raise(&self, alert: &Alert) -> std::io::Result<()> {
        self.0.lock().expect("lock").push(alert.clone());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparseable_readings_are_skipped_and_never_block_the_shard() {
    let engine = Engine::open(EngineConfig::in_memory()).expect("engine");
    engine
        .create_stream("readings", StreamOptions::with_shards(1))
        .expect("stream");
    let bad: [&[u8]; 6] = [
        b"not json at all",
        &[0xff, 0x00, 0x13],
        br#"{"sensor":"sensor-1","ts":1000}"#,
        br#"{"sensor":"sensor-1","ts":"yesterday","celsius":20}"#,
        br#"{"sensor":"sensor-1","ts":1000,"celsius":"hot"}"#,
        br#"{"sensor":"sensor-1","ts":1000,"celsius":-500}"#,
    ];
    let mut entries: Vec<PutRecordsEntry> = vec![PutRecordsEntry::new(
        "sensor-1",
        r#"{"sensor":"sensor-1","ts":900,"celsius":21.0}"#,
    )];
    entries.extend(
        bad.iter()
            .map(|data| PutRecordsEntry::new("sensor-1", data.to_vec())),
    );
    entries.push(PutRecordsEntry::new(
        "sensor-1",
        r#"{"sensor":"sensor-1","ts":1100,"celsius":97.5}"#,
    ));
    let written = engine.put_records("readings", &entries).expect("put");
    let last = written
        .last()
        .and_then(|r| r.as_ref().ok())
        .expect("written")
        .sequence_number
        .clone();

    let sink = Arc::new(Collected::default());
    let stats = Arc::new(ProcessingStats::default());
    let store = Arc::new(InMemoryLeaseStore::new());
    let handle = Worker::builder()
        .stream("readings")
        .expect("stream name")
        .source(Arc::new(engine.clone()))
        .lease_store(Arc::clone(&store) as Arc<dyn LeaseStore>)
        .processor_factory(alert_processors(AlertSettings {
            rules: AlertRules::default(),
            sink: Arc::clone(&sink) as Arc<dyn AlertSink>,
            checkpoints: CheckpointPolicy {
                every_records: 1,
                every: Duration::from_secs(60),
            },
            stats: Arc::clone(&stats),
        }))
        .config(WorkerConfig::default().initial_position(InitialPosition::TrimHorizon))
        .build()
        .expect("worker")
        .start();

    let stream = StreamName::new("readings").expect("name");
    let started = Instant::now();
    let checkpointed = loop {
        let leases = store.list_leases(&stream).await.expect("leases");
        if leases
            .iter()
            .any(|lease| lease.checkpoint == Checkpoint::Sequence(last.clone()))
        {
            break true;
        }
        if started.elapsed() > Duration::from_secs(30) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let metrics = handle.metrics();
    handle.shutdown().await.expect("shutdown");

    assert!(checkpointed, "the checkpoint never passed the bad records");
    let counts = stats.snapshot();
    assert_eq!(
        counts.skipped,
        bad.len() as u64,
        "each bad record is counted once"
    );
    assert_eq!(counts.records, entries.len() as u64);
    assert_eq!(
        metrics.processor_failures, 0,
        "bad records never fail a batch"
    );
    let alerts = sink.0.lock().expect("lock").clone();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].alert, AlertKind::Overheat);
    assert_eq!(alerts[0].sensor, "sensor-1");
    assert_eq!(alerts[0].sequence_number, last.to_string());
}
