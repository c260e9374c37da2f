//! The simulated fleet: sensors idling around their baselines, with the planned anomalies and
//! a few malformed records mixed in.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{Anomaly, AnomalyPlan, PlanInput, SeededRandom};
use crate::alerting::{AlertRules, Reading};

/// One record for the stream: the sensor id as partition key, and the reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// The partition key (the sensor id).
    pub partition_key: String,
    /// The data.
    pub data: Bytes,
    /// False for a deliberately malformed record.
    pub is_reading: bool,
}

/// How to simulate a fleet.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Number of sensors (1 or more).
    pub sensors: usize,
    /// Readings per second, all sensors together (above 0).
    pub rate: f64,
    /// The seed: the same seed, sensors, rate and length give the same anomalies.
    pub seed: u64,
    /// The run's length in ticks (one reading per sensor each), if bounded.
    pub ticks: Option<u64>,
    /// Malformed records to mix in (not JSON, a missing field, a wrong type, in turn).
    pub malformed: usize,
    /// The rules the anomalies are shaped for.
    pub rules: AlertRules,
}

impl FleetConfig {
    /// Milliseconds between two readings of one sensor: the fleet reports once per tick.
    pub fn interval_ms(&self) -> f64 {
        self.sensors as f64 * 1000.0 / self.rate
    }

    /// Ticks in `duration` at this rate.
    pub fn ticks_in(&self, duration: Duration) -> u64 {
        (duration.as_secs_f64() * 1000.0 / self.interval_ms()).floor() as u64
    }
}

/// The fleet, tick by tick. Readings of tick `n` carry event time `start + n × interval`.
#[derive(Debug, Clone)]
pub struct Fleet {
    config: FleetConfig,
    ids: Vec<String>,
    baselines: Vec<f64>,
    plan: AnomalyPlan,
    /// Ongoing anomaly per sensor index.
    anomaly_of: BTreeMap<usize, usize>,
    /// Malformed records due per tick: (sensor index, which kind of malformed).
    malformed_at: BTreeMap<u64, Vec<(usize, u64)>>,
    noise: SeededRandom,
    start_ts: u64,
}

/// A sensor's id: `sensor-0042`.
pub fn sensor_id(index: usize) -> String {
    format!("sensor-{index:04}")
}

impl Fleet {
    /// A fleet starting now.
    pub fn new(config: FleetConfig) -> Fleet {
        let start_ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        Fleet::starting_at(config, start_ts)
    }

