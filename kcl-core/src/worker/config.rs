//! How a worker behaves: lease timing, batch sizes, prefetch bounds, where new shards start.

use std::time::{Duration, SystemTime};

use crate::Error;

/// Where processing starts on a shard that has no checkpoint yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitialPosition {
    /// Only records written after the worker first sees the shard (KCL's default).
    #[default]
    Latest,
    /// Every retained record, oldest shards first.
    TrimHorizon,
    /// Records that arrived at or after this time.
    AtTimestamp(SystemTime),
}

/// What the worker does when `process_records` returns an error or panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessorErrorPolicy {
    /// Deliver the same batch again after a backoff, until it succeeds (at-least-once; the
    /// default).
    #[default]
    Retry,
    /// Log the failure and go on with the next batch (the batch counts as delivered).
    Skip,
}

/// A worker's settings. Defaults follow KCL where KCL's choice is sound, and are faster where
/// KCL's are the known pain (taking over a dead worker's shards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// How long a lease lasts without renewal. A crashed worker's shards are taken over within
    /// about a [liveness interval](Self::liveness_interval) where the store can tell a crash;
    /// otherwise, and for a paused or partitioned worker, within this plus one taker interval.
    /// Defaults to 10 s, as KCL's `failoverTimeMillis`. Leases are renewed every third of it.
    pub lease_duration: Duration,
    /// How often the worker looks for leases to take and balances (and at once when it sees a
    /// worker die), give or take a fifth: each wait varies from cycle to cycle and worker to
    /// worker, so that workers started together do not list the lease table all at once.
    /// Defaults to 2 s (KCL: about 20 s), so takeover at lease expiry is lease duration + at
    /// most 2.4 s.
    pub taker_interval: Duration,
    /// How often the worker checks that its own liveness hold is in force (once per interval
    /// at most, and only while it delivers records) and, for the few workers that keep the
    /// death watch (the first four by id), asks the lease store whether the others are still
    /// alive. A worker whose process died (exit, `SIGKILL`, an out-of-memory kill) loses its
    /// hold at once; a watcher sees it within this interval and takes some of its leases, and
    /// the other workers take the rest at their next taker cycle: takeover within about a
    /// taker interval, or within this interval for groups of up to four workers, whatever the
    /// lease duration. Only stores with the liveness capability (SQLite files, PostgreSQL) can
    /// tell; with others, or for a paused or partitioned worker, takeover waits for lease
    /// expiry. Every worker of an application must use the same interval: takers of a dead
    /// worker's leases wait this long before delivering. Defaults to 100 ms.
    pub liveness_interval: Duration,
    /// How long a balancing steal waits for the owner to hand the lease over gracefully before
    /// taking it anyway. Defaults to 5 s.
    pub handoff_timeout: Duration,
    /// How often leases are created for shards the stream has and the table lacks, and those of
    /// finished shards gone from the stream deleted: by every worker once at start, then by
    /// the few (the first four by id) that also watch for deaths. Defaults to 60 s, as KCL;
    /// shards born from a split or merge get their leases at once, at their parent's end.
    pub shard_sync_interval: Duration,
    /// The most records handed to `process_records` at once. Defaults to 10,000, as KCL's
    /// `maxRecords`.
    pub max_records_per_batch: usize,
    /// The most records read ahead of processing, per shard. Defaults to 30,000.
    pub prefetch_max_records: usize,
    /// The most bytes of record data read ahead of processing, per shard. Defaults to 32 MiB.
    pub prefetch_max_bytes: usize,
    /// Where shards without a checkpoint start. Defaults to `Latest`, as KCL.
    pub initial_position: InitialPosition,
    /// What a failing processor gets. Defaults to `Retry`.
    pub on_processor_error: ProcessorErrorPolicy,
    /// The first wait after a failure (throttling, an unavailable store, a failing processor);
    /// it doubles up to `max_backoff`. Defaults to 100 ms.
    pub initial_backoff: Duration,
    /// The longest wait between retries. Defaults to 5 s.
    pub max_backoff: Duration,
    /// Group checkpointing: when set, the checkpoints this worker's shards make within this
    /// delay of the first are written together, in one lease-store call (one statement for
    /// PostgreSQL). Every checkpoint is still fenced on its own lease, and a processor's
    /// `checkpoint` still returns only once its checkpoint is written or refused, up to this
    /// delay later than it would alone. For workers holding many shards that checkpoint
    /// often, where the store's load is the limit (see the README's "Many workers on one
    /// PostgreSQL"). Defaults to `None`: each checkpoint is written at once.
    pub group_checkpoints: Option<Duration>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            lease_duration: Duration::from_secs(10),
            taker_interval: Duration::from_secs(2),
            liveness_interval: Duration::from_millis(100),
            handoff_timeout: Duration::from_secs(5),
            shard_sync_interval: Duration::from_secs(60),
            max_records_per_batch: 10_000,
            prefetch_max_records: 30_000,
            prefetch_max_bytes: 32 * 1024 * 1024,
            initial_position: InitialPosition::Latest,
            on_processor_error: ProcessorErrorPolicy::Retry,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            group_checkpoints: None,
        }
    }
}

