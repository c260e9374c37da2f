//! Proves the guarantees from the workers' logs (`worker_log`), after the processes are gone:
//!
//! - **Nothing lost**: every acknowledged record was processed at least once, by a
//!   `process_records` call that returned `Ok` (a failing or panicking call logs no record).
//! - **Order**: within each processor run (one lease held by one process), sequence numbers
//!   and each partition key's counter only increase, and a batch that failed is delivered again
//!   from its first record: the run's next delivery starts exactly there.
//! - **Checkpoints name processed records**: a run begins at a checkpoint that is a record some
//!   run processed before (a checkpoint past a failed batch would skip it).
//! - **Fencing**: one run per (shard, epoch); a checkpoint reported written at epoch E on shard S
//!   was begun before any run of S at a later epoch started (the taker starts its processor only
//!   after its take was written, so a write begun later happened after the take and should have
//!   been refused). Checkpoints that failed otherwise (the store unreachable for a lease
//!   duration) are counted.
//! - **Parent before child**: a child's first record came after the last record of each parent
//!   was processed and after a `SHARD_END` checkpoint of that parent was begun.
//! - **Takeover**: for each worker killed or paused, how long until each shard it held was
//!   taken over (the next run's processor initialized), and until that run processed its first
//!   record when records were waiting.
//!
//! Times are wall-clock microseconds of one machine. Each comparison is arranged so that an
//! honest system always passes it however the processes were scheduled: only an event that
//! must have happened later is required to be logged later.

use std::collections::{BTreeMap, BTreeSet};

use kcl_core::SequenceNumber;

use crate::processor_faults::{Callback, InjectedFault};
use crate::stream_admin::ShardLineage;
use crate::worker_log::{CheckpointOutcome, Event};

/// A fault the test injected into a worker process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerFault {
    /// `kill` or `pause`.
    pub kind: &'static str,
    /// The worker process (`w1.0`).
    pub instance: String,
    /// When (µs since the epoch).
    pub at: u64,
}

/// How long a shard held by a faulted worker went without an owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    /// The fault.
    pub fault: WorkerFault,
    /// A shard the worker held then.
    pub shard: String,
    /// From the fault to the initialization of the first run of the shard started after it
    /// (the lease was taken and processing resumed at its checkpoint), in µs; `None` if no run
    /// ever held the shard again.
    pub after: Option<u64>,
    /// From the fault to that run's first record, in µs, if that record was already in the
    /// stream when the run began (records were waiting for it); `None` otherwise. A shard that
    /// got no records (its hash range holds none of the keys) only shows `after`.
    pub first_record_after: Option<u64>,
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct Report {
    /// Records acknowledged by the stream.
    pub acknowledged: usize,
    /// Records processed, counting repeats.
    pub processed: usize,
    /// Distinct records processed.
    pub distinct: usize,
    /// `processed - distinct`.
    pub duplicates: usize,
    /// Acknowledged records never processed.
    pub lost: Vec<(String, u64)>,
    /// Processor runs (leases held).
    pub runs: usize,
    /// Checkpoints written.
    pub checkpoints_written: usize,
    /// Checkpoints refused with `LeaseLost`: a stale owner fenced off.
    pub checkpoints_fenced: usize,
    /// Checkpoints that failed otherwise (the store unreachable for too long).
    pub checkpoints_failed: usize,
    /// Errors the processors injected, per callback.
    pub injected_errors: BTreeMap<Callback, usize>,
    /// Panics the processors injected, per callback.
    pub injected_panics: BTreeMap<Callback, usize>,
    /// Slow `process_records` calls the processors injected.
    pub injected_slow: usize,
    /// Failed batches delivered again, from their first record, by the same run.
    pub batches_redelivered: usize,
    /// Runs begun at a sequence-number checkpoint, checked to be a processed record.
    pub checkpoints_resumed: usize,
    /// Child shards whose start was checked against their parents.
    pub children_checked: usize,
    /// Takeover of each shard of each faulted worker.
    pub takeovers: Vec<Takeover>,
    /// Broken guarantees, described.
    pub violations: Vec<String>,
}

struct Run {
    shard: String,
    started: u64,
    ended: Option<u64>,
    epoch: Option<u64>,
}

/// Checks `events` (from `read_logs`) against what the producer got `acknowledged`, the stream's
/// shards, and the faults injected.
pub fn check(
    events: &[Event],
    acknowledged: &BTreeSet<(String, u64)>,
    shards: &[ShardLineage],
    faults: &[WorkerFault],
) -> Report {
    let mut report = Report {
        acknowledged: acknowledged.len(),
        ..Report::default()
    };
    let runs = collect_runs(events, &mut report);
    report.runs = runs.len();
    count_injected(events, &mut report);
    check_records(events, acknowledged, &mut report);
    check_resumed_checkpoints(events, &mut report);
    check_fencing(events, &runs, &mut report);
    check_parents_first(events, shards, &mut report);
    report.takeovers = takeovers(events, &runs, faults);
    report
}

