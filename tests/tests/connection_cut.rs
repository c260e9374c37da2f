//! A worker whose connections to the lease store are cut while its process lives: three worker
//! processes share a stream of `kcl engine serve` and leases in PostgreSQL (10 s leases); one of
//! them reaches PostgreSQL through a proxy that resets every connection at once, as a firewall
//! that forgets its state or a proxy that restarts does.
//!
//! The cut ends the worker's PostgreSQL sessions, and with them its liveness (a session-level
//! advisory lock), so the store can prove at once that this worker's leases are free, and the
//! worker itself learns that its hold is gone. Its log and the others' must show that:
//!
//! - each of its shards was running again, in a new run, well before the lease would have
//!   expired (within 5 s of the cut, against a 10 s lease);
//! - after a new run of a shard began, the cut worker delivered at most one batch on that shard
//!   from the run it held at the cut (the batch already under way when the hold was lost);
//! - nothing acknowledged was lost and the checker's guarantees hold.
//!
//! Two cuts:
//!
//! - **Reconnecting at once**: the proxy forwards new connections straight away. The cut
//!   worker holds liveness again within moments and takes back, at a newer epoch, the leases no
//!   other worker has taken yet: a new run may be its own. Which worker resumed each shard is
//!   printed.
//! - **Kept out for a while** (new connections held for two seconds, as a firewall that takes
//!   a moment to come back): the other workers must take every shard of the cut worker.
//!
//! Either way the cut worker reconnects, and may take shards again by balancing later: those
//! runs start after the new run, at a newer epoch, and are not counted as late.
//!
//! Processors checkpoint once a minute, not after every batch, so that a checkpoint refused with
//! `LeaseLost` never stops the cut worker's deliveries by itself: only the worker's own check of
//! its liveness can. The new owner therefore processes again what was delivered since the last
//! checkpoint (the duplicates printed per shard). Without PostgreSQL the tests are skipped,
//! unless `CI` is set.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kcl_tests::black_hole_proxy::{BlackHoleProxy, url_through};
use kcl_tests::late_deliveries::{self, Delivery, HeldLease};
use kcl_tests::log_checker::Report;
use kcl_tests::postgres_admin;
use kcl_tests::process_cluster::{ClusterConfig, LeaseBackend, ProcessCluster};
use kcl_tests::wait::wait_until;
use kcl_tests::worker_log::{Event, wall_micros};
use tokio::sync::Mutex;

const LEASE: Duration = Duration::from_secs(10);

/// Three workers, two shards each; processors that never fail; the victim's lease store
/// through `proxy`.
fn config(proxy: &BlackHoleProxy) -> ClusterConfig {
    ClusterConfig {
        shards: 6,
        workers: 3,
        lease: LEASE,
        taker: Duration::from_millis(500),
        checkpoint_interval: Duration::from_secs(60),
        proxied: Some((VICTIM, proxy.address())),
        ..ClusterConfig::new("cut", LeaseBackend::Postgres)
    }
}

/// The worker whose connections are cut.
const VICTIM: usize = 1;

/// A shard must run again well under the lease: a takeover that waited for expiry would take
/// 10 s.
const RESUME_BOUND: Duration = Duration::from_secs(5);

/// How long the test waits for every shard to run again before giving up: long enough to see a
/// takeover that waited for the lease to expire.
const RESUME_WAIT: Duration = Duration::from_secs(30);

/// Room for the cut worker to deliver after the new runs began, if it would.
const AFTERWARDS: Duration = Duration::from_secs(3);

/// How long the second cut keeps the worker from reconnecting: far longer than the others take
/// to see it dead, far shorter than the lease.
const KEPT_OUT: Duration = Duration::from_secs(2);

/// The tests start processes of their own and measure takeover times: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Which runs count as the shard running again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resumer {
    /// Any worker's, the cut worker's own included.
    Anyone,
    /// Another worker's.
    Others,
}

