//! The demo's alerts: printed as they happen, and kept for the summary.

use std::io;
use std::sync::{Arc, Mutex};

use super::Console;
use crate::alerting::{Alert, AlertSink};

/// Prints each alert with the worker that raised it, and keeps it.
pub struct ConsoleSink {
    worker: String,
    console: Arc<Console>,
    raised: Arc<Mutex<Vec<Alert>>>,
}

impl ConsoleSink {
    /// A sink for `worker`'s alerts, kept in `raised`.
    pub fn new(worker: &str, console: Arc<Console>, raised: Arc<Mutex<Vec<Alert>>>) -> Self {
        ConsoleSink {
            worker: worker.to_owned(),
            console,
            raised,
        }
    }
}

impl AlertSink for ConsoleSink {
    fn raise(&self, alert: &Alert) -> io::Result<()> {
        self.console.line(&format!(
            "ALERT {alert}  [{} on {}]",
            alert.shard, self.worker
        ));
        self.raised
            .lock()
            .map_err(|_| io::Error::other("the alert list's lock is poisoned"))?
            .push(alert.clone());
        Ok(())
    }
}