type RunKey = (String, u64);

fn collect_runs(events: &[Event], report: &mut Report) -> BTreeMap<RunKey, Run> {
    let mut runs: BTreeMap<RunKey, Run> = BTreeMap::new();
    for event in events {
        match event {
            Event::Start { w, run, shard, t } => {
                runs.insert(
                    (w.clone(), *run),
                    Run {
                        shard: shard.clone(),
                        started: *t,
                        ended: None,
                        epoch: None,
                    },
                );
            }
            Event::End { w, run, t, .. } => {
                if let Some(r) = runs.get_mut(&(w.clone(), *run)) {
                    r.ended = Some(*t);
                }
            }
            Event::Record {
                w,
                run,
                shard,
                epoch,
                ..
            }
            | Event::CheckpointBegin {
                w,
                run,
                shard,
                epoch,
                ..
            }
            | Event::Checkpoint {
                w,
                run,
                shard,
                epoch,
                ..
            } => {
                let Some(r) = runs.get_mut(&(w.clone(), *run)) else {
                    report.violations.push(format!(
                        "{w} run {run} on {shard} logged work before it started"
                    ));
                    continue;
                };
                if &r.shard != shard {
                    report.violations.push(format!(
                        "{w} run {run} of {} logged work on {shard}",
                        r.shard
                    ));
                }
                match r.epoch {
                    None => r.epoch = Some(*epoch),
                    Some(held) if held != *epoch => report.violations.push(format!(
                        "{w} run {run} on {shard} worked at epochs {held} and {epoch}"
                    )),
                    Some(_) => {}
                }
            }
            Event::Injected {
                w,
                run,
                shard,
                epoch,
                ..
            } => {
                let Some(r) = runs.get_mut(&(w.clone(), *run)) else {
                    report.violations.push(format!(
                        "{w} run {run} on {shard} logged a fault before it started"
                    ));
                    continue;
                };
                match (r.epoch, epoch) {
                    (None, Some(epoch)) => r.epoch = Some(*epoch),
                    (Some(held), Some(epoch)) if held != *epoch => report.violations.push(format!(
                        "{w} run {run} on {shard} worked at epochs {held} and {epoch}"
                    )),
                    _ => {}
                }
            }
            Event::Hello { .. } | Event::Init { .. } => {}
        }
    }
    runs
}

fn count_injected(events: &[Event], report: &mut Report) {
    for event in events {
        if let Event::Injected {
            callback, fault, ..
        } = event
        {
            match fault {
                InjectedFault::Error => *report.injected_errors.entry(*callback).or_default() += 1,
                InjectedFault::Panic => *report.injected_panics.entry(*callback).or_default() += 1,
                InjectedFault::Slow(_) => report.injected_slow += 1,
            }
        }
    }
}

type RunProgress<'a> = (Option<&'a SequenceNumber>, BTreeMap<&'a str, u64>);

fn check_records(events: &[Event], acknowledged: &BTreeSet<(String, u64)>, report: &mut Report) {
    let mut seen: BTreeSet<(&str, u64)> = BTreeSet::new();
    // Per run: the last sequence number, and each key's last counter.
    let mut last: BTreeMap<(&str, u64), RunProgress<'_>> = BTreeMap::new();
    // Per run: the first record of a batch that failed, until it is delivered again.
    let mut failed: BTreeMap<(&str, u64), &SequenceNumber> = BTreeMap::new();
    for event in events {
        match event {
            Event::Injected {
                w,
                run,
                shard,
                callback: Callback::ProcessRecords,
                fault: InjectedFault::Error | InjectedFault::Panic,
                first: Some(first),
                ..
            } => {
                if let Some(expected) = failed.get(&(w.as_str(), *run))
                    && *expected != first
                {
                    report.violations.push(format!(
                        "{w} run {run} on {shard}: the batch from {expected} failed, and the \
                         next delivery began at {first}"
                    ));
                }
                if let Some((Some(previous), _)) = last.get(&(w.as_str(), *run))
                    && *previous >= first
                {
                    report.violations.push(format!(
                        "{w} run {run} on {shard} went from {previous} back to {first} (a \
                         batch that failed)"
                    ));
                }
                failed.insert((w, *run), first);
            }
            Event::Record {
                w,
                run,
                shard,
                seq,
                key,
                n,
                ..
            } => {
                if let Some(expected) = failed.remove(&(w.as_str(), *run)) {
                    if expected == seq {
                        report.batches_redelivered += 1;
                    } else {
                        report.violations.push(format!(
                            "{w} run {run} on {shard}: the batch from {expected} failed, and \
                             the next record processed was {seq}"
                        ));
                    }
                }
                report.processed += 1;
                seen.insert((key, *n));
                let (previous, keys) = last.entry((w, *run)).or_default();
                if let Some(previous) = previous
                    && *previous >= seq
                {
                    report.violations.push(format!(
                        "{w} run {run} on {shard} went from {previous} back to {seq}"
                    ));
                }
                *previous = Some(seq);
                if let Some(before) = keys.insert(key, *n)
                    && before >= *n
                {
                    report.violations.push(format!(
                        "{w} run {run} on {shard}: {key} went from {before} to {n}"
                    ));
                }
            }
            _ => {}
        }
    }
    report.distinct = seen.len();
    report.duplicates = report.processed - report.distinct;
    report.lost = acknowledged
        .iter()
        .filter(|(key, n)| !seen.contains(&(key.as_str(), *n)))
        .cloned()
        .collect();
}

