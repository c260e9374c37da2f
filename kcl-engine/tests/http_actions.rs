//! Every action of the Kinesis API, through `aws-sdk-kinesis`, against the engine's server.

mod http_support;

use std::time::{Duration, SystemTime};

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, ScalingType, ShardFilter, ShardFilterType, ShardIteratorType,
};
use http_support::TestServer;

/// The Kinesis error type of a failed call (`""` if it succeeded).
fn error_type<T, E: ProvideErrorMetadata, R>(result: Result<T, SdkError<E, R>>) -> String {
    match result {
        Ok(_) => String::new(),
        Err(error) => error.code().unwrap_or("(no code)").to_owned(),
    }
}

async fn create(client: &aws_sdk_kinesis::Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("create stream");
}

fn entry(key: &str, data: &str) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .partition_key(key)
        .data(Blob::new(data.as_bytes().to_vec()))
        .build()
        .expect("entry")
}

async fn iterator(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    kind: ShardIteratorType,
) -> String {
    client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(kind)
        .send()
        .await
        .expect("get shard iterator")
        .shard_iterator()
        .expect("iterator")
        .to_owned()
}

/// Reads a shard from `iterator` until it is caught up or ended: (data, child shard ids, ended).
async fn read_to_end(
    client: &aws_sdk_kinesis::Client,
    mut iterator: String,
) -> (Vec<String>, Vec<(String, Vec<String>)>, bool) {
    let mut data = Vec::new();
    loop {
        let out = client
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .expect("get records");
        for record in out.records() {
            data.push(String::from_utf8_lossy(record.data().as_ref()).into_owned());
        }
        let children: Vec<(String, Vec<String>)> = out
            .child_shards()
            .iter()
            .map(|child| (child.shard_id().to_owned(), child.parent_shards().to_vec()))
            .collect();
        match out.next_shard_iterator() {
            None => return (data, children, true),
            Some(next) if out.records().is_empty() => {
                assert!(children.is_empty(), "children only at the end");
                let _ = next;
                return (data, children, false);
            }
            Some(next) => iterator = next.to_owned(),
        }
    }
}

#[tokio::test]
async fn streams_are_created_described_listed_retained_and_deleted() {
    let server = TestServer::start().await;
    let client = server.client();
    create(&client, "orders", 3).await;
    assert_eq!(
        error_type(
            client
                .create_stream()
                .stream_name("orders")
                .shard_count(1)
                .send()
                .await
        ),
        "ResourceInUseException"
    );

    let described = client
        .describe_stream()
        .stream_name("orders")
        .send()
        .await
        .expect("describe");
    let description = described.stream_description().expect("description");
    assert_eq!(description.stream_name(), "orders");
    assert_eq!(description.stream_status().as_str(), "ACTIVE");
    assert_eq!(description.shards().len(), 3);
    assert!(!description.has_more_shards());
    assert_eq!(description.retention_period_hours(), 24);
    let arn = description.stream_arn().to_owned();
    assert_eq!(arn, "arn:aws:kinesis:us-east-1:000000000000:stream/orders");

    // The same stream by ARN, a page of shards at a time.
    let page = client
        .describe_stream()
        .stream_arn(&arn)
        .limit(2)
        .send()
        .await
        .expect("describe by ARN");
    let page = page.stream_description().expect("description");
    assert_eq!(page.shards().len(), 2);
    assert!(page.has_more_shards());
    let rest = client
        .describe_stream()
        .stream_name("orders")
        .exclusive_start_shard_id(page.shards()[1].shard_id())
        .send()
        .await
        .expect("describe the rest");
    assert_eq!(rest.stream_description().map(|d| d.shards().len()), Some(1));

    let summary = client
        .describe_stream_summary()
        .stream_arn(&arn)
        .send()
        .await
        .expect("summary");
    let summary = summary.stream_description_summary().expect("summary");
    assert_eq!(summary.open_shard_count(), 3);
    assert_eq!(summary.stream_arn(), arn);

    create(&client, "audit", 1).await;
    let listed = client.list_streams().send().await.expect("list");
    assert_eq!(listed.stream_names(), ["audit", "orders"]);
    assert!(!listed.has_more_streams());
    assert_eq!(listed.stream_summaries().len(), 2);
    let first = client.list_streams().limit(1).send().await.expect("list 1");
    assert_eq!(first.stream_names(), ["audit"]);
    assert!(first.has_more_streams());
    let second = client
        .list_streams()
        .next_token(first.next_token().expect("next token"))
        .send()
        .await
        .expect("list next");
    assert_eq!(second.stream_names(), ["orders"]);

    client
        .increase_stream_retention_period()
        .stream_name("orders")
        .retention_period_hours(48)
        .send()
        .await
        .expect("increase");
    assert_eq!(
        error_type(
            client
                .decrease_stream_retention_period()
                .stream_name("orders")
                .retention_period_hours(72)
                .send()
                .await
        ),
        "InvalidArgumentException"
    );
    client
        .decrease_stream_retention_period()
        .stream_arn(&arn)
        .retention_period_hours(24)
        .send()
        .await
        .expect("decrease");
    assert_eq!(
        error_type(
            client
                .increase_stream_retention_period()
                .stream_name("orders")
                .retention_period_hours(9_000)
                .send()
                .await
        ),
        "ValidationException"
    );

    client
        .delete_stream()
        .stream_name("orders")
        .send()
        .await
        .expect("delete");
    assert_eq!(
        error_type(client.describe_stream().stream_name("orders").send().await),
        "ResourceNotFoundException"
    );
}

