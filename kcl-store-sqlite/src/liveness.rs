//! Liveness bound to the process by an operating-system lock on a file beside the database.
//!
//! Each worker that holds liveness has a row in `kcl_liveness`; the row's id names its lock file,
//! `<id>.lock` in the directory `<database file>.liveness`. The hold is an exclusive
//! [`File::try_lock`] (`flock`-style: it belongs to the open file, so a second opening in the
//! same process conflicts with it too), which the operating system lets go of when the process
//! dies or the [`File`] is dropped. Whoever can take the lock of a worker's file proves that
//! worker dead.
//!
//! The file operations are local system calls that never wait (every lock is non-blocking), so
//! they run inline on the async task, like the rest of this crate's non-database work.

use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use kcl_core::{Error, LivenessHold, WorkerId};

use crate::error_mapping::from_io;

/// The directory of the lock files of one database.
#[derive(Debug, Clone)]
pub(crate) struct LockDir {
    dir: PathBuf,
}

impl LockDir {
    /// The lock files of the database file at `database` (an absolute path, so that every
    /// process names the same directory whatever its working directory).
    pub(crate) fn beside(database: &Path) -> Self {
        let mut dir = database.as_os_str().to_owned();
        dir.push(".liveness");
        LockDir { dir: dir.into() }
    }

    fn path(&self, id: i64) -> PathBuf {
        self.dir.join(format!("{id}.lock"))
    }

    /// Takes `worker`'s lock, file `id`, for as long as the returned hold lives. Another hold
    /// in force on it (in this process or another) is [`Error::Unavailable`]: that one's
    /// process may die, and a store probing the file holds its lock for an instant.
    pub(crate) fn hold(&self, id: i64, worker: &WorkerId) -> Result<FileHold, Error> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| from_io(&format!("creating {}", self.dir.display()), e))?;
        let path = self.path(id);
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| from_io(&format!("opening {}", path.display()), e))?;
        if try_lock(&file, &path)? {
            Ok(FileHold { file, path })
        } else {
            Err(Error::Unavailable {
                message: format!(
                    "the liveness of {worker} is already held (its lock file {} is locked)",
                    path.display()
                ),
            })
        }
    }

    /// True if nobody holds file `id`'s lock: its holder's process died or dropped the hold
    /// (the lock taken to learn it is let go of at once). A missing file counts as released:
    /// its holder's [`check`](LivenessHold::check) fails.
    pub(crate) fn is_released(&self, id: i64) -> Result<bool, Error> {
        let path = self.path(id);
        match open_existing(&path)? {
            Some(file) => try_lock(&file, &path),
            None => Ok(true),
        }
    }

    /// Removes file `id` if nobody holds its lock; a hold still in force keeps it.
    pub(crate) fn remove(&self, id: i64) -> Result<(), Error> {
        let path = self.path(id);
        if let Some(file) = open_existing(&path)?
            && try_lock(&file, &path)?
        {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(from_io(&format!("removing {}", path.display()), e));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The file at `path`, if it exists.
fn open_existing(path: &Path) -> Result<Option<File>, Error> {
    match File::options().read(true).write(true).open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(from_io(&format!("opening {}", path.display()), e)),
    }
}

/// Takes `file`'s exclusive lock without waiting: `false` if another open file holds it.
fn try_lock(file: &File, path: &Path) -> Result<bool, Error> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(from_io(&format!("locking {}", path.display()), e)),
    }
}

/// A worker's liveness: the lock on its file, held while this value lives.
#[derive(Debug)]
pub(crate) struct FileHold {
    file: File,
    path: PathBuf,
}

#[async_trait]
impl LivenessHold for FileHold {
    /// Fails once the locked file is no longer the one at its path (removed or replaced): then
    /// another process may take a lock there and see this worker dead.
    async fn check(&self) -> Result<(), Error> {
        let lost = |why: String| Error::Unavailable {
            message: format!("the liveness lock file {} {why}", self.path.display()),
        };
        let at_path = match std::fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(lost("was removed".into()));
            }
            Err(e) => return Err(from_io(&format!("reading {}", self.path.display()), e)),
        };
        let held = self
            .file
            .metadata()
            .map_err(|e| from_io(&format!("reading {}", self.path.display()), e))?;
        if same_file(&held, &at_path) {
            Ok(())
        } else {
            Err(lost("was replaced by another file".into()))
        }
    }
}

/// True if `a` and `b` describe the same file (on Unix, the same device and inode; elsewhere,
/// only the path's existence, checked by the caller, is known).
#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
}
