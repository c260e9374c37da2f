//! A cluster for the multi-process tests and benches: `kcl engine serve` with one stream written
//! at a steady rate, worker processes sharing one lease store (a SQLite file, or a PostgreSQL
//! table of their own, which one worker may reach through a `black_hole_proxy`), a connection of
//! the test's own to read the leases, a worker killed and its shards watched until they resume
//! elsewhere, and the end of a run: stop writing, wait until every acknowledged record was
//! processed, stop the workers and check their logs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use kcl_core::{LeaseStore, StreamName};
use kcl_store_postgres::{PostgresLeaseStore, PostgresLeaseStoreConfig};
use kcl_store_sqlite::SqliteLeaseStore;
use sqlx::PgConnection;

use crate::black_hole_proxy::url_through;
use crate::http_producer::HttpProducer;
use crate::late_deliveries::{self, HeldLease};
use crate::log_checker::{self, Report, Takeover, WorkerFault};
use crate::postgres_admin;
use crate::processes::{self, EngineServer, WorkerProcess, WorkerSettings};
use crate::processor_faults::ProcessorFaults;
use crate::stream_admin;
use crate::wait::wait_until;
use crate::worker_log::{Event, read_logs, wall_micros};

/// Where the workers keep their leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseBackend {
    /// One SQLite file in the cluster's temporary directory.
    Sqlite,
    /// A PostgreSQL table of the cluster's own (`KCL_TEST_POSTGRES_URL`).
    Postgres,
}

/// What a cluster is made of.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The stream's name, and the start of the PostgreSQL table's (with the process id after
    /// it): short, lowercase.
    pub name: &'static str,
    /// Where the leases are kept.
    pub backend: LeaseBackend,
    /// The stream's shards.
    pub shards: usize,
    /// The worker processes, `w1` to `wN`.
    pub workers: usize,
    /// The workers' lease duration.
    pub lease: Duration,
    /// The workers' taker interval.
    pub taker: Duration,
    /// How often processors checkpoint (zero: after every batch).
    pub checkpoint_interval: Duration,
    /// What processors inject.
    pub processor_faults: ProcessorFaults,
    /// A worker (by index: `w1` is 0) that reaches PostgreSQL through the proxy at this address
    /// (`black_hole_proxy`) rather than directly.
    pub proxied: Option<(usize, SocketAddr)>,
}

impl ClusterConfig {
    /// Six shards over three workers with the test worker's defaults (2 s leases, taken every
    /// 500 ms), checkpoints after every batch, no processor faults and no proxy.
    pub fn new(name: &'static str, backend: LeaseBackend) -> ClusterConfig {
        ClusterConfig {
            name,
            backend,
            shards: 6,
            workers: 3,
            lease: Duration::from_secs(2),
            taker: Duration::from_millis(500),
            checkpoint_interval: Duration::ZERO,
            processor_faults: ProcessorFaults::default(),
            proxied: None,
        }
    }
}

/// The engine, the producer, the workers, and the lease store they share.
pub struct ProcessCluster {
    /// A client of the engine.
    pub client: Client,
    /// The worker processes, `w1` first.
    pub workers: Vec<WorkerProcess>,
    /// Where the workers log.
    pub log_dir: PathBuf,
    config: ClusterConfig,
    producer: Option<HttpProducer>,
    store: Arc<dyn LeaseStore>,
    /// The administrative connection and the table, for PostgreSQL.
    postgres: Option<(PgConnection, String)>,
    /// Whether [`finish`](Self::finish) keeps the logs even when the guarantees hold.
    keep_logs: bool,
    _server: EngineServer,
    dir: tempfile::TempDir,
}

impl ProcessCluster {
    /// Starts the engine, creates the stream and the lease tables, starts writing 240 records a
    /// second over 96 keys and starts the workers from `binary` (the test's
    /// `CARGO_BIN_EXE_kcl-test-worker`, or `KCL_TEST_WORKER_BIN` when set). `None` when
    /// PostgreSQL is unreachable outside CI.
    pub async fn start(config: ClusterConfig, binary: &str) -> Option<ProcessCluster> {
        ProcessCluster::start_from(config, &processes::worker_binary(binary)).await
    }

