//! The lease-table scale harness (issue 19): S shards of an in-process engine under a light
//! steady write load, and N real workers in this process, each with a lease store of its own
//! (its own PostgreSQL pool and liveness connection, or its own pool on one SQLite file), all
//! on one lease table. Every store is wrapped in a [`CountingLeaseStore`] sharing one set of
//! [`StoreCounters`].
//!
//! [`run`] starts every worker at once and measures, in a [`ScaleReport`]:
//!
//! - the time until the shards are balanced from cold start (every shard held by exactly one
//!   worker, every worker holding the floor or the ceiling of S/N);
//! - over a steady window after that: lease-store calls and rows per second by kind, the p50,
//!   p99 and maximum latency of renewal calls, the CPU of the PostgreSQL server's processes
//!   (read from `/proc`, so only for a server on this machine) and of this process, as fractions
//!   of one core;
//! - the time until another worker holds every shard of one worker that is aborted (a crash in
//!   this process: its liveness connection or lock file goes with it);
//! - the leases lost by the workers still alive, which must be none.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kcl_core::worker::{
    InitialPosition, MetricsSnapshot, Worker, WorkerConfig, WorkerHandle, process_with,
};
use kcl_core::{LeaseStore, ShardId};
use kcl_engine::{Engine, EngineConfig, MAX_RECORDS_PER_PUT, PutRecordsEntry, StreamOptions};
use kcl_store_postgres::{PostgresLeaseStore, PostgresLeaseStoreConfig};
use kcl_store_sqlite::{SqliteLeaseStore, SqliteLeaseStoreConfig};
use sqlx::{Connection, PgConnection};
use tokio::task::JoinHandle;

use crate::counting_lease_store::{CallCounts, CallKind, CountingLeaseStore, StoreCounters};
use crate::seeded_rng::SeededRng;

/// The stream every run creates in its engine.
pub const STREAM: &str = "lease_scale";

/// Issue 19's target: balanced from cold start within this.
pub const BALANCE_TARGET: Duration = Duration::from_secs(30);
/// Issue 19's target: the store's CPU under this fraction of one core.
pub const STORE_CPU_TARGET: f64 = 0.25;
/// Issue 19's target: p99 renewal latency under this.
pub const RENEW_P99_TARGET: Duration = Duration::from_millis(50);
/// Issue 19's target: takeover after a worker dies within the lease duration plus this.
pub const TAKEOVER_MARGIN_TARGET: Duration = Duration::from_secs(1);

/// Where the lease table lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A PostgreSQL database; the run creates a table of its own and drops it at the end.
    Postgres {
        /// `postgres://user@host:port/database`.
        url: String,
    },
    /// A SQLite file in a temporary directory of the run's own.
    Sqlite,
}

impl Backend {
    /// PostgreSQL at `KCL_TEST_POSTGRES_URL` or the local default.
    pub fn postgres() -> Backend {
        Backend::Postgres {
            url: crate::postgres_admin::url(),
        }
    }

    /// `postgres` or `sqlite`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Postgres { .. } => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ScaleConfig {
    /// Shards of the stream (1–10,000).
    pub shards: usize,
    /// Workers, each with a store of its own (at least 2: one is aborted).
    pub workers: usize,
    /// Where the leases live.
    pub backend: Backend,
    /// Connections in each worker's store pool (PostgreSQL and SQLite). Defaults to 3.
    pub pool_size: u32,
    /// Records written per second to the whole stream, with random partition keys. Defaults
    /// to 1,000.
    pub records_per_second: u64,
    /// Bytes of each record's data. Defaults to 100.
    pub record_bytes: usize,
    /// Every worker's settings. Defaults to [`WorkerConfig::default`] (10 s leases) but
    /// starting at `TRIM_HORIZON`.
    pub worker_config: WorkerConfig,
    /// How long to wait for the balance from cold start. Defaults to 120 s.
    pub balance_limit: Duration,
    /// How long the workers settle once balanced, before the steady window: each confirms
    /// with a census, a second after the last change, that nothing is left to take. Measured
    /// and reported apart. Defaults to three taker intervals.
    pub settle: Duration,
    /// The steady window measured once balanced and settled (or once the wait for the balance
    /// gave up). Defaults to 30 s.
    pub window: Duration,
    /// How long the survivors keep running after the takeover, so that leases lost in the
    /// turbulence that follows count too. Defaults to 10 s.
    pub settle_after_takeover: Duration,
    /// How long each worker's graceful shutdown may take at the end. Defaults to 30 s.
    pub shutdown_limit: Duration,
    /// Prints what the run is doing to stderr.
    pub progress: bool,
}

