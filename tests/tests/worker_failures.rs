//! Regression tests for the ways a worker could lose, repeat or stall records when the
//! application or the stream misbehaves: a failed batch at shutdown, a panicking processor
//! factory, a merge racing its parents, a shard expired by retention, and LATEST resolved again
//! by a new owner, a consumer restarted from a stale listing, a finished lease deleted while its
//! shard was still listed, a lease stolen after a handoff timeout from an owner whose renewal
//! replies were lost (so it kept delivering). Each one failed before its fix.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use kcl_core::worker::{
    Checkpointer, InitialPosition, InitializeInput, ProcessRecordsInput, ProcessorError,
    RecordProcessor, ShardInfo, Worker, WorkerConfig, WorkerHandle, process_with,
};
use kcl_core::{
    Checkpoint, FaultInjectingLeaseStore, InMemoryLeaseStore, LeaseKey, LeaseStore,
    LeaseStoreFault, LeaseStoreOp, NewLease, SequenceNumber, ShardId, StreamName,
};
use kcl_engine::{Engine, EngineConfig, ManualClock, PutRecordsEntry, StreamOptions};

const STREAM: &str = "failures";

fn config() -> WorkerConfig {
    WorkerConfig::default()
        .lease_duration(Duration::from_millis(900))
        .taker_interval(Duration::from_millis(200))
        .handoff_timeout(Duration::from_secs(2))
        .initial_position(InitialPosition::TrimHorizon)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
}

fn engine() -> Engine {
    Engine::open(EngineConfig::in_memory().read_wait(Duration::from_millis(50))).unwrap()
}

fn worker(
    engine: &Engine,
    store: &Arc<InMemoryLeaseStore>,
    config: WorkerConfig,
    factory: impl kcl_core::worker::RecordProcessorFactory + 'static,
) -> WorkerHandle {
    worker_on(
        engine,
        Arc::clone(store) as Arc<dyn LeaseStore>,
        config,
        factory,
    )
}

/// A worker on any lease store (a fault-injecting one, say).
fn worker_on(
    engine: &Engine,
    store: Arc<dyn LeaseStore>,
    config: WorkerConfig,
    factory: impl kcl_core::worker::RecordProcessorFactory + 'static,
) -> WorkerHandle {
    Worker::builder()
        .stream(STREAM)
        .unwrap()
        .source(Arc::new(engine.clone()))
        .lease_store(store)
        .processor_factory(factory)
        .config(config)
        .build()
        .unwrap()
        .start()
}

/// An engine on a clock the test moves, with the stream at one shard and 24 hours' retention.
fn engine_on_manual_clock() -> (Engine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let engine = Engine::open(
        EngineConfig::in_memory()
            .read_wait(Duration::from_millis(50))
            .clock(Arc::clone(&clock) as Arc<dyn kcl_engine::Clock>),
    )
    .unwrap();
    engine
        .create_stream(STREAM, StreamOptions::with_shards(1).retention_hours(24))
        .unwrap();
    (engine, clock)
}

/// Writes `count` records with `key` (so to one shard), returning their sequence numbers.
fn put(engine: &Engine, key: &str, count: usize) -> Vec<SequenceNumber> {
    (0..count)
        .map(|n| {
            engine
                .put_record(
                    STREAM,
                    PutRecordsEntry::new(key, Bytes::from(format!("{key}-{n}"))),
                )
                .unwrap()
                .sequence_number
        })
        .collect()
}

/// A key whose hash lands in the upper or lower half of the key space.
fn key_in_half(upper: bool) -> String {
    (0..)
        .map(|n| format!("key-{n}"))
        .find(|key| (kcl_core::HashKey::of_partition_key(key).0 >> 127 == 1) == upper)
        .unwrap()
}

async fn lease(store: &InMemoryLeaseStore, shard: u64) -> Option<kcl_core::Lease> {
    lease_in(store, shard).await
}

async fn lease_in(store: &dyn LeaseStore, shard: u64) -> Option<kcl_core::Lease> {
    let key = LeaseKey::new(StreamName::new(STREAM).unwrap(), ShardId::from_index(shard));
    store.get_lease(&key).await.unwrap()
}

