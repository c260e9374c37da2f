//! Retrying transient failures with backoff. A small loop rather than a crate: it needs only
//! `tokio::time::sleep`, and logs each retry.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::BackoffConfig;

/// Counts the retries of one call and pauses between them.
pub(crate) struct Retries<'a> {
    backoff: &'a BackoffConfig,
    what: &'static str,
    done: u32,
}

impl<'a> Retries<'a> {
    pub(crate) fn new(backoff: &'a BackoffConfig, what: &'static str) -> Self {
        Retries {
            backoff,
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
        if !error.is_transient() || self.done >= self.backoff.max_retries {
            return Err(error);
        }
        let pause = jitter(self.backoff.pause(self.done));
        tracing::debug!(%error, retry = self.done, ?pause, "{} failed; retrying", self.what);
        tokio::time::sleep(pause).await;
        self.done += 1;
        Ok(())
    }
}

/// Runs `attempt` until it succeeds, fails with an error that is not transient, or has been
/// retried `backoff.max_retries` times; pauses with backoff between attempts.
pub(crate) async fn with_backoff<T, F, Fut>(
    backoff: &BackoffConfig,
    what: &'static str,
    mut attempt: F,
) -> Result<T, kcl_core::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kcl_core::Error>>,
{
    let mut retries = Retries::new(backoff, what);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => retries.pause_after(error).await?,
        }
    }
}

/// A pause between half and all of `pause`, so readers throttled together spread out. The
/// clock's nanoseconds are randomness enough for that.
fn jitter(pause: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.subsec_nanos())
        .unwrap_or(0);
    let fraction = 0.5 + f64::from(nanos % 1000) / 2000.0;
    pause.mul_f64(fraction)
}
