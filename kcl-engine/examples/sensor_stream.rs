//! Temperature readings through the engine: write, split the stream part-way, and read every
//! shard parent before child, the order a consumer must follow.
//!
//! `cargo run --release -p kcl-engine --example sensor_stream [DATA_DIR]`

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use kcl_core::{HashKey, ShardId, StartingPosition};
use kcl_engine::{Engine, EngineConfig, PutRecordsEntry, ShardFilter, StreamOptions};

const STREAM: &str = "temperatures";
const SENSORS: usize = 1_000;
const READINGS: usize = 200_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temporary = tempfile::tempdir()?;
    let data_dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temporary.path().to_path_buf());
    let engine = Engine::open(EngineConfig::durable(&data_dir))?;
    if engine.describe_stream(STREAM).is_ok() {
        engine.delete_stream(STREAM)?;
    }
    engine.create_stream(STREAM, StreamOptions::with_shards(2))?;
    println!("engine data in {}", data_dir.display());

    let started = Instant::now();
    for batch_start in (0..READINGS).step_by(500) {
        if batch_start == READINGS / 2 {
            let open = engine.list_shards(STREAM, &ShardFilter::AtLatest)?;
            let shard = &open[0];
            let middle = shard.hash_key_range.start / 2 + shard.hash_key_range.end / 2;
            engine.split_shard(STREAM, shard.shard_id.as_str(), &middle.to_string())?;
            println!("split {} at hash key {middle}", shard.shard_id);
        }
        let batch: Vec<PutRecordsEntry> = (batch_start..batch_start + 500)
            .map(|i| {
                let sensor = format!("sensor-{:04}", i % SENSORS);
                let celsius = 20.0 + (i % 97) as f64 / 10.0;
                PutRecordsEntry::new(sensor, format!(r#"{{"celsius":{celsius:.1},"n":{i}}}"#))
            })
            .collect();
        for result in engine.put_records(STREAM, &batch)? {
            result?;
        }
    }
    let wrote = started.elapsed();

    // Read parents before children: a shard is read once every parent has been read to its end.
    let shards = engine.list_shards(STREAM, &ShardFilter::default())?;
    let mut finished: Vec<ShardId> = Vec::new();
    let mut queue: VecDeque<_> = shards.iter().collect();
    let mut per_shard = BTreeMap::new();
    let mut last_reading_per_sensor: BTreeMap<String, u64> = BTreeMap::new();
    let started = Instant::now();
    while let Some(shard) = queue.pop_front() {
        if !shard.parents().all(|parent| finished.contains(parent)) {
            queue.push_back(shard);
            continue;
        }
        let mut reader = engine.open_reader(
            STREAM,
            shard.shard_id.as_str(),
            StartingPosition::TrimHorizon,
        )?;
        let mut count = 0usize;
        loop {
            let batch = reader.read(10_000)?;
            for record in &batch.records {
                let text = std::str::from_utf8(&record.data)?;
                let n: u64 = text
                    .rsplit(':')
                    .next()
                    .and_then(|n| n.trim_end_matches('}').parse().ok())
                    .ok_or("unreadable reading")?;
                let previous = last_reading_per_sensor.insert(record.partition_key.to_string(), n);
                assert!(previous < Some(n), "per-sensor order broken");
            }
            count += batch.records.len();
            if batch.records.is_empty() || batch.is_shard_end() {
                break;
            }
        }
        let range = shard.hash_key_range;
        let share = (range.end - range.start) as f64 / u128::MAX as f64;
        per_shard.insert(shard.shard_id.to_string(), (count, share, shard.is_open()));
        finished.push(shard.shard_id.clone());
    }
    let read = started.elapsed();

    println!(
        "wrote {READINGS} readings from {SENSORS} sensors in {wrote:.2?}, read them back in {read:.2?}"
    );
    for (shard, (count, share, open)) in &per_shard {
        let state = if *open { "open" } else { "closed" };
        println!(
            "  {shard} ({state}, {:>4.1}% of keys): {count} readings",
            share * 100.0
        );
    }
    let total: usize = per_shard.values().map(|(count, _, _)| count).sum();
    assert_eq!(total, READINGS);
    let example = HashKey::of_partition_key("sensor-0001");
    println!("every reading read once, in order per sensor (sensor-0001 hashes to {example})");
    Ok(())
}