/// Polls `condition` every 20 ms for up to `limit`.
async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

/// Records which shard got which record, in delivery order.
type Seen = Arc<Mutex<Vec<(ShardId, SequenceNumber)>>>;

fn seen_on(seen: &Seen, shard: u64) -> Vec<SequenceNumber> {
    let shard = ShardId::from_index(shard);
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| s == &shard)
        .map(|(_, n)| n.clone())
        .collect()
}

/// Hole 1: a batch whose processing failed must not be checkpointed by `shutdown_requested`
/// (here `process_with`'s, which checkpoints unchecked records) when a shutdown arrives during
/// the retry backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_is_not_checkpointed_at_shutdown() {
    let engine = engine();
    engine
        .create_stream(STREAM, StreamOptions::with_shards(1))
        .unwrap();
    let written = put(&engine, "sensor", 10);
    let store = Arc::new(InMemoryLeaseStore::new());
    let failures = Arc::new(Mutex::new(0_u32));
    let failed = Arc::clone(&failures);
    let poison = written[5].clone();
    let handle = worker(
        &engine,
        &store,
        config()
            .max_records_per_batch(5)
            .backoff(Duration::from_secs(5), Duration::from_secs(5)),
        process_with(move |_shard, records| {
            if records.iter().any(|r| r.sequence_number == poison) {
                *failed.lock().unwrap() += 1;
                return Err("cannot process this batch".into());
            }
            Ok(())
        }),
    );
    assert!(
        eventually(Duration::from_secs(20), || *failures.lock().unwrap() > 0).await,
        "the second batch was never delivered"
    );
    handle.shutdown().await.unwrap();
    let checkpoint = lease(&store, 0).await.unwrap().checkpoint;
    assert_eq!(
        checkpoint,
        Checkpoint::Sequence(written[4].clone()),
        "the checkpoint must stop at the last record of the last batch that succeeded"
    );
}

/// A processor that remembers what it saw, optionally slowly on one shard.
struct Recorder {
    shard: ShardId,
    seen: Seen,
    slow_shard: Option<ShardId>,
}

#[async_trait]
impl RecordProcessor for Recorder {
    async fn process_records(
        &mut self,
        input: &ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        if self.slow_shard.as_ref() == Some(&self.shard) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.seen.lock().unwrap().extend(
            input
                .records
                .iter()
                .map(|record| (self.shard.clone(), record.sequence_number.clone())),
        );
        checkpointer.checkpoint().await?;
        Ok(())
    }
}

fn recorder(
    seen: &Seen,
    slow_shard: Option<u64>,
) -> impl Fn(&ShardInfo) -> Box<dyn RecordProcessor> + Send + Sync + 'static {
    let seen = Arc::clone(seen);
    move |shard: &ShardInfo| -> Box<dyn RecordProcessor> {
        Box::new(Recorder {
            shard: shard.shard_id.clone(),
            seen: Arc::clone(&seen),
            slow_shard: slow_shard.map(ShardId::from_index),
        })
    }
}

/// A factory that panics the first time it is called and makes processors with `make` after.
fn panics_first(
    make: impl Fn(&ShardInfo) -> Box<dyn RecordProcessor> + Send + Sync + 'static,
) -> impl Fn(&ShardInfo) -> Box<dyn RecordProcessor> + Send + Sync + 'static {
    let calls = std::sync::atomic::AtomicU32::new(0);
    move |shard: &ShardInfo| -> Box<dyn RecordProcessor> {
        if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            panic!("the factory failed");
        }
        make(shard)
    }
}

/// Hole 5: a processor factory that panics must not leave the lease held and renewed with
/// nobody processing it; the shard is processed once the factory works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_factory_does_not_strand_its_lease() {
    let engine = engine();
    engine
        .create_stream(STREAM, StreamOptions::with_shards(1))
        .unwrap();
    let written = put(&engine, "sensor", 3);
    let store = Arc::new(InMemoryLeaseStore::new());
    let seen: Seen = Arc::default();
    let handle = worker(
        &engine,
        &store,
        config(),
        panics_first(recorder(&seen, None)),
    );
    let processed = eventually(Duration::from_secs(20), || {
        seen_on(&seen, 0).len() >= written.len()
    })
    .await;
    handle.shutdown().await.unwrap();
    assert!(processed, "the shard was never processed after the panic");
}

