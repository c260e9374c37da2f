//! How the shard logs make what they wrote durable: the one seam between the engine and fsync.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;

/// The calls a shard log makes to force its writes to disk. [`OsFileSync`] is the real one;
/// tests put [`SimulatedDisk`](crate::SimulatedDisk) in its place to fail a sync or to lose
/// power, and see what the engine does about it.
///
/// # Contract
///
/// - [`sync_data`](FileSync::sync_data) returns `Ok` only once every byte written to `file` is
///   durable. After an error nothing is known about the bytes written since the last success:
///   the kernel may have dropped them and may report a later sync as successful anyway. The
///   engine therefore never retries: the log that saw the error refuses writes until the engine
///   is reopened ([`Error::LogPoisoned`](crate::Error::LogPoisoned)).
/// - [`sync_dir`](FileSync::sync_dir) returns `Ok` only once the names created in or removed
///   from `dir` are durable, with the same meaning for an error.
pub trait FileSync: Send + Sync + fmt::Debug {
    /// Makes the data written to `file` (whose path is `path`) durable: `fdatasync`.
    fn sync_data(&self, file: &File, path: &Path) -> io::Result<()>;

    /// Makes the entries of the directory `dir` durable: `fsync` of the directory.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The operating system's fsync.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFileSync;

impl FileSync for OsFileSync {
    fn sync_data(&self, file: &File, _path: &Path) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}
