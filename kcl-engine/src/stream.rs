//! One stream: its shards, the routing of writes to the open ones, retention and metadata.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kcl_core::{HashKey, HashKeyRange, PartitionKey, ShardDescription, ShardId, StreamName};

use crate::Error;
use crate::config::{Durability, EngineConfig};
use crate::limits::ShardLimiter;
use crate::log::{DiskLog, DiskLogOptions, MemoryLog, ShardLog};
use crate::metadata::{ClosureMetadata, ShardMetadata, StreamMetadata};
use crate::put::{PutRecordOutput, PutRecordsEntry, validate_batch};
use crate::shard::{Closure, PendingRecord, Shard, ShardSpec, millisecond_floor};
use crate::shard_filter::ShardFilter;

/// The most open shards a stream may have.
pub const MAX_OPEN_SHARDS: u64 = 10_000;
/// The shortest retention, in hours.
pub const MIN_RETENTION_HOURS: u32 = 24;
/// The longest retention, in hours (365 days).
pub const MAX_RETENTION_HOURS: u32 = 8_760;
/// The default and smallest per-stream maximum record size, in KiB (1 MiB).
pub const DEFAULT_MAX_RECORD_SIZE_KIB: u32 = 1_024;
/// The largest per-stream maximum record size, in KiB (10 MiB).
pub const MAX_MAX_RECORD_SIZE_KIB: u32 = 10_240;

/// How a new stream is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Initial number of shards, with equal hash key ranges. 1–10,000.
    pub shard_count: u64,
    /// How long records are kept, in hours. Defaults to 24 (24–8,760).
    pub retention_hours: u32,
    /// The largest record (data plus partition key) accepted, in KiB. Defaults to 1,024
    /// (1,024–10,240).
    pub max_record_size_kib: u32,
}

impl StreamOptions {
    /// A stream of `shard_count` shards with the default retention and record size.
    pub fn with_shards(shard_count: u64) -> Self {
        StreamOptions {
            shard_count,
            retention_hours: MIN_RETENTION_HOURS,
            max_record_size_kib: DEFAULT_MAX_RECORD_SIZE_KIB,
        }
    }

    /// Sets the retention period.
    pub fn retention_hours(mut self, hours: u32) -> Self {
        self.retention_hours = hours;
        self
    }

    /// Sets the maximum record size.
    pub fn max_record_size_kib(mut self, kib: u32) -> Self {
        self.max_record_size_kib = kib;
        self
    }

    fn validate(&self) -> Result<(), Error> {
        if !(1..=MAX_OPEN_SHARDS).contains(&self.shard_count) {
            return Err(Error::invalid(
                "ShardCount",
                format!("{} is outside 1..={MAX_OPEN_SHARDS}", self.shard_count),
            ));
        }
        validate_retention(self.retention_hours)?;
        if !(DEFAULT_MAX_RECORD_SIZE_KIB..=MAX_MAX_RECORD_SIZE_KIB)
            .contains(&self.max_record_size_kib)
        {
            return Err(Error::invalid(
                "MaxRecordSizeInKiB",
                format!(
                    "{} is outside {DEFAULT_MAX_RECORD_SIZE_KIB}..={MAX_MAX_RECORD_SIZE_KIB}",
                    self.max_record_size_kib
                ),
            ));
        }
        Ok(())
    }
}

pub(crate) fn validate_retention(hours: u32) -> Result<(), Error> {
    if !(MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&hours) {
        return Err(Error::invalid(
            "RetentionPeriodHours",
            format!("{hours} is outside {MIN_RETENTION_HOURS}..={MAX_RETENTION_HOURS}"),
        ));
    }
    Ok(())
}

/// A stream's status. Operations in this engine complete at once, so a stream that exists is
/// always `Active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    /// Accepting reads, writes and resharding.
    Active,
}

impl StreamStatus {
    /// The status as Kinesis spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Active => "ACTIVE",
        }
    }
}