/// A lease whose release keeps failing (the store refuses it for longer than the retries last)
/// is left to expire, which moves no change number: the worker looks for it at once and takes
/// it back, rather than at its next census read six lease durations on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_left_behind_by_a_failed_release_is_taken_back_soon() {
    let engine = engine();
    engine
        .create_stream(STREAM, StreamOptions::with_shards(1))
        .unwrap();
    let written = put(&engine, "sensor", 3);
    let store = Arc::new(FaultInjectingLeaseStore::new(Arc::new(
        InMemoryLeaseStore::new(),
    )));
    // Every release fails: the first consumer's (its factory panics) leaves the lease behind.
    store.fail_next(
        Some(LeaseStoreOp::ReleaseLease),
        LeaseStoreFault::Unavailable,
        usize::MAX,
    );
    let seen: Seen = Arc::default();
    let lease = Duration::from_secs(3);
    let started = Instant::now();
    let handle = worker_on(
        &engine,
        Arc::clone(&store) as Arc<dyn LeaseStore>,
        config().lease_duration(lease),
        panics_first(recorder(&seen, None)),
    );
    // The release is retried for a lease duration, the lease then expires: taken back within a
    // few seconds more. Without the look-back, the next census read comes six lease durations
    // (18 s) after the last.
    let processed = eventually(lease * 4, || seen_on(&seen, 0).len() >= written.len()).await;
    let took = started.elapsed();
    let _ = handle.shutdown().await;
    assert!(
        processed,
        "the lease left behind was not taken back within {:?} (after {took:?})",
        lease * 4
    );
}

/// Hole 6: a shard split, and one child merged with the neighbour, faster than shard sync and
/// while the split shard is still being processed. The merge child must wait for both parents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_child_waits_for_both_parents() {
    let engine = engine();
    engine
        .create_stream(STREAM, StreamOptions::with_shards(2))
        .unwrap();
    let lower = key_in_half(false);
    let upper = key_in_half(true);
    let store = Arc::new(InMemoryLeaseStore::new());
    let seen: Seen = Arc::default();
    // Shard 0 (the lower half) is slow: it has 40 batches of one record to get through.
    let handle = worker(
        &engine,
        &store,
        config()
            .max_records_per_batch(1)
            .shard_sync_interval(Duration::from_secs(600)),
        recorder(&seen, Some(0)),
    );
    assert!(
        eventually(Duration::from_secs(20), || handle.held_shards().len() == 2).await,
        "the worker never took both shards"
    );
    put(&engine, &lower, 40);
    put(&engine, &upper, 3);
    // Split shard 0 (lower half) at its middle: shard 2 (lowest quarter) and shard 3 (second
    // quarter); then merge shard 3 with shard 1 (the upper half) into shard 4.
    let quarter = (1_u128 << 126).to_string();
    engine
        .split_shard(STREAM, "shardId-000000000000", &quarter)
        .unwrap();
    engine
        .merge_shards(STREAM, "shardId-000000000003", "shardId-000000000001")
        .unwrap();
    // Shard 4 holds the upper key's records now.
    put(&engine, &upper, 3);
    assert!(
        eventually(Duration::from_secs(30), || seen_on(&seen, 4).len() == 3).await,
        "the merge child was never processed"
    );
    let order = seen.lock().unwrap().clone();
    handle.shutdown().await.unwrap();
    let first_child = order
        .iter()
        .position(|(shard, _)| shard == &ShardId::from_index(4))
        .unwrap();
    let grandparent_before = order[..first_child]
        .iter()
        .filter(|(shard, _)| shard == &ShardId::from_index(0))
        .count();
    assert_eq!(
        grandparent_before, 40,
        "shard 4 started before its parent shard 3's own parent, shard 0, was finished"
    );
}