#[tokio::test]
async fn records_are_written_and_read_back_with_every_iterator_type() {
    let server = TestServer::start().await;
    let client = server.client();
    create(&client, "events", 1).await;
    let shard = "shardId-000000000000";
    let before = SystemTime::now() - Duration::from_secs(1);

    let first = client
        .put_record()
        .stream_name("events")
        .partition_key("k")
        .data(Blob::new(b"zero".to_vec()))
        .send()
        .await
        .expect("put record");
    assert_eq!(first.shard_id(), shard);
    let put = client
        .put_records()
        .stream_name("events")
        .records(entry("k", "one"))
        .records(entry("k", "two"))
        .records(entry("k", "three"))
        .send()
        .await
        .expect("put records");
    assert_eq!(put.failed_record_count(), Some(0));
    assert_eq!(put.records().len(), 3);
    let sequence: Vec<String> = put
        .records()
        .iter()
        .map(|r| r.sequence_number().expect("sequence number").to_owned())
        .collect();

    let (all, _, ended) = read_to_end(
        &client,
        iterator(&client, "events", shard, ShardIteratorType::TrimHorizon).await,
    )
    .await;
    assert_eq!(all, ["zero", "one", "two", "three"]);
    assert!(!ended, "an open shard never ends");

    let at = client
        .get_shard_iterator()
        .stream_name("events")
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(&sequence[1])
        .send()
        .await
        .expect("AT_SEQUENCE_NUMBER");
    let (from_two, _, _) = read_to_end(&client, at.shard_iterator().expect("it").to_owned()).await;
    assert_eq!(from_two, ["two", "three"]);

    let after = client
        .get_shard_iterator()
        .stream_arn("arn:aws:kinesis:us-east-1:000000000000:stream/events")
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
        .starting_sequence_number(&sequence[1])
        .send()
        .await
        .expect("AFTER_SEQUENCE_NUMBER");
    let (after_two, _, _) =
        read_to_end(&client, after.shard_iterator().expect("it").to_owned()).await;
    assert_eq!(after_two, ["three"]);

    let at_time = client
        .get_shard_iterator()
        .stream_name("events")
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(DateTime::from(before))
        .send()
        .await
        .expect("AT_TIMESTAMP");
    let (since, _, _) =
        read_to_end(&client, at_time.shard_iterator().expect("it").to_owned()).await;
    assert_eq!(since.len(), 4);

    // LATEST sees only what is written after it.
    let latest = iterator(&client, "events", shard, ShardIteratorType::Latest).await;
    client
        .put_record()
        .stream_name("events")
        .partition_key("k")
        .data(Blob::new(b"four".to_vec()))
        .send()
        .await
        .expect("put");
    let (new, _, _) = read_to_end(&client, latest).await;
    assert_eq!(new, ["four"]);

    // Limit, MillisBehindLatest and arrival timestamps.
    let it = iterator(&client, "events", shard, ShardIteratorType::TrimHorizon).await;
    let page = client
        .get_records()
        .shard_iterator(it)
        .limit(2)
        .send()
        .await
        .expect("get records");
    assert_eq!(page.records().len(), 2);
    assert!(page.millis_behind_latest().is_some());
    assert!(page.next_shard_iterator().is_some());
    let arrival = page.records()[0]
        .approximate_arrival_timestamp()
        .expect("arrival");
    assert!(
        arrival.secs()
            >= before
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
    );
    assert_eq!(page.records()[0].partition_key(), "k");
}

