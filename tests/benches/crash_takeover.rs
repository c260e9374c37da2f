//! Takeover after a worker process is SIGKILLed (issue 18), across processes: `kcl engine serve`
//! written at a steady rate, three `kcl-test-worker` processes on six shards, leases in SQLite
//! and, when it is reachable, PostgreSQL (`kcl_tests::process_cluster`). For each shard the
//! killed worker held it measures the time from the kill until another worker processed the
//! first record that was waiting on the shard, or began the shard when none was waiting: how
//! long the shard's consumers wait. A 2 s lease (taker every 500 ms, as the in-process `worker`
//! bench) and a 10 s lease (taker every 2 s, the worker's defaults).
//!
//! ```text
//! cargo bench --all-features -p kcl-tests --bench crash_takeover [-- sqlite|postgres]
//! ```
//!
//! - `KCL_BENCH_KILLS`: kills per lease store, lease duration and worker build (default 5).
//! - `KCL_BENCH_BEFORE_WORKER_BIN`: a `kcl-test-worker` built at another commit (before the
//!   death watch: 53c5193). Every kill then runs once with it and once with this build's worker
//!   (`KCL_TEST_WORKER_BIN` if set), the order swapped every kill so that both builds meet the
//!   same machine load, and the figures are given for both with their ratio.
//!
//! Every kill has a cluster of its own: the workers start and spread the shards, one of them
//! (each in turn) is killed at a moment that moves across a renewal period from kill to kill,
//! and the cluster runs until that worker's shards have resumed elsewhere and every record
//! written was processed; the log checker's guarantees are asserted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kcl_tests::process_cluster::{self, ClusterConfig, LeaseBackend, ProcessCluster};
use kcl_tests::processes;

const SHARDS: usize = 6;
const WORKERS: usize = 3;

/// The lease durations, each with its taker interval.
const LEASES: [(Duration, Duration); 2] = [
    (Duration::from_secs(2), Duration::from_millis(500)),
    (Duration::from_secs(10), Duration::from_secs(2)),
];

/// A worker binary under measurement.
struct Build {
    /// `before` or `after`.
    label: &'static str,
    binary: PathBuf,
}

/// What one build measured at one lease store and lease duration.
#[derive(Default)]
struct Series {
    /// How long each shard of a killed worker went unprocessed, sorted once complete.
    times: Vec<Duration>,
    /// Shards of a killed worker never resumed within three leases.
    never: usize,
}

impl Series {
    /// The upper median.
    fn median(&self) -> Option<Duration> {
        self.times.get(self.times.len() / 2).copied()
    }

    fn worst(&self) -> Option<Duration> {
        self.times.last().copied()
    }
}

/// One row of the summary.
struct Row {
    backend: &'static str,
    lease: Duration,
    taker: Duration,
    series: Vec<(&'static str, Series)>,
}

fn ms(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "-".to_owned(), |d| format!("{} ms", d.as_millis()))
}

fn ratio(after: Option<Duration>, before: Option<Duration>) -> String {
    match (after, before) {
        (Some(after), Some(before)) if !before.is_zero() => {
            format!("{:.3}", after.as_secs_f64() / before.as_secs_f64())
        }
        _ => "-".to_owned(),
    }
}

fn kills() -> usize {
    std::env::var("KCL_BENCH_KILLS").map_or(5, |text| {
        text.parse()
            .unwrap_or_else(|_| panic!("KCL_BENCH_KILLS={text:?} is not a number"))
    })
}

fn builds() -> Vec<Build> {
    let mut builds = Vec::new();
    if let Some(before) = std::env::var_os("KCL_BENCH_BEFORE_WORKER_BIN") {
        let binary = PathBuf::from(before);
        assert!(
            binary.is_file(),
            "KCL_BENCH_BEFORE_WORKER_BIN: {} is not a file",
            binary.display()
        );
        builds.push(Build {
            label: "before",
            binary,
        });
    }
    builds.push(Build {
        label: "after",
        binary: processes::worker_binary(env!("CARGO_BIN_EXE_kcl-test-worker")),
    });
    builds
}

