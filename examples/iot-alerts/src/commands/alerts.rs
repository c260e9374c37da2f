//! `iot-alerts alerts`: one worker raising alerts, sharing the stream's shards with every other
//! copy that uses the same lease store.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use kcl_core::worker::{InitialPosition, Worker, WorkerConfig, WorkerHandle};
use kcl_core::{ShardId, StreamName, StreamSource};
use kcl_kinesis::KinesisSource;

use super::{
    connect_lease_store, parse_celsius, parse_duration, parse_endpoint, parse_lease_store_url,
    shutdown_signal,
};
use crate::alerting::{
    AlertRules, AlertSettings, AlertSink, CheckpointPolicy, JsonLinesSink, ProcessingStats,
    alert_processors,
};

/// Arguments of `iot-alerts alerts`.
#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// The Kinesis endpoint, e.g. http://127.0.0.1:4567 for `kcl engine serve`. Without it, the
    /// AWS configuration chain (region, credentials, AWS_ENDPOINT_URL) decides: real Kinesis.
    #[arg(long, value_name = "URL", value_parser = parse_endpoint)]
    endpoint: Option<String>,
    /// The stream of readings.
    #[arg(long, value_name = "NAME", default_value = "readings")]
    stream: String,
    /// The lease store every copy shares: sqlite://PATH (processes on one machine) or
    /// postgres://USER@HOST/DB (processes on many).
    #[arg(long, value_name = "URL", value_parser = parse_lease_store_url)]
    leases: String,
    /// Append alerts (JSON lines) to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Checkpoint after this many records of a shard...
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    checkpoint_every: u64,
    /// ...or after this much time, whichever comes first.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    checkpoint_interval: Duration,
    /// How long a lease lasts unrenewed: a crashed copy's shards move within it.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    lease_duration: Duration,
    /// Where a shard without a checkpoint starts.
    #[arg(long, value_enum, default_value_t = StartAt::TrimHorizon)]
    initial_position: StartAt,
    /// A reading above this raises `overheat` (°C).
    #[arg(long, value_name = "CELSIUS", default_value = "80", value_parser = parse_celsius)]
    threshold: f64,
    /// A rolling average above this raises `drift` (°C).
    #[arg(long, value_name = "CELSIUS", default_value = "40", value_parser = parse_celsius)]
    average_limit: f64,
    /// The window of the rolling average (event time).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    window: Duration,
    /// A readable prefix of this worker's id.
    #[arg(long, value_name = "NAME", default_value = "iot-alerts")]
    name: String,
}

/// Where a shard without a checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StartAt {
    /// Every retained reading (nothing written before the first worker started is missed).
    TrimHorizon,
    /// Only readings written after the worker first sees the shard.
    Latest,
}

/// Runs one worker until SIGINT or SIGTERM, then checkpoints and releases its leases.
pub async fn run(args: AlertsArgs) -> Result<(), String> {
    let rules = AlertRules::default()
        .threshold_celsius(args.threshold)
        .average_limit_celsius(args.average_limit)
        .window(args.window);
    rules
        .validate()
        .map_err(|error| format!("invalid alert rules: {error}"))?;
    let config = WorkerConfig::default()
        .lease_duration(args.lease_duration)
        .initial_position(match args.initial_position {
            StartAt::TrimHorizon => InitialPosition::TrimHorizon,
            StartAt::Latest => InitialPosition::Latest,
        });
    config
        .validate()
        .map_err(|error| format!("invalid worker settings: {error}"))?;
    let sink: Arc<dyn AlertSink> = match &args.out {
        Some(path) => Arc::new(
            JsonLinesSink::append_to(path)
                .map_err(|error| format!("cannot open --out {}: {error}", path.display()))?,
        ),
        None => Arc::new(JsonLinesSink::stdout()),
    };

    let source = match &args.endpoint {
        Some(endpoint) => KinesisSource::local(endpoint),
        None => KinesisSource::from_env().await,
    };
    let stream = StreamName::new(&args.stream).map_err(|error| format!("--stream: {error}"))?;
    let where_ = args.endpoint.as_deref().unwrap_or("the AWS endpoint");
    let shards = source.list_shards(&stream).await.map_err(|error| {
        format!(
            "cannot list the shards of {stream} at {where_}: {error} (create the stream with \
             `kcl stream create {stream} --shards 4 --endpoint URL`, or let `iot-alerts sensors` \
             create it)"
        )
    })?;
    let store = connect_lease_store(&args.leases).await?;

    let stats = Arc::new(ProcessingStats::default());
    let worker = Worker::builder()
        .stream(stream.as_str())
        .map_err(|error| error.to_string())?
        .name(&args.name)
        .source(Arc::new(source))
        .lease_store(store)
        .processor_factory(alert_processors(AlertSettings {
            rules,
            sink,
            checkpoints: CheckpointPolicy {
                every_records: args.checkpoint_every,
                every: args.checkpoint_interval,
            },
            stats: Arc::clone(&stats),
        }))
        .config(config)
        .build()
        .map_err(|error| format!("cannot build the worker: {error}"))?;
    tracing::info!(
        worker = %worker.id(),
        "consuming {stream} ({} shards) at {where_}, leases in {}",
        shards.len(),
        args.leases
    );
    let handle = worker.start();

    tokio::select! {
        _ = shutdown_signal() => {}
        _ = report_progress(&handle, &stats) => {}
    }
    tracing::info!("stopping: checkpointing and releasing every lease");
    handle
        .shutdown()
        .await
        .map_err(|error| format!("the worker did not stop cleanly: {error}"))?;
    let done = stats.snapshot();
    tracing::info!(
        "stopped after {} records ({} not readings, skipped); {} alerts raised; leases released",
        done.records,
        done.skipped,
        done.alerts
    );
    Ok(())
}

/// Logs every change of the shards held (a take-over shows at once) and, every 10 s, progress.
async fn report_progress(handle: &WorkerHandle, stats: &ProcessingStats) {
    let mut held: BTreeSet<ShardId> = BTreeSet::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    let mut last = stats.snapshot();
    let mut since_status = 0u32;
    loop {
        ticks.tick().await;
        let now: BTreeSet<ShardId> = handle.held_shards().into_iter().collect();
        if now != held {
            let list = |set: &mut dyn Iterator<Item = &ShardId>| {
                set.map(ToString::to_string).collect::<Vec<_>>().join(", ")
            };
            let took = list(&mut now.difference(&held));
            let gave = list(&mut held.difference(&now));
            tracing::info!(
                "holding {} shards: [{}]{}{}",
                now.len(),
                list(&mut now.iter()),
                if took.is_empty() {
                    String::new()
                } else {
                    format!("; took {took}")
                },
                if gave.is_empty() {
                    String::new()
                } else {
                    format!("; gave up {gave}")
                },
            );
            held = now;
        }
        since_status += 1;
        if since_status == 40 {
            since_status = 0;
            let current = stats.snapshot();
            tracing::info!(
                "{} records/s; {} records, {} alerts, {} skipped so far; holding {} shards",
                (current.records - last.records) / 10,
                current.records,
                current.alerts,
                current.skipped,
                held.len()
            );
            last = current;
        }
    }
}
