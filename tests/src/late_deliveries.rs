//! The leases each worker process held, and the batches it delivered on them, from the workers'
//! logs: the evidence of the lease-deadline tests, which look for batches a worker delivered on
//! a lease after it should have stopped (resumed after a long pause, or cut off from its store).

use std::collections::BTreeMap;

use kcl_core::SequenceNumber;

use crate::processor_faults::{Callback, InjectedFault};
use crate::worker_log::Event;

/// One processor run: one lease taken by one worker process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLease {
    /// The worker process.
    pub w: String,
    /// The processor run.
    pub run: u64,
    /// The shard.
    pub shard: String,
    /// The lease epoch it worked at, once it logged a record, checkpoint or fault carrying one.
    pub epoch: Option<u64>,
    /// When its processor was made (just after the take).
    pub started: u64,
    /// When its processor's last call came, if it came.
    pub ended: Option<u64>,
}

impl HeldLease {
    /// True if the run had started and not ended at `t`.
    pub fn held_at(&self, t: u64) -> bool {
        self.started <= t && self.ended.is_none_or(|ended| ended > t)
    }
}

/// One `process_records` call: a batch processed, or one whose call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The worker process.
    pub w: String,
    /// The processor run.
    pub run: u64,
    /// The shard.
    pub shard: String,
    /// The lease epoch it was delivered at.
    pub epoch: u64,
    /// The batch's first record.
    pub first: SequenceNumber,
    /// How many records it logged as processed (0 for a failed call).
    pub records: usize,
    /// When `process_records` was called (µs), read by the processor as the call began.
    pub t: u64,
}

/// Every run in the logs, in log order.
pub fn held_leases(events: &[Event]) -> Vec<HeldLease> {
    let mut runs: Vec<HeldLease> = Vec::new();
    let mut index: BTreeMap<(&str, u64), usize> = BTreeMap::new();
    for event in events {
        match event {
            Event::Start { w, run, shard, t } => {
                index.insert((w, *run), runs.len());
                runs.push(HeldLease {
                    w: w.clone(),
                    run: *run,
                    shard: shard.clone(),
                    epoch: None,
                    started: *t,
                    ended: None,
                });
            }
            Event::End { w, run, t, .. } => {
                if let Some(&i) = index.get(&(w.as_str(), *run)) {
                    runs[i].ended = Some(*t);
                }
            }
            Event::Record { w, run, epoch, .. }
            | Event::CheckpointBegin { w, run, epoch, .. }
            | Event::Checkpoint { w, run, epoch, .. }
            | Event::Injected {
                w,
                run,
                epoch: Some(epoch),
                ..
            } => {
                if let Some(&i) = index.get(&(w.as_str(), *run)) {
                    runs[i].epoch.get_or_insert(*epoch);
                }
            }
            _ => {}
        }
    }
    runs
}

/// Every `process_records` call in the logs. A batch's records are logged with the time of
/// their call, so consecutive records of a run with the same time are one batch.
pub fn deliveries(events: &[Event]) -> Vec<Delivery> {
    let mut calls: Vec<Delivery> = Vec::new();
    for event in events {
        match event {
            Event::Record {
                w,
                run,
                shard,
                seq,
                epoch,
                t,
                ..
            } => {
                if let Some(last) = calls.last_mut()
                    && last.records > 0
                    && (&last.w, last.run, last.t) == (w, *run, *t)
                {
                    last.records += 1;
                    continue;
                }
                calls.push(Delivery {
                    w: w.clone(),
                    run: *run,
                    shard: shard.clone(),
                    epoch: *epoch,
                    first: seq.clone(),
                    records: 1,
                    t: *t,
                });
            }
            // A slow call is logged again when it processes its records or fails.
            Event::Injected {
                w,
                run,
                shard,
                callback: Callback::ProcessRecords,
                fault: InjectedFault::Error | InjectedFault::Panic,
                epoch: Some(epoch),
                first: Some(first),
                t,
            } => calls.push(Delivery {
                w: w.clone(),
                run: *run,
                shard: shard.clone(),
                epoch: *epoch,
                first: first.clone(),
                records: 0,
                t: *t,
            }),
            _ => {}
        }
    }
    calls
}

/// A few lines describing `late` deliveries, times relative to `since` (µs).
pub fn describe(late: &[Delivery], since: u64) -> String {
    let records: usize = late.iter().map(|d| d.records).sum();
    let mut text = format!("{} batches ({records} records):", late.len());
    let shown = late.len().min(10);
    // The first ones, and the last: how long it went on.
    let last = late.len().checked_sub(1).filter(|last| *last >= shown);
    for delivery in late[..shown].iter().chain(last.map(|last| &late[last])) {
        text.push_str(&format!(
            "\n  {} run {} on {} at epoch {}: {} records from {}, {} ms after",
            delivery.w,
            delivery.run,
            delivery.shard,
            delivery.epoch,
            delivery.records,
            delivery.first,
            delivery.t.saturating_sub(since) / 1000
        ));
    }
    text
}
