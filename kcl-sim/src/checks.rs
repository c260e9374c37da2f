//! The guarantees, checked against a run's history once it is over.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use kcl_core::{Checkpoint, SequenceNumber, ShardId};

use crate::history::{Event, Expiry, WorkerName};

/// A guarantee of the worker, as the simulation checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// Every acknowledged record that retention did not expire (nor an engine crash lose, as
    /// its durability policy allows) was processed successfully (`process_records` returned
    /// `Ok`) at least once, and no sequence number was given to two records.
    AtLeastOnce,
    /// Each processor's run starts from the lease's checkpoint as stored when it starts, and
    /// its batches follow each other from there with no gap and no step back (a failed batch
    /// may come again as it was).
    OrderWithinRun,
    /// No record of a child shard is delivered before the last record of each parent was
    /// processed successfully, and no record of a parent is delivered once a child got one.
    ParentBeforeChild,
    /// The store accepted no checkpoint from a worker that did not hold the lease at that epoch.
    CheckpointFromNonOwner,
    /// No lease stays held (granted or renewed, and neither expired, released nor taken over)
    /// for longer than a lease duration while its holder has no consumer for it.
    HeldWithoutConsumer,
    /// No batch is delivered on a lease after its holder's lease expired or was released.
    DeliveryPastValidity,
    /// Once faults stop, every lease with work left is owned by a live worker, every worker
    /// holds the floor or the ceiling of the fair share, and every record gets processed.
    EventualBalance,
    /// The simulation itself failed (a bug in the harness, not in the worker).
    Harness,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A guarantee broken, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which guarantee.
    pub invariant: Invariant,
    /// What happened, naming shards, workers, runs and virtual times.
    pub detail: String,
}

impl Violation {
    pub(crate) fn new(invariant: Invariant, detail: impl Into<String>) -> Self {
        Violation {
            invariant,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.invariant, self.detail)
    }
}

/// How many violations of one kind are described; the rest are counted.
const DETAILS_PER_KIND: usize = 5;

/// Checks every guarantee but balance (which the run checks while it settles), for workers
/// whose leases last `lease`; `renewal_slack` is how long after it was sent a renewal may still
/// land (the workers' store-call deadline).
pub(crate) fn check(
    events: &[(Duration, Event)],
    lease: Duration,
    renewal_slack: Duration,
) -> Vec<Violation> {
    let facts = Facts::gather(events);
    let mut violations = Vec::new();
    violations.extend(facts.at_least_once());
    violations.extend(facts.order_within_runs());
    violations.extend(facts.parents_before_children());
    violations.extend(non_owner_checkpoints(events));
    violations.extend(facts.held_without_consumer(lease, renewal_slack));
    violations.extend(facts.deliveries_past_validity());
    violations
}

/// Keeps the first few of `all` and says how many more there were.
fn summarize(invariant: Invariant, all: Vec<String>) -> Vec<Violation> {
    let more = all.len().saturating_sub(DETAILS_PER_KIND);
    let mut kept: Vec<Violation> = all
        .into_iter()
        .take(DETAILS_PER_KIND)
        .map(|detail| Violation::new(invariant, detail))
        .collect();
    if more > 0 {
        kept.push(Violation::new(invariant, format!("... and {more} more")));
    }
    kept
}

fn seconds(at: Duration) -> String {
    format!("{:.3}s", at.as_secs_f64())
}

/// One processor's life.
struct Run {
    worker: WorkerName,
    shard: ShardId,
    created: Duration,
    dropped: Option<Duration>,
    start: Option<Checkpoint>,
    /// The lease's stored checkpoint when the run began, if it was ahead of where the run
    /// started (a consumer started from a stale read of the lease).
    behind: Option<Checkpoint>,
    deliveries: Vec<Delivery>,
}

struct Delivery {
    index: usize,
    at: Duration,
    /// The generation of the shard's lease when the batch was delivered.
    generation: u64,
    epoch: u64,
    records: Vec<SequenceNumber>,
    processed: bool,
}

/// What the checks need from the history, sorted out once.
struct Facts {
    /// Each shard's acknowledged records, in shard order.
    acked: BTreeMap<ShardId, Vec<SequenceNumber>>,
    /// Each shard's retention events, in order.
    expiries: BTreeMap<ShardId, Vec<(Duration, Expiry)>>,
    /// Acknowledged records an engine crash lost, and when.
    lost: BTreeMap<(ShardId, SequenceNumber), Duration>,
    parents: BTreeMap<ShardId, Vec<ShardId>>,
    runs: BTreeMap<u64, Run>,
    /// The event index at which each record was first processed successfully.
    processed_at: BTreeMap<(ShardId, SequenceNumber), usize>,
    /// Each lease, per epoch and holder: every time the store granted it (a take, a handoff,
    /// a renewal) as event index, time and the expiry it set.
    grants: BTreeMap<Holding, Vec<Grant>>,
    /// The event index and time at which each holding was released.
    releases: BTreeMap<Holding, (usize, Duration)>,
    /// When each generation of a shard's lease was deleted.
    deletions: BTreeMap<(ShardId, u64), Duration>,
    /// The time of the last event.
    end: Duration,
}

