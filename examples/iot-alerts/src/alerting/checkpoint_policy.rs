//! How often a processor checkpoints: every so many records or so much time.

use std::time::{Duration, Instant};

/// Checkpoint once this many records were processed since the last checkpoint, or once this
/// much time passed, whichever comes first (checked after each batch).
///
/// Fewer checkpoints cost fewer lease-store writes; more checkpoints mean fewer records
/// processed again after a crash. Either way nothing is lost: a crash repeats at most the
/// records since the last checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Records between checkpoints. Defaults to 1,000.
    pub every_records: u64,
    /// Time between checkpoints. Defaults to 5 s.
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            every_records: 1_000,
            every: Duration::from_secs(5),
        }
    }
}

/// One shard's progress towards its next checkpoint.
#[derive(Debug, Clone)]
pub struct CheckpointSchedule {
    policy: CheckpointPolicy,
    records_since: u64,
    since: Instant,
}

impl CheckpointSchedule {
    /// A schedule starting now.
    pub fn new(policy: CheckpointPolicy) -> Self {
        CheckpointSchedule {
            policy,
            records_since: 0,
            since: Instant::now(),
        }
    }

    /// Counts `records` more processed records; true when a checkpoint is due.
    pub fn processed(&mut self, records: u64) -> bool {
        self.records_since += records;
        self.records_since >= self.policy.every_records || self.since.elapsed() >= self.policy.every
    }

    /// A checkpoint was written.
    pub fn checkpointed(&mut self) {
        self.records_since = 0;
        self.since = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_after_enough_records_or_enough_time() {
        let mut schedule = CheckpointSchedule::new(CheckpointPolicy {
            every_records: 10,
            every: Duration::from_secs(3600),
        });
        assert!(!schedule.processed(9));
        assert!(schedule.processed(1));
        schedule.checkpointed();
        assert!(!schedule.processed(1));

        let mut timed = CheckpointSchedule::new(CheckpointPolicy {
            every_records: u64::MAX,
            every: Duration::ZERO,
        });
        assert!(timed.processed(1));
    }
}
