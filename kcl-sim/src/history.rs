//! Everything that happened in one simulated run, in order, on virtual time: what the checks
//! read, what a failing seed prints, and what the replay digest is made of.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kcl_core::{Checkpoint, SequenceNumber, ShardId};
use tokio::time::Instant;

/// A worker as the simulation names it: slot and incarnation (`w1.0`, `w1.1` after a restart).
/// It is also the worker's id in the lease store.
pub(crate) type WorkerName = Arc<str>;

/// How much of a shard retention removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// Every record below this sequence number.
    Below(SequenceNumber),
    /// The whole shard.
    Removed,
}

/// One thing that happened.
#[derive(Debug, Clone)]
#[allow(
    dead_code,
    reason = "some fields are only read through Debug, in the trace and its digest"
)]
pub(crate) enum Event {
    WorkerStarted {
        worker: WorkerName,
    },
    WorkerCrashed {
        worker: WorkerName,
    },
    WorkerShutdownBegun {
        worker: WorkerName,
    },
    WorkerPaused {
        worker: WorkerName,
        for_: Duration,
    },
    WorkerResumed {
        worker: WorkerName,
    },
    StoreBlackout {
        worker: WorkerName,
        for_: Duration,
    },
    StoreHealed {
        worker: WorkerName,
    },
    /// The store ended the worker's liveness hold while the worker ran.
    LivenessRevoked {
        worker: WorkerName,
    },
    /// A shard was created by a split or merge, with its parents.
    ShardCreated {
        shard: ShardId,
        parents: Vec<ShardId>,
    },
    RetentionEnforced {
        expired: Vec<(ShardId, Expiry)>,
    },
    /// The engine's machine crashed and the engine was reopened without these records.
    EngineRestarted {
        lost: Vec<(ShardId, SequenceNumber)>,
    },
    FaultsStopped,
    /// The producer's write was acknowledged.
    Acked {
        shard: ShardId,
        sequence_number: SequenceNumber,
    },
    /// The factory made processor `run`.
    ProcessorCreated {
        run: u64,
        worker: WorkerName,
        shard: ShardId,
    },
    FactoryPanicked {
        worker: WorkerName,
        shard: ShardId,
    },
    Initialized {
        run: u64,
        checkpoint: Checkpoint,
    },
    /// `process_records` was called.
    Delivered {
        run: u64,
        epoch: u64,
        records: Vec<SequenceNumber>,
    },
    /// The run's last delivery returned `Ok`.
    Processed {
        run: u64,
    },
    /// The run's last delivery returned an error or panicked.
    ProcessingFailed {
        run: u64,
        panicked: bool,
    },
    ProcessorCheckpointed {
        run: u64,
        outcome: String,
    },
    ShardEndedCalled {
        run: u64,
    },
    ShutdownRequestedCalled {
        run: u64,
    },
    LeaseLostCalled {
        run: u64,
    },
    CallbackFailed {
        run: u64,
        callback: &'static str,
        panicked: bool,
    },
    ProcessorDropped {
        run: u64,
    },
    LeaseCreated {
        shard: ShardId,
        checkpoint: Checkpoint,
        parents: Vec<ShardId>,
    },
    LeaseTaken {
        shard: ShardId,
        owner: WorkerName,
        epoch: u64,
        steal: bool,
        expires: Duration,
    },
    LeaseRenewed {
        shard: ShardId,
        owner: WorkerName,
        epoch: u64,
        expires: Duration,
    },
    LeaseHandedOver {
        shard: ShardId,
        to: WorkerName,
        epoch: u64,
        expires: Duration,
    },
    LeaseReleased {
        shard: ShardId,
        owner: WorkerName,
        epoch: u64,
    },
    LeaseCheckpointed {
        shard: ShardId,
        owner: WorkerName,
        epoch: u64,
        checkpoint: Checkpoint,
    },
    /// The store accepted a checkpoint whose fence was not the lease's owner and epoch.
    CheckpointByNonOwner {
        shard: ShardId,
        fence: String,
        holder: String,
    },
    LeaseDeleted {
        shard: ShardId,
    },
}

