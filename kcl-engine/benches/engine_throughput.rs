//! Engine throughput and memory: `cargo bench -p kcl-engine --bench engine_throughput`.
//!
//! Each measurement runs in a child process of its own, so the peak memory one reports is not
//! inflated by another. Records are 100 bytes, written in batches of 500 from pre-built batches
//! (so the figures are the engine's, not the benchmark's string formatting).

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kcl_core::StartingPosition;
use kcl_engine::{Durability, Engine, EngineConfig, PutRecordsEntry, ShardFilter, StreamOptions};

const RECORD_BYTES: usize = 100;
const BATCH: usize = 500;
const SHARDS: u64 = 8;
const STREAM: &str = "bench";

fn batches() -> Vec<Vec<PutRecordsEntry>> {
    (0..64)
        .map(|b| {
            (0..BATCH)
                .map(|i| {
                    let key = format!("sensor-{}", (b * BATCH + i) % 10_000);
                    let data = Bytes::from(vec![b'x'; RECORD_BYTES - key.len()]);
                    PutRecordsEntry::new(key, data)
                })
                .collect()
        })
        .collect()
}

/// Writes `records` records and returns records per second.
fn put(engine: &Engine, records: usize) -> f64 {
    let batches = batches();
    let started = Instant::now();
    for n in 0..records / BATCH {
        let results = engine
            .put_records(STREAM, &batches[n % batches.len()])
            .expect("put");
        assert!(results.iter().all(Result::is_ok));
    }
    (records / BATCH * BATCH) as f64 / started.elapsed().as_secs_f64()
}

/// Reads every shard from the trim horizon and returns (records, records per second).
fn read_all(engine: &Engine) -> (usize, f64) {
    let started = Instant::now();
    let mut total = 0;
    for shard in engine
        .list_shards(STREAM, &ShardFilter::default())
        .expect("list")
    {
        let mut reader = engine
            .open_reader(
                STREAM,
                shard.shard_id.as_str(),
                StartingPosition::TrimHorizon,
            )
            .expect("reader");
        loop {
            let batch = reader.read(10_000).expect("read");
            if batch.records.is_empty() {
                break;
            }
            total += batch.records.len();
        }
    }
    (total, total as f64 / started.elapsed().as_secs_f64())
}

fn memory_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn engine(config: EngineConfig) -> Engine {
    let engine = Engine::open(config).expect("open");
    engine
        .create_stream(STREAM, StreamOptions::with_shards(SHARDS))
        .expect("create");
    engine
}

fn run(mode: &str) {
    match mode {
        "memory" => {
            let engine = engine(EngineConfig::in_memory());
            let put_rate = put(&engine, 2_000_000);
            let (read, read_rate) = read_all(&engine);
            println!("in-memory put: {put_rate:.0} records/s");
            println!("in-memory read: {read_rate:.0} records/s ({read} records)");
        }
        "durable" => {
            let dir = tempfile::tempdir().expect("tempdir");
            let engine = engine(
                EngineConfig::durable(dir.path())
                    .durability(Durability::Interval(Duration::from_millis(10))),
            );
            let put_rate = put(&engine, 2_000_000);
            let (read, read_rate) = read_all(&engine);
            println!("durable put, group commit every 10 ms: {put_rate:.0} records/s");
            println!("durable read: {read_rate:.0} records/s ({read} records)");
            let always = engine_in(&dir.path().join("always"), Durability::Always);
            println!(
                "durable put, fsync before ack: {:.0} records/s",
                put(&always, 200_000)
            );
        }
        "rss-100MB" | "rss-2GB" => {
            let bytes: usize = if mode == "rss-2GB" {
                2 << 30
            } else {
                100 << 20
            };
            let dir = tempfile::tempdir().expect("tempdir");
            let engine = engine_in(dir.path(), Durability::Interval(Duration::from_millis(10)));
            let rate = put(&engine, bytes / RECORD_BYTES);
            println!(
                "durable write of {mode}: peak RSS {} KiB, RSS at end {} KiB ({rate:.0} records/s)",
                memory_kib("VmHWM:"),
                memory_kib("VmRSS:")
            );
        }
        other => eprintln!("unknown mode {other}"),
    }
}

fn engine_in(dir: &std::path::Path, durability: Durability) -> Engine {
    engine(EngineConfig::durable(dir).durability(durability))
}

fn main() {
    let modes: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    if let [mode] = &modes[..] {
        return run(mode);
    }
    let exe = std::env::current_exe().expect("current exe");
    for mode in ["memory", "durable", "rss-100MB", "rss-2GB"] {
        let status = Command::new(&exe).arg(mode).status().expect("spawn");
        assert!(status.success(), "{mode} failed");
    }
}