/// A lease at one epoch, as its holder: shard, the lease's generation (a lease deleted and
/// created again starts over at epoch 0), epoch, worker.
type Holding = (ShardId, u64, u64, WorkerName);

struct Grant {
    index: usize,
    at: Duration,
    expires: Duration,
}

impl Facts {
    fn gather(events: &[(Duration, Event)]) -> Facts {
        let mut facts = Facts {
            acked: BTreeMap::new(),
            expiries: BTreeMap::new(),
            lost: BTreeMap::new(),
            parents: BTreeMap::new(),
            runs: BTreeMap::new(),
            processed_at: BTreeMap::new(),
            grants: BTreeMap::new(),
            releases: BTreeMap::new(),
            deletions: BTreeMap::new(),
            end: events.last().map_or(Duration::ZERO, |(at, _)| *at),
        };
        // Each lease's committed checkpoint as the store has it, and how many times it was
        // created, event by event.
        let mut stored: BTreeMap<ShardId, Checkpoint> = BTreeMap::new();
        let mut generations: BTreeMap<ShardId, u64> = BTreeMap::new();
        for (index, (at, event)) in events.iter().enumerate() {
            match event {
                Event::LeaseCreated {
                    shard, checkpoint, ..
                } => {
                    stored.insert(shard.clone(), checkpoint.clone());
                    *generations.entry(shard.clone()).or_default() += 1;
                }
                Event::LeaseCheckpointed {
                    shard, checkpoint, ..
                } => {
                    stored.insert(shard.clone(), checkpoint.clone());
                }
                Event::LeaseDeleted { shard } => {
                    stored.remove(shard);
                    let generation = generations.get(shard).copied().unwrap_or_default();
                    facts.deletions.insert((shard.clone(), generation), *at);
                }
                _ => {}
            }
            match event {
                Event::Acked {
                    shard,
                    sequence_number,
                } => facts
                    .acked
                    .entry(shard.clone())
                    .or_default()
                    .push(sequence_number.clone()),
                Event::RetentionEnforced { expired } => {
                    for (shard, expiry) in expired {
                        facts
                            .expiries
                            .entry(shard.clone())
                            .or_default()
                            .push((*at, expiry.clone()));
                    }
                }
                Event::EngineRestarted { lost } => {
                    for record in lost {
                        facts.lost.entry(record.clone()).or_insert(*at);
                    }
                }
                Event::ShardCreated { shard, parents } => {
                    facts.parents.insert(shard.clone(), parents.clone());
                }
                Event::ProcessorCreated { run, worker, shard } => {
                    facts.runs.insert(
                        *run,
                        Run {
                            worker: worker.clone(),
                            shard: shard.clone(),
                            created: *at,
                            dropped: None,
                            start: None,
                            behind: None,
                            deliveries: Vec::new(),
                        },
                    );
                }
                Event::Initialized { run, checkpoint } => {
                    if let Some(run) = facts.runs.get_mut(run) {
                        run.start = Some(checkpoint.clone());
                        run.behind = stored
                            .get(&run.shard)
                            .filter(|now| *now != checkpoint && now.may_follow(checkpoint))
                            .cloned();
                    }
                }
                Event::Delivered {
                    run,
                    epoch,
                    records,
                } => {
                    if let Some(run) = facts.runs.get_mut(run) {
                        run.deliveries.push(Delivery {
                            index,
                            at: *at,
                            generation: generations.get(&run.shard).copied().unwrap_or_default(),
                            epoch: *epoch,
                            records: records.clone(),
                            processed: false,
                        });
                    }
                }
                Event::Processed { run } => {
                    if let Some(run) = facts.runs.get_mut(run)
                        && let Some(delivery) = run.deliveries.last_mut()
                    {
                        delivery.processed = true;
                        for record in &delivery.records {
                            facts
                                .processed_at
                                .entry((run.shard.clone(), record.clone()))
                                .or_insert(index);
                        }
                    }
                }
                Event::ProcessorDropped { run } => {
                    if let Some(run) = facts.runs.get_mut(run) {
                        run.dropped = Some(*at);
                    }
                }
                Event::LeaseTaken {
                    shard,
                    owner,
                    epoch,
                    expires,
                    ..
                }
                | Event::LeaseRenewed {
                    shard,
                    owner,
                    epoch,
                    expires,
                }
                | Event::LeaseHandedOver {
                    shard,
                    to: owner,
                    epoch,
                    expires,
                } => facts
                    .grants
                    .entry(holding(&generations, shard, *epoch, owner))
                    .or_default()
                    .push(Grant {
                        index,
                        at: *at,
                        expires: *expires,
                    }),
                Event::LeaseReleased {
                    shard,
                    owner,
                    epoch,
                } => {
                    facts
                        .releases
                        .entry(holding(&generations, shard, *epoch, owner))
                        .or_insert((index, *at));
                }
                _ => {}
            }
        }
        facts
    }

