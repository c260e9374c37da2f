//! Counters shared by every shard's processor, for status lines and the final summary.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the processors of one process have done so far.
#[derive(Debug, Default)]
pub struct ProcessingStats {
    readings: AtomicU64,
    skipped: AtomicU64,
    alerts: AtomicU64,
}

/// [`ProcessingStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Records processed, readings and skipped ones alike (a record delivered again after a
    /// restart counts again).
    pub records: u64,
    /// Records skipped because they were not readings.
    pub skipped: u64,
    /// Alerts raised.
    pub alerts: u64,
}

impl ProcessingStats {
    /// Counts a processed batch of `records` records.
    pub fn processed(&self, records: u64) {
        self.readings.fetch_add(records, Ordering::Relaxed);
    }

    /// Counts a record that was not a reading.
    pub fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an alert raised.
    pub fn alerted(&self) {
        self.alerts.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            records: self.readings.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            alerts: self.alerts.load(Ordering::Relaxed),
        }
    }
}
