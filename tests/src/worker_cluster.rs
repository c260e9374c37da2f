//! A cluster of worker processes for the multi-process tests that keep their leases in
//! PostgreSQL: `kcl engine serve` with one stream, a producer writing to it all along, worker
//! processes sharing a fresh lease table, and at the end the checker's verdict on their logs.
//!
//! Each worker's lease store URL is chosen by the test, so that one worker can reach PostgreSQL
//! through a proxy (`black_hole_proxy`) that the test then black-holes or cuts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use sqlx::PgConnection;

use crate::http_producer::HttpProducer;
use crate::late_deliveries::{self, HeldLease};
use crate::log_checker::{self, Report};
use crate::postgres_admin;
use crate::processes::{EngineServer, WorkerProcess, WorkerSettings};
use crate::processor_faults::ProcessorFaults;
use crate::stream_admin;
use crate::wait::wait_until;
use crate::worker_log::{Event, read_logs, wall_micros};

/// What a cluster is made of.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    /// Names the lease table (with the test process's id) and the stream.
    pub name: &'static str,
    /// The stream's shards; a multiple of `workers`, so that a balanced cluster gives each
    /// worker the same share.
    pub shards: usize,
    /// Worker processes, named `w1`, `w2`, ...
    pub workers: usize,
    /// The lease duration.
    pub lease: Duration,
    /// The taker interval.
    pub taker: Duration,
    /// How often processors checkpoint (zero: after every batch).
    pub checkpoint_interval: Duration,
    /// What processors inject.
    pub processor_faults: ProcessorFaults,
}

/// The running cluster. Dropping it stops every process; [`finish`](Self::finish) also checks
/// the logs and drops the lease table.
pub struct WorkerCluster {
    admin: PgConnection,
    table: String,
    stream: String,
    _server: EngineServer,
    client: Client,
    producer: Option<HttpProducer>,
    /// The worker processes, in the order of their index.
    pub workers: Vec<WorkerProcess>,
    log_dir: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl WorkerCluster {
    /// Starts the engine, the stream (written at 240 records/s over 96 keys) and the workers
    /// (`binary`: `processes::worker_binary(env!("CARGO_BIN_EXE_kcl-test-worker"))`, which only
    /// a test target can name); worker `i`'s lease store URL is
    /// `leases(i, postgres_admin::url())`. Returns once the
    /// workers hold equal shares of the shards and each shard's processor has logged work, or
    /// after a minute (whether it balanced is printed). `None` without PostgreSQL outside CI.
    pub async fn start(
        plan: &ClusterPlan,
        binary: &Path,
        leases: impl Fn(usize, String) -> String,
    ) -> Option<WorkerCluster> {
        let mut admin = postgres_admin::connect().await?;
        let table = format!("{}_{}", plan.name, std::process::id());
        postgres_admin::fresh_tables(&mut admin, &table).await;
        let server = EngineServer::start();
        let client = kcl_kinesis::local_client(&server.endpoint);
        let stream = plan.name.to_owned();
        let shards = i32::try_from(plan.shards).expect("a shard count");
        stream_admin::create_stream(&client, &stream, shards).await;
        stream_admin::wait_until_listed(&client, &stream).await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log_dir = dir.path().join("logs");
        std::fs::create_dir(&log_dir).expect("the log directory");
        let producer =
            HttpProducer::start(client.clone(), &stream, 96, 24, Duration::from_millis(100));
        let shared = WorkerSettings {
            endpoint: server.endpoint.clone(),
            stream: stream.clone(),
            leases: postgres_admin::url(),
            table: Some(table.clone()),
            application_name: None,
            lease: plan.lease,
            taker: plan.taker,
            checkpoint_interval: plan.checkpoint_interval,
            processor_faults: plan.processor_faults,
            log_dir: log_dir.clone(),
        };
        let workers = (0..plan.workers)
            .map(|i| {
                let settings = WorkerSettings {
                    leases: leases(i, postgres_admin::url()),
                    ..shared.clone()
                };
                WorkerProcess::start(binary, &format!("w{}", i + 1), &settings)
            })
            .collect();
        let cluster = WorkerCluster {
            admin,
            table,
            stream,
            _server: server,
            client,
            producer: Some(producer),
            workers,
            log_dir,
            dir: Some(dir),
        };
        let share = plan.shards / plan.workers;
        let balanced = wait_until(Duration::from_secs(60), || {
            let events = cluster.events();
            let held = log_checker::shards_held(&events);
            let working = late_deliveries::held_leases(&events)
                .iter()
                .filter(|run| run.ended.is_none() && run.epoch.is_some())
                .count();
            working == plan.shards
                && cluster.workers.iter().all(|worker| {
                    held.get(&worker.instance())
                        .is_some_and(|shards| shards.len() == share)
                })
        })
        .await;
        println!("balanced ({share} shards each): {balanced}");
        Some(cluster)
    }

    /// Where the workers write their logs.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// Every event the workers logged so far.
    pub fn events(&self) -> Vec<Event> {
        read_logs(&self.log_dir)
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

    /// Stops the producer, waits (a minute at most) until every acknowledged record was
    /// processed, fails the test if a worker exited by itself, stops the processes, drops the
    /// lease table and checks the guarantees (the summary is printed). The logs are kept, and
    /// their place printed, if `keep` or if a guarantee broke.
    pub async fn finish(mut self, keep: bool) -> Report {
        let produced = self.producer.take().expect("producing").stop().await;
        let drained = wait_until(Duration::from_secs(60), || {
            produced
                .acknowledged
                .is_subset(&log_checker::processed_records(&self.events()))
        })
        .await;
        for worker in &mut self.workers {
            worker.assert_running();
        }
        let shards = stream_admin::list_shards(&self.client, &self.stream).await;
        self.workers.clear();
        postgres_admin::drop_tables(&mut self.admin, &self.table).await;
        let report = log_checker::check(&self.events(), &produced.acknowledged, &shards, &[]);
        println!(
            "{}\ndrained: {drained}; unacknowledged puts (not required): {}",
            report.summary(),
            produced.unacknowledged
        );
        if keep || !report.lost.is_empty() || !report.violations.is_empty() {
            let dir = self.dir.take().expect("the log directory").keep();
            println!("worker logs kept in {}", dir.display());
        }
        report
    }
}
