//! The stream engine of one run, and its machine: in memory, or on a simulated disk that a
//! power cut can take back to its last fsync.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kcl_engine::{Clock, Durability, Engine, EngineConfig, SimulatedDisk};
use tempfile::TempDir;

/// The engine every part of a run reaches through this, never through a clone kept aside: a
/// crash replaces it with the engine reopened from what the disk kept, and readers of the old
/// one must fail as their connection would ([`incarnation`](Self::incarnation) tells them).
pub(crate) struct SimEngine {
    engine: Mutex<Engine>,
    incarnation: AtomicU64,
    config: EngineConfig,
    disk: Option<Disk>,
}

/// A durable engine's data directory and the simulated disk under it.
struct Disk {
    simulated: SimulatedDisk,
    _dir: TempDir,
}

/// A tmpfs, where the engine's real fsyncs (of its metadata) cost nothing, if the machine has
/// one.
const FAST_TEMP: &str = "/dev/shm";

impl SimEngine {
    /// An engine in memory, or (if `durable`) on a simulated disk in a fresh directory that
    /// fsyncs only when told to ([`sync`](Self::sync)), so that a crash loses a tail the seed
    /// decided.
    pub(crate) fn open(
        durable: bool,
        read_wait: Duration,
        clock: Arc<dyn Clock>,
    ) -> Result<SimEngine, String> {
        let year = Duration::from_secs(365 * 24 * 3600);
        let (storage, disk) = if durable {
            let temp = if Path::new(FAST_TEMP).is_dir() {
                PathBuf::from(FAST_TEMP)
            } else {
                std::env::temp_dir()
            };
            let dir = tempfile::Builder::new()
                .prefix("kcl-sim-")
                .tempdir_in(temp)
                .map_err(|error| format!("creating the engine's directory: {error}"))?;
            let simulated = SimulatedDisk::new();
            let config = EngineConfig::durable(dir.path())
                .segment_bytes(4096)
                .file_sync(Arc::new(simulated.clone()));
            (
                config,
                Some(Disk {
                    simulated,
                    _dir: dir,
                }),
            )
        } else {
            (EngineConfig::in_memory(), None)
        };
        // No background fsync, and retention only when the nemesis asks: the engine's
        // maintenance thread stays asleep and never races the simulation.
        let config = storage
            .durability(Durability::Never)
            .retention_check_interval(year)
            .read_wait(read_wait)
            .clock(clock);
        let engine =
            Engine::open(config.clone()).map_err(|error| format!("opening the engine: {error}"))?;
        Ok(SimEngine {
            engine: Mutex::new(engine),
            incarnation: AtomicU64::new(0),
            config,
            disk,
        })
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The engine now. Use it and let it go: a clone kept would keep a crashed engine alive.
    pub(crate) fn current(&self) -> Engine {
        self.engine().clone()
    }

    /// How many times the engine was reopened after a crash.
    pub(crate) fn incarnation(&self) -> u64 {
        self.incarnation.load(Ordering::SeqCst)
    }

    /// True if a crash can lose data: the engine is on the simulated disk.
    pub(crate) fn is_durable(&self) -> bool {
        self.disk.is_some()
    }

    /// Fsyncs everything written so far (a group commit, at a moment the seed chose).
    pub(crate) fn sync(&self) -> Result<(), String> {
        self.engine()
            .sync()
            .map_err(|error| format!("syncing the engine: {error}"))
    }

    /// Cuts the machine's power and brings it back: the engine loses what no fsync made
    /// durable and is reopened from the disk.
    pub(crate) fn crash_and_reopen(&self) -> Result<(), String> {
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        let mut engine = self.engine();
        disk.simulated.cut_power();
        // The crashed engine goes now (its last fsync fails: the power is off), before the
        // disk comes back and the new one opens the same directory.
        *engine = Engine::open(EngineConfig::in_memory())
            .map_err(|error| format!("opening a placeholder engine: {error}"))?;
        disk.simulated
            .restore_power()
            .map_err(|error| format!("restoring the power: {error}"))?;
        *engine = Engine::open(self.config.clone())
            .map_err(|error| format!("reopening the engine after a crash: {error}"))?;
        self.incarnation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
