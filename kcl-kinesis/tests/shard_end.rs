//! Reaching the end of a closed shard through a service that sends no `ChildShards`, so that the
//! reader asks ListShards for the children: nothing read is lost when that call fails or the
//! read is dropped meanwhile, and no end is claimed for a shard that is still open.

mod support;

use kcl_core::{
    ChildShard, Record, ShardId, ShardReader, StartingPosition, StreamName, StreamSource,
};
use kcl_engine::http::HttpConfig;
use kcl_engine::{Engine, StreamOptions};
use kcl_kinesis::KinesisSource;
use support::faults::Faults;
use support::{data, put, quick, serve};
use tokio::sync::oneshot;

/// How the ListShards a reader makes at the end of a shard fails.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Interruption {
    /// It fails more times than one listing retries, then succeeds: the reader's own retry of
    /// the read gets past it, within the same call.
    RetriedWithinTheCall,
    /// It fails until the call gives up and returns the error; the caller calls again.
    ReturnedToTheCaller,
    /// The caller drops the read while it is failing (a shutdown, a timeout), and calls again.
    CallDropped,
}

/// A stream whose only shard holds five records and was then split, served with `faults`;
/// returns the source and what keeps the server running.
async fn closed_shard_of_five(faults: &Faults) -> (KinesisSource, oneshot::Sender<()>) {
    let engine = Engine::in_memory();
    engine
        .create_stream("ending", StreamOptions::with_shards(1))
        .expect("create");
    put(&engine, "ending", "before", 5);
    engine
        .split_shard(
            "ending",
            "shardId-000000000000",
            &(1u128 << 127).to_string(),
        )
        .expect("split");
    let (endpoint, running) = serve(engine, HttpConfig::default()).await;
    let source = KinesisSource::new(faults.client(&endpoint))
        .with_config(quick())
        .expect("config");
    (source, running)
}

/// Reads until the shard end, tolerating transient errors (a bounded number of calls).
async fn read_to_the_end(
    reader: &mut Box<dyn ShardReader>,
    records: &mut Vec<Record>,
) -> Vec<ChildShard> {
    for _ in 0..20 {
        match reader.next_batch(100).await {
            Ok(batch) => {
                records.extend(batch.records);
                if let Some(children) = batch.child_shards {
                    return children;
                }
            }
            Err(error) => assert!(error.is_transient(), "{error}"),
        }
    }
    panic!("no shard end after 20 reads");
}

#[tokio::test]
async fn a_failed_listing_at_the_shard_end_loses_no_record() {
    let interruptions = [
        Interruption::RetriedWithinTheCall,
        Interruption::ReturnedToTheCaller,
        Interruption::CallDropped,
    ];
    // Every case runs before the comparison, so a failure shows them all.
    let mut outcomes = Vec::new();
    for interruption in interruptions {
        let faults = Faults::default();
        faults.omit_child_shards(true);
        let (source, _running) = closed_shard_of_five(&faults).await;
        let stream = StreamName::new("ending").expect("name");
        let mut reader = source
            .open_reader(
                &stream,
                &ShardId::from_index(0),
                StartingPosition::TrimHorizon,
            )
            .await
            .expect("open");
        let mut records = Vec::new();
        match interruption {
            Interruption::RetriedWithinTheCall => {
                // One more than a listing's own retries: the listing fails once as a whole.
                faults.lose_listings(quick().backoff.max_retries + 1);
            }
            Interruption::ReturnedToTheCaller => {
                faults.lose_listings(u32::MAX);
                let error = reader
                    .next_batch(100)
                    .await
                    .expect_err("ListShards fails on every retry");
                assert!(error.is_transient(), "{interruption:?}: {error}");
                faults.lose_listings(0);
            }
            Interruption::CallDropped => {
                faults.lose_listings(u32::MAX);
                tokio::select! {
                    result = reader.next_batch(100) => {
                        panic!("{interruption:?}: the read ended while ListShards fails: {result:?}")
                    }
                    () = faults.listing_lost() => {}
                }
                faults.lose_listings(0);
            }
        }
        let children = read_to_the_end(&mut reader, &mut records).await;
        let child_ids: Vec<String> = children.iter().map(|c| c.shard_id.to_string()).collect();
        outcomes.push((interruption, data(&records), child_ids));
    }
    let expected: Vec<_> = interruptions
        .iter()
        .map(|&interruption| {
            (
                interruption,
                ["before-0", "before-1", "before-2", "before-3", "before-4"]
                    .map(String::from)
                    .to_vec(),
                ["shardId-000000000001", "shardId-000000000002"]
                    .map(String::from)
                    .to_vec(),
            )
        })
        .collect();
    assert_eq!(outcomes, expected);
}

#[tokio::test]
async fn no_end_is_claimed_for_a_shard_that_is_still_open() {
    let faults = Faults::default();
    let engine = Engine::in_memory();
    engine
        .create_stream("open", StreamOptions::with_shards(1))
        .expect("create");
    put(&engine, "open", "first", 3);
    let (endpoint, _running) = serve(engine.clone(), HttpConfig::default()).await;
    let source = KinesisSource::new(faults.client(&endpoint))
        .with_config(quick())
        .expect("config");
    let stream = StreamName::new("open").expect("name");
    let mut reader = source
        .open_reader(
            &stream,
            &ShardId::from_index(0),
            StartingPosition::TrimHorizon,
        )
        .await
        .expect("open");

    // No way on and no children, yet ListShards shows the shard open: not an end (a worker
    // would checkpoint SHARD_END and never read the shard again), but a failure worth retrying.
    faults.omit_next_shard_iterator(true);
    let error = reader
        .next_batch(100)
        .await
        .expect_err("an open shard answered without a next iterator");
    assert!(error.is_transient(), "{error}");

    faults.omit_next_shard_iterator(false);
    let batch = reader.next_batch(100).await.expect("read");
    assert!(!batch.is_shard_end());
    assert_eq!(data(&batch.records), ["first-0", "first-1", "first-2"]);
    put(&engine, "open", "second", 2);
    let batch = reader.next_batch(100).await.expect("read on");
    assert_eq!(data(&batch.records), ["second-0", "second-1"]);
}
