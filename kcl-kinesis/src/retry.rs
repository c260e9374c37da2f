//! Retrying transient failures a bounded number of times, with the backoff every retrying loop
//! of kcl-rs uses ([`kcl_core::Backoff`]), logging each retry.

use std::future::Future;

use crate::config::BackoffConfig;

/// Counts the retries of one call and pauses between them.
pub(crate) struct Retries {
    backoff: kcl_core::Backoff,
    max_retries: u32,
    what: &'static str,
    done: u32,
}

impl Retries {
    /// Retries of the call `what`; `seed` (e.g. the shard) spreads the jitter of callers that
    /// fail together.
    pub(crate) fn new(config: &BackoffConfig, what: &'static str, seed: &str) -> Self {
        Retries {
            backoff: kcl_core::Backoff::new(config.initial, config.max, &(what, seed)),
            max_retries: config.max_retries,
            what,
            done: 0,
        }
    }

    /// After a failed attempt: pauses and returns `Ok` if the call should be tried again, or
    /// gives the error back if it is not transient or the retries are used up.
    pub(crate) async fn pause_after(
        &mut self,
        error: kcl_core::Error,
    ) -> Result<(), kcl_core::Error> {
        if !error.is_transient() || self.done >= self.max_retries {
            return Err(error);
        }
        let pause = self.backoff.next_delay();
        tracing::debug!(%error, retry = self.done, ?pause, "{} failed; retrying", self.what);
        tokio::time::sleep(pause).await;
        self.done += 1;
        Ok(())
    }
}

/// Runs `attempt` until it succeeds, fails with an error that is not transient, or has been
/// retried `config.max_retries` times; pauses with backoff between attempts.
pub(crate) async fn with_backoff<T, F, Fut>(
    config: &BackoffConfig,
    what: &'static str,
    seed: &str,
    mut attempt: F,
) -> Result<T, kcl_core::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kcl_core::Error>>,
{
    let mut retries = Retries::new(config, what, seed);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => retries.pause_after(error).await?,
        }
    }
}
