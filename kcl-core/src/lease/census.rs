//! What a worker looking for leases to take needs to see of a stream's lease table: the leases
//! it might take or act on, row by row, and only a count of those other workers hold in peace.
//! With thousands of leases and many workers, that is a few hundred rows a cycle instead of the
//! whole table.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::ShardId;
use crate::lease::{Checkpoint, Lease, WorkerId};

/// The leases of one stream as a worker looking for leases to take sees them (contract clause
/// 13 of [`LeaseStore`](crate::LeaseStore)).
///
/// A lease is *settled* for a worker when another worker holds it, unexpired, unfinished (not
/// at `SHARD_END`), with no handoff requested, and it is not a parent of an unsettled lease.
/// Settled leases are only counted, per owner; every other lease is given in full.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseCensus {
    /// The unsettled leases, ordered by shard id.
    pub leases: Vec<Lease>,
    /// The settled leases, per owner, ordered by owner.
    pub settled: Vec<OwnerTally>,
}

/// How many settled leases one worker holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerTally {
    /// The owner.
    pub owner: WorkerId,
    /// How many settled leases it holds.
    pub leases: usize,
    /// The least time left of any of them, on the store's clock when read.
    pub soonest_expiry: Duration,
}

impl LeaseCensus {
    /// The census of `leases` (every lease of one stream) for `worker`: the reference a
    /// store's own census must equal, and what stores without one return.
    pub fn of(worker: &WorkerId, leases: Vec<Lease>) -> LeaseCensus {
        let held_in_peace = |lease: &Lease| {
            lease.owner.as_ref().is_some_and(|owner| owner != worker)
                && !lease.is_expired()
                && lease.checkpoint != Checkpoint::ShardEnd
                && lease.handoff_to.is_none()
        };
        let awaited: BTreeSet<ShardId> = leases
            .iter()
            .filter(|lease| !held_in_peace(lease))
            .flat_map(|lease| lease.parent_shard_ids.iter().cloned())
            .collect();
        let mut census = LeaseCensus::default();
        let mut tallies: BTreeMap<WorkerId, OwnerTally> = BTreeMap::new();
        for lease in leases {
            match &lease.owner {
                Some(owner) if held_in_peace(&lease) && !awaited.contains(&lease.key.shard) => {
                    let left = lease.time_left.unwrap_or_default();
                    tallies
                        .entry(owner.clone())
                        .and_modify(|tally| {
                            tally.leases += 1;
                            tally.soonest_expiry = tally.soonest_expiry.min(left);
                        })
                        .or_insert_with(|| OwnerTally {
                            owner: owner.clone(),
                            leases: 1,
                            soonest_expiry: left,
                        });
                }
                _ => census.leases.push(lease),
            }
        }
        census.leases.sort_by(|a, b| a.key.shard.cmp(&b.key.shard));
        census.settled = tallies.into_values().collect();
        census
    }

    /// Gives `owner`'s leases in full instead of counted: `leases` is what a later read of
    /// them found (those listed already stay as they were listed).
    pub(crate) fn expand(&mut self, owner: &WorkerId, leases: Vec<Lease>) {
        self.settled.retain(|tally| &tally.owner != owner);
        let listed: BTreeSet<ShardId> = self.leases.iter().map(|l| l.key.shard.clone()).collect();
        self.leases.extend(
            leases
                .into_iter()
                .filter(|l| !listed.contains(&l.key.shard)),
        );
        self.leases.sort_by(|a, b| a.key.shard.cmp(&b.key.shard));
    }

    /// How many leases `owner` holds in all: settled, and given in full (unfinished).
    pub fn held_by(&self, owner: &WorkerId) -> usize {
        let settled = self
            .settled
            .iter()
            .find(|tally| &tally.owner == owner)
            .map_or(0, |tally| tally.leases);
        settled
            + self
                .leases
                .iter()
                .filter(|lease| lease.is_held_by(owner) && !lease.is_expired())
                .filter(|lease| lease.checkpoint != Checkpoint::ShardEnd)
                .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StreamName;
    use crate::lease::LeaseKey;

    fn lease(shard: &str, owner: Option<&str>, left_ms: u64) -> Lease {
        Lease {
            key: LeaseKey::new(StreamName::new("s").unwrap(), ShardId::new(shard).unwrap()),
            owner: owner.map(|owner| WorkerId::new(owner).unwrap()),
            epoch: 1,
            time_left: owner.map(|_| Duration::from_millis(left_ms)),
            checkpoint: Checkpoint::TrimHorizon,
            pending_checkpoint: None,
            parent_shard_ids: Vec::new(),
            child_shard_ids: Vec::new(),
            handoff_to: None,
        }
    }

    #[test]
    fn only_leases_other_workers_hold_in_peace_are_counted_instead_of_listed() {
        let me = WorkerId::new("me").unwrap();
        let mut ended = lease("shardId-000000000004", Some("b"), 900);
        ended.checkpoint = Checkpoint::ShardEnd;
        let mut asked = lease("shardId-000000000005", Some("b"), 900);
        asked.handoff_to = Some(me.clone());
        let mut child = lease("shardId-000000000007", None, 0);
        child.parent_shard_ids = vec![ShardId::from_index(6)];
        let leases = vec![
            lease("shardId-000000000000", None, 0),
            lease("shardId-000000000001", Some("me"), 900),
            lease("shardId-000000000002", Some("b"), 0),
            lease("shardId-000000000003", Some("b"), 700),
            ended,
            asked,
            lease("shardId-000000000006", Some("c"), 900),
            child,
            lease("shardId-000000000008", Some("c"), 300),
            lease("shardId-000000000009", Some("c"), 800),
        ];
        let census = LeaseCensus::of(&me, leases);
        let listed: Vec<String> = census
            .leases
            .iter()
            .map(|l| l.key.shard.to_string())
            .collect();
        assert_eq!(
            listed,
            [0, 1, 2, 4, 5, 6, 7].map(|n| format!("shardId-00000000000{n}")),
            "unowned, mine, expired, ended, asked for, a parent awaited, its child"
        );
        let tallies: Vec<(&str, usize, u128)> = census
            .settled
            .iter()
            .map(|t| (t.owner.as_str(), t.leases, t.soonest_expiry.as_millis()))
            .collect();
        assert_eq!(tallies, [("b", 1, 700), ("c", 2, 300)]);
        assert_eq!(
            census.held_by(&WorkerId::new("b").unwrap()),
            2,
            "settled + asked for"
        );
        assert_eq!(census.held_by(&WorkerId::new("c").unwrap()), 3);
        assert_eq!(census.held_by(&me), 1);
    }
}