impl ScaleConfig {
    /// `shards` × `workers` on `backend`, with the defaults.
    pub fn new(shards: usize, workers: usize, backend: Backend) -> ScaleConfig {
        let worker_config = WorkerConfig::default().initial_position(InitialPosition::TrimHorizon);
        ScaleConfig {
            shards,
            workers,
            backend,
            pool_size: 3,
            records_per_second: 1_000,
            record_bytes: 100,
            settle: worker_config.taker_interval * 3,
            worker_config,
            balance_limit: Duration::from_secs(120),
            window: Duration::from_secs(30),
            settle_after_takeover: Duration::from_secs(10),
            shutdown_limit: Duration::from_secs(30),
            progress: true,
        }
    }

    /// The connections a PostgreSQL run needs: every worker's pool and liveness connection,
    /// one more per worker for slack, and 20 for the administration and other sessions.
    pub fn postgres_connections_needed(&self) -> u64 {
        self.workers as u64 * (u64::from(self.pool_size) + 2) + 20
    }
}

/// Why a run did not happen.
#[derive(Debug)]
pub enum ScaleError {
    /// PostgreSQL could not be reached.
    PostgresUnreachable(String),
    /// PostgreSQL's `max_connections` is too low for the run.
    TooFewConnections {
        /// `SHOW max_connections`.
        max_connections: u64,
        /// [`ScaleConfig::postgres_connections_needed`].
        needed: u64,
    },
    /// The run could not be set up (engine, stores, workers).
    Setup(String),
}

impl fmt::Display for ScaleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScaleError::PostgresUnreachable(why) => write!(f, "PostgreSQL is unreachable: {why}"),
            ScaleError::TooFewConnections {
                max_connections,
                needed,
            } => write!(
                f,
                "PostgreSQL's max_connections is {max_connections}, and this run needs at least \
                 {needed} (workers x (pool size + 2) + 20: every worker has its pool and a \
                 liveness connection of its own). Raise it as a superuser with \
                 `ALTER SYSTEM SET max_connections = {needed};` and restart the server \
                 (`pg_ctlcluster 15 main restart`), or run fewer workers or a smaller pool"
            ),
            ScaleError::Setup(why) => write!(f, "the run could not be set up: {why}"),
        }
    }
}

impl std::error::Error for ScaleError {}

fn setup(what: &str) -> impl FnOnce(String) -> ScaleError + '_ {
    move |why| ScaleError::Setup(format!("{what}: {why}"))
}

/// Percentiles of a set of latencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    /// How many latencies.
    pub samples: usize,
    /// The median.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The largest.
    pub max: Duration,
}

