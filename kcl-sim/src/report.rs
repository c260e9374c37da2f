//! Running seeds and reporting on them: one seed with its trace, or many with a summary.

use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::Hasher;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::checks::{Invariant, Violation};
use crate::faults::FaultKind;
use crate::processor::silence_injected_panics;
use crate::scenario::Scenario;
use crate::simulation::simulate;
use crate::takeover::Takeovers;

/// How one seed went.
#[derive(Debug, Clone)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// What the seed set up.
    pub scenario: Scenario,
    /// The guarantees it broke; empty if it passed.
    pub violations: Vec<Violation>,
    /// Everything that happened, one event per line on virtual time.
    pub trace: String,
    /// A digest of the trace: two runs of a seed are identical if their digests match.
    pub digest: u64,
    /// The faults injected, by kind.
    pub injected: BTreeMap<FaultKind, u64>,
    /// How soon the leases of crashed, paused and revoked workers were taken over.
    pub takeovers: Takeovers,
    /// Virtual time simulated.
    pub virtual_time: Duration,
    /// Real time it took.
    pub real_time: Duration,
}

impl SeedReport {
    /// True if no guarantee was broken.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The command that replays this seed and prints its trace.
    pub fn replay_command(&self) -> String {
        replay_command(self.seed)
    }
}

/// The command that replays `seed` and prints its trace.
pub fn replay_command(seed: u64) -> String {
    format!(
        "KCL_SIM_SEEDS={seed} KCL_SIM_TRACE=1 cargo test -p kcl-sim --test seeds -- --nocapture"
    )
}

impl fmt::Display for SeedReport {
    /// The failure as a failing seed prints itself: the seed, what broke, how to replay it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed() {
            return write!(f, "seed {} passed", self.seed);
        }
        writeln!(f, "seed {} FAILED:", self.seed)?;
        for violation in &self.violations {
            writeln!(f, "  {violation}")?;
        }
        writeln!(f, "  scenario: {:?}", self.scenario)?;
        write!(f, "  replay: {}", self.replay_command())
    }
}

/// Runs one seed on its own paused-clock, current-thread runtime.
pub fn run_seed(seed: u64) -> SeedReport {
    silence_injected_panics();
    let started = Instant::now();
    let (scenario, rng) = Scenario::draw(seed);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build();
    let (violations, trace, injected, takeovers, virtual_time) = match runtime {
        Ok(runtime) => {
            let simulated = runtime.block_on(simulate(&scenario, rng));
            // The workers' tasks are dropped with the runtime, after the history closed.
            drop(runtime);
            (
                simulated.violations,
                simulated.history.trace(),
                simulated.injected,
                simulated.takeovers,
                simulated.virtual_time,
            )
        }
        Err(error) => (
            vec![Violation::new(
                Invariant::Harness,
                format!("building the runtime: {error}"),
            )],
            String::new(),
            BTreeMap::new(),
            Takeovers::default(),
            Duration::ZERO,
        ),
    };
    let mut hasher = DefaultHasher::new();
    hasher.write(trace.as_bytes());
    SeedReport {
        seed,
        scenario,
        violations,
        digest: hasher.finish(),
        trace,
        injected,
        takeovers,
        virtual_time,
        real_time: started.elapsed(),
    }
}

/// What many seeds came to.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// The seeds that failed, in seed order, without their traces.
    pub failures: Vec<SeedReport>,
    /// Faults injected over all seeds, by kind.
    pub injected: BTreeMap<FaultKind, u64>,
    /// Takeovers over all seeds, by cause.
    pub takeovers: Takeovers,
    /// Virtual time simulated over all seeds.
    pub virtual_time: Duration,
    /// Real time the whole run took.
    pub real_time: Duration,
}

impl Summary {
    /// How many failing seeds broke each guarantee.
    pub fn failures_by_invariant(&self) -> BTreeMap<Invariant, u64> {
        let mut by = BTreeMap::new();
        for failure in &self.failures {
            let broken: std::collections::BTreeSet<Invariant> =
                failure.violations.iter().map(|v| v.invariant).collect();
            for invariant in broken {
                *by.entry(invariant).or_default() += 1;
            }
        }
        by
    }
}

impl fmt::Display for Summary {
    /// One line: seeds, failures, faults by kind, takeovers by cause, virtual and real time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let real = self.real_time.as_secs_f64();
        write!(
            f,
            "kcl-sim: {} seeds, {} failed {:?}; faults injected {:?}; takeovers {}; virtual {:.0}s, real {:.1}s ({:.1} seeds/s)",
            self.seeds,
            self.failures.len(),
            self.failures_by_invariant(),
            self.injected,
            self.takeovers,
            self.virtual_time.as_secs_f64(),
            real,
            if real > 0.0 {
                self.seeds as f64 / real
            } else {
                0.0
            },
        )
    }
}

/// Runs every seed of `seeds` on `threads` threads (each seed on its own runtime, so threads
/// share nothing) and sums them up.
pub fn run_seeds(seeds: Range<u64>, threads: usize) -> Summary {
    let started = Instant::now();
    let next = AtomicU64::new(seeds.start);
    let summary = Mutex::new(Summary::default());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if seed >= seeds.end {
                        return;
                    }
                    let mut report = run_seed(seed);
                    let mut summary = summary
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    summary.seeds += 1;
                    summary.virtual_time += report.virtual_time;
                    for (kind, count) in &report.injected {
                        *summary.injected.entry(*kind).or_default() += count;
                    }
                    summary.takeovers.add(&report.takeovers, seed);
                    if !report.passed() {
                        report.trace = String::new();
                        summary.failures.push(report);
                    }
                }
            });
        }
    });
    let mut summary = summary
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    summary.failures.sort_by_key(|failure| failure.seed);
    summary.real_time = started.elapsed();
    summary
}
