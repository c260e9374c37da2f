//! Takeover after a crash does not wait for the lease to expire (issue 18). Each worker process
//! holds its liveness in the lease store (SQLite: a lock on a file beside the database;
//! PostgreSQL: a session advisory lock on a connection of its own), which the operating system
//! or the server lets go when the process dies, and the others ask often which owners of
//! unexpired leases are dead: a SIGKILLed worker's shards go on elsewhere within a fraction of
//! the lease duration. A paused (SIGSTOP) worker is not dead: it keeps its liveness, and its
//! leases are taken only once they expire.
//!
//! Three worker processes share a stream of `kcl engine serve` being written throughout. Without
//! PostgreSQL the PostgreSQL tests are skipped, unless `CI` is set.

use std::time::Duration;

use kcl_tests::log_checker::{self, Report, Takeover, WorkerFault};
use kcl_tests::process_cluster::{ClusterConfig, LeaseBackend, ProcessCluster, resumed_after};
use kcl_tests::wait::wait_until;
use tokio::sync::Mutex;

const SHARDS: usize = 6;
const WORKERS: usize = 3;

/// The kills: long leases and an ordinary taker interval, so that a takeover within half a
/// lease can only come from the workers noticing the death, not from expiry or a taking cycle.
const KILLS: usize = 10;
const KILL_LEASE: Duration = Duration::from_secs(10);
const KILL_TAKER: Duration = Duration::from_secs(2);

/// The pause: twice the lease, so that the paused worker's leases expire while it is stopped.
const PAUSE_LEASE: Duration = Duration::from_secs(2);
const PAUSE_TAKER: Duration = Duration::from_millis(500);
const PAUSED_FOR: Duration = Duration::from_secs(4);

