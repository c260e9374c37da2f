//! Which sensors misbehave, how, and when: planned from the seed before the first reading.

use serde::{Deserialize, Serialize};

use super::SeededRandom;
use crate::alerting::{AlertKind, AlertRules};

/// Seconds of normal readings before the first anomaly.
const WARMUP_SECS: f64 = 2.0;
/// Seconds between the starts of two anomalies.
const SPACING_SECS: f64 = 1.5;
/// Seconds of normal readings a bounded run keeps after the last anomaly ends.
const TAIL_SECS: f64 = 1.0;
/// Readings an overheat anomaly lasts.
const OVERHEAT_READINGS: u64 = 3;
/// How far above its baseline a drifting sensor climbs (staying below the threshold).
pub const DRIFT_RISE_CELSIUS: f64 = 45.0;

/// One injected anomaly: the alert it must raise. In JSON, `sensor` and `alert` come first, as
/// in an [`Alert`](crate::alerting::Alert), so `cut -d, -f1,2` compares the two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The sensor.
    pub sensor: String,
    /// The alert it must raise.
    pub alert: AlertKind,
    /// Event time of its first anomalous reading.
    pub from_ts: u64,
    /// Event time of its last anomalous reading.
    pub until_ts: u64,
    /// The sensor's index in the fleet.
    #[serde(skip)]
    pub sensor_index: usize,
    /// The tick of its first anomalous reading.
    #[serde(skip)]
    pub start_tick: u64,
    /// How many ticks it lasts.
    #[serde(skip)]
    pub ticks: u64,
    /// Its hottest reading (overheat) or rise above the baseline (drift).
    #[serde(skip)]
    pub peak_celsius: f64,
    /// Ticks of climbing (and of falling back) around a drift's plateau.
    #[serde(skip)]
    pub ramp_ticks: u64,
}

impl Anomaly {
    /// The tick after its last anomalous reading.
    pub fn end_tick(&self) -> u64 {
        self.start_tick + self.ticks
    }

    /// What the sensor reads at `tick` instead of its normal value, if the anomaly is under way.
    pub fn celsius_at(&self, tick: u64, baseline: f64) -> Option<f64> {
        if tick < self.start_tick || tick >= self.end_tick() {
            return None;
        }
        let into = tick - self.start_tick;
        match self.alert {
            AlertKind::Overheat => Some(self.peak_celsius),
            AlertKind::Drift => {
                let left = self.end_tick() - 1 - tick;
                let ramp = self.ramp_ticks.max(1) as f64;
                let share = ((into + 1) as f64 / ramp)
                    .min((left + 1) as f64 / ramp)
                    .min(1.0);
                Some(baseline + self.peak_celsius * share)
            }
        }
    }
}

/// The anomalies of a run, in the order they start.
#[derive(Debug, Clone, Default)]
pub struct AnomalyPlan {
    /// The anomalies.
    pub anomalies: Vec<Anomaly>,
    /// False when sensors report too rarely for the rolling average to be judged in time, so
    /// that only overheat anomalies are planned.
    pub drift_detectable: bool,
}

/// What a plan is made from.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    /// The sensors' ids, by index.
    pub sensors: &'a [String],
    /// Milliseconds between two readings of one sensor.
    pub interval_ms: f64,
    /// The number of ticks the run lasts, if bounded.
    pub ticks: Option<u64>,
    /// Event time of tick 0.
    pub start_ts: u64,
    /// The rules the anomalies are shaped for.
    pub rules: &'a AlertRules,
}

impl AnomalyPlan {
    /// Plans the anomalies: one every 1.5 s after 2 s of normal readings, alternating drift and
    /// overheat, each on a different sensor chosen by `random`; a bounded run plans only those
    /// that end a second before it does. A drift holds its plateau for 1.2 windows, long enough
    /// that a processor starting afresh anywhere before the alert (after a crash or a
    /// resharding) still sees the average cross.
    pub fn new(input: &PlanInput<'_>, random: &mut SeededRandom) -> AnomalyPlan {
        let ticks_of = |secs: f64| (secs * 1000.0 / input.interval_ms).ceil().max(1.0) as u64;
        // The detector judges an average once it holds `min_readings` readings spanning a
        // quarter window; a fresh processor must get there well within the plateau.
        let drift_detectable = input.interval_ms * input.rules.min_readings as f64
            <= input.rules.window_ms() as f64 * 0.4;
        let ramp_ticks = ticks_of(0.5);
        let drift_ticks = 2 * ramp_ticks + ticks_of(1.2 * input.rules.window.as_secs_f64());
        let warmup = ticks_of(WARMUP_SECS);
        let spacing = ticks_of(SPACING_SECS);
        let tail = ticks_of(TAIL_SECS);
        let fits = |start: u64, length: u64| input.ticks.is_none_or(|t| start + length + tail <= t);
        let ts_at = |tick: u64| input.start_ts + (tick as f64 * input.interval_ms).round() as u64;

        let mut anomalies = Vec::new();
        for (slot, sensor_index) in random
            .permutation(input.sensors.len())
            .into_iter()
            .enumerate()
        {
            let start = warmup + slot as u64 * spacing;
            let wants_drift = drift_detectable && slot % 2 == 0;
            let (alert, ticks) = if wants_drift && fits(start, drift_ticks) {
                (AlertKind::Drift, drift_ticks)
            } else if fits(start, OVERHEAT_READINGS) {
                (AlertKind::Overheat, OVERHEAT_READINGS)
            } else {
                break;
            };
            let peak_celsius = match alert {
                AlertKind::Overheat => {
                    input.rules.threshold_celsius + 5.0 + (random.unit() * 10.0).round()
                }
                AlertKind::Drift => DRIFT_RISE_CELSIUS,
            };
            anomalies.push(Anomaly {
                sensor: input.sensors[sensor_index].clone(),
                alert,
                from_ts: ts_at(start),
                until_ts: ts_at(start + ticks - 1),
                sensor_index,
                start_tick: start,
                ticks,
                peak_celsius,
                ramp_ticks,
            });
        }
        AnomalyPlan {
            anomalies,
            drift_detectable,
        }
    }
}
