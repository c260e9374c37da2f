//! The alert logic: each sensor's readings against the threshold and its rolling average.

use std::collections::HashMap;

use super::{AlertDeduplicator, AlertKind, AlertRules, Reading, RollingAverage};

/// What the detector found in one reading: an alert of `kind` is due.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// The rule that fired.
    pub kind: AlertKind,
    /// The reading.
    pub celsius: f64,
    /// The sensor's rolling average including that reading.
    pub average_celsius: f64,
}

/// Applies [`AlertRules`] to the readings of many sensors, keeping each sensor's window and
/// alert episodes. One detector serves one shard: a sensor's readings all go to one shard.
#[derive(Debug, Clone)]
pub struct AlertDetector {
    rules: AlertRules,
    sensors: HashMap<String, SensorState>,
}

#[derive(Debug, Clone)]
struct SensorState {
    average: RollingAverage,
    dedup: AlertDeduplicator,
}

impl AlertDetector {
    /// A detector with no history.
    pub fn new(rules: AlertRules) -> Self {
        AlertDetector {
            rules,
            sensors: HashMap::new(),
        }
    }

    /// Takes in the next reading of a sensor and returns the alerts it raises (usually none).
    pub fn observe(&mut self, reading: &Reading) -> Vec<Detection> {
        let rules = &self.rules;
        let state = self
            .sensors
            .entry(reading.sensor.clone())
            .or_insert_with(|| SensorState {
                average: RollingAverage::new(rules.window_ms()),
                dedup: AlertDeduplicator::new(rules.cooldown_ms()),
            });
        state.average.push(reading.ts, reading.celsius);
        let average = state.average.average().unwrap_or(reading.celsius);

        let overheating = reading.celsius > rules.threshold_celsius;
        // Judge the average only over enough readings, or one hot reading after a restart (a
        // new owner of the shard starts with an empty window) would look like a drift.
        let judged = state.average.len() >= rules.min_readings
            && state.average.span_ms() >= rules.window_ms() / 4;
        let drifting = judged && average > rules.average_limit_celsius;

        let mut detections = Vec::new();
        for (kind, holds) in [
            (AlertKind::Overheat, overheating),
            (AlertKind::Drift, drifting),
        ] {
            if state.dedup.should_raise(kind, holds, reading.ts) {
                detections.push(Detection {
                    kind,
                    celsius: reading.celsius,
                    average_celsius: average,
                });
            }
        }
        detections
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(sensor: &str, ts: u64, celsius: f64) -> Reading {
        Reading {
            sensor: sensor.to_owned(),
            ts,
            celsius,
        }
    }

    fn kinds(detector: &mut AlertDetector, readings: &[Reading]) -> Vec<(String, AlertKind)> {
        readings
            .iter()
            .flat_map(|r| {
                detector
                    .observe(r)
                    .into_iter()
                    .map(|d| (r.sensor.clone(), d.kind))
            })
            .collect()
    }

    #[test]
    fn a_hot_burst_is_one_overheat_alert_and_no_drift() {
        let mut detector = AlertDetector::new(AlertRules::default());
        let mut readings: Vec<Reading> = (0..100).map(|i| reading("a", i * 100, 21.0)).collect();
        for (i, celsius) in [(100, 91.0), (101, 95.0), (102, 88.0)] {
            readings.push(reading("a", i * 100, celsius));
        }
        readings.extend((103..200).map(|i| reading("a", i * 100, 21.0)));
        assert_eq!(
            kinds(&mut detector, &readings),
            [("a".to_owned(), AlertKind::Overheat)]
        );
    }

    #[test]
    fn a_sustained_rise_below_the_threshold_is_one_drift_alert() {
        let mut detector = AlertDetector::new(AlertRules::default());
        let readings: Vec<Reading> = (0..300)
            .map(|i| {
                reading(
                    "b",
                    i * 100,
                    if (100..180).contains(&i) { 66.0 } else { 21.0 },
                )
            })
            .collect();
        assert_eq!(
            kinds(&mut detector, &readings),
            [("b".to_owned(), AlertKind::Drift)]
        );
    }

    #[test]
    fn sensors_are_judged_apart() {
        let mut detector = AlertDetector::new(AlertRules::default());
        let readings = [
            reading("x", 0, 90.0),
            reading("y", 0, 20.0),
            reading("y", 1, 85.0),
        ];
        assert_eq!(
            kinds(&mut detector, &readings),
            [
                ("x".to_owned(), AlertKind::Overheat),
                ("y".to_owned(), AlertKind::Overheat)
            ]
        );
    }
}
