//! How a [`KinesisSource`](crate::KinesisSource) reads: polling and backoff.

use std::time::Duration;

/// How a source retries throttled and failed calls: pauses that double from `initial` to `max`,
/// with jitter ([`kcl_core::Backoff`], the policy every retrying loop of kcl-rs uses).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// The first pause. Defaults to 100 ms.
    pub initial: Duration,
    /// The longest pause. Defaults to 10 s.
    pub max: Duration,
    /// How many retries a call gets before its transient error is returned to the caller (who
    /// may retry again). Defaults to 8, about 25 s of trying with the other defaults.
    pub max_retries: u32,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            max_retries: 8,
        }
    }
}

/// The configuration of a [`KinesisSource`](crate::KinesisSource). Start from
/// [`KinesisSourceConfig::default`] and adjust with the setters.
#[derive(Debug, Clone, PartialEq)]
pub struct KinesisSourceConfig {
    /// How long a reader waits before polling a shard again when its last GetRecords returned
    /// nothing new. Defaults to 1 s, as KCL's `idleTimeBetweenReadsInMillis`; reads that return
    /// records are followed at once.
    pub idle_poll_interval: Duration,
    /// Retries of throttled and failed calls.
    pub backoff: BackoffConfig,
}

impl Default for KinesisSourceConfig {
    fn default() -> Self {
        KinesisSourceConfig {
            idle_poll_interval: Duration::from_secs(1),
            backoff: BackoffConfig::default(),
        }
    }
}

impl KinesisSourceConfig {
    /// Sets the idle polling interval.
    pub fn idle_poll_interval(mut self, interval: Duration) -> Self {
        self.idle_poll_interval = interval;
        self
    }

    /// Sets the backoff of retried calls.
    pub fn backoff(mut self, backoff: BackoffConfig) -> Self {
        self.backoff = backoff;
        self
    }

    /// Checks the values, naming the first bad field.
    pub fn validate(&self) -> Result<(), kcl_core::Error> {
        if self.idle_poll_interval > Duration::from_secs(60) {
            return Err(kcl_core::Error::invalid(
                "idle_poll_interval",
                "must be at most 60 s",
            ));
        }
        if self.backoff.initial.is_zero() || self.backoff.initial > self.backoff.max {
            return Err(kcl_core::Error::invalid(
                "backoff.initial",
                "must be above zero and at most backoff.max",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let config = KinesisSourceConfig::default().backoff(BackoffConfig {
            initial: Duration::from_secs(20),
            ..BackoffConfig::default()
        });
        assert!(matches!(
            config.validate(),
            Err(kcl_core::Error::InvalidArgument {
                field: "backoff.initial",
                ..
            })
        ));
        assert!(KinesisSourceConfig::default().validate().is_ok());
    }
}
