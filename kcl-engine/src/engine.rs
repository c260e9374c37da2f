//! The engine: the set of streams and every operation on them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kcl_core::{SequenceNumber, ShardDescription, StartingPosition, StreamName};

use crate::Error;
use crate::config::{EngineConfig, Storage};
use crate::maintenance::Maintenance;
use crate::metadata::StreamMetadata;
use crate::put::{PutRecordOutput, PutRecordsEntry};
use crate::reader::EngineShardReader;
use crate::shard_filter::ShardFilter;
use crate::stream::{Stream, StreamDescription, StreamOptions, StreamSummary};

/// The local stream engine. Cheap to clone: clones share the same streams.
///
/// Every operation completes before it returns (a created stream is `ACTIVE`, a split is done),
/// and is safe to call from many threads at once.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

pub(crate) struct EngineInner {
    pub(crate) config: Arc<EngineConfig>,
    streams: RwLock<BTreeMap<StreamName, Arc<Stream>>>,
    _maintenance: Maintenance,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("storage", &self.inner.config.storage)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens an engine: in memory, or on a data directory (created if absent) whose streams and
    /// records are recovered, a torn tail left by a crash being cut off.
    pub fn open(config: EngineConfig) -> Result<Engine, Error> {
        config.validate()?;
        let config = Arc::new(config);
        let mut streams = BTreeMap::new();
        if let Storage::Directory(data_dir) = &config.storage {
            let root = streams_dir(data_dir);
            std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
            for stream in recover_streams(&root, &config)? {
                streams.insert(stream.name.clone(), Arc::new(stream));
            }
        }
        let inner = Arc::new_cyclic(|weak| EngineInner {
            config: Arc::clone(&config),
            streams: RwLock::new(streams),
            _maintenance: Maintenance::start(weak.clone(), &config),
        });
        Ok(Engine { inner })
    }