/// What `describe_stream` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDescription {
    /// The stream's name.
    pub name: StreamName,
    /// Its status.
    pub status: StreamStatus,
    /// When it was created.
    pub created_at: SystemTime,
    /// Retention period in hours.
    pub retention_hours: u32,
    /// Largest accepted record, in KiB.
    pub max_record_size_kib: u32,
    /// Shards within retention, open and closed, in id order.
    pub shards: Vec<ShardDescription>,
    /// How many shards are open.
    pub open_shard_count: usize,
    /// The stream's tags.
    pub tags: BTreeMap<String, String>,
}

/// What `describe_stream_summary` reports: a stream's facts without its shard list, so it costs
/// the same whatever the number of shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// The stream's name.
    pub name: StreamName,
    /// Its status.
    pub status: StreamStatus,
    /// When it was created.
    pub created_at: SystemTime,
    /// Retention period in hours.
    pub retention_hours: u32,
    /// Largest accepted record, in KiB.
    pub max_record_size_kib: u32,
    /// How many shards are open.
    pub open_shard_count: usize,
}

pub(crate) struct Stream {
    pub(crate) name: StreamName,
    pub(crate) config: Arc<EngineConfig>,
    /// The stream's directory, `None` in memory.
    pub(crate) dir: Option<PathBuf>,
    state: RwLock<StreamState>,
}

pub(crate) struct StreamState {
    pub(crate) created_at: SystemTime,
    pub(crate) retention_hours: u32,
    pub(crate) max_record_bytes: usize,
    pub(crate) next_shard_index: u64,
    /// Every shard within retention, by index.
    pub(crate) shards: BTreeMap<u64, Arc<Shard>>,
    /// The open shards in hash key order: the routing table. Their ranges partition the key
    /// space.
    pub(crate) open: Vec<Arc<Shard>>,
    pub(crate) tags: BTreeMap<String, String>,
}

impl Stream {
    /// Creates a new stream with `options.shard_count` shards of equal ranges.
    pub(crate) fn create(
        name: StreamName,
        options: StreamOptions,
        config: Arc<EngineConfig>,
        dir: Option<PathBuf>,
    ) -> Result<Stream, Error> {
        options.validate()?;
        let now = millisecond_floor(config.clock.now());
        let stream = Stream {
            name,
            config,
            dir,
            state: RwLock::new(StreamState {
                created_at: now,
                retention_hours: options.retention_hours,
                max_record_bytes: options.max_record_size_kib as usize * 1024,
                next_shard_index: 0,
                shards: BTreeMap::new(),
                open: Vec::new(),
                tags: BTreeMap::new(),
            }),
        };
        if let Some(dir) = &stream.dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        {
            let mut state = stream.write();
            for slice in 0..options.shard_count {
                let range = HashKeyRange::uniform_slice(slice, options.shard_count);
                let shard = stream.new_shard(&mut state, range, None, None, now)?;
                state.open.push(shard);
            }
            stream.persist(&state)?;
        }
        Ok(stream)
    }

