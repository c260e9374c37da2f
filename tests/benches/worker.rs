//! Worker benchmarks on the in-process engine and the in-memory lease store:
//! `cargo bench -p kcl-tests --bench worker`.
//!
//! - throughput: records per second one worker delivers to a no-op processor on 8 shards;
//! - latency: put-to-process p50 / p99 at 10,000 records/s;
//! - takeover: time until a crashed worker's shards are processed elsewhere (2 s lease);
//! - balance: time for 1 → 4 workers on 64 shards to reach 16 each;
//! - handoff: time for a graceful shutdown's shards to be held by the other worker, and for a
//!   joining worker to receive its half by graceful handoff.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kcl_core::worker::{InitialPosition, Worker, WorkerConfig, WorkerHandle, process_with};
use kcl_core::{InMemoryLeaseStore, LeaseStore};
use kcl_engine::{Engine, EngineConfig, PutRecordsEntry, StreamOptions};

const STREAM: &str = "bench";

fn engine(shards: u64) -> Engine {
    let engine = Engine::open(EngineConfig::in_memory().read_wait(Duration::from_millis(200)))
        .expect("engine");
    engine
        .create_stream(STREAM, StreamOptions::with_shards(shards))
        .expect("stream");
    engine
}

fn worker(
    engine: &Engine,
    store: &Arc<dyn LeaseStore>,
    config: WorkerConfig,
    on_records: impl Fn(&[kcl_core::Record]) + Send + Sync + 'static,
) -> WorkerHandle {
    Worker::builder()
        .stream(STREAM)
        .expect("stream name")
        .source(Arc::new(engine.clone()))
        .lease_store(Arc::clone(store))
        .processor_factory(process_with(move |_, records| {
            on_records(records);
            Ok(())
        }))
        .config(config)
        .build()
        .expect("worker")
        .start()
}

async fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

async fn throughput() {
    const RECORDS: usize = 4_000_000;
    let engine = engine(8);
    let batch: Vec<PutRecordsEntry> = (0..500)
        .map(|i| PutRecordsEntry::new(format!("sensor-{i}"), Bytes::from(vec![b'x'; 90])))
        .collect();
    for _ in 0..RECORDS / 500 {
        engine.put_records(STREAM, &batch).expect("put");
    }
    let store: Arc<dyn LeaseStore> = Arc::new(InMemoryLeaseStore::new());
    let config = WorkerConfig::default().initial_position(InitialPosition::TrimHorizon);
    let started = Instant::now();
    let handle = worker(&engine, &store, config, |_| {});
    let done = wait_for(Duration::from_secs(120), || {
        handle.metrics().records_processed >= RECORDS as u64
    })
    .await
    .expect("all records processed");
    let _ = started;
    println!(
        "throughput: {:.0} records/s (one worker, 8 shards, no-op processor checkpointing every batch, {RECORDS} records in {done:.2?})",
        RECORDS as f64 / done.as_secs_f64()
    );
    handle.shutdown().await.expect("shutdown");
}

fn micros_since_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

async fn latency() {
    let engine = engine(8);
    let store: Arc<dyn LeaseStore> = Arc::new(InMemoryLeaseStore::new());
    let samples = Arc::new(Mutex::new(Vec::with_capacity(100_000)));
    let recorded = Arc::clone(&samples);
    let config = WorkerConfig::default().initial_position(InitialPosition::TrimHorizon);
    let handle = worker(&engine, &store, config, move |records| {
        let now = micros_since_epoch();
        let mut samples = recorded.lock().expect("samples");
        for record in records {
            let written: u64 = std::str::from_utf8(&record.data)
                .ok()
                .and_then(|text| text.parse().ok())
                .unwrap_or(now);
            samples.push(now.saturating_sub(written));
        }
    });
    wait_for(Duration::from_secs(10), || handle.held_shards().len() == 8)
        .await
        .expect("leases taken");
    // 10 records per millisecond: 10,000 records/s for 5 s.
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    let mut key = 0u64;
    for _ in 0..5_000 {
        ticks.tick().await;
        let stamp = micros_since_epoch().to_string();
        let batch: Vec<PutRecordsEntry> = (0..10)
            .map(|_| {
                key += 1;
                PutRecordsEntry::new(format!("sensor-{}", key % 1000), stamp.clone())
            })
            .collect();
        engine.put_records(STREAM, &batch).expect("put");
    }
    wait_for(Duration::from_secs(10), || {
        samples.lock().map(|s| s.len() >= 50_000).unwrap_or(false)
    })
    .await
    .expect("all records processed");
    let mut samples = samples.lock().expect("samples").clone();
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "latency at 10,000 records/s: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} records)",
        at(0.50),
        at(0.99),
        at(1.0),
        samples.len()
    );
    handle.shutdown().await.expect("shutdown");
}