/// A run that begins at a sequence number must begin at a record processed before: a
/// checkpoint that passed a batch that failed (or was never delivered) would name one that
/// was not, and the records up to it would be skipped.
fn check_resumed_checkpoints(events: &[Event], report: &mut Report) {
    let mut first_processed: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for event in events {
        if let Event::Record { shard, seq, t, .. } = event {
            let first = first_processed.entry((shard, seq.as_str())).or_insert(*t);
            *first = (*first).min(*t);
        }
    }
    for event in events {
        let Event::Init {
            w,
            run,
            shard,
            checkpoint,
            t,
        } = event
        else {
            continue;
        };
        if checkpoint.is_empty() || !checkpoint.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        report.checkpoints_resumed += 1;
        match first_processed.get(&(shard.as_str(), checkpoint.as_str())) {
            Some(processed) if processed <= t => {}
            Some(processed) => report.violations.push(format!(
                "{w} run {run} on {shard} began at checkpoint {checkpoint}, a record first \
                 processed {} µs later",
                processed - t
            )),
            None => report.violations.push(format!(
                "{w} run {run} on {shard} began at checkpoint {checkpoint}, a record never \
                 processed successfully"
            )),
        }
    }
}

/// The runs that held one lease at one epoch.
type Holders<'a> = Vec<(&'a RunKey, &'a Run)>;

fn check_fencing(events: &[Event], runs: &BTreeMap<RunKey, Run>, report: &mut Report) {
    // Per shard and epoch: the runs that held it, in the order they started. A take bumps the
    // epoch, so one epoch belongs to one worker process. That process may run the lease again
    // at the same epoch (it stopped processing a lease it could not renew, and found it still
    // its own), but only after the previous run ended.
    let mut held: BTreeMap<&str, BTreeMap<u64, Holders<'_>>> = BTreeMap::new();
    for (key, run) in runs {
        if let Some(epoch) = run.epoch {
            held.entry(&run.shard)
                .or_default()
                .entry(epoch)
                .or_default()
                .push((key, run));
        }
    }
    // Per shard: when each epoch's first run started (after the take was written).
    let mut takes: BTreeMap<&str, BTreeMap<u64, (&RunKey, u64)>> = BTreeMap::new();
    for (shard, by_epoch) in &mut held {
        for (epoch, holders) in by_epoch {
            holders.sort_by_key(|(_, run)| run.started);
            for pair in holders.windows(2) {
                let ((first, earlier), (second, later)) = (pair[0], pair[1]);
                if first.0 != second.0 || earlier.ended.is_none_or(|ended| ended > later.started) {
                    report.violations.push(format!(
                        "{shard} was held at epoch {epoch} by two runs at once: {first:?} and \
                         {second:?}"
                    ));
                }
            }
            let (first, run) = holders[0];
            takes
                .entry(shard)
                .or_default()
                .insert(*epoch, (first, run.started));
        }
    }
    for event in events {
        let Event::Checkpoint {
            w,
            run,
            shard,
            epoch,
            at,
            outcome,
            t0,
            ..
        } = event
        else {
            continue;
        };
        match outcome {
            CheckpointOutcome::Ok => {
                report.checkpoints_written += 1;
                let later = takes
                    .get(shard.as_str())
                    .into_iter()
                    .flat_map(|by_epoch| by_epoch.range(epoch + 1..));
                for (later_epoch, (taker, taken)) in later {
                    if t0 >= taken {
                        report.violations.push(format!(
                            "{w} run {run} wrote checkpoint {at} on {shard} at epoch {epoch}, \
                             begun {} µs after {taker:?} started at epoch {later_epoch}",
                            t0 - taken
                        ));
                    }
                }
            }
            CheckpointOutcome::LeaseLost => report.checkpoints_fenced += 1,
            CheckpointOutcome::Failed(_) => report.checkpoints_failed += 1,
        }
    }
}