    /// Reopens a stream from its metadata and logs.
    pub(crate) fn load(
        metadata: StreamMetadata,
        config: Arc<EngineConfig>,
        dir: PathBuf,
    ) -> Result<Stream, Error> {
        let name = StreamName::new(&metadata.name).map_err(|error| Error::Corrupt {
            path: dir.clone(),
            reason: error.to_string(),
        })?;
        let stream = Stream {
            name,
            config,
            dir: Some(dir),
            state: RwLock::new(StreamState {
                created_at: from_millis(metadata.created_at_ms),
                retention_hours: metadata.retention_hours,
                max_record_bytes: metadata.max_record_bytes,
                next_shard_index: metadata.next_shard_index,
                shards: BTreeMap::new(),
                open: Vec::new(),
                tags: metadata.tags,
            }),
        };
        {
            let mut state = stream.write();
            for shard in &metadata.shards {
                let log = stream.open_log(shard.index)?;
                let spec = ShardSpec {
                    index: shard.index,
                    range: shard.range,
                    parent: shard.parent.map(ShardId::from_index),
                    adjacent_parent: shard.adjacent_parent.map(ShardId::from_index),
                    created_at: from_millis(shard.created_at_ms),
                };
                let loaded = Arc::new(Shard::new(spec, log, None, stream.limiter()));
                state.shards.insert(shard.index, loaded);
            }
            // Closures name their children, so they are restored once every shard exists.
            for shard in &metadata.shards {
                let Some(closure) = &shard.closure else {
                    continue;
                };
                let children = closure
                    .children
                    .iter()
                    .filter_map(|child| state.shards.get(child).map(|child| child.as_child()))
                    .collect();
                if let Some(loaded) = state.shards.get(&shard.index) {
                    loaded.lock().closure = Some(Closure {
                        end_offset: closure.end_offset,
                        closed_at: from_millis(closure.closed_at_ms),
                        children,
                    });
                }
            }
            let mut open: Vec<Arc<Shard>> = state
                .shards
                .values()
                .filter(|shard| shard.lock().closure.is_none())
                .cloned()
                .collect();
            open.sort_by_key(|shard| shard.range.start);
            state.open = open;
        }
        Ok(stream)
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, StreamState> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, StreamState> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The time, in the millisecond precision metadata keeps.
    pub(crate) fn now(&self) -> SystemTime {
        millisecond_floor(self.config.clock.now())
    }

    fn limiter(&self) -> Option<ShardLimiter> {
        self.config
            .throughput_limits
            .as_ref()
            .map(ShardLimiter::new)
    }

    fn open_log(&self, index: u64) -> Result<Box<dyn ShardLog>, Error> {
        Ok(match &self.dir {
            None => Box::new(MemoryLog::new()),
            Some(dir) => Box::new(DiskLog::open(
                &shard_dir(dir, index),
                index,
                DiskLogOptions {
                    segment_bytes: self.config.segment_bytes,
                    file_sync: Arc::clone(&self.config.file_sync),
                },
            )?),
        })
    }

    /// Creates the next shard of the stream (not yet in the routing table).
    pub(crate) fn new_shard(
        &self,
        state: &mut StreamState,
        range: HashKeyRange,
        parent: Option<ShardId>,
        adjacent_parent: Option<ShardId>,
        now: SystemTime,
    ) -> Result<Arc<Shard>, Error> {
        let index = state.next_shard_index;
        let log = self.open_log(index)?;
        state.next_shard_index += 1;
        let spec = ShardSpec {
            index,
            range,
            parent,
            adjacent_parent,
            created_at: now,
        };
        let shard = Arc::new(Shard::new(spec, log, None, self.limiter()));
        state.shards.insert(index, Arc::clone(&shard));
        Ok(shard)
    }

    /// Writes the stream's metadata if it lives on disk.
    pub(crate) fn persist(&self, state: &StreamState) -> Result<(), Error> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let shards = state
            .shards
            .values()
            .map(|shard| ShardMetadata {
                index: shard.index,
                range: shard.range,
                parent: shard.parent.as_ref().and_then(ShardId::index),
                adjacent_parent: shard.adjacent_parent.as_ref().and_then(ShardId::index),
                created_at_ms: to_millis(shard.created_at),
                closure: shard
                    .lock()
                    .closure
                    .as_ref()
                    .map(|closure| ClosureMetadata {
                        end_offset: closure.end_offset,
                        closed_at_ms: to_millis(closure.closed_at),
                        children: closure
                            .children
                            .iter()
                            .filter_map(|child| child.shard_id.index())
                            .collect(),
                    }),
            })
            .collect();
        StreamMetadata {
            name: self.name.to_string(),
            created_at_ms: to_millis(state.created_at),
            retention_hours: state.retention_hours,
            max_record_bytes: state.max_record_bytes,
            next_shard_index: state.next_shard_index,
            tags: state.tags.clone(),
            shards,
        }
        .store(dir)
    }