/// Hole 4: a closed shard that retention removed while its lease still had records to go must
/// end, so that its children start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_shard_removed_by_retention_lets_its_children_start() {
    let (engine, clock) = engine_on_manual_clock();
    put(&engine, "sensor", 5);
    let store = Arc::new(InMemoryLeaseStore::new());
    // A lease for shard 0 from an earlier run, before its end.
    let key = LeaseKey::new(StreamName::new(STREAM).unwrap(), ShardId::from_index(0));
    store
        .create_lease_if_absent(&NewLease::new(key, Checkpoint::TrimHorizon))
        .await
        .unwrap();
    engine
        .split_shard(STREAM, "shardId-000000000000", &(1_u128 << 127).to_string())
        .unwrap();
    clock.advance(Duration::from_secs(25 * 3600));
    engine.enforce_retention().unwrap();
    let children = put(&engine, "sensor", 3);
    let seen: Seen = Arc::default();
    let handle = worker(&engine, &store, config(), recorder(&seen, None));
    let processed = eventually(Duration::from_secs(20), || {
        seen.lock().unwrap().len() >= children.len()
    })
    .await;
    handle.shutdown().await.unwrap();
    assert!(
        processed,
        "the children never started: their parent's lease waits for a shard that is gone"
    );
}

/// A finished parent's lease is what tells a shard sync that the shard was processed: it stays,
/// at SHARD_END, while the stream lists the shard, and goes once retention removed the shard.
/// Deleted as soon as the children started, a sync whose shard listing lagged the lease table
/// leased the parent again and processed it after its children (found by the simulation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_lease_stays_until_its_shard_leaves_the_stream() {
    let (engine, clock) = engine_on_manual_clock();
    let parent = put(&engine, "sensor", 5);
    engine
        .split_shard(STREAM, "shardId-000000000000", &(1_u128 << 127).to_string())
        .unwrap();
    let children = [
        put(&engine, &key_in_half(false), 3),
        put(&engine, &key_in_half(true), 3),
    ];
    let store = Arc::new(InMemoryLeaseStore::new());
    let seen: Seen = Arc::default();
    let sync = Duration::from_millis(100);
    let handle = worker(
        &engine,
        &store,
        config().shard_sync_interval(sync),
        recorder(&seen, None),
    );
    let all = parent.len() + children.iter().map(Vec::len).sum::<usize>();
    assert!(
        eventually(Duration::from_secs(20), || seen.lock().unwrap().len()
            >= all)
        .await,
        "the shard and its children were not all processed: {:?}",
        seen.lock().unwrap()
    );
    // Several shard syncs and cleanups later the parent's lease is still there, finished.
    tokio::time::sleep(sync * 10).await;
    assert_eq!(
        lease(&store, 0).await.map(|lease| lease.checkpoint),
        Some(Checkpoint::ShardEnd),
        "the finished parent's lease must stay while the stream lists its shard"
    );
    // Retention removes the closed shard; the next cleanup deletes its lease, for good.
    clock.advance(Duration::from_secs(25 * 3600));
    engine.enforce_retention().unwrap();
    let mut gone = false;
    for _ in 0..1000 {
        if lease(&store, 0).await.is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        gone,
        "the lease of a shard retention removed was never deleted"
    );
    tokio::time::sleep(sync * 10).await;
    assert!(
        lease(&store, 0).await.is_none(),
        "the deleted lease came back"
    );
    handle.shutdown().await.unwrap();
    assert_eq!(
        seen_on(&seen, 0),
        parent,
        "the parent was processed once, in order"
    );
}

/// A processor that takes the first batch it gets and never returns from it: a worker that
/// received records and died before finishing them.
struct Stuck;

#[async_trait]
impl RecordProcessor for Stuck {
    async fn process_records(
        &mut self,
        _input: &ProcessRecordsInput,
        _checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        std::future::pending::<()>().await;
        Ok(())
    }
}

