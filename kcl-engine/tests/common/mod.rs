//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use kcl_core::{Record, StartingPosition};
use kcl_engine::{Engine, PutRecordsEntry};

/// Reads a shard from `position` until the reader has nothing more (or reaches the shard's end).
pub fn read_all(
    engine: &Engine,
    stream: &str,
    shard: &str,
    position: StartingPosition,
) -> Vec<Record> {
    let mut reader = engine
        .open_reader(stream, shard, position)
        .expect("open reader");
    let mut records = Vec::new();
    loop {
        let batch = reader.read(10_000).expect("read");
        let empty = batch.records.is_empty();
        records.extend(batch.records);
        if empty || batch.child_shards.is_some() {
            return records;
        }
    }
}

/// Writes `count` records with keys `key-0`, `key-1`, ... cycling over `keys` keys.
pub fn put_keys(engine: &Engine, stream: &str, count: usize, keys: usize) {
    let entries: Vec<PutRecordsEntry> = (0..count)
        .map(|i| PutRecordsEntry::new(format!("key-{}", i % keys), format!("record-{i}")))
        .collect();
    for chunk in entries.chunks(500) {
        for result in engine.put_records(stream, chunk).expect("put_records") {
            result.expect("record accepted");
        }
    }
}
