//! One shard: its key range and lineage, its log, and the readers waiting on it.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kcl_core::{ChildShard, HashKeyRange, PartitionKey, Record, ShardDescription, ShardId};
use tokio::sync::Notify;

use crate::limits::ShardLimiter;
use crate::log::ShardLog;
use crate::sequence::{self, OFFSET_LIMIT, Position};
use crate::{Error, PutRecordOutput};

/// A shard of a stream. Its identity and lineage never change; what does (the log, whether it
/// is closed) sits behind one lock.
pub(crate) struct Shard {
    pub(crate) index: u64,
    pub(crate) id: ShardId,
    pub(crate) range: HashKeyRange,
    pub(crate) parent: Option<ShardId>,
    pub(crate) adjacent_parent: Option<ShardId>,
    pub(crate) created_at: SystemTime,
    state: Mutex<ShardState>,
    /// Woken on every append and on closing, so waiting readers see new data at once.
    appended: Notify,
}

pub(crate) struct ShardState {
    pub(crate) log: Box<dyn ShardLog>,
    pub(crate) closure: Option<Closure>,
    /// Set when the stream is deleted or the shard expired: readers holding it must stop.
    pub(crate) removed: bool,
    pub(crate) limiter: Option<ShardLimiter>,
    /// Appended to since the last fsync.
    pub(crate) dirty: bool,
}

/// How a closed shard ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Closure {
    /// The offset after the shard's last record.
    pub(crate) end_offset: u64,
    pub(crate) closed_at: SystemTime,
    pub(crate) children: Vec<ChildShard>,
}

/// A record accepted for a shard, waiting for its sequence number.
pub(crate) struct PendingRecord {
    pub(crate) partition_key: PartitionKey,
    pub(crate) data: Bytes,
}

/// Lineage and creation facts of a new shard.
pub(crate) struct ShardSpec {
    pub(crate) index: u64,
    pub(crate) range: HashKeyRange,
    pub(crate) parent: Option<ShardId>,
    pub(crate) adjacent_parent: Option<ShardId>,
    pub(crate) created_at: SystemTime,
}

impl Shard {
    pub(crate) fn new(
        spec: ShardSpec,
        log: Box<dyn ShardLog>,
        closure: Option<Closure>,
        limiter: Option<ShardLimiter>,
    ) -> Self {
        Shard {
            index: spec.index,
            id: ShardId::from_index(spec.index),
            range: spec.range,
            parent: spec.parent,
            adjacent_parent: spec.adjacent_parent,
            created_at: spec.created_at,
            state: Mutex::new(ShardState {
                log,
                closure,
                removed: false,
                limiter,
                dirty: false,
            }),
            appended: Notify::new(),
        }
    }

