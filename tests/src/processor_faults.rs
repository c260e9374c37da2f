//! Faults a test worker's processors inject into their own callbacks: errors, panics and slow
//! batches, at rates the test chooses, drawn from a seed so that a worker process's choices
//! replay. The worker logs each fault it injects (`worker_log::Event::Injected`), so the checker
//! knows which batches failed and the report can count them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::seeded_rng::SeededRng;

/// A processor callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Callback {
    /// `initialize`.
    Initialize,
    /// `process_records`.
    ProcessRecords,
    /// `shard_ended`.
    ShardEnded,
    /// `shutdown_requested`.
    ShutdownRequested,
    /// `lease_lost`.
    LeaseLost,
}

/// A fault a processor injected into one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectedFault {
    /// The call returned an error.
    Error,
    /// The call panicked.
    Panic,
    /// The call took this many milliseconds longer (and then went on, to succeed or fail).
    Slow(u64),
}

/// How often processors fail, in calls per thousand. Zero everywhere (the default) is a
/// processor that never fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessorFaults {
    /// Where each worker process's draws start (mixed with the process's name).
    pub seed: u64,
    /// `process_records` calls that return an error.
    pub batch_errors: u32,
    /// `process_records` calls that panic.
    pub batch_panics: u32,
    /// Calls of the other callbacks that return an error (`lease_lost` returns nothing: it
    /// only panics).
    pub lifecycle_errors: u32,
    /// Calls of the other callbacks that panic.
    pub lifecycle_panics: u32,
    /// `process_records` calls that are slow.
    pub slow_batches: u32,
    /// How slow a slow call is at most (uniformly from zero).
    pub slow_max: Duration,
}

/// The command-line flags of [`ProcessorFaults`], in the order of its fields.
const FLAGS: [&str; 7] = [
    "fault-seed",
    "batch-errors",
    "batch-panics",
    "lifecycle-errors",
    "lifecycle-panics",
    "slow-batches",
    "slow-max-ms",
];

impl ProcessorFaults {
    /// True when some call may fail or be slow.
    pub fn any(&self) -> bool {
        self.batch_errors
            + self.batch_panics
            + self.lifecycle_errors
            + self.lifecycle_panics
            + self.slow_batches
            > 0
    }

    /// The same rates, drawn from a seed of `instance`'s own.
    pub fn for_instance(&self, instance: &str) -> ProcessorFaults {
        ProcessorFaults {
            seed: SeededRng::derive(self.seed, instance),
            ..*self
        }
    }

    /// The worker's command-line flags for these faults.
    pub fn to_args(&self) -> Vec<String> {
        let values = [
            self.seed,
            u64::from(self.batch_errors),
            u64::from(self.batch_panics),
            u64::from(self.lifecycle_errors),
            u64::from(self.lifecycle_panics),
            u64::from(self.slow_batches),
            u64::try_from(self.slow_max.as_millis()).unwrap_or(u64::MAX),
        ];
        FLAGS
            .iter()
            .zip(values)
            .flat_map(|(flag, value)| [format!("--{flag}"), value.to_string()])
            .collect()
    }

    /// Reads the flags [`to_args`](Self::to_args) wrote from a worker's `--flag value` pairs;
    /// absent flags are zero.
    pub fn from_flags(flags: &BTreeMap<String, String>) -> Result<ProcessorFaults, String> {
        let mut values = [0u64; FLAGS.len()];
        for (value, flag) in values.iter_mut().zip(FLAGS) {
            if let Some(text) = flags.get(flag) {
                *value = text
                    .parse()
                    .map_err(|_| format!("--{flag} {text:?} is not a number"))?;
            }
        }
        let [
            seed,
            batch_errors,
            batch_panics,
            lifecycle_errors,
            lifecycle_panics,
            slow,
            slow_ms,
        ] = values;
        let per_mille = |flag: &str, value: u64| {
            u32::try_from(value)
                .ok()
                .filter(|v| *v <= 1000)
                .ok_or_else(|| format!("--{flag} {value} is not a number per thousand"))
        };
        Ok(ProcessorFaults {
            seed,
            batch_errors: per_mille(FLAGS[1], batch_errors)?,
            batch_panics: per_mille(FLAGS[2], batch_panics)?,
            lifecycle_errors: per_mille(FLAGS[3], lifecycle_errors)?,
            lifecycle_panics: per_mille(FLAGS[4], lifecycle_panics)?,
            slow_batches: per_mille(FLAGS[5], slow)?,
            slow_max: Duration::from_millis(slow_ms),
        })
    }
}

