//! Splits and merges close parents, link children to them, and route writes to the children.

mod common;

use kcl_core::{HashKey, ShardDescription, StartingPosition};
use kcl_engine::{Engine, PutRecordsEntry, ShardFilter, StreamOptions};

fn shard<'a>(shards: &'a [ShardDescription], id: &str) -> &'a ShardDescription {
    shards.iter().find(|s| s.shard_id.as_str() == id).unwrap()
}

/// A key whose hash falls in the given half of the key space.
fn key_in(low_half: bool) -> String {
    (0..)
        .map(|i| format!("key-{i}"))
        .find(|key| (HashKey::of_partition_key(key).0 < 1u128 << 127) == low_half)
        .unwrap()
}

#[test]
fn a_split_closes_the_parent_and_routes_to_the_children() {
    let engine = Engine::in_memory();
    engine
        .create_stream("s", StreamOptions::with_shards(1))
        .unwrap();
    common::put_keys(&engine, "s", 100, 10);
    let middle = (1u128 << 127).to_string();
    engine
        .split_shard("s", "shardId-000000000000", &middle)
        .unwrap();

    let shards = engine.list_shards("s", &ShardFilter::default()).unwrap();
    assert_eq!(shards.len(), 3);
    let parent = shard(&shards, "shardId-000000000000");
    let ending = parent
        .ending_sequence_number
        .clone()
        .expect("parent closed");
    let low = shard(&shards, "shardId-000000000001");
    let high = shard(&shards, "shardId-000000000002");
    for child in [low, high] {
        assert_eq!(child.parent_shard_id, Some(parent.shard_id.clone()));
        assert_eq!(child.adjacent_parent_shard_id, None);
        assert!(child.is_open());
    }
    assert_eq!(
        (low.hash_key_range.start, low.hash_key_range.end),
        (0, (1u128 << 127) - 1)
    );
    assert_eq!(
        (high.hash_key_range.start, high.hash_key_range.end),
        (1u128 << 127, u128::MAX)
    );

    // Reading the parent to its end returns all 100 records, the last at the ending number,
    // then reports both children.
    let mut reader = engine
        .open_reader("s", "shardId-000000000000", StartingPosition::TrimHorizon)
        .unwrap();
    let batch = reader.read(10_000).unwrap();
    assert_eq!(batch.records.len(), 100);
    assert_eq!(batch.records.last().unwrap().sequence_number, ending);
    let children = batch.child_shards.expect("children reported at the end");
    let ids: Vec<&str> = children.iter().map(|c| c.shard_id.as_str()).collect();
    assert_eq!(ids, ["shardId-000000000001", "shardId-000000000002"]);
    assert!(
        children
            .iter()
            .all(|c| c.parent_shards == vec![parent.shard_id.clone()])
    );
    // And keeps reporting the end.
    assert!(reader.read(10).unwrap().is_shard_end());

    // New writes go to the child that owns the key's hash.
    for low_half in [true, false] {
        let written = engine
            .put_record("s", PutRecordsEntry::new(key_in(low_half), "x"))
            .unwrap();
        let expected = if low_half {
            "shardId-000000000001"
        } else {
            "shardId-000000000002"
        };
        assert_eq!(written.shard_id.as_str(), expected);
    }
}

