//! Bounded waiting for the tests: poll a condition, never wait forever.

use std::time::{Duration, Instant};

/// Polls `condition` every 200 ms until it holds or `limit` passes; returns whether it held.
pub async fn wait_until(limit: Duration, condition: impl FnMut() -> bool) -> bool {
    poll_until(limit, Duration::from_millis(200), condition).await
}

/// Polls `condition` every `every` until it holds or `limit` passes; returns whether it held.
pub async fn poll_until(
    limit: Duration,
    every: Duration,
    mut condition: impl FnMut() -> bool,
) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition() {
            return true;
        }
        tokio::time::sleep(every).await;
    }
    condition()
}
