//! Bounded waiting for the multi-process tests: poll a condition, never wait forever.

use std::time::{Duration, Instant};

/// Polls `condition` every 200 ms until it holds or `limit` passes; returns whether it held.
pub async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    condition()
}
