//! Shards as a stream describes them, with their lineage.

use crate::{HashKeyRange, SequenceNumber, ShardId};

/// A shard as listed by its stream: its key range and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardDescription {
    /// The shard's id.
    pub shard_id: ShardId,
    /// The shard this one was split from, or the first parent of a merge.
    pub parent_shard_id: Option<ShardId>,
    /// The second parent of a merge.
    pub adjacent_parent_shard_id: Option<ShardId>,
    /// The hash keys routed to this shard while it is open.
    pub hash_key_range: HashKeyRange,
    /// The lowest sequence number the shard can hold.
    pub starting_sequence_number: SequenceNumber,
    /// Set once the shard is closed (split or merged away): no record after it.
    pub ending_sequence_number: Option<SequenceNumber>,
}

impl ShardDescription {
    /// True while the shard accepts writes.
    pub fn is_open(&self) -> bool {
        self.ending_sequence_number.is_none()
    }

    /// The shard's parents: none, one (split or initial), or two (merge).
    pub fn parents(&self) -> impl Iterator<Item = &ShardId> {
        self.parent_shard_id
            .iter()
            .chain(self.adjacent_parent_shard_id.iter())
    }
}

/// A shard that continues a closed one, as a reader reports it at the parent's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildShard {
    /// The child's id.
    pub shard_id: ShardId,
    /// All of the child's parents (two for a merge).
    pub parent_shards: Vec<ShardId>,
    /// The child's key range.
    pub hash_key_range: HashKeyRange,
}
