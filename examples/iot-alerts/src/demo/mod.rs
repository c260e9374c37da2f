//! `iot-alerts demo`: everything in one process, nothing to set up. A durable engine and a
//! SQLite lease table in a data directory, a simulated fleet, two workers sharing the shards,
//! a split part-way through, a live status line, and a summary that checks the guarantees.

mod console;
mod console_sink;
mod observed_processor;
mod shard_timeline;
mod summary;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use kcl_core::worker::{
    InitialPosition, RecordProcessor, ShardInfo, Worker, WorkerConfig, WorkerHandle,
};
use kcl_core::{LeaseStore, ShardId};
use kcl_engine::{Engine, EngineConfig, ShardFilter, StreamOptions};
use tokio::sync::watch;

pub use console::Console;
pub use console_sink::ConsoleSink;
pub use observed_processor::ObservedProcessor;
pub use shard_timeline::{ChildStart, ShardHistory, ShardTimeline};
pub use summary::Summary;

use crate::alerting::{
    AlertProcessor, AlertRules, AlertSettings, CheckpointPolicy, ProcessingStats,
};
use crate::commands::{connect_lease_store, parse_duration, parse_rate, shutdown_signal};
use crate::simulation::{EngineWriter, Fleet, FleetConfig, ProducerEvent, produce};

const STREAM: &str = "readings";
const SHARDS: u64 = 4;
const WORKERS: [&str; 2] = ["worker-1", "worker-2"];

/// Arguments of `iot-alerts demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Stop after this long (otherwise at Ctrl-C).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Keep the engine's files and the lease database here (a new run starts over); otherwise
    /// a temporary directory, removed at the end.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Number of sensors.
    #[arg(long, value_name = "N", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    sensors: u64,
    /// Readings per second, all sensors together.
    #[arg(long, value_name = "PER_SECOND", default_value = "2000", value_parser = parse_rate)]
    rate: f64,
    /// The seed of the fleet and its anomalies.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
}

