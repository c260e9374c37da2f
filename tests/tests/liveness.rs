//! Crash detection within one process, on the in-memory store's liveness: a crashed worker's
//! leases are taken at once rather than at expiry, and a worker whose liveness is lost while it
//! runs stops delivering and takes its leases back, fenced, once it holds liveness again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use kcl_core::worker::{
    Checkpointer, InitialPosition, ProcessRecordsInput, ProcessorError, RecordProcessor, ShardInfo,
    Worker, WorkerConfig, WorkerHandle,
};
use kcl_core::{InMemoryLeaseStore, LeaseKey, LeaseStore, SequenceNumber, ShardId, StreamName};
use kcl_engine::{Engine, EngineConfig, PutRecordsEntry, StreamOptions};

const STREAM: &str = "liveness";
const SHARDS: u64 = 4;
/// Long enough that a takeover at expiry could never pass for one by liveness.
const LEASE: Duration = Duration::from_secs(60);

fn config() -> WorkerConfig {
    WorkerConfig::default()
        .lease_duration(LEASE)
        .initial_position(InitialPosition::TrimHorizon)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
}

fn engine() -> Engine {
    let engine =
        Engine::open(EngineConfig::in_memory().read_wait(Duration::from_millis(50))).unwrap();
    engine
        .create_stream(STREAM, StreamOptions::with_shards(SHARDS))
        .unwrap();
    engine
}

/// Writes `count` records with each of 64 keys (so to every shard).
fn put(engine: &Engine, round: &str, count: usize) -> usize {
    for n in 0..count {
        for key in 0..64 {
            engine
                .put_record(
                    STREAM,
                    PutRecordsEntry::new(format!("key-{key}"), Bytes::from(format!("{round}-{n}"))),
                )
                .unwrap();
        }
    }
    count * 64
}

/// One `process_records` call: which processor instance (`run`) made it, when it began, and
/// what it got.
struct Batch {
    run: u64,
    began: Instant,
    shard: ShardId,
    records: Vec<SequenceNumber>,
}

#[derive(Default)]
struct Deliveries {
    batches: Mutex<Vec<Batch>>,
    runs: Mutex<Vec<(u64, Instant)>>,
}

impl Deliveries {
    fn records(&self) -> std::collections::BTreeSet<(ShardId, SequenceNumber)> {
        let batches = self.batches.lock().unwrap();
        batches
            .iter()
            .flat_map(|b| b.records.iter().map(|n| (b.shard.clone(), n.clone())))
            .collect()
    }
}

struct Recorder {
    run: u64,
    shard: ShardId,
    deliveries: Arc<Deliveries>,
}

#[async_trait]
impl RecordProcessor for Recorder {
    async fn process_records(
        &mut self,
        input: &ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let began = Instant::now();
        self.deliveries.batches.lock().unwrap().push(Batch {
            run: self.run,
            began,
            shard: self.shard.clone(),
            records: input
                .records
                .iter()
                .map(|r| r.sequence_number.clone())
                .collect(),
        });
        checkpointer.checkpoint().await?;
        Ok(())
    }
}

fn worker(
    engine: &Engine,
    store: &Arc<InMemoryLeaseStore>,
    deliveries: &Arc<Deliveries>,
) -> WorkerHandle {
    let deliveries = Arc::clone(deliveries);
    Worker::builder()
        .stream(STREAM)
        .unwrap()
        .source(Arc::new(engine.clone()))
        .lease_store(Arc::clone(store) as Arc<dyn LeaseStore>)
        .processor_factory(move |shard: &ShardInfo| -> Box<dyn RecordProcessor> {
            let mut runs = deliveries.runs.lock().unwrap();
            let run = runs.len() as u64;
            runs.push((run, Instant::now()));
            Box::new(Recorder {
                run,
                shard: shard.shard_id.clone(),
                deliveries: Arc::clone(&deliveries),
            })
        })
        .config(config())
        .build()
        .unwrap()
        .start()
}

/// Polls `condition` every 20 ms for up to `limit`.
async fn eventually(limit: Duration, condition: impl FnMut() -> bool) -> bool {
    kcl_tests::wait::poll_until(limit, Duration::from_millis(20), condition).await
}

