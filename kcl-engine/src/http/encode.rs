//! Engine values as the Kinesis JSON protocol spells them: timestamps as epoch seconds, blobs
//! as base64, hash keys and sequence numbers as decimal strings.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use kcl_core::{ChildShard, HashKeyRange, Record, ShardDescription};
use serde_json::{Value, json};

/// Seconds since the epoch, with milliseconds, as a JSON number.
pub(crate) fn timestamp(time: SystemTime) -> Value {
    let millis = time
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis())
        .unwrap_or(0);
    json!(millis as f64 / 1000.0)
}

fn hash_key_range(range: &HashKeyRange) -> Value {
    json!({
        "StartingHashKey": range.start.to_string(),
        "EndingHashKey": range.end.to_string(),
    })
}

/// A `Shard` of DescribeStream and ListShards.
pub(crate) fn shard(shard: &ShardDescription) -> Value {
    let mut range = json!({
        "StartingSequenceNumber": shard.starting_sequence_number.to_string(),
    });
    if let Some(ending) = &shard.ending_sequence_number {
        range["EndingSequenceNumber"] = json!(ending.to_string());
    }
    let mut value = json!({
        "ShardId": shard.shard_id.to_string(),
        "HashKeyRange": hash_key_range(&shard.hash_key_range),
        "SequenceNumberRange": range,
    });
    if let Some(parent) = &shard.parent_shard_id {
        value["ParentShardId"] = json!(parent.to_string());
    }
    if let Some(adjacent) = &shard.adjacent_parent_shard_id {
        value["AdjacentParentShardId"] = json!(adjacent.to_string());
    }
    value
}

/// A `ChildShard` of GetRecords at the end of a closed shard.
pub(crate) fn child_shard(child: &ChildShard) -> Value {
    json!({
        "ShardId": child.shard_id.to_string(),
        "ParentShards": child.parent_shards.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "HashKeyRange": hash_key_range(&child.hash_key_range),
    })
}

/// A `Record` of GetRecords.
pub(crate) fn record(record: &Record) -> Value {
    json!({
        "SequenceNumber": record.sequence_number.to_string(),
        "ApproximateArrivalTimestamp": timestamp(record.approximate_arrival),
        "Data": base64::engine::general_purpose::STANDARD.encode(&record.data),
        "PartitionKey": record.partition_key.as_str(),
    })
}

/// The stream mode every stream of the engine has.
pub(crate) fn stream_mode() -> Value {
    json!({ "StreamMode": "PROVISIONED" })
}

/// Enhanced monitoring, which the engine does not do.
pub(crate) fn enhanced_monitoring() -> Value {
    json!([{ "ShardLevelMetrics": [] }])
}
