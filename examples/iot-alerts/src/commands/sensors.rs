//! `iot-alerts sensors`: the simulated fleet written to a stream through the Kinesis API, with
//! each injected anomaly printed as a JSON line when it is complete.

use std::io::Write;
use std::time::Duration;

use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_kinesis::types::StreamStatus;
use clap::Args;
use tokio::sync::watch;

use super::{parse_duration, parse_endpoint, parse_rate, shutdown_signal};
use crate::alerting::AlertRules;
use crate::simulation::{Fleet, FleetConfig, KinesisWriter, ProducerEvent, produce};

/// Arguments of `iot-alerts sensors`.
#[derive(Debug, Args)]
pub struct SensorsArgs {
    /// The Kinesis endpoint, e.g. http://127.0.0.1:4567 for `kcl engine serve`. Without it, the
    /// AWS configuration chain decides: real Kinesis.
    #[arg(long, value_name = "URL", value_parser = parse_endpoint)]
    endpoint: Option<String>,
    /// The stream to write; created with --shards shards if it does not exist.
    #[arg(long, value_name = "NAME", default_value = "readings")]
    stream: String,
    /// Shards of the stream if it has to be created.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(i32).range(1..=500))]
    shards: i32,
    /// Number of sensors; each reports once per tick.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    sensors: u64,
    /// Readings per second, all sensors together. Drift anomalies need each sensor to report
    /// every 100 ms or more often (a rate of at least 10 × sensors).
    #[arg(long, value_name = "PER_SECOND", default_value = "1000", value_parser = parse_rate)]
    rate: f64,
    /// The seed: the same seed, sensors, rate and length inject the same anomalies.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Stop after this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "count")]
    duration: Option<Duration>,
    /// Stop after this many readings.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Malformed records to mix in (not JSON, a missing field, a wrong type).
    #[arg(long, value_name = "N", default_value_t = 3)]
    malformed: usize,
}

/// Writes readings until the duration or count is reached, or SIGINT / SIGTERM.
pub async fn run(args: SensorsArgs) -> Result<(), String> {
    let client = match &args.endpoint {
        Some(endpoint) => kcl_kinesis::local_client(endpoint),
        None => kcl_kinesis::client_from_env().await,
    };
    ensure_stream(&client, &args.stream, args.shards).await?;
    let mut config = FleetConfig {
        sensors: args.sensors as usize,
        rate: args.rate,
        seed: args.seed,
        ticks: None,
        malformed: args.malformed,
        rules: AlertRules::default(),
    };
    config.ticks = match (args.duration, args.count) {
        (Some(duration), _) => Some(config.ticks_in(duration).max(1)),
        (None, Some(count)) => Some(count.div_ceil(args.sensors)),
        (None, None) => None,
    };
    let mut fleet = Fleet::new(config);
    let plan = fleet.plan();
    tracing::info!(
        "{} sensors, {} readings/s, seed {}: {} anomalies planned{}",
        args.sensors,
        args.rate,
        args.seed,
        plan.anomalies.len(),
        if plan.drift_detectable {
            ""
        } else {
            " (overheat only: sensors report too rarely for a drift to be judged; raise --rate)"
        }
    );

    let (stop, stopped) = watch::channel(false);
    let signal = tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let writer = KinesisWriter::new(client, &args.stream);
    let mut stdout = std::io::stdout();
    let report = produce(&mut fleet, &writer, args.count, stopped, |event| {
        if let ProducerEvent::AnomalyCompleted(anomaly) = event {
            // The alert this anomaly must raise, for whoever checks the consumers.
            if let Ok(line) = serde_json::to_string(anomaly) {
                let _ = writeln!(stdout, "{line}");
                let _ = stdout.flush();
            }
        }
    })
    .await?;
    signal.abort();
    tracing::info!(
        "wrote {} readings and {} malformed records; {} anomalies injected{}",
        report.readings,
        report.malformed,
        report.completed.len(),
        if report.cut_short.is_empty() {
            String::new()
        } else {
            format!(" ({} more cut short by the stop)", report.cut_short.len())
        }
    );
    Ok(())
}

/// Creates `stream` if it does not exist, and waits until it is active.
async fn ensure_stream(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shards: i32,
) -> Result<(), String> {
    for _ in 0..120 {
        match client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
        {
            Ok(output) => {
                let active = output
                    .stream_description_summary()
                    .is_some_and(|s| *s.stream_status() == StreamStatus::Active);
                if active {
                    return Ok(());
                }
            }
            Err(error) if error.code() == Some("ResourceNotFoundException") => {
                client
                    .create_stream()
                    .stream_name(stream)
                    .shard_count(shards)
                    .send()
                    .await
                    .map_err(|error| {
                        format!("cannot create {stream}: {}", DisplayErrorContext(&error))
                    })?;
                tracing::info!("created stream {stream} with {shards} shards");
            }
            Err(error) => {
                return Err(format!(
                    "cannot describe {stream}: {}",
                    DisplayErrorContext(&error)
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("{stream} did not become active within a minute"))
}