async fn epochs(store: &InMemoryLeaseStore) -> Vec<(Option<String>, u64)> {
    let stream = StreamName::new(STREAM).unwrap();
    let mut epochs = Vec::new();
    for shard in 0..SHARDS {
        let key = LeaseKey::new(stream.clone(), ShardId::from_index(shard));
        let lease = store.get_lease(&key).await.unwrap().unwrap();
        epochs.push((lease.owner.map(|o| o.to_string()), lease.epoch));
    }
    epochs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_worker_is_taken_over_long_before_its_lease_expires() {
    let engine = engine();
    let store = Arc::new(InMemoryLeaseStore::new());
    let deliveries = Arc::new(Deliveries::default());
    let written = put(&engine, "before", 5);
    let victim = worker(&engine, &store, &deliveries);
    assert!(
        eventually(Duration::from_secs(30), || victim.held_shards().len()
            == SHARDS as usize)
        .await,
        "the first worker never held every shard"
    );
    let survivor = worker(&engine, &store, &deliveries);
    // The survivor's first cycle has seen the victim own every lease: it watches it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        survivor.held_shards().is_empty(),
        "nothing should have moved yet"
    );

    let crashed_at = Instant::now();
    victim.abort();
    let written = written + put(&engine, "after", 5);
    assert!(
        eventually(Duration::from_secs(30), || survivor.held_shards().len()
            == SHARDS as usize)
        .await,
        "the survivor never took the crashed worker's shards"
    );
    let took = crashed_at.elapsed();
    println!("a crashed worker's {SHARDS} shards were taken over in {took:?} (lease {LEASE:?})");
    assert!(
        took < LEASE / 2,
        "taken over only after {took:?}: at expiry, not by liveness"
    );
    assert_eq!(survivor.metrics().leases_taken_from_dead, SHARDS);
    assert!(
        eventually(Duration::from_secs(30), || deliveries.records().len()
            == written)
        .await,
        "{} of {written} records processed",
        deliveries.records().len()
    );
    survivor.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_liveness_is_revoked_stops_delivering_and_takes_its_leases_back() {
    let engine = engine();
    let store = Arc::new(InMemoryLeaseStore::new());
    let deliveries = Arc::new(Deliveries::default());
    let mut written = put(&engine, "before", 5);
    let handle = worker(&engine, &store, &deliveries);
    assert!(
        eventually(Duration::from_secs(30), || deliveries.records().len()
            == written)
        .await,
        "the first records were never processed"
    );
    let before = epochs(&store).await;
    let runs_before = deliveries.runs.lock().unwrap().len() as u64;

    // A producer keeps writing while the hold is lost and found again.
    let revoked_at = Instant::now();
    assert!(store.revoke_liveness(handle.id()));
    for round in 0..10 {
        written += put(&engine, &format!("during-{round}"), 1);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(
        eventually(Duration::from_secs(30), || deliveries.records().len()
            == written)
        .await,
        "{} of {written} records processed after the hold was lost",
        deliveries.records().len()
    );

    // Taken back by the same worker, each at the next epoch: the old consumers are fenced off.
    let after = epochs(&store).await;
    let me = Some(handle.id().to_string());
    for ((owner_before, epoch_before), (owner_after, epoch_after)) in before.iter().zip(&after) {
        assert_eq!(owner_before, &me);
        assert_eq!(
            owner_after, &me,
            "the worker carries on with its own leases"
        );
        assert!(
            epoch_after > epoch_before,
            "{before:?} → {after:?}: not taken back"
        );
    }
    // The processors from before the loss began no batch later than a freshness period (the
    // liveness interval) after it: each batch rides on a check begun less than that before it
    // was asked for, and every check begun after the revocation fails. (A margin covers the
    // moments between the check and the processor noting the batch.)
    {
        let period = config().liveness_interval;
        let margin = Duration::from_millis(200);
        let batches = deliveries.batches.lock().unwrap();
        for run in 0..runs_before {
            let late = batches
                .iter()
                .filter(|b| b.run == run && b.began > revoked_at + period + margin)
                .count();
            assert_eq!(
                late, 0,
                "run {run} began {late} batches more than {period:?} after its worker's \
                 liveness was lost"
            );
        }
    }
    handle.shutdown().await.unwrap();
}
