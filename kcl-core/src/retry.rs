//! The one way kcl-rs waits between attempts: exponential backoff with jitter, and a retry loop
//! for operations whose failures say whether they are transient.
//!
//! The jitter comes from a small generator seeded by the caller (a worker seeds it with its id
//! and the shard), not from a thread-local random source: two workers failing together still
//! spread their retries, and a run replays identically from its seed under simulation.

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use crate::Error;

/// Delays that double from `initial` up to `max`, each varied by up to ±20 % so that callers
/// failing together do not retry together.
///
/// ```
/// use std::time::Duration;
/// use kcl_core::Backoff;
///
/// let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), &"worker-1");
/// let first = backoff.next_delay();
/// assert!(first >= Duration::from_millis(80) && first <= Duration::from_millis(120));
/// for _ in 0..10 {
///     assert!(backoff.next_delay() <= Duration::from_millis(1200));
/// }
/// backoff.reset();
/// assert!(backoff.next_delay() <= Duration::from_millis(120));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
    state: u64,
}

impl Backoff {
    /// Delays from `initial` to `max`, with jitter drawn from a generator seeded by `seed`.
    pub fn new(initial: Duration, max: Duration, seed: &impl Hash) -> Self {
        let mut hasher = DefaultHasher::new();
        seed.hash(&mut hasher);
        Backoff {
            initial,
            max: max.max(initial),
            current: initial,
            state: hasher.finish(),
        }
    }

    /// The next delay: the current step, jittered; the step then doubles up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.current;
        self.current = (self.current * 2).min(self.max);
        // A factor in [0.8, 1.2), from the top 53 bits of the next draw.
        let unit = (self.next_draw() >> 11) as f64 / (1_u64 << 53) as f64;
        step.mul_f64(0.8 + 0.4 * unit)
    }

    /// Starts again from the initial delay, after a success.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }

    /// SplitMix64: small, fast, and good enough to spread retries.
    fn next_draw(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Runs `attempt` until it succeeds, fails with an error that is not transient
/// ([`Error::is_transient`]), or `budget` has passed since the first attempt; between attempts it
/// waits as `backoff` says. Returns the last result. `what` names the operation in the log line
/// of each retry.
pub async fn retry_transient<T, F, Fut>(
    what: &str,
    backoff: &mut Backoff,
    budget: Duration,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let started = tokio::time::Instant::now();
    loop {
        match attempt().await {
            Err(error) if error.is_transient() && started.elapsed() < budget => {
                let delay = backoff.next_delay();
                tracing::warn!(%error, ?delay, "{what} failed; retrying");
                tokio::time::sleep(delay).await;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_and_replay_from_the_seed() {
        let delays = |seed: &str| {
            let mut backoff =
                Backoff::new(Duration::from_millis(10), Duration::from_millis(100), &seed);
            (0..8).map(|_| backoff.next_delay()).collect::<Vec<_>>()
        };
        let a = delays("a");
        assert_eq!(a, delays("a"), "the same seed gives the same delays");
        assert_ne!(a, delays("b"), "another seed gives other jitter");
        for (n, delay) in a.iter().enumerate() {
            let step = Duration::from_millis(10 * (1 << n.min(10))).min(Duration::from_millis(100));
            assert!(
                *delay >= step.mul_f64(0.8) && *delay < step.mul_f64(1.2),
                "{n}: {delay:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_within_the_budget_and_decisions_are_not() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(10), &0);
        let mut calls = 0;
        let result: Result<(), Error> =
            retry_transient("test", &mut backoff, Duration::from_millis(100), || {
                calls += 1;
                async {
                    Err(Error::Unavailable {
                        message: "down".to_owned(),
                    })
                }
            })
            .await;
        assert!(result.is_err());
        assert!(
            (9..=14).contains(&calls),
            "{calls} attempts in 100 ms of 10 ms waits"
        );
        let mut calls = 0;
        let result: Result<(), Error> =
            retry_transient("test", &mut backoff, Duration::from_secs(1), || {
                calls += 1;
                async { Err(Error::invalid("x", "bad")) }
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }
}
