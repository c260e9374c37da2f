//! A worker delivers records only while its lease is valid by its own clock. Three worker
//! processes share a stream of `kcl engine serve` and leases in PostgreSQL; one of them is cut
//! off, and its log must show that it stopped delivering on the leases it could no longer hold:
//!
//! - paused (SIGSTOP) for three lease durations and resumed: nothing on the leases the others
//!   took meanwhile, at the epoch it held them;
//! - its PostgreSQL connection black-holed (a proxy that stops forwarding): nothing after the
//!   black hole began plus one lease duration, while the others take its shards over.
//!
//! Either way nothing acknowledged is lost. Without PostgreSQL the tests are skipped, unless `CI`
//! is set.

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use kcl_tests::black_hole_proxy::{BlackHoleProxy, url_through};
use kcl_tests::http_producer::HttpProducer;
use kcl_tests::late_deliveries::{self, HeldLease};
use kcl_tests::log_checker::{self, Report};
use kcl_tests::postgres_admin;
use kcl_tests::processes::{self, EngineServer, WorkerProcess, WorkerSettings};
use kcl_tests::processor_faults::ProcessorFaults;
use kcl_tests::stream_admin;
use kcl_tests::wait::wait_until;
use kcl_tests::worker_log::{read_logs, wall_micros};
use sqlx::PgConnection;
use tokio::sync::Mutex;

const STREAM: &str = "deadline";
const SHARDS: usize = 6;
const WORKERS: usize = 3;
const LEASE: Duration = Duration::from_millis(2000);
const TAKER: Duration = Duration::from_millis(500);

/// The tests start processes of their own and measure delivery times: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// An engine with a stream being written, three worker processes balanced over its shards, and
/// their lease table.
struct Cluster {
    admin: PgConnection,
    table: String,
    _server: EngineServer,
    client: Client,
    producer: Option<HttpProducer>,
    workers: Vec<WorkerProcess>,
    log_dir: PathBuf,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts it; each worker's lease store URL is made by `leases` from PostgreSQL's URL and
    /// the worker's index. `None` without PostgreSQL outside CI.
    ///
    /// Processors checkpoint once a minute (as applications commonly do), not after every
    /// batch: a checkpoint refused or stuck would stop a worker's deliveries by itself, and hide
    /// whether the worker stops them.
    async fn start(
        name: &str,
        processor_faults: ProcessorFaults,
        leases: impl Fn(usize, String) -> String,
    ) -> Option<Cluster> {
        let mut admin = postgres_admin::connect().await?;
        let table = format!("{name}_{}", std::process::id());
        postgres_admin::fresh_tables(&mut admin, &table).await;
        let server = EngineServer::start();
        let client = kcl_kinesis::local_client(&server.endpoint);
        stream_admin::create_stream(&client, STREAM, SHARDS as i32).await;
        stream_admin::wait_until_listed(&client, STREAM).await;
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("logs");
        std::fs::create_dir(&log_dir).unwrap();
        // 240 records/s over 96 keys.
        let producer =
            HttpProducer::start(client.clone(), STREAM, 96, 24, Duration::from_millis(100));
        let settings = WorkerSettings {
            endpoint: server.endpoint.clone(),
            stream: STREAM.to_owned(),
            leases: postgres_admin::url(),
            table: Some(table.clone()),
            application_name: None,
            lease: LEASE,
            taker: TAKER,
            checkpoint_interval: Duration::from_secs(60),
            processor_faults,
            log_dir: log_dir.clone(),
        };
        let binary = processes::worker_binary(env!("CARGO_BIN_EXE_kcl-test-worker"));
        let workers: Vec<WorkerProcess> = (0..WORKERS)
            .map(|i| {
                let settings = WorkerSettings {
                    leases: leases(i, postgres_admin::url()),
                    ..settings.clone()
                };
                WorkerProcess::start(&binary, &format!("w{}", i + 1), &settings)
            })
            .collect();
        let cluster = Cluster {
            admin,
            table,
            _server: server,
            client,
            producer: Some(producer),
            workers,
            log_dir,
            dir,
        };
        // Two shards each, by the workers' own logs, and each of them processing records.
        let balanced = wait_until(Duration::from_secs(60), || {
            let events = read_logs(&cluster.log_dir);
            let held = log_checker::shards_held(&events);
            let working = late_deliveries::held_leases(&events)
                .into_iter()
                .filter(|run| run.ended.is_none() && run.epoch.is_some())
                .count();
            working == SHARDS
                && cluster.workers.iter().all(|w| {
                    held.get(&w.instance())
                        .is_some_and(|s| s.len() == SHARDS / WORKERS)
                })
        })
        .await;
        println!("balanced: {balanced}");
        Some(cluster)
    }

