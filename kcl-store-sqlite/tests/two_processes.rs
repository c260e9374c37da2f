//! Two OS processes race on one SQLite database file: this test binary runs itself a second time
//! (`current_exe()`, this test's name, `--exact`) with `KCL_SQLITE_RACE_DB` set, and both
//! processes hammer the same leases at once.
//!
//! Both run the whole conformance suite concurrently on the file; then rounds in which 16 tasks
//! per process take the same lease at once (exactly one winner per round across both
//! processes); then a steal-and-checkpoint free-for-all on one lease, after which the merged
//! record must show exactly one taker per epoch, checkpoints only from that epoch's taker
//! (fencing), never a checkpoint lower than an earlier one, and the last one stored.
//!
//! A second test runs itself the same way (with `KCL_SQLITE_LIVENESS_DB` set) to kill the child:
//! the child holds a worker's liveness, the parent sees that worker alive, kills the child with
//! `SIGKILL` and sees the worker dead.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kcl_core::{
    Checkpoint, CheckpointUpdate, Error, Fence, LeaseKey, LeaseStore, NewLease, SequenceNumber,
    ShardId, StreamName, TakeMode, WorkerId,
};
use kcl_store_sqlite::{SqliteLeaseStore, SqliteLeaseStoreConfig};
use tokio::task::JoinSet;

const TEST_NAME: &str = "two_processes_race_on_one_database_file";
const CHILD_ENV: &str = "KCL_SQLITE_RACE_DB";
const REPORT: &str = "KCL-RACE ";
const ROUNDS: u64 = 20;
const TAKERS_PER_PROCESS: usize = 16;
const PINGPONG_TASKS: usize = 4;
const PINGPONG_ITERATIONS: u64 = 120;

async fn open(path: &str) -> Arc<dyn LeaseStore> {
    // A generous busy timeout: a transient error in the free-for-all would leave a write's
    // outcome unknown, and this test checks every outcome.
    let config = SqliteLeaseStoreConfig::new(format!("sqlite://{path}"))
        .busy_timeout(Duration::from_secs(30));
    Arc::new(
        SqliteLeaseStore::connect_with(config)
            .await
            .unwrap_or_else(|e| panic!("opening {path}: {e}")),
    )
}

fn stream() -> StreamName {
    StreamName::new("two-process-race").unwrap()
}

