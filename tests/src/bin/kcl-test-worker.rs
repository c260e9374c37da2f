//! `kcl-test-worker`: one worker process for the multi-process and chaos tests. It reads a
//! stream of `kcl engine serve` through `KinesisSource`, keeps its leases in SQLite or PostgreSQL
//! (chosen by the URL), checkpoints after every batch, and logs every record it processes and
//! every checkpoint it attempts as JSON lines (`kcl_tests::worker_log`).
//!
//! ```text
//! kcl-test-worker --endpoint http://127.0.0.1:4567 --stream readings \
//!     --leases sqlite:///tmp/leases.db --name w1.0 --log /tmp/logs/w1.0.jsonl \
//!     [--table kcl_leases] [--application-name kcl-rs] [--lease-ms 2000] [--taker-ms 500] \
//!     [--checkpoint-every-ms 0] \
//!     [--fault-seed 7 --batch-errors 20 --batch-panics 10 --lifecycle-errors 100 \
//!      --lifecycle-panics 50 --slow-batches 3 --slow-max-ms 3000]
//! ```
//!
//! The fault flags (`kcl_tests::processor_faults`, calls per thousand) make its processors fail
//! and panic at random in every callback, and sometimes be slow; each fault is logged. A batch
//! whose call fails logs none of its records: a record counts as processed only when
//! `process_records` returned `Ok` for it.
//!
//! Processors checkpoint in `process_records` after every batch (`--checkpoint-every-ms 0`, the
//! default) or at most that often, and always at shard end and when asked to shut down.
//!
//! It runs until killed; SIGTERM is not handled (the tests kill workers the hard way).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kcl_core::worker::{
    Checkpointer, InitialPosition, InitializeInput, ProcessRecordsInput, ProcessorError,
    RecordProcessor, RecordProcessorFactory, ShardInfo, Worker, WorkerConfig,
};
use kcl_core::{Error, LeaseStore, SequenceNumber};
use kcl_kinesis::{KinesisSource, KinesisSourceConfig};
use kcl_store_postgres::{PostgresLeaseStore, PostgresLeaseStoreConfig};
use kcl_store_sqlite::SqliteLeaseStore;
use kcl_tests::processor_faults::{Callback, FaultDice, InjectedFault, ProcessorFaults};
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
        faults: ProcessorFaults::from_flags(&args.values)?,
        checkpoint_interval: args.millis("checkpoint-every-ms", 0)?,
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
    faults: ProcessorFaults,
    checkpoint_interval: Duration,
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
            dice: FaultDice::new(self.faults, run),
            processed_up_to: None,
            checkpoint_interval: self.checkpoint_interval,
            last_checkpoint: Instant::now(),
        })
    }
}

/// Logs every record and checkpoints after every batch, at shard end and on shutdown; fails,
/// panics and dawdles as its dice say.
struct LoggingProcessor {
    log: Arc<LogWriter>,
    worker: String,
    run: u64,
    shard: String,
    dice: FaultDice,
    /// The last record of the last batch that returned `Ok`: all that a checkpoint may cover.
    processed_up_to: Option<SequenceNumber>,
    /// Checkpoint in `process_records` when this long has passed since the last one.
    checkpoint_interval: Duration,
    /// When `process_records` last checkpointed (or the processor was made).
    last_checkpoint: Instant,
}