/// What the logs say about one shard of the cut worker.
struct ShardAfterCut {
    held: HeldLease,
    /// The first run of the shard (by the workers `Resumer` names) started after the cut.
    resumed: Option<HeldLease>,
    /// From the cut to that run's first batch.
    first_batch_after: Option<Duration>,
    /// Batches the cut worker delivered on the shard after the cut, from the run it held then.
    since_cut: usize,
    /// Of those, the ones delivered after the new run began.
    late: Vec<Delivery>,
    /// Records processed on the shard more than once, over the whole test.
    duplicates: usize,
}

impl ShardAfterCut {
    fn resumed_after(&self, cut_at: u64) -> Option<Duration> {
        self.resumed
            .as_ref()
            .map(|run| Duration::from_micros(run.started.saturating_sub(cut_at)))
    }
}

/// The first run of `held`'s shard started after `cut_at` by the workers `by` names.
fn resumed(runs: &[HeldLease], held: &HeldLease, cut_at: u64, by: Resumer) -> Option<HeldLease> {
    runs.iter()
        .filter(|run| run.shard == held.shard && run.started > cut_at)
        .filter(|run| by == Resumer::Anyone || run.w != held.w)
        .min_by_key(|run| run.started)
        .cloned()
}

fn after_cut(events: &[Event], held: &[HeldLease], cut_at: u64, by: Resumer) -> Vec<ShardAfterCut> {
    let runs = late_deliveries::held_leases(events);
    let deliveries = late_deliveries::deliveries(events);
    held.iter()
        .map(|lease| {
            let resumed = resumed(&runs, lease, cut_at, by);
            let first_batch_after = resumed.as_ref().and_then(|run| {
                deliveries
                    .iter()
                    .find(|d| d.w == run.w && d.run == run.run)
                    .map(|d| Duration::from_micros(d.t.saturating_sub(cut_at)))
            });
            let since_cut: Vec<&Delivery> = deliveries
                .iter()
                .filter(|d| d.w == lease.w && d.run == lease.run && d.t > cut_at)
                .collect();
            let late = resumed.as_ref().map_or_else(Vec::new, |run| {
                since_cut
                    .iter()
                    .filter(|d| d.t > run.started)
                    .map(|d| (*d).clone())
                    .collect()
            });
            ShardAfterCut {
                held: lease.clone(),
                resumed,
                first_batch_after,
                since_cut: since_cut.len(),
                late,
                duplicates: duplicates_on(events, &lease.shard),
            }
        })
        .collect()
}

/// Records processed more than once on `shard`.
fn duplicates_on(events: &[Event], shard: &str) -> usize {
    let mut processed = 0;
    let mut distinct: BTreeSet<(&str, u64)> = BTreeSet::new();
    for event in events {
        if let Event::Record {
            shard: on, key, n, ..
        } = event
            && on == shard
        {
            processed += 1;
            distinct.insert((key, *n));
        }
    }
    processed - distinct.len()
}

/// What one cut showed.
struct CutOutcome {
    instance: String,
    connections: usize,
    all_resumed: bool,
    shards: Vec<ShardAfterCut>,
    cut_at: u64,
    report: Report,
}

