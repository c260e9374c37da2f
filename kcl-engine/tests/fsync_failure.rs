//! A failed fsync is final: what it should have made durable is not shown as if it were, and
//! the shard acknowledges nothing more until the engine is reopened.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kcl_core::StartingPosition;
use kcl_engine::{
    Durability, Engine, EngineConfig, Error, PutRecordsEntry, SimulatedDisk, StreamOptions,
};

const STREAM: &str = "s";
const SHARD: &str = "shardId-000000000000";

fn open(dir: &Path, disk: &SimulatedDisk, durability: Durability) -> Engine {
    Engine::open(
        EngineConfig::durable(dir)
            .durability(durability)
            .file_sync(Arc::new(disk.clone())),
    )
    .unwrap()
}

fn put(engine: &Engine, data: &str) -> Result<kcl_engine::PutRecordOutput, Error> {
    engine.put_record(STREAM, PutRecordsEntry::new("key", data.to_owned()))
}

fn contents(engine: &Engine, shard: &str) -> Vec<String> {
    common::read_all(engine, STREAM, shard, StartingPosition::TrimHorizon)
        .iter()
        .map(|record| String::from_utf8(record.data.to_vec()).unwrap())
        .collect()
}

/// The error a poisoned shard answers: a storage failure naming the shard, which a worker must
/// not take for a passing outage.
fn assert_refused_for_good(error: Error) {
    let message = error.to_string();
    assert!(message.contains(SHARD), "names the shard: {message}");
    assert_eq!(error.kinesis_error_type(), "InternalFailureException");
    let core = kcl_core::Error::from(error);
    assert!(
        matches!(core, kcl_core::Error::Storage { .. }),
        "a storage failure, not a transient one: {core:?}"
    );
}

#[test]
fn a_write_whose_fsync_fails_is_not_shown_and_the_shard_refuses_writes_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SimulatedDisk::new();
    let engine = open(dir.path(), &disk, Durability::Always);
    engine
        .create_stream(STREAM, StreamOptions::with_shards(1))
        .unwrap();
    let before = put(&engine, "before").unwrap();

    disk.fail_next_syncs(1);
    put(&engine, "failed").unwrap_err();
    assert_eq!(
        contents(&engine, SHARD),
        ["before"],
        "the failed write is not shown"
    );
    // The next fsync would succeed, but says nothing about the pages the failed one lost.
    assert_refused_for_good(put(&engine, "refused").unwrap_err());
    assert_refused_for_good(engine.sync().unwrap_err());
    assert_eq!(contents(&engine, SHARD), ["before"]);
    drop(engine);

    // Reopening recovers from what the disk holds and writes again.
    let engine = open(dir.path(), &disk, Durability::Always);
    let after = put(&engine, "after").unwrap();
    assert!(after.sequence_number > before.sequence_number);
    let found = contents(&engine, SHARD);
    assert_eq!(found.first().map(String::as_str), Some("before"));
    assert_eq!(found.last().map(String::as_str), Some("after"));
    assert!(!found.iter().any(|data| data == "refused"));
}

#[test]
fn a_failed_group_commit_hides_what_it_did_not_sync_and_the_shard_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SimulatedDisk::new();
    let hour = Durability::Interval(Duration::from_secs(3600));
    let engine = open(dir.path(), &disk, hour);
    engine
        .create_stream(STREAM, StreamOptions::with_shards(1))
        .unwrap();
    put(&engine, "synced").unwrap();
    engine.sync().unwrap();
    // Acknowledged before the fsync that fails: group commit's window.
    put(&engine, "unsynced").unwrap();
    assert_eq!(contents(&engine, SHARD), ["synced", "unsynced"]);

    disk.fail_next_syncs(1);
    assert_refused_for_good(engine.sync().unwrap_err());
    assert_eq!(
        contents(&engine, SHARD),
        ["synced"],
        "what may be lost is not shown"
    );
    assert_refused_for_good(put(&engine, "refused").unwrap_err());
    drop(engine);

    let engine = open(dir.path(), &disk, hour);
    put(&engine, "reopened").unwrap();
    let found = contents(&engine, SHARD);
    assert_eq!(found.first().map(String::as_str), Some("synced"));
    assert_eq!(found.last().map(String::as_str), Some("reopened"));
}

#[test]
fn the_background_group_commit_poisons_only_the_shard_whose_fsync_failed() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SimulatedDisk::new();
    let engine = open(
        dir.path(),
        &disk,
        Durability::Interval(Duration::from_millis(10)),
    );
    engine
        .create_stream(STREAM, StreamOptions::with_shards(2))
        .unwrap();
    let other = "shardId-000000000001";
    let write = |shard: &str, data: &str| {
        let key = if shard == SHARD {
            "0"
        } else {
            "340282366920938463463374607431768211455"
        };
        engine.put_record(
            STREAM,
            PutRecordsEntry::new("key", data.to_owned()).with_explicit_hash_key(key),
        )
    };
    write(SHARD, "first").unwrap();
    write(other, "first").unwrap();
    engine.sync().unwrap();

    // Shard 0 is written first, so the next group commit fsyncs it first; that fsync fails.
    disk.fail_next_syncs(1);
    write(SHARD, "second").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let refusal = loop {
        match write(SHARD, "more") {
            Err(error) => break error,
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "the shard kept acknowledging writes"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    assert_refused_for_good(refusal);

    // The other shard goes on, and fsyncing the engine still reaches its records, while
    // reporting the poisoned shard.
    write(other, "second").unwrap();
    assert_refused_for_good(engine.sync().unwrap_err());
    disk.cut_power();
    drop(engine);
    disk.restore_power().unwrap();
    let engine = open(dir.path(), &disk, Durability::Always);
    assert_eq!(contents(&engine, other), ["first", "second"]);
}