impl LatencySummary {
    /// The summary of `samples`, `None` if there are none.
    pub fn of(mut samples: Vec<Duration>) -> Option<LatencySummary> {
        samples.sort_unstable();
        let last = *samples.last()?;
        let at = |q: f64| {
            let rank = (samples.len() as f64 * q).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        Some(LatencySummary {
            samples: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: last,
        })
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct ScaleReport {
    /// `postgres` or `sqlite`.
    pub backend: &'static str,
    /// Shards of the stream.
    pub shards: usize,
    /// Workers started.
    pub workers: usize,
    /// Connections in each worker's store pool.
    pub pool_size: u32,
    /// The workers' lease duration.
    pub lease_duration: Duration,
    /// The workers' taker interval.
    pub taker_interval: Duration,
    /// The workers' liveness interval.
    pub liveness_interval: Duration,
    /// The workers' checkpoint grouping delay, `None` when each checkpoint is written alone.
    pub group_checkpoints: Option<Duration>,
    /// The write load asked for, records per second.
    pub records_per_second: u64,
    /// From starting every worker until the shards were balanced; `None` if they were not
    /// within the limit.
    pub balance: Option<Duration>,
    /// The settling between the balance and the steady window, as measured.
    pub settling: Duration,
    /// Census calls while settling.
    pub settling_census: u64,
    /// Every PostgreSQL process's CPU while settling, as a fraction of one core (see
    /// `store_cpu`).
    pub settling_store_cpu: Option<f64>,
    /// The steady window as measured.
    pub window: Duration,
    /// Lease-store calls during the steady window.
    pub window_calls: CallCounts,
    /// Lease-store calls during the whole run, until the shutdown began.
    pub run_calls: CallCounts,
    /// Renewal calls' latency during the steady window (one sample per call, a batch call
    /// counting once); `None` if there was none.
    pub renew_latency: Option<LatencySummary>,
    /// The PostgreSQL server's CPU over the steady window, as a fraction of one core: every
    /// process on this machine whose name shows it is PostgreSQL. `None` for SQLite (the store
    /// runs in this process) or when no such process could be read.
    pub store_cpu: Option<f64>,
    /// The PostgreSQL processes read for `store_cpu`.
    pub store_processes: usize,
    /// As `store_cpu`, less the sessions of other clients of the server (other applications,
    /// other runs, the harness's own idle administration session): the run's own sessions and
    /// the server's background processes. The target is judged on this one when there is one.
    pub run_store_cpu: Option<f64>,
    /// The PostgreSQL processes read for `run_store_cpu`.
    pub run_store_processes: usize,
    /// This process's CPU over the steady window (workers, engine, writer; and SQLite), as a
    /// fraction of one core.
    pub bench_cpu: Option<f64>,
    /// Shards the aborted worker held.
    pub victim_shards: usize,
    /// From the abort until another live worker held every one of those shards; `None` if not
    /// within the lease duration + 30 s.
    pub takeover: Option<Duration>,
    /// Leases lost by the workers alive at the end, over the whole run (must be 0).
    pub leases_lost_by_live_workers: u64,
    /// The counters of the workers alive at the end, summed.
    pub live_metrics: MetricsSnapshot,
    /// The aborted worker's counters just before the abort.
    pub victim_metrics: MetricsSnapshot,
    /// Records the writer put into the stream.
    pub records_written: u64,
    /// Workers whose graceful shutdown did not finish within the limit.
    pub shutdown_timeouts: usize,
}

/// One of issue 19's targets, judged on a report.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCheck {
    /// What is judged.
    pub name: &'static str,
    /// The figure measured.
    pub measured: String,
    /// The target.
    pub target: String,
    /// Whether it was met; `None` when it does not apply (store CPU on SQLite).
    pub met: Option<bool>,
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn optional_secs(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "never".to_owned(), secs)
}

fn percent(fraction: Option<f64>) -> String {
    fraction.map_or_else(|| "-".to_owned(), |f| format!("{:.1} %", f * 100.0))
}

impl ScaleReport {
    /// `count` per second of the steady window.
    pub fn per_second(&self, count: u64) -> f64 {
        count as f64 / self.window.as_secs_f64().max(f64::EPSILON)
    }

    /// The store CPU the target is judged on: the run's own PostgreSQL processes if they could
    /// be told apart, else every PostgreSQL process.
    pub fn judged_store_cpu(&self) -> Option<f64> {
        self.run_store_cpu.or(self.store_cpu)
    }

    /// Issue 19's targets, judged on this report.
    pub fn targets(&self) -> Vec<TargetCheck> {
        let takeover_target = self.lease_duration + TAKEOVER_MARGIN_TARGET;
        vec![
            TargetCheck {
                name: "balance",
                measured: optional_secs(self.balance),
                target: format!("<= {}", secs(BALANCE_TARGET)),
                met: Some(self.balance.is_some_and(|b| b <= BALANCE_TARGET)),
            },
            TargetCheck {
                name: "store CPU",
                measured: percent(self.judged_store_cpu()),
                target: format!("< {:.0} %", STORE_CPU_TARGET * 100.0),
                met: self.judged_store_cpu().map(|cpu| cpu < STORE_CPU_TARGET),
            },
            TargetCheck {
                name: "renew p99",
                measured: self
                    .renew_latency
                    .map_or_else(|| "-".to_owned(), |l| ms(l.p99)),
                target: format!("< {}", ms(RENEW_P99_TARGET)),
                met: Some(self.renew_latency.is_some_and(|l| l.p99 < RENEW_P99_TARGET)),
            },
            TargetCheck {
                name: "takeover",
                measured: optional_secs(self.takeover),
                target: format!("<= {}", secs(takeover_target)),
                met: Some(self.takeover.is_some_and(|t| t <= takeover_target)),
            },
            TargetCheck {
                name: "leases lost by live workers",
                measured: self.leases_lost_by_live_workers.to_string(),
                target: "0".to_owned(),
                met: Some(self.leases_lost_by_live_workers == 0),
            },
        ]
    }

    /// One line: every target with its figure and whether it was met.
    pub fn summary(&self) -> String {
        let targets = self.targets();
        let judged = targets.iter().filter(|t| t.met.is_some()).count();
        let met = targets.iter().filter(|t| t.met == Some(true)).count();
        let shown: Vec<String> = targets
            .iter()
            .map(|t| {
                let verdict = match t.met {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "n/a",
                };
                format!("{} {} ({}) {verdict}", t.name, t.measured, t.target)
            })
            .collect();
        format!(
            "{} x {} on {}: {met} of {judged} targets met: {}",
            self.shards,
            self.workers,
            self.backend,
            shown.join("; ")
        )
    }

    /// The report as a Markdown table, with a heading line.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "lease_scale: {} shards x {} workers on {} (pool {} per worker), lease {:?}, taker \
             every {:?}, liveness every {:?}, {}, {} records/s; steady window {}\n\n",
            self.shards,
            self.workers,
            self.backend,
            self.pool_size,
            self.lease_duration,
            self.taker_interval,
            self.liveness_interval,
            self.group_checkpoints.map_or_else(
                || "checkpoints written one by one".to_owned(),
                |delay| format!("checkpoints grouped within {delay:?}")
            ),
            self.records_per_second,
            secs(self.window),
        ));
        out.push_str("| store calls (steady window) | calls/s | rows/s | batch calls/s | failed outcomes | cancelled |\n");
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: |\n");
        let rows = CallKind::ALL
            .iter()
            .map(|kind| (kind.name(), self.window_calls.get(*kind)))
            .chain(std::iter::once(("total", self.window_calls.total())));
        for (name, count) in rows {
            out.push_str(&format!(
                "| {name} | {:.1} | {:.1} | {:.1} | {} | {} |\n",
                self.per_second(count.calls),
                self.per_second(count.rows),
                self.per_second(count.batch_calls),
                count.errors,
                count.cancelled,
            ));
        }
        out.push('\n');
        out.push_str("| measure | value |\n| --- | ---: |\n");
        if self.backend == "postgres" {
            out.push_str(&format!(
                "| PostgreSQL CPU, every server process ({}), of one core | {} |\n",
                self.store_processes,
                percent(self.store_cpu)
            ));
            out.push_str(&format!(
                "| PostgreSQL CPU, this run's sessions and the background processes ({}), of \
                 one core | {} |\n",
                self.run_store_processes,
                percent(self.run_store_cpu)
            ));
        } else {
            out.push_str("| store CPU, of one core | - (SQLite runs in the bench process) |\n");
        }
        out.push_str(&format!(
            "| bench process CPU, of one core | {} |\n",
            percent(self.bench_cpu)
        ));
        let latency = self.renew_latency.map_or_else(
            || "-".to_owned(),
            |l| format!("{} / {} / {}", ms(l.p50), ms(l.p99), ms(l.max)),
        );
        let samples = self.renew_latency.map_or(0, |l| l.samples);
        out.push_str(&format!(
            "| renewal latency p50 / p99 / max ({samples} calls) | {latency} |\n"
        ));
        out.push_str(&format!(
            "| balanced from cold start | {} |\n",
            optional_secs(self.balance)
        ));
        out.push_str(&format!(
            "| settling once balanced, before the window: {}, census calls, PostgreSQL CPU | \
             {}, {} |\n",
            secs(self.settling),
            self.settling_census,
            percent(self.settling_store_cpu)
        ));
        out.push_str(&format!(
            "| takeover of the {} shards of an aborted worker | {} |\n",
            self.victim_shards,
            optional_secs(self.takeover)
        ));
        out.push_str(&format!(
            "| leases lost by live workers | {} |\n",
            self.leases_lost_by_live_workers
        ));
        let live = &self.live_metrics;
        out.push_str(&format!(
            "| live workers: leases taken / from dead / stolen / handoffs | {} / {} / {} / {} |\n",
            live.leases_taken,
            live.leases_taken_from_dead,
            live.leases_stolen,
            live.handoffs_completed
        ));
        out.push_str(&format!(
            "| records written / processed (live + aborted before the abort) | {} / {} |\n",
            self.records_written,
            live.records_processed + self.victim_metrics.records_processed
        ));
        if self.shutdown_timeouts > 0 {
            out.push_str(&format!(
                "| workers not shut down in time | {} |\n",
                self.shutdown_timeouts
            ));
        }
        out
    }

    /// Prints [`table`](Self::table) and [`summary`](Self::summary) to stdout.
    pub fn print(&self) {
        println!("{}", self.table());
        println!("targets: {}", self.summary());
    }
}

