//! Chaos: `kcl engine serve`, leases in PostgreSQL (a table per run), four worker processes and a
//! producer at a steady rate. While it runs, a seeded schedule SIGKILLs workers and starts them
//! again, splits and merges shards, terminates the lease store's sessions, pauses a worker
//! (SIGSTOP) for longer than a lease before resuming it, and black-holes one worker's PostgreSQL
//! connection (each worker reaches the store through a proxy of its own) for up to three leases.
//! All along, the workers' processors return errors and panic at random in every callback, and
//! are sometimes slow. Afterwards the workers' logs must show nothing lost (every acknowledged
//! record processed by a call that returned `Ok`), order within every lease held (a failed batch
//! delivered again from its first record), no checkpoint by a worker that no longer held the
//! lease, no run resumed at a checkpoint past what was processed, and no child shard before its
//! parents; per-fault counts, duplicates and takeover times are reported, the takeovers after
//! kills and after pauses apart (count, median, p90 and worst of each measure).
//!
//! Short form (CI): 60 s of chaos. Long form: `KCL_CHAOS_SECONDS=1800`. `KCL_CHAOS_SEED` replays
//! a schedule (the seed is printed). The workers' logs are kept (and their directory printed) when
//! a check fails, or always with `KCL_CHAOS_KEEP_LOGS=1`. Without PostgreSQL the test is skipped,
//! unless `CI` is set.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kcl_tests::black_hole_proxy::{BlackHoleProxy, url_through};
use kcl_tests::http_producer::HttpProducer;
use kcl_tests::log_checker::{self, WorkerFault};
use kcl_tests::postgres_admin;
use kcl_tests::processes::{self, EngineServer, WorkerProcess, WorkerSettings};
use kcl_tests::processor_faults::ProcessorFaults;
use kcl_tests::seeded_rng::SeededRng;
use kcl_tests::stream_admin;
use kcl_tests::worker_log::{read_logs, wall_micros};

const STREAM: &str = "chaos";
const WORKERS: usize = 4;
const LEASE: Duration = Duration::from_millis(2000);
const TAKER: Duration = Duration::from_millis(500);
const MIN_OPEN_SHARDS: usize = 2;
const MAX_OPEN_SHARDS: usize = 8;

/// How often processors fail, per thousand calls: `process_records` (a few batches a second per
/// shard) rarely, the once-per-lease callbacks often enough that each fails a few times a run.
/// A slow batch takes up to one and a half leases longer: renewal must not depend on it.
const PROCESSOR_FAULTS: ProcessorFaults = ProcessorFaults {
    seed: 0,
    batch_errors: 40,
    batch_panics: 20,
    lifecycle_errors: 100,
    lifecycle_panics: 50,
    slow_batches: 3,
    slow_max: Duration::from_millis(3000),
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Kill,
    Pause,
    Split,
    Merge,
    TerminateSessions,
    BlackHole,
}

const ALL_FAULTS: [Fault; 6] = [
    Fault::Kill,
    Fault::Pause,
    Fault::Split,
    Fault::Merge,
    Fault::TerminateSessions,
    Fault::BlackHole,
];

