//! Waiting between retries: exponential backoff with jitter, from the `backoff` crate.

use std::time::Duration;

use backoff::backoff::Backoff as _;

use crate::worker::WorkerConfig;

/// Delays that double from the configured initial backoff up to the maximum, with jitter so
/// that workers failing together do not retry together.
pub(crate) struct Backoff(backoff::ExponentialBackoff);

impl Backoff {
    pub(crate) fn new(config: &WorkerConfig) -> Self {
        Backoff(backoff::ExponentialBackoff {
            current_interval: config.initial_backoff,
            initial_interval: config.initial_backoff,
            max_interval: config.max_backoff,
            multiplier: 2.0,
            randomization_factor: 0.2,
            // Callers decide when to stop (a lost lease, a shutdown); the delays never run out.
            max_elapsed_time: None,
            ..backoff::ExponentialBackoff::default()
        })
    }

    /// The next delay.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.0.next_backoff().unwrap_or(self.0.max_interval)
    }

    /// Starts again from the initial delay, after a success.
    pub(crate) fn reset(&mut self) {
        self.0.reset();
    }
}
