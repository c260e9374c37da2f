//! The engine's clock on virtual time.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kcl_engine::Clock;
use tokio::time::Instant;

/// Wall-clock time for the engine (arrival times, retention) read from the runtime's paused
/// clock, so it moves exactly as virtual time does, plus the jumps that make retention expire
/// records without simulating a day.
#[derive(Debug)]
pub(crate) struct VirtualClock {
    start: Instant,
    jumped: Mutex<Duration>,
}

/// Where every simulation's wall clock starts: a fixed date, so arrival times replay too.
const EPOCH_OFFSET: Duration = Duration::from_secs(1_900_000_000);

impl VirtualClock {
    /// A clock that starts now (in virtual time).
    pub(crate) fn new() -> Self {
        VirtualClock {
            start: Instant::now(),
            jumped: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves the clock forward by `by` at once.
    pub(crate) fn jump(&self, by: Duration) {
        *self
            .jumped
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) += by;
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> SystemTime {
        let jumped = *self
            .jumped
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        UNIX_EPOCH + EPOCH_OFFSET + self.start.elapsed() + jumped
    }
}