/// One processor's draws: what each of its calls does.
#[derive(Debug, Clone)]
pub struct FaultDice {
    faults: ProcessorFaults,
    rng: SeededRng,
}

impl FaultDice {
    /// The draws of processor `run` of a worker whose faults are `faults`.
    pub fn new(faults: ProcessorFaults, run: u64) -> FaultDice {
        FaultDice {
            faults,
            rng: SeededRng::new(SeededRng::derive(faults.seed, &run.to_string())),
        }
    }

    /// Whether a call of `callback` fails: `Some(Error)`, `Some(Panic)`, or `None` to succeed.
    pub fn failure(&mut self, callback: Callback) -> Option<InjectedFault> {
        let (errors, panics) = match callback {
            Callback::ProcessRecords => (self.faults.batch_errors, self.faults.batch_panics),
            Callback::LeaseLost => (0, self.faults.lifecycle_panics),
            Callback::Initialize | Callback::ShardEnded | Callback::ShutdownRequested => {
                (self.faults.lifecycle_errors, self.faults.lifecycle_panics)
            }
        };
        // One draw decides both, so the rates add up rather than overlap.
        let draw = (self.rng.next_u64() % 1000) as u32;
        if draw < errors {
            Some(InjectedFault::Error)
        } else if draw < errors + panics {
            Some(InjectedFault::Panic)
        } else {
            None
        }
    }

    /// How much slower a `process_records` call is, if at all.
    pub fn slowness(&mut self) -> Option<Duration> {
        if self.faults.slow_max.is_zero() || !self.rng.chance(self.faults.slow_batches) {
            return None;
        }
        let max = u64::try_from(self.faults.slow_max.as_millis()).unwrap_or(u64::MAX);
        Some(self.rng.millis(1, max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_read_back_what_they_wrote() {
        let faults = ProcessorFaults {
            seed: 42,
            batch_errors: 20,
            batch_panics: 10,
            lifecycle_errors: 100,
            lifecycle_panics: 50,
            slow_batches: 3,
            slow_max: Duration::from_millis(3000),
        };
        let args = faults.to_args();
        let flags: BTreeMap<String, String> = args
            .chunks(2)
            .map(|pair| (pair[0].trim_start_matches("--").to_owned(), pair[1].clone()))
            .collect();
        assert_eq!(ProcessorFaults::from_flags(&flags), Ok(faults));
        assert_eq!(
            ProcessorFaults::from_flags(&BTreeMap::new()),
            Ok(ProcessorFaults::default())
        );
        let too_many = BTreeMap::from([("batch-errors".to_owned(), "1001".to_owned())]);
        assert!(ProcessorFaults::from_flags(&too_many).is_err());
    }

    #[test]
    fn the_draws_follow_the_rates_and_replay() {
        let faults = ProcessorFaults {
            seed: 7,
            batch_errors: 100,
            batch_panics: 50,
            ..ProcessorFaults::default()
        };
        let draws = |run| {
            let mut dice = FaultDice::new(faults, run);
            (0..10_000)
                .map(|_| dice.failure(Callback::ProcessRecords))
                .collect::<Vec<_>>()
        };
        let first = draws(0);
        assert_eq!(first, draws(0), "the same run draws the same");
        assert_ne!(first, draws(1), "another run draws its own");
        let count = |fault| first.iter().filter(|f| **f == Some(fault)).count();
        assert!((800..1200).contains(&count(InjectedFault::Error)));
        assert!((350..650).contains(&count(InjectedFault::Panic)));
        let mut dice = FaultDice::new(faults, 0);
        assert!((0..1000).all(|_| dice.failure(Callback::ShardEnded).is_none()));
        assert!((0..1000).all(|_| dice.slowness().is_none()));
    }
}