/// A store as opened, to hand to a worker and to close at the end.
enum OpenStore {
    Postgres(Box<PostgresLeaseStore>),
    Sqlite(SqliteLeaseStore),
}

impl OpenStore {
    fn shared(&self) -> Arc<dyn LeaseStore> {
        match self {
            OpenStore::Postgres(store) => Arc::new(PostgresLeaseStore::clone(store)),
            OpenStore::Sqlite(store) => Arc::new(store.clone()),
        }
    }

    async fn close(&self) {
        match self {
            OpenStore::Postgres(store) => store.close().await,
            OpenStore::Sqlite(store) => store.close().await,
        }
    }
}

/// How the run's stores are opened.
enum Stores {
    Postgres { url: String, table: String },
    Sqlite { url: String },
}

impl Stores {
    async fn open(&self, pool: u32) -> Result<OpenStore, String> {
        match self {
            Stores::Postgres { url, table } => PostgresLeaseStore::connect_with(
                PostgresLeaseStoreConfig::new(url.clone())
                    .table(table.clone())
                    .max_connections(pool)
                    .application_name(table.clone()),
            )
            .await
            .map(|store| OpenStore::Postgres(Box::new(store)))
            .map_err(|e| e.to_string()),
            Stores::Sqlite { url } => SqliteLeaseStore::connect_with(
                SqliteLeaseStoreConfig::new(url).max_connections(pool),
            )
            .await
            .map(OpenStore::Sqlite)
            .map_err(|e| e.to_string()),
        }
    }
}

/// Prints progress lines to stderr, timed from the run's start.
struct Progress {
    on: bool,
    started: Instant,
    label: String,
}