    /// True if retention had removed `record` of `shard` by `at`, or an engine crash had lost
    /// it: either way, nobody owes it.
    fn expired(&self, shard: &ShardId, record: &SequenceNumber, at: Duration) -> bool {
        let lost = self
            .lost
            .get(&(shard.clone(), record.clone()))
            .is_some_and(|&when| when <= at);
        lost || self.expiries.get(shard).is_some_and(|expiries| {
            expiries
                .iter()
                .take_while(|(when, _)| *when <= at)
                .any(|(_, expiry)| match expiry {
                    Expiry::Removed => true,
                    Expiry::Below(first_kept) => record < first_kept,
                })
        })
    }

    /// Why `next` cannot follow `after` (the start of the shard if `None`) in a delivery at
    /// `at`: it is not a record of the shard, it is not after `after`, or acknowledged records
    /// between the two were skipped while retention still kept them. (A record read before
    /// retention removed it may still be delivered: only skipping needs an excuse.)
    fn gap(
        &self,
        shard: &ShardId,
        after: Option<&SequenceNumber>,
        next: &SequenceNumber,
        at: Duration,
    ) -> Option<String> {
        let acked = self.acked.get(shard).map_or(&[][..], Vec::as_slice);
        let Ok(position) = acked.binary_search(next) else {
            return Some(format!("{next} was never acknowledged on {shard}"));
        };
        let from = match after {
            Some(after) if next <= after => {
                return Some(format!("{next} does not come after {after}"));
            }
            Some(after) => acked.partition_point(|record| record <= after),
            None => 0,
        };
        acked[from..position]
            .iter()
            .find(|skipped| !self.expired(shard, skipped, at))
            .map(|skipped| format!("{skipped} was skipped"))
    }

    fn at_least_once(&self) -> Vec<Violation> {
        let mut missing = Vec::new();
        for (shard, records) in &self.acked {
            // A sequence number, once seen, names one record: a number given twice hides one.
            if let Some(pair) = records.windows(2).find(|pair| pair[1] <= pair[0]) {
                missing.push(format!(
                    "{shard} acknowledged {} after {}: a number given again or going back",
                    pair[1], pair[0]
                ));
            }
            let lost: Vec<&SequenceNumber> = records
                .iter()
                .filter(|record| {
                    !self
                        .processed_at
                        .contains_key(&(shard.clone(), (*record).clone()))
                        && !self.expired(shard, record, Duration::MAX)
                })
                .collect();
            if let (Some(first), Some(last)) = (lost.first(), lost.last()) {
                missing.push(format!(
                    "{} acknowledged records of {shard} never processed successfully, {first} to {last}",
                    lost.len()
                ));
            }
        }
        summarize(Invariant::AtLeastOnce, missing)
    }

