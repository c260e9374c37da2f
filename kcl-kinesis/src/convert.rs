//! SDK shapes as kcl-core vocabulary.

use std::time::SystemTime;

use aws_sdk_kinesis::types;
use kcl_core::{
    ChildShard, HashKeyRange, PartitionKey, Record, SequenceNumber, ShardDescription, ShardId,
};

/// A value of the service's answer that breaks kcl-core's rules. Not transient: reading it
/// again gives the same value.
fn malformed(field: &'static str, detail: impl std::fmt::Display) -> kcl_core::Error {
    kcl_core::Error::invalid(
        field,
        format!("the service answered a malformed {field}: {detail}"),
    )
}

fn hash_key_range(range: Option<&types::HashKeyRange>) -> Result<HashKeyRange, kcl_core::Error> {
    let range = range.ok_or_else(|| malformed("HashKeyRange", "none"))?;
    let parse = |text: &str| {
        text.parse::<u128>()
            .map_err(|error| malformed("HashKeyRange", format!("{text:?}: {error}")))
    };
    Ok(HashKeyRange {
        start: parse(range.starting_hash_key())?,
        end: parse(range.ending_hash_key())?,
    })
}

fn shard_id(text: &str) -> Result<ShardId, kcl_core::Error> {
    ShardId::new(text).map_err(|error| malformed("ShardId", error))
}

fn sequence_number(text: &str) -> Result<SequenceNumber, kcl_core::Error> {
    SequenceNumber::new(text).map_err(|error| malformed("SequenceNumber", error))
}

/// A shard of ListShards.
pub(crate) fn shard(shard: &types::Shard) -> Result<ShardDescription, kcl_core::Error> {
    let range = shard
        .sequence_number_range()
        .ok_or_else(|| malformed("SequenceNumberRange", "none"))?;
    Ok(ShardDescription {
        shard_id: shard_id(shard.shard_id())?,
        parent_shard_id: shard.parent_shard_id().map(shard_id).transpose()?,
        adjacent_parent_shard_id: shard.adjacent_parent_shard_id().map(shard_id).transpose()?,
        hash_key_range: hash_key_range(shard.hash_key_range())?,
        starting_sequence_number: sequence_number(range.starting_sequence_number())?,
        ending_sequence_number: range
            .ending_sequence_number()
            .map(sequence_number)
            .transpose()?,
    })
}

/// A child shard of GetRecords.
pub(crate) fn child_shard(child: &types::ChildShard) -> Result<ChildShard, kcl_core::Error> {
    Ok(ChildShard {
        shard_id: shard_id(child.shard_id())?,
        parent_shards: child
            .parent_shards()
            .iter()
            .map(|parent| shard_id(parent))
            .collect::<Result<_, _>>()?,
        hash_key_range: hash_key_range(child.hash_key_range())?,
    })
}

/// A child of a shard as ListShards describes it, for services that end a shard without
/// naming its children in GetRecords.
pub(crate) fn child_of_description(description: &ShardDescription) -> ChildShard {
    ChildShard {
        shard_id: description.shard_id.clone(),
        parent_shards: description.parents().cloned().collect(),
        hash_key_range: description.hash_key_range,
    }
}

/// A record of GetRecords.
pub(crate) fn record(record: types::Record) -> Result<Record, kcl_core::Error> {
    let approximate_arrival = match record.approximate_arrival_timestamp() {
        Some(time) => SystemTime::try_from(*time)
            .map_err(|error| malformed("ApproximateArrivalTimestamp", error))?,
        None => SystemTime::UNIX_EPOCH,
    };
    Ok(Record {
        partition_key: PartitionKey::new(record.partition_key())
            .map_err(|error| malformed("PartitionKey", error))?,
        sequence_number: sequence_number(record.sequence_number())?,
        approximate_arrival,
        data: bytes::Bytes::from(record.data.into_inner()),
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_kinesis::primitives::Blob;

    use super::*;

    #[test]
    fn a_malformed_answer_is_not_transient_and_names_the_value() {
        let answered = types::Record::builder()
            .sequence_number("not-a-number")
            .partition_key("key")
            .data(Blob::new("data"))
            .build()
            .expect("all fields set");
        // Reading it again gives the same value: retrying cannot help.
        let error = record(answered).expect_err("malformed");
        assert!(
            matches!(
                error,
                kcl_core::Error::InvalidArgument {
                    field: "SequenceNumber",
                    ..
                }
            ),
            "{error}"
        );
        assert!(!error.is_transient());
    }
}
