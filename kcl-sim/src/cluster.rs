//! The simulated workers: started, crashed, shut down, restarted, paused, cut off from the
//! store and deprived of their liveness, each behind its own fault injectors.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kcl_core::worker::{Worker, WorkerConfig, WorkerHandle};
use kcl_core::{Checkpoint, FaultInjectingLeaseStore, Lease, LeaseStore, StreamName, WorkerId};
use tokio::time::Instant;

use crate::audit::{AuditedLeaseStore, name};
use crate::engine::SimEngine;
use crate::faults::Faults;
use crate::gate::Gate;
use crate::history::{Event, History, WorkerName};
use crate::processor::{ProcessorContext, SimProcessorFactory};
use crate::rng::SimRng;
use crate::source::FaultInjectingSource;

/// What the workers share: the stream, the store and the seed's faults.
pub(crate) struct Shared {
    pub(crate) stream: StreamName,
    pub(crate) engine: Arc<SimEngine>,
    pub(crate) store: Arc<AuditedLeaseStore>,
    pub(crate) history: Arc<History>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) rng: SimRng,
    pub(crate) config: WorkerConfig,
}

/// One worker process of the simulation, as its slot and incarnation: a restart is a new
/// process with a new id.
struct Slot {
    incarnation: u32,
    running: Option<Running>,
    /// When a stopped worker comes back.
    restart_at: Option<Instant>,
}

struct Running {
    name: WorkerName,
    /// Its id in the lease store (the same text as its name).
    id: WorkerId,
    handle: WorkerHandle,
    gate: Arc<Gate>,
    store: Arc<FaultInjectingLeaseStore>,
}

impl Running {
    /// Lets hanging store calls through, unless the worker's store is still cut off.
    fn heal(&self) {
        if !self.gate.store_blocked() {
            self.store.release_hangs();
        }
    }
}

/// The workers.
pub(crate) struct Cluster {
    shared: Shared,
    slots: Vec<Slot>,
}

impl Cluster {
    /// Starts `workers` workers.
    pub(crate) fn start(shared: Shared, workers: usize) -> Result<Cluster, String> {
        let mut cluster = Cluster {
            shared,
            slots: (0..workers)
                .map(|_| Slot {
                    incarnation: 0,
                    running: None,
                    restart_at: None,
                })
                .collect(),
        };
        for slot in 0..workers {
            cluster.start_slot(slot)?;
        }
        Ok(cluster)
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    fn start_slot(&mut self, slot: usize) -> Result<(), String> {
        let shared = &self.shared;
        let entry = &mut self.slots[slot];
        let name: WorkerName = format!("w{slot}.{}", entry.incarnation).into();
        entry.incarnation += 1;
        let gate = Arc::new(Gate::default());
        let store = Arc::new(FaultInjectingLeaseStore::with_decider(
            Arc::clone(&shared.store) as Arc<dyn LeaseStore>,
            {
                let (faults, gate) = (Arc::clone(&shared.faults), Arc::clone(&gate));
                move |op| {
                    if gate.store_blocked() {
                        Some(kcl_core::LeaseStoreFault::Hang)
                    } else {
                        faults.store_fault(op)
                    }
                }
            },
        ));
        let source = FaultInjectingSource::new(
            Arc::clone(&shared.engine),
            Arc::clone(&shared.faults),
            Arc::clone(&gate),
        );
        let factory = SimProcessorFactory(ProcessorContext {
            worker: Arc::clone(&name),
            history: Arc::clone(&shared.history),
            faults: Arc::clone(&shared.faults),
            rng: shared.rng.clone(),
            gate: Arc::clone(&gate),
            slowest: shared.config.lease_duration * 2,
        });
        let id = WorkerId::new(&name).map_err(|error| format!("naming worker {name}: {error}"))?;
        let worker = Worker::builder()
            .stream(shared.stream.as_str())
            .and_then(|builder| {
                builder
                    .source(Arc::new(source))
                    .lease_store(Arc::clone(&store) as Arc<dyn LeaseStore>)
                    .processor_factory(factory)
                    .config(shared.config.clone())
                    .worker_id(id.clone())
                    .build()
            })
            .map_err(|error| format!("building worker {name}: {error}"))?;
        shared.history.record(Event::WorkerStarted {
            worker: Arc::clone(&name),
        });
        entry.running = Some(Running {
            name,
            id,
            handle: worker.start(),
            gate,
            store,
        });
        entry.restart_at = None;
        Ok(())
    }

    /// The slots with a running worker.
    pub(crate) fn running(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&slot| self.slots[slot].running.is_some())
            .collect()
    }

    /// Stops `slot` as a killed process would; it restarts after `downtime`.
    pub(crate) fn crash(&mut self, slot: usize, downtime: Duration) {
        if let Some(running) = self.stop(slot, downtime) {
            self.shared.history.record(Event::WorkerCrashed {
                worker: running.name,
            });
            running.handle.abort();
        }
    }

    /// Shuts `slot` down gracefully (in the background: a shutdown may wait on a hanging
    /// store); it restarts after `downtime`.
    pub(crate) fn shut_down(&mut self, slot: usize, downtime: Duration) {
        if let Some(running) = self.stop(slot, downtime) {
            self.shared.history.record(Event::WorkerShutdownBegun {
                worker: running.name,
            });
            tokio::spawn(async move {
                // A worker whose shutdown failed is gone all the same.
                let _ = running.handle.shutdown().await;
            });
        }
    }