impl LoggingProcessor {
    /// Checkpoints at `at` (`None`: the checkpointer's own choice, which must be no further
    /// than `label` says, the last record processed or `SHARD_END`), logging the attempt before
    /// and its outcome after.
    async fn checkpoint(
        &self,
        checkpointer: &mut Checkpointer,
        at: Option<&SequenceNumber>,
        label: String,
    ) -> Result<(), Error> {
        let epoch = checkpointer.lease_epoch();
        let t0 = wall_micros();
        self.log.write(&[Event::CheckpointBegin {
            w: self.worker.clone(),
            run: self.run,
            shard: self.shard.clone(),
            epoch,
            at: label.clone(),
            t: t0,
        }]);
        let result = match at {
            Some(at) => checkpointer.checkpoint_at(at).await,
            None => checkpointer.checkpoint().await,
        };
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
            at: label,
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

    fn log_injected(
        &self,
        callback: Callback,
        fault: InjectedFault,
        epoch: Option<u64>,
        first: Option<&SequenceNumber>,
        t: u64,
    ) {
        self.log.write(&[Event::Injected {
            w: self.worker.clone(),
            run: self.run,
            shard: self.shard.clone(),
            callback,
            fault,
            epoch,
            first: first.cloned(),
            t,
        }]);
    }

    /// Logs and carries out `failure`, if the dice drew one: an error to return, or a panic.
    /// `t` is when the call began.
    fn fail(
        &self,
        callback: Callback,
        failure: Option<InjectedFault>,
        epoch: Option<u64>,
        first: Option<&SequenceNumber>,
        t: u64,
    ) -> Result<(), ProcessorError> {
        let Some(fault) = failure else {
            return Ok(());
        };
        self.log_injected(callback, fault, epoch, first, t);
        let what = format!(
            "injected {fault:?} in {callback:?} ({} run {} on {})",
            self.worker, self.run, self.shard
        );
        match fault {
            InjectedFault::Panic => panic!("{what}"),
            InjectedFault::Error | InjectedFault::Slow(_) => Err(what.into()),
        }
    }
}

#[async_trait]
impl RecordProcessor for LoggingProcessor {
    async fn initialize(&mut self, input: InitializeInput) -> Result<(), ProcessorError> {
        let failure = self.dice.failure(Callback::Initialize);
        self.fail(Callback::Initialize, failure, None, None, wall_micros())?;
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
        // Everything this call logs carries the time it began: when the batch was delivered.
        let called = wall_micros();
        let epoch = checkpointer.lease_epoch();
        let (Some(first), Some(last)) = (input.records.first(), input.records.last()) else {
            return Ok(());
        };
        let (first, last) = (&first.sequence_number, last.sequence_number.clone());
        if let Some(delay) = self.dice.slowness() {
            let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            self.log_injected(
                Callback::ProcessRecords,
                InjectedFault::Slow(millis),
                Some(epoch),
                Some(first),
                called,
            );
            tokio::time::sleep(delay).await;
        }
        let failure = self.dice.failure(Callback::ProcessRecords);
        self.fail(
            Callback::ProcessRecords,
            failure,
            Some(epoch),
            Some(first),
            called,
        )?;
        // The work: the records' lines, written before the checkpoint that passes them.
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
                    t: called,
                }
            })
            .collect();
        self.log.write(&events);
        self.processed_up_to = Some(last.clone());
        if self.last_checkpoint.elapsed() < self.checkpoint_interval {
            return Ok(());
        }
        self.last_checkpoint = Instant::now();
        match self
            .checkpoint(checkpointer, Some(&last), last.to_string())
            .await
        {
            // The lease is gone: the worker stops this shard and calls `lease_lost`.
            Err(error @ Error::LeaseLost { .. }) => Err(error.into()),
            // The records are processed; a failed checkpoint only means the next owner may
            // process them again. Retrying the batch would deliver them twice in one run.
            Ok(()) | Err(_) => Ok(()),
        }
    }

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ProcessorError> {
        let failure = self.dice.failure(Callback::ShardEnded);
        let epoch = checkpointer.lease_epoch();
        self.fail(
            Callback::ShardEnded,
            failure,
            Some(epoch),
            None,
            wall_micros(),
        )?;
        let result = self
            .checkpoint(checkpointer, None, "SHARD_END".to_owned())
            .await;
        if result.is_ok() {
            self.end("shard_ended");
        }
        Ok(result?)
    }

    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let failure = self.dice.failure(Callback::ShutdownRequested);
        // The pattern the docs recommend: a bare checkpoint, which must cover only the batches
        // that returned `Ok` (a failed batch before the stop must not be passed).
        if failure.is_none() && checkpointer.has_unchecked_records() {
            let label = self
                .processed_up_to
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            let _ = self.checkpoint(checkpointer, None, label).await;
        }
        self.end("shutdown_requested");
        let epoch = checkpointer.lease_epoch();
        self.fail(
            Callback::ShutdownRequested,
            failure,
            Some(epoch),
            None,
            wall_micros(),
        )
    }

    async fn lease_lost(&mut self) {
        let failure = self.dice.failure(Callback::LeaseLost);
        self.end("lease_lost");
        // `lease_lost` returns nothing: its only way to fail is to panic.
        let _ = self.fail(Callback::LeaseLost, failure, None, None, wall_micros());
    }
}