fn check_parents_first(events: &[Event], shards: &[ShardLineage], report: &mut Report) {
    // Per shard: the first time each sequence number was processed, and the first record.
    let mut first_processed: BTreeMap<&str, BTreeMap<&SequenceNumber, u64>> = BTreeMap::new();
    // SHARD_END checkpoints begun, with whether they were refused.
    let mut shard_end_begun: BTreeMap<&str, Vec<(RunKey, u64)>> = BTreeMap::new();
    let mut shard_end_refused: BTreeSet<RunKey> = BTreeSet::new();
    for event in events {
        match event {
            Event::Record { shard, seq, t, .. } => {
                let first = first_processed
                    .entry(shard)
                    .or_default()
                    .entry(seq)
                    .or_insert(*t);
                *first = (*first).min(*t);
            }
            Event::CheckpointBegin {
                w,
                run,
                shard,
                at,
                t,
                ..
            } if at == "SHARD_END" => {
                shard_end_begun
                    .entry(shard)
                    .or_default()
                    .push(((w.clone(), *run), *t));
            }
            Event::Checkpoint {
                w,
                run,
                at,
                outcome,
                ..
            } if at == "SHARD_END" && outcome != &CheckpointOutcome::Ok => {
                shard_end_refused.insert((w.clone(), *run));
            }
            _ => {}
        }
    }
    for child in shards {
        let Some(child_first) = first_processed
            .get(child.shard.as_str())
            .and_then(|records| records.values().min())
        else {
            continue;
        };
        report.children_checked += usize::from(!child.parents.is_empty());
        for parent in &child.parents {
            if let Some((last, parent_last)) = first_processed
                .get(parent.as_str())
                .and_then(|records| records.iter().next_back())
                && parent_last > child_first
            {
                report.violations.push(format!(
                    "{} processed a record {} µs before its parent {parent}'s last ({last}) was",
                    child.shard,
                    parent_last - child_first
                ));
            }
            let ended_first = shard_end_begun.get(parent.as_str()).is_some_and(|begun| {
                begun
                    .iter()
                    .any(|(run, t)| t <= child_first && !shard_end_refused.contains(run))
            });
            if !ended_first {
                report.violations.push(format!(
                    "{} processed a record before its parent {parent} checkpointed SHARD_END",
                    child.shard
                ));
            }
        }
    }
}

fn takeovers(
    events: &[Event],
    runs: &BTreeMap<RunKey, Run>,
    faults: &[WorkerFault],
) -> Vec<Takeover> {
    // Per run: when it initialized, and its first record (when it arrived in the stream, when
    // it was processed).
    let mut initialized: BTreeMap<RunKey, u64> = BTreeMap::new();
    let mut first_record: BTreeMap<RunKey, (u64, u64)> = BTreeMap::new();
    let mut finished: BTreeSet<&str> = BTreeSet::new();
    for event in events {
        match event {
            Event::Init { w, run, t, .. } => {
                initialized.insert((w.clone(), *run), *t);
            }
            Event::Record {
                w, run, arrival, t, ..
            } => {
                first_record
                    .entry((w.clone(), *run))
                    .or_insert((*arrival, *t));
            }
            Event::Checkpoint {
                shard, at, outcome, ..
            } if at == "SHARD_END" && outcome == &CheckpointOutcome::Ok => {
                finished.insert(shard);
            }
            _ => {}
        }
    }
    let mut takeovers = Vec::new();
    for fault in faults {
        let held = runs.iter().filter(|((w, _), run)| {
            w == &fault.instance
                && run.started < fault.at
                && run.ended.is_none_or(|ended| ended > fault.at)
        });
        for (_, run) in held {
            // A zombie (paused, resumed, killed before it noticed) no longer held the shard:
            // another run had started on it between the faulted run's start and the fault.
            let taken_before = runs.values().any(|other| {
                other.shard == run.shard && other.started > run.started && other.started < fault.at
            });
            if taken_before {
                continue;
            }
            let next = runs
                .iter()
                .filter(|(_, later)| later.shard == run.shard && later.started > fault.at)
                .min_by_key(|(_, later)| later.started);
            let Some((next_key, next_run)) = next else {
                if !finished.contains(run.shard.as_str()) {
                    takeovers.push(Takeover {
                        fault: fault.clone(),
                        shard: run.shard.clone(),
                        after: None,
                        first_record_after: None,
                    });
                }
                // Otherwise the faulted run had finished the shard: nothing to take over.
                continue;
            };
            let taken = initialized
                .get(next_key)
                .copied()
                .unwrap_or(next_run.started);
            let first_record_after = first_record
                .get(next_key)
                .filter(|(arrival, _)| *arrival <= taken)
                .map(|(_, t)| t.saturating_sub(fault.at));
            takeovers.push(Takeover {
                fault: fault.clone(),
                shard: run.shard.clone(),
                after: Some(taken.saturating_sub(fault.at)),
                first_record_after,
            });
        }
    }
    takeovers
}

/// The shards each worker process holds by its log: runs started and not ended.
pub fn shards_held(events: &[Event]) -> BTreeMap<String, BTreeSet<String>> {
    let mut held: BTreeMap<String, BTreeMap<u64, String>> = BTreeMap::new();
    for event in events {
        match event {
            Event::Start { w, run, shard, .. } => {
                held.entry(w.clone())
                    .or_default()
                    .insert(*run, shard.clone());
            }
            Event::End { w, run, .. } => {
                if let Some(runs) = held.get_mut(w) {
                    runs.remove(run);
                }
            }
            _ => {}
        }
    }
    held.into_iter()
        .map(|(w, runs)| (w, runs.into_values().collect()))
        .collect()
}

