//! What happened to each shard during the demo: who processed it, how much, and when, so the
//! summary can show that every reading was processed and that children followed their parents.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Instant;

use kcl_core::worker::ShardInfo;
use kcl_core::{Record, SequenceNumber, ShardId};

/// One shard's history.
#[derive(Debug, Clone, Default)]
pub struct ShardHistory {
    /// The shards it was split or merged from.
    pub parents: Vec<ShardId>,
    /// The workers that processed it (more than one if it moved).
    pub workers: BTreeSet<String>,
    /// When its first record reached a processor.
    pub first_delivery: Option<Instant>,
    /// When a processor last finished a batch of it.
    pub last_processed: Option<Instant>,
    /// When its processor was told that it ended (a closed shard, every record delivered).
    pub ended: Option<Instant>,
    /// Records processed, each counted once.
    pub distinct: u64,
    /// Records delivered again after a restart (at least once).
    pub redelivered: u64,
    /// The highest sequence number processed.
    pub max_sequence: Option<SequenceNumber>,
    /// How far behind the newest record its last batch was.
    pub millis_behind_latest: u64,
    /// For a child: whether its first record came after every parent's last, and by how many
    /// milliseconds; `None` before its first record.
    pub after_parents: Option<(bool, u128)>,
}

/// Every shard's history, shared by the processors of both workers.
#[derive(Debug, Default)]
pub struct ShardTimeline {
    shards: Mutex<BTreeMap<ShardId, ShardHistory>>,
}

/// What the first batch of a child shard tells about its parents.
#[derive(Debug, Clone)]
pub struct ChildStart {
    /// The child's parents.
    pub parents: Vec<ShardId>,
    /// True when every parent had ended and its last batch was done.
    pub after_parents: bool,
    /// Milliseconds since the last parent's last batch.
    pub gap_ms: u128,
}

impl ShardTimeline {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<ShardId, ShardHistory>) -> T) -> T {
        let mut shards = self
            .shards
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut shards)
    }

    /// A processor for `shard` starts on `worker`.
    pub fn initialized(&self, shard: &ShardInfo, worker: &str) {
        self.with(|shards| {
            let history = shards.entry(shard.shard_id.clone()).or_default();
            history.parents = shard.parent_shard_ids.clone();
            history.workers.insert(worker.to_owned());
        });
    }

    /// A batch is about to be processed; for a child's first batch, how it relates to its
    /// parents.
    pub fn delivering(&self, shard: &ShardId) -> Option<ChildStart> {
        let now = Instant::now();
        self.with(|shards| {
            let history = shards.get(shard)?;
            if history.first_delivery.is_some() || history.parents.is_empty() {
                return None;
            }
            let parents = history.parents.clone();
            let mut after_parents = true;
            let mut latest: Option<Instant> = None;
            for parent in &parents {
                match shards.get(parent) {
                    Some(p) if p.ended.is_some() => {
                        if let Some(last) = p.last_processed {
                            latest = Some(latest.map_or(last, |l: Instant| l.max(last)));
                        }
                    }
                    // Unseen or unfinished: the child came too early.
                    _ => after_parents = false,
                }
            }
            let gap_ms = latest.map_or(0, |last| now.saturating_duration_since(last).as_millis());
            if latest.is_some_and(|last| last > now) {
                after_parents = false;
            }
            let history = shards.get_mut(shard)?;
            history.first_delivery = Some(now);
            history.after_parents = Some((after_parents, gap_ms));
            Some(ChildStart {
                parents,
                after_parents,
                gap_ms,
            })
        })
    }

    /// A batch was processed successfully.
    pub fn processed(&self, shard: &ShardId, records: &[Record], millis_behind_latest: u64) {
        let now = Instant::now();
        self.with(|shards| {
            let history = shards.entry(shard.clone()).or_default();
            history.first_delivery.get_or_insert(now);
            history.last_processed = Some(now);
            history.millis_behind_latest = millis_behind_latest;
            for record in records {
                // Delivery is in shard order, so a record at or below the highest one processed
                // is a repeat.
                if history
                    .max_sequence
                    .as_ref()
                    .is_some_and(|max| record.sequence_number <= *max)
                {
                    history.redelivered += 1;
                } else {
                    history.distinct += 1;
                    history.max_sequence = Some(record.sequence_number.clone());
                }
            }
        });
    }

    /// The shard's processor was told it ended.
    pub fn ended(&self, shard: &ShardId) {
        self.with(|shards| {
            shards.entry(shard.clone()).or_default().ended = Some(Instant::now());
        });
    }

    /// Every shard's history now.
    pub fn snapshot(&self) -> BTreeMap<ShardId, ShardHistory> {
        self.with(|shards| shards.clone())
    }

    /// Records processed, each counted once, over all shards.
    pub fn distinct_records(&self) -> u64 {
        self.with(|shards| shards.values().map(|h| h.distinct).sum())
    }

    /// The largest lag among shards still open.
    pub fn millis_behind_latest(&self) -> u64 {
        self.with(|shards| {
            shards
                .values()
                .filter(|h| h.ended.is_none())
                .map(|h| h.millis_behind_latest)
                .max()
                .unwrap_or(0)
        })
    }
}
