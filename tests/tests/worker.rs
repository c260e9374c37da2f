//! The worker's guarantees, against the in-process engine with the in-memory and SQLite lease
//! stores: balance, takeover after a crash, graceful shutdown, resharding in order, fencing of a
//! stale owner, and a processor that does not checkpoint at shard end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kcl_core::worker::{
    Checkpointer, InitialPosition, ProcessRecordsInput, ProcessorError, RecordProcessor, ShardInfo,
    Worker, WorkerConfig, WorkerHandle,
};
use kcl_core::{
    Checkpoint, Error, FaultInjectingLeaseStore, LeaseKey, LeaseStore, LeaseStoreFault, ShardId,
    StreamName, TakeMode, WorkerId,
};
use kcl_engine::{Engine, EngineConfig, PutRecordsEntry, ShardFilter, StreamOptions};
use kcl_tests::producer::Producer;
use kcl_tests::recording::{Behaviour, Log};
use kcl_tests::stores::{StoreKind, TestStore};
use tokio::sync::Notify;

const STREAM: &str = "readings";
const TAKER: Duration = Duration::from_millis(1000);
const LEASE: Duration = Duration::from_millis(1200);

fn config() -> WorkerConfig {
    WorkerConfig::default()
        .lease_duration(LEASE)
        .taker_interval(TAKER)
        .handoff_timeout(Duration::from_secs(3))
        .shard_sync_interval(Duration::from_secs(1))
        .initial_position(InitialPosition::TrimHorizon)
        .backoff(Duration::from_millis(20), Duration::from_millis(300))
}

struct Cluster {
    engine: Engine,
    store: TestStore,
    log: Arc<Log>,
}

impl Cluster {
    async fn new(kind: StoreKind, shards: u64) -> Cluster {
        let engine =
            Engine::open(EngineConfig::in_memory().read_wait(Duration::from_millis(100))).unwrap();
        engine
            .create_stream(STREAM, StreamOptions::with_shards(shards))
            .unwrap();
        Cluster {
            engine,
            store: TestStore::open(kind).await,
            log: Log::new(),
        }
    }

    fn start(&self, name: &str, behaviour: Behaviour) -> WorkerHandle {
        self.start_on(name, behaviour, Arc::clone(&self.store.store))
    }

    fn start_on(
        &self,
        name: &str,
        behaviour: Behaviour,
        store: Arc<dyn LeaseStore>,
    ) -> WorkerHandle {
        Worker::builder()
            .stream(STREAM)
            .unwrap()
            .name(name)
            .source(Arc::new(self.engine.clone()))
            .lease_store(store)
            .processor_factory(self.log.factory(name, behaviour))
            .config(config())
            .build()
            .unwrap()
            .start()
    }

    fn producer(&self) -> Producer {
        Producer::start(
            self.engine.clone(),
            STREAM,
            64,
            50,
            Duration::from_millis(20),
        )
    }

    async fn leases(&self) -> Vec<kcl_core::Lease> {
        self.store
            .store
            .list_leases(&StreamName::new(STREAM).unwrap())
            .await
            .unwrap()
    }
}

/// Polls `condition` every 20 ms for up to `limit`; the time it took, or `None`.
async fn within(limit: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition().then(|| started.elapsed())
}

fn counts(handles: &[&WorkerHandle]) -> Vec<usize> {
    handles.iter().map(|h| h.held_shards().len()).collect()
}

async fn all_delivered(log: &Log, written: &[u64]) {
    let done = within(Duration::from_secs(30), || log.has_all(written)).await;
    assert!(
        done.is_some(),
        "records never processed: {:?}",
        &log.missing(written)[..5.min(log.missing(written).len())]
    );
}

macro_rules! for_each_store {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn in_memory() {
                super::$scenario(StoreKind::InMemory).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$scenario(StoreKind::Sqlite).await;
            }
        }
    )*};
}

for_each_store!(
    one_to_four_workers_balance_within_two_taker_intervals,
    an_aborted_workers_shards_resume_within_lease_plus_taker_interval,
    a_graceful_shutdown_hands_over_within_one_taker_interval_without_duplicates,
    splits_and_merges_keep_key_order_and_parents_first,
    a_stale_owner_cannot_checkpoint_and_hears_lease_lost,
    a_deleted_lease_counts_as_lost,
    a_shard_end_without_checkpoint_is_reported_and_children_wait,
    a_store_outage_longer_than_a_lease_stops_processing_until_the_lease_is_back,
    uneven_shares_balance_to_floor_or_ceiling,
);

