//! A sensor's rolling average over a window of event time.

use std::collections::VecDeque;

/// The average of one sensor's readings over the last `window_ms` milliseconds of event time.
#[derive(Debug, Clone)]
pub struct RollingAverage {
    window_ms: u64,
    readings: VecDeque<(u64, f64)>,
    sum: f64,
    newest: u64,
}

impl RollingAverage {
    /// An empty average over `window_ms` milliseconds.
    pub fn new(window_ms: u64) -> Self {
        RollingAverage {
            window_ms,
            readings: VecDeque::new(),
            sum: 0.0,
            newest: 0,
        }
    }

    /// Adds a reading taken at `ts` (milliseconds) and drops those older than the window
    /// before the newest reading.
    pub fn push(&mut self, ts: u64, celsius: f64) {
        self.readings.push_back((ts, celsius));
        self.sum += celsius;
        // A sensor whose clock stepped back does not shrink the window.
        self.newest = self.newest.max(ts);
        let newest = self.newest;
        while let Some(&(oldest, value)) = self.readings.front() {
            if oldest.saturating_add(self.window_ms) > newest {
                break;
            }
            self.readings.pop_front();
            self.sum -= value;
        }
        if self.readings.len() == 1 {
            // Start again from the one value left, so rounding errors never accumulate.
            self.sum = celsius;
        }
    }

    /// The average of the readings in the window, if any.
    pub fn average(&self) -> Option<f64> {
        (!self.readings.is_empty()).then(|| self.sum / self.readings.len() as f64)
    }

    /// How many readings the window holds.
    pub fn len(&self) -> usize {
        self.readings.len()
    }

    /// True when the window holds no reading.
    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
    }

    /// Milliseconds between the oldest and the newest reading in the window.
    pub fn span_ms(&self) -> u64 {
        self.readings
            .front()
            .map_or(0, |&(oldest, _)| self.newest.saturating_sub(oldest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_readings_leave_the_window() {
        let mut average = RollingAverage::new(1_000);
        assert_eq!(average.average(), None);
        average.push(0, 10.0);
        average.push(500, 20.0);
        assert_eq!(average.average(), Some(15.0));
        assert_eq!(average.span_ms(), 500);
        average.push(1_000, 30.0); // the reading at 0 is now a full window old
        assert_eq!(average.len(), 2);
        assert_eq!(average.average(), Some(25.0));
        average.push(10_000, 1.0);
        assert_eq!(average.len(), 1);
        assert_eq!(average.average(), Some(1.0));
    }
}