    fn order_within_runs(&self) -> Vec<Violation> {
        let mut broken = Vec::new();
        for (id, run) in &self.runs {
            let shard = &run.shard;
            if let (Some(start), Some(stored)) = (&run.start, &run.behind) {
                broken.push(format!(
                    "run {id} ({} on {shard}) started from {start} while the lease's checkpoint was {stored}",
                    run.worker
                ));
            }
            let mut previous: Option<&Delivery> = None;
            for delivery in &run.deliveries {
                let Some(first) = delivery.records.first() else {
                    continue;
                };
                let describe = |why: String| {
                    format!(
                        "run {id} ({} on {shard}, epoch {}) at {}: {why}",
                        run.worker,
                        delivery.epoch,
                        seconds(delivery.at)
                    )
                };
                let gap = match previous {
                    // A failed batch comes again as it was.
                    Some(last) if last.records == delivery.records => {
                        if last.processed {
                            broken.push(describe(format!(
                                "the batch from {first} came again after it was processed"
                            )));
                        }
                        None
                    }
                    Some(last) => self
                        .gap(shard, last.records.last(), first, delivery.at)
                        .map(|why| {
                            format!("after the batch ending {:?}: {why}", last.records.last())
                        }),
                    None => match &run.start {
                        Some(Checkpoint::Sequence(after)) => self
                            .gap(shard, Some(after), first, delivery.at)
                            .map(|why| format!("starting after checkpoint {after}: {why}")),
                        Some(Checkpoint::TrimHorizon) => self
                            .gap(shard, None, first, delivery.at)
                            .map(|why| format!("starting at TRIM_HORIZON: {why}")),
                        // Where LATEST and AT_TIMESTAMP start is the engine's to say.
                        _ => None,
                    },
                };
                let inside = delivery.records.windows(2).find_map(|pair| {
                    self.gap(shard, Some(&pair[0]), &pair[1], delivery.at)
                        .map(|why| format!("inside a batch: {why}"))
                });
                broken.extend(gap.into_iter().chain(inside).map(describe));
                previous = Some(delivery);
            }
        }
        summarize(Invariant::OrderWithinRun, broken)
    }

    /// The records that must be processed before any record of `shard`: each parent's last
    /// record, or, for a parent that got no records, its own parents' (and so on).
    fn must_precede(&self, shard: &ShardId) -> Vec<(ShardId, SequenceNumber)> {
        let mut required = Vec::new();
        let mut pending: Vec<&ShardId> = self.parents.get(shard).into_iter().flatten().collect();
        let mut seen = BTreeSet::new();
        while let Some(parent) = pending.pop() {
            if !seen.insert(parent) {
                continue;
            }
            match self.acked.get(parent).and_then(|records| records.last()) {
                Some(last) => required.push((parent.clone(), last.clone())),
                None => pending.extend(self.parents.get(parent).into_iter().flatten()),
            }
        }
        required
    }

    fn parents_before_children(&self) -> Vec<Violation> {
        let mut broken = Vec::new();
        let mut reported = BTreeSet::new();
        for (id, run) in &self.runs {
            let required = self.must_precede(&run.shard);
            for delivery in &run.deliveries {
                for (parent, last) in &required {
                    let done = self
                        .processed_at
                        .get(&(parent.clone(), last.clone()))
                        .is_some_and(|&at| at < delivery.index);
                    if !done
                        && !self.expired(parent, last, delivery.at)
                        && reported.insert((run.shard.clone(), parent.clone()))
                    {
                        broken.push(format!(
                            "run {id} ({} on {}) got records at {} before {parent}'s last record {last} was processed",
                            run.worker,
                            run.shard,
                            seconds(delivery.at)
                        ));
                    }
                }
            }
        }
        // And once a child got records, its parents get none again.
        let first_delivery: BTreeMap<&ShardId, (usize, Duration)> =
            self.runs.values().fold(BTreeMap::new(), |mut first, run| {
                if let Some(delivery) = run.deliveries.first() {
                    let earliest = first
                        .entry(&run.shard)
                        .or_insert((delivery.index, delivery.at));
                    if delivery.index < earliest.0 {
                        *earliest = (delivery.index, delivery.at);
                    }
                }
                first
            });
        for (child, parents) in &self.parents {
            let Some(&(child_index, child_at)) = first_delivery.get(child) else {
                continue;
            };
            for parent in parents {
                let late = self
                    .runs
                    .iter()
                    .filter(|(_, run)| &run.shard == parent)
                    .flat_map(|(id, run)| run.deliveries.iter().map(move |d| (id, run, d)))
                    .find(|(_, _, delivery)| delivery.index > child_index);
                if let Some((id, run, delivery)) = late
                    && reported.insert((child.clone(), parent.clone()))
                {
                    broken.push(format!(
                        "run {id} ({} on {parent}) got records at {} after its child {child} got records at {}",
                        run.worker,
                        seconds(delivery.at),
                        seconds(child_at)
                    ));
                }
            }
        }
        summarize(Invariant::ParentBeforeChild, broken)
    }

    /// When the store stopped counting `holding` as its holder's: released, taken at a later
    /// epoch, deleted, or the end of the run.
    fn holding_ended(&self, holding: &Holding) -> Duration {
        let (shard, generation, epoch, _) = holding;
        let taken_over = self
            .grants
            .iter()
            .filter(|((s, g, e, _), _)| s == shard && g == generation && e > epoch)
            .filter_map(|(_, grants)| grants.first().map(|grant| grant.at));
        self.releases
            .get(holding)
            .map(|&(_, at)| at)
            .into_iter()
            .chain(taken_over)
            .chain(self.deletions.get(&(shard.clone(), *generation)).copied())
            .fold(self.end, Duration::min)
    }

