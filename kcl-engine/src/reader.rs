//! Reading a shard in order, waiting for new records instead of polling.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use kcl_core::{ReadBatch, SequenceNumber, ShardReader, StartingPosition};

use crate::Error;
use crate::config::EngineConfig;
use crate::log::ShardLog;
use crate::sequence::{self, Position};
use crate::shard::Shard;

/// The most bytes one read returns, as a GetRecords response: 10 MiB.
pub const MAX_READ_BYTES: usize = 10 * 1024 * 1024;

/// The most records one read returns, as GetRecords's `Limit`.
pub const MAX_READ_RECORDS: usize = 10_000;

/// A reader of one shard of the in-process engine.
///
/// [`EngineShardReader::read`] answers at once; the [`ShardReader`] implementation waits up to
/// the engine's `read_wait` on an open shard with nothing new, and wakes the moment a record is
/// appended.
pub struct EngineShardReader {
    stream: String,
    shard: Arc<Shard>,
    next_offset: u64,
    config: Arc<EngineConfig>,
}

impl std::fmt::Debug for EngineShardReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineShardReader")
            .field("stream", &self.stream)
            .field("shard", &self.shard.id)
            .field("next_offset", &self.next_offset)
            .finish()
    }
}

impl EngineShardReader {
    pub(crate) fn open(
        stream: String,
        shard: Arc<Shard>,
        position: StartingPosition,
        config: Arc<EngineConfig>,
    ) -> Result<Self, Error> {
        let next_offset = {
            let mut state = shard.lock();
            let first = state.log.first_offset();
            let end = state.log.next_offset();
            match position {
                StartingPosition::TrimHorizon => first,
                StartingPosition::Latest => end,
                // A number whose record is gone (trimmed, or cut off by a machine crash) starts
                // the reader at the first record after it: nothing that follows is skipped.
                StartingPosition::AtSequence(number) => {
                    state
                        .log
                        .seek(issued_position(&stream, &shard, &*state.log, &number)?)
                }
                StartingPosition::AfterSequence(number) => state
                    .log
                    .seek(issued_position(&stream, &shard, &*state.log, &number)?.successor()),
                StartingPosition::AtTimestamp(time) => state.log.offset_at_time(time)?,
            }
        };
        Ok(EngineShardReader {
            stream,
            shard,
            next_offset,
            config,
        })
    }

    /// Reopens a reader at a [`position`](EngineShardReader::position) an earlier reader of the
    /// same shard reported (possibly past the newest record, possibly before the engine was
    /// reopened). A position that this shard never had is refused naming `ShardIterator`.
    pub(crate) fn resume(
        stream: String,
        shard: Arc<Shard>,
        position: &SequenceNumber,
        config: Arc<EngineConfig>,
    ) -> Result<Self, Error> {
        let next_offset = {
            let state = shard.lock();
            let log = &*state.log;
            match sequence::decode(position) {
                Some((index, at))
                    if index == shard.index && (log.was_issued(at) || at == next_position(log)) =>
                {
                    log.seek(at)
                }
                _ => {
                    return Err(Error::invalid(
                        "ShardIterator",
                        format!(
                            "position {position} is not in shard {} of stream {stream}",
                            shard.id
                        ),
                    ));
                }
            }
        };
        Ok(EngineShardReader {
            stream,
            shard,
            next_offset,
            config,
        })
    }

    /// The sequence number of the next record this reader returns, whether or not it exists
    /// yet. [`Engine::resume_reader`](crate::Engine::resume_reader) continues from it, also
    /// after the engine was reopened.
    pub fn position(&self) -> SequenceNumber {
        let state = self.shard.lock();
        let generation = state.log.generation_at(self.next_offset);
        sequence::encode(
            self.shard.index,
            Position::new(generation, self.next_offset),
        )
    }

    /// Reads up to `max_records` (1–10,000) without waiting.
    pub fn read(&mut self, max_records: usize) -> Result<ReadBatch, Error> {
        if !(1..=MAX_READ_RECORDS).contains(&max_records) {
            return Err(Error::invalid(
                "Limit",
                format!("{max_records} is outside 1..={MAX_READ_RECORDS}"),
            ));
        }
        let now = self.config.clock.now();
        let mut state = self.shard.lock();
        if state.removed {
            return Err(Error::ShardNotFound {
                stream: self.stream.clone(),
                shard: self.shard.id.to_string(),
            });
        }
        if let Some(limiter) = state.limiter.as_mut() {
            limiter
                .admit_read()
                .map_err(|refusal| Error::ThroughputExceeded {
                    stream: self.stream.clone(),
                    shard: self.shard.id.to_string(),
                    limit: refusal.describe(),
                })?;
        }
        // Retention may have trimmed past a slow reader; it resumes at the oldest record left.
        self.next_offset = self.next_offset.max(state.log.first_offset());
        let records = state
            .log
            .read(self.next_offset, max_records, MAX_READ_BYTES)?;
        self.next_offset += records.len() as u64;
        if let Some(limiter) = state.limiter.as_mut() {
            limiter.charge_read(records.iter().map(|record| record.data.len()).sum());
        }
        let caught_up = self.next_offset >= state.log.next_offset();
        let millis_behind_latest = match records.last() {
            Some(last) if !caught_up => millis_between(last.approximate_arrival, now),
            _ => 0,
        };
        let child_shards = match &state.closure {
            Some(closure) if caught_up => Some(closure.children.clone()),
            _ => None,
        };
        Ok(ReadBatch {
            records,
            millis_behind_latest,
            child_shards,
        })
    }

    async fn wait_for_records(&mut self, max_records: usize) -> Result<ReadBatch, Error> {
        let shard = Arc::clone(&self.shard);
        let notified = shard.appended().notified();
        tokio::pin!(notified);
        // Registered before looking, so an append between the look and the wait still wakes us.
        notified.as_mut().enable();
        let batch = self.read(max_records)?;
        if !batch.records.is_empty() || batch.is_shard_end() {
            return Ok(batch);
        }
        let _ = tokio::time::timeout(self.config.read_wait, notified).await;
        self.read(max_records)
    }
}

#[async_trait]
impl ShardReader for EngineShardReader {
    async fn next_batch(&mut self, max_records: usize) -> Result<ReadBatch, kcl_core::Error> {
        let max_records = max_records.clamp(1, MAX_READ_RECORDS);
        Ok(self.wait_for_records(max_records).await?)
    }
}

/// The position `number` names in `shard`, which must be one the shard may have given a record.
fn issued_position(
    stream: &str,
    shard: &Shard,
    log: &dyn ShardLog,
    number: &SequenceNumber,
) -> Result<Position, Error> {
    match sequence::decode(number) {
        Some((index, position)) if index == shard.index && log.was_issued(position) => Ok(position),
        _ => Err(Error::invalid(
            "StartingSequenceNumber",
            format!(
                "sequence number {number} does not belong to a record of shard {} in stream {stream}",
                shard.id
            ),
        )),
    }
}

/// The position the next record of `log` gets, as far as it is known now.
fn next_position(log: &dyn ShardLog) -> Position {
    let end = log.next_offset();
    Position::new(log.generation_at(end), end)
}

fn millis_between(earlier: SystemTime, later: SystemTime) -> u64 {
    later
        .duration_since(earlier)
        .unwrap_or(Duration::ZERO)
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX)
}