/// Hole 10: a lease created at LATEST is pinned where LATEST was then; a new owner after a crash
/// starts there, not at a LATEST of its own that skips what the first owner never finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_is_pinned_when_the_lease_is_created() {
    let engine = engine();
    engine
        .create_stream(STREAM, StreamOptions::with_shards(1))
        .unwrap();
    put(&engine, "sensor", 2);
    let store = Arc::new(InMemoryLeaseStore::new());
    let latest = config().initial_position(InitialPosition::Latest);
    let first = worker(&engine, &store, latest.clone(), |_: &ShardInfo| {
        Box::new(Stuck) as Box<dyn RecordProcessor>
    });
    assert!(
        eventually(Duration::from_secs(20), || first.held_shards().len() == 1).await,
        "the first worker never took the shard"
    );
    // Give the first owner's reader time to open at LATEST, then write what it will never finish.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = put(&engine, "sensor", 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.abort();
    let seen: Seen = Arc::default();
    let second = worker(&engine, &store, latest, recorder(&seen, None));
    let processed = eventually(Duration::from_secs(20), || {
        seen_on(&seen, 0).len() >= after.len()
    })
    .await;
    let got = seen_on(&seen, 0);
    second.shutdown().await.unwrap();
    assert!(
        processed,
        "records written after the lease was created were skipped: got {got:?}, wrote {after:?}"
    );
    assert_eq!(
        got, after,
        "only the records written after LATEST, in order"
    );
}

/// A processor that fails to initialize the first time, after holding up the worker's next
/// lease listing (taken now, answered later): by the time the taker reads it, this worker has
/// released the lease the listing shows it holding.
struct ReleasesUnderAStaleListing {
    store: Arc<FaultInjectingLeaseStore>,
    first: bool,
    recorder: Recorder,
    out_of_lease: Arc<Mutex<Vec<u64>>>,
}

#[async_trait]
impl RecordProcessor for ReleasesUnderAStaleListing {
    async fn initialize(&mut self, _input: InitializeInput) -> Result<(), ProcessorError> {
        if self.first {
            self.store.fail_next(
                Some(LeaseStoreOp::ListLeases),
                LeaseStoreFault::SlowReply,
                1,
            );
            let held =
                eventually(Duration::from_secs(10), || self.store.hanging_calls() == 1).await;
            assert!(held, "the worker never listed its leases");
            return Err("initialization failed".into());
        }
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: &ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let lease = self.store.inner().get_lease(checkpointer.lease()).await?;
        if lease
            .is_none_or(|lease| lease.owner.is_none() || lease.epoch != checkpointer.lease_epoch())
        {
            self.out_of_lease
                .lock()
                .unwrap()
                .push(checkpointer.lease_epoch());
        }
        self.recorder.process_records(input, checkpointer).await
    }
}

/// Hole 8: the taker must not start a consumer from a listing that went stale during its cycle
/// (here: the lease was released meanwhile by this worker's own consumer), which would process
/// records on a lease nobody holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_listing_does_not_restart_a_released_lease() {
    let engine = engine();
    engine
        .create_stream(STREAM, StreamOptions::with_shards(1))
        .unwrap();
    let written = put(&engine, "sensor", 3);
    let inner = Arc::new(InMemoryLeaseStore::new());
    let store = Arc::new(FaultInjectingLeaseStore::new(
        Arc::clone(&inner) as Arc<dyn LeaseStore>
    ));
    let seen: Seen = Arc::default();
    let out_of_lease: Arc<Mutex<Vec<u64>>> = Arc::default();
    let processors = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let factory = {
        let (store, seen, out_of_lease) = (
            Arc::clone(&store),
            Arc::clone(&seen),
            Arc::clone(&out_of_lease),
        );
        move |shard: &ShardInfo| -> Box<dyn RecordProcessor> {
            Box::new(ReleasesUnderAStaleListing {
                store: Arc::clone(&store),
                first: processors.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0,
                recorder: Recorder {
                    shard: shard.shard_id.clone(),
                    seen: Arc::clone(&seen),
                    slow_shard: None,
                },
                out_of_lease: Arc::clone(&out_of_lease),
            })
        }
    };
    let handle = worker_on(
        &engine,
        Arc::clone(&store) as Arc<dyn LeaseStore>,
        config().lease_duration(Duration::from_secs(3)),
        factory,
    );
    // Once the failed consumer has released the lease and let it go, the held-up listing
    // (which shows the lease still held by this worker) is answered.
    let released = eventually(Duration::from_secs(20), || {
        store.hanging_calls() == 1 && handle.held_shards().is_empty()
    })
    .await;
    assert!(released, "the first consumer never released its lease");
    let unowned = eventually_async(Duration::from_secs(10), || async {
        lease_in(inner.as_ref(), 0)
            .await
            .is_some_and(|lease| lease.owner.is_none())
    })
    .await;
    assert!(unowned, "the lease was never released in the store");
    store.release_hangs();
    let processed = eventually(Duration::from_secs(20), || {
        seen_on(&seen, 0).len() >= written.len()
    })
    .await;
    handle.shutdown().await.unwrap();
    assert!(processed, "the shard was never processed");
    assert_eq!(
        *out_of_lease.lock().unwrap(),
        Vec::<u64>::new(),
        "records were delivered at epochs the worker did not hold (restarted from a stale listing)"
    );
}