/// The distinct (key, n) records processed so far.
pub fn processed_records(events: &[Event]) -> BTreeSet<(String, u64)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Record { key, n, .. } => Some((key.clone(), *n)),
            _ => None,
        })
        .collect()
}

/// The takeovers after one kind of fault: how many shards the faulted workers held, and the
/// times measured, in µs, each list sorted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TakeoverTimes {
    /// Shards held by the faulted workers at their faults (those never taken over included).
    pub shards: usize,
    /// From the fault to the next owner's processor initialized ([`Takeover::after`]).
    pub after: Vec<u64>,
    /// From the fault to the next owner's first waiting record
    /// ([`Takeover::first_record_after`]).
    pub first_record_after: Vec<u64>,
}

impl TakeoverTimes {
    /// One line: the count, then median, p90 and worst of each measure.
    pub fn describe(&self) -> String {
        let spread = |times: &[u64]| {
            format!(
                "{} measured, median {}, p90 {}, worst {}",
                times.len(),
                shown_ms(quantile(times, 0.5)),
                shown_ms(quantile(times, 0.9)),
                shown_ms(quantile(times, 1.0))
            )
        };
        format!(
            "{} shards; taken over (processor initialized): {}; first waiting record: {}",
            self.shards,
            spread(&self.after),
            spread(&self.first_record_after)
        )
    }
}

/// The element of sorted `times` at `fraction` of the way (0.5 the median, 1.0 the worst).
fn quantile(times: &[u64], fraction: f64) -> Option<u64> {
    let i = ((times.len() as f64 * fraction) as usize).min(times.len().max(1) - 1);
    times.get(i).copied()
}

/// µs as whole milliseconds, or `-` for nothing measured.
fn shown_ms(micros: Option<u64>) -> String {
    micros.map_or_else(
        || "-".to_owned(),
        |t| format!("{:.0} ms", t as f64 / 1000.0),
    )
}

impl Report {
    /// Takeover times that were measured, in µs, sorted.
    pub fn takeover_times(&self) -> Vec<u64> {
        let mut times: Vec<u64> = self.takeovers.iter().filter_map(|t| t.after).collect();
        times.sort_unstable();
        times
    }

    /// Times from a fault to the first waiting record processed by the next run, in µs, sorted.
    pub fn first_record_times(&self) -> Vec<u64> {
        let mut times: Vec<u64> = self
            .takeovers
            .iter()
            .filter_map(|t| t.first_record_after)
            .collect();
        times.sort_unstable();
        times
    }

