//! The faults a simulation injects: their kinds, the rates a seed gives them, and the count of
//! those injected.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use kcl_core::{LeaseStoreFault, LeaseStoreOp};

use crate::rng::SimRng;

/// Every kind of fault, by where it strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// A lease store call answers "unavailable" without reaching the store.
    StoreUnavailable,
    /// A lease store call hangs until the nemesis heals the worker's connection.
    StoreHang,
    /// A lease store write happens and its reply is lost.
    StoreReplyLost,
    /// Listing the stream's shards fails.
    ListShardsError,
    /// Pinning where `LATEST` is on a shard fails.
    PinLatestError,
    /// Opening a shard reader fails.
    OpenReaderError,
    /// A read fails as unavailable.
    ReadError,
    /// A read fails with an expired iterator.
    ExpiredIterator,
    /// A read is throttled.
    Throttled,
    /// The processor factory panics.
    FactoryPanic,
    /// `initialize` returns an error.
    InitializeError,
    /// `initialize` panics.
    InitializePanic,
    /// `process_records` returns an error.
    ProcessError,
    /// `process_records` panics.
    ProcessPanic,
    /// A callback takes its time (up to two lease durations).
    SlowProcessor,
    /// `shard_ended` returns an error before checkpointing.
    ShardEndedError,
    /// `shard_ended` panics before checkpointing.
    ShardEndedPanic,
    /// `shard_ended` returns without checkpointing `SHARD_END`.
    ShardEndedWithoutCheckpoint,
    /// `shutdown_requested` returns an error before checkpointing.
    ShutdownRequestedError,
    /// `shutdown_requested` panics before checkpointing.
    ShutdownRequestedPanic,
    /// `lease_lost` panics.
    LeaseLostPanic,
    /// A worker is aborted, as a killed process (restarted later).
    Crash,
    /// A worker shuts down gracefully (restarted later).
    Shutdown,
    /// A worker's tasks stop at their next call into the store, the stream or the processor,
    /// for up to three lease durations, as a stopped process.
    Pause,
    /// A running worker's liveness hold ends while its process lives, as when PostgreSQL
    /// terminates the hold's session: the other workers see it dead at once and take its
    /// leases, and it stops delivering, holds liveness again and takes back what nobody took.
    LivenessRevoked,
    /// Every lease store call of one worker hangs for a while: a black-holed connection.
    StoreBlackout,
    /// An open shard is split.
    Split,
    /// Two adjacent open shards are merged.
    Merge,
    /// Several splits and merges in a row, faster than shard sync.
    ReshardChain,
    /// The engine's clock jumps so that retention expires all but the newest records and the
    /// shards closed before them.
    Retention,
    /// The engine's machine loses power: what no fsync made durable is lost, and the engine is
    /// reopened from its disk. (Seeds with this fault run the engine on a simulated disk.)
    EngineCrash,
}

impl FaultKind {
    /// Faults drawn call by call, with the highest rate a seed may give them.
    const PER_CALL: [(FaultKind, f64); 21] = [
        (FaultKind::StoreUnavailable, 0.05),
        (FaultKind::StoreHang, 0.01),
        (FaultKind::StoreReplyLost, 0.03),
        (FaultKind::ListShardsError, 0.2),
        (FaultKind::PinLatestError, 0.2),
        (FaultKind::OpenReaderError, 0.1),
        (FaultKind::ReadError, 0.05),
        (FaultKind::ExpiredIterator, 0.05),
        (FaultKind::Throttled, 0.1),
        (FaultKind::FactoryPanic, 0.05),
        (FaultKind::InitializeError, 0.1),
        (FaultKind::InitializePanic, 0.05),
        (FaultKind::ProcessError, 0.1),
        (FaultKind::ProcessPanic, 0.05),
        (FaultKind::SlowProcessor, 0.05),
        (FaultKind::ShardEndedError, 0.2),
        (FaultKind::ShardEndedPanic, 0.1),
        (FaultKind::ShardEndedWithoutCheckpoint, 0.2),
        (FaultKind::ShutdownRequestedError, 0.2),
        (FaultKind::ShutdownRequestedPanic, 0.1),
        (FaultKind::LeaseLostPanic, 0.3),
    ];

