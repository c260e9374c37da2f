//! The engine's background work: group-commit fsyncs and retention.

use std::sync::Weak;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread;
use std::time::Instant;

use crate::config::{Durability, EngineConfig};
use crate::engine::EngineInner;

/// A thread that fsyncs written shards every group-commit interval and enforces retention
/// every check interval. It stops when the engine is dropped.
pub(crate) struct Maintenance {
    /// Dropping the sender wakes the thread and tells it to stop.
    _stop: Sender<()>,
}

impl Maintenance {
    pub(crate) fn start(engine: Weak<EngineInner>, config: &EngineConfig) -> Maintenance {
        let (stop, stopped) = mpsc::channel::<()>();
        let group_commit = match config.durability {
            Durability::Interval(interval) => Some(interval),
            Durability::Never | Durability::Always => None,
        };
        let retention_every = config.retention_check_interval;
        let tick = group_commit.map_or(retention_every, |interval| interval.min(retention_every));
        let spawned = thread::Builder::new()
            .name("kcl-engine-maintenance".into())
            .spawn(move || {
                let mut retention_due = Instant::now() + retention_every;
                loop {
                    match stopped.recv_timeout(tick) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    let Some(engine) = engine.upgrade() else {
                        return;
                    };
                    if group_commit.is_some() {
                        engine.group_commit();
                    }
                    if Instant::now() >= retention_due {
                        retention_due = Instant::now() + retention_every;
                        if let Err(error) = engine.enforce_retention() {
                            tracing::error!(%error, "enforcing retention failed");
                        }
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the engine's maintenance thread; fsync and retention run only when asked");
        }
        Maintenance { _stop: stop }
    }
}
