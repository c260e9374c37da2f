//! What a seed sets up: the cluster, the workers' settings, the load and the faults.

use std::time::Duration;

use kcl_core::worker::{InitialPosition, WorkerConfig};

use crate::faults::FaultRates;
use crate::rng::SimRng;

/// Everything about one simulated run that its seed decides before it starts. Kept small (a few
/// workers and shards, tens of virtual seconds) so that thousands of seeds run in minutes.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The seed everything is drawn from.
    pub seed: u64,
    /// How many workers run at once (each may crash and restart).
    pub workers: usize,
    /// How many shards the stream starts with.
    pub shards: u64,
    /// The most shards open at once; splits stop there.
    pub max_open_shards: usize,
    /// The workers' settings.
    pub config: WorkerConfig,
    /// How long an engine reader waits for records on an idle shard.
    pub read_wait: Duration,
    /// How long faults strike.
    pub chaos: Duration,
    /// The shortest and longest wait between the producer's writes.
    pub write_gap: (Duration, Duration),
    /// The shortest and longest wait between the nemesis's steps.
    pub nemesis_gap: (Duration, Duration),
    /// Which faults strike, and how often.
    pub faults: FaultRates,
}

impl Scenario {
    /// The scenario of `seed`, and the generator, positioned after drawing it, that the run
    /// goes on with.
    pub(crate) fn draw(seed: u64) -> (Scenario, SimRng) {
        let rng = SimRng::new(seed);
        let ms = Duration::from_millis;
        let lease = rng.duration(ms(1_000), ms(4_000));
        let batch = rng.within(1..40) as usize;
        let initial_position = if rng.chance(0.7) {
            InitialPosition::TrimHorizon
        } else {
            InitialPosition::Latest
        };
        let initial_backoff = rng.duration(ms(20), ms(200));
        let config = WorkerConfig::default()
            .lease_duration(lease)
            .taker_interval(rng.duration(lease / 6, lease / 2))
            .handoff_timeout(rng.duration(lease / 4, lease))
            .shard_sync_interval(rng.duration(ms(2_000), ms(20_000)))
            .max_records_per_batch(batch)
            .prefetch(batch * rng.within(1..4) as usize, 1 << 20)
            .initial_position(initial_position)
            .backoff(initial_backoff, rng.duration(ms(500), ms(2_000)));
        let scenario = Scenario {
            seed,
            workers: rng.within(2..5) as usize,
            shards: rng.within(1..5),
            max_open_shards: 8,
            config,
            read_wait: rng.duration(ms(100), ms(500)),
            chaos: rng.duration(ms(10_000), ms(30_000)),
            write_gap: (ms(5), rng.duration(ms(20), ms(150))),
            nemesis_gap: (ms(100), rng.duration(ms(500), ms(3_000))),
            faults: FaultRates::draw(&rng),
        };
        (scenario, rng)
    }

    /// True if the engine runs on a simulated disk (so that a crash can lose its unsynced
    /// tail); in memory otherwise, which is faster.
    pub(crate) fn durable_engine(&self) -> bool {
        self.faults.crashes_engine()
    }

    /// How long the cluster gets, once faults stop, to process everything and balance.
    pub(crate) fn settle_limit(&self) -> Duration {
        self.config.shard_sync_interval * 2
            + self.config.lease_duration * 10
            + self.config.max_backoff * 4
    }
}
