//! Every Kinesis validation answers with a typed error naming the field and the limit.

mod common;

use bytes::Bytes;
use kcl_core::{SequenceNumber, StartingPosition};
use kcl_engine::{Engine, Error, PutRecordsEntry, StreamOptions};

fn engine_with(stream: &str, shards: u64) -> Engine {
    let engine = Engine::in_memory();
    engine
        .create_stream(stream, StreamOptions::with_shards(shards))
        .unwrap();
    engine
}

fn field_of(error: Error) -> &'static str {
    match error {
        Error::InvalidArgument { field, .. } => field,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn stream_names_are_checked() {
    let engine = Engine::in_memory();
    for bad in ["", "has space", "slash/name", &"n".repeat(129)] {
        let error = engine
            .create_stream(bad, StreamOptions::with_shards(1))
            .unwrap_err();
        assert_eq!(field_of(error), "StreamName", "{bad:?}");
    }
    assert!(
        engine
            .create_stream(&"n".repeat(128), StreamOptions::with_shards(1))
            .is_ok()
    );
}

#[test]
fn stream_options_are_checked() {
    let engine = Engine::in_memory();
    let cases = [
        (StreamOptions::with_shards(0), "ShardCount"),
        (StreamOptions::with_shards(10_001), "ShardCount"),
        (
            StreamOptions::with_shards(1).retention_hours(23),
            "RetentionPeriodHours",
        ),
        (
            StreamOptions::with_shards(1).retention_hours(8_761),
            "RetentionPeriodHours",
        ),
        (
            StreamOptions::with_shards(1).max_record_size_kib(1_023),
            "MaxRecordSizeInKiB",
        ),
        (
            StreamOptions::with_shards(1).max_record_size_kib(10_241),
            "MaxRecordSizeInKiB",
        ),
    ];
    for (options, field) in cases {
        let error = engine.create_stream("s", options).unwrap_err();
        assert_eq!(field_of(error), field, "{options:?}");
    }
    assert!(
        engine.list_streams().is_empty(),
        "no refused stream was created"
    );
}

#[test]
fn a_taken_name_and_unknown_streams_are_refused() {
    let engine = engine_with("s", 1);
    assert!(matches!(
        engine.create_stream("s", StreamOptions::with_shards(1)),
        Err(Error::ResourceInUse { .. })
    ));
    assert!(matches!(
        engine.describe_stream("nope"),
        Err(Error::StreamNotFound { .. })
    ));
    assert!(matches!(
        engine.put_record("nope", PutRecordsEntry::new("k", "v")),
        Err(Error::StreamNotFound { .. })
    ));
    assert!(matches!(
        engine.delete_stream("nope"),
        Err(Error::StreamNotFound { .. })
    ));
}

#[test]
fn partition_keys_must_hold_1_to_256_characters() {
    let engine = engine_with("s", 1);
    for bad in [String::new(), "k".repeat(257), "é".repeat(257)] {
        let error = engine
            .put_record("s", PutRecordsEntry::new(bad.clone(), "v"))
            .unwrap_err();
        assert_eq!(
            field_of(error),
            "PartitionKey",
            "{} chars",
            bad.chars().count()
        );
    }
    // 256 multi-byte characters are 512 bytes but still a valid key.
    assert!(
        engine
            .put_record("s", PutRecordsEntry::new("é".repeat(256), "v"))
            .is_ok()
    );
}

#[test]
fn records_over_the_stream_maximum_are_refused() {
    let engine = Engine::in_memory();
    engine
        .create_stream("small", StreamOptions::with_shards(1))
        .unwrap();
    engine
        .create_stream(
            "large",
            StreamOptions::with_shards(1).max_record_size_kib(2_048),
        )
        .unwrap();
    let mib = Bytes::from(vec![0u8; 1024 * 1024]);
    let error = engine
        .put_record("small", PutRecordsEntry::new("k", mib.clone()))
        .unwrap_err();
    let message = error.to_string();
    assert_eq!(field_of(error), "Data");
    assert!(message.contains("1048576"), "names the limit: {message}");
    assert!(
        engine
            .put_record(
                "small",
                PutRecordsEntry::new("k", vec![0u8; 1024 * 1024 - 1])
            )
            .is_ok()
    );
    assert!(
        engine
            .put_record("large", PutRecordsEntry::new("k", mib))
            .is_ok()
    );
}

#[test]
fn batches_hold_1_to_500_records_and_at_most_10_mib() {
    let engine = engine_with("s", 1);
    assert_eq!(
        field_of(engine.put_records("s", &[]).unwrap_err()),
        "Records"
    );
    let many = vec![PutRecordsEntry::new("k", "v"); 501];
    assert_eq!(
        field_of(engine.put_records("s", &many).unwrap_err()),
        "Records"
    );
    let big = vec![PutRecordsEntry::new("k", vec![0u8; 1000 * 1024]); 11];
    assert_eq!(
        field_of(engine.put_records("s", &big).unwrap_err()),
        "Records"
    );
    assert_eq!(engine.put_records("s", &many[..500]).unwrap().len(), 500);
}

#[test]
fn a_bad_entry_fails_alone() {
    let engine = engine_with("s", 4);
    let batch = vec![
        PutRecordsEntry::new("good-1", "a"),
        PutRecordsEntry::new("", "empty key"),
        PutRecordsEntry::new("good-2", "b")
            .with_explicit_hash_key("340282366920938463463374607431768211456"),
        PutRecordsEntry::new("good-3", "c"),
    ];
    let mut results = engine.put_records("s", &batch).unwrap().into_iter();
    let first = results.next().unwrap().unwrap();
    assert_eq!(
        field_of(results.next().unwrap().unwrap_err()),
        "PartitionKey"
    );
    assert_eq!(
        field_of(results.next().unwrap().unwrap_err()),
        "ExplicitHashKey"
    );
    let last = results.next().unwrap().unwrap();
    assert!(results.next().is_none());
    // The good entries were written and can be read back.
    for written in [first, last] {
        let records = common::read_all(
            &engine,
            "s",
            written.shard_id.as_str(),
            StartingPosition::AtSequence(written.sequence_number.clone()),
        );
        assert_eq!(records[0].sequence_number, written.sequence_number);
    }
}

#[test]
fn explicit_hash_keys_must_be_in_range() {
    let engine = engine_with("s", 2);
    for bad in ["-1", "01", "x", "340282366920938463463374607431768211456"] {
        let error = engine
            .put_record(
                "s",
                PutRecordsEntry::new("k", "v").with_explicit_hash_key(bad),
            )
            .unwrap_err();
        assert_eq!(field_of(error), "ExplicitHashKey", "{bad:?}");
    }
    let top = engine
        .put_record(
            "s",
            PutRecordsEntry::new("k", "v").with_explicit_hash_key(u128::MAX.to_string()),
        )
        .unwrap();
    assert_eq!(top.shard_id.as_str(), "shardId-000000000001");
}

#[test]
fn unknown_shards_and_foreign_sequence_numbers_are_refused() {
    let engine = engine_with("s", 2);
    let written = engine
        .put_record("s", PutRecordsEntry::new("k", "v"))
        .unwrap();
    let other_shard = if written.shard_id.as_str().ends_with('0') {
        "shardId-000000000001"
    } else {
        "shardId-000000000000"
    };
    assert!(matches!(
        engine.open_reader("s", "shardId-000000000009", StartingPosition::TrimHorizon),
        Err(Error::ShardNotFound { .. })
    ));
    assert!(matches!(
        engine.open_reader("s", "not-a-shard", StartingPosition::TrimHorizon),
        Err(Error::ShardNotFound { .. })
    ));
    let foreign = [
        written.sequence_number.clone(),
        SequenceNumber::new("12345").unwrap(),
    ];
    for number in foreign {
        let error = engine
            .open_reader(
                "s",
                other_shard,
                StartingPosition::AtSequence(number.clone()),
            )
            .unwrap_err();
        assert_eq!(field_of(error), "StartingSequenceNumber", "{number}");
    }
    // A number of the right shard that was never written is refused too.
    let beyond = format!(
        "{}",
        written.sequence_number.as_str().parse::<u128>().unwrap() + 1
    );
    let error = engine
        .open_reader(
            "s",
            written.shard_id.as_str(),
            StartingPosition::AfterSequence(SequenceNumber::new(&beyond).unwrap()),
        )
        .unwrap_err();
    assert_eq!(field_of(error), "StartingSequenceNumber");
}

#[test]
fn resharding_mistakes_are_refused() {
    let engine = engine_with("s", 3);
    let half = (u128::MAX / 3).to_string();
    // Split key outside the parent's range, or at its very start.
    assert_eq!(
        field_of(
            engine
                .split_shard("s", "shardId-000000000000", &u128::MAX.to_string())
                .unwrap_err()
        ),
        "NewStartingHashKey"
    );
    assert_eq!(
        field_of(
            engine
                .split_shard("s", "shardId-000000000000", "0")
                .unwrap_err()
        ),
        "NewStartingHashKey"
    );
    assert_eq!(
        field_of(
            engine
                .split_shard("s", "shardId-000000000000", "not a number")
                .unwrap_err()
        ),
        "NewStartingHashKey"
    );
    // Shards 0 and 2 are not adjacent.
    assert_eq!(
        field_of(
            engine
                .merge_shards("s", "shardId-000000000000", "shardId-000000000002")
                .unwrap_err()
        ),
        "AdjacentShardToMerge"
    );
    assert_eq!(
        field_of(
            engine
                .merge_shards("s", "shardId-000000000000", "shardId-000000000000")
                .unwrap_err()
        ),
        "AdjacentShardToMerge"
    );
    // A closed shard cannot be split or merged again.
    engine
        .split_shard("s", "shardId-000000000000", &(u128::MAX / 6).to_string())
        .unwrap();
    assert_eq!(
        field_of(
            engine
                .split_shard("s", "shardId-000000000000", &(u128::MAX / 12).to_string())
                .unwrap_err()
        ),
        "ShardToSplit"
    );
    assert_eq!(
        field_of(
            engine
                .merge_shards("s", "shardId-000000000000", "shardId-000000000001")
                .unwrap_err()
        ),
        "ShardToMerge"
    );
    assert!(matches!(
        engine.split_shard("s", "shardId-000000000042", &half),
        Err(Error::ShardNotFound { .. })
    ));
    // Uniform scaling: at most double, at least half.
    let open = engine.describe_stream("s").unwrap().open_shard_count as u64;
    assert_eq!(
        field_of(engine.update_shard_count("s", open * 2 + 1).unwrap_err()),
        "TargetShardCount"
    );
    assert_eq!(
        field_of(
            engine
                .update_shard_count("s", open.div_ceil(2) - 1)
                .unwrap_err()
        ),
        "TargetShardCount"
    );
}

#[test]
fn retention_changes_are_checked() {
    let engine = engine_with("s", 1);
    assert_eq!(
        field_of(engine.increase_retention("s", 8_761).unwrap_err()),
        "RetentionPeriodHours"
    );
    assert_eq!(
        field_of(engine.decrease_retention("s", 23).unwrap_err()),
        "RetentionPeriodHours"
    );
    engine.increase_retention("s", 48).unwrap();
    assert_eq!(
        field_of(engine.increase_retention("s", 24).unwrap_err()),
        "RetentionPeriodHours"
    );
    assert_eq!(
        field_of(engine.decrease_retention("s", 72).unwrap_err()),
        "RetentionPeriodHours"
    );
    engine.decrease_retention("s", 24).unwrap();
    assert_eq!(engine.describe_stream("s").unwrap().retention_hours, 24);
}

#[test]
fn read_limits_are_checked() {
    let engine = engine_with("s", 1);
    let mut reader = engine
        .open_reader("s", "shardId-000000000000", StartingPosition::TrimHorizon)
        .unwrap();
    assert_eq!(field_of(reader.read(0).unwrap_err()), "Limit");
    assert_eq!(field_of(reader.read(10_001).unwrap_err()), "Limit");
}
