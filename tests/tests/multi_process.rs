//! Workers in separate processes share one stream of `kcl engine serve` through `KinesisSource`
//! and one SQLite lease file. One is killed with SIGKILL: every acknowledged record is still
//! processed, each lease's records come in order, no stale checkpoint is written, and the dead
//! worker's shards resume within the lease duration plus one taker interval.

use std::path::PathBuf;
use std::time::Duration;

use kcl_store_sqlite::SqliteLeaseStore;
use kcl_tests::http_producer::HttpProducer;
use kcl_tests::log_checker::{self, WorkerFault};
use kcl_tests::processes::{self, EngineServer, WorkerProcess, WorkerSettings};
use kcl_tests::processor_faults::ProcessorFaults;
use kcl_tests::stream_admin;
use kcl_tests::wait::wait_until;
use kcl_tests::worker_log::read_logs;

const STREAM: &str = "readings";
const SHARDS: usize = 6;
const LEASE: Duration = Duration::from_millis(2000);
const TAKER: Duration = Duration::from_millis(500);
/// Room for the process scheduler of a loaded machine, and for the new owner's first
/// GetShardIterator and GetRecords, beyond the bound the guarantee gives.
const MARGIN: Duration = Duration::from_millis(750);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_process_loses_nothing_and_its_shards_resume_within_lease_plus_taker() {
    let server = EngineServer::start();
    let client = kcl_kinesis::local_client(&server.endpoint);
    stream_admin::create_stream(&client, STREAM, SHARDS as i32).await;
    stream_admin::wait_until_listed(&client, STREAM).await;

    let dir = tempfile::tempdir().unwrap();
    let log_dir: PathBuf = dir.path().join("logs");
    std::fs::create_dir(&log_dir).unwrap();
    let leases = format!("sqlite://{}", dir.path().join("leases.db").display());
    // Create the tables once, rather than three processes racing to.
    SqliteLeaseStore::connect(&leases)
        .await
        .unwrap()
        .close()
        .await;

    let producer = HttpProducer::start(client.clone(), STREAM, 96, 24, Duration::from_millis(50));
    let settings = WorkerSettings {
        endpoint: server.endpoint.clone(),
        stream: STREAM.to_owned(),
        leases,
        table: None,
        application_name: None,
        lease: LEASE,
        taker: TAKER,
        checkpoint_interval: Duration::ZERO,
        processor_faults: ProcessorFaults::default(),
        log_dir: log_dir.clone(),
    };
    let binary = processes::worker_binary(env!("CARGO_BIN_EXE_kcl-test-worker"));
    let mut workers: Vec<WorkerProcess> = ["w1", "w2", "w3"]
        .iter()
        .map(|name| WorkerProcess::start(&binary, name, &settings))
        .collect();

    // Two shards each, by the workers' own logs.
    let balanced = wait_until(Duration::from_secs(60), || {
        let held = log_checker::shards_held(&read_logs(&log_dir));
        workers.iter().all(|w| {
            held.get(&w.instance())
                .is_some_and(|s| s.len() == SHARDS / 3)
        })
    })
    .await;
    let held = log_checker::shards_held(&read_logs(&log_dir));
    println!("before the kill: {held:?} (balanced: {balanced})");
    for worker in &mut workers {
        worker.assert_running();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let victim = workers[1].instance();
    let victim_shards = log_checker::shards_held(&read_logs(&log_dir))
        .remove(&victim)
        .unwrap_or_default();
    assert!(!victim_shards.is_empty(), "{victim} held no shard");
    let killed_at = workers[1].kill();
    let fault = WorkerFault {
        kind: "kill",
        instance: victim.clone(),
        at: killed_at,
    };

    // Every shard of the dead worker is processed again by another worker.
    let resumed = wait_until(Duration::from_secs(30), || {
        let events = read_logs(&log_dir);
        let report = log_checker::check(
            &events,
            &Default::default(),
            &[],
            std::slice::from_ref(&fault),
        );
        !report.takeovers.is_empty()
            && report
                .takeovers
                .iter()
                .all(|t| t.first_record_after.is_some())
    })
    .await;
    assert!(
        resumed,
        "{victim}'s shards {victim_shards:?} were never taken over"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let produced = producer.stop().await;
    let drained = wait_until(Duration::from_secs(60), || {
        let processed = log_checker::processed_records(&read_logs(&log_dir));
        produced.acknowledged.is_subset(&processed)
    })
    .await;
    for (i, worker) in workers.iter_mut().enumerate() {
        if i != 1 {
            worker.assert_running();
        }
    }
    drop(workers);

    let shards = stream_admin::list_shards(&client, STREAM).await;
    let report = log_checker::check(
        &read_logs(&log_dir),
        &produced.acknowledged,
        &shards,
        &[fault],
    );
    println!("{}", report.summary());
    println!(
        "unacknowledged puts (not required): {}; drained: {drained}",
        produced.unacknowledged
    );
    report.assert_guarantees();
    assert!(report.acknowledged > 1000, "the producer wrote too little");

    let bound = LEASE + TAKER;
    for takeover in &report.takeovers {
        let first_record = Duration::from_micros(
            takeover
                .first_record_after
                .unwrap_or_else(|| panic!("{} resumed without a record", takeover.shard)),
        );
        let taken = Duration::from_micros(takeover.after.expect("taken over"));
        println!(
            "{} of {victim}: taken over {taken:?} and first record processed by another worker \
             {first_record:?} after SIGKILL (bound: lease {LEASE:?} + taker {TAKER:?} = \
             {bound:?}, + margin {MARGIN:?})",
            takeover.shard
        );
        assert!(
            first_record <= bound + MARGIN,
            "{} resumed {first_record:?} after the kill; bound {bound:?} + margin {MARGIN:?}",
            takeover.shard
        );
    }
    let taken: Vec<&String> = report.takeovers.iter().map(|t| &t.shard).collect();
    assert_eq!(
        taken.len(),
        victim_shards.len(),
        "every shard of {victim} ({victim_shards:?}) was measured: {taken:?}"
    );
}