#[tokio::test]
async fn reading_follows_a_split_and_a_merge_through_child_shards() {
    let server = TestServer::start().await;
    let client = server.client();
    create(&client, "lineage", 1).await;
    let parent = "shardId-000000000000";
    let keys: Vec<String> = (0..20).map(|i| format!("key-{i}")).collect();
    let mut batch = client.put_records().stream_name("lineage");
    for key in &keys {
        batch = batch.records(entry(key, &format!("before-{key}")));
    }
    batch.send().await.expect("put before split");

    client
        .split_shard()
        .stream_name("lineage")
        .shard_to_split(parent)
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .expect("split");
    let mut batch = client.put_records().stream_name("lineage");
    for key in &keys {
        batch = batch.records(entry(key, &format!("after-{key}")));
    }
    let written = batch.send().await.expect("put after split");
    assert!(
        written
            .records()
            .iter()
            .all(|r| r.shard_id() != Some(parent))
    );

    // The parent: every record from before the split, then its children, then no iterator.
    let (data, children, ended) = read_to_end(
        &client,
        iterator(&client, "lineage", parent, ShardIteratorType::TrimHorizon).await,
    )
    .await;
    assert_eq!(data.len(), 20);
    assert!(ended, "a closed shard read to its end has no next iterator");
    assert_eq!(
        children,
        [
            ("shardId-000000000001".to_owned(), vec![parent.to_owned()]),
            ("shardId-000000000002".to_owned(), vec![parent.to_owned()]),
        ]
    );
    let mut after = Vec::new();
    for (child, _) in &children {
        let (data, _, ended) = read_to_end(
            &client,
            iterator(&client, "lineage", child, ShardIteratorType::TrimHorizon).await,
        )
        .await;
        assert!(!ended);
        after.extend(data);
    }
    after.sort();
    let mut expected: Vec<String> = keys.iter().map(|key| format!("after-{key}")).collect();
    expected.sort();
    assert_eq!(after, expected);

    // Merging the children: the new shard names both parents.
    client
        .merge_shards()
        .stream_name("lineage")
        .shard_to_merge("shardId-000000000001")
        .adjacent_shard_to_merge("shardId-000000000002")
        .send()
        .await
        .expect("merge");
    let (_, children, ended) = read_to_end(
        &client,
        iterator(
            &client,
            "lineage",
            "shardId-000000000001",
            ShardIteratorType::TrimHorizon,
        )
        .await,
    )
    .await;
    assert!(ended);
    assert_eq!(
        children,
        [(
            "shardId-000000000003".to_owned(),
            vec![
                "shardId-000000000001".to_owned(),
                "shardId-000000000002".to_owned()
            ]
        )]
    );
    let listed = client
        .list_shards()
        .stream_name("lineage")
        .send()
        .await
        .expect("list shards");
    let merged = listed
        .shards()
        .iter()
        .find(|s| s.shard_id() == "shardId-000000000003")
        .expect("merged shard");
    assert_eq!(merged.parent_shard_id(), Some("shardId-000000000001"));
    assert_eq!(
        merged.adjacent_parent_shard_id(),
        Some("shardId-000000000002")
    );
    let closed = listed
        .shards()
        .iter()
        .find(|s| s.shard_id() == parent)
        .and_then(|s| s.sequence_number_range())
        .and_then(|r| r.ending_sequence_number());
    assert!(
        closed.is_some(),
        "a closed shard has an ending sequence number"
    );

    // A closed shard cannot be resharded again.
    assert_eq!(
        error_type(
            client
                .split_shard()
                .stream_name("lineage")
                .shard_to_split(parent)
                .new_starting_hash_key("1")
                .send()
                .await
        ),
        "InvalidArgumentException"
    );
}

