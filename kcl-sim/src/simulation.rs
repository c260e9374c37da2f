//! One simulated run: set up, chaos, calm, settle, check.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kcl_core::{LeaseStore, StreamName};
use kcl_engine::StreamOptions;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::audit::AuditedLeaseStore;
use crate::checks::{self, Invariant, Violation};
use crate::clock::VirtualClock;
use crate::cluster::{Cluster, Shared};
use crate::engine::SimEngine;
use crate::faults::{FaultKind, Faults};
use crate::history::{Event, History};
use crate::rng::SimRng;
use crate::scenario::Scenario;
use crate::takeover::Takeovers;
use crate::{nemesis, producer};

/// What a run leaves behind.
pub(crate) struct Simulated {
    pub(crate) violations: Vec<Violation>,
    pub(crate) history: Arc<History>,
    pub(crate) injected: BTreeMap<FaultKind, u64>,
    pub(crate) takeovers: Takeovers,
    pub(crate) virtual_time: Duration,
}

const STREAM: &str = "sim";

/// Load and faults for the chaos phase, then no faults, every worker back, and time to process
/// everything and balance; then the checks. Runs on a paused-clock current-thread runtime.
pub(crate) async fn simulate(scenario: &Scenario, rng: SimRng) -> Simulated {
    let history = History::new();
    let faults = Arc::new(Faults::new(rng.clone(), scenario.faults.clone()));
    let mut violations = match run(scenario, rng, &history, &faults).await {
        Ok(imbalance) => imbalance.into_iter().collect(),
        Err(error) => vec![Violation::new(Invariant::Harness, error)],
    };
    let virtual_time = history.now();
    history.close();
    let events = history.events();
    violations.extend(checks::check(
        &events,
        scenario.config.lease_duration,
        scenario.config.store_call_deadline(),
    ));
    Simulated {
        violations,
        history,
        injected: faults.injected(),
        takeovers: Takeovers::read(&events),
        virtual_time,
    }
}

/// The run itself; returns the balance violation, if the cluster never settled.
async fn run(
    scenario: &Scenario,
    rng: SimRng,
    history: &Arc<History>,
    faults: &Arc<Faults>,
) -> Result<Option<Violation>, String> {
    let clock = Arc::new(VirtualClock::new());
    let engine = Arc::new(SimEngine::open(
        scenario.durable_engine(),
        scenario.read_wait,
        Arc::clone(&clock) as Arc<dyn kcl_engine::Clock>,
    )?);
    engine
        .current()
        .create_stream(STREAM, StreamOptions::with_shards(scenario.shards))
        .map_err(|error| format!("creating the stream: {error}"))?;
    let stream = StreamName::new(STREAM).map_err(|error| error.to_string())?;
    let store = Arc::new(AuditedLeaseStore::new(Arc::clone(history)));
    let shared = Shared {
        stream: stream.clone(),
        engine: Arc::clone(&engine),
        store: Arc::clone(&store),
        history: Arc::clone(history),
        faults: Arc::clone(faults),
        rng: rng.clone(),
        config: scenario.config.clone(),
    };
    let mut cluster = Cluster::start(shared, scenario.workers)?;
    // Leases created at LATEST start where the stream is when they are created: write only
    // once they exist, so that every record written is one the workers owe.
    let patience = scenario.config.shard_sync_interval * 20;
    let wait_until = Instant::now() + patience;
    while store
        .inner()
        .list_leases(&stream)
        .await
        .map_or(0, |leases| leases.len() as u64)
        < scenario.shards
    {
        if Instant::now() >= wait_until {
            return Ok(Some(Violation::new(
                Invariant::EventualBalance,
                format!(
                    "the stream's {} shards had no leases {:.1}s after the workers started",
                    scenario.shards,
                    patience.as_secs_f64()
                ),
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (stop, stopped) = watch::channel(false);
    let writing = tokio::spawn(producer::produce(
        Arc::clone(&engine),
        STREAM.to_owned(),
        Arc::clone(history),
        rng,
        scenario.clone(),
        stopped,
    ));

    nemesis::run(&mut cluster, scenario, &clock).await?;

    faults.stop();
    history.record(Event::FaultsStopped);
    cluster.calm()?;
    tokio::time::sleep(scenario.config.lease_duration).await;
    let _ = stop.send(true);
    writing
        .await
        .map_err(|error| format!("the producer failed: {error}"))?;

    let deadline = Instant::now() + scenario.settle_limit();
    loop {
        let (waiting, first) = history.unprocessed();
        let unsettled = match (waiting, first) {
            (0, _) => cluster.imbalance().await,
            (waiting, Some((shard, record))) => Some(format!(
                "{waiting} records wait for processing, the first {record} of {shard}"
            )),
            (waiting, None) => Some(format!("{waiting} records wait for processing")),
        };
        match unsettled {
            None => return Ok(None),
            Some(why) if Instant::now() >= deadline => {
                return Ok(Some(Violation::new(
                    Invariant::EventualBalance,
                    format!(
                        "not settled {:.1}s after faults stopped: {why}",
                        scenario.settle_limit().as_secs_f64()
                    ),
                )));
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
