//! What a test worker process writes about its work, one JSON object per line: the records it
//! processed, every checkpoint it attempted and how it went, and when each shard's processor
//! began and ended. The checker reads these files back after the processes are gone.
//!
//! Every line is written with a single `write` call as soon as the event happens, so a process
//! killed with SIGKILL leaves whole lines behind (a torn last line is skipped when reading).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::processor_faults::{Callback, InjectedFault};

/// Microseconds since the Unix epoch: one clock for every process on the machine, so events
/// of different processes can be put in order.
pub fn wall_micros() -> u64 {
    micros_since_epoch(SystemTime::now())
}

/// `time` in microseconds since the Unix epoch.
pub fn micros_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
    })
}

/// How a checkpoint attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointOutcome {
    /// Written.
    Ok,
    /// Refused because another worker took the lease: the fence held.
    LeaseLost,
    /// Failed otherwise (the error's text).
    Failed(String),
}

/// One line of a worker's log. `w` is the worker process (test name and incarnation), `run` one
/// processor (one per lease taken) of that process, `t` the wall time in microseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum Event {
    /// The process started its worker.
    Hello {
        /// The worker process.
        w: String,
        /// Its process id.
        pid: u32,
        /// The worker's id in the lease table.
        worker_id: String,
        /// When.
        t: u64,
    },
    /// A processor was created: the worker had just taken the shard's lease.
    Start {
        /// The worker process.
        w: String,
        /// The processor.
        run: u64,
        /// The shard.
        shard: String,
        /// When.
        t: u64,
    },
    /// The processor was initialized at the lease's checkpoint.
    Init {
        /// The worker process.
        w: String,
        /// The processor.
        run: u64,
        /// The shard.
        shard: String,
        /// The checkpoint processing resumes from.
        checkpoint: String,
        /// When.
        t: u64,
    },
    /// One record processed.
    Record {
        /// The worker process.
        w: String,
        /// The processor.
        run: u64,
        /// The shard.
        shard: String,
        /// The record's sequence number.
        seq: kcl_core::SequenceNumber,
        /// Its partition key.
        key: String,
        /// The key's counter from the payload.
        n: u64,
        /// The lease epoch the worker held the shard at.
        epoch: u64,
        /// When the stream accepted the record (µs since the epoch, millisecond precision).
        arrival: u64,
        /// When `process_records` was called with it (its work is logged once done).
        t: u64,
    },
    /// A checkpoint is about to be written (logged before the write, so a process killed
    /// during the write still shows the attempt).
    CheckpointBegin {
        /// The worker process.
        w: String,
        /// The processor.
        run: u64,
        /// The shard.
        shard: String,
        /// The lease epoch the write is fenced on.
        epoch: u64,
        /// The checkpoint (a sequence number, or `SHARD_END`).
        at: String,
        /// When.
        t: u64,
    },
    /// A checkpoint write returned.
    Checkpoint {
        /// The worker process.
        w: String,
        /// The processor.
        run: u64,
        /// The shard.
        shard: String,
        /// The lease epoch the write was fenced on.
        epoch: u64,
        /// The checkpoint (a sequence number, or `SHARD_END`).
        at: String,
        /// How it ended.
        outcome: CheckpointOutcome,
        /// When the write was begun.
        t0: u64,
        /// When it returned.
        t: u64,
    },
    /// The processor injected a fault into one of its calls (before doing any of the call's
    /// work: a batch that fails or panics has logged none of its records).
    Injected {
        /// The worker process.
        w: String,
        /// The processor.
        run: u64,
        /// The shard.
        shard: String,
        /// Which call.
        callback: Callback,
        /// What it did.
        fault: InjectedFault,
        /// The lease epoch, for the calls that have a checkpointer.
        epoch: Option<u64>,
        /// For `process_records`, the batch's first sequence number.
        first: Option<kcl_core::SequenceNumber>,
        /// When the call began.
        t: u64,
    },
    /// The processor's last call: `shard_ended`, `shutdown_requested` or `lease_lost`.
    End {
        /// The worker process.
        w: String,
        /// The processor.
        run: u64,
        /// The shard.
        shard: String,
        /// Which call.
        why: String,
        /// When.
        t: u64,
    },
}

impl Event {
    /// The wall time of the event (for a checkpoint, when it returned).
    pub fn time(&self) -> u64 {
        match self {
            Event::Hello { t, .. }
            | Event::Start { t, .. }
            | Event::Init { t, .. }
            | Event::Record { t, .. }
            | Event::CheckpointBegin { t, .. }
            | Event::Checkpoint { t, .. }
            | Event::Injected { t, .. }
            | Event::End { t, .. } => *t,
        }
    }
}

/// Appends events to a worker's log file, each batch in one `write` call.
pub struct LogWriter {
    file: Mutex<File>,
}

impl LogWriter {
    /// Creates (or truncates) the log at `path`.
    pub fn create(path: &Path) -> std::io::Result<LogWriter> {
        Ok(LogWriter {
            file: Mutex::new(File::create(path)?),
        })
    }

    /// Writes `events`, one line each, in one call. A log that cannot be written makes the
    /// test meaningless, so failing to write aborts the process.
    pub fn write(&self, events: &[Event]) {
        let mut lines = String::new();
        for event in events {
            match serde_json::to_string(event) {
                Ok(line) => {
                    lines.push_str(&line);
                    lines.push('\n');
                }
                Err(error) => panic!("cannot encode {event:?}: {error}"),
            }
        }
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(error) = file.write_all(lines.as_bytes()) {
            eprintln!("cannot write the worker log: {error}");
            std::process::abort();
        }
    }
}

/// The events of every `*.jsonl` log in `dir`, each file in its own order. A last line cut short
/// by a kill is skipped; any other line that does not parse fails the test.
pub fn read_logs(dir: &Path) -> Vec<Event> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    paths.sort();
    let mut events = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        for (number, line) in complete.lines().enumerate() {
            let event = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}: {line}", path.display(), number + 1));
            events.push(event);
        }
    }
    events
}