#[tokio::test]
async fn list_shards_pages_and_filters() {
    let server = TestServer::start().await;
    let client = server.client();
    create(&client, "many", 3).await;
    client
        .split_shard()
        .stream_name("many")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("1000")
        .send()
        .await
        .expect("split");

    let mut ids = Vec::new();
    let mut page = client
        .list_shards()
        .stream_name("many")
        .max_results(2)
        .send()
        .await
        .expect("first page");
    loop {
        assert!(page.shards().len() <= 2);
        ids.extend(page.shards().iter().map(|s| s.shard_id().to_owned()));
        let Some(token) = page.next_token().map(str::to_owned) else {
            break;
        };
        page = client
            .list_shards()
            .next_token(token)
            .max_results(2)
            .send()
            .await
            .expect("next page");
    }
    assert_eq!(
        ids,
        (0..5)
            .map(|i| format!("shardId-{i:012}"))
            .collect::<Vec<_>>()
    );

    let open = client
        .list_shards()
        .stream_name("many")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtLatest)
                .build()
                .expect("filter"),
        )
        .send()
        .await
        .expect("AT_LATEST");
    assert_eq!(open.shards().len(), 4);
    assert!(
        open.shards()
            .iter()
            .all(|s| s.shard_id() != "shardId-000000000000")
    );

    let after = client
        .list_shards()
        .stream_name("many")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AfterShardId)
                .shard_id("shardId-000000000002")
                .build()
                .expect("filter"),
        )
        .send()
        .await
        .expect("AFTER_SHARD_ID");
    assert_eq!(after.shards().len(), 2);

    let horizon = client
        .list_shards()
        .stream_name("many")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtTrimHorizon)
                .build()
                .expect("filter"),
        )
        .send()
        .await
        .expect("AT_TRIM_HORIZON");
    let horizon: Vec<&str> = horizon.shards().iter().map(|s| s.shard_id()).collect();
    assert_eq!(
        horizon,
        [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002"
        ]
    );

    let since = client
        .list_shards()
        .stream_name("many")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::FromTimestamp)
                .timestamp(DateTime::from(SystemTime::now() + Duration::from_secs(60)))
                .build()
                .expect("filter"),
        )
        .send()
        .await
        .expect("FROM_TIMESTAMP");
    assert_eq!(since.shards().len(), 4, "shards open after a future time");

    let no_id = client
        .list_shards()
        .stream_name("many")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AfterShardId)
                .build()
                .expect("filter"),
        )
        .send()
        .await;
    assert_eq!(error_type(no_id), "InvalidArgumentException");

    let first = client
        .list_shards()
        .stream_name("many")
        .max_results(1)
        .send()
        .await
        .expect("page");
    let both = client
        .list_shards()
        .stream_name("many")
        .next_token(first.next_token().expect("token"))
        .send()
        .await;
    assert_eq!(error_type(both), "InvalidArgumentException");
    assert_eq!(
        error_type(client.list_shards().send().await),
        "InvalidArgumentException"
    );
    assert_eq!(
        error_type(client.list_shards().next_token("forged").send().await),
        "InvalidArgumentException"
    );
}

