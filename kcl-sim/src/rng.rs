//! The seed's random generator: the one source of every choice a simulation makes.

use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One generator per seed, shared by everything that draws (the nemesis, the producer, the
/// fault deciders, the processors). ChaCha8 gives the same stream on every platform and rand
/// release, so a seed means the same run wherever it is replayed.
///
/// Draws happen in the order the single-threaded runtime runs the code that makes them, so the
/// whole run is one deterministic sequence as long as the scheduling is.
#[derive(Clone, Debug)]
pub(crate) struct SimRng(Arc<Mutex<ChaCha8Rng>>);

impl SimRng {
    pub(crate) fn new(seed: u64) -> Self {
        SimRng(Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed))))
    }

    fn rng(&self) -> MutexGuard<'_, ChaCha8Rng> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// True with probability `p` (clamped to 0..=1).
    pub(crate) fn chance(&self, p: f64) -> bool {
        self.rng().random_bool(p.clamp(0.0, 1.0))
    }

    /// A number in `range`; its start if the range is empty.
    pub(crate) fn within(&self, range: Range<u64>) -> u64 {
        if range.is_empty() {
            return range.start;
        }
        self.rng().random_range(range)
    }

    /// A number in `range`; its start if the range is empty.
    pub(crate) fn within_u128(&self, range: Range<u128>) -> u128 {
        if range.is_empty() {
            return range.start;
        }
        self.rng().random_range(range)
    }

    /// A duration between `low` and `high`, to the millisecond.
    pub(crate) fn duration(&self, low: Duration, high: Duration) -> Duration {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(self.within(millis(low)..millis(high).saturating_add(1)))
    }

    /// A rate in `0..max`.
    pub(crate) fn rate(&self, max: f64) -> f64 {
        self.rng().random_range(0.0..max.max(f64::MIN_POSITIVE))
    }

    /// An index below `len`; `None` if `len` is 0.
    pub(crate) fn index(&self, len: usize) -> Option<usize> {
        (len > 0).then(|| self.rng().random_range(0..len))
    }
}