impl Progress {
    fn say(&self, what: impl fmt::Display) {
        if self.on {
            eprintln!(
                "[lease_scale {} {:>7.2} s] {what}",
                self.label,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// The administration session of a PostgreSQL run: tells the run's sessions from other
/// clients', and drops the run's tables at the end.
struct PgWatch {
    admin: PgConnection,
    /// The run's sessions' `application_name`: its table's name.
    application: String,
}

impl PgWatch {
    /// The process ids of the server's client sessions that are not the run's.
    async fn other_sessions(&mut self) -> HashSet<u32> {
        sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' \
             AND application_name IS DISTINCT FROM $1",
        )
        .bind(&self.application)
        .fetch_all(&mut self.admin)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pid| u32::try_from(pid).ok())
        .collect()
    }
}

/// A lease table name no other run uses.
fn unique_table() -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 10_000_000_000);
    format!(
        "lease_scale_{}_{millis}_{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}

async fn drop_tables(admin: &mut PgConnection, table: &str) -> Result<(), String> {
    PostgresLeaseStore::drop_tables(admin, table)
        .await
        .map_err(|e| e.to_string())
}

/// Runs `config` once. PostgreSQL: refuses when `max_connections` is too low, and drops the
/// run's tables at the end.
pub async fn run(config: &ScaleConfig) -> Result<ScaleReport, ScaleError> {
    if config.workers < 2 {
        return Err(ScaleError::Setup(
            "at least 2 workers are needed (one is aborted)".to_owned(),
        ));
    }
    if !(1..=10_000).contains(&config.shards) {
        return Err(ScaleError::Setup(format!(
            "{} shards is outside 1..=10000",
            config.shards
        )));
    }
    let progress = Progress {
        on: config.progress,
        started: Instant::now(),
        label: format!(
            "{}x{} {}",
            config.shards,
            config.workers,
            config.backend.name()
        ),
    };
    match &config.backend {
        Backend::Postgres { url } => {
            let mut admin = PgConnection::connect(url)
                .await
                .map_err(|e| ScaleError::PostgresUnreachable(format!("{url}: {e}")))?;
            let shown: String = sqlx::query_scalar("SHOW max_connections")
                .fetch_one(&mut admin)
                .await
                .map_err(|e| ScaleError::Setup(format!("SHOW max_connections: {e}")))?;
            let max_connections: u64 = shown.trim().parse().map_err(|e| {
                ScaleError::Setup(format!("max_connections {shown:?} is not a number: {e}"))
            })?;
            let needed = config.postgres_connections_needed();
            if max_connections < needed {
                return Err(ScaleError::TooFewConnections {
                    max_connections,
                    needed,
                });
            }
            let autovacuum: String = sqlx::query_scalar("SHOW autovacuum")
                .fetch_one(&mut admin)
                .await
                .map_err(|e| ScaleError::Setup(format!("SHOW autovacuum: {e}")))?;
            let table = unique_table();
            progress.say(format_args!(
                "PostgreSQL max_connections {max_connections} (needs {needed}), autovacuum \
                 {autovacuum}; table {table}"
            ));
            if autovacuum != "on" {
                progress.say(format_args!(
                    "autovacuum is off (servers run it by default): the lease table keeps every \
                     dead row version and every read of it slows; `ALTER SYSTEM SET autovacuum \
                     = on; SELECT pg_reload_conf();` measures what a default server does"
                ));
            }
            let stores = Stores::Postgres {
                url: url.clone(),
                table: table.clone(),
            };
            let mut watch = PgWatch {
                admin,
                application: table.clone(),
            };
            let report = run_on(config, &stores, Some(&mut watch), &progress).await;
            if let Err(e) = drop_tables(&mut watch.admin, &table).await {
                eprintln!("lease_scale: dropping the tables of {table} failed: {e}");
            }
            let _ = watch.admin.close().await;
            report
        }
        Backend::Sqlite => {
            let dir = tempfile::tempdir()
                .map_err(|e| ScaleError::Setup(format!("a temporary directory: {e}")))?;
            let url = format!("sqlite://{}", dir.path().join("leases.db").display());
            progress.say(format_args!("SQLite file {url}"));
            run_on(config, &Stores::Sqlite { url }, None, &progress).await
        }
    }
}

/// The run proper, on stores opened by `stores`.
async fn run_on(
    config: &ScaleConfig,
    stores: &Stores,
    watch: Option<&mut PgWatch>,
    progress: &Progress,
) -> Result<ScaleReport, ScaleError> {
    let engine = Engine::open(EngineConfig::in_memory())
        .map_err(|e| ScaleError::Setup(format!("opening the engine: {e}")))?;
    engine
        .create_stream(STREAM, StreamOptions::with_shards(config.shards as u64))
        .map_err(|e| ScaleError::Setup(format!("creating the stream: {e}")))?;
    let mut opened = Vec::with_capacity(config.workers);
    for i in 0..config.workers {
        match stores.open(config.pool_size).await {
            Ok(store) => opened.push(store),
            Err(why) => {
                close_all(&opened).await;
                return Err(setup("opening the lease stores")(format!(
                    "store {} of {}: {why}",
                    i + 1,
                    config.workers
                )));
            }
        }
    }
    progress.say(format_args!("{} stores open", opened.len()));
    let report = measure(config, &engine, &opened, watch, progress).await;
    close_all(&opened).await;
    report
}

/// Closes every store, each bounded (a worker that failed to stop may still hold a connection).
async fn close_all(stores: &[OpenStore]) {
    for store in stores {
        let _ = tokio::time::timeout(Duration::from_secs(5), store.close()).await;
    }
}

async fn measure(
    config: &ScaleConfig,
    engine: &Engine,
    stores: &[OpenStore],
    mut watch: Option<&mut PgWatch>,
    progress: &Progress,
) -> Result<ScaleReport, ScaleError> {
    let counters = StoreCounters::new();
    let written = Arc::new(AtomicU64::new(0));
    let writer = spawn_writer(
        engine.clone(),
        config.records_per_second,
        config.record_bytes,
        Arc::clone(&written),
    );
    let started = Instant::now();
    let mut workers: Vec<WorkerHandle> = Vec::with_capacity(stores.len());
    for (i, store) in stores.iter().enumerate() {
        let counted: Arc<dyn LeaseStore> = Arc::new(CountingLeaseStore::new(
            store.shared(),
            Arc::clone(&counters),
        ));
        let worker = Worker::builder().stream(STREAM).and_then(|builder| {
            builder
                .name(&format!("scale{i}"))
                .source(Arc::new(engine.clone()))
                .lease_store(counted)
                .processor_factory(process_with(|_, _| Ok(())))
                .config(config.worker_config.clone())
                .build()
        });
        match worker {
            Ok(worker) => workers.push(worker.start()),
            Err(e) => {
                writer.abort();
                shut_down(workers, config.shutdown_limit).await;
                return Err(ScaleError::Setup(format!("building worker {i}: {e}")));
            }
        }
    }
    progress.say(format_args!("{} workers started", workers.len()));

    let balance = wait_balanced(
        &workers,
        config.shards,
        config.balance_limit,
        started,
        progress,
    )
    .await;
    match balance {
        Some(took) => progress.say(format_args!("balanced after {}", secs(took))),
        None => progress.say(format_args!(
            "not balanced within {}; measuring anyway",
            secs(config.balance_limit)
        )),
    }

    let ticks = clock_ticks();
    progress.say(format_args!("settling for {}", secs(config.settle)));
    let settling_calls = counters.snapshot();
    let settling_postgres = postgres_ticks();
    let settling_started = Instant::now();
    tokio::time::sleep(config.settle).await;
    let settling = settling_started.elapsed();
    let settling_census = counters
        .snapshot()
        .since(&settling_calls)
        .get(CallKind::Census)
        .calls;
    let settling_store_cpu = match config.backend {
        Backend::Postgres { .. } => {
            let (used, processes) =
                ticks_between(&settling_postgres, &postgres_ticks(), &HashSet::new());
            (processes > 0).then(|| used as f64 / ticks / settling.as_secs_f64())
        }
        Backend::Sqlite => None,
    };

    progress.say(format_args!("steady window of {}", secs(config.window)));
    let counts_before = counters.snapshot();
    let _ = counters.take_renew_latencies();
    let mut others = match watch.as_deref_mut() {
        Some(watch) => watch.other_sessions().await,
        None => HashSet::new(),
    };
    let postgres_before = postgres_ticks();
    let self_before = stat_ticks("/proc/self/stat");
    let window_started = Instant::now();
    tokio::time::sleep(config.window).await;
    let window = window_started.elapsed();
    let postgres_after = postgres_ticks();
    let self_after = stat_ticks("/proc/self/stat");
    if let Some(watch) = watch.as_deref_mut() {
        others.extend(watch.other_sessions().await);
    }
    let window_calls = counters.snapshot().since(&counts_before);
    let renew_latency = LatencySummary::of(counters.take_renew_latencies());
    let cpu = |ticks_used: u64| ticks_used as f64 / ticks / window.as_secs_f64();
    let postgres_cpu = |skip: &HashSet<u32>| match config.backend {
        Backend::Postgres { .. } => {
            let (used, processes) = ticks_between(&postgres_before, &postgres_after, skip);
            ((processes > 0).then(|| cpu(used)), processes)
        }
        Backend::Sqlite => (None, 0),
    };
    let (store_cpu, store_processes) = postgres_cpu(&HashSet::new());
    let (run_store_cpu, run_store_processes) = if watch.is_some() {
        postgres_cpu(&others)
    } else {
        (None, 0)
    };
    let bench_cpu = self_before
        .zip(self_after)
        .map(|(before, after)| cpu(after.saturating_sub(before)));

    // The victim: the worker holding the most shards.
    let victim_index = workers
        .iter()
        .enumerate()
        .max_by_key(|(_, w)| w.held_shards().len())
        .map_or(0, |(i, _)| i);
    let victim = workers.remove(victim_index);
    let victim_held: Vec<ShardId> = victim.held_shards();
    let victim_metrics = victim.metrics();
    progress.say(format_args!(
        "aborting {} holding {} shards",
        victim.id(),
        victim_held.len()
    ));
    let aborted = Instant::now();
    victim.abort();
    let takeover_limit = config.worker_config.lease_duration + Duration::from_secs(30);
    let takeover = wait_taken_over(&workers, &victim_held, takeover_limit, aborted).await;
    progress.say(format_args!("taken over after {}", optional_secs(takeover)));
    tokio::time::sleep(config.settle_after_takeover).await;

    let live_metrics = workers
        .iter()
        .map(WorkerHandle::metrics)
        .fold(MetricsSnapshot::default(), add_metrics);
    let run_calls = counters.snapshot();
    writer.abort();
    let records_written = written.load(Ordering::Relaxed);
    progress.say("shutting the workers down");
    let shutdown_timeouts = shut_down(workers, config.shutdown_limit).await;
    progress.say("done");
    Ok(ScaleReport {
        backend: config.backend.name(),
        shards: config.shards,
        workers: config.workers,
        pool_size: config.pool_size,
        lease_duration: config.worker_config.lease_duration,
        taker_interval: config.worker_config.taker_interval,
        liveness_interval: config.worker_config.liveness_interval,
        group_checkpoints: config.worker_config.group_checkpoints,
        records_per_second: config.records_per_second,
        balance,
        settling,
        settling_census,
        settling_store_cpu,
        window,
        window_calls,
        run_calls,
        renew_latency,
        store_cpu,
        store_processes,
        run_store_cpu,
        run_store_processes,
        bench_cpu,
        victim_shards: victim_held.len(),
        takeover,
        leases_lost_by_live_workers: live_metrics.leases_lost,
        live_metrics,
        victim_metrics,
        records_written,
        shutdown_timeouts,
    })
}

fn add_metrics(sum: MetricsSnapshot, m: MetricsSnapshot) -> MetricsSnapshot {
    MetricsSnapshot {
        records_processed: sum.records_processed + m.records_processed,
        leases_taken: sum.leases_taken + m.leases_taken,
        leases_stolen: sum.leases_stolen + m.leases_stolen,
        leases_taken_from_dead: sum.leases_taken_from_dead + m.leases_taken_from_dead,
        leases_lost: sum.leases_lost + m.leases_lost,
        handoffs_completed: sum.handoffs_completed + m.handoffs_completed,
        processor_failures: sum.processor_failures + m.processor_failures,
        shard_ends_not_checkpointed: sum.shard_ends_not_checkpointed
            + m.shard_ends_not_checkpointed,
    }
}

/// Writes `rate` records per second with random partition keys until aborted, counting them
/// in `written`; keeps to the rate on average even when ticks are late.
fn spawn_writer(
    engine: Engine,
    rate: u64,
    record_bytes: usize,
    written: Arc<AtomicU64>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if rate == 0 {
            return;
        }
        let data = Bytes::from(vec![b'x'; record_bytes]);
        let mut rng = SeededRng::new(19);
        let started = Instant::now();
        let mut sent: u64 = 0;
        let mut ticks = tokio::time::interval(Duration::from_millis(10));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                let n = (due - sent).min(MAX_RECORDS_PER_PUT as u64);
                let batch: Vec<PutRecordsEntry> = (0..n)
                    .map(|_| {
                        PutRecordsEntry::new(format!("k{:016x}", rng.next_u64()), data.clone())
                    })
                    .collect();
                sent += n;
                if let Ok(outcomes) = engine.put_records(STREAM, &batch) {
                    let ok = outcomes.iter().filter(|o| o.is_ok()).count() as u64;
                    written.fetch_add(ok, Ordering::Relaxed);
                }
            }
        }
    })
}