/// One cluster, one kill after `delay` once the shards are spread: how long each shard of the
/// killed worker went unprocessed (`None`: never resumed). `None` when PostgreSQL is unreachable.
async fn one_kill(
    config: ClusterConfig,
    build: &Build,
    victim: usize,
    delay: Duration,
) -> Option<Vec<(String, Option<Duration>)>> {
    let lease = config.lease;
    let mut cluster = ProcessCluster::start_from(config, &build.binary).await?;
    let spread = cluster.wait_until_spread(Duration::from_secs(60)).await;
    assert!(
        spread,
        "{}: not every worker came to hold shards",
        build.binary.display()
    );
    tokio::time::sleep(delay).await;
    for worker in &mut cluster.workers {
        worker.assert_running();
    }
    let fault = cluster.kill(victim);
    // Three leases: room for ordinary expiry and a taking cycle, so slow takeovers are measured.
    cluster.wait_until_resumed(&fault, 3 * lease).await;
    let report = cluster.finish(std::slice::from_ref(&fault)).await;
    report.assert_guarantees();
    Some(
        report
            .takeovers
            .iter()
            .map(|takeover| {
                (
                    takeover.shard.clone(),
                    process_cluster::resumed_after(takeover),
                )
            })
            .collect(),
    )
}

/// Every kill of one lease store and lease duration, the builds alternating; `None` when
/// PostgreSQL is unreachable.
async fn measure(
    (label, backend, name): (&'static str, LeaseBackend, &'static str),
    (lease, taker): (Duration, Duration),
    builds: &[Build],
    kills: usize,
) -> Option<Row> {
    let mut series: Vec<(&'static str, Series)> = builds
        .iter()
        .map(|b| (b.label, Series::default()))
        .collect();
    for kill in 0..kills {
        let mut order: Vec<usize> = (0..builds.len()).collect();
        if kill % 2 == 1 {
            order.reverse();
        }
        // Kill k waits k/kills of a renewal period (a third of the lease) after the spread.
        let delay = lease / 3 * kill as u32 / kills as u32;
        for i in order {
            let config = ClusterConfig {
                shards: SHARDS,
                workers: WORKERS,
                lease,
                taker,
                ..ClusterConfig::new(name, backend)
            };
            let build = &builds[i];
            let times = one_kill(config, build, kill % WORKERS, delay).await?;
            let shown: Vec<String> = times
                .iter()
                .map(|(shard, time)| format!("{shard} {}", ms(*time)))
                .collect();
            println!(
                "{label}, lease {lease:?}, kill {} of {kills}, {} (w{} killed {} ms after the \
                 spread): resumed after {}",
                kill + 1,
                build.label,
                kill % WORKERS + 1,
                delay.as_millis(),
                shown.join(", ")
            );
            let measured = &mut series[i].1;
            for (_, time) in times {
                match time {
                    Some(time) => measured.times.push(time),
                    None => measured.never += 1,
                }
            }
        }
    }
    for (_, measured) in &mut series {
        measured.times.sort_unstable();
    }
    Some(Row {
        backend: label,
        lease,
        taker,
        series,
    })
}

fn print_summary(rows: &[Row], kills: usize) {
    println!(
        "\nTakeover after SIGKILL, {WORKERS} worker processes, {SHARDS} shards, {kills} kills \
         per row and build; per shard of the killed worker, from the kill to its first waiting \
         record processed elsewhere (or its run begun when none waited):"
    );
    println!(
        "| lease store | lease (taker) | before: shards, median, worst | after: shards, median, \
         worst | after/before median | after/before worst |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for row in rows {
        let find = |label: &str| row.series.iter().find(|(l, _)| *l == label).map(|(_, s)| s);
        let shown = |series: Option<&Series>| {
            series.map_or_else(
                || "-".to_owned(),
                |s| {
                    let never = if s.never > 0 {
                        format!(" ({} never)", s.never)
                    } else {
                        String::new()
                    };
                    format!(
                        "{}{never}, {}, {}",
                        s.times.len(),
                        ms(s.median()),
                        ms(s.worst())
                    )
                },
            )
        };
        let (before, after) = (find("before"), find("after"));
        println!(
            "| {} | {:?} ({:?}) | {} | {} | {} | {} |",
            row.backend,
            row.lease,
            row.taker,
            shown(before),
            shown(after),
            ratio(
                after.and_then(Series::median),
                before.and_then(Series::median)
            ),
            ratio(
                after.and_then(Series::worst),
                before.and_then(Series::worst)
            ),
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let wanted = kcl_tests::bench_args::wanted();
    let kills = kills();
    let builds = builds();
    for build in &builds {
        println!("{}: {}", build.label, build.binary.display());
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    let backends = [
        ("sqlite", LeaseBackend::Sqlite, "crash_bench_sqlite"),
        ("postgres", LeaseBackend::Postgres, "crash_bench_pg"),
    ];
    'backends: for backend in backends {
        let label = backend.0;
        if !wanted(label) {
            continue;
        }
        for lease in LEASES {
            match measure(backend, lease, &builds, kills).await {
                Some(row) => rows.push(row),
                None => {
                    println!("{label}: skipped (PostgreSQL unreachable)");
                    continue 'backends;
                }
            }
        }
    }
    print_summary(&rows, kills);
    println!("(whole run: {:.0?})", started.elapsed());
}