/// Waits until both processes have reached `point`, using the store's worker registry.
async fn rendezvous(store: &Arc<dyn LeaseStore>, role: &str, point: &str) {
    let me = WorkerId::new(&format!("barrier-{point}-{role}")).unwrap();
    let want = ["parent", "child"].map(|r| WorkerId::new(&format!("barrier-{point}-{r}")).unwrap());
    store.heartbeat(&me).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let live = store.live_workers(Duration::from_secs(600)).await.unwrap();
        if want.iter().all(|w| live.contains(w)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{role}: the other process never reached {point}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// One process's side of the race; returns its report lines.
async fn race(path: &str, role: &'static str) -> Vec<String> {
    let store = open(path).await;
    let mut report = Vec::new();

    rendezvous(&store, role, "suite").await;
    kcl_core::lease_store_conformance::run_all(store.clone()).await;

    for round in 0..ROUNDS {
        let key = LeaseKey::new(stream(), ShardId::from_index(round));
        store
            .create_lease_if_absent(&NewLease::new(key.clone(), Checkpoint::TrimHorizon))
            .await
            .unwrap();
        rendezvous(&store, role, &format!("round-{round}")).await;
        let mut takers = JoinSet::new();
        for i in 0..TAKERS_PER_PROCESS {
            let (store, key) = (store.clone(), key.clone());
            let me = WorkerId::new(&format!("{role}-{round}-{i}")).unwrap();
            takers.spawn(async move {
                let taken = store
                    .take_lease(
                        &key,
                        0,
                        &me,
                        TakeMode::IfAvailable,
                        Duration::from_secs(600),
                    )
                    .await;
                (me, taken)
            });
        }
        while let Some(joined) = takers.join_next().await {
            match joined.unwrap() {
                (me, Ok(lease)) => {
                    assert_eq!(lease.epoch, 1);
                    report.push(format!("TAKE {round} {me}"));
                }
                (_, Err(Error::LeaseConflict { .. })) => {}
                (me, Err(e)) => panic!("{me}: unexpected error in a take round: {e}"),
            }
        }
    }

    let key = LeaseKey::new(stream(), ShardId::new("pingpong").unwrap());
    store
        .create_lease_if_absent(&NewLease::new(key.clone(), Checkpoint::TrimHorizon))
        .await
        .unwrap();
    rendezvous(&store, role, "pingpong").await;
    let mut tasks = JoinSet::new();
    for task in 0..PINGPONG_TASKS {
        let (store, key) = (store.clone(), key.clone());
        tasks.spawn(pingpong(store, key, role, task));
    }
    while let Some(joined) = tasks.join_next().await {
        report.extend(joined.unwrap());
    }
    report
}

/// Steals the lease over and over; while holding it, writes checkpoints that are sometimes
/// lower than the current one.
async fn pingpong(
    store: Arc<dyn LeaseStore>,
    key: LeaseKey,
    role: &str,
    task: usize,
) -> Vec<String> {
    let me = WorkerId::new(&format!("{role}-pp-{task}")).unwrap();
    let mut random = 0x9E37_79B9_7F4A_7C15u64 ^ ((task as u64 + 1) << 32) ^ role.len() as u64;
    let mut next_random = move || {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random
    };
    let mut lines = Vec::new();
    let mut order = 0u64;
    for iteration in 0..PINGPONG_ITERATIONS {
        let seen = store.get_lease(&key).await.unwrap().unwrap().epoch;
        let lease = match store
            .take_lease(&key, seen, &me, TakeMode::Steal, Duration::from_secs(600))
            .await
        {
            Ok(lease) => lease,
            Err(Error::LeaseConflict { .. }) => continue,
            Err(e) => panic!("{me}: unexpected error stealing: {e}"),
        };
        lines.push(format!("STEAL {} {me}", lease.epoch));
        let fence = Fence::new(me.clone(), lease.epoch);
        for _ in 0..3 {
            let value = iteration * 1_000 + next_random() % 5_000;
            let update = CheckpointUpdate::commit(Checkpoint::Sequence(SequenceNumber::from(
                u128::from(value),
            )));
            order += 1;
            match store.checkpoint(&key, &fence, &update).await {
                Ok(()) => lines.push(format!("CP {} {me} {order} {value}", lease.epoch)),
                Err(Error::CheckpointBackwards { .. }) => {}
                Err(Error::LeaseLost { .. }) => break,
                Err(e) => panic!("{me}: unexpected error checkpointing: {e}"),
            }
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_race_on_one_database_file() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        for line in race(&path, "child").await {
            println!("{REPORT}{line}");
        }
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.db").display().to_string();
    drop(open(&path).await); // create the file and schema before the child starts
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let child = tokio::task::spawn_blocking(move || child.wait_with_output());
    let mine = race(&path, "parent").await;
    let output = child.await.unwrap().unwrap();
    assert!(
        output.status.success(),
        "the child process failed: {}",
        output.status
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let theirs: Vec<String> = stdout
        .lines()
        // The harness prints `test <name> ... ` before the test's own first line, on that line.
        .filter_map(|l| l.find(REPORT).map(|at| l[at + REPORT.len()..].to_owned()))
        .collect();
    assert!(!theirs.is_empty(), "the child reported nothing: {stdout}");
    let lines: Vec<&str> = mine.iter().chain(&theirs).map(String::as_str).collect();

    // Exactly one winner per take round, across both processes.
    let mut round_winners: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    let mut steals: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    let mut checkpoints = Vec::new();
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields[0] {
            "TAKE" => round_winners
                .entry(fields[1].parse().unwrap())
                .or_default()
                .push(fields[2]),
            "STEAL" => steals
                .entry(fields[1].parse().unwrap())
                .or_default()
                .push(fields[2]),
            "CP" => {
                let epoch: u64 = fields[1].parse().unwrap();
                let order: u64 = fields[3].parse().unwrap();
                let value: u64 = fields[4].parse().unwrap();
                checkpoints.push((epoch, fields[2], order, value));
            }
            other => panic!("unknown report line {other}"),
        }
    }
    assert_eq!(
        round_winners.len() as u64,
        ROUNDS,
        "every round had a winner"
    );
    for (round, winners) in &round_winners {
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
    }
    let both: Vec<_> = round_winners
        .values()
        .map(|w| w[0].split('-').next().unwrap())
        .collect();
    println!(
        "take rounds won by the parent: {}, by the child: {}",
        both.iter().filter(|r| **r == "parent").count(),
        both.iter().filter(|r| **r == "child").count()
    );

    // The free-for-all: one taker per epoch, epochs without gaps.
    let last_epoch = *steals.keys().last().unwrap();
    for epoch in 1..=last_epoch {
        let takers = steals.get(&epoch).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(takers.len(), 1, "epoch {epoch}: takers {takers:?}");
    }
    let stealers: Vec<&str> = steals.values().map(|w| w[0]).collect();
    assert!(
        stealers.iter().any(|w| w.starts_with("parent"))
            && stealers.iter().any(|w| w.starts_with("child")),
        "both processes won steals"
    );
    // Fencing: every checkpoint came from its epoch's taker. Order: by epoch, then by the
    // taker's own order; values never go down.
    checkpoints.sort_by_key(|(epoch, _, order, _)| (*epoch, *order));
    let mut highest = 0;
    for (epoch, writer, _, value) in &checkpoints {
        assert_eq!(
            steals[epoch][0], *writer,
            "a checkpoint at epoch {epoch} by a non-owner"
        );
        assert!(
            *value >= highest,
            "checkpoint went back from {highest} to {value}"
        );
        highest = *value;
    }
    let store = open(&path).await;
    let key = LeaseKey::new(stream(), ShardId::new("pingpong").unwrap());
    let stored = store.get_lease(&key).await.unwrap().unwrap();
    assert_eq!(stored.epoch, last_epoch);
    assert_eq!(
        stored.checkpoint,
        Checkpoint::Sequence(SequenceNumber::from(u128::from(highest)))
    );
    println!(
        "free-for-all: {last_epoch} steals, {} checkpoints accepted",
        checkpoints.len()
    );
}

const LIVENESS_TEST_NAME: &str = "a_killed_process_is_reported_dead";
const LIVENESS_CHILD_ENV: &str = "KCL_SQLITE_LIVENESS_DB";
const LIVENESS_READY: &str = "KCL-LIVENESS-READY";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_is_reported_dead() {
    let worker = WorkerId::new("killed-worker").unwrap();
    if let Ok(path) = std::env::var(LIVENESS_CHILD_ENV) {
        let store = open(&path).await;
        let _hold = store.hold_liveness(&worker).await.unwrap().unwrap();
        println!("{LIVENESS_READY}");
        // The parent kills this process; should it not, the process still ends.
        tokio::time::sleep(Duration::from_secs(600)).await;
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("liveness.db").display().to_string();
    let store = open(&path).await;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            LIVENESS_TEST_NAME,
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(LIVENESS_CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // The harness prints `test <name> ... ` before the test's own first line, on that line. The
    // child's stdout ends if it fails, so this wait is bounded.
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains(LIVENESS_READY))
    });
    assert!(
        ready.await.unwrap(),
        "the child ended before holding liveness"
    );

    let workers = [worker.clone()];
    assert_eq!(store.dead_workers(&workers).await.unwrap(), []);
    let taken = store.hold_liveness(&worker).await;
    assert!(
        matches!(taken, Err(Error::Unavailable { .. })),
        "the child holds the worker's liveness: {taken:?}"
    );

    child.kill().unwrap(); // SIGKILL: the child gets no chance to let go itself
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.dead_workers(&workers).await.unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the killed child's worker is never reported dead"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.dead_workers(&workers).await.unwrap(), workers);

    // This process takes the dead worker's liveness over.
    let _hold = store.hold_liveness(&worker).await.unwrap().unwrap();
    assert_eq!(store.dead_workers(&workers).await.unwrap(), []);
}