/// Polls an async `condition` every 20 ms for up to `limit`.
async fn eventually_async<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition().await
}

/// Who got a batch of which shard, under which lease epoch.
#[derive(Debug, Clone)]
struct Delivery {
    worker: &'static str,
    shard: ShardId,
    epoch: u64,
}

/// Every batch delivered, to any worker, in the order the processors got them.
type Deliveries = Arc<Mutex<Vec<Delivery>>>;

/// A processor that logs each batch it gets with its lease epoch, then fails it (so that it is
/// retried, again and again, for as long as the lease is valid) or checkpoints it.
struct Witness {
    worker: &'static str,
    shard: ShardId,
    deliveries: Deliveries,
    fails: bool,
}

#[async_trait]
impl RecordProcessor for Witness {
    async fn process_records(
        &mut self,
        _input: &ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        self.deliveries.lock().unwrap().push(Delivery {
            worker: self.worker,
            shard: self.shard.clone(),
            epoch: checkpointer.lease_epoch(),
        });
        if self.fails {
            return Err("cannot process this batch".into());
        }
        checkpointer.checkpoint().await?;
        Ok(())
    }
}

fn witness(
    worker: &'static str,
    deliveries: &Deliveries,
    fails: bool,
) -> impl Fn(&ShardInfo) -> Box<dyn RecordProcessor> + Send + Sync + 'static {
    let deliveries = Arc::clone(deliveries);
    move |shard: &ShardInfo| -> Box<dyn RecordProcessor> {
        Box::new(Witness {
            worker,
            shard: shard.shard_id.clone(),
            deliveries: Arc::clone(&deliveries),
            fails,
        })
    }
}