/// The tests start processes of their own and measure takeover times: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_taken_over_well_before_its_lease_expires_on_sqlite() {
    killed_workers_are_taken_over_within_half_a_lease(LeaseBackend::Sqlite, "crash_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_taken_over_well_before_its_lease_expires_on_postgres() {
    killed_workers_are_taken_over_within_half_a_lease(LeaseBackend::Postgres, "crash_pg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_keeps_its_leases_until_they_expire() {
    paused_worker_keeps_its_leases_until_they_expire(LeaseBackend::Sqlite, "pause_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_keeps_its_leases_until_they_expire_on_postgres() {
    paused_worker_keeps_its_leases_until_they_expire(LeaseBackend::Postgres, "pause_pg").await;
}

fn cluster_config(
    name: &'static str,
    backend: LeaseBackend,
    lease: Duration,
    taker: Duration,
) -> ClusterConfig {
    ClusterConfig {
        shards: SHARDS,
        workers: WORKERS,
        lease,
        taker,
        ..ClusterConfig::new(name, backend)
    }
}

fn ms(duration: Duration) -> String {
    format!("{} ms", duration.as_millis())
}

/// Ten times: once every worker holds shards, SIGKILL one of them (each in turn), measure how
/// soon each of its shards resumed elsewhere, and start it again as its next incarnation.
async fn killed_workers_are_taken_over_within_half_a_lease(
    backend: LeaseBackend,
    name: &'static str,
) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let config = cluster_config(name, backend, KILL_LEASE, KILL_TAKER);
    let Some(mut cluster) =
        ProcessCluster::start(config, env!("CARGO_BIN_EXE_kcl-test-worker")).await
    else {
        return;
    };
    let mut faults = Vec::new();
    for round in 0..KILLS {
        let spread = cluster.wait_until_spread(Duration::from_secs(60)).await;
        let held = log_checker::shards_held(&cluster.events());
        assert!(
            spread,
            "before kill {}: not every worker came to hold shards: {held:?}",
            round + 1
        );
        for worker in &mut cluster.workers {
            worker.assert_running();
        }
        let victim = round % WORKERS;
        let shards = cluster.held_by(victim);
        let fault = cluster.kill(victim);
        // Three leases: room for ordinary expiry too, so the figures tell how slow it was.
        cluster.wait_until_resumed(&fault, 3 * KILL_LEASE).await;
        let figures: Vec<String> = cluster
            .takeovers(&fault)
            .iter()
            .map(|t| {
                let resumed = resumed_after(t).map_or_else(|| "never".to_owned(), ms);
                format!("{} {resumed}", t.shard)
            })
            .collect();
        println!(
            "kill {}: {} held {shards:?}; resumed elsewhere after {}",
            round + 1,
            fault.instance,
            figures.join(", ")
        );
        cluster.workers[victim].restart();
        faults.push(fault);
    }

    // The fencing check of the log checker covers the takeovers: one run per shard and epoch
    // (two workers that both saw the dead owner cannot both win the steal), and no checkpoint
    // written at an epoch once a run at a later epoch had started, so none by the dead worker's
    // epoch after the takeover. A checkpoint the killed process had in flight leaves no outcome
    // in its log; the check that each run resumed at a processed record covers that one.
    let report = cluster.finish(&faults).await;
    report.assert_guarantees();
    assert!(report.acknowledged > 1000, "the producer wrote too little");
    assert_taken_over_within_half_a_lease(&report, &faults);
}

fn assert_taken_over_within_half_a_lease(report: &Report, faults: &[WorkerFault]) {
    let bound = KILL_LEASE / 2;
    let mut times = Vec::new();
    let mut slow = Vec::new();
    for (round, fault) in faults.iter().enumerate() {
        let takeovers: Vec<&Takeover> = report
            .takeovers
            .iter()
            .filter(|t| &t.fault == fault)
            .collect();
        assert!(
            !takeovers.is_empty(),
            "kill {}: {} held no shard",
            round + 1,
            fault.instance
        );
        for takeover in takeovers {
            let resumed = resumed_after(takeover).unwrap_or_else(|| {
                panic!(
                    "kill {}: {} of {} was never taken over",
                    round + 1,
                    takeover.shard,
                    fault.instance
                )
            });
            println!(
                "kill {}: {} of {}: taken over after {}, first waiting record processed after {}",
                round + 1,
                takeover.shard,
                fault.instance,
                takeover
                    .after
                    .map_or_else(|| "-".to_owned(), |t| ms(Duration::from_micros(t))),
                takeover.first_record_after.map_or_else(
                    || "- (none waited)".to_owned(),
                    |t| ms(Duration::from_micros(t))
                ),
            );
            times.push(resumed);
            if resumed >= bound {
                slow.push(format!(
                    "kill {}: {} of {} after {}",
                    round + 1,
                    takeover.shard,
                    fault.instance,
                    ms(resumed)
                ));
            }
        }
    }
    times.sort_unstable();
    println!(
        "{} shards of {} killed workers resumed elsewhere: median {}, worst {} (lease {}, bound \
         {})",
        times.len(),
        faults.len(),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        ms(KILL_LEASE),
        ms(bound)
    );
    assert!(
        slow.is_empty(),
        "{} of {} takeovers took half the lease ({}) or longer, as if they waited for the lease \
         to expire:\n{}",
        slow.len(),
        times.len(),
        ms(bound),
        slow.join("\n")
    );
}

/// SIGSTOP a worker that holds shards for twice the lease, then SIGCONT it.
async fn paused_worker_keeps_its_leases_until_they_expire(
    backend: LeaseBackend,
    name: &'static str,
) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let config = cluster_config(name, backend, PAUSE_LEASE, PAUSE_TAKER);
    let Some(mut cluster) =
        ProcessCluster::start(config, env!("CARGO_BIN_EXE_kcl-test-worker")).await
    else {
        return;
    };
    let spread = cluster.wait_until_spread(Duration::from_secs(60)).await;
    let held = log_checker::shards_held(&cluster.events());
    assert!(spread, "not every worker came to hold shards: {held:?}");
    let victim = 1;
    let instance = cluster.workers[victim].instance();
    let at = cluster.workers[victim].pause();
    // Read after the pause: the paused worker renews no more, so no lease of its expires sooner
    // than this says. A renewal it had sent before stopping can only push the expiry later.
    let time_left = cluster.lease_time_left(victim).await;
    println!("{instance} paused holding {time_left:?} (time left in the store)");
    tokio::time::sleep(PAUSED_FOR).await;
    cluster.workers[victim].resume();
    let fault = WorkerFault {
        kind: "pause",
        instance: instance.clone(),
        at,
    };
    let taken = wait_until(3 * PAUSE_LEASE, || {
        let takeovers = cluster.takeovers(&fault);
        !takeovers.is_empty() && takeovers.iter().all(|t| t.after.is_some())
    })
    .await;
    println!("taken over: {taken}");
    // Let the resumed worker find out that its leases are gone (its checkpoints refused).
    tokio::time::sleep(PAUSE_LEASE).await;

    // Nothing lost, and the fencing check: the resumed worker wrote no checkpoint at its old
    // epoch once the new owner had started.
    let report = cluster.finish(std::slice::from_ref(&fault)).await;
    report.assert_guarantees();

    // Leases that had expired in the store before it was read prove nothing here: at least one
    // must have been well alive.
    assert!(
        time_left.values().any(|left| *left >= PAUSE_LEASE / 4),
        "no lease of {instance} had a quarter of a lease left when it was paused: {time_left:?}"
    );
    let takeovers: Vec<&Takeover> = report.takeovers.iter().collect();
    assert!(!takeovers.is_empty(), "{instance} held no shard");
    // The store's clock and the logs' are the machine's: a few ms for their rounding.
    let slack = Duration::from_millis(50);
    for takeover in takeovers {
        let after = takeover
            .after
            .map(Duration::from_micros)
            .unwrap_or_else(|| panic!("{} of {instance} was never taken over", takeover.shard));
        let left = time_left.get(&takeover.shard).copied().unwrap_or_default();
        println!(
            "{} of {instance}: taken over {} after the pause; its lease had {} left (lease {})",
            takeover.shard,
            ms(after),
            ms(left),
            ms(PAUSE_LEASE)
        );
        assert!(
            after + slack >= left,
            "{} of the paused {instance} was taken over after {}, before its lease expired ({} \
             left when paused): a paused worker was treated as dead",
            takeover.shard,
            ms(after),
            ms(left)
        );
    }
}
