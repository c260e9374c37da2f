//! Records as consumers see them.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::{Error, SequenceNumber};

/// The longest partition key Kinesis accepts, in Unicode characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// A validated partition key: 1–256 Unicode characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey(Arc<str>);

impl PartitionKey {
    /// Validates `key`.
    ///
    /// ```
    /// use kcl_core::PartitionKey;
    /// assert!(PartitionKey::new("sensor-17").is_ok());
    /// assert!(PartitionKey::new("").is_err());
    /// assert!(PartitionKey::new(&"k".repeat(257)).is_err());
    /// ```
    pub fn new(key: &str) -> Result<Self, Error> {
        // A byte length within the limit cannot hold more characters than bytes.
        let chars = if key.len() <= MAX_PARTITION_KEY_CHARS {
            key.len().min(key.chars().count())
        } else {
            key.chars().count()
        };
        if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
            return Err(Error::invalid(
                "PartitionKey",
                format!("length {chars} is outside 1..={MAX_PARTITION_KEY_CHARS} characters"),
            ));
        }
        Ok(PartitionKey(key.into()))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One record read from a shard. Cloning is cheap: every field is shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The key the producer routed the record by.
    pub partition_key: PartitionKey,
    /// The record's position in its shard.
    pub sequence_number: SequenceNumber,
    /// The payload.
    pub data: Bytes,
    /// When the stream accepted the record (millisecond precision).
    pub approximate_arrival: SystemTime,
}
