//! How soon other workers took the leases of a worker that crashed, paused or lost its liveness
//! hold: figures for the report, read from the history, not a guarantee checked.
//!
//! A crash drops the worker's hold, so its leases should go within about a liveness interval,
//! well before they expire; a pause keeps the hold, so they go at expiry at the earliest; a
//! revoked hold makes the worker look dead while it lives, so they go at once unless the worker
//! holds liveness again and takes them back first.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use kcl_core::ShardId;

use crate::history::{Event, WorkerName};

/// What happened to the worker whose leases were up for takeover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TakeoverCause {
    /// The worker was aborted, as a killed process.
    Crash,
    /// The worker was paused, as a stopped process.
    Pause,
    /// The worker's liveness hold was revoked while it ran.
    LivenessRevoked,
}

impl fmt::Display for TakeoverCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What became of the leases a worker held (unexpired) when one cause struck it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TakeoverFigures {
    /// Leases another worker took (or was handed) next.
    pub taken: u64,
    /// Of those, the ones taken before they expired.
    pub before_expiry: u64,
    /// Leases their holder renewed or took back before anybody else took them (a paused worker
    /// that resumed in time, a revoked one that held liveness again first; after a crash, a
    /// renewal that ran in the instant of the abort, before the worker's tasks were dropped).
    pub kept: u64,
    /// The longest time from the fault to a takeover.
    pub worst: Duration,
    /// The seed of the worst takeover, in a summary of many seeds.
    pub worst_seed: Option<u64>,
}

impl TakeoverFigures {
    fn taken_after(&mut self, delay: Duration, before_expiry: bool) {
        self.taken += 1;
        self.before_expiry += u64::from(before_expiry);
        self.worst = self.worst.max(delay);
    }

    /// Adds the figures of `seed` to these.
    fn add(&mut self, other: &TakeoverFigures, seed: u64) {
        self.taken += other.taken;
        self.before_expiry += other.before_expiry;
        self.kept += other.kept;
        if other.taken > 0 && (self.worst_seed.is_none() || other.worst > self.worst) {
            self.worst = other.worst;
            self.worst_seed = Some(seed);
        }
    }
}

/// The takeovers of one seed, or of many, by cause.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Takeovers(pub BTreeMap<TakeoverCause, TakeoverFigures>);

impl Takeovers {
    /// Adds the takeovers of `seed` to these.
    pub(crate) fn add(&mut self, other: &Takeovers, seed: u64) {
        for (cause, figures) in &other.0 {
            self.0.entry(*cause).or_default().add(figures, seed);
        }
    }

    /// Reads the takeovers from a run's history: for every crash, pause and revocation, each
    /// lease the worker held unexpired then, and the next grant of it (a take, a handoff or a
    /// renewal) before it was released or deleted. A lease counts once, for the last of these
    /// faults that struck its holder before that grant (a paused worker that crashes, or whose
    /// hold is revoked, counts as crashed or revoked).
    pub(crate) fn read(events: &[(Duration, Event)]) -> Takeovers {
        // Each shard's holder as the store has it: owner and expiry.
        let mut holders: BTreeMap<&ShardId, (&WorkerName, Duration)> = BTreeMap::new();
        // Leases waiting for their next grant: the last cause that struck their holder, when,
        // who the holder was and until when it held the lease.
        let mut waiting: BTreeMap<&ShardId, (TakeoverCause, Duration, &WorkerName, Duration)> =
            BTreeMap::new();
        let mut takeovers = Takeovers::default();
        for (at, event) in events {
            let (cause, worker) = match event {
                Event::WorkerCrashed { worker } => (TakeoverCause::Crash, worker),
                Event::WorkerPaused { worker, .. } => (TakeoverCause::Pause, worker),
                Event::LivenessRevoked { worker } => (TakeoverCause::LivenessRevoked, worker),
                Event::LeaseTaken {
                    shard,
                    owner,
                    expires,
                    ..
                }
                | Event::LeaseRenewed {
                    shard,
                    owner,
                    expires,
                    ..
                }
                | Event::LeaseHandedOver {
                    shard,
                    to: owner,
                    expires,
                    ..
                } => {
                    if let Some((cause, struck, holder, until)) = waiting.remove(shard) {
                        let figures = takeovers.0.entry(cause).or_default();
                        if owner == holder {
                            figures.kept += 1;
                        } else {
                            figures.taken_after(at.saturating_sub(struck), *at < until);
                        }
                    }
                    holders.insert(shard, (owner, *expires));
                    continue;
                }
                Event::LeaseReleased { shard, .. } | Event::LeaseDeleted { shard } => {
                    holders.remove(shard);
                    waiting.remove(shard);
                    continue;
                }
                _ => continue,
            };
            for (shard, (holder, until)) in &holders {
                if *holder == worker && until > at {
                    waiting.insert(shard, (cause, *at, holder, *until));
                }
            }
        }
        takeovers
    }
}

impl fmt::Display for Takeovers {
    /// Per cause: leases taken by others (how many before they expired, the worst delay and its
    /// seed) and leases kept by their holder.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (cause, figures) in &self.0 {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(
                f,
                "after {cause}: {} taken ({} before expiry), worst {:.3}s",
                figures.taken,
                figures.before_expiry,
                figures.worst.as_secs_f64()
            )?;
            if let Some(seed) = figures.worst_seed {
                write!(f, " (seed {seed})")?;
            }
            write!(f, ", {} kept", figures.kept)?;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn taken(at: u64, shard: &ShardId, owner: &WorkerName, expires: u64) -> (Duration, Event) {
        let event = Event::LeaseTaken {
            shard: shard.clone(),
            owner: Arc::clone(owner),
            epoch: 0,
            steal: false,
            expires: ms(expires),
        };
        (ms(at), event)
    }

    #[test]
    fn a_takeover_counts_for_the_last_fault_of_the_holder_and_a_renewal_keeps_the_lease() {
        let (a, b): (WorkerName, WorkerName) = ("w0.0".into(), "w1.0".into());
        let (first, second) = (ShardId::from_index(0), ShardId::from_index(1));
        let events = vec![
            taken(0, &first, &a, 1_000),
            taken(0, &second, &b, 1_000),
            (
                ms(100),
                Event::WorkerPaused {
                    worker: Arc::clone(&a),
                    for_: ms(500),
                },
            ),
            (
                ms(200),
                Event::WorkerCrashed {
                    worker: Arc::clone(&a),
                },
            ),
            taken(300, &first, &b, 1_300),
            (
                ms(400),
                Event::WorkerPaused {
                    worker: Arc::clone(&b),
                    for_: ms(200),
                },
            ),
            (
                ms(700),
                Event::LeaseRenewed {
                    shard: second.clone(),
                    owner: Arc::clone(&b),
                    epoch: 0,
                    expires: ms(1_700),
                },
            ),
        ];
        let takeovers = Takeovers::read(&events);
        let crash = TakeoverFigures {
            taken: 1,
            before_expiry: 1,
            kept: 0,
            worst: ms(100),
            worst_seed: None,
        };
        // The pause of b struck both its leases; only the one granted again since counts.
        let pause = TakeoverFigures {
            kept: 1,
            ..TakeoverFigures::default()
        };
        let expected = [(TakeoverCause::Crash, crash), (TakeoverCause::Pause, pause)];
        assert_eq!(takeovers.0, BTreeMap::from(expected));
    }
}
