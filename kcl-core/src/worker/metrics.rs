//! What a worker counts, for tests, status lines and monitoring.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters a worker keeps while it runs.
#[derive(Debug, Default)]
pub(crate) struct WorkerMetrics {
    pub(crate) records_processed: AtomicU64,
    pub(crate) leases_taken: AtomicU64,
    pub(crate) leases_stolen: AtomicU64,
    pub(crate) leases_taken_from_dead: AtomicU64,
    pub(crate) leases_lost: AtomicU64,
    pub(crate) handoffs_completed: AtomicU64,
    pub(crate) processor_failures: AtomicU64,
    pub(crate) shard_ends_not_checkpointed: AtomicU64,
}

impl WorkerMetrics {
    pub(crate) fn add(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MetricsSnapshot {
            records_processed: read(&self.records_processed),
            leases_taken: read(&self.leases_taken),
            leases_stolen: read(&self.leases_stolen),
            leases_taken_from_dead: read(&self.leases_taken_from_dead),
            leases_lost: read(&self.leases_lost),
            handoffs_completed: read(&self.handoffs_completed),
            processor_failures: read(&self.processor_failures),
            shard_ends_not_checkpointed: read(&self.shard_ends_not_checkpointed),
        }
    }
}

/// A worker's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Records delivered to processors that returned success.
    pub records_processed: u64,
    /// Leases taken (unowned or expired ones, steals, and handoffs received).
    pub leases_taken: u64,
    /// Leases taken from a live owner after a handoff request timed out.
    pub leases_stolen: u64,
    /// Leases taken at once from a worker the lease store proved dead (its process died), before
    /// they expired.
    pub leases_taken_from_dead: u64,
    /// Leases another worker took from this one.
    pub leases_lost: u64,
    /// Leases this worker handed to another gracefully.
    pub handoffs_completed: u64,
    /// Batches whose processing failed or panicked.
    pub processor_failures: u64,
    /// Times a processor returned from `shard_ended` without checkpointing `SHARD_END`.
    pub shard_ends_not_checkpointed: u64,
}