/// Starts the cluster, cuts the victim's connections (keeping new ones out for `kept_out`, if
/// any), waits (bounded) until each of its shards runs again in a run `by` accepts, gives the
/// victim room to deliver late, and checks the logs. Prints the figures. `None` without
/// PostgreSQL outside CI.
async fn cut(kept_out: Option<Duration>, by: Resumer) -> Option<CutOutcome> {
    let upstream = url_through(&postgres_admin::url(), "127.0.0.1:1".parse().unwrap())
        .expect("a postgres://host:port URL")
        .1;
    let proxy = BlackHoleProxy::start(&upstream).expect("a proxy");
    let config = config(&proxy);
    let share = config.shards / config.workers;
    let mut cluster = ProcessCluster::start(config, env!("CARGO_BIN_EXE_kcl-test-worker")).await?;
    let balanced = cluster.wait_until_balanced(Duration::from_secs(60)).await;
    println!("balanced ({share} shards each): {balanced}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let instance = cluster.workers[VICTIM].instance();
    let held = cluster.leases_of(VICTIM);
    assert!(!held.is_empty(), "{instance} held no lease");

    if kept_out.is_some() {
        proxy.black_hole();
    }
    let cut_at = wall_micros();
    let connections = proxy.cut();
    println!(
        "cut {connections} connections of {instance}, which held {:?}; new connections kept out \
         for {kept_out:?}",
        held.iter().map(|l| (&l.shard, l.epoch)).collect::<Vec<_>>()
    );
    if let Some(kept_out) = kept_out {
        tokio::time::sleep(kept_out).await;
        proxy.heal();
    }
    let all_resumed = wait_until(RESUME_WAIT, || {
        let runs = late_deliveries::held_leases(&cluster.events());
        held.iter()
            .all(|lease| resumed(&runs, lease, cut_at, by).is_some())
    })
    .await;
    tokio::time::sleep(AFTERWARDS).await;

    let shards = after_cut(&cluster.events(), &held, cut_at, by);
    let shown = |d: Option<Duration>| d.map_or_else(|| "-".to_owned(), |d| format!("{d:?}"));
    for shard in &shards {
        println!(
            "{} (held by {instance} at epoch {:?}; {} batches from it after the cut): running \
             again under {} at epoch {:?} {} after the cut, first batch {} after; {instance} \
             delivered {} batches ({} records) after that run began; records processed more \
             than once on the shard: {}",
            shard.held.shard,
            shard.held.epoch,
            shard.since_cut,
            shard
                .resumed
                .as_ref()
                .map_or("nobody", |run| run.w.as_str()),
            shard.resumed.as_ref().and_then(|run| run.epoch),
            shown(shard.resumed_after(cut_at)),
            shown(shard.first_batch_after),
            shard.late.len(),
            shard.late.iter().map(|d| d.records).sum::<usize>(),
            shard.duplicates,
        );
        if !shard.late.is_empty() {
            let since = shard.resumed.as_ref().map_or(cut_at, |run| run.started);
            println!("  {}", late_deliveries::describe(&shard.late, since));
        }
    }
    let slow = shards.iter().any(|s| {
        s.resumed_after(cut_at)
            .is_none_or(|after| after >= RESUME_BOUND)
    });
    let too_late = shards.iter().any(|s| s.late.len() > 1);
    if slow || too_late {
        cluster.keep_logs();
    }
    let report = cluster.finish(&[]).await;
    drop(proxy);
    Some(CutOutcome {
        instance,
        connections,
        all_resumed,
        shards,
        cut_at,
        report,
    })
}

impl CutOutcome {
    /// Every shard of the victim ran again well under the lease, it delivered at most one batch
    /// per shard after that, and the checker's guarantees hold.
    fn assert_resumed_at_once(&self, whose: &str) {
        let instance = &self.instance;
        assert!(self.connections > 0, "{instance} had no connection to cut");
        assert!(
            self.all_resumed,
            "not every shard of {instance} ran again under {whose} within {RESUME_WAIT:?} of the \
             cut (lease {LEASE:?})"
        );
        for shard in &self.shards {
            let after = shard.resumed_after(self.cut_at).expect("resumed");
            assert!(
                after < RESUME_BOUND,
                "{} ran again under {whose} {after:?} after {instance}'s connections were cut: \
                 not well under the lease of {LEASE:?} (bound {RESUME_BOUND:?})",
                shard.held.shard
            );
        }
        let late: BTreeMap<&str, usize> = self
            .shards
            .iter()
            .map(|s| (s.held.shard.as_str(), s.late.len()))
            .collect();
        assert!(
            late.values().all(|&batches| batches <= 1),
            "after a new run began, {instance} delivered more than the one batch under way on the \
             run it held at the cut, per shard: {late:?}"
        );
        self.report.assert_guarantees();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_store_connections_are_cut_stops_at_once_and_its_shards_run_again_well_before_the_lease_expires()
 {
    let _serial = ONE_AT_A_TIME.lock().await;
    if let Some(outcome) = cut(None, Resumer::Anyone).await {
        outcome.assert_resumed_at_once("any worker");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cut_off_from_its_store_for_a_while_has_its_shards_taken_by_the_others_well_before_the_lease_expires()
 {
    let _serial = ONE_AT_A_TIME.lock().await;
    if let Some(outcome) = cut(Some(KEPT_OUT), Resumer::Others).await {
        outcome.assert_resumed_at_once("another worker");
    }
}
