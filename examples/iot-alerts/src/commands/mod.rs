//! The command line: `demo`, `sensors` and `alerts`, and what they share.

pub mod alerts;
mod lease_store_url;
mod logging;
pub mod sensors;
mod shutdown_signal;
mod values;

use clap::{Parser, Subcommand};

pub use lease_store_url::connect_lease_store;
pub use logging::{DEFAULT_LOG_FILTER, init_logging};
pub use shutdown_signal::shutdown_signal;
pub use values::{
    parse_celsius, parse_duration, parse_endpoint, parse_lease_store_url, parse_rate,
};

/// Temperature alerts from a stream of sensor readings: the kcl-rs example application.
#[derive(Debug, Parser)]
#[command(name = "iot-alerts", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one process: an engine, a simulated fleet, two workers, a split; ends
    /// with a summary that checks the guarantees.
    Demo(crate::demo::DemoArgs),
    /// Write a simulated fleet's readings, with anomalies, to a stream; print each injected
    /// anomaly as a JSON line.
    Sensors(sensors::SensorsArgs),
    /// Run one alerting worker; copies sharing a lease store share the shards.
    Alerts(alerts::AlertsArgs),
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Sensors(args) => sensors::run(args).await,
        Command::Alerts(args) => alerts::run(args).await,
    }
}