impl WorkerConfig {
    /// How often held leases are renewed: a third of the lease duration.
    pub fn renewal_interval(&self) -> Duration {
        self.lease_duration / 3
    }

    /// How long the worker waits for any one lease-store call before counting it as failed:
    /// a renewal interval, so that a store that hangs costs a renewal, not the lease's local
    /// validity.
    pub fn store_call_deadline(&self) -> Duration {
        self.renewal_interval()
    }

    /// How long the worker waits for a listing of the lease table: a lease duration. A listing
    /// only decides what to take, and a large table on a busy store may take longer than a
    /// renewal interval to list; a listing that always failed would leave the worker taking
    /// nothing.
    pub fn store_listing_deadline(&self) -> Duration {
        self.lease_duration
    }

    /// Sets the lease duration.
    pub fn lease_duration(mut self, duration: Duration) -> Self {
        self.lease_duration = duration;
        self
    }

    /// Sets the taker interval.
    pub fn taker_interval(mut self, interval: Duration) -> Self {
        self.taker_interval = interval;
        self
    }

    /// Sets the liveness interval.
    pub fn liveness_interval(mut self, interval: Duration) -> Self {
        self.liveness_interval = interval;
        self
    }

    /// Sets the handoff timeout.
    pub fn handoff_timeout(mut self, timeout: Duration) -> Self {
        self.handoff_timeout = timeout;
        self
    }

    /// Sets the shard sync interval.
    pub fn shard_sync_interval(mut self, interval: Duration) -> Self {
        self.shard_sync_interval = interval;
        self
    }

    /// Sets the largest batch handed to the processor.
    pub fn max_records_per_batch(mut self, records: usize) -> Self {
        self.max_records_per_batch = records;
        self
    }

    /// Sets the prefetch bounds.
    pub fn prefetch(mut self, max_records: usize, max_bytes: usize) -> Self {
        self.prefetch_max_records = max_records;
        self.prefetch_max_bytes = max_bytes;
        self
    }

    /// Sets where shards without a checkpoint start.
    pub fn initial_position(mut self, position: InitialPosition) -> Self {
        self.initial_position = position;
        self
    }

    /// Sets what a failing processor gets.
    pub fn on_processor_error(mut self, policy: ProcessorErrorPolicy) -> Self {
        self.on_processor_error = policy;
        self
    }

    /// Sets the backoff bounds.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// Groups checkpoints made within `delay` of each other into one store call (see
    /// [`group_checkpoints`](Self::group_checkpoints)).
    pub fn group_checkpoints(mut self, delay: Duration) -> Self {
        self.group_checkpoints = Some(delay);
        self
    }

    /// Checks the settings, naming the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        let positive = [
            ("lease_duration", self.lease_duration),
            ("taker_interval", self.taker_interval),
            ("liveness_interval", self.liveness_interval),
            ("handoff_timeout", self.handoff_timeout),
            ("shard_sync_interval", self.shard_sync_interval),
            ("initial_backoff", self.initial_backoff),
        ];
        for (field, value) in positive {
            if value.is_zero() {
                return Err(Error::invalid(field, "must be above zero"));
            }
        }
        if self.lease_duration < Duration::from_millis(30) {
            return Err(Error::invalid(
                "lease_duration",
                "must be at least 30 ms (it is renewed every third of it)",
            ));
        }
        if let Some(delay) = self.group_checkpoints
            && (delay.is_zero() || delay >= self.renewal_interval())
        {
            return Err(Error::invalid(
                "group_checkpoints",
                "must be above zero and below the renewal interval (a third of the lease)",
            ));
        }
        if self.max_backoff < self.initial_backoff {
            return Err(Error::invalid(
                "max_backoff",
                "must be at least initial_backoff",
            ));
        }
        if !(1..=10_000).contains(&self.max_records_per_batch) {
            return Err(Error::invalid(
                "max_records_per_batch",
                format!("{} is outside 1..=10000", self.max_records_per_batch),
            ));
        }
        if self.prefetch_max_records < self.max_records_per_batch {
            return Err(Error::invalid(
                "prefetch_max_records",
                "must hold at least one batch (max_records_per_batch)",
            ));
        }
        if self.prefetch_max_bytes == 0 {
            return Err(Error::invalid("prefetch_max_bytes", "must be above zero"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert_eq!(WorkerConfig::default().validate(), Ok(()));
        let field = |config: WorkerConfig| match config.validate() {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(WorkerConfig::default().lease_duration(Duration::ZERO)),
            "lease_duration"
        );
        assert_eq!(
            field(WorkerConfig::default().max_records_per_batch(0)),
            "max_records_per_batch"
        );
        assert_eq!(
            field(WorkerConfig::default().prefetch(10, 1)),
            "prefetch_max_records"
        );
        assert_eq!(
            field(WorkerConfig::default().backoff(Duration::from_secs(2), Duration::from_secs(1))),
            "max_backoff"
        );
    }
}