    /// The leases `worker` holds now, by its log, with the epoch it works at.
    fn leases_of(&self, worker: usize) -> Vec<HeldLease> {
        let instance = self.workers[worker].instance();
        let now = wall_micros();
        late_deliveries::held_leases(&read_logs(&self.log_dir))
            .into_iter()
            .filter(|run| run.w == instance && run.held_at(now) && run.epoch.is_some())
            .collect()
    }

    /// Whether another worker process started a run on `lease`'s shard between `from` and `to`.
    fn taken_by_another(&self, lease: &HeldLease, from: u64, to: u64) -> bool {
        late_deliveries::held_leases(&read_logs(&self.log_dir))
            .iter()
            .any(|run| {
                run.shard == lease.shard
                    && run.w != lease.w
                    && run.started > from
                    && run.started < to
            })
    }

    /// Stops the producer, waits (bounded) until every acknowledged record was processed, stops
    /// everything and checks the guarantees. The logs are kept (and their place printed) if
    /// `keep`, or if a guarantee broke.
    async fn finish(mut self, keep: bool) -> Report {
        let produced = self.producer.take().expect("producing").stop().await;
        let drained = wait_until(Duration::from_secs(60), || {
            let processed = log_checker::processed_records(&read_logs(&self.log_dir));
            produced.acknowledged.is_subset(&processed)
        })
        .await;
        for worker in &mut self.workers {
            worker.assert_running();
        }
        let shards = stream_admin::list_shards(&self.client, STREAM).await;
        self.workers.clear();
        postgres_admin::drop_tables(&mut self.admin, &self.table).await;
        let report = log_checker::check(
            &read_logs(&self.log_dir),
            &produced.acknowledged,
            &shards,
            &[],
        );
        println!("{}\ndrained: {drained}", report.summary());
        if keep || !report.lost.is_empty() || !report.violations.is_empty() {
            println!("worker logs kept in {}", self.dir.keep().display());
        }
        report
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_resumed_after_a_pause_of_three_leases_delivers_nothing_on_leases_taken_meanwhile()
{
    let _serial = ONE_AT_A_TIME.lock().await;
    // Processing lags behind the stream (each batch takes up to 200 ms more), so batches wait
    // in the worker's prefetch queue when the pause begins, as they do for a busy application.
    let lagging = ProcessorFaults {
        slow_batches: 1000,
        slow_max: Duration::from_millis(200),
        ..ProcessorFaults::default()
    };
    let Some(mut cluster) = Cluster::start("paused", lagging, |_, url| url).await else {
        return;
    };
    let victim = 1;
    let instance = cluster.workers[victim].instance();
    let held = cluster.leases_of(victim);
    assert!(!held.is_empty(), "{instance} held no lease");

    let paused_at = cluster.workers[victim].pause();
    tokio::time::sleep(3 * LEASE).await;
    // Taken before the signal: everything the process does after it is logged later.
    let resumed_at = wall_micros();
    cluster.workers[victim].resume();
    let taken: Vec<HeldLease> = held
        .iter()
        .filter(|lease| cluster.taken_by_another(lease, paused_at, resumed_at))
        .cloned()
        .collect();
    println!(
        "{instance} held {:?}; paused {} ms; taken meanwhile: {:?}",
        held.iter().map(|l| (&l.shard, l.epoch)).collect::<Vec<_>>(),
        (resumed_at - paused_at) / 1000,
        taken.iter().map(|l| &l.shard).collect::<Vec<_>>()
    );
    // Room for the resumed worker to deliver what it had, if it would.
    tokio::time::sleep(LEASE + LEASE / 2).await;

    let late: Vec<_> = late_deliveries::deliveries(&read_logs(&cluster.log_dir))
        .into_iter()
        .filter(|d| {
            d.w == instance
                && d.t >= resumed_at
                && taken
                    .iter()
                    .any(|l| l.shard == d.shard && l.epoch == Some(d.epoch))
        })
        .collect();
    let report = cluster.finish(!late.is_empty()).await;
    assert!(
        !taken.is_empty(),
        "no lease of {instance} was taken by another worker during its pause of three lease \
         durations"
    );
    assert!(
        late.is_empty(),
        "{instance}, resumed after a pause of three lease durations, delivered on leases other \
         workers had taken meanwhile, at its old epoch: {}",
        late_deliveries::describe(&late, resumed_at)
    );
    report.assert_guarantees();
}

/// How long the hole lasts: long enough for the others to take the victim's leases, and for a
/// store call without a deadline to show that it has none.
const BLACK_HOLE: Duration = Duration::from_millis(4 * 2000);

/// What is allowed past black hole + one lease duration: the worker checks its lease's validity
/// before calling `process_records`, and the processor reads the wall clock when it logs the
/// batch, a little later; on a loaded machine the thread may wait for a core in between.
const MEASUREMENT_MARGIN: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_lease_store_hangs_stops_delivering_within_one_lease_duration() {
    let _serial = ONE_AT_A_TIME.lock().await;
    if postgres_admin::connect().await.is_none() {
        return;
    }
    // One proxy per worker, so that only the victim's connection hangs.
    let upstream = url_through(&postgres_admin::url(), "127.0.0.1:1".parse().unwrap())
        .expect("a postgres://host:port URL")
        .1;
    let proxies: Vec<BlackHoleProxy> = (0..WORKERS)
        .map(|_| BlackHoleProxy::start(&upstream).expect("a proxy"))
        .collect();
    let Some(cluster) = Cluster::start("hung", ProcessorFaults::default(), |i, url| {
        url_through(&url, proxies[i].address())
            .expect("a postgres://host:port URL")
            .0
    })
    .await
    else {
        return;
    };
    let victim = 1;
    let instance = cluster.workers[victim].instance();
    let held = cluster.leases_of(victim);
    assert!(!held.is_empty(), "{instance} held no lease");

    proxies[victim].black_hole();
    let black_hole_at = wall_micros();
    let deadline = black_hole_at + u64::try_from((LEASE + MEASUREMENT_MARGIN).as_micros()).unwrap();
    tokio::time::sleep(BLACK_HOLE).await;
    let healed_at = wall_micros();
    proxies[victim].heal();
    let taken: Vec<&HeldLease> = held
        .iter()
        .filter(|lease| cluster.taken_by_another(lease, black_hole_at, healed_at))
        .collect();
    println!(
        "{instance} held {:?}; black-holed {} ms; taken meanwhile: {:?}",
        held.iter().map(|l| (&l.shard, l.epoch)).collect::<Vec<_>>(),
        (healed_at - black_hole_at) / 1000,
        taken.iter().map(|l| &l.shard).collect::<Vec<_>>()
    );
    // Room for the healed worker to deliver what it had, if it would.
    tokio::time::sleep(LEASE).await;

    // Runs started after the heal hold leases taken anew; every earlier one had to stop.
    let events = read_logs(&cluster.log_dir);
    let old_runs: Vec<HeldLease> = late_deliveries::held_leases(&events)
        .into_iter()
        .filter(|run| run.w == instance && run.started < healed_at)
        .collect();
    let late: Vec<_> = late_deliveries::deliveries(&events)
        .into_iter()
        .filter(|d| {
            d.w == instance
                && d.t > deadline
                && old_runs
                    .iter()
                    .any(|run| run.run == d.run && run.shard == d.shard)
        })
        .collect();
    let report = cluster.finish(!late.is_empty()).await;
    drop(proxies);
    assert_eq!(
        taken.len(),
        held.len(),
        "the other workers took over only {taken:?} of {held:?} while {instance}'s store hung"
    );
    assert!(
        late.is_empty(),
        "{instance}, its lease store black-holed, delivered after the black hole + one lease \
         duration ({LEASE:?}, margin {MEASUREMENT_MARGIN:?}): {}",
        late_deliveries::describe(&late, black_hole_at)
    );
    report.assert_guarantees();
}
