//! `kcl`: serve the kcl-rs engine over the Kinesis API, and administer streams on any Kinesis
//! endpoint.
//!
//! ```text
//! kcl engine serve --data-dir ./data --listen 127.0.0.1:4567 --fsync interval:10
//! kcl stream create readings --shards 4 --endpoint http://127.0.0.1:4567
//! echo '{"t": 21.5}' | kcl stream put readings --partition-key sensor-1 --endpoint http://127.0.0.1:4567
//! kcl stream describe readings --endpoint http://127.0.0.1:4567
//! ```

mod serve;
mod stream;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The kcl-rs command line.
#[derive(Debug, Parser)]
#[command(
    name = "kcl",
    version,
    about = "kcl-rs: the local stream engine and stream administration"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the local stream engine.
    #[command(subcommand)]
    Engine(EngineCommand),
    /// Administer streams on a Kinesis endpoint (the engine's server, or Kinesis itself).
    Stream(stream::StreamArgs),
}

#[derive(Debug, Subcommand)]
enum EngineCommand {
    /// Serve the engine over the Kinesis JSON API until SIGINT or SIGTERM.
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Engine(EngineCommand::Serve(args)) => serve::run(args).await,
            Command::Stream(args) => stream::run(args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
