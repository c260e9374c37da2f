//! Deterministic simulation of kcl-rs: whole clusters in one process, on virtual time, every
//! fault drawn from a seed, every guarantee checked after each seed.
//!
//! ```
//! // One seed: a few workers on one stream that is written, split and merged, with crashes,
//! // pauses, store and reader faults and failing processors, then a calm to settle in.
//! let report = kcl_sim::run_seed(7);
//! let again = kcl_sim::run_seed(7);
//! assert_eq!(report.digest, again.digest, "a seed replays identically");
//! // A failing seed prints what broke and the command that replays it.
//! println!("{report}");
//! ```
//!
//! # What one seed does
//!
//! The seed draws a [`Scenario`]: two to four workers ([`kcl_core::worker::Worker`]), a stream
//! of one to four shards in the in-memory [`kcl_engine::Engine`], the workers' settings (lease
//! duration, taker and shard-sync intervals, batch sizes, LATEST or TRIM_HORIZON), and which
//! faults strike how often ([`FaultRates`]: each kind is on in about half the seeds, as
//! FoundationDB's BUGGIFY, so that faults are met alone as well as piled up).
//!
//! Every worker has its own fault injectors in front of what is shared:
//! - the lease store: [`kcl_core::FaultInjectingLeaseStore`] (errors, hangs, lost replies)
//!   around one `InMemoryLeaseStore` that records every write it applies;
//! - the stream: the engine behind reader errors, expired iterators and throttling;
//! - the application: a processor that records every call and fails, panics or dawdles in any
//!   callback (and its factory panics), checkpointing in each of the ways the API offers.
//!
//! A producer writes at random; a nemesis splits and merges (chains of them faster than shard
//! sync), crashes workers (abort, which drops the worker's liveness hold, so the others take its
//! leases at once), shuts them down gracefully, restarts them, pauses them (a paused worker keeps
//! its hold, so its leases wait for expiry), revokes a running worker's liveness hold (as
//! PostgreSQL terminating the hold's session), cuts them off from the store, moves the engine's
//! clock a day on so that retention expires old records and closed shards, and cuts the engine's
//! power: seeds with that fault run the engine on a [`kcl_engine::SimulatedDisk`], fsynced at
//! moments the seed picks, so a crash loses the tail written since and the engine reopens from
//! what the disk kept. Then faults stop, every worker comes back, and the cluster gets a bounded
//! time to process everything and balance.
//!
//! The checks ([`Invariant`]): every acknowledged record not expired by retention (nor lost to
//! a power cut) processed successfully at least once, and no sequence number given twice;
//! order within each processor's run, from the lease's stored checkpoint; parent before child
//! on every lineage edge; no checkpoint accepted from a non-owner; no lease held longer than a
//! lease duration without a live consumer; no delivery on a lease past its expiry; eventual
//! balance.
//!
//! # Running seeds
//!
//! The `seeds` test runs 500 seeds (`KCL_SIM_SEEDS=a..b` for others, e.g. `0..100000` with
//! `--release` for the long run) and prints a summary line: the faults injected, and how soon
//! other workers took the leases of crashed, paused and revoked workers ([`Takeovers`]: a
//! figure, not a check). A failing seed prints itself and the command that replays it with its
//! trace:
//! `KCL_SIM_SEEDS=<seed> KCL_SIM_TRACE=1 cargo test -p kcl-sim --test seeds -- --nocapture`.
//!
//! # The mechanism, and why
//!
//! FoundationDB's simulator and TigerBeetle's VOPR run the real code in one thread, with time,
//! disk, network and randomness all behind interfaces the simulator drives from one seed, so a
//! failure replays exactly. Rust has two well-kept crates for this: madsim replaces tokio (and
//! the crates around it) with a simulated runtime, so the code under test is built against it
//! through patched dependencies; turmoil simulates hosts and a network on top of tokio.
//!
//! This simulation uses neither, but tokio's own paused clock (a current-thread runtime built
//! with `start_paused`, feature `test-util`) and seeded wrappers at the seams:
//! - kcl-rs has no network between its parts in a test: the engine, the store and the workers
//!   meet through three traits (`StreamSource`, `LeaseStore`, `RecordProcessor`). Wrapping those
//!   is where every fault of interest lives; turmoil's simulated sockets would add nothing.
//! - madsim would need the workspace's tokio patched for every crate, so the code simulated
//!   would no longer be the code shipped; the seams already let the simulation inject all
//!   faults without it.
//! - The current-thread scheduler runs tasks in the order they are woken, the paused clock
//!   jumps to the next timer when every task waits, and nothing else runs: given the same draws
//!   from the seed, the same run. What that needs from the code under test (tokio time
//!   everywhere, no thread-local randomness, no hash-order iteration, `biased` selects, fixed
//!   worker ids) is the price, checked by replaying seeds and comparing trace digests.
//!
//! A pause cannot stop some tasks of a runtime, so a paused worker is stopped at its seams
//! instead: its store calls, reads and callbacks wait at a gate while its timers still fire.

mod audit;
mod checks;
mod clock;
mod cluster;
mod engine;
mod faults;
mod gate;
mod history;
mod nemesis;
mod processor;
mod producer;
mod report;
mod rng;
mod scenario;
mod simulation;
mod source;
mod takeover;

pub use checks::{Invariant, Violation};
pub use faults::{FaultKind, FaultRates};
pub use report::{SeedReport, Summary, replay_command, run_seed, run_seeds};
pub use scenario::Scenario;
pub use takeover::{TakeoverCause, TakeoverFigures, Takeovers};
