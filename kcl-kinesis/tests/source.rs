//! `KinesisSource` against the engine's server: listing, reading across a split, recovering
//! from expired iterators, and errors that say whether to retry and what is missing.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kcl_core::{ShardId, StartingPosition, StreamName, StreamSource};
use kcl_engine::http::HttpConfig;
use kcl_engine::{Engine, EngineConfig, ManualClock, StreamOptions};
use kcl_kinesis::{BackoffConfig, KinesisSource};
use support::{data, put, quick, serve};

#[tokio::test]
async fn reads_a_parent_to_its_end_then_its_children() {
    let engine = Engine::in_memory();
    engine
        .create_stream("split", StreamOptions::with_shards(1))
        .expect("create");
    put(&engine, "split", "before", 30);
    engine
        .split_shard("split", "shardId-000000000000", &(1u128 << 127).to_string())
        .expect("split");
    put(&engine, "split", "after", 30);
    let (endpoint, _stop) = serve(engine, HttpConfig::default()).await;
    let source = KinesisSource::local(&endpoint)
        .with_config(quick())
        .expect("config");
    let stream = StreamName::new("split").expect("name");

    let shards = source.list_shards(&stream).await.expect("list");
    let ids: Vec<&str> = shards.iter().map(|s| s.shard_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002"
        ]
    );
    assert!(!shards[0].is_open());
    assert_eq!(shards[1].parent_shard_id, Some(shards[0].shard_id.clone()));

    let mut reader = source
        .open_reader(&stream, &shards[0].shard_id, StartingPosition::TrimHorizon)
        .await
        .expect("open parent");
    let mut parent_records = Vec::new();
    let children = loop {
        let batch = reader.next_batch(7).await.expect("read parent");
        parent_records.extend(batch.records);
        if let Some(children) = batch.child_shards {
            break children;
        }
    };
    assert_eq!(parent_records.len(), 30);
    assert!(
        parent_records
            .windows(2)
            .all(|pair| pair[0].sequence_number < pair[1].sequence_number),
        "in shard order"
    );
    let child_ids: Vec<&str> = children.iter().map(|c| c.shard_id.as_str()).collect();
    assert_eq!(child_ids, ["shardId-000000000001", "shardId-000000000002"]);
    assert!(
        children
            .iter()
            .all(|c| c.parent_shards == [shards[0].shard_id.clone()])
    );
    // The end is reported again on every later call.
    let again = reader.next_batch(7).await.expect("read past the end");
    assert!(again.is_shard_end() && again.records.is_empty());

    let mut child_records = 0;
    for child in &children {
        let mut reader = source
            .open_reader(&stream, &child.shard_id, StartingPosition::TrimHorizon)
            .await
            .expect("open child");
        loop {
            let batch = reader.next_batch(1000).await.expect("read child");
            assert!(!batch.is_shard_end());
            if batch.records.is_empty() {
                break;
            }
            child_records += batch.records.len();
            assert!(batch.records.iter().all(|r| r.data.starts_with(b"after-")));
        }
    }
    assert_eq!(child_records, 30);
}

#[tokio::test]
async fn an_expired_iterator_is_renewed_after_the_last_record_delivered() {
    let engine = Engine::in_memory();
    engine
        .create_stream("slow", StreamOptions::with_shards(1))
        .expect("create");
    put(&engine, "slow", "first", 5);
    // Iterators live 50 ms; the reader idles 120 ms after an empty read, so the iterator it
    // holds has always expired by the next read.
    let config = HttpConfig::default().iterator_ttl(Duration::from_millis(50));
    let (endpoint, _stop) = serve(engine.clone(), config).await;
    let source = KinesisSource::local(&endpoint)
        .with_config(quick().idle_poll_interval(Duration::from_millis(120)))
        .expect("config");
    let stream = StreamName::new("slow").expect("name");
    let shard = ShardId::from_index(0);
    let mut reader = source
        .open_reader(&stream, &shard, StartingPosition::TrimHorizon)
        .await
        .expect("open");

    let mut seen = Vec::new();
    let first = reader.next_batch(100).await.expect("first read");
    seen.extend(first.records);
    let empty = reader.next_batch(100).await.expect("caught up");
    assert!(empty.records.is_empty());
    for round in 0..3 {
        put(&engine, "slow", &format!("round{round}"), 2);
        // Idles past the iterator's lifetime, gets ExpiredIteratorException, renews after the
        // last delivered record: the new records, none twice, none skipped.
        let batch = reader.next_batch(100).await.expect("read after expiry");
        seen.extend(batch.records);
    }
    assert_eq!(
        data(&seen),
        [
            "first-0", "first-1", "first-2", "first-3", "first-4", "round0-0", "round0-1",
            "round1-0", "round1-1", "round2-0", "round2-1"
        ]
    );
}