    /// No stretch of time longer than a lease duration (and `slack`, for a renewal sent just
    /// before its consumer ended that lands a store-call deadline later) in which the store
    /// held a lease for a worker (granted, renewed, not yet expired, released or taken over)
    /// while that worker had no consumer for its shard.
    fn held_without_consumer(&self, lease: Duration, slack: Duration) -> Vec<Violation> {
        let mut broken = Vec::new();
        for (holding, grants) in &self.grants {
            let (shard, _, epoch, owner) = holding;
            let ended = self.holding_ended(holding);
            let held = merged(
                grants
                    .iter()
                    .map(|grant| (grant.at, grant.expires.min(ended)))
                    .collect(),
            );
            let consumed = merged(
                self.runs
                    .values()
                    .filter(|run| &run.worker == owner && &run.shard == shard)
                    .map(|run| (run.created, run.dropped.unwrap_or(Duration::MAX)))
                    .collect(),
            );
            let unconsumed = held
                .iter()
                .flat_map(|&window| uncovered(window, &consumed))
                .find(|(from, to)| to.saturating_sub(*from) > lease + slack);
            if let Some((from, to)) = unconsumed {
                broken.push(format!(
                    "{owner} held {shard} (epoch {epoch}) from {} to {} with no consumer",
                    seconds(from),
                    seconds(to)
                ));
            }
        }
        summarize(Invariant::HeldWithoutConsumer, broken)
    }

    fn deliveries_past_validity(&self) -> Vec<Violation> {
        let mut broken = Vec::new();
        for (id, run) in &self.runs {
            for delivery in &run.deliveries {
                let lease = (
                    run.shard.clone(),
                    delivery.generation,
                    delivery.epoch,
                    run.worker.clone(),
                );
                let valid_until = self.grants.get(&lease).and_then(|grants| {
                    grants
                        .iter()
                        .filter(|grant| grant.index < delivery.index)
                        .map(|grant| grant.expires)
                        .max()
                });
                let released = self
                    .releases
                    .get(&lease)
                    .is_some_and(|&(index, _)| index < delivery.index);
                let why = if released {
                    Some("after releasing it".to_owned())
                } else {
                    match valid_until {
                        None => Some("never holding it".to_owned()),
                        Some(until) if delivery.at >= until => {
                            Some(format!("after it expired at {}", seconds(until)))
                        }
                        Some(_) => None,
                    }
                };
                if let Some(why) = why {
                    broken.push(format!(
                        "run {id} ({} on {}) got a batch at {} on epoch {} {why}",
                        run.worker,
                        run.shard,
                        seconds(delivery.at),
                        delivery.epoch
                    ));
                }
            }
        }
        summarize(Invariant::DeliveryPastValidity, broken)
    }
}

/// Time windows, sorted and with overlapping ones joined.
fn merged(mut windows: Vec<(Duration, Duration)>) -> Vec<(Duration, Duration)> {
    windows.retain(|(from, to)| from < to);
    windows.sort();
    let mut joined: Vec<(Duration, Duration)> = Vec::new();
    for (from, to) in windows {
        match joined.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => joined.push((from, to)),
        }
    }
    joined
}

/// The parts of `window` that no window of `covers` (sorted, joined) covers.
fn uncovered(
    window: (Duration, Duration),
    covers: &[(Duration, Duration)],
) -> Vec<(Duration, Duration)> {
    let (mut from, to) = window;
    let mut gaps = Vec::new();
    for &(start, end) in covers {
        if end <= from || start >= to {
            continue;
        }
        if start > from {
            gaps.push((from, start));
        }
        from = from.max(end);
    }
    if from < to {
        gaps.push((from, to));
    }
    gaps
}

fn holding(
    generations: &BTreeMap<ShardId, u64>,
    shard: &ShardId,
    epoch: u64,
    owner: &WorkerName,
) -> Holding {
    let generation = generations.get(shard).copied().unwrap_or_default();
    (shard.clone(), generation, epoch, owner.clone())
}

fn non_owner_checkpoints(events: &[(Duration, Event)]) -> Vec<Violation> {
    let broken = events
        .iter()
        .filter_map(|(at, event)| match event {
            Event::CheckpointByNonOwner {
                shard,
                fence,
                holder,
            } => Some(format!(
                "the store accepted a checkpoint of {shard} from {fence} at {} while it was {holder}",
                seconds(*at)
            )),
            _ => None,
        })
        .collect();
    summarize(Invariant::CheckpointFromNonOwner, broken)
}