    /// Faults the nemesis makes, one per step, chosen among those a seed enables.
    pub(crate) const NEMESIS: [FaultKind; 10] = [
        FaultKind::Crash,
        FaultKind::Shutdown,
        FaultKind::Pause,
        FaultKind::StoreBlackout,
        FaultKind::Split,
        FaultKind::Merge,
        FaultKind::ReshardChain,
        FaultKind::Retention,
        FaultKind::EngineCrash,
        FaultKind::LivenessRevoked,
    ];
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Which faults a seed turns on, and how often the per-call ones strike. As FoundationDB's
/// BUGGIFY, each kind is on in about half the seeds, so that some seeds test each fault alone
/// and others pile them up.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRates {
    per_call: BTreeMap<FaultKind, f64>,
    nemesis: Vec<FaultKind>,
}

impl FaultRates {
    pub(crate) fn draw(rng: &SimRng) -> Self {
        let per_call = FaultKind::PER_CALL
            .iter()
            .filter(|_| rng.chance(0.5))
            .map(|&(kind, max)| (kind, rng.rate(max)))
            .collect();
        let nemesis = FaultKind::NEMESIS
            .into_iter()
            .filter(|_| rng.chance(0.5))
            .collect();
        FaultRates { per_call, nemesis }
    }

    /// The nemesis's faults that this seed enables.
    pub(crate) fn nemesis(&self) -> &[FaultKind] {
        &self.nemesis
    }

    /// True if the nemesis may crash the engine's machine.
    pub(crate) fn crashes_engine(&self) -> bool {
        self.nemesis.contains(&FaultKind::EngineCrash)
    }
}

/// Draws the per-call faults of one seed and counts every fault injected. Faults stop for good
/// when the chaos phase ends.
#[derive(Debug)]
pub(crate) struct Faults {
    rng: SimRng,
    rates: FaultRates,
    active: AtomicBool,
    injected: Mutex<BTreeMap<FaultKind, u64>>,
}

impl Faults {
    pub(crate) fn new(rng: SimRng, rates: FaultRates) -> Self {
        Faults {
            rng,
            rates,
            active: AtomicBool::new(true),
            injected: Mutex::new(BTreeMap::new()),
        }
    }

    /// True (and counted) if a fault of `kind` strikes this call.
    pub(crate) fn draw(&self, kind: FaultKind) -> bool {
        let Some(&rate) = self.rates.per_call.get(&kind) else {
            return false;
        };
        let strikes = self.is_active() && self.rng.chance(rate);
        if strikes {
            self.count(kind);
        }
        strikes
    }

    /// The fault for one lease store call, if any. Every operation draws, the liveness ones
    /// included: a `hold_liveness` whose reply is lost leaves a hold that died with its answer
    /// (the worker is seen dead while it lives), and a failing or hanging `dead_workers` delays
    /// the death watch.
    pub(crate) fn store_fault(&self, op: LeaseStoreOp) -> Option<LeaseStoreFault> {
        if self.draw(FaultKind::StoreUnavailable) {
            Some(LeaseStoreFault::Unavailable)
        } else if op.is_write() && self.draw(FaultKind::StoreReplyLost) {
            Some(LeaseStoreFault::ReplyLost)
        } else if self.draw(FaultKind::StoreHang) {
            Some(LeaseStoreFault::Hang)
        } else {
            None
        }
    }

    /// Counts a fault the nemesis made.
    pub(crate) fn count(&self, kind: FaultKind) {
        *self
            .injected
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// Ends the chaos: no fault strikes from now on.
    pub(crate) fn stop(&self) {
        self.active.store(false, Ordering::SeqCst);
    }

    /// The faults injected so far, by kind.
    pub(crate) fn injected(&self) -> BTreeMap<FaultKind, u64> {
        self.injected
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}