    /// Writes a batch: each entry is validated and routed on its own, so one bad entry fails
    /// alone; the answer has one result per entry, in order.
    pub(crate) fn put_records(
        &self,
        entries: &[PutRecordsEntry],
    ) -> Result<Vec<Result<PutRecordOutput, Error>>, Error> {
        validate_batch(entries)?;
        let state = self.read();
        let now = self.config.clock.now();
        let fsync = self.config.durability == Durability::Always;
        let mut results: Vec<Option<Result<PutRecordOutput, Error>>> =
            (0..entries.len()).map(|_| None).collect();
        // (open shard position, entry position), grouped by shard in input order.
        let mut routed: Vec<(usize, usize)> = Vec::with_capacity(entries.len());
        for (position, entry) in entries.iter().enumerate() {
            match route(&state, entry) {
                Ok(shard) => routed.push((shard, position)),
                Err(error) => results[position] = Some(Err(error)),
            }
        }
        routed.sort_by_key(|&(shard, _)| shard);
        for group in routed.chunk_by(|a, b| a.0 == b.0) {
            let shard = &state.open[group[0].0];
            let mut pending = Vec::with_capacity(group.len());
            for &(_, position) in group {
                let entry = &entries[position];
                match validate_entry(entry, state.max_record_bytes) {
                    Ok(partition_key) => pending.push((
                        position,
                        PendingRecord {
                            partition_key,
                            data: entry.data.clone(),
                        },
                    )),
                    Err(error) => results[position] = Some(Err(error)),
                }
            }
            let (positions, records): (Vec<usize>, Vec<PendingRecord>) =
                pending.into_iter().unzip();
            let outcomes = shard.append(self.name.as_str(), records, now, fsync);
            for (position, outcome) in positions.into_iter().zip(outcomes) {
                results[position] = Some(outcome);
            }
        }
        Ok(results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| Err(Error::invalid("Records", "entry was not routed")))
            })
            .collect())
    }

    /// Looks a shard up by id among the shards within retention.
    pub(crate) fn shard(&self, shard_id: &str) -> Result<Arc<Shard>, Error> {
        self.find_shard(&self.read(), shard_id)
    }

    /// Looks a shard up in state the caller has locked.
    pub(crate) fn find_shard(
        &self,
        state: &StreamState,
        shard_id: &str,
    ) -> Result<Arc<Shard>, Error> {
        let not_found = || Error::ShardNotFound {
            stream: self.name.to_string(),
            shard: shard_id.to_owned(),
        };
        let index = ShardId::new(shard_id)
            .ok()
            .and_then(|id| id.index())
            .ok_or_else(not_found)?;
        state.shards.get(&index).cloned().ok_or_else(not_found)
    }

    pub(crate) fn describe(&self) -> StreamDescription {
        let state = self.read();
        StreamDescription {
            name: self.name.clone(),
            status: StreamStatus::Active,
            created_at: state.created_at,
            retention_hours: state.retention_hours,
            max_record_size_kib: u32::try_from(state.max_record_bytes / 1024).unwrap_or(u32::MAX),
            shards: state
                .shards
                .values()
                .map(|shard| shard.describe())
                .collect(),
            open_shard_count: state.open.len(),
            tags: state.tags.clone(),
        }
    }

    pub(crate) fn summary(&self) -> StreamSummary {
        let state = self.read();
        StreamSummary {
            name: self.name.clone(),
            status: StreamStatus::Active,
            created_at: state.created_at,
            retention_hours: state.retention_hours,
            max_record_size_kib: u32::try_from(state.max_record_bytes / 1024).unwrap_or(u32::MAX),
            open_shard_count: state.open.len(),
        }
    }

    pub(crate) fn list_shards(&self, filter: &ShardFilter) -> Vec<ShardDescription> {
        let state = self.read();
        let now = self.config.clock.now();
        let trim_horizon = retention_cutoff(now, state.retention_hours).max(state.created_at);
        state
            .shards
            .values()
            .filter(|shard| {
                let closed_at = shard
                    .lock()
                    .closure
                    .as_ref()
                    .map(|closure| closure.closed_at);
                filter.admits(shard, closed_at, trim_horizon, state.created_at)
            })
            .map(|shard| shard.describe())
            .collect()
    }

    /// Changes the retention period; `increase` says which direction the caller asked for, and
    /// going the other way is refused, as Kinesis refuses it.
    pub(crate) fn change_retention(&self, hours: u32, increase: bool) -> Result<(), Error> {
        validate_retention(hours)?;
        let mut state = self.write();
        let current = state.retention_hours;
        if increase && hours < current {
            return Err(Error::invalid(
                "RetentionPeriodHours",
                format!(
                    "{hours} is below the current retention of {current} hours; decrease it instead"
                ),
            ));
        }
        if !increase && hours > current {
            return Err(Error::invalid(
                "RetentionPeriodHours",
                format!(
                    "{hours} is above the current retention of {current} hours; increase it instead"
                ),
            ));
        }
        state.retention_hours = hours;
        self.persist(&state)
    }

    /// Replaces the stream's tags.
    pub(crate) fn set_tags(&self, tags: BTreeMap<String, String>) -> Result<(), Error> {
        let mut state = self.write();
        state.tags = tags;
        self.persist(&state)
    }

    /// Drops records older than the retention period, and closed shards that closed before it.
    pub(crate) fn enforce_retention(&self) -> Result<(), Error> {
        let now = self.config.clock.now();
        let expired: Vec<u64> = {
            let state = self.read();
            let cutoff = retention_cutoff(now, state.retention_hours);
            let mut expired = Vec::new();
            for shard in state.shards.values() {
                let mut shard_state = shard.lock();
                shard_state.log.trim_before(cutoff)?;
                if matches!(&shard_state.closure, Some(closure) if closure.closed_at < cutoff) {
                    expired.push(shard.index);
                }
            }
            expired
        };
        if expired.is_empty() {
            return Ok(());
        }
        let mut state = self.write();
        let removed: Vec<Arc<Shard>> = expired
            .iter()
            .filter_map(|index| state.shards.remove(index))
            .collect();
        self.persist(&state)?;
        drop(state);
        for shard in removed {
            shard.remove();
            if let Some(dir) = &self.dir {
                let path = shard_dir(dir, shard.index);
                std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(())
    }

    /// Fsyncs every shard, all of them even when one fails; the first failure is returned.
    pub(crate) fn sync(&self) -> Result<(), Error> {
        self.shards()
            .iter()
            .map(|shard| shard.sync())
            .fold(Ok(()), Result::and)
    }

    /// Fsyncs every shard written since its last fsync, logging each failure (a poisoned shard
    /// refuses writes from then on; the others carry on).
    pub(crate) fn group_commit(&self) {
        for shard in self.shards() {
            if let Err(error) = shard.sync_if_dirty() {
                tracing::error!(stream = %self.name, shard = %shard.id, %error, "group-commit fsync failed");
            }
        }
    }

    fn shards(&self) -> Vec<Arc<Shard>> {
        self.read().shards.values().cloned().collect()
    }

    /// Marks every shard removed, so readers holding one stop.
    pub(crate) fn remove_all_shards(&self) {
        for shard in self.read().shards.values() {
            shard.remove();
        }
    }
}

/// Picks the open shard for an entry: by its explicit hash key if it has one, else by the MD5
/// of its partition key.
fn route(state: &StreamState, entry: &PutRecordsEntry) -> Result<usize, Error> {
    let key = match &entry.explicit_hash_key {
        Some(explicit) => HashKey::parse("ExplicitHashKey", explicit)?,
        None => HashKey::of_partition_key(&entry.partition_key),
    };
    let position = state.open.partition_point(|shard| shard.range.end < key.0);
    if position < state.open.len() {
        Ok(position)
    } else {
        Err(Error::invalid(
            "ExplicitHashKey",
            format!("no open shard holds hash key {key}"),
        ))
    }
}

fn validate_entry(entry: &PutRecordsEntry, max_record_bytes: usize) -> Result<PartitionKey, Error> {
    let partition_key = PartitionKey::new(&entry.partition_key)?;
    if entry.size() > max_record_bytes {
        return Err(Error::invalid(
            "Data",
            format!(
                "record of {} bytes (data plus partition key) exceeds the stream's maximum of {max_record_bytes} bytes",
                entry.size()
            ),
        ));
    }
    Ok(partition_key)
}

pub(crate) fn shard_dir(stream_dir: &Path, index: u64) -> PathBuf {
    stream_dir.join("shards").join(format!("{index:012}"))
}

fn retention_cutoff(now: SystemTime, retention_hours: u32) -> SystemTime {
    now.checked_sub(Duration::from_secs(u64::from(retention_hours) * 3600))
        .unwrap_or(UNIX_EPOCH)
}

pub(crate) fn to_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(crate) fn from_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}
