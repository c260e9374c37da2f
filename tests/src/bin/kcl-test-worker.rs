//! `kcl-test-worker`: one worker process for the multi-process and chaos tests. It reads a
//! stream of `kcl engine serve` through `KinesisSource`, keeps its leases in SQLite or PostgreSQL
//! (chosen by the URL), checkpoints after every batch, and logs every record it processes and
//! every checkpoint it attempts as JSON lines (`kcl_tests::worker_log`).
//!
//! ```text
//! kcl-test-worker --endpoint http://127.0.0.1:4567 --stream readings \
//!     --leases sqlite:///tmp/leases.db --name w1.0 --log /tmp/logs/w1.0.jsonl \
//!     [--table kcl_leases] [--application-name kcl-rs] [--lease-ms 2000] [--taker-ms 500]
//! ```
//!
//! It runs until killed; SIGTERM is not handled (the tests kill workers the hard way).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use kcl_core::worker::{
    Checkpointer, InitialPosition, InitializeInput, ProcessRecordsInput, ProcessorError,
    RecordProcessor, RecordProcessorFactory, ShardInfo, Worker, WorkerConfig,
};
use kcl_core::{Error, LeaseStore};
use kcl_kinesis::{KinesisSource, KinesisSourceConfig};
use kcl_store_postgres::{PostgresLeaseStore, PostgresLeaseStoreConfig};
use kcl_store_sqlite::SqliteLeaseStore;
use kcl_tests::producer::parse_payload;
use kcl_tests::worker_log::{CheckpointOutcome, Event, LogWriter, micros_since_epoch, wall_micros};

/// The command line, as `--flag value` pairs.
struct Args {
    values: BTreeMap<String, String>,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut values = BTreeMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --flag, got {flag:?}"))?;
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            values.insert(name.to_owned(), value);
        }
        Ok(Args { values })
    }

    fn required(&self, name: &str) -> Result<&str, String> {
        self.values
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn millis(&self, name: &str, default: u64) -> Result<Duration, String> {
        match self.values.get(name) {
            None => Ok(Duration::from_millis(default)),
            Some(text) => text
                .parse()
                .map(Duration::from_millis)
                .map_err(|_| format!("--{name} {text:?} is not a number of milliseconds")),
        }
    }
}

fn main() -> std::process::ExitCode {
    let outcome = Args::parse().and_then(|args| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?
            .block_on(run(args))
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kcl-test-worker: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let name = args.required("name")?.to_owned();
    let log_path = args.required("log")?;
    let log =
        Arc::new(LogWriter::create(log_path.as_ref()).map_err(|e| format!("{log_path}: {e}"))?);
    let store = lease_store(&args).await?;
    let source = KinesisSource::local(args.required("endpoint")?)
        .with_config(
            KinesisSourceConfig::default().idle_poll_interval(args.millis("idle-poll-ms", 50)?),
        )
        .map_err(|e| e.to_string())?;
    let lease = args.millis("lease-ms", 2_000)?;
    let config = WorkerConfig::default()
        .lease_duration(lease)
        .taker_interval(args.millis("taker-ms", 500)?)
        .handoff_timeout(2 * lease)
        .shard_sync_interval(Duration::from_secs(2))
        .max_records_per_batch(500)
        .initial_position(InitialPosition::TrimHorizon)
        .backoff(Duration::from_millis(20), Duration::from_millis(500));
    let factory = LoggingFactory {
        log: Arc::clone(&log),
        worker: name.clone(),
        runs: AtomicU64::new(0),
    };
    let worker = Worker::builder()
        .stream(args.required("stream")?)
        .map_err(|e| e.to_string())?
        .name(&name)
        .source(Arc::new(source))
        .lease_store(store)
        .processor_factory(factory)
        .config(config)
        .build()
        .map_err(|e| e.to_string())?;
    log.write(&[Event::Hello {
        w: name,
        pid: std::process::id(),
        worker_id: worker.id().to_string(),
        t: wall_micros(),
    }]);
    let _handle = worker.start();
    std::future::pending::<()>().await;
    Ok(())
}

/// Connects the lease store the URL names. A restart may meet the store's sessions being
/// terminated by the chaos test, so transient failures are retried for a while, as a supervisor
/// restarting the process would.
async fn lease_store(args: &Args) -> Result<Arc<dyn LeaseStore>, String> {
    let url = args.required("leases")?;
    let mut delay = Duration::from_millis(50);
    let started = std::time::Instant::now();
    loop {
        match connect(args, url).await {
            Ok(store) => return Ok(store),
            Err(error) if error.is_transient() && started.elapsed() < Duration::from_secs(30) => {
                eprintln!("connecting the lease store failed ({error}); retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(error) => return Err(format!("connecting the lease store: {error}")),
        }
    }
}

async fn connect(args: &Args, url: &str) -> Result<Arc<dyn LeaseStore>, Error> {
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteLeaseStore::connect(url).await?));
    }
    let mut config = PostgresLeaseStoreConfig::new(url)
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5));
    if let Some(table) = args.values.get("table") {
        config = config.table(table);
    }
    if let Some(name) = args.values.get("application-name") {
        config = config.application_name(name);
    }
    Ok(Arc::new(PostgresLeaseStore::connect_with(config).await?))
}

