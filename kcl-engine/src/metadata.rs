//! A stream's metadata on disk: one JSON file per stream, replaced atomically.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use kcl_core::HashKeyRange;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Everything about a stream except its records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StreamMetadata {
    pub(crate) name: String,
    pub(crate) created_at_ms: u64,
    pub(crate) retention_hours: u32,
    pub(crate) max_record_bytes: usize,
    pub(crate) next_shard_index: u64,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) shards: Vec<ShardMetadata>,
}

/// A shard's lineage and, once closed, how it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ShardMetadata {
    pub(crate) index: u64,
    pub(crate) range: HashKeyRange,
    pub(crate) parent: Option<u64>,
    pub(crate) adjacent_parent: Option<u64>,
    pub(crate) created_at_ms: u64,
    pub(crate) closure: Option<ClosureMetadata>,
}

/// How a closed shard ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClosureMetadata {
    pub(crate) end_offset: u64,
    pub(crate) closed_at_ms: u64,
    pub(crate) children: Vec<u64>,
}

const FILE_NAME: &str = "stream.json";

impl StreamMetadata {
    /// Replaces the metadata file in `stream_dir`: write a temporary file, fsync it, rename it
    /// over the old one, fsync the directory. A crash leaves the old or the new file, never a mix.
    pub(crate) fn store(&self, stream_dir: &Path) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|error| Error::Corrupt {
            path: stream_dir.join(FILE_NAME),
            reason: format!("cannot encode metadata: {error}"),
        })?;
        let temporary = stream_dir.join(format!("{FILE_NAME}.tmp"));
        let target = stream_dir.join(FILE_NAME);
        let mut file = File::create(&temporary).map_err(|e| Error::io(&temporary, e))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(&temporary, e))?;
        fs::rename(&temporary, &target).map_err(|e| Error::io(&target, e))?;
        sync_dir(stream_dir)
    }

    /// Reads the metadata in `stream_dir`; `None` when there is none (a stream whose creation
    /// did not finish).
    pub(crate) fn load(stream_dir: &Path) -> Result<Option<Self>, Error> {
        let path = stream_dir.join(FILE_NAME);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(Error::io(&path, error)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| Error::Corrupt {
                path,
                reason: error.to_string(),
            })
    }
}

/// Fsyncs a directory so that renames and new files in it survive a machine crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|e| Error::io(dir, e))
}
