//! The producer loop: the fleet's ticks, paced to the rate, through a [`RecordWriter`].

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{Anomaly, Fleet, MAX_RECORDS_PER_WRITE, RecordWriter};

/// What happened during a run, for the caller to show.
#[derive(Debug, Clone, Copy)]
pub enum ProducerEvent<'a> {
    /// The first anomalous reading of an anomaly was written.
    AnomalyStarted(&'a Anomaly),
    /// The last anomalous reading of an anomaly was written: its alert is now due.
    AnomalyCompleted(&'a Anomaly),
}

/// What a run wrote.
#[derive(Debug, Clone, Default)]
pub struct ProducerReport {
    /// Ticks written.
    pub ticks: u64,
    /// Readings written.
    pub readings: u64,
    /// Malformed records written.
    pub malformed: u64,
    /// Anomalies written whole.
    pub completed: Vec<Anomaly>,
    /// Anomalies started but cut short by a stop.
    pub cut_short: Vec<Anomaly>,
}

impl ProducerReport {
    /// Every record written.
    pub fn records(&self) -> u64 {
        self.readings + self.malformed
    }
}

/// Runs the fleet until its last tick, `readings` readings (if given), or `stop` turns true.
pub async fn produce(
    fleet: &mut Fleet,
    writer: &dyn RecordWriter,
    readings: Option<u64>,
    mut stop: watch::Receiver<bool>,
    mut on_event: impl FnMut(ProducerEvent<'_>),
) -> Result<ProducerReport, String> {
    let sensors = fleet.config().sensors as u64;
    let interval = Duration::from_secs_f64(fleet.config().interval_ms() / 1000.0);
    let last_tick = match (fleet.config().ticks, readings) {
        (Some(ticks), _) => Some(ticks),
        (None, Some(count)) => Some(count.div_ceil(sensors)),
        (None, None) => None,
    };
    let mut report = ProducerReport::default();
    let mut started: Vec<Anomaly> = Vec::new();
    let began = Instant::now();
    let mut tick = 0u64;
    while last_tick.is_none_or(|last| tick < last) && !*stop.borrow() {
        let due = readings.map_or(sensors, |count| sensors.min(count - tick * sensors));
        let records = fleet.records_at(tick, due as usize);
        for chunk in records.chunks(MAX_RECORDS_PER_WRITE) {
            writer.write(chunk).await?;
        }
        for record in &records {
            if record.is_reading {
                report.readings += 1;
            } else {
                report.malformed += 1;
            }
        }
        for anomaly in fleet.anomalies_starting_at(tick) {
            on_event(ProducerEvent::AnomalyStarted(anomaly));
            started.push(anomaly.clone());
        }
        for anomaly in fleet.anomalies_ending_at(tick) {
            on_event(ProducerEvent::AnomalyCompleted(anomaly));
            report.completed.push(anomaly.clone());
            started.retain(|s| s.sensor_index != anomaly.sensor_index);
        }
        tick += 1;
        report.ticks = tick;
        let next = began + interval.mul_f64(tick as f64);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => {}
        }
    }
    report.cut_short = started;
    Ok(report)
}