#[tokio::test]
async fn errors_say_whether_to_retry() {
    let (endpoint, stop) = serve(Engine::in_memory(), HttpConfig::default()).await;
    let source = KinesisSource::local(&endpoint)
        .with_config(quick())
        .expect("config");
    let missing = StreamName::new("missing").expect("name");
    let error = source.list_shards(&missing).await.expect_err("no stream");
    assert_eq!(error, kcl_core::Error::not_found("stream", "missing"));
    assert!(!error.is_transient());
    let error = source
        .open_reader(&missing, &ShardId::from_index(0), StartingPosition::Latest)
        .await
        .err()
        .expect("no stream");
    assert_eq!(error, kcl_core::Error::not_found("stream", "missing"));

    // A server that is gone is transient: worth retrying later.
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let error = source.list_shards(&missing).await.expect_err("server gone");
    assert!(error.is_transient(), "{error}");
}

#[tokio::test]
async fn a_shard_removed_by_retention_is_not_found() {
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let engine = Engine::open(EngineConfig::in_memory().clock(clock.clone())).expect("engine");
    engine
        .create_stream("expiring", StreamOptions::with_shards(1))
        .expect("create");
    put(&engine, "expiring", "old", 3);
    engine
        .split_shard(
            "expiring",
            "shardId-000000000000",
            &(1u128 << 127).to_string(),
        )
        .expect("split");
    let (endpoint, _stop) = serve(engine.clone(), HttpConfig::default()).await;
    let source = KinesisSource::local(&endpoint)
        .with_config(quick())
        .expect("config");
    let stream = StreamName::new("expiring").expect("name");
    let parent = ShardId::from_index(0);
    let mut reader = source
        .open_reader(&stream, &parent, StartingPosition::TrimHorizon)
        .await
        .expect("open");
    assert_eq!(reader.next_batch(1).await.expect("read").records.len(), 1);

    // Two days after the split, well past the 24-hour retention: the closed parent is gone.
    clock.advance(Duration::from_secs(48 * 3600));
    engine.enforce_retention().expect("retention");
    let gone = kcl_core::Error::not_found("shard", "expiring/shardId-000000000000");
    let error = reader.next_batch(100).await.expect_err("shard gone");
    assert_eq!(error, gone);
    let error = source
        .open_reader(&stream, &parent, StartingPosition::TrimHorizon)
        .await
        .err()
        .expect("shard gone");
    assert_eq!(error, gone);
    assert!(!error.is_transient());
}

#[tokio::test]
async fn throttled_reads_are_retried_with_backoff() {
    let engine = Engine::open(kcl_engine::EngineConfig::in_memory().throughput_limits(
        kcl_engine::ThroughputLimits {
            reads_per_sec: 2,
            ..kcl_engine::ThroughputLimits::KINESIS
        },
    ))
    .expect("engine");
    engine
        .create_stream("limited", StreamOptions::with_shards(1))
        .expect("create");
    put(&engine, "limited", "r", 3);
    let (endpoint, _stop) = serve(engine, HttpConfig::default()).await;
    let source = KinesisSource::local(&endpoint)
        .with_config(quick().backoff(BackoffConfig {
            initial: Duration::from_millis(200),
            max: Duration::from_millis(600),
            max_retries: 10,
        }))
        .expect("config");
    let stream = StreamName::new("limited").expect("name");
    let mut reader = source
        .open_reader(
            &stream,
            &ShardId::from_index(0),
            StartingPosition::TrimHorizon,
        )
        .await
        .expect("open");
    // Five reads against a limit of two per second: the later ones are throttled and retried.
    let mut records = 0;
    for _ in 0..5 {
        records += reader
            .next_batch(1)
            .await
            .expect("read despite throttling")
            .records
            .len();
    }
    assert_eq!(records, 3);
}