struct LoggingFactory {
    log: Arc<LogWriter>,
    worker: String,
    runs: AtomicU64,
}

impl RecordProcessorFactory for LoggingFactory {
    fn create(&self, shard: &ShardInfo) -> Box<dyn RecordProcessor> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst);
        let shard = shard.shard_id.to_string();
        self.log.write(&[Event::Start {
            w: self.worker.clone(),
            run,
            shard: shard.clone(),
            t: wall_micros(),
        }]);
        Box::new(LoggingProcessor {
            log: Arc::clone(&self.log),
            worker: self.worker.clone(),
            run,
            shard,
        })
    }
}

/// Logs every record and checkpoints after every batch, at shard end and on shutdown.
struct LoggingProcessor {
    log: Arc<LogWriter>,
    worker: String,
    run: u64,
    shard: String,
}

impl LoggingProcessor {
    /// Checkpoints at the last delivered record (or `SHARD_END`), logging the attempt before
    /// and its outcome after.
    async fn checkpoint(&self, checkpointer: &mut Checkpointer, at: String) -> Result<(), Error> {
        let epoch = checkpointer.lease_epoch();
        let t0 = wall_micros();
        self.log.write(&[Event::CheckpointBegin {
            w: self.worker.clone(),
            run: self.run,
            shard: self.shard.clone(),
            epoch,
            at: at.clone(),
            t: t0,
        }]);
        let result = checkpointer.checkpoint().await;
        let outcome = match &result {
            Ok(()) => CheckpointOutcome::Ok,
            Err(Error::LeaseLost { .. }) => CheckpointOutcome::LeaseLost,
            Err(error) => CheckpointOutcome::Failed(error.to_string()),
        };
        self.log.write(&[Event::Checkpoint {
            w: self.worker.clone(),
            run: self.run,
            shard: self.shard.clone(),
            epoch,
            at,
            outcome,
            t0,
            t: wall_micros(),
        }]);
        result
    }

    fn end(&self, why: &str) {
        self.log.write(&[Event::End {
            w: self.worker.clone(),
            run: self.run,
            shard: self.shard.clone(),
            why: why.to_owned(),
            t: wall_micros(),
        }]);
    }
}

#[async_trait]
impl RecordProcessor for LoggingProcessor {
    async fn initialize(&mut self, input: InitializeInput) -> Result<(), ProcessorError> {
        self.log.write(&[Event::Init {
            w: self.worker.clone(),
            run: self.run,
            shard: self.shard.clone(),
            checkpoint: input.checkpoint.to_string(),
            t: wall_micros(),
        }]);
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: &ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let epoch = checkpointer.lease_epoch();
        let t = wall_micros();
        let events: Vec<Event> = input
            .records
            .iter()
            .map(|record| {
                let (key, n) = parse_payload(&record.data);
                Event::Record {
                    w: self.worker.clone(),
                    run: self.run,
                    shard: self.shard.clone(),
                    seq: record.sequence_number.clone(),
                    key,
                    n,
                    epoch,
                    arrival: micros_since_epoch(record.approximate_arrival),
                    t,
                }
            })
            .collect();
        self.log.write(&events);
        let at = input
            .records
            .last()
            .map(|record| record.sequence_number.to_string())
            .unwrap_or_default();
        match self.checkpoint(checkpointer, at).await {
            // The lease is gone: the worker stops this shard and calls `lease_lost`.
            Err(error @ Error::LeaseLost { .. }) => Err(error.into()),
            // The records are processed; a failed checkpoint only means the next owner may
            // process them again. Retrying the batch would deliver them twice in one run.
            Ok(()) | Err(_) => Ok(()),
        }
    }

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ProcessorError> {
        let result = self.checkpoint(checkpointer, "SHARD_END".to_owned()).await;
        if result.is_ok() {
            self.end("shard_ended");
        }
        Ok(result?)
    }

    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        if checkpointer.has_unchecked_records() {
            let at = checkpointer
                .last_delivered()
                .map(ToString::to_string)
                .unwrap_or_default();
            let _ = self.checkpoint(checkpointer, at).await;
        }
        self.end("shutdown_requested");
        Ok(())
    }

    async fn lease_lost(&mut self) {
        self.end("lease_lost");
    }
}
