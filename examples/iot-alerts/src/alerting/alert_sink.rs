//! Where alerts go: a trait, and JSON lines to standard output or a file.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

use super::Alert;

/// Receives alerts as they are raised. Shared by every shard's processor, so it must be
/// callable from several tasks.
///
/// An error fails the batch, which the worker delivers again (alerts are at least once).
pub trait AlertSink: Send + Sync {
    /// Delivers one alert. It must be durable enough when this returns: the processor
    /// checkpoints after it, and a checkpointed record is never processed again.
    fn raise(&self, alert: &Alert) -> io::Result<()>;
}

/// Writes each alert as one line of JSON and flushes it at once, so that a process killed a
/// moment later has still handed every raised alert to the operating system.
pub struct JsonLinesSink {
    out: Mutex<Box<dyn Write + Send>>,
}

impl JsonLinesSink {
    /// Alerts to standard output.
    pub fn stdout() -> Self {
        JsonLinesSink {
            out: Mutex::new(Box::new(io::stdout())),
        }
    }

    /// Alerts appended to `path` (created if absent).
    pub fn append_to(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(JsonLinesSink {
            out: Mutex::new(Box::new(file)),
        })
    }
}

impl AlertSink for JsonLinesSink {
    fn raise(&self, alert: &Alert) -> io::Result<()> {
        let mut line = alert.to_json_line();
        line.push('\n');
        let mut out = self
            .out
            .lock()
            .map_err(|_| io::Error::other("the alert output's lock is poisoned"))?;
        out.write_all(line.as_bytes())?;
        out.flush()
    }
}