    /// Takeover times per kind of fault (`kill`, `pause`), so that takeovers the store can
    /// prove at once (a dead process) are not averaged with those that must wait for the lease
    /// (a paused one).
    pub fn takeovers_by_kind(&self) -> BTreeMap<&'static str, TakeoverTimes> {
        let mut kinds: BTreeMap<&'static str, TakeoverTimes> = BTreeMap::new();
        for takeover in &self.takeovers {
            let times = kinds.entry(takeover.fault.kind).or_default();
            times.shards += 1;
            times.after.extend(takeover.after);
            times.first_record_after.extend(takeover.first_record_after);
        }
        for times in kinds.values_mut() {
            times.after.sort_unstable();
            times.first_record_after.sort_unstable();
        }
        kinds
    }

    /// A few lines of figures for the test's output.
    pub fn summary(&self) -> String {
        let median_and_worst = |times: Vec<u64>| {
            let at = |fraction: f64| shown_ms(quantile(&times, fraction));
            format!(
                "{} measured, median {}, p99 {}, worst {}",
                times.len(),
                at(0.5),
                at(0.99),
                at(1.0)
            )
        };
        let per_callback = |counts: &BTreeMap<Callback, usize>| {
            let total: usize = counts.values().sum();
            let each: Vec<String> = counts
                .iter()
                .map(|(callback, n)| format!("{callback:?} {n}"))
                .collect();
            format!("{total} ({})", each.join(", "))
        };
        format!(
            "records: acknowledged {}, processed {}, distinct {}, duplicates {}, lost {}\n\
             runs {}, checkpoints written {}, fenced (LeaseLost) {}, failed otherwise {}, \
             children checked {}\n\
             processor faults: errors {}, panics {}, slow batches {}; failed batches \
             redelivered from their first record {}; resumed checkpoints checked {}\n\
             takeovers (fault to the next owner's processor initialized): {}; never taken over {}\n\
             fault to the first waiting record processed by the next owner: {}\n\
             violations {}",
            self.acknowledged,
            self.processed,
            self.distinct,
            self.duplicates,
            self.lost.len(),
            self.runs,
            self.checkpoints_written,
            self.checkpoints_fenced,
            self.checkpoints_failed,
            self.children_checked,
            per_callback(&self.injected_errors),
            per_callback(&self.injected_panics),
            self.injected_slow,
            self.batches_redelivered,
            self.checkpoints_resumed,
            median_and_worst(self.takeover_times()),
            self.takeovers.iter().filter(|t| t.after.is_none()).count(),
            median_and_worst(self.first_record_times()),
            self.violations.len(),
        )
    }

    /// Fails, naming the first problems, unless nothing was lost and no guarantee was broken.
    pub fn assert_guarantees(&self) {
        assert!(
            self.lost.is_empty(),
            "{} acknowledged records were never processed, e.g. {:?}",
            self.lost.len(),
            &self.lost[..self.lost.len().min(10)]
        );
        assert!(
            self.violations.is_empty(),
            "{} violations:\n{}",
            self.violations.len(),
            self.violations[..self.violations.len().min(20)].join("\n")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(w: &str, run: u64, shard: &str, t: u64) -> Event {
        Event::Start {
            w: w.to_owned(),
            run,
            shard: shard.to_owned(),
            t,
        }
    }

    fn record(w: &str, run: u64, shard: &str, seq: u128, n: u64, epoch: u64, t: u64) -> Event {
        Event::Record {
            w: w.to_owned(),
            run,
            shard: shard.to_owned(),
            seq: SequenceNumber::from(seq),
            key: "k".to_owned(),
            n,
            epoch,
            arrival: 0,
            t,
        }
    }

    fn begin(w: &str, run: u64, shard: &str, epoch: u64, at: &str, t: u64) -> Event {
        Event::CheckpointBegin {
            w: w.to_owned(),
            run,
            shard: shard.to_owned(),
            epoch,
            at: at.to_owned(),
            t,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn checkpoint(
        w: &str,
        run: u64,
        shard: &str,
        epoch: u64,
        at: &str,
        outcome: CheckpointOutcome,
        t0: u64,
        t: u64,
    ) -> Event {
        Event::Checkpoint {
            w: w.to_owned(),
            run,
            shard: shard.to_owned(),
            epoch,
            at: at.to_owned(),
            outcome,
            t0,
            t,
        }
    }

    fn acknowledged(count: u64) -> BTreeSet<(String, u64)> {
        (0..count).map(|n| ("k".to_owned(), n)).collect()
    }

    /// w1 processes k:0..2 at epoch 1 and checkpoints; w2 takes over at epoch 2 at t = 100 and
    /// processes k:1 again and k:2.
    fn honest() -> Vec<Event> {
        vec![
            start("w1.0", 0, "s0", 0),
            record("w1.0", 0, "s0", 1, 0, 1, 10),
            record("w1.0", 0, "s0", 2, 1, 1, 10),
            begin("w1.0", 0, "s0", 1, "1", 11),
            checkpoint("w1.0", 0, "s0", 1, "1", CheckpointOutcome::Ok, 11, 12),
            start("w2.0", 0, "s0", 100),
            record("w2.0", 0, "s0", 2, 1, 2, 110),
            record("w2.0", 0, "s0", 3, 2, 2, 110),
            begin("w2.0", 0, "s0", 2, "3", 111),
            checkpoint("w2.0", 0, "s0", 2, "3", CheckpointOutcome::Ok, 111, 112),
        ]
    }

    #[test]
    fn an_honest_history_passes_and_counts_duplicates() {
        let report = check(&honest(), &acknowledged(3), &[], &[]);
        report.assert_guarantees();
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.checkpoints_written, 2);
        assert_eq!(report.runs, 2);
    }

    #[test]
    fn an_acknowledged_record_never_processed_is_lost() {
        let report = check(&honest(), &acknowledged(4), &[], &[]);
        assert_eq!(report.lost, vec![("k".to_owned(), 3)]);
    }

    #[test]
    fn going_back_within_a_run_is_a_violation() {
        let mut events = honest();
        events.push(record("w2.0", 0, "s0", 2, 3, 2, 120));
        let report = check(&events, &acknowledged(3), &[], &[]);
        assert!(
            report.violations[0].contains("back to 2"),
            "{:?}",
            report.violations
        );
        let mut events = honest();
        events.push(record("w2.0", 0, "s0", 9, 0, 2, 120));
        let report = check(&events, &acknowledged(3), &[], &[]);
        assert!(
            report.violations[0].contains("k went from 2 to 0"),
            "{:?}",
            report.violations
        );
    }

    #[test]
    fn a_checkpoint_begun_after_a_later_epoch_started_is_a_violation() {
        let mut events = honest();
        events.push(begin("w1.0", 0, "s0", 1, "2", 150));
        events.push(checkpoint(
            "w1.0",
            0,
            "s0",
            1,
            "2",
            CheckpointOutcome::Ok,
            150,
            151,
        ));
        let report = check(&events, &acknowledged(3), &[], &[]);
        assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
        assert!(report.violations[0].contains("at epoch 1, begun 50 µs after"));

        // Refused with LeaseLost, the same attempt is the fence working.
        let mut events = honest();
        events.push(checkpoint(
            "w1.0",
            0,
            "s0",
            1,
            "2",
            CheckpointOutcome::LeaseLost,
            150,
            151,
        ));
        let report = check(&events, &acknowledged(3), &[], &[]);
        report.assert_guarantees();
        assert_eq!(report.checkpoints_fenced, 1);

        // Nor is a checkpoint that failed otherwise (nothing was written); it is counted.
        let mut events = honest();
        let failed = CheckpointOutcome::Failed("timed out".to_owned());
        events.push(checkpoint("w1.0", 0, "s0", 1, "2", failed, 150, 151));
        let report = check(&events, &acknowledged(3), &[], &[]);
        report.assert_guarantees();
        assert_eq!(report.checkpoints_failed, 1);
    }

    #[test]
    fn two_runs_at_one_epoch_are_a_violation() {
        let mut events = honest();
        events.push(start("w3.0", 0, "s0", 200));
        events.push(record("w3.0", 0, "s0", 3, 2, 2, 210));
        let report = check(&events, &acknowledged(3), &[], &[]);
        assert!(report.violations[0].contains("held at epoch 2 by two runs at once"));

        // The same process running the lease again after its first run ended is fine; before
        // it ended, it is not.
        let again = |end: u64| {
            let mut events = honest();
            events.push(Event::End {
                w: "w2.0".to_owned(),
                run: 0,
                shard: "s0".to_owned(),
                why: "lease_lost".to_owned(),
                t: end,
            });
            events.push(start("w2.0", 1, "s0", 200));
            events.push(record("w2.0", 1, "s0", 3, 2, 2, 210));
            check(&events, &acknowledged(3), &[], &[])
        };
        again(150).assert_guarantees();
        assert!(again(250).violations[0].contains("two runs at once"));
    }

    #[test]
    fn a_child_record_before_its_parents_end_is_a_violation() {
        let lineage = |shard: &str, parents: &[&str]| ShardLineage {
            shard: shard.to_owned(),
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
            start: 0,
            end: 0,
            open: parents.is_empty(),
        };
        let shards = [
            lineage("s0", &[]),
            lineage("s1", &[]),
            lineage("s2", &["s0", "s1"]),
        ];
        let parents = vec![
            start("w1.0", 0, "s0", 0),
            record("w1.0", 0, "s0", 1, 0, 1, 10),
            begin("w1.0", 0, "s0", 1, "SHARD_END", 20),
            checkpoint(
                "w1.0",
                0,
                "s0",
                1,
                "SHARD_END",
                CheckpointOutcome::Ok,
                20,
                21,
            ),
            start("w1.0", 1, "s1", 0),
            record("w1.0", 1, "s1", 1, 1, 1, 30),
            begin("w1.0", 1, "s1", 1, "SHARD_END", 40),
            checkpoint(
                "w1.0",
                1,
                "s1",
                1,
                "SHARD_END",
                CheckpointOutcome::Ok,
                40,
                41,
            ),
        ];
        let child_at = |t: u64| {
            vec![
                start("w2.0", 0, "s2", t),
                record("w2.0", 0, "s2", 9, 2, 1, t),
            ]
        };

        let in_order = [parents.clone(), child_at(50)].concat();
        let report = check(&in_order, &acknowledged(3), &shards, &[]);
        report.assert_guarantees();
        assert_eq!(report.children_checked, 1);

        // Before s1's SHARD_END checkpoint, though after its last record.
        let early = [parents.clone(), child_at(35)].concat();
        let report = check(&early, &acknowledged(3), &shards, &[]);
        assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
        assert!(report.violations[0].contains("before its parent s1 checkpointed SHARD_END"));

        // Before s1's last record.
        let earlier = [parents, child_at(25)].concat();
        let report = check(&earlier, &acknowledged(3), &shards, &[]);
        assert!(report.violations[0].contains("before its parent s1's last"));
    }

    fn injected(w: &str, run: u64, first: u128, fault: InjectedFault, t: u64) -> Event {
        Event::Injected {
            w: w.to_owned(),
            run,
            shard: "s0".to_owned(),
            callback: Callback::ProcessRecords,
            fault,
            epoch: Some(2),
            first: Some(SequenceNumber::from(first)),
            t,
        }
    }

    #[test]
    fn a_failed_batch_must_be_delivered_again_from_its_first_record() {
        // w2 fails the batch from 2 twice (an error, then a panic), then processes it.
        let mut events = honest();
        events.insert(6, injected("w2.0", 0, 2, InjectedFault::Error, 104));
        events.insert(7, injected("w2.0", 0, 2, InjectedFault::Panic, 105));
        let report = check(&events, &acknowledged(3), &[], &[]);
        report.assert_guarantees();
        assert_eq!(report.batches_redelivered, 1);
        assert_eq!(report.injected_errors[&Callback::ProcessRecords], 1);
        assert_eq!(report.injected_panics[&Callback::ProcessRecords], 1);

        // A slow batch is only counted.
        let mut events = honest();
        events.insert(6, injected("w2.0", 0, 2, InjectedFault::Slow(900), 104));
        let report = check(&events, &acknowledged(3), &[], &[]);
        report.assert_guarantees();
        assert_eq!((report.injected_slow, report.batches_redelivered), (1, 0));

        // Going on after the failed batch instead: a violation, and its record is lost.
        let skipped = vec![
            start("w1.0", 0, "s0", 0),
            record("w1.0", 0, "s0", 1, 0, 2, 10),
            injected("w1.0", 0, 2, InjectedFault::Error, 20),
            record("w1.0", 0, "s0", 3, 2, 2, 30),
        ];
        let report = check(&skipped, &acknowledged(3), &[], &[]);
        assert!(
            report.violations[0].contains("the batch from 2 failed"),
            "{:?}",
            report.violations
        );
        assert_eq!(report.lost, vec![("k".to_owned(), 1)]);

        // Delivering it again from a later record: a violation too.
        let late = [
            &honest()[..6],
            &[injected("w2.0", 0, 3, InjectedFault::Error, 104)],
        ]
        .concat();
        let late = [late, honest()[6..].to_vec()].concat();
        let report = check(&late, &acknowledged(3), &[], &[]);
        assert!(
            report.violations[0].contains("the batch from 3 failed"),
            "{:?}",
            report.violations
        );
    }

    #[test]
    fn a_run_resumed_at_a_record_never_processed_is_a_violation() {
        let resumed_at = |checkpoint: &str| {
            let mut events = honest();
            events.insert(
                6,
                Event::Init {
                    w: "w2.0".to_owned(),
                    run: 0,
                    shard: "s0".to_owned(),
                    checkpoint: checkpoint.to_owned(),
                    t: 100,
                },
            );
            check(&events, &acknowledged(3), &[], &[])
        };
        let report = resumed_at("1");
        report.assert_guarantees();
        assert_eq!(report.checkpoints_resumed, 1);
        resumed_at("TRIM_HORIZON").assert_guarantees();
        // Record 3 was processed only later, by the run that began there.
        assert!(resumed_at("3").violations[0].contains("first processed 10 µs later"));
        assert!(resumed_at("7").violations[0].contains("never processed successfully"));
    }

    #[test]
    fn takeover_runs_from_the_fault_to_the_next_runs_first_record() {
        let fault = WorkerFault {
            kind: "kill",
            instance: "w1.0".to_owned(),
            at: 50,
        };
        let report = check(&honest(), &acknowledged(3), &[], &[fault]);
        assert_eq!(report.takeovers.len(), 1);
        assert_eq!(report.takeovers[0].shard, "s0");
        // w2's run started at 100 (no Init logged: its start counts), its first record (in
        // the stream since 0) was processed at 110.
        assert_eq!(report.takeovers[0].after, Some(50));
        assert_eq!(report.takeovers[0].first_record_after, Some(60));

        // Killed after another worker had taken its shard: nothing of it to take over.
        let zombie = WorkerFault {
            kind: "kill",
            instance: "w1.0".to_owned(),
            at: 105,
        };
        let report = check(&honest(), &acknowledged(3), &[], &[zombie]);
        assert_eq!(report.takeovers, vec![]);
        assert_eq!(
            shards_held(&honest()),
            BTreeMap::from([
                ("w1.0".to_owned(), BTreeSet::from(["s0".to_owned()])),
                ("w2.0".to_owned(), BTreeSet::from(["s0".to_owned()])),
            ])
        );
    }

    #[test]
    fn takeovers_are_summarized_per_kind_of_fault() {
        let takeover = |kind: &'static str, after: Option<u64>, first: Option<u64>| Takeover {
            fault: WorkerFault {
                kind,
                instance: "w1.0".to_owned(),
                at: 0,
            },
            shard: "s0".to_owned(),
            after,
            first_record_after: first,
        };
        let report = Report {
            takeovers: vec![
                takeover("kill", Some(300_000), Some(350_000)),
                takeover("pause", Some(2_600_000), None),
                takeover("kill", Some(100_000), Some(150_000)),
                takeover("kill", None, None),
                takeover("kill", Some(200_000), None),
            ],
            ..Report::default()
        };
        let kinds = report.takeovers_by_kind();
        assert_eq!(kinds.keys().copied().collect::<Vec<_>>(), ["kill", "pause"]);
        let kill = &kinds["kill"];
        assert_eq!(kill.shards, 4, "the one never taken over counts as held");
        assert_eq!(kill.after, [100_000, 200_000, 300_000]);
        assert_eq!(kill.first_record_after, [150_000, 350_000]);
        assert_eq!(
            kill.describe(),
            "4 shards; taken over (processor initialized): 3 measured, median 200 ms, p90 300 ms, \
             worst 300 ms; first waiting record: 2 measured, median 350 ms, p90 350 ms, worst \
             350 ms"
        );
        assert_eq!(
            kinds["pause"].describe(),
            "1 shards; taken over (processor initialized): 1 measured, median 2600 ms, p90 2600 \
             ms, worst 2600 ms; first waiting record: 0 measured, median -, p90 -, worst -"
        );
    }
}