#[tokio::test]
async fn update_shard_count_rescales_uniformly() {
    let server = TestServer::start().await;
    let client = server.client();
    create(&client, "scaled", 2).await;
    let scaled = client
        .update_shard_count()
        .stream_name("scaled")
        .target_shard_count(4)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .expect("scale up");
    assert_eq!(scaled.current_shard_count(), Some(2));
    assert_eq!(scaled.target_shard_count(), Some(4));
    let summary = client
        .describe_stream_summary()
        .stream_name("scaled")
        .send()
        .await
        .expect("summary");
    assert_eq!(
        summary
            .stream_description_summary()
            .map(|s| s.open_shard_count()),
        Some(4)
    );
    assert_eq!(
        error_type(
            client
                .update_shard_count()
                .stream_name("scaled")
                .target_shard_count(9)
                .scaling_type(ScalingType::UniformScaling)
                .send()
                .await
        ),
        "InvalidArgumentException"
    );
}

#[tokio::test]
async fn tags_are_added_listed_and_removed() {
    let server = TestServer::start().await;
    let client = server.client();
    create(&client, "tagged", 1).await;
    client
        .add_tags_to_stream()
        .stream_name("tagged")
        .tags("team", "sensors")
        .tags("env", "test")
        .send()
        .await
        .expect("add tags");
    let tags = client
        .list_tags_for_stream()
        .stream_name("tagged")
        .send()
        .await
        .expect("list tags");
    let listed: Vec<(&str, Option<&str>)> =
        tags.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(listed, [("env", Some("test")), ("team", Some("sensors"))]);
    assert!(!tags.has_more_tags());

    let first = client
        .list_tags_for_stream()
        .stream_name("tagged")
        .limit(1)
        .send()
        .await
        .expect("page");
    assert_eq!(first.tags().len(), 1);
    assert!(first.has_more_tags());

    client
        .remove_tags_from_stream()
        .stream_name("tagged")
        .tag_keys("env")
        .send()
        .await
        .expect("remove");
    let tags = client
        .list_tags_for_stream()
        .stream_name("tagged")
        .send()
        .await
        .expect("list tags");
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(
        error_type(
            client
                .add_tags_to_stream()
                .stream_name("tagged")
                .tags("bad!", "x")
                .send()
                .await
        ),
        "InvalidArgumentException"
    );
}