/// The history of one run, shared by everything that records into it.
#[derive(Debug)]
pub(crate) struct History {
    start: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    events: Vec<(Duration, Event)>,
    runs: u64,
    /// Set when the run is over: what tasks do while the runtime is torn down is not history.
    closed: bool,
    /// Acknowledged records not processed successfully yet (nor expired), for the settle loop.
    unprocessed: BTreeMap<ShardId, BTreeSet<SequenceNumber>>,
    /// Each run's shard and last delivered batch.
    last_batch: BTreeMap<u64, (ShardId, Vec<SequenceNumber>)>,
}

impl History {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(History {
            start: Instant::now(),
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Virtual time since the run began.
    pub(crate) fn now(&self) -> Duration {
        self.start.elapsed()
    }

    pub(crate) fn record(&self, event: Event) {
        let at = self.now();
        let mut state = self.state();
        if state.closed {
            return;
        }
        state.track(&event);
        state.events.push((at, event));
    }

    /// Numbers a new processor and records its creation.
    pub(crate) fn new_run(&self, worker: WorkerName, shard: ShardId) -> u64 {
        let run = {
            let mut state = self.state();
            state.runs += 1;
            state.runs
        };
        self.record(Event::ProcessorCreated { run, worker, shard });
        run
    }

    /// Ends the history.
    pub(crate) fn close(&self) {
        self.state().closed = true;
    }

    /// How many acknowledged records wait for processing, and the first of them.
    pub(crate) fn unprocessed(&self) -> (usize, Option<(ShardId, SequenceNumber)>) {
        let state = self.state();
        let count = state.unprocessed.values().map(BTreeSet::len).sum();
        let first = state
            .unprocessed
            .iter()
            .find_map(|(shard, records)| records.first().map(|r| (shard.clone(), r.clone())));
        (count, first)
    }

    /// Every acknowledged record, by shard, in the order acknowledged.
    pub(crate) fn acked(&self) -> BTreeMap<ShardId, Vec<SequenceNumber>> {
        let mut acked: BTreeMap<ShardId, Vec<SequenceNumber>> = BTreeMap::new();
        for (_, event) in &self.state().events {
            if let Event::Acked {
                shard,
                sequence_number,
            } = event
            {
                acked
                    .entry(shard.clone())
                    .or_default()
                    .push(sequence_number.clone());
            }
        }
        acked
    }

    /// Every event so far.
    pub(crate) fn events(&self) -> Vec<(Duration, Event)> {
        self.state().events.clone()
    }

    /// The history as text, one event per line, stamped with virtual milliseconds.
    pub(crate) fn trace(&self) -> String {
        let mut out = String::new();
        for (at, event) in &self.state().events {
            let _ = writeln!(out, "{:>9.3} {event:?}", at.as_secs_f64());
        }
        out
    }
}

impl State {
    fn track(&mut self, event: &Event) {
        match event {
            Event::Acked {
                shard,
                sequence_number,
            } => {
                self.unprocessed
                    .entry(shard.clone())
                    .or_default()
                    .insert(sequence_number.clone());
            }
            Event::ProcessorCreated { run, shard, .. } => {
                self.last_batch.insert(*run, (shard.clone(), Vec::new()));
            }
            Event::Delivered { run, records, .. } => {
                if let Some((_, batch)) = self.last_batch.get_mut(run) {
                    batch.clone_from(records);
                }
            }
            Event::Processed { run } => {
                if let Some((shard, batch)) = self.last_batch.get(run)
                    && let Some(waiting) = self.unprocessed.get_mut(shard)
                {
                    for record in batch {
                        waiting.remove(record);
                    }
                }
            }
            Event::RetentionEnforced { expired } => {
                for (shard, expiry) in expired {
                    match expiry {
                        Expiry::Removed => {
                            self.unprocessed.remove(shard);
                        }
                        Expiry::Below(first_kept) => {
                            if let Some(waiting) = self.unprocessed.get_mut(shard) {
                                *waiting = waiting.split_off(first_kept);
                            }
                        }
                    }
                }
            }
            Event::EngineRestarted { lost } => {
                for (shard, record) in lost {
                    if let Some(waiting) = self.unprocessed.get_mut(shard) {
                        waiting.remove(record);
                    }
                }
            }
            Event::ProcessorDropped { run } => {
                self.last_batch.remove(run);
            }
            _ => {}
        }
    }
}
