//! A machine crash loses what was never fsynced; a sequence number that anyone saw must still
//! never name another record.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kcl_core::{Record, SequenceNumber, StartingPosition};
use kcl_engine::{
    Durability, Engine, EngineConfig, ManualClock, PutRecordsEntry, SimulatedDisk, StreamOptions,
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

fn put(engine: &Engine, label: &str, count: usize) -> Vec<SequenceNumber> {
    let entries: Vec<PutRecordsEntry> = (0..count)
        .map(|i| PutRecordsEntry::new("key", format!("{label}-{i}")))
        .collect();
    engine
        .put_records(STREAM, &entries)
        .unwrap()
        .into_iter()
        .map(|result| result.unwrap().sequence_number)
        .collect()
}

fn data(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|record| String::from_utf8(record.data.to_vec()).unwrap())
        .collect()
}

fn labelled(label: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{label}-{i}")).collect()
}

/// Group commit and no fsync at all: records are acknowledged and read before they are on disk.
/// After a power cut the log comes back shorter; the next records must not get the numbers the
/// lost ones were seen with, and positions from before the cut must lead to the new records.
#[test]
fn numbers_seen_before_a_power_cut_never_name_other_records() {
    for durability in [
        Durability::Interval(Duration::from_secs(3600)),
        Durability::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimulatedDisk::new();
        let engine = open(dir.path(), &disk, durability);
        engine
            .create_stream(STREAM, StreamOptions::with_shards(1))
            .unwrap();
        let kept = put(&engine, "kept", 10);
        engine.sync().unwrap();
        let lost = put(&engine, "lost", 10);
        // A consumer reads the unsynced records and remembers where it stood.
        let mut reader = engine
            .open_reader(STREAM, SHARD, StartingPosition::TrimHorizon)
            .unwrap();
        let seen = reader.read(100).unwrap().records;
        assert_eq!(
            data(&seen),
            [labelled("kept", 10), labelled("lost", 10)].concat()
        );
        let checkpoint = seen.last().unwrap().sequence_number.clone();
        let iterator_position = reader.position();

        disk.cut_power();
        drop(reader);
        drop(engine);
        disk.restore_power().unwrap();

        let engine = open(dir.path(), &disk, durability);
        let everything = common::read_all(&engine, STREAM, SHARD, StartingPosition::TrimHorizon);
        assert_eq!(data(&everything), labelled("kept", 10), "{durability:?}");
        let after = put(&engine, "after", 10);

        let lost: BTreeSet<_> = lost.into_iter().collect();
        let reused: Vec<_> = after.iter().filter(|n| lost.contains(n)).collect();
        assert!(
            reused.is_empty(),
            "{durability:?}: numbers seen before the power cut name new records: {reused:?}"
        );
        let mut all = kept.clone();
        all.extend(after.iter().cloned());
        assert!(
            all.windows(2).all(|pair| pair[0] < pair[1]),
            "{durability:?}: numbers increase within the shard: {all:?}"
        );

        // A consumer that checkpointed a lost record goes on with the first new record.
        let resumed = common::read_all(
            &engine,
            STREAM,
            SHARD,
            StartingPosition::AfterSequence(checkpoint.clone()),
        );
        assert_eq!(data(&resumed), labelled("after", 10), "{durability:?}");
        // AT a lost number: there is no such record any more; the reader starts at the first
        // record after it, skipping nothing.
        let first_lost = lost.first().unwrap().clone();
        let at_lost = common::read_all(
            &engine,
            STREAM,
            SHARD,
            StartingPosition::AtSequence(first_lost),
        );
        assert_eq!(data(&at_lost), labelled("after", 10), "{durability:?}");
        // An iterator issued before the cut (it carries the next record's number) continues
        // with the new records too.
        let mut reader = engine
            .resume_reader(STREAM, SHARD, &iterator_position)
            .unwrap();
        assert_eq!(
            data(&reader.read(100).unwrap().records),
            labelled("after", 10),
            "{durability:?}"
        );
        // Everything acknowledged and synced is still there, under its number.
        let everything = common::read_all(&engine, STREAM, SHARD, StartingPosition::TrimHorizon);
        let numbers: Vec<_> = everything
            .iter()
            .map(|record| record.sequence_number.clone())
            .collect();
        assert_eq!(numbers, all, "{durability:?}");
    }
}

/// Retention deletes old segments while the newer ones were created but their names never
/// synced. After a power cut the directory must not come back with neither: a log that reopens
/// empty would hand out again the numbers readers saw before the cut.
#[test]
fn retention_during_unsynced_segments_never_reissues_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SimulatedDisk::new();
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let config = || {
        EngineConfig::durable(dir.path())
            .durability(Durability::Interval(Duration::from_secs(3600)))
            // The smallest segments, filled by one put of the old records below.
            .segment_bytes(4096)
            .clock(clock.clone())
            .file_sync(Arc::new(disk.clone()))
    };
    let engine = Engine::open(config()).unwrap();
    engine
        .create_stream(STREAM, StreamOptions::with_shards(1))
        .unwrap();
    let old: Vec<PutRecordsEntry> = (0..8)
        .map(|i| PutRecordsEntry::new("key", format!("old-{i}-{}", "x".repeat(1000))))
        .collect();
    let mut seen: Vec<SequenceNumber> = engine
        .put_records(STREAM, &old)
        .unwrap()
        .into_iter()
        .map(|result| result.unwrap().sequence_number)
        .collect();
    engine.sync().unwrap();
    clock.advance(Duration::from_secs(25 * 3600));
    seen.extend(put(&engine, "young", 10));
    engine.enforce_retention().unwrap();
    let read = common::read_all(&engine, STREAM, SHARD, StartingPosition::TrimHorizon);
    assert_eq!(data(&read), labelled("young", 10));

    disk.cut_power();
    drop(engine);
    disk.restore_power().unwrap();

    let engine = Engine::open(config()).unwrap();
    let after = put(&engine, "after", 10);
    let newest_seen = seen.iter().max().unwrap();
    let reissued: Vec<_> = after.iter().filter(|n| seen.contains(n)).collect();
    assert!(
        reissued.is_empty(),
        "numbers seen before the power cut name new records: {reissued:?}"
    );
    assert!(
        after.iter().all(|n| n > newest_seen),
        "numbers after the power cut must follow every number seen before it: {after:?} vs {newest_seen:?}"
    );
}