#[tokio::test]
async fn bad_requests_answer_with_kinesis_error_types() {
    let server = TestServer::start().await;
    let client = server.client();
    create(&client, "strict", 1).await;

    assert_eq!(
        error_type(client.describe_stream().stream_name("missing").send().await),
        "ResourceNotFoundException"
    );
    assert_eq!(
        error_type(
            client
                .put_record()
                .stream_name("missing")
                .partition_key("k")
                .data(Blob::new(b"x".to_vec()))
                .send()
                .await
        ),
        "ResourceNotFoundException"
    );
    assert_eq!(
        error_type(
            client
                .get_shard_iterator()
                .stream_name("strict")
                .shard_id("shardId-000000000009")
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
        ),
        "ResourceNotFoundException"
    );
    assert_eq!(
        error_type(
            client
                .describe_stream()
                .stream_name("bad name!")
                .send()
                .await
        ),
        "ValidationException"
    );
    assert_eq!(
        error_type(
            client
                .put_record()
                .stream_name("strict")
                .partition_key("k".repeat(257))
                .data(Blob::new(b"x".to_vec()))
                .send()
                .await
        ),
        "ValidationException"
    );
    assert_eq!(
        error_type(
            client
                .put_record()
                .stream_name("strict")
                .partition_key("k")
                .explicit_hash_key("340282366920938463463374607431768211456")
                .data(Blob::new(b"x".to_vec()))
                .send()
                .await
        ),
        "InvalidArgumentException"
    );
    assert_eq!(
        error_type(
            client
                .put_record()
                .stream_name("strict")
                .partition_key("k")
                .data(Blob::new(vec![0u8; 1024 * 1024]))
                .send()
                .await
        ),
        "InvalidArgumentException",
        "data plus key above the stream's 1 MiB maximum"
    );
    let mut too_many = client.put_records().stream_name("strict");
    for i in 0..501 {
        too_many = too_many.records(entry(&i.to_string(), "x"));
    }
    assert_eq!(error_type(too_many.send().await), "ValidationException");
    assert_eq!(
        error_type(
            client
                .get_shard_iterator()
                .stream_name("strict")
                .shard_id("shardId-000000000000")
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .send()
                .await
        ),
        "InvalidArgumentException",
        "AT_SEQUENCE_NUMBER without a sequence number"
    );
    assert_eq!(
        error_type(
            client
                .get_shard_iterator()
                .stream_name("strict")
                .shard_id("shardId-000000000000")
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number("12345")
                .send()
                .await
        ),
        "InvalidArgumentException",
        "a sequence number this shard never issued"
    );
    let it = iterator(
        &client,
        "strict",
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
    )
    .await;
    assert_eq!(
        error_type(
            client
                .get_records()
                .shard_iterator(&it)
                .limit(0)
                .send()
                .await
        ),
        "ValidationException"
    );
    assert_eq!(
        error_type(
            client
                .get_records()
                .shard_iterator(&it)
                .limit(10_001)
                .send()
                .await
        ),
        "ValidationException"
    );

    // An iterator of a deleted stream does not read a new stream of the same name.
    client
        .delete_stream()
        .stream_name("strict")
        .send()
        .await
        .expect("delete");
    create(&client, "strict", 1).await;
    assert_eq!(
        error_type(client.get_records().shard_iterator(&it).send().await),
        "ResourceNotFoundException"
    );
}

/// A closed shard that retention removed answers ResourceNotFoundException to GetShardIterator
/// and to GetRecords with an iterator issued before, and ListShards leaves it out: a worker can
/// tell "this shard no longer exists" from a passing failure.
#[tokio::test]
async fn a_shard_removed_by_retention_is_not_found_over_http() {
    let clock = std::sync::Arc::new(kcl_engine::ManualClock::new(SystemTime::now()));
    let engine =
        kcl_engine::Engine::open(kcl_engine::EngineConfig::in_memory().clock(clock.clone()))
            .expect("engine");
    let server =
        TestServer::start_with(engine.clone(), kcl_engine::http::HttpConfig::default()).await;
    let client = server.client();
    create(&client, "aging", 1).await;
    let parent = "shardId-000000000000";
    client
        .put_records()
        .stream_name("aging")
        .records(entry("k", "old"))
        .send()
        .await
        .expect("put records");
    engine.split_shard("aging", parent, "1000").expect("split");
    let held = iterator(&client, "aging", parent, ShardIteratorType::TrimHorizon).await;
    // Iterators expire by the server's clock; records and shards by the engine's.
    clock.advance(Duration::from_secs(25 * 3600));
    engine.enforce_retention().expect("retention");

    assert_eq!(
        error_type(client.get_records().shard_iterator(&held).send().await),
        "ResourceNotFoundException"
    );
    assert_eq!(
        error_type(
            client
                .get_shard_iterator()
                .stream_name("aging")
                .shard_id(parent)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
        ),
        "ResourceNotFoundException"
    );
    let listed = client
        .list_shards()
        .stream_name("aging")
        .send()
        .await
        .expect("list shards");
    let ids: Vec<&str> = listed
        .shards()
        .iter()
        .map(|shard| shard.shard_id())
        .collect();
    assert_eq!(ids, ["shardId-000000000001", "shardId-000000000002"]);
}