/// The deliveries of `shard`, run-length encoded: `A@1 x12, B@2 x1, ...`.
fn timeline(deliveries: &[Delivery], shard: &ShardId) -> String {
    let mut runs: Vec<(&str, u64, usize)> = Vec::new();
    for delivery in deliveries.iter().filter(|d| &d.shard == shard) {
        match runs.last_mut() {
            Some((worker, epoch, count))
                if *worker == delivery.worker && *epoch == delivery.epoch =>
            {
                *count += 1;
            }
            _ => runs.push((delivery.worker, delivery.epoch, 1)),
        }
    }
    runs.iter()
        .map(|(worker, epoch, count)| format!("{worker}@{epoch} x{count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A handoff that times out ends in a steal from an owner that renewed since the request. When
/// that renewal was written but its reply lost, the owner never learnt of the request and its
/// lease stays valid by its own clock for up to a lease duration after the renewal before: it
/// keeps delivering (here: retrying a failing batch). The thief must deliver nothing until that
/// has surely run out, or the shard is delivered by two owners at once (found by the simulation,
/// seed 14227, where the thief then finished the parent shard and started its child before the
/// old owner delivered the parent batch again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_lease_waits_for_its_unaware_owner_to_stop() {
    let engine = engine();
    engine
        .create_stream(STREAM, StreamOptions::with_shards(2))
        .unwrap();
    put(&engine, &key_in_half(false), 3);
    put(&engine, &key_in_half(true), 3);
    let inner: Arc<dyn LeaseStore> = Arc::new(InMemoryLeaseStore::new());
    // From the moment B asks for a handoff (before its request is written), every renewal A
    // makes is written and its reply lost: A never hears of the request, nor of the steal.
    let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let store_a = Arc::new(FaultInjectingLeaseStore::with_decider(
        Arc::clone(&inner),
        {
            let asked = Arc::clone(&asked);
            move |op| {
                (op == LeaseStoreOp::RenewLease && asked.load(std::sync::atomic::Ordering::SeqCst))
                    .then_some(LeaseStoreFault::ReplyLost)
            }
        },
    ));
    let store_b = Arc::new(FaultInjectingLeaseStore::with_decider(
        Arc::clone(&inner),
        {
            let asked = Arc::clone(&asked);
            move |op| {
                if op == LeaseStoreOp::RequestHandoff {
                    asked.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                None
            }
        },
    ));
    let lease_duration = Duration::from_millis(900);
    let config = config()
        .lease_duration(lease_duration)
        .handoff_timeout(Duration::from_millis(150))
        .backoff(Duration::from_millis(20), Duration::from_millis(50));
    let deliveries: Deliveries = Arc::default();
    // A fails every batch of both shards: whichever B asks for, A is retrying a batch of it.
    let a = worker_on(
        &engine,
        Arc::clone(&store_a) as Arc<dyn LeaseStore>,
        config.clone(),
        witness("A", &deliveries, true),
    );
    let a_delivers_both = eventually(Duration::from_secs(20), || {
        let deliveries = deliveries.lock().unwrap();
        (0..2).all(|shard| {
            deliveries
                .iter()
                .any(|d| d.shard == ShardId::from_index(shard))
        })
    })
    .await;
    assert!(a_delivers_both, "A never got batches of both shards");
    let b = worker_on(
        &engine,
        Arc::clone(&store_b) as Arc<dyn LeaseStore>,
        config,
        witness("B", &deliveries, false),
    );
    let b_delivered = eventually(Duration::from_secs(20), || {
        deliveries.lock().unwrap().iter().any(|d| d.worker == "B")
    })
    .await;
    assert!(b_delivered, "B never delivered a batch");
    // A's local validity ran out at most a lease duration after the request: let it.
    tokio::time::sleep(lease_duration + Duration::from_millis(300)).await;
    let (a_metrics, b_metrics) = (a.metrics(), b.metrics());
    let lost_replies = store_a.injected().replies_lost;
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    let deliveries = deliveries.lock().unwrap().clone();
    let stolen = deliveries
        .iter()
        .find(|d| d.worker == "B")
        .map(|d| d.shard.clone())
        .unwrap();
    println!(
        "stolen shard {stolen}: {}; A's renewal replies lost: {lost_replies}; \
         B stole {} lease(s), A handed over {}",
        timeline(&deliveries, &stolen),
        b_metrics.leases_stolen,
        a_metrics.handoffs_completed,
    );
    assert!(
        lost_replies > 0 && b_metrics.leases_stolen == 1 && a_metrics.handoffs_completed == 0,
        "the scenario was not reached: B must steal from A after A's renewal replies were lost \
         (lost {lost_replies}, stolen {}, handed over {})",
        b_metrics.leases_stolen,
        a_metrics.handoffs_completed,
    );
    // Two owners never deliver a shard at overlapping times: each shard's deliveries go to
    // ever newer epochs, never back to an older one after a newer one began.
    for shard in (0..2).map(ShardId::from_index) {
        let mut newest: Option<&Delivery> = None;
        for delivery in deliveries.iter().filter(|d| d.shard == shard) {
            if let Some(newer) = newest.filter(|newer| newer.epoch > delivery.epoch) {
                panic!(
                    "{} delivered shard {shard} at epoch {} after {} had delivered it at epoch {}: \
                     two owners delivered at once ({})",
                    delivery.worker,
                    delivery.epoch,
                    newer.worker,
                    newer.epoch,
                    timeline(&deliveries, &shard),
                );
            }
            if newest.is_none_or(|newest| delivery.epoch > newest.epoch) {
                newest = Some(delivery);
            }
        }
    }
}
