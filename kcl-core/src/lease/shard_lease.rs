//! A lease as stores return it, and what creating one takes.

use std::time::Duration;

use crate::ShardId;
use crate::lease::{Checkpoint, Fence, LeaseKey, PendingCheckpoint, WorkerId};

/// One shard's lease, as read from a [`LeaseStore`](crate::LeaseStore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Which stream and shard.
    pub key: LeaseKey,
    /// The worker holding it, `None` when unowned (never taken, or released).
    pub owner: Option<WorkerId>,
    /// The fencing token: bumped by every take (and handoff completion), never reused.
    pub epoch: u64,
    /// For an owned lease, the time left before it expires, judged on the store's clock when it
    /// was read (zero once expired); `None` when unowned.
    pub time_left: Option<Duration>,
    /// The committed checkpoint.
    pub checkpoint: Checkpoint,
    /// A prepared, not yet committed checkpoint, with optional application state.
    pub pending_checkpoint: Option<PendingCheckpoint>,
    /// The shards this shard was split or merged from (two for a merge).
    pub parent_shard_ids: Vec<ShardId>,
    /// The shards this one was split or merged into, recorded by its owner at `SHARD_END`.
    pub child_shard_ids: Vec<ShardId>,
    /// The worker that asked the owner to hand the lease over, if any.
    pub handoff_to: Option<WorkerId>,
}

impl Lease {
    /// True if the lease is owned and its expiry has passed on the store's clock.
    pub fn is_expired(&self) -> bool {
        self.owner.is_some() && self.time_left == Some(Duration::ZERO)
    }

    /// True if [`TakeMode::IfAvailable`](crate::TakeMode::IfAvailable) may take it: unowned
    /// or expired.
    pub fn is_available(&self) -> bool {
        self.owner.is_none() || self.is_expired()
    }

    /// True if `worker` owns it (expired or not).
    pub fn is_held_by(&self, worker: &WorkerId) -> bool {
        self.owner.as_ref() == Some(worker)
    }

    /// The owner's fencing token, `None` when unowned.
    pub fn fence(&self) -> Option<Fence> {
        self.owner
            .as_ref()
            .map(|owner| Fence::new(owner.clone(), self.epoch))
    }
}

/// What [`LeaseStore::create_lease_if_absent`](crate::LeaseStore::create_lease_if_absent)
/// creates: an unowned lease at epoch 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLease {
    /// Which stream and shard.
    pub key: LeaseKey,
    /// Where processing starts: usually an initial sentinel (`TRIM_HORIZON` for children of a
    /// resharding).
    pub checkpoint: Checkpoint,
    /// The shards it descends from; its processing waits for theirs to end.
    pub parent_shard_ids: Vec<ShardId>,
}

impl NewLease {
    /// A lease for `key` starting at `checkpoint`, without parents.
    pub fn new(key: LeaseKey, checkpoint: Checkpoint) -> Self {
        NewLease {
            key,
            checkpoint,
            parent_shard_ids: Vec::new(),
        }
    }

    /// The same lease, descending from `parents`.
    pub fn with_parents(mut self, parents: Vec<ShardId>) -> Self {
        self.parent_shard_ids = parents;
        self
    }
}
