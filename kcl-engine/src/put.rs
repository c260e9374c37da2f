//! What a write carries in and what it answers, and the limits on a batch.

use bytes::Bytes;
use kcl_core::{SequenceNumber, ShardId};

use crate::Error;

/// The most records one `put_records` call may carry.
pub const MAX_RECORDS_PER_PUT: usize = 500;

/// The most bytes (data plus partition keys) one `put_records` call may carry: 10 MiB.
pub const MAX_BYTES_PER_PUT: usize = 10 * 1024 * 1024;

/// One record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRecordsEntry {
    /// 1–256 Unicode characters; its MD5 hash picks the shard unless `explicit_hash_key` is set.
    pub partition_key: String,
    /// A decimal hash key in `[0, 2^128 − 1]` that picks the shard instead of the partition key.
    pub explicit_hash_key: Option<String>,
    /// The payload; with the partition key, at most the stream's maximum record size.
    pub data: Bytes,
}

impl PutRecordsEntry {
    /// A record routed by its partition key.
    pub fn new(partition_key: impl Into<String>, data: impl Into<Bytes>) -> Self {
        PutRecordsEntry {
            partition_key: partition_key.into(),
            explicit_hash_key: None,
            data: data.into(),
        }
    }

    /// Routes the record by `hash_key` instead of its partition key.
    pub fn with_explicit_hash_key(mut self, hash_key: impl Into<String>) -> Self {
        self.explicit_hash_key = Some(hash_key.into());
        self
    }

    /// The size that counts against limits: data plus partition key.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// Where a written record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRecordOutput {
    /// The shard that holds it.
    pub shard_id: ShardId,
    /// Its sequence number in that shard.
    pub sequence_number: SequenceNumber,
}

/// Checks the limits on a whole batch: 1–500 records and at most 10 MiB.
pub(crate) fn validate_batch(entries: &[PutRecordsEntry]) -> Result<(), Error> {
    if entries.is_empty() || entries.len() > MAX_RECORDS_PER_PUT {
        return Err(Error::invalid(
            "Records",
            format!(
                "{} records is outside 1..={MAX_RECORDS_PER_PUT} per request",
                entries.len()
            ),
        ));
    }
    let total: usize = entries.iter().map(PutRecordsEntry::size).sum();
    if total > MAX_BYTES_PER_PUT {
        return Err(Error::invalid(
            "Records",
            format!("{total} bytes exceeds the request limit of {MAX_BYTES_PER_PUT} bytes"),
        ));
    }
    Ok(())
}