    /// An engine in memory with default settings.
    pub fn in_memory() -> Engine {
        // An in-memory configuration with defaults always validates and opens.
        match Engine::open(EngineConfig::in_memory()) {
            Ok(engine) => engine,
            Err(error) => unreachable!("the default in-memory engine failed to open: {error}"),
        }
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Creates a stream.
    pub fn create_stream(&self, name: &str, options: StreamOptions) -> Result<(), Error> {
        let name = StreamName::new(name)?;
        let mut streams = self.inner.streams_mut();
        if streams.contains_key(&name) {
            return Err(Error::ResourceInUse {
                message: format!("stream {name} already exists"),
            });
        }
        let dir = self.stream_dir(&name);
        let stream = Stream::create(name.clone(), options, Arc::clone(&self.inner.config), dir);
        match stream {
            Ok(stream) => {
                streams.insert(name, Arc::new(stream));
                Ok(())
            }
            Err(error) => {
                if let Some(dir) = self.stream_dir(&name) {
                    let _ = std::fs::remove_dir_all(dir);
                }
                Err(error)
            }
        }
    }

    /// Deletes a stream and its records. Readers of it get `ShardNotFound` from then on.
    pub fn delete_stream(&self, name: &str) -> Result<(), Error> {
        let name = StreamName::new(name)?;
        let stream =
            self.inner
                .streams_mut()
                .remove(&name)
                .ok_or_else(|| Error::StreamNotFound {
                    stream: name.to_string(),
                })?;
        stream.remove_all_shards();
        if let Some(dir) = &stream.dir {
            // Renamed first, so a crash halfway through deleting cannot leave half a stream.
            let doomed = dir.with_file_name(format!("deleting-{}", now_nanos()));
            std::fs::rename(dir, &doomed).map_err(|e| Error::io(dir, e))?;
            std::fs::remove_dir_all(&doomed).map_err(|e| Error::io(&doomed, e))?;
        }
        Ok(())
    }

    /// Describes a stream and all its shards within retention.
    pub fn describe_stream(&self, name: &str) -> Result<StreamDescription, Error> {
        Ok(self.stream(name)?.describe())
    }

    /// Summarizes a stream without listing its shards.
    pub fn describe_stream_summary(&self, name: &str) -> Result<StreamSummary, Error> {
        Ok(self.stream(name)?.summary())
    }

    /// The names of all streams, in order.
    pub fn list_streams(&self) -> Vec<StreamName> {
        self.inner.streams().keys().cloned().collect()
    }

    /// Writes one record.
    pub fn put_record(
        &self,
        stream: &str,
        entry: PutRecordsEntry,
    ) -> Result<PutRecordOutput, Error> {
        let mut results = self
            .stream(stream)?
            .put_records(std::slice::from_ref(&entry))?;
        results
            .pop()
            .unwrap_or_else(|| Err(Error::invalid("Records", "no result for the record")))
    }

    /// Writes 1–500 records (at most 10 MiB). The batch as a whole is refused only for its size;
    /// each record then succeeds or fails on its own, with one result per record in order.
    pub fn put_records(
        &self,
        stream: &str,
        entries: &[PutRecordsEntry],
    ) -> Result<Vec<Result<PutRecordOutput, Error>>, Error> {
        self.stream(stream)?.put_records(entries)
    }

    /// Lists a stream's shards that pass `filter`, in id order.
    pub fn list_shards(
        &self,
        stream: &str,
        filter: &ShardFilter,
    ) -> Result<Vec<ShardDescription>, Error> {
        Ok(self.stream(stream)?.list_shards(filter))
    }

    /// Splits an open shard at `new_starting_hash_key` (decimal).
    pub fn split_shard(
        &self,
        stream: &str,
        shard_to_split: &str,
        new_starting_hash_key: &str,
    ) -> Result<(), Error> {
        self.stream(stream)?
            .split_shard(shard_to_split, new_starting_hash_key)
    }

    /// Merges two open shards whose ranges are adjacent.
    pub fn merge_shards(
        &self,
        stream: &str,
        shard_to_merge: &str,
        adjacent_shard_to_merge: &str,
    ) -> Result<(), Error> {
        self.stream(stream)?
            .merge_shards(shard_to_merge, adjacent_shard_to_merge)
    }

    /// Rescales a stream to `target` open shards of equal ranges (uniform scaling): at most
    /// double and at least half the current count.
    pub fn update_shard_count(&self, stream: &str, target: u64) -> Result<(), Error> {
        self.stream(stream)?.update_shard_count(target)
    }

    /// Raises the retention period to `hours` (at most 8,760).
    pub fn increase_retention(&self, stream: &str, hours: u32) -> Result<(), Error> {
        self.stream(stream)?.change_retention(hours, true)
    }

    /// Lowers the retention period to `hours` (at least 24).
    pub fn decrease_retention(&self, stream: &str, hours: u32) -> Result<(), Error> {
        self.stream(stream)?.change_retention(hours, false)
    }

    /// Replaces a stream's tags.
    pub fn set_tags(&self, stream: &str, tags: BTreeMap<String, String>) -> Result<(), Error> {
        self.stream(stream)?.set_tags(tags)
    }

    /// Opens a reader on a shard at `position`.
    pub fn open_reader(
        &self,
        stream: &str,
        shard: &str,
        position: StartingPosition,
    ) -> Result<EngineShardReader, Error> {
        let found = self.stream(stream)?;
        let shard = found.shard(shard)?;
        EngineShardReader::open(
            found.name.to_string(),
            shard,
            position,
            Arc::clone(&self.inner.config),
        )
    }

    /// The sequence number of the newest record retained in a shard, `None` when it retains
    /// none.
    pub fn newest_sequence_number(
        &self,
        stream: &str,
        shard: &str,
    ) -> Result<Option<SequenceNumber>, Error> {
        let shard = self.stream(stream)?.shard(shard)?;
        let mut state = shard.lock();
        let next = state.log.next_offset();
        if next == state.log.first_offset() {
            return Ok(None);
        }
        let newest = state.log.read(next - 1, 1, crate::MAX_READ_BYTES)?;
        Ok(newest.last().map(|record| record.sequence_number.clone()))
    }

    /// Reopens a reader where an earlier one stood: at the sequence number its
    /// [`position`](EngineShardReader::position) reported, which may be past the newest record.
    /// This is what a shard iterator carries between reads.
    pub fn resume_reader(
        &self,
        stream: &str,
        shard: &str,
        position: &SequenceNumber,
    ) -> Result<EngineShardReader, Error> {
        let found = self.stream(stream)?;
        let shard = found.shard(shard)?;
        EngineShardReader::resume(
            found.name.to_string(),
            shard,
            position,
            Arc::clone(&self.inner.config),
        )
    }

    /// Drops records and closed shards older than each stream's retention now, rather than at
    /// the next background check.
    pub fn enforce_retention(&self) -> Result<(), Error> {
        self.inner.enforce_retention()
    }

    /// Fsyncs everything written so far, whatever the durability policy. Every shard is
    /// fsynced even when one fails; the first failure is returned
    /// ([`Error::LogPoisoned`] for a shard that can no longer make writes durable).
    pub fn sync(&self) -> Result<(), Error> {
        self.inner.sync()
    }

    fn stream(&self, name: &str) -> Result<Arc<Stream>, Error> {
        let name = StreamName::new(name)?;
        self.inner
            .streams()
            .get(&name)
            .cloned()
            .ok_or_else(|| Error::StreamNotFound {
                stream: name.to_string(),
            })
    }

    fn stream_dir(&self, name: &StreamName) -> Option<PathBuf> {
        match &self.inner.config.storage {
            Storage::InMemory => None,
            Storage::Directory(data_dir) => {
                Some(streams_dir(data_dir).join(format!("stream-{name}")))
            }
        }
    }
}

impl EngineInner {
    fn streams(&self) -> RwLockReadGuard<'_, BTreeMap<StreamName, Arc<Stream>>> {
        self.streams
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn streams_mut(&self) -> RwLockWriteGuard<'_, BTreeMap<StreamName, Arc<Stream>>> {
        self.streams
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn all_streams(&self) -> Vec<Arc<Stream>> {
        self.streams().values().cloned().collect()
    }

    pub(crate) fn sync(&self) -> Result<(), Error> {
        self.all_streams()
            .iter()
            .map(|stream| stream.sync())
            .fold(Ok(()), Result::and)
    }

    pub(crate) fn group_commit(&self) {
        for stream in self.all_streams() {
            stream.group_commit();
        }
    }

    pub(crate) fn enforce_retention(&self) -> Result<(), Error> {
        self.all_streams()
            .iter()
            .try_for_each(|stream| stream.enforce_retention())
    }
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        if let Err(error) = self.sync() {
            tracing::error!(%error, "final fsync of the engine failed");
        }
    }
}

fn streams_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("streams")
}

/// Loads every stream under `root`, clearing what interrupted creations and deletions left.
fn recover_streams(root: &Path, config: &Arc<EngineConfig>) -> Result<Vec<Stream>, Error> {
    let mut streams = Vec::new();
    let entries = std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(root, e))?.path();
        if !path.is_dir() {
            continue;
        }
        let is_stream = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("stream-"));
        match StreamMetadata::load(&path)? {
            Some(metadata) if is_stream => {
                streams.push(Stream::load(metadata, Arc::clone(config), path)?)
            }
            _ => {
                tracing::warn!(path = %path.display(), "removing an unfinished stream directory");
                std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
    }
    Ok(streams)
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or(0)
}