/// Something the schedule must do later: restart a killed worker, resume a paused one, heal a
/// black-holed one's connection.
enum Due {
    Restart(usize),
    Resume(usize),
    Heal(usize),
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|value| {
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_keep_every_guarantee_through_kills_pauses_resharding_lost_connections_and_failing_processors()
 {
    let Some(mut admin) = postgres_admin::connect().await else {
        return;
    };
    let chaos_for = Duration::from_secs(env_u64("KCL_CHAOS_SECONDS").unwrap_or(60));
    let seed = env_u64("KCL_CHAOS_SEED").unwrap_or_else(wall_micros);
    println!("chaos for {chaos_for:?}, KCL_CHAOS_SEED={seed}");
    let mut rng = SeededRng::new(seed);

    let table = format!("chaos_{}_{}", std::process::id(), seed % 1_000_000);
    let application_name = format!("kcl-{table}");
    postgres_admin::fresh_tables(&mut admin, &table).await;
    // Each worker reaches PostgreSQL through a proxy of its own, so that one can be cut off.
    let upstream = url_through(&postgres_admin::url(), "127.0.0.1:1".parse().unwrap())
        .expect("a postgres://host:port URL")
        .1;
    let proxies: Vec<BlackHoleProxy> = (0..WORKERS)
        .map(|_| BlackHoleProxy::start(&upstream).expect("a proxy"))
        .collect();

    let server = EngineServer::start();
    let client = kcl_kinesis::local_client(&server.endpoint);
    stream_admin::create_stream(&client, STREAM, 4).await;
    stream_admin::wait_until_listed(&client, STREAM).await;
    let dir = tempfile::tempdir().unwrap();
    let log_dir: PathBuf = dir.path().join("logs");
    std::fs::create_dir(&log_dir).unwrap();

    // 250 records/s over 128 keys.
    let producer = HttpProducer::start(client.clone(), STREAM, 128, 25, Duration::from_millis(100));
    let settings = WorkerSettings {
        endpoint: server.endpoint.clone(),
        stream: STREAM.to_owned(),
        leases: postgres_admin::url(),
        table: Some(table.clone()),
        application_name: Some(application_name.clone()),
        lease: LEASE,
        taker: TAKER,
        checkpoint_interval: Duration::ZERO,
        processor_faults: ProcessorFaults {
            seed: rng.next_u64(),
            ..PROCESSOR_FAULTS
        },
        log_dir: log_dir.clone(),
    };
    let binary = processes::worker_binary(env!("CARGO_BIN_EXE_kcl-test-worker"));
    let mut workers: Vec<WorkerProcess> = proxies
        .iter()
        .enumerate()
        .map(|(i, proxy)| {
            let settings = WorkerSettings {
                leases: url_through(&settings.leases, proxy.address())
                    .expect("a postgres://host:port URL")
                    .0,
                ..settings.clone()
            };
            WorkerProcess::start(&binary, &format!("w{}", i + 1), &settings)
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The chaos: every kind of fault once, in a seeded order, then seeded random ones.
    let mut order = ALL_FAULTS.to_vec();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let weighted = [
        Fault::Kill,
        Fault::Kill,
        Fault::Kill,
        Fault::Pause,
        Fault::Pause,
        Fault::Split,
        Fault::Split,
        Fault::Merge,
        Fault::Merge,
        Fault::TerminateSessions,
        Fault::TerminateSessions,
        Fault::BlackHole,
        Fault::BlackHole,
    ];
    let mut injected: BTreeMap<Fault, u64> = BTreeMap::new();
    let mut worker_faults: Vec<WorkerFault> = Vec::new();
    let mut sessions_terminated = 0;
    let mut black_holed_for = Duration::ZERO;
    let mut due: Vec<(Instant, Due)> = Vec::new();
    let mut timeline = std::fs::File::create(log_dir.join("faults.txt")).expect("faults.txt");
    let started = Instant::now();
    let mut next_fault = started;
    while started.elapsed() < chaos_for {
        let now = Instant::now();
        let (ready, later): (Vec<_>, Vec<_>) = due.into_iter().partition(|(at, _)| *at <= now);
        due = later;
        for (_, action) in ready {
            match action {
                Due::Restart(i) => workers[i].restart(),
                Due::Resume(i) => workers[i].resume(),
                Due::Heal(i) => {
                    proxies[i].heal();
                    writeln!(
                        timeline,
                        "{} Healed {}",
                        wall_micros(),
                        workers[i].instance()
                    )
                    .expect("the fault timeline");
                }
            }
        }
        for worker in &mut workers {
            worker.assert_running();
        }
        if now >= next_fault {
            let wanted = if order.is_empty() {
                weighted[rng.below(weighted.len())]
            } else {
                order.remove(0)
            };
            let active: Vec<usize> = (0..WORKERS)
                .filter(|&i| {
                    workers[i].is_alive()
                        && !workers[i].is_stopped()
                        && !proxies[i].is_black_holed()
                })
                .collect();
            let open = stream_admin::open_shards(&client, STREAM).await;
            // Keep two workers running, and the shard count within bounds.
            let fault = match wanted {
                Fault::Kill | Fault::Pause | Fault::BlackHole if active.len() <= 2 => {
                    Fault::TerminateSessions
                }
                Fault::Split if open.len() >= MAX_OPEN_SHARDS => Fault::Merge,
                Fault::Merge if open.len() <= MIN_OPEN_SHARDS => Fault::Split,
                other => other,
            };
            let at = wall_micros();
            let detail = match fault {
                Fault::Kill => {
                    let i = active[rng.below(active.len())];
                    let instance = workers[i].instance();
                    let at = workers[i].kill();
                    due.push((Instant::now() + rng.millis(500, 3000), Due::Restart(i)));
                    worker_faults.push(WorkerFault {
                        kind: "kill",
                        instance: instance.clone(),
                        at,
                    });
                    instance
                }
                Fault::Pause => {
                    let i = active[rng.below(active.len())];
                    let instance = workers[i].instance();
                    let at = workers[i].pause();
                    let pause = LEASE + rng.millis(500, 2500);
                    due.push((Instant::now() + pause, Due::Resume(i)));
                    worker_faults.push(WorkerFault {
                        kind: "pause",
                        instance: instance.clone(),
                        at,
                    });
                    format!("{instance} for {pause:?}")
                }
                Fault::Split => {
                    let shard = &open[rng.below(open.len())];
                    stream_admin::split_in_half(&client, STREAM, shard).await;
                    shard.shard.clone()
                }
                Fault::Merge => {
                    let low = rng.below(open.len() - 1);
                    stream_admin::merge(&client, STREAM, &open[low], &open[low + 1]).await;
                    format!("{} {}", open[low].shard, open[low + 1].shard)
                }
                Fault::TerminateSessions => {
                    let terminated =
                        postgres_admin::terminate_sessions(&mut admin, &application_name).await;
                    sessions_terminated += terminated;
                    format!("{terminated} sessions")
                }
                Fault::BlackHole => {
                    // Shorter than a lease (a hiccup) or longer (its leases are taken).
                    let i = active[rng.below(active.len())];
                    let hole = rng.millis(500, 3 * LEASE.as_millis() as u64);
                    proxies[i].black_hole();
                    due.push((Instant::now() + hole, Due::Heal(i)));
                    black_holed_for += hole;
                    format!("{} for {hole:?}", workers[i].instance())
                }
            };
            // The timeline, beside the workers' logs, for reading a slow takeover.
            writeln!(timeline, "{at} {fault:?} {detail}").expect("the fault timeline");
            *injected.entry(fault).or_default() += 1;
            next_fault = Instant::now() + rng.millis(1500, 4000);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Calm: every worker back when it is due (a pause still outlasts the lease), the producer
    // stopped, everything acknowledged processed.
    due.sort_by_key(|(at, _)| *at);
    for (at, action) in due {
        tokio::time::sleep_until(at.into()).await;
        match action {
            Due::Restart(i) => workers[i].restart(),
            Due::Resume(i) => workers[i].resume(),
            Due::Heal(i) => proxies[i].heal(),
        }
    }
    let produced = producer.stop().await;
    let drain_started = Instant::now();
    let mut drained = false;
    while drain_started.elapsed() < Duration::from_secs(120) {
        let processed = log_checker::processed_records(&read_logs(&log_dir));
        if produced.acknowledged.is_subset(&processed) {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for worker in &mut workers {
        worker.assert_running();
    }
    println!(
        "drained in {:?} after the chaos (complete: {drained})",
        drain_started.elapsed()
    );
    let shards = stream_admin::list_shards(&client, STREAM).await;
    drop(workers);
    drop(proxies);
    drop(server);
    postgres_admin::drop_tables(&mut admin, &table).await;

    let report = log_checker::check(
        &read_logs(&log_dir),
        &produced.acknowledged,
        &shards,
        &worker_faults,
    );
    println!("chaos for {chaos_for:?}, seed {seed}");
    println!(
        "faults injected: {injected:?}; sessions terminated: {sessions_terminated}; black-holed \
         for {black_holed_for:?} in all"
    );
    println!(
        "shards: {} in all, {} open at the end",
        shards.len(),
        shards.iter().filter(|s| s.open).count()
    );
    println!("{}", report.summary());
    println!(
        "unacknowledged puts (not required): {}",
        produced.unacknowledged
    );
    // Takeover after each kind of fault apart: a killed worker's shards can be taken as soon as
    // the store sees its process gone, a paused worker's only once its leases expire.
    let by_kind = report.takeovers_by_kind();
    for kind in ["kill", "pause"] {
        let times = by_kind.get(kind).cloned().unwrap_or_default();
        println!("takeover after a {kind}: {}", times.describe());
    }
    // The slowest takeovers, and any shard never taken over.
    let mut takeovers: Vec<_> = report.takeovers.iter().collect();
    takeovers.sort_by_key(|t| std::cmp::Reverse(t.after.unwrap_or(u64::MAX)));
    let shown = |micros: Option<u64>| {
        micros.map_or_else(
            || "-".to_owned(),
            |t| format!("{:?}", Duration::from_micros(t)),
        )
    };
    for takeover in takeovers.iter().take(5) {
        println!(
            "takeover of {} after the {} of {} at {}: {} (first waiting record: {})",
            takeover.shard,
            takeover.fault.kind,
            takeover.fault.instance,
            takeover.fault.at,
            shown(takeover.after),
            shown(takeover.first_record_after),
        );
    }
    let failed = !report.lost.is_empty()
        || !report.violations.is_empty()
        || report.takeovers.iter().any(|t| t.after.is_none());
    if failed || std::env::var_os("KCL_CHAOS_KEEP_LOGS").is_some() {
        println!("worker logs kept in {}", dir.keep().display());
    }

    report.assert_guarantees();
    for fault in ALL_FAULTS {
        assert!(
            injected.get(&fault).is_some_and(|&n| n > 0),
            "{fault:?} was never injected: {injected:?}"
        );
    }
    assert!(
        sessions_terminated > 0,
        "no lease store session was terminated"
    );
    assert!(
        !report.injected_errors.is_empty() && !report.injected_panics.is_empty(),
        "the processors injected no error or no panic"
    );
    assert!(report.children_checked > 0, "no child shard was processed");
    assert!(
        report.takeovers.iter().all(|t| t.after.is_some()),
        "a faulted worker's shard was never taken over"
    );
}