fn fast_config() -> WorkerConfig {
    WorkerConfig::default()
        .lease_duration(Duration::from_secs(2))
        .taker_interval(Duration::from_millis(500))
        .initial_position(InitialPosition::TrimHorizon)
}

async fn takeover() {
    let mut worst = Duration::ZERO;
    for round in 0..5 {
        let engine = engine(8);
        let store: Arc<dyn LeaseStore> = Arc::new(InMemoryLeaseStore::new());
        let survivor = worker(&engine, &store, fast_config(), |_| {});
        let victim = worker(&engine, &store, fast_config(), |_| {});
        wait_for(Duration::from_secs(20), || {
            survivor.held_shards().len() == 4 && victim.held_shards().len() == 4
        })
        .await
        .expect("balanced");
        // Crash at a random point of the renewal cycle.
        tokio::time::sleep(Duration::from_millis(137 * round + 50)).await;
        victim.abort();
        let took = wait_for(Duration::from_secs(20), || {
            survivor.held_shards().len() == 8
        })
        .await
        .expect("taken over");
        worst = worst.max(took);
        println!("takeover round {round}: {took:.2?}");
        survivor.shutdown().await.expect("shutdown");
    }
    println!("takeover after a crash, 2 s lease, taker every 500 ms: worst of 5 = {worst:.2?}");
}

async fn balance() {
    let engine = engine(64);
    let store: Arc<dyn LeaseStore> = Arc::new(InMemoryLeaseStore::new());
    let first = worker(&engine, &store, fast_config(), |_| {});
    wait_for(Duration::from_secs(20), || first.held_shards().len() == 64)
        .await
        .expect("first worker holds all");
    let started = Instant::now();
    let others: Vec<WorkerHandle> = (0..3)
        .map(|_| worker(&engine, &store, fast_config(), |_| {}))
        .collect();
    let all = [&first, &others[0], &others[1], &others[2]];
    let took = wait_for(Duration::from_secs(30), || {
        all.iter().all(|h| h.held_shards().len() == 16)
    })
    .await
    .expect("balanced");
    println!(
        "balance 1 -> 4 workers on 64 shards (2 s lease, taker every 500 ms): {took:.2?} ({:.2?} wall)",
        started.elapsed()
    );
    for handle in others {
        handle.shutdown().await.expect("shutdown");
    }
    first.shutdown().await.expect("shutdown");
}

async fn handoff() {
    let engine = engine(8);
    let store: Arc<dyn LeaseStore> = Arc::new(InMemoryLeaseStore::new());
    let processed = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&processed);
    let holder = worker(&engine, &store, fast_config(), move |records| {
        counter.fetch_add(records.len() as u64, Ordering::Relaxed);
    });
    wait_for(Duration::from_secs(20), || holder.held_shards().len() == 8)
        .await
        .expect("holder holds all");
    let joiner = worker(&engine, &store, fast_config(), |_| {});
    let joined = wait_for(Duration::from_secs(20), || joiner.held_shards().len() == 4)
        .await
        .expect("handed over");
    println!(
        "graceful handoff of half the shards to a joining worker: {joined:.2?} (2 s lease: owners notice requests at their next renewal, every 667 ms)"
    );
    let shutdown_started = Instant::now();
    holder.shutdown().await.expect("shutdown");
    let took = wait_for(Duration::from_secs(20), || joiner.held_shards().len() == 8)
        .await
        .expect("taken after shutdown");
    println!(
        "graceful shutdown: the other worker holds every shard {:.2?} after shutdown began ({took:.2?} after it returned)",
        shutdown_started.elapsed()
    );
    joiner.shutdown().await.expect("shutdown");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let wanted = kcl_tests::bench_args::wanted();
    if wanted("throughput") {
        throughput().await;
    }
    if wanted("latency") {
        latency().await;
    }
    if wanted("takeover") {
        takeover().await;
    }
    if wanted("balance") {
        balance().await;
    }
    if wanted("handoff") {
        handoff().await;
    }
}