/// Runs the demo; an error if it could not run or a check failed.
pub async fn run(args: DemoArgs) -> Result<(), String> {
    let temporary = match &args.data_dir {
        Some(_) => None,
        None => Some(tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?),
    };
    let dir: PathBuf = match (&args.data_dir, &temporary) {
        (Some(dir), _) => dir.clone(),
        (None, Some(temporary)) => temporary.path().to_path_buf(),
        (None, None) => return Err("no data directory".to_owned()),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let console = Arc::new(Console::default());
    let (engine, store) = start_over(&dir).await?;
    console.line(&format!(
        "engine: durable, in {}; leases: SQLite, in {}; stream {STREAM} with {SHARDS} shards",
        dir.join("engine").display(),
        dir.join("leases.db").display()
    ));

    let config = FleetConfig {
        sensors: args.sensors as usize,
        rate: args.rate,
        seed: args.seed,
        ticks: None,
        malformed: 3,
        rules: AlertRules::default(),
    };
    let ticks = args.duration.map(|d| config.ticks_in(d).max(1));
    let mut fleet = Fleet::new(FleetConfig { ticks, ..config });
    console.line(&format!(
        "sensors: {} at {} readings/s (seed {}), {} anomalies planned{}",
        args.sensors,
        args.rate,
        args.seed,
        fleet.plan().anomalies.len(),
        match args.duration {
            Some(d) => format!(", for {:.0} s", d.as_secs_f64()),
            None => "; Ctrl-C stops".to_owned(),
        }
    ));

    let timeline = Arc::new(ShardTimeline::default());
    let stats = Arc::new(ProcessingStats::default());
    let alerts = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<(String, WorkerHandle)> = WORKERS
        .iter()
        .map(|name| {
            let worker = start_worker(name, &engine, &store, &timeline, &console, &stats, &alerts)?;
            Ok((name.to_string(), worker))
        })
        .collect::<Result<_, String>>()?;

    let (stop, stopped) = watch::channel(false);
    let began = Instant::now();
    let producer = {
        let engine = engine.clone();
        let console = Arc::clone(&console);
        tokio::spawn(async move {
            let writer = EngineWriter::new(engine, STREAM);
            produce(&mut fleet, &writer, None, stopped, |event| {
                if let ProducerEvent::AnomalyStarted(a) = event {
                    console.line(&format!("sensors: injecting {} on {}", a.alert, a.sensor));
                }
            })
            .await
        })
    };
    let split_after = args
        .duration
        .map_or(Duration::from_secs(10), |d| d.mul_f64(0.4));
    let mut split = None;
    let mut status_every = tokio::time::interval(Duration::from_secs(1));
    let mut last_count = 0;
    let mut seconds = 0u64;
    let ctrl_c = shutdown_signal();
    tokio::pin!(ctrl_c);
    tokio::pin!(producer);
    let written = loop {
        tokio::select! {
            outcome = &mut producer => {
                break outcome.map_err(|e| format!("the sensors failed: {e}"))??;
            }
            _ = &mut ctrl_c => {
                console.line("stopping the sensors (Ctrl-C)");
                let _ = stop.send(true);
            }
            _ = status_every.tick() => {
                seconds += 1;
                if split.is_none() && began.elapsed() >= split_after {
                    split = Some(split_first_shard(&engine, &console)?);
                }
                let count = timeline.distinct_records();
                if console.is_terminal() || seconds.is_multiple_of(5) {
                    console.status(&status_line(began, count - last_count, &timeline, &handles, &stats));
                }
                last_count = count;
            }
        }
    };
    let elapsed = began.elapsed();

    console.line(&format!(
        "sensors stopped after {} records; letting the workers catch up",
        written.records()
    ));
    let caught_up = Instant::now();
    while timeline.distinct_records() < written.records()
        && caught_up.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (name, handle) in handles {
        handle
            .shutdown()
            .await
            .map_err(|e| format!("{name} did not stop cleanly: {e}"))?;
    }
    let summary = Summary {
        elapsed,
        written,
        shards: timeline.snapshot(),
        alerts: alerts.lock().map(|a| a.clone()).unwrap_or_default(),
        skipped: stats.snapshot().skipped,
        split,
    };
    summary.print(&console);
    if let Err(error) = engine.sync() {
        console.line(&format!("engine: final sync failed: {error}"));
    }
    if summary.passed() {
        Ok(())
    } else {
        Err("a check failed (see the summary)".to_owned())
    }
}

/// Opens the engine and the lease store in `dir`, removing what an earlier run left.
async fn start_over(dir: &Path) -> Result<(Engine, Arc<dyn LeaseStore>), String> {
    for leftover in ["leases.db", "leases.db-wal", "leases.db-shm"] {
        let path = dir.join(leftover);
        if path.exists() {
            std::fs::remove_file(&path)
                .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        }
    }
    let engine = Engine::open(EngineConfig::durable(dir.join("engine")))
        .map_err(|e| format!("cannot open the engine: {e}"))?;
    if engine.describe_stream(STREAM).is_ok() {
        engine
            .delete_stream(STREAM)
            .map_err(|e| format!("cannot delete the last run's stream: {e}"))?;
    }
    engine
        .create_stream(STREAM, StreamOptions::with_shards(SHARDS))
        .map_err(|e| format!("cannot create the stream: {e}"))?;
    let store =
        connect_lease_store(&format!("sqlite://{}", dir.join("leases.db").display())).await?;
    Ok((engine, store))
}

fn start_worker(
    name: &str,
    engine: &Engine,
    store: &Arc<dyn LeaseStore>,
    timeline: &Arc<ShardTimeline>,
    console: &Arc<Console>,
    stats: &Arc<ProcessingStats>,
    alerts: &Arc<Mutex<Vec<crate::alerting::Alert>>>,
) -> Result<WorkerHandle, String> {
    let settings = AlertSettings {
        rules: AlertRules::default(),
        sink: Arc::new(ConsoleSink::new(
            name,
            Arc::clone(console),
            Arc::clone(alerts),
        )),
        checkpoints: CheckpointPolicy::default(),
        stats: Arc::clone(stats),
    };
    let (worker_name, timeline, console) =
        (name.to_owned(), Arc::clone(timeline), Arc::clone(console));
    let factory = move |shard: &ShardInfo| -> Box<dyn RecordProcessor> {
        let inner = Box::new(AlertProcessor::new(shard.clone(), settings.clone()));
        Box::new(ObservedProcessor::new(
            &worker_name,
            shard,
            Arc::clone(&timeline),
            Arc::clone(&console),
            inner,
        ))
    };
    let worker = Worker::builder()
        .stream(STREAM)
        .map_err(|e| e.to_string())?
        .name(name)
        .source(Arc::new(engine.clone()))
        .lease_store(Arc::clone(store))
        .processor_factory(factory)
        .config(WorkerConfig::default().initial_position(InitialPosition::TrimHorizon))
        .build()
        .map_err(|e| format!("cannot build {name}: {e}"))?;
    Ok(worker.start())
}

/// Splits the first shard at the middle of its hash key range; the parent and its children.
fn split_first_shard(
    engine: &Engine,
    console: &Console,
) -> Result<(ShardId, Vec<ShardId>), String> {
    let open = engine
        .list_shards(STREAM, &ShardFilter::AtLatest)
        .map_err(|e| format!("cannot list shards: {e}"))?;
    let parent = open.first().ok_or("the stream has no open shard")?;
    let range = parent.hash_key_range;
    let middle = range.start / 2 + range.end / 2 + 1;
    // Announced first: the parent's end follows at once.
    console.line(&format!(
        "resharding: splitting {} in two; its readings are processed to the end before its \
         children start",
        parent.shard_id
    ));
    engine
        .split_shard(STREAM, parent.shard_id.as_str(), &middle.to_string())
        .map_err(|e| format!("cannot split {}: {e}", parent.shard_id))?;
    let children: Vec<ShardId> = engine
        .list_shards(STREAM, &ShardFilter::default())
        .map_err(|e| format!("cannot list shards: {e}"))?
        .into_iter()
        .filter(|shard| shard.parents().any(|p| *p == parent.shard_id))
        .map(|shard| shard.shard_id)
        .collect();
    Ok((parent.shard_id.clone(), children))
}

fn status_line(
    began: Instant,
    per_second: u64,
    timeline: &ShardTimeline,
    handles: &[(String, WorkerHandle)],
    stats: &ProcessingStats,
) -> String {
    let leases: Vec<String> = handles
        .iter()
        .map(|(name, handle)| format!("{name}: {} shards", handle.held_shards().len()))
        .collect();
    let counts = stats.snapshot();
    format!(
        "[{:>3.0} s] {per_second:>6} readings/s | {:>4} ms behind latest | {} | {} alerts | {} skipped",
        began.elapsed().as_secs_f64(),
        timeline.millis_behind_latest(),
        leases.join(", "),
        counts.alerts,
        counts.skipped
    )
}