    /// Locks the shard's state. A panic while it was held cannot leave it half-changed (every
    /// change is a single assignment after fallible work), so a poisoned lock is taken as is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, ShardState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn appended(&self) -> &Notify {
        &self.appended
    }

    pub(crate) fn describe(&self) -> ShardDescription {
        let state = self.lock();
        ShardDescription {
            shard_id: self.id.clone(),
            parent_shard_id: self.parent.clone(),
            adjacent_parent_shard_id: self.adjacent_parent.clone(),
            hash_key_range: self.range,
            starting_sequence_number: sequence::encode(self.index, Position::new(0, 0)),
            ending_sequence_number: state.closure.as_ref().map(|closure| {
                let last = closure.end_offset.saturating_sub(1);
                sequence::encode(
                    self.index,
                    Position::new(state.log.generation_at(last), last),
                )
            }),
        }
    }

    pub(crate) fn as_child(&self) -> ChildShard {
        ChildShard {
            shard_id: self.id.clone(),
            parent_shards: self
                .parent
                .iter()
                .chain(self.adjacent_parent.iter())
                .cloned()
                .collect(),
            hash_key_range: self.range,
        }
    }

    /// Appends `records` in order, each admitted by the throughput limits first, and answers one
    /// result per record. Records arrive at `now`, but never before the shard's newest record,
    /// so arrival times never decrease within a shard.
    pub(crate) fn append(
        &self,
        stream: &str,
        records: Vec<PendingRecord>,
        now: SystemTime,
        fsync: bool,
    ) -> Vec<Result<PutRecordOutput, Error>> {
        let mut state = self.lock();
        let arrival = millisecond_floor(match state.log.last_arrival() {
            Some(last) if last > now => last,
            _ => now,
        });
        // The limits decide before anything is numbered, so that the records are numbered as
        // they are built, and only when some are admitted.
        let mut refusals = Vec::new();
        if let Some(limiter) = state.limiter.as_mut() {
            for (position, pending) in records.iter().enumerate() {
                let size = pending.data.len() + pending.partition_key.as_str().len();
                if let Err(refusal) = limiter.admit_write(size) {
                    refusals.push((position, refusal));
                }
            }
        }
        let total = records.len();
        let count = total - refusals.len();
        let written = if count == 0 {
            Ok(Vec::new())
        } else {
            let mut refused = refusals.iter().map(|&(position, _)| position).peekable();
            let admitted = records
                .into_iter()
                .enumerate()
                .filter(|(position, _)| refused.next_if_eq(position).is_none())
                .map(|(_, pending)| pending);
            self.write(&mut state, admitted, count, arrival, fsync)
        };
        let appended = count > 0 && written.is_ok();
        if appended {
            state.dirty = !fsync;
        }
        drop(state);
        if appended {
            self.appended.notify_waiters();
        }

        let mut results = Vec::with_capacity(total);
        let mut refusals = refusals.into_iter().peekable();
        let mut written = written.map(Vec::into_iter);
        while results.len() < total {
            let result = match refusals.next_if(|(position, _)| *position == results.len()) {
                Some((_, refusal)) => Err(Error::ThroughputExceeded {
                    stream: stream.to_owned(),
                    shard: self.id.to_string(),
                    limit: refusal.describe(),
                }),
                None => match &mut written {
                    Ok(records) => match records.next() {
                        Some(record) => Ok(PutRecordOutput {
                            shard_id: self.id.clone(),
                            sequence_number: record.sequence_number,
                        }),
                        None => break,
                    },
                    Err(error) => Err(error.duplicate()),
                },
            };
            results.push(result);
        }
        results
    }

    /// Numbers the `count` `records` as it builds them and appends them to the log (fsynced
    /// when `fsync`), all or none.
    fn write(
        &self,
        state: &mut ShardState,
        records: impl Iterator<Item = PendingRecord>,
        count: usize,
        arrival: SystemTime,
        fsync: bool,
    ) -> Result<Vec<Record>, Error> {
        let first_offset = state.log.next_offset();
        if first_offset.saturating_add(u64::try_from(count).unwrap_or(u64::MAX)) >= OFFSET_LIMIT {
            return Err(Error::LimitExceeded {
                message: format!(
                    "shard {} has used up its offsets ({OFFSET_LIMIT} records)",
                    self.id
                ),
            });
        }
        let generation = state.log.writing_generation()?;
        let mut numbered = Vec::with_capacity(count);
        for (offset, pending) in (first_offset..).zip(records) {
            numbered.push(Record {
                sequence_number: sequence::encode(self.index, Position::new(generation, offset)),
                partition_key: pending.partition_key,
                data: pending.data,
                approximate_arrival: arrival,
            });
        }
        state.log.append(&numbered)?;
        if fsync {
            state.log.sync()?;
        }
        Ok(numbered)
    }

    /// Closes the shard after its last record, naming the children that continue it.
    pub(crate) fn close(&self, children: Vec<ChildShard>, now: SystemTime) -> Result<(), Error> {
        let mut state = self.lock();
        // The ending sequence number is published in metadata; the records it covers must be
        // on disk before it is.
        state.log.sync()?;
        state.dirty = false;
        state.closure = Some(Closure {
            end_offset: state.log.next_offset(),
            closed_at: now,
            children,
        });
        drop(state);
        self.appended.notify_waiters();
        Ok(())
    }

    /// Marks the shard gone (stream deleted, shard expired) and wakes its readers.
    pub(crate) fn remove(&self) {
        self.lock().removed = true;
        self.appended.notify_waiters();
    }

    /// Fsyncs the log if it was written since the last fsync: the group commit. A failure
    /// poisons the log, which then takes no more writes, so it is reported once.
    pub(crate) fn sync_if_dirty(&self) -> Result<(), Error> {
        let mut state = self.lock();
        if !std::mem::take(&mut state.dirty) {
            return Ok(());
        }
        state.log.sync()
    }

    /// Fsyncs whatever the log holds that is not durable yet; fails for a poisoned log.
    pub(crate) fn sync(&self) -> Result<(), Error> {
        let mut state = self.lock();
        state.dirty = false;
        state.log.sync()
    }
}

/// Kinesis reports arrival times in milliseconds; the engine stores them so, and truncating up
/// front keeps what a reader sees equal to what was stored.
pub(crate) fn millisecond_floor(time: SystemTime) -> SystemTime {
    let millis = time
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
}
