//! Splitting, merging and uniformly rescaling a stream's open shards.
//!
//! Every change closes parents and opens children that name them, so the open shards' ranges
//! always partition the key space and readers can follow lineage parent before child.

use std::sync::Arc;

use kcl_core::{HashKey, HashKeyRange};

use crate::Error;
use crate::stream::{MAX_OPEN_SHARDS, Stream, StreamState};

impl Stream {
    /// Splits an open shard in two at `new_starting_hash_key`: the first child takes
    /// `[start, key − 1]`, the second `[key, end]`.
    pub(crate) fn split_shard(
        &self,
        shard_to_split: &str,
        new_starting_hash_key: &str,
    ) -> Result<(), Error> {
        let key = HashKey::parse("NewStartingHashKey", new_starting_hash_key)?;
        let mut state = self.write();
        let position = self.open_position(&state, "ShardToSplit", shard_to_split)?;
        check_capacity(&state, 1)?;
        self.split_at(&mut state, position, key)?;
        self.persist(&state)
    }

    /// Merges two open shards with adjacent ranges into one child naming both.
    pub(crate) fn merge_shards(
        &self,
        shard_to_merge: &str,
        adjacent_shard_to_merge: &str,
    ) -> Result<(), Error> {
        let mut state = self.write();
        let first = self.open_position(&state, "ShardToMerge", shard_to_merge)?;
        let second = self.open_position(&state, "AdjacentShardToMerge", adjacent_shard_to_merge)?;
        if first.abs_diff(second) != 1 {
            return Err(Error::invalid(
                "AdjacentShardToMerge",
                format!(
                    "{adjacent_shard_to_merge} {} is not adjacent to {shard_to_merge} {}",
                    state.open[second].range, state.open[first].range
                ),
            ));
        }
        self.merge_at(&mut state, first, second)?;
        self.persist(&state)
    }

    /// Rescales to `target` open shards of equal ranges, at most double and at least half the
    /// current count, by splitting at the new boundaries and merging what lies between them.
    pub(crate) fn update_shard_count(&self, target: u64) -> Result<(), Error> {
        let mut state = self.write();
        let current = state.open.len() as u64;
        if target == 0 || target > current * 2 || target < current.div_ceil(2) {
            return Err(Error::invalid(
                "TargetShardCount",
                format!(
                    "{target} is outside {}..={} (half to double the {current} open shards)",
                    current.div_ceil(2),
                    current * 2
                ),
            ));
        }
        if target > MAX_OPEN_SHARDS {
            return Err(Error::LimitExceeded {
                message: format!("{target} open shards exceeds the limit of {MAX_OPEN_SHARDS}"),
            });
        }
        let targets: Vec<HashKeyRange> = (0..target)
            .map(|slice| HashKeyRange::uniform_slice(slice, target))
            .collect();
        if state
            .open
            .iter()
            .map(|shard| shard.range)
            .eq(targets.iter().copied())
        {
            return Ok(());
        }
        // Split so that every open shard lies within one target range.
        let mut position = 0;
        while position < state.open.len() {
            let range = state.open[position].range;
            let cut = targets
                .iter()
                .map(|target| target.start)
                .find(|&boundary| boundary > range.start && boundary <= range.end);
            match cut {
                Some(boundary) => self.split_at(&mut state, position, HashKey(boundary))?,
                None => position += 1,
            }
        }
        // Merge neighbours that lie within the same target range until one shard fills it.
        let mut position = 0;
        while position + 1 < state.open.len() {
            let (left, right) = (state.open[position].range, state.open[position + 1].range);
            let same_target = targets
                .iter()
                .any(|target| target.start <= left.start && right.end <= target.end);
            if same_target {
                self.merge_at(&mut state, position, position + 1)?;
            } else {
                position += 1;
            }
        }
        self.persist(&state)
    }

    /// Finds an open shard in the routing table; a closed one is refused naming `field`.
    fn open_position(
        &self,
        state: &StreamState,
        field: &'static str,
        shard_id: &str,
    ) -> Result<usize, Error> {
        let shard = self.find_shard(state, shard_id)?;
        state
            .open
            .iter()
            .position(|open| Arc::ptr_eq(open, &shard))
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!("shard {shard_id} is closed; only open shards can be resharded"),
                )
            })
    }

    fn split_at(
        &self,
        state: &mut StreamState,
        position: usize,
        key: HashKey,
    ) -> Result<(), Error> {
        let parent = Arc::clone(&state.open[position]);
        let range = parent.range;
        if key.0 <= range.start || key.0 > range.end {
            return Err(Error::invalid(
                "NewStartingHashKey",
                format!(
                    "{key} must be above the start and within the range {range} of {}",
                    parent.id
                ),
            ));
        }
        let now = self.now();
        let low = HashKeyRange {
            start: range.start,
            end: key.0 - 1,
        };
        let high = HashKeyRange {
            start: key.0,
            end: range.end,
        };
        let low = self.new_shard(state, low, Some(parent.id.clone()), None, now)?;
        let high = self.new_shard(state, high, Some(parent.id.clone()), None, now)?;
        parent.close(vec![low.as_child(), high.as_child()], now)?;
        state.open.splice(position..=position, [low, high]);
        Ok(())
    }

    /// Merges the open shards at `first` and `second` (neighbours in the routing table); the
    /// child's parent is `first`, its adjacent parent `second`.
    fn merge_at(&self, state: &mut StreamState, first: usize, second: usize) -> Result<(), Error> {
        let (parent, adjacent) = (
            Arc::clone(&state.open[first]),
            Arc::clone(&state.open[second]),
        );
        let now = self.now();
        let range = HashKeyRange {
            start: parent.range.start.min(adjacent.range.start),
            end: parent.range.end.max(adjacent.range.end),
        };
        let child = self.new_shard(
            state,
            range,
            Some(parent.id.clone()),
            Some(adjacent.id.clone()),
            now,
        )?;
        parent.close(vec![child.as_child()], now)?;
        adjacent.close(vec![child.as_child()], now)?;
        let low = first.min(second);
        state.open.splice(low..=low + 1, [child]);
        Ok(())
    }
}

fn check_capacity(state: &StreamState, more: u64) -> Result<(), Error> {
    if state.open.len() as u64 + more > MAX_OPEN_SHARDS {
        return Err(Error::LimitExceeded {
            message: format!("a stream may have at most {MAX_OPEN_SHARDS} open shards"),
        });
    }
    Ok(())
}
