//! `kcl engine serve`: the engine behind the Kinesis API, stopped gracefully by a signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use kcl_engine::http::{HttpConfig, KinesisServer};
use kcl_engine::{Durability, Engine, EngineConfig, ThroughputLimits};

/// Arguments of `kcl engine serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory of the engine's streams (created if absent).
    #[arg(long, value_name = "DIR", required_unless_present = "in_memory")]
    data_dir: Option<PathBuf>,
    /// Keep everything in memory instead: nothing survives the process.
    #[arg(long, conflicts_with = "data_dir")]
    in_memory: bool,
    /// Address to listen on; port 0 picks a free port (printed at start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4567")]
    listen: SocketAddr,
    /// When writes are fsynced: `never`, `always`, or `interval:MS` (group commit).
    #[arg(long, value_name = "POLICY", default_value = "interval:10", value_parser = parse_fsync)]
    fsync: Durability,
    /// Enforce Kinesis's per-shard throughput limits (1 MiB/s and 1,000 records/s written,
    /// 2 MiB/s and 5 calls/s read).
    #[arg(long)]
    enforce_limits: bool,
    /// Region named in stream ARNs.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// 12-digit account named in stream ARNs.
    #[arg(long, default_value = "000000000000")]
    account: String,
}

fn parse_fsync(text: &str) -> Result<Durability, String> {
    match text {
        "never" => Ok(Durability::Never),
        "always" => Ok(Durability::Always),
        _ => {
            let millis = text
                .strip_prefix("interval:")
                .ok_or_else(|| format!("{text:?} is not one of never, always, interval:MS"))?;
            match millis.parse::<u64>() {
                Ok(0) => Err(
                    "interval:MS needs MS above 0 (use `always` to fsync every write)".to_owned(),
                ),
                Ok(millis) => Ok(Durability::Interval(Duration::from_millis(millis))),
                Err(_) => Err(format!("{millis:?} is not a number of milliseconds")),
            }
        }
    }
}

/// Runs the server until SIGINT or SIGTERM, then lets in-flight requests finish and fsyncs.
pub async fn run(args: ServeArgs) -> Result<(), String> {
    let mut config = match &args.data_dir {
        Some(dir) => EngineConfig::durable(dir),
        None => EngineConfig::in_memory(),
    }
    .durability(args.fsync);
    if args.enforce_limits {
        config = config.throughput_limits(ThroughputLimits::KINESIS);
    }
    let engine =
        Engine::open(config).map_err(|error| format!("cannot open the engine: {error}"))?;
    let http = HttpConfig::default()
        .listen(args.listen)
        .region(args.region)
        .account(args.account);
    let server = KinesisServer::bind(engine, http)
        .await
        .map_err(|error| format!("cannot serve on {}: {error}", args.listen))?;
    let storage = match &args.data_dir {
        Some(dir) => format!("data in {}", dir.display()),
        None => "in memory".to_owned(),
    };
    // Scripts and tests read the endpoint from this line.
    println!(
        "kcl engine: Kinesis API at {} ({storage})",
        server.endpoint_url()
    );
    server
        .run(shutdown_signal())
        .await
        .map_err(|error| format!("the server failed: {error}"))?;
    println!("kcl engine: stopped; every acknowledged write is synced");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    eprintln!("kcl engine: shutting down; finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policies_parse() {
        assert_eq!(parse_fsync("never"), Ok(Durability::Never));
        assert_eq!(parse_fsync("always"), Ok(Durability::Always));
        assert_eq!(
            parse_fsync("interval:25"),
            Ok(Durability::Interval(Duration::from_millis(25)))
        );
        for bad in [
            "",
            "sometimes",
            "interval:",
            "interval:0",
            "interval:-5",
            "interval:x",
        ] {
            assert!(parse_fsync(bad).is_err(), "{bad:?}");
        }
    }
}
