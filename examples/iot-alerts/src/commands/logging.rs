//! Log lines on standard error: this program's at `info`, the framework's warnings.

use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// What is logged unless `RUST_LOG` says otherwise (`target=level,...`, e.g.
/// `info,kcl_core=debug`).
pub const DEFAULT_LOG_FILTER: &str = "warn,iot_alerts=info";

/// Sends log lines to standard error, filtered by `RUST_LOG` or [`DEFAULT_LOG_FILTER`].
pub fn init_logging() {
    let wanted = std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_LOG_FILTER.to_owned());
    let filter = Targets::from_str(&wanted).unwrap_or_else(|error| {
        eprintln!("RUST_LOG={wanted:?} is not a filter ({error}); using {DEFAULT_LOG_FILTER}");
        Targets::from_str(DEFAULT_LOG_FILTER).unwrap_or_default()
    });
    let format = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    // A second initialization (in tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(format)
        .with(filter)
        .try_init();
}