#[test]
fn a_merge_names_both_parents_and_both_report_the_child() {
    let engine = Engine::in_memory();
    engine
        .create_stream("s", StreamOptions::with_shards(2))
        .unwrap();
    common::put_keys(&engine, "s", 50, 50);
    engine
        .merge_shards("s", "shardId-000000000001", "shardId-000000000000")
        .unwrap();

    let shards = engine.list_shards("s", &ShardFilter::default()).unwrap();
    let child = shard(&shards, "shardId-000000000002");
    assert_eq!(
        child.parent_shard_id.as_ref().unwrap().as_str(),
        "shardId-000000000001"
    );
    assert_eq!(
        child.adjacent_parent_shard_id.as_ref().unwrap().as_str(),
        "shardId-000000000000"
    );
    assert_eq!(
        (child.hash_key_range.start, child.hash_key_range.end),
        (0, u128::MAX)
    );
    for parent in ["shardId-000000000000", "shardId-000000000001"] {
        assert!(!shard(&shards, parent).is_open());
        let mut reader = engine
            .open_reader("s", parent, StartingPosition::TrimHorizon)
            .unwrap();
        let mut end = None;
        while end.is_none() {
            end = reader.read(10_000).unwrap().child_shards;
        }
        let children = end.unwrap();
        assert_eq!(children.len(), 1);
        assert_eq!(children[0].shard_id, child.shard_id);
        assert_eq!(children[0].parent_shards.len(), 2);
    }
    let written = engine
        .put_record("s", PutRecordsEntry::new("any", "x"))
        .unwrap();
    assert_eq!(written.shard_id, child.shard_id);
}

#[test]
fn shard_filters_select_by_lineage_and_time() {
    let start = std::time::SystemTime::now();
    let clock = std::sync::Arc::new(kcl_engine::ManualClock::new(start));
    let engine = Engine::open(kcl_engine::EngineConfig::in_memory().clock(clock.clone())).unwrap();
    engine
        .create_stream("s", StreamOptions::with_shards(2))
        .unwrap();
    clock.advance(std::time::Duration::from_secs(60));
    engine
        .split_shard("s", "shardId-000000000000", "1000")
        .unwrap();
    clock.advance(std::time::Duration::from_secs(60));
    let ids = |filter: ShardFilter| -> Vec<String> {
        engine
            .list_shards("s", &filter)
            .unwrap()
            .into_iter()
            .map(|s| s.shard_id.to_string())
            .collect()
    };
    assert_eq!(ids(ShardFilter::FromTrimHorizon).len(), 4);
    assert_eq!(
        ids(ShardFilter::AtLatest),
        [
            "shardId-000000000001",
            "shardId-000000000002",
            "shardId-000000000003"
        ]
    );
    assert_eq!(
        ids(ShardFilter::AtTrimHorizon),
        ["shardId-000000000000", "shardId-000000000001"]
    );
    assert_eq!(
        ids(ShardFilter::AfterShardId(kcl_core::ShardId::from_index(1))),
        ["shardId-000000000002", "shardId-000000000003"]
    );
    let long_ago = std::time::UNIX_EPOCH;
    assert_eq!(
        ids(ShardFilter::AtTimestamp(long_ago)),
        ["shardId-000000000000", "shardId-000000000001"]
    );
    assert_eq!(ids(ShardFilter::FromTimestamp(long_ago)).len(), 4);
    let before_split = start + std::time::Duration::from_secs(30);
    assert_eq!(
        ids(ShardFilter::AtTimestamp(before_split)),
        ["shardId-000000000000", "shardId-000000000001"]
    );
    let after_split = start + std::time::Duration::from_secs(90);
    assert_eq!(
        ids(ShardFilter::AtTimestamp(after_split)),
        [
            "shardId-000000000001",
            "shardId-000000000002",
            "shardId-000000000003"
        ]
    );
    assert_eq!(ids(ShardFilter::FromTimestamp(after_split)).len(), 3);
}

#[test]
fn uniform_scaling_reaches_equal_ranges() {
    let engine = Engine::in_memory();
    engine
        .create_stream("s", StreamOptions::with_shards(3))
        .unwrap();
    for target in [6, 4, 2, 3, 5] {
        engine.update_shard_count("s", target).unwrap();
        let mut open = engine.list_shards("s", &ShardFilter::AtLatest).unwrap();
        open.sort_by_key(|shard| shard.hash_key_range.start);
        let ranges: Vec<_> = open.iter().map(|s| s.hash_key_range).collect();
        let expected: Vec<_> = (0..target)
            .map(|i| kcl_core::HashKeyRange::uniform_slice(i, target))
            .collect();
        assert_eq!(ranges, expected, "target {target}");
    }
}