    /// A fleet whose tick 0 is at `start_ts` (milliseconds since the Unix epoch).
    pub fn starting_at(config: FleetConfig, start_ts: u64) -> Fleet {
        let mut random = SeededRandom::new(config.seed);
        let ids: Vec<String> = (0..config.sensors).map(sensor_id).collect();
        let baselines = (0..config.sensors)
            .map(|_| 18.0 + 6.0 * random.unit())
            .collect();
        let plan = AnomalyPlan::new(
            &PlanInput {
                sensors: &ids,
                interval_ms: config.interval_ms(),
                ticks: config.ticks,
                start_ts,
                rules: &config.rules,
            },
            &mut random,
        );
        let anomaly_of = plan
            .anomalies
            .iter()
            .enumerate()
            .map(|(i, anomaly)| (anomaly.sensor_index, i))
            .collect();
        // Malformed records between anomalies, from sensors chosen by the seed.
        let spacing = (1500.0 / config.interval_ms()).ceil().max(1.0) as u64;
        let mut malformed_at: BTreeMap<u64, Vec<(usize, u64)>> = BTreeMap::new();
        for i in 0..config.malformed as u64 {
            let tick = spacing / 2 + i * spacing;
            if config.ticks.is_some_and(|ticks| tick >= ticks) {
                break;
            }
            let sensor = random.below(config.sensors as u64) as usize;
            malformed_at.entry(tick).or_default().push((sensor, i % 3));
        }
        Fleet {
            noise: SeededRandom::new(random.next_u64()),
            config,
            ids,
            baselines,
            plan,
            anomaly_of,
            malformed_at,
            start_ts,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// The planned anomalies.
    pub fn plan(&self) -> &AnomalyPlan {
        &self.plan
    }

    /// The anomalies whose first reading is at `tick`.
    pub fn anomalies_starting_at(&self, tick: u64) -> impl Iterator<Item = &Anomaly> {
        self.plan
            .anomalies
            .iter()
            .filter(move |anomaly| anomaly.start_tick == tick)
    }

    /// The anomalies whose last reading is at `tick`.
    pub fn anomalies_ending_at(&self, tick: u64) -> impl Iterator<Item = &Anomaly> {
        self.plan
            .anomalies
            .iter()
            .filter(move |anomaly| anomaly.end_tick() == tick + 1)
    }

    /// Event time of `tick`.
    pub fn ts_at(&self, tick: u64) -> u64 {
        self.start_ts + (tick as f64 * self.config.interval_ms()).round() as u64
    }

    /// The records of `tick`: one reading per sensor (on the last tick of a run bounded by a
    /// count, maybe fewer: `sensors` limits them), and any malformed record due then.
    pub fn records_at(&mut self, tick: u64, sensors: usize) -> Vec<OutgoingRecord> {
        let ts = self.ts_at(tick);
        let sensors = sensors.min(self.config.sensors);
        let mut records = Vec::with_capacity(sensors + 1);
        for index in 0..sensors {
            let baseline = self.baselines[index];
            let anomalous = self
                .anomaly_of
                .get(&index)
                .and_then(|&i| self.plan.anomalies[i].celsius_at(tick, baseline));
            let noise = self.noise.unit() - 0.5;
            let reading = Reading {
                sensor: self.ids[index].clone(),
                ts,
                celsius: anomalous.unwrap_or(baseline) + noise,
            };
            records.push(OutgoingRecord {
                partition_key: reading.sensor.clone(),
                data: Bytes::from(reading.to_json()),
                is_reading: true,
            });
        }
        for &(index, kind) in self.malformed_at.get(&tick).into_iter().flatten() {
            let sensor = &self.ids[index];
            let data = match kind {
                0 => format!("{sensor} says 21.5 degrees"),
                1 => format!(r#"{{"sensor":"{sensor}","ts":{ts}}}"#),
                _ => format!(r#"{{"sensor":"{sensor}","ts":{ts},"celsius":"hot"}}"#),
            };
            records.push(OutgoingRecord {
                partition_key: sensor.clone(),
                data: Bytes::from(data),
                is_reading: false,
            });
        }
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::{AlertDetector, AlertKind};

    fn config(seed: u64, ticks: Option<u64>) -> FleetConfig {
        FleetConfig {
            sensors: 40,
            rate: 800.0,
            seed,
            ticks,
            malformed: 3,
            rules: AlertRules::default(),
        }
    }

    /// Every reading of the run, in order, per sensor.
    fn readings(fleet: &mut Fleet, ticks: u64) -> Vec<Vec<Reading>> {
        let mut per_sensor = vec![Vec::new(); fleet.config().sensors];
        for tick in 0..ticks {
            for record in fleet.records_at(tick, usize::MAX) {
                if let Ok(reading) = Reading::parse(&record.data) {
                    let index: usize = reading.sensor[7..].parse().unwrap();
                    per_sensor[index].push(reading);
                }
            }
        }
        per_sensor
    }

    #[test]
    fn a_seed_plans_the_same_anomalies_and_bounded_runs_hold_them_whole() {
        let ticks = config(1, None).ticks_in(Duration::from_secs(14));
        let a = Fleet::starting_at(config(3, Some(ticks)), 0);
        let b = Fleet::starting_at(config(3, Some(ticks)), 0);
        assert_eq!(a.plan().anomalies, b.plan().anomalies);
        assert!(a.plan().drift_detectable);
        let kinds: Vec<AlertKind> = a.plan().anomalies.iter().map(|x| x.alert).collect();
        assert!(kinds.contains(&AlertKind::Drift) && kinds.contains(&AlertKind::Overheat));
        assert!(a.plan().anomalies.iter().all(|x| x.end_tick() < ticks));
        let c = Fleet::starting_at(config(4, Some(ticks)), 0);
        assert_ne!(a.plan().anomalies, c.plan().anomalies);
    }

    /// The property the multi-process test relies on: whatever reading a shard's processor
    /// restarts at (after a crash, a handoff or a split, with an empty window), each anomaly is
    /// alerted by the first processor or the second, and nothing else ever is.
    #[test]
    fn each_anomaly_is_alerted_however_processing_is_cut_and_restarted() {
        // The test's fleet, the demo's (each sensor every 100 ms, the slowest that plans
        // drifts) and the README tour's.
        for (sensors, rate, seconds) in [(40, 800.0, 14), (200, 2000.0, 20), (100, 1000.0, 16)] {
            let base = FleetConfig {
                sensors,
                rate,
                ..config(11, None)
            };
            let ticks = base.ticks_in(Duration::from_secs(seconds));
            let mut fleet = Fleet::starting_at(
                FleetConfig {
                    ticks: Some(ticks),
                    ..base
                },
                1_000_000,
            );
            assert!(fleet.plan().drift_detectable);
            assert_cut_anywhere_alerts_each_anomaly(&mut fleet, ticks);
        }
    }

    fn assert_cut_anywhere_alerts_each_anomaly(fleet: &mut Fleet, ticks: u64) {
        let anomalies = fleet.plan().anomalies.clone();
        let per_sensor = readings(fleet, ticks);
        let detect = |readings: &[Reading]| -> Vec<AlertKind> {
            let mut detector = AlertDetector::new(AlertRules::default());
            readings
                .iter()
                .flat_map(|r| detector.observe(r))
                .map(|d| d.kind)
                .collect()
        };
        for (index, readings) in per_sensor.iter().enumerate() {
            let expected: Vec<AlertKind> = anomalies
                .iter()
                .filter(|a| a.sensor_index == index)
                .map(|a| a.alert)
                .collect();
            assert_eq!(detect(readings), expected, "sensor {index} uncut");
            if expected.is_empty() {
                continue;
            }
            for cut in 0..readings.len() {
                let mut seen = detect(&readings[..cut]);
                seen.extend(detect(&readings[cut..]));
                seen.dedup();
                assert_eq!(seen, expected, "sensor {index} cut at reading {cut}");
            }
        }
    }

    #[test]
    fn malformed_records_are_mixed_in_and_slow_fleets_plan_no_drift() {
        let mut fleet = Fleet::starting_at(config(5, Some(200)), 0);
        let malformed: usize = (0..200)
            .map(|tick| {
                fleet
                    .records_at(tick, usize::MAX)
                    .iter()
                    .filter(|r| !r.is_reading)
                    .count()
            })
            .sum();
        assert_eq!(malformed, 3);
        let slow = FleetConfig {
            rate: 100.0,
            ..config(5, None)
        };
        let fleet = Fleet::starting_at(slow, 0);
        assert!(!fleet.plan().drift_detectable);
        assert!(
            fleet
                .plan()
                .anomalies
                .iter()
                .all(|a| a.alert == AlertKind::Overheat)
        );
    }
}
