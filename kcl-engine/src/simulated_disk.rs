//! A disk for tests: it fails syncs on demand and loses, at a power cut, what no sync made
//! durable.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::FileSync;

/// A [`FileSync`] that remembers what each sync would have made durable, instead of calling
/// fsync, so that a test can fail syncs and cut the power.
///
/// The model is the contract a log relies on, nothing kinder: a file keeps, after a power cut,
/// the bytes it had at its last successful [`sync_data`](FileSync::sync_data) (none if it never
/// had one), and exists only if it was in its directory at that directory's last successful
/// [`sync_dir`](FileSync::sync_dir). Give it an empty data directory and keep it across engine
/// reopens, as a machine keeps its disk: files it never saw are taken as never made durable
/// only in directories it synced, and left alone elsewhere. Deleted files stay deleted.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use kcl_engine::{Durability, Engine, EngineConfig, PutRecordsEntry, SimulatedDisk, StreamOptions};
///
/// let dir = tempfile::tempdir()?;
/// let disk = SimulatedDisk::new();
/// let config = || {
///     EngineConfig::durable(dir.path())
///         .durability(Durability::Interval(Duration::from_secs(3600)))
///         .file_sync(Arc::new(disk.clone()))
/// };
/// let engine = Engine::open(config())?;
/// engine.create_stream("s", StreamOptions::with_shards(1))?;
/// engine.put_record("s", PutRecordsEntry::new("k", "kept"))?;
/// engine.sync()?;
/// engine.put_record("s", PutRecordsEntry::new("k", "never synced"))?;
///
/// disk.cut_power();
/// drop(engine); // its last fsync fails: the power is off
/// disk.restore_power()?;
/// let engine = Engine::open(config())?;
/// # let _ = engine;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct SimulatedDisk {
    state: Arc<Mutex<DiskState>>,
}

#[derive(Debug, Default)]
struct DiskState {
    /// Bytes of each file that its last successful sync made durable.
    synced_len: HashMap<PathBuf, u64>,
    /// The file names in each directory at its last successful sync.
    durable_names: HashMap<PathBuf, BTreeSet<OsString>>,
    /// Syncs still to fail, as a disk answering EIO.
    failures_left: u32,
    powered_off: bool,
}

impl SimulatedDisk {
    /// A disk on which nothing was synced yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `count` syncs (of files or directories) fail with an I/O error and make
    /// nothing durable.
    pub fn fail_next_syncs(&self, count: u32) {
        self.lock().failures_left = count;
    }

    /// Cuts the power: from now on every sync fails and makes nothing durable, until
    /// [`restore_power`](SimulatedDisk::restore_power).
    pub fn cut_power(&self) {
        self.lock().powered_off = true;
    }

    /// Brings the machine back after [`cut_power`](SimulatedDisk::cut_power): in every
    /// directory this disk has synced, or holding a file it has synced, a file whose name no
    /// directory sync covered disappears and every other file is cut back to the length its last
    /// sync made durable. Syncs succeed again.
    pub fn restore_power(&self) -> io::Result<()> {
        let mut state = self.lock();
        let mut dirs: BTreeSet<PathBuf> = state.durable_names.keys().cloned().collect();
        dirs.extend(
            state
                .synced_len
                .keys()
                .filter_map(|path| path.parent().map(Path::to_path_buf)),
        );
        for dir in dirs {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            let names = state.durable_names.get(&dir);
            for entry in entries {
                let entry = entry?;
                if !entry.file_type()?.is_file() {
                    continue;
                }
                let path = entry.path();
                if names.is_none_or(|names| !names.contains(&entry.file_name())) {
                    fs::remove_file(&path)?;
                    continue;
                }
                let durable = state.synced_len.get(&path).copied().unwrap_or(0);
                if entry.metadata()?.len() > durable {
                    OpenOptions::new()
                        .write(true)
                        .open(&path)?
                        .set_len(durable)?;
                }
            }
        }
        state.powered_off = false;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl DiskState {
    /// Whether the sync being made goes through; counts an injected failure.
    fn admit_sync(&mut self) -> io::Result<()> {
        if self.powered_off {
            return Err(io::Error::other("simulated disk: the power is off"));
        }
        if self.failures_left > 0 {
            self.failures_left -= 1;
            return Err(io::Error::other("simulated disk: injected sync failure"));
        }
        Ok(())
    }
}

impl FileSync for SimulatedDisk {
    fn sync_data(&self, file: &File, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.admit_sync()?;
        let len = file.metadata()?.len();
        state.synced_len.insert(path.to_path_buf(), len);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.admit_sync()?;
        let names = fs::read_dir(dir)?
            .map(|entry| entry.map(|entry| entry.file_name()))
            .collect::<io::Result<BTreeSet<_>>>()?;
        state.durable_names.insert(dir.to_path_buf(), names);
        Ok(())
    }
}