    /// [`start`](Self::start) with the workers started from exactly `binary`, whatever
    /// `KCL_TEST_WORKER_BIN` says: for comparing a worker built at another commit.
    pub async fn start_from(config: ClusterConfig, binary: &Path) -> Option<ProcessCluster> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log_dir = dir.path().join("logs");
        std::fs::create_dir(&log_dir).expect("the log directory");
        // The tables are created once here, rather than by several processes racing to.
        let (leases, table, store, postgres): (_, _, Arc<dyn LeaseStore>, _) = match config.backend
        {
            LeaseBackend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("leases.db").display());
                let store = SqliteLeaseStore::connect(&url)
                    .await
                    .expect("the SQLite lease store");
                (url, None, Arc::new(store), None)
            }
            LeaseBackend::Postgres => {
                let mut admin = postgres_admin::connect().await?;
                let table = format!("{}_{}", config.name, std::process::id());
                postgres_admin::fresh_tables(&mut admin, &table).await;
                let store = PostgresLeaseStore::connect_with(
                    PostgresLeaseStoreConfig::new(postgres_admin::url())
                        .table(&table)
                        .max_connections(1),
                )
                .await
                .unwrap_or_else(|e| panic!("the lease table {table}: {e}"));
                (
                    postgres_admin::url(),
                    Some(table.clone()),
                    Arc::new(store),
                    Some((admin, table)),
                )
            }
        };
        let server = EngineServer::start();
        let client = kcl_kinesis::local_client(&server.endpoint);
        stream_admin::create_stream(&client, config.name, config.shards as i32).await;
        stream_admin::wait_until_listed(&client, config.name).await;
        let producer = HttpProducer::start(
            client.clone(),
            config.name,
            96,
            24,
            Duration::from_millis(100),
        );
        let settings = WorkerSettings {
            endpoint: server.endpoint.clone(),
            stream: config.name.to_owned(),
            leases,
            table,
            application_name: None,
            lease: config.lease,
            taker: config.taker,
            checkpoint_interval: config.checkpoint_interval,
            processor_faults: config.processor_faults,
            log_dir: log_dir.clone(),
        };
        let workers = (0..config.workers)
            .map(|i| {
                let mut settings = settings.clone();
                if let Some((_, proxy)) = config.proxied.filter(|(proxied, _)| *proxied == i) {
                    settings.leases = url_through(&settings.leases, proxy)
                        .expect("a postgres://host:port URL to proxy")
                        .0;
                }
                WorkerProcess::start(binary, &format!("w{}", i + 1), &settings)
            })
            .collect();
        Some(ProcessCluster {
            client,
            workers,
            log_dir,
            config,
            producer: Some(producer),
            store,
            postgres,
            keep_logs: false,
            _server: server,
            dir,
        })
    }

    /// Everything the workers logged so far.
    pub fn events(&self) -> Vec<Event> {
        read_logs(&self.log_dir)
    }

    /// The shards the current incarnation of worker `i` holds, by its log.
    pub fn held_by(&self, i: usize) -> BTreeSet<String> {
        log_checker::shards_held(&self.events())
            .remove(&self.workers[i].instance())
            .unwrap_or_default()
    }

    /// Waits (at most `limit`) until every running worker holds at least one shard and every
    /// shard is held by a running worker; returns whether that happened.
    pub async fn wait_until_spread(&self, limit: Duration) -> bool {
        wait_until(limit, || {
            let held = log_checker::shards_held(&self.events());
            let mut covered = BTreeSet::new();
            for worker in self.workers.iter().filter(|w| w.is_alive()) {
                match held.get(&worker.instance()) {
                    Some(shards) if !shards.is_empty() => covered.extend(shards),
                    _ => return false,
                }
            }
            covered.len() == self.config.shards
        })
        .await
    }

    /// Waits (at most `limit`) until every worker holds the same share of the shards and every
    /// shard's processor has logged the epoch it works at; returns whether that happened.
    pub async fn wait_until_balanced(&self, limit: Duration) -> bool {
        let share = self.config.shards / self.config.workers;
        wait_until(limit, || {
            let events = self.events();
            let held = log_checker::shards_held(&events);
            let working = late_deliveries::held_leases(&events)
                .iter()
                .filter(|run| run.ended.is_none() && run.epoch.is_some())
                .count();
            working == self.config.shards
                && self.workers.iter().all(|worker| {
                    held.get(&worker.instance())
                        .is_some_and(|shards| shards.len() == share)
                })
        })
        .await
    }

    /// The runs worker `i` holds now by its log, each once it logged the epoch it works at.
    pub fn leases_of(&self, i: usize) -> Vec<HeldLease> {
        let instance = self.workers[i].instance();
        let now = wall_micros();
        late_deliveries::held_leases(&self.events())
            .into_iter()
            .filter(|run| run.w == instance && run.held_at(now) && run.epoch.is_some())
            .collect()
    }

    /// SIGKILLs worker `i`; returns the fault, whose takeovers [`finish`](Self::finish)'s report
    /// then measures.
    pub fn kill(&mut self, i: usize) -> WorkerFault {
        let instance = self.workers[i].instance();
        let at = self.workers[i].kill();
        WorkerFault {
            kind: "kill",
            instance,
            at,
        }
    }

    /// The takeovers of `fault`'s shards so far, by the logs.
    pub fn takeovers(&self, fault: &WorkerFault) -> Vec<Takeover> {
        takeovers_of(&self.events(), fault)
    }

    /// Waits (at most `limit`) until every shard `fault`'s worker held has been taken over and
    /// has processed a record since, so that its new owner's first record, waiting or not, is in
    /// the logs; returns whether that happened.
    pub async fn wait_until_resumed(&self, fault: &WorkerFault, limit: Duration) -> bool {
        wait_until(limit, || {
            let events = self.events();
            let takeovers = takeovers_of(&events, fault);
            !takeovers.is_empty()
                && takeovers.iter().all(|takeover| {
                    let Some(after) = takeover.after else {
                        return false;
                    };
                    takeover.first_record_after.is_some()
                        || events.iter().any(|event| {
                            matches!(event, Event::Record { shard, t, .. }
                                if *shard == takeover.shard && *t >= fault.at + after)
                        })
                })
        })
        .await
    }

    /// The shards whose leases the current incarnation of worker `i` owns in the store, each
    /// with the time left before the lease expires there (zero once expired).
    pub async fn lease_time_left(&self, i: usize) -> BTreeMap<String, Duration> {
        let instance = self.workers[i].instance();
        let worker_id = self
            .events()
            .into_iter()
            .find_map(|event| match event {
                Event::Hello { w, worker_id, .. } if w == instance => Some(worker_id),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{instance} logged no hello"));
        let stream = StreamName::new(self.config.name).expect("a valid stream name");
        self.store
            .list_leases(&stream)
            .await
            .unwrap_or_else(|e| panic!("listing the leases: {e}"))
            .into_iter()
            .filter(|lease| lease.owner.as_ref().map(|o| o.as_str()) == Some(worker_id.as_str()))
            .map(|lease| {
                (
                    lease.key.shard.to_string(),
                    lease.time_left.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Makes [`finish`](Self::finish) keep the logs even if the guarantees hold: for a test
    /// whose own checks failed.
    pub fn keep_logs(&mut self) {
        self.keep_logs = true;
    }

    /// Stops the producer, waits (at most a minute) until every acknowledged record was
    /// processed, fails if a running worker exited by itself, stops everything and checks the
    /// logs against `faults`. Prints the summary; keeps the logs (and prints where) when a
    /// guarantee broke or [`keep_logs`](Self::keep_logs) asked.
    pub async fn finish(mut self, faults: &[WorkerFault]) -> Report {
        let produced = self.producer.take().expect("producing").stop().await;
        let drained = wait_until(Duration::from_secs(60), || {
            let processed = log_checker::processed_records(&self.events());
            produced.acknowledged.is_subset(&processed)
        })
        .await;
        for worker in &mut self.workers {
            worker.assert_running();
        }
        let shards = stream_admin::list_shards(&self.client, self.config.name).await;
        self.workers.clear();
        let report = log_checker::check(&self.events(), &produced.acknowledged, &shards, faults);
        println!(
            "{}\nunacknowledged puts (not required): {}; drained: {drained}",
            report.summary(),
            produced.unacknowledged
        );
        if let Some((mut admin, table)) = self.postgres.take() {
            postgres_admin::drop_tables(&mut admin, &table).await;
        }
        if self.keep_logs || !report.lost.is_empty() || !report.violations.is_empty() {
            println!("worker logs kept in {}", self.dir.keep().display());
        }
        report
    }
}

/// The takeovers of `fault`'s shards, by `events`.
fn takeovers_of(events: &[Event], fault: &WorkerFault) -> Vec<Takeover> {
    log_checker::check(events, &BTreeSet::new(), &[], std::slice::from_ref(fault)).takeovers
}

/// How long a shard went unprocessed after a fault, as its consumers see it: until its next owner
/// processed the first record that was waiting, or began the shard when none was. `None` if it
/// was never taken over.
pub fn resumed_after(takeover: &Takeover) -> Option<Duration> {
    takeover
        .first_record_after
        .or(takeover.after)
        .map(Duration::from_micros)
}