async fn one_to_four_workers_balance_within_two_taker_intervals(kind: StoreKind) {
    let cluster = Cluster::new(kind, 16).await;
    let producer = cluster.producer();
    let first = cluster.start("w1", Behaviour::default());
    assert!(
        within(Duration::from_secs(10), || first.held_shards().len() == 16)
            .await
            .is_some()
    );

    let others: Vec<WorkerHandle> = ["w2", "w3", "w4"]
        .iter()
        .map(|name| cluster.start(name, Behaviour::default()))
        .collect();
    let all = [&first, &others[0], &others[1], &others[2]];
    let balanced = within(Duration::from_secs(15), || counts(&all) == [4, 4, 4, 4]).await;
    let took = balanced.unwrap_or_else(|| panic!("never balanced: {:?}", counts(&all)));
    println!("{kind:?}: balanced 4/4/4/4 {took:?} after three workers joined");
    assert!(
        took <= 2 * TAKER,
        "balancing took {took:?}, more than two taker intervals"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let written = producer.stop().await;
    all_delivered(&cluster.log, &written).await;
    cluster.log.assert_ordered_within_runs();
    cluster.log.assert_key_order();
    for handle in others {
        handle.shutdown().await.unwrap();
    }
    first.shutdown().await.unwrap();
}

async fn an_aborted_workers_shards_resume_within_lease_plus_taker_interval(kind: StoreKind) {
    let cluster = Cluster::new(kind, 8).await;
    let producer = cluster.producer();
    let survivor = cluster.start("survivor", Behaviour::default());
    let victim = cluster.start("victim", Behaviour::default());
    let balanced = within(Duration::from_secs(15), || {
        counts(&[&survivor, &victim]) == [4, 4]
    })
    .await;
    assert!(
        balanced.is_some(),
        "never balanced: {:?}",
        counts(&[&survivor, &victim])
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    victim.abort();
    let resumed = within(Duration::from_secs(15), || {
        survivor.held_shards().len() == 8
    })
    .await
    .expect("the victim's shards were never taken over");
    println!("{kind:?}: shards resumed {resumed:?} after the crash");
    assert!(
        resumed <= LEASE + TAKER + Duration::from_millis(250),
        "takeover took {resumed:?}; bound is lease {LEASE:?} + taker {TAKER:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written = producer.stop().await;
    all_delivered(&cluster.log, &written).await;
    cluster.log.assert_ordered_within_runs();
    println!(
        "{kind:?}: {} duplicates after the crash",
        cluster.log.duplicates()
    );
    survivor.shutdown().await.unwrap();
}

async fn a_graceful_shutdown_hands_over_within_one_taker_interval_without_duplicates(
    kind: StoreKind,
) {
    let cluster = Cluster::new(kind, 8).await;
    let producer = cluster.producer();
    let stays = cluster.start("stays", Behaviour::default());
    let leaves = cluster.start("leaves", Behaviour::default());
    assert!(
        within(Duration::from_secs(15), || counts(&[&stays, &leaves])
            == [4, 4])
        .await
        .is_some()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    leaves.shutdown().await.unwrap();
    let taken = within(Duration::from_secs(10), || stays.held_shards().len() == 8)
        .await
        .expect("the released shards were never taken");
    println!("{kind:?}: released shards taken {taken:?} after shutdown");
    assert!(
        taken <= TAKER + Duration::from_millis(250),
        "took {taken:?}, more than one taker interval"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let written = producer.stop().await;
    all_delivered(&cluster.log, &written).await;
    cluster.log.assert_ordered_within_runs();
    assert_eq!(cluster.log.duplicates(), 0, "a record was processed twice");
    stays.shutdown().await.unwrap();
}

async fn splits_and_merges_keep_key_order_and_parents_first(kind: StoreKind) {
    let cluster = Cluster::new(kind, 4).await;
    let producer = cluster.producer();
    let a = cluster.start("a", Behaviour::default());
    let b = cluster.start("b", Behaviour::default());
    tokio::time::sleep(Duration::from_millis(700)).await;

    let open = |engine: &Engine| {
        let mut open = engine.list_shards(STREAM, &ShardFilter::AtLatest).unwrap();
        open.sort_by_key(|s| s.hash_key_range.start);
        open
    };
    let first = &open(&cluster.engine)[0];
    let middle = first.hash_key_range.start / 2 + first.hash_key_range.end / 2;
    cluster
        .engine
        .split_shard(STREAM, first.shard_id.as_str(), &middle.to_string())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let shards = open(&cluster.engine);
    cluster
        .engine
        .merge_shards(
            STREAM,
            shards[2].shard_id.as_str(),
            shards[3].shard_id.as_str(),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let shards = open(&cluster.engine);
    cluster
        .engine
        .merge_shards(
            STREAM,
            shards[0].shard_id.as_str(),
            shards[1].shard_id.as_str(),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let written = producer.stop().await;
    all_delivered(&cluster.log, &written).await;

    cluster.log.assert_ordered_within_runs();
    cluster.log.assert_key_order();
    assert_eq!(cluster.log.duplicates(), 0);
    // No child record before the last record of each of its parents.
    let deliveries = cluster.log.deliveries();
    let span = |shard: &ShardId| {
        let orders: Vec<u64> = deliveries
            .iter()
            .filter(|d| &d.shard == shard)
            .map(|d| d.order)
            .collect();
        (orders.iter().min().copied(), orders.iter().max().copied())
    };
    let all_shards = cluster
        .engine
        .list_shards(STREAM, &ShardFilter::default())
        .unwrap();
    let mut merges = 0;
    for child in &all_shards {
        let (Some(child_first), _) = span(&child.shard_id) else {
            continue;
        };
        if child.adjacent_parent_shard_id.is_some() {
            merges += 1;
        }
        for parent in child.parents() {
            if let (_, Some(parent_last)) = span(parent) {
                assert!(
                    parent_last < child_first,
                    "{} started before its parent {parent} ended",
                    child.shard_id
                );
            }
        }
    }
    assert!(merges >= 2, "both merges were exercised");
    // Finished parents keep their leases, at SHARD_END, while the stream still lists them.
    let parents: Vec<&ShardId> = all_shards
        .iter()
        .flat_map(|shard| shard.parents())
        .collect();
    let ended = within(Duration::from_secs(10), || {
        let leases = futures_block(cluster.leases());
        parents.iter().all(|parent| {
            leases.iter().any(|lease| {
                &&lease.key.shard == parent && lease.checkpoint == Checkpoint::ShardEnd
            })
        })
    })
    .await;
    assert!(
        ended.is_some(),
        "finished parents' leases are not all kept at SHARD_END: {:?}",
        cluster.leases().await
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Runs a future to completion from a synchronous polling closure.
fn futures_block<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

/// Blocks in `process_records` until told to go on, then tries to checkpoint.
struct BlockingProcessor {
    entered: Arc<Notify>,
    proceed: Arc<Notify>,
    outcome: Arc<Mutex<Option<Result<(), Error>>>>,
    lost: Arc<Notify>,
}

#[async_trait]
impl RecordProcessor for BlockingProcessor {
    async fn process_records(
        &mut self,
        _input: &ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        if self.outcome.lock().unwrap().is_some() {
            return Ok(());
        }
        self.entered.notify_one();
        self.proceed.notified().await;
        let outcome = checkpointer.checkpoint().await;
        *self.outcome.lock().unwrap() = Some(outcome);
        Ok(())
    }

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ProcessorError> {
        checkpointer.checkpoint().await?;
        Ok(())
    }

    async fn lease_lost(&mut self) {
        self.lost.notify_one();
    }
}

/// A worker whose processor is stuck inside its first batch on the only shard, until told to
/// go on and checkpoint.
struct BlockedWorker {
    worker: WorkerHandle,
    proceed: Arc<Notify>,
    lost: Arc<Notify>,
    outcome: Arc<Mutex<Option<Result<(), Error>>>>,
    key: LeaseKey,
}

impl BlockedWorker {
    async fn start(cluster: &Cluster) -> BlockedWorker {
        for i in 0..5 {
            cluster
                .engine
                .put_record(STREAM, PutRecordsEntry::new("k", format!("k:{i}")))
                .unwrap();
        }
        let (entered, proceed, lost) = (
            Arc::new(Notify::new()),
            Arc::new(Notify::new()),
            Arc::new(Notify::new()),
        );
        let outcome = Arc::new(Mutex::new(None));
        let factory = {
            let (entered, proceed, lost, outcome) = (
                entered.clone(),
                proceed.clone(),
                lost.clone(),
                outcome.clone(),
            );
            move |_: &ShardInfo| -> Box<dyn RecordProcessor> {
                Box::new(BlockingProcessor {
                    entered: entered.clone(),
                    proceed: proceed.clone(),
                    outcome: outcome.clone(),
                    lost: lost.clone(),
                })
            }
        };
        let worker = Worker::builder()
            .stream(STREAM)
            .unwrap()
            .source(Arc::new(cluster.engine.clone()))
            .lease_store(Arc::clone(&cluster.store.store))
            .processor_factory(factory)
            .config(config())
            .build()
            .unwrap()
            .start();
        tokio::time::timeout(Duration::from_secs(10), entered.notified())
            .await
            .expect("processing began");
        BlockedWorker {
            worker,
            proceed,
            lost,
            outcome,
            key: LeaseKey::new(StreamName::new(STREAM).unwrap(), ShardId::from_index(0)),
        }
    }

    /// Lets the processor checkpoint; checks that it got `LeaseLost`, heard `lease_lost`, and
    /// that the worker let the shard go.
    async fn finish_as_stale_owner(self) {
        self.proceed.notify_one();
        tokio::time::timeout(Duration::from_secs(10), self.lost.notified())
            .await
            .expect("lease_lost was called");
        let result = self
            .outcome
            .lock()
            .unwrap()
            .clone()
            .expect("the processor tried to checkpoint");
        assert!(matches!(result, Err(Error::LeaseLost { .. })), "{result:?}");
        let worker = self.worker;
        let forgotten = within(Duration::from_secs(5), || worker.held_shards().is_empty()).await;
        assert!(
            forgotten.is_some(),
            "the worker still counts the lost lease as held"
        );
        worker.shutdown().await.unwrap();
    }
}

async fn a_stale_owner_cannot_checkpoint_and_hears_lease_lost(kind: StoreKind) {
    let cluster = Cluster::new(kind, 1).await;
    let blocked = BlockedWorker::start(&cluster).await;
    // Another worker steals the lease while the batch is being processed.
    let store = &cluster.store.store;
    let key = blocked.key.clone();
    let seen = store.get_lease(&key).await.unwrap().unwrap();
    let thief = WorkerId::new("thief").unwrap();
    store
        .take_lease(
            &key,
            seen.epoch,
            &thief,
            TakeMode::Steal,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    blocked.finish_as_stale_owner().await;
    let after = store.get_lease(&key).await.unwrap().unwrap();
    assert_eq!(after.owner, Some(thief));
    assert_eq!(
        after.checkpoint,
        Checkpoint::TrimHorizon,
        "the stale owner wrote nothing"
    );
}

async fn a_deleted_lease_counts_as_lost(kind: StoreKind) {
    // As when a stale owner wakes after another worker finished the shard and the finished
    // lease was cleaned up.
    let cluster = Cluster::new(kind, 1).await;
    let blocked = BlockedWorker::start(&cluster).await;
    let key = blocked.key.clone();
    assert!(cluster.store.store.delete_lease(&key).await.unwrap());
    blocked.finish_as_stale_owner().await;
}

async fn a_shard_end_without_checkpoint_is_reported_and_children_wait(kind: StoreKind) {
    let cluster = Cluster::new(kind, 1).await;
    let entries: Vec<_> = (0..20)
        .map(|i| PutRecordsEntry::new(format!("key-{}", i % 4), format!("key-{}:{}", i % 4, i / 4)))
        .collect();
    cluster.engine.put_records(STREAM, &entries).unwrap();
    cluster
        .engine
        .split_shard(STREAM, "shardId-000000000000", &(1u128 << 127).to_string())
        .unwrap();
    let after: Vec<_> = (0..8)
        .map(|i| PutRecordsEntry::new(format!("key-{i}"), format!("key-{i}:100")))
        .collect();
    cluster.engine.put_records(STREAM, &after).unwrap();

    let careless = Behaviour {
        checkpoint_shard_end: false,
        ..Behaviour::default()
    };
    let worker = cluster.start("careless", careless);
    let reported = within(Duration::from_secs(10), || {
        worker.metrics().shard_ends_not_checkpointed >= 2
    })
    .await;
    assert!(
        reported.is_some(),
        "a missing SHARD_END checkpoint was not reported: {:?}",
        worker.metrics()
    );
    tokio::time::sleep(2 * TAKER).await;

    let by_shard: BTreeMap<ShardId, usize> =
        cluster
            .log
            .deliveries()
            .iter()
            .fold(BTreeMap::new(), |mut m, d| {
                *m.entry(d.shard.clone()).or_default() += 1;
                m
            });
    assert_eq!(by_shard.get(&ShardId::from_index(0)), Some(&20));
    assert_eq!(
        by_shard.len(),
        1,
        "a child was processed before its parent checkpointed SHARD_END: {by_shard:?}"
    );
    let leases = cluster.leases().await;
    let parent = leases
        .iter()
        .find(|l| l.key.shard == ShardId::from_index(0))
        .unwrap();
    assert_ne!(parent.checkpoint, Checkpoint::ShardEnd);
    for child in leases
        .iter()
        .filter(|l| l.key.shard != ShardId::from_index(0))
    {
        assert_eq!(child.owner, None, "child {} was taken", child.key.shard);
    }
    worker.shutdown().await.unwrap();
}

async fn a_store_outage_longer_than_a_lease_stops_processing_until_the_lease_is_back(
    kind: StoreKind,
) {
    let cluster = Cluster::new(kind, 2).await;
    let producer = cluster.producer();
    // The outage is the hard kind: every call hangs (a black-holed connection) until it ends.
    let down = Arc::new(AtomicBool::new(false));
    let outage = Arc::new(FaultInjectingLeaseStore::with_decider(
        Arc::clone(&cluster.store.store),
        {
            let down = Arc::clone(&down);
            move |_| {
                down.load(AtomicOrdering::SeqCst)
                    .then_some(LeaseStoreFault::Hang)
            }
        },
    ));
    let worker = cluster.start_on("cut-off", Behaviour::default(), outage.clone());
    assert!(
        within(Duration::from_secs(10), || worker.held_shards().len() == 2)
            .await
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    down.store(true, AtomicOrdering::SeqCst);
    // Without renewals for a lease duration the worker cannot know it still holds its leases:
    // it stops processing rather than compete with a worker that may have taken them.
    let stopped = within(LEASE * 3, || cluster.log.lost().len() == 2).await;
    assert!(
        stopped.is_some(),
        "processing went on without a lease: {:?}",
        cluster.log.lost()
    );
    let delivered = cluster.log.deliveries().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        cluster.log.deliveries().len(),
        delivered,
        "records processed during the outage"
    );

    down.store(false, AtomicOrdering::SeqCst);
    outage.release_hangs();
    let back = within(Duration::from_secs(10), || worker.held_shards().len() == 2).await;
    assert!(back.is_some(), "the worker did not take its leases back");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written = producer.stop().await;
    all_delivered(&cluster.log, &written).await;
    cluster.log.assert_ordered_within_runs();
    worker.shutdown().await.unwrap();
}

async fn uneven_shares_balance_to_floor_or_ceiling(kind: StoreKind) {
    // 4 shards over 3 workers: 2/1/1, never 2/2/0.
    let cluster = Cluster::new(kind, 4).await;
    let producer = cluster.producer();
    let first = cluster.start("first", Behaviour::default());
    let second = cluster.start("second", Behaviour::default());
    assert!(
        within(Duration::from_secs(10), || counts(&[&first, &second])
            == [2, 2])
        .await
        .is_some()
    );
    let third = cluster.start("third", Behaviour::default());
    let all = [&first, &second, &third];
    let sorted = || {
        let mut held = counts(&all);
        held.sort_unstable();
        held
    };
    let balanced = within(Duration::from_secs(10), || sorted() == [1, 1, 2]).await;
    assert!(balanced.is_some(), "stuck at {:?}", counts(&all));
    let written = producer.stop().await;
    all_delivered(&cluster.log, &written).await;
    cluster.log.assert_ordered_within_runs();
    for handle in [first, second, third] {
        handle.shutdown().await.unwrap();
    }
}