/// Whether every shard is held by exactly one worker and every worker holds the floor or the
/// ceiling of shards / workers.
fn balanced(held: &[Vec<ShardId>], shards: usize) -> bool {
    let floor = shards / held.len();
    let ceil = shards.div_ceil(held.len());
    if held.iter().any(|h| h.len() < floor || h.len() > ceil) {
        return false;
    }
    if held.iter().map(Vec::len).sum::<usize>() != shards {
        return false;
    }
    let distinct: HashSet<&ShardId> = held.iter().flatten().collect();
    distinct.len() == shards
}

/// Polls until balanced; the time since `since`, `None` past `limit`. Says every five seconds
/// how far the workers are: shards held in all, and the fewest and most one worker holds.
async fn wait_balanced(
    workers: &[WorkerHandle],
    shards: usize,
    limit: Duration,
    since: Instant,
    progress: &Progress,
) -> Option<Duration> {
    let mut next_report = Duration::from_secs(5);
    loop {
        let held: Vec<Vec<ShardId>> = workers.iter().map(WorkerHandle::held_shards).collect();
        if balanced(&held, shards) {
            return Some(since.elapsed());
        }
        if since.elapsed() >= limit {
            return None;
        }
        if since.elapsed() >= next_report {
            next_report += Duration::from_secs(5);
            let counts = held.iter().map(Vec::len);
            progress.say(format_args!(
                "held {} of {shards}; per worker {} to {}",
                held.iter().map(Vec::len).sum::<usize>(),
                counts.clone().min().unwrap_or(0),
                counts.max().unwrap_or(0),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until every shard of `shards` is held by one of `workers`; the time since `since`,
/// `None` past `limit`.
async fn wait_taken_over(
    workers: &[WorkerHandle],
    shards: &[ShardId],
    limit: Duration,
    since: Instant,
) -> Option<Duration> {
    loop {
        let held: HashSet<ShardId> = workers.iter().flat_map(WorkerHandle::held_shards).collect();
        if shards.iter().all(|shard| held.contains(shard)) {
            return Some(since.elapsed());
        }
        if since.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Shuts every worker down at once, each bounded by `limit`; how many did not finish in time.
async fn shut_down(workers: Vec<WorkerHandle>, limit: Duration) -> usize {
    let stopping: Vec<JoinHandle<bool>> = workers
        .into_iter()
        .map(|worker| {
            tokio::spawn(async move {
                matches!(
                    tokio::time::timeout(limit, worker.shutdown()).await,
                    Ok(Ok(()))
                )
            })
        })
        .collect();
    let mut late = 0;
    for stopping in stopping {
        if !stopping.await.unwrap_or(false) {
            late += 1;
        }
    }
    late
}

/// Clock ticks per second (`getconf CLK_TCK`), 100 if it cannot be read.
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of the process whose `stat` file is at `path`, in clock ticks.
fn stat_ticks(path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name, in parentheses, may hold spaces: the fields after its closing one are
    // state (3), ... utime (14), stime (15).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Whether the process of `/proc/<pid>` is PostgreSQL: its `comm` or its command line says so.
fn is_postgres(pid_dir: &std::path::Path) -> bool {
    let comm = std::fs::read_to_string(pid_dir.join("comm")).unwrap_or_default();
    if comm.trim() == "postgres" {
        return true;
    }
    let cmdline = std::fs::read(pid_dir.join("cmdline")).unwrap_or_default();
    let first = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let program = first.rsplit('/').next().unwrap_or_default();
    program.starts_with("postgres")
}

/// The CPU ticks of every PostgreSQL process on this machine, by process id.
fn postgres_ticks() -> HashMap<u32, u64> {
    let mut ticks = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return ticks;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        if !is_postgres(&dir) {
            continue;
        }
        if let Some(used) = dir.join("stat").to_str().and_then(stat_ticks) {
            ticks.insert(pid, used);
        }
    }
    ticks
}

/// The ticks used between two readings by the processes not in `skip`, and how many were
/// read: for a process in both readings, the difference; for one started in between, all of
/// its ticks. A process that ended in between is missed (the lease stores' connections live
/// through the window).
fn ticks_between(
    before: &HashMap<u32, u64>,
    after: &HashMap<u32, u64>,
    skip: &HashSet<u32>,
) -> (u64, usize) {
    let counted: Vec<(&u32, &u64)> = after
        .iter()
        .filter(|(pid, _)| !skip.contains(pid))
        .collect();
    let used = counted
        .iter()
        .map(|(pid, now)| now.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum();
    (used, counted.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(i: usize) -> ShardId {
        ShardId::new(&format!("shardId-{i:012}")).expect("shard id")
    }

    #[test]
    fn balance_needs_every_shard_once_and_even_shares() {
        let held = |groups: &[&[usize]]| -> Vec<Vec<ShardId>> {
            groups
                .iter()
                .map(|g| g.iter().map(|i| shard(*i)).collect())
                .collect()
        };
        assert!(balanced(&held(&[&[0, 1], &[2]]), 3));
        assert!(balanced(&held(&[&[0], &[1, 2]]), 3));
        assert!(!balanced(&held(&[&[0, 1, 2], &[]]), 3), "uneven");
        assert!(!balanced(&held(&[&[0, 1], &[1]]), 3), "shard 2 unheld");
        assert!(!balanced(&held(&[&[0, 1], &[1, 2]]), 3), "shard 1 twice");
    }

    #[test]
    fn latency_percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let summary = LatencySummary::of(samples).expect("samples");
        assert_eq!(summary.p50, Duration::from_millis(50));
        assert_eq!(summary.p99, Duration::from_millis(99));
        assert_eq!(summary.max, Duration::from_millis(100));
        assert_eq!(LatencySummary::of(Vec::new()), None);
    }

    #[test]
    fn this_process_has_cpu_ticks() {
        assert!(stat_ticks("/proc/self/stat").is_some());
        assert!(clock_ticks() > 0.0);
    }
}
