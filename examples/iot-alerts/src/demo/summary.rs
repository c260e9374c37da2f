//! The demo's closing summary: what was written, what was processed, what was alerted, and
//! whether the guarantees held.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kcl_core::ShardId;

use super::{Console, ShardHistory};
use crate::alerting::{Alert, AlertKind};
use crate::simulation::ProducerReport;

/// Everything the summary reports on.
#[derive(Debug)]
pub struct Summary {
    /// How long the sensors ran.
    pub elapsed: Duration,
    /// What the sensors wrote.
    pub written: ProducerReport,
    /// Each shard's history.
    pub shards: BTreeMap<ShardId, ShardHistory>,
    /// Every alert raised.
    pub alerts: Vec<Alert>,
    /// Records skipped as not readings.
    pub skipped: u64,
    /// The shard split part-way and its children, if the run got that far.
    pub split: Option<(ShardId, Vec<ShardId>)>,
}

impl Summary {
    fn distinct_processed(&self) -> u64 {
        self.shards.values().map(|h| h.distinct).sum()
    }

    fn every_record_processed(&self) -> bool {
        self.distinct_processed() == self.written.records()
    }

    /// The split's verdict: the parent ended, a child processed records, and every child that
    /// did started after its parents' last batch.
    fn split_followed(&self) -> Option<bool> {
        let (parent, children) = self.split.as_ref()?;
        let ended = self.shards.get(parent).is_some_and(|h| h.ended.is_some());
        let starts: Vec<(bool, u128)> = children
            .iter()
            .filter_map(|child| self.shards.get(child).and_then(|h| h.after_parents))
            .collect();
        Some(ended && !starts.is_empty() && starts.iter().all(|(after, _)| *after))
    }

    fn alerted(&self) -> BTreeSet<(String, AlertKind)> {
        self.alerts
            .iter()
            .map(|a| (a.sensor.clone(), a.alert))
            .collect()
    }

    /// Anomalies written whole that raised no alert.
    fn missed(&self) -> Vec<String> {
        let alerted = self.alerted();
        self.written
            .completed
            .iter()
            .filter(|a| !alerted.contains(&(a.sensor.clone(), a.alert)))
            .map(|a| format!("{} {}", a.alert, a.sensor))
            .collect()
    }

    /// Alerts for which no anomaly was injected.
    fn unexpected(&self) -> Vec<String> {
        let injected: BTreeSet<(String, AlertKind)> = self
            .written
            .completed
            .iter()
            .chain(&self.written.cut_short)
            .map(|a| (a.sensor.clone(), a.alert))
            .collect();
        self.alerted()
            .into_iter()
            .filter(|key| !injected.contains(key))
            .map(|(sensor, kind)| format!("{kind} {sensor}"))
            .collect()
    }

    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.every_record_processed()
            && self.split_followed() != Some(false)
            && self.missed().is_empty()
            && self.unexpected().is_empty()
    }

    /// Prints the summary, one `name: value` per line.
    pub fn print(&self, console: &Console) {
        let yes_no = |ok: bool| if ok { "yes" } else { "NO" };
        let redelivered: u64 = self.shards.values().map(|h| h.redelivered).sum();
        let mut lines = vec![
            "== summary ==".to_owned(),
            format!(
                "sensors ran:                 {:.1} s",
                self.elapsed.as_secs_f64()
            ),
            format!(
                "records written:             {} ({} readings, {} malformed)",
                self.written.records(),
                self.written.readings,
                self.written.malformed
            ),
            format!(
                "records processed:           {} ({} delivered again after a restart)",
                self.distinct_processed(),
                redelivered
            ),
            format!(
                "every reading processed:     {}",
                yes_no(self.every_record_processed())
            ),
            format!("malformed records skipped:   {}", self.skipped),
            format!(
                "anomalies injected:          {}{}",
                self.written.completed.len(),
                if self.written.cut_short.is_empty() {
                    String::new()
                } else {
                    format!(" (+{} cut short by the stop)", self.written.cut_short.len())
                }
            ),
            format!(
                "alerts raised:               {} ({} distinct{})",
                self.alerts.len(),
                self.alerted().len(),
                match self.alerts.len() - self.alerted().len() {
                    0 => String::new(),
                    repeats => format!(
                        "; {repeats} repeated by a processor that took over a sensor \
                         mid-anomaly with an empty window, such as a child shard's"
                    ),
                }
            ),
        ];
        let missed = self.missed();
        lines.push(format!(
            "every anomaly alerted:       {}{}",
            yes_no(missed.is_empty()),
            if missed.is_empty() {
                String::new()
            } else {
                format!(" (missed: {})", missed.join(", "))
            }
        ));
        let unexpected = self.unexpected();
        lines.push(format!(
            "false alerts:                {}",
            if unexpected.is_empty() {
                "none".to_owned()
            } else {
                unexpected.join(", ")
            }
        ));
        match &self.split {
            Some((parent, children)) => {
                let names: Vec<String> = children.iter().map(ToString::to_string).collect();
                lines.push(format!(
                    "split:                       {parent} -> {}",
                    names.join(", ")
                ));
                let gap = children
                    .iter()
                    .filter_map(|c| self.shards.get(c).and_then(|h| h.after_parents))
                    .map(|(_, gap)| gap)
                    .min();
                lines.push(format!(
                    "parent before child:         {}{}",
                    yes_no(self.split_followed() == Some(true)),
                    gap.map_or(String::new(), |gap| format!(
                        " (first child reading {gap} ms after the parent's last)"
                    ))
                ));
            }
            None => lines.push("split:                       not reached".to_owned()),
        }
        let mut per_worker: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (shard, history) in &self.shards {
            let state = if history.ended.is_some() {
                " (closed)"
            } else {
                ""
            };
            for worker in &history.workers {
                per_worker
                    .entry(worker.as_str())
                    .or_default()
                    .push(format!("{shard}{state}"));
            }
        }
        for (worker, shards) in per_worker {
            lines.push(format!(
                "{:<29}{}",
                format!("{worker} shards:"),
                shards.join(", ")
            ));
        }
        lines.push(format!(
            "result:                      {}",
            if self.passed() {
                "every check passed"
            } else {
                "FAILED"
            }
        ));
        for line in lines {
            console.line(&line);
        }
    }
}
