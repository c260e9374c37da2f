//! Readers at every starting position, waiting for records, retention and throughput limits.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kcl_core::{ShardId, ShardReader, StartingPosition, StreamName, StreamSource};
use kcl_engine::{
    Engine, EngineConfig, Error, ManualClock, PutRecordsEntry, StreamOptions, ThroughputLimits,
};

const SHARD: &str = "shardId-000000000000";

#[test]
fn every_starting_position_starts_where_kinesis_does() {
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let engine = Engine::open(EngineConfig::in_memory().clock(clock.clone())).unwrap();
    engine
        .create_stream("s", StreamOptions::with_shards(1))
        .unwrap();
    let mut written = Vec::new();
    for i in 0..10 {
        clock.advance(Duration::from_secs(1));
        written.push(
            engine
                .put_record("s", PutRecordsEntry::new("k", format!("{i}")))
                .unwrap(),
        );
    }
    let seq = |i: usize| written[i].sequence_number.clone();
    let first_data = |position| {
        common::read_all(&engine, "s", SHARD, position)
            .first()
            .map(|r| r.data.clone())
    };
    assert_eq!(first_data(StartingPosition::TrimHorizon), Some("0".into()));
    assert_eq!(first_data(StartingPosition::Latest), None);
    assert_eq!(
        first_data(StartingPosition::AtSequence(seq(4))),
        Some("4".into())
    );
    assert_eq!(
        first_data(StartingPosition::AfterSequence(seq(4))),
        Some("5".into())
    );
    assert_eq!(first_data(StartingPosition::AfterSequence(seq(9))), None);
    let records = common::read_all(&engine, "s", SHARD, StartingPosition::TrimHorizon);
    let arrival_of_7 = records[7].approximate_arrival;
    assert_eq!(
        first_data(StartingPosition::AtTimestamp(arrival_of_7)),
        Some("7".into())
    );
    assert_eq!(
        first_data(StartingPosition::AtTimestamp(
            arrival_of_7 - Duration::from_millis(500)
        )),
        Some("7".into())
    );
    assert_eq!(
        first_data(StartingPosition::AtTimestamp(SystemTime::UNIX_EPOCH)),
        Some("0".into())
    );

    // Latest sees what is written after it opened.
    let mut latest = engine
        .open_reader("s", SHARD, StartingPosition::Latest)
        .unwrap();
    engine
        .put_record("s", PutRecordsEntry::new("k", "new"))
        .unwrap();
    assert_eq!(latest.read(10).unwrap().records[0].data, "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_reader_wakes_when_a_record_is_appended() {
    // The reader would wait 60 s; it must return as soon as the record lands.
    let engine =
        Engine::open(EngineConfig::in_memory().read_wait(Duration::from_secs(60))).unwrap();
    engine
        .create_stream("s", StreamOptions::with_shards(1))
        .unwrap();
    let mut reader = engine
        .open_reader("s", SHARD, StartingPosition::Latest)
        .unwrap();
    let waiting = tokio::spawn(async move { reader.next_batch(100).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    engine
        .put_record("s", PutRecordsEntry::new("k", "wake"))
        .unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the reader woke before its wait ran out")
        .unwrap()
        .unwrap();
    assert_eq!(batch.records[0].data, "wake");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_reader_wakes_when_its_shard_closes() {
    let engine =
        Engine::open(EngineConfig::in_memory().read_wait(Duration::from_secs(60))).unwrap();
    engine
        .create_stream("s", StreamOptions::with_shards(1))
        .unwrap();
    let mut reader = engine
        .open_reader("s", SHARD, StartingPosition::Latest)
        .unwrap();
    let waiting = tokio::spawn(async move { reader.next_batch(100).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    engine.split_shard("s", SHARD, "1000").unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the reader woke when the shard closed")
        .unwrap()
        .unwrap();
    assert_eq!(batch.child_shards.map(|c| c.len()), Some(2));
}

#[tokio::test]
async fn an_idle_reader_returns_an_empty_batch_after_its_wait() {
    let engine =
        Engine::open(EngineConfig::in_memory().read_wait(Duration::from_millis(20))).unwrap();
    engine
        .create_stream("s", StreamOptions::with_shards(1))
        .unwrap();
    let mut reader = engine
        .open_reader("s", SHARD, StartingPosition::Latest)
        .unwrap();
    let batch = reader.next_batch(100).await.unwrap();
    assert!(batch.records.is_empty() && !batch.is_shard_end());
}

#[test]
fn millis_behind_latest_is_zero_when_caught_up() {
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let engine = Engine::open(EngineConfig::in_memory().clock(clock.clone())).unwrap();
    engine
        .create_stream("s", StreamOptions::with_shards(1))
        .unwrap();
    for i in 0..3 {
        engine
            .put_record("s", PutRecordsEntry::new("k", format!("{i}")))
            .unwrap();
        clock.advance(Duration::from_secs(10));
    }
    let mut reader = engine
        .open_reader("s", SHARD, StartingPosition::TrimHorizon)
        .unwrap();
    let behind = reader.read(1).unwrap().millis_behind_latest;
    assert_eq!(behind, 30_000);
    assert_eq!(reader.read(10).unwrap().millis_behind_latest, 0);
}

#[test]
fn retention_trims_old_records_and_expires_closed_shards() {
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let engine = Engine::open(EngineConfig::in_memory().clock(clock.clone())).unwrap();
    engine
        .create_stream("s", StreamOptions::with_shards(1))
        .unwrap();
    common::put_keys(&engine, "s", 10, 3);
    clock.advance(Duration::from_secs(20 * 3600));
    engine
        .put_record("s", PutRecordsEntry::new("k", "young"))
        .unwrap();
    clock.advance(Duration::from_secs(5 * 3600));
    engine.enforce_retention().unwrap();
    let left = common::read_all(&engine, "s", SHARD, StartingPosition::TrimHorizon);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].data, "young");

    // A shard closed longer ago than retention is no longer listed.
    engine.split_shard("s", SHARD, "1000").unwrap();
    clock.advance(Duration::from_secs(25 * 3600));
    engine.enforce_retention().unwrap();
    let ids: Vec<String> = engine
        .describe_stream("s")
        .unwrap()
        .shards
        .iter()
        .map(|s| s.shard_id.to_string())
        .collect();
    assert_eq!(ids, ["shardId-000000000001", "shardId-000000000002"]);
    assert!(matches!(
        engine.open_reader("s", SHARD, StartingPosition::TrimHorizon),
        Err(Error::ShardNotFound { .. })
    ));
}

/// A worker must tell "this shard no longer exists" from a passing failure: a closed shard that
/// retention removed answers not-found for the shard, to readers holding it and to new ones,
/// and is no longer listed.
#[tokio::test]
async fn a_shard_removed_by_retention_is_not_found_and_not_listed() {
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let engine = Engine::open(EngineConfig::in_memory().clock(clock.clone())).unwrap();
    engine
        .create_stream("s", StreamOptions::with_shards(1))
        .unwrap();
    common::put_keys(&engine, "s", 10, 3);
    let stream = StreamName::new("s").unwrap();
    let shard = ShardId::new(SHARD).unwrap();
    let mut held = engine
        .open_reader("s", SHARD, StartingPosition::TrimHorizon)
        .unwrap();
    assert_eq!(held.next_batch(5).await.unwrap().records.len(), 5);
    engine.split_shard("s", SHARD, "1000").unwrap();
    clock.advance(Duration::from_secs(25 * 3600));
    engine.enforce_retention().unwrap();

    let error = held.next_batch(5).await.unwrap_err();
    assert!(
        matches!(&error, kcl_core::Error::NotFound { kind: "shard", name } if name.contains(SHARD)),
        "{error:?}"
    );
    assert!(!error.is_transient());
    let reopened =
        StreamSource::open_reader(&engine, &stream, &shard, StartingPosition::TrimHorizon).await;
    assert!(
        matches!(
            &reopened,
            Err(kcl_core::Error::NotFound { kind: "shard", .. })
        ),
        "{:?}",
        reopened.err()
    );
    let listed = StreamSource::list_shards(&engine, &stream).await.unwrap();
    assert!(listed.iter().all(|shard| shard.shard_id.as_str() != SHARD));
    assert_eq!(listed.len(), 2);
}

#[test]
fn throughput_limits_refuse_with_a_distinct_error_when_enabled() {
    let engine =
        Engine::open(EngineConfig::in_memory().throughput_limits(ThroughputLimits::KINESIS))
            .unwrap();
    engine
        .create_stream("s", StreamOptions::with_shards(1))
        .unwrap();
    let batch = vec![PutRecordsEntry::new("k", "v"); 500];
    let mut accepted = 0;
    let mut throttled = 0;
    for _ in 0..3 {
        for result in engine.put_records("s", &batch).unwrap() {
            match result {
                Ok(_) => accepted += 1,
                Err(Error::ThroughputExceeded { .. }) => throttled += 1,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!((1000..1100).contains(&accepted), "accepted {accepted}");
    assert_eq!(accepted + throttled, 1500);
    let mut reader = engine
        .open_reader("s", SHARD, StartingPosition::TrimHorizon)
        .unwrap();
    let reads: Vec<_> = (0..6).map(|_| reader.read(1)).collect();
    assert!(reads[..5].iter().all(Result::is_ok));
    assert!(matches!(reads[5], Err(Error::ThroughputExceeded { .. })));
    assert_eq!(
        Error::ThroughputExceeded {
            stream: "s".into(),
            shard: SHARD.into(),
            limit: "x"
        }
        .kinesis_error_type(),
        "ProvisionedThroughputExceededException"
    );

    // Without limits nothing is throttled.
    let unlimited = Engine::in_memory();
    unlimited
        .create_stream("s", StreamOptions::with_shards(1))
        .unwrap();
    for _ in 0..3 {
        assert!(
            unlimited
                .put_records("s", &batch)
                .unwrap()
                .iter()
                .all(Result::is_ok)
        );
    }
}

#[test]
fn records_refused_between_admitted_ones_take_no_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        EngineConfig::durable(dir.path()).throughput_limits(ThroughputLimits::KINESIS),
    )
    .unwrap();
    engine
        .create_stream("s", StreamOptions::with_shards(1))
        .unwrap();
    // The first large record leaves too few of the second's 1 MiB of bytes for another one.
    let large = vec![b'x'; 1000 * 1024];
    let batch = vec![
        PutRecordsEntry::new("a", large.clone()),
        PutRecordsEntry::new("b", large.clone()),
        PutRecordsEntry::new("c", "small"),
        PutRecordsEntry::new("d", large),
        PutRecordsEntry::new("e", "small"),
    ];
    let results = engine.put_records("s", &batch).unwrap();
    let refused: Vec<bool> = results
        .iter()
        .map(|result| matches!(result, Err(Error::ThroughputExceeded { .. })))
        .collect();
    assert_eq!(refused, [false, true, false, true, false], "{results:?}");
    let numbers: Vec<_> = results
        .into_iter()
        .filter_map(Result::ok)
        .map(|output| output.sequence_number)
        .collect();

    let mut reader = engine
        .open_reader("s", SHARD, StartingPosition::TrimHorizon)
        .unwrap();
    let read = reader.read(10).unwrap().records;
    let keys: Vec<_> = read
        .iter()
        .map(|record| record.partition_key.as_str())
        .collect();
    assert_eq!(keys, ["a", "c", "e"]);
    let read_numbers: Vec<_> = read
        .into_iter()
        .map(|record| record.sequence_number)
        .collect();
    assert_eq!(read_numbers, numbers);
}

#[test]
fn deleting_a_stream_stops_its_readers() {
    let engine = Engine::in_memory();
    engine
        .create_stream("s", StreamOptions::with_shards(1))
        .unwrap();
    let mut reader = engine
        .open_reader("s", SHARD, StartingPosition::TrimHorizon)
        .unwrap();
    engine.delete_stream("s").unwrap();
    assert!(matches!(reader.read(1), Err(Error::ShardNotFound { .. })));
    assert!(engine.list_streams().is_empty());
}

#[test]
fn a_reader_resumes_at_the_position_another_reported() {
    let engine = Engine::in_memory();
    engine
        .create_stream("s", StreamOptions::with_shards(2))
        .unwrap();
    let batch: Vec<_> = (0..5)
        .map(|i| PutRecordsEntry::new("same-key", format!("{i}")))
        .collect();
    let shard = engine.put_records("s", &batch).unwrap()[0]
        .as_ref()
        .unwrap()
        .shard_id
        .clone();
    let mut first = engine
        .open_reader("s", shard.as_str(), StartingPosition::TrimHorizon)
        .unwrap();
    assert_eq!(first.read(3).unwrap().records.len(), 3);
    let mut resumed = engine
        .resume_reader("s", shard.as_str(), &first.position())
        .unwrap();
    let rest = resumed.read(10).unwrap().records;
    assert_eq!(
        rest.iter().map(|r| r.data.clone()).collect::<Vec<_>>(),
        ["3", "4"]
    );
    // At the tip, a resumed reader waits for the next record.
    let mut at_tip = engine
        .resume_reader("s", shard.as_str(), &resumed.position())
        .unwrap();
    assert!(at_tip.read(10).unwrap().records.is_empty());
    engine
        .put_record("s", PutRecordsEntry::new("same-key", "5"))
        .unwrap();
    assert_eq!(at_tip.read(10).unwrap().records[0].data, "5");
    // A position of another shard is refused.
    let other = if shard.as_str().ends_with('0') {
        "shardId-000000000001"
    } else {
        "shardId-000000000000"
    };
    assert!(matches!(
        engine.resume_reader("s", other, &first.position()),
        Err(Error::InvalidArgument {
            field: "ShardIterator",
            ..
        })
    ));
}