    fn stop(&mut self, slot: usize, downtime: Duration) -> Option<Running> {
        let entry = &mut self.slots[slot];
        let running = entry.running.take()?;
        entry.restart_at = Some(Instant::now() + downtime);
        Some(running)
    }

    /// Restarts the workers whose downtime is over.
    pub(crate) fn restart_due(&mut self) -> Result<(), String> {
        let now = Instant::now();
        for slot in 0..self.slots.len() {
            if self.slots[slot].restart_at.is_some_and(|at| at <= now) {
                self.start_slot(slot)?;
            }
        }
        Ok(())
    }

    /// Pauses `slot` for `duration`: its store calls, reads and callbacks wait.
    pub(crate) fn pause(&self, slot: usize, duration: Duration) {
        let Some(running) = &self.slots[slot].running else {
            return;
        };
        if running.gate.is_paused() {
            return;
        }
        running.gate.set_paused(true);
        let history = Arc::clone(&self.shared.history);
        history.record(Event::WorkerPaused {
            worker: Arc::clone(&running.name),
            for_: duration,
        });
        let (name, gate, store) = (
            Arc::clone(&running.name),
            Arc::clone(&running.gate),
            Arc::clone(&running.store),
        );
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            gate.set_paused(false);
            if !gate.store_blocked() {
                store.release_hangs();
            }
            history.record(Event::WorkerResumed { worker: name });
        });
    }

    /// Ends the liveness hold of `slot`'s worker while it runs, as a database terminating the
    /// hold's session would. `false` if it held none in force.
    pub(crate) fn revoke_liveness(&self, slot: usize) -> bool {
        self.slots[slot]
            .running
            .as_ref()
            .is_some_and(|running| self.shared.store.revoke_liveness(&running.id))
    }

    /// Makes every lease store call of `slot` hang for `duration`.
    pub(crate) fn black_out(&self, slot: usize, duration: Duration) {
        let Some(running) = &self.slots[slot].running else {
            return;
        };
        if running.gate.store_blocked() {
            return;
        }
        running.gate.set_blackout(true);
        let history = Arc::clone(&self.shared.history);
        history.record(Event::StoreBlackout {
            worker: Arc::clone(&running.name),
            for_: duration,
        });
        let (name, gate, store) = (
            Arc::clone(&running.name),
            Arc::clone(&running.gate),
            Arc::clone(&running.store),
        );
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            gate.set_blackout(false);
            if !gate.store_blocked() {
                store.release_hangs();
            }
            history.record(Event::StoreHealed { worker: name });
        });
    }

    /// Lets the hanging store calls of every worker not cut off go through.
    pub(crate) fn heal_hangs(&self) {
        for running in self.slots.iter().filter_map(|slot| slot.running.as_ref()) {
            running.heal();
        }
    }

    /// Ends the chaos: every worker resumed, reconnected and running.
    pub(crate) fn calm(&mut self) -> Result<(), String> {
        for running in self.slots.iter().filter_map(|slot| slot.running.as_ref()) {
            running.gate.set_paused(false);
            running.gate.set_blackout(false);
            running.heal();
        }
        for slot in 0..self.slots.len() {
            if self.slots[slot].running.is_none() {
                self.start_slot(slot)?;
            }
        }
        Ok(())
    }

    /// Why the cluster is not balanced yet, if it is not: every lease with work left (not
    /// finished, its parents finished) owned by a running worker, and every running worker
    /// holding the floor or the ceiling of the fair share.
    pub(crate) async fn imbalance(&self) -> Option<String> {
        let leases = match self
            .shared
            .store
            .inner()
            .list_leases(&self.shared.stream)
            .await
        {
            Ok(leases) => leases,
            Err(error) => return Some(format!("listing leases failed: {error}")),
        };
        let finished = |shard| {
            leases
                .iter()
                .find(|lease| &lease.key.shard == shard)
                .is_none_or(|lease| lease.checkpoint == Checkpoint::ShardEnd)
        };
        let active: Vec<&Lease> = leases
            .iter()
            .filter(|lease| lease.checkpoint != Checkpoint::ShardEnd)
            .filter(|lease| lease.parent_shard_ids.iter().all(finished))
            .collect();
        let mut held: BTreeMap<&str, usize> = self
            .slots
            .iter()
            .filter_map(|slot| slot.running.as_ref())
            .map(|running| (&*running.name, 0))
            .collect();
        for lease in &active {
            let owner = lease
                .owner
                .as_ref()
                .filter(|_| !lease.is_expired())
                .map(name);
            match owner.as_ref().and_then(|owner| held.get_mut(&**owner)) {
                Some(count) => *count += 1,
                None => {
                    return Some(format!(
                        "lease {} has work left and no live owner ({:?})",
                        lease.key.shard, lease.owner
                    ));
                }
            }
        }
        let workers = held.len().max(1);
        let (floor, ceiling) = (active.len() / workers, active.len().div_ceil(workers));
        held.values()
            .any(|&count| count < floor || count > ceiling)
            .then(|| {
                format!(
                    "{} active leases held as {held:?}, not between {floor} and {ceiling} each",
                    active.len()
                )
            })
    }
}
