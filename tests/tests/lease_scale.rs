//! The lease-table scale harness in small (issue 19; the full sizes are the `lease_scale`
//! bench): 200 shards and 5 workers, each with its own store, on one lease table in PostgreSQL
//! and in SQLite, with 3 s leases. From a cold start the shards must come to be balanced, an
//! aborted worker's shards must be taken over, no live worker may lose a lease, and the
//! counting wrapper must have seen the workers renew and list. The bounds are generous: this
//! checks that the harness measures and the guarantees hold, not the figures.
//!
//! Without PostgreSQL the PostgreSQL test is skipped, unless `CI` is set.

use std::time::Duration;

use kcl_core::worker::{InitialPosition, WorkerConfig};
use kcl_tests::counting_lease_store::CallKind;
use kcl_tests::lease_scale::{self, Backend, ScaleConfig, ScaleError, ScaleReport};
use kcl_tests::postgres_admin;
use tokio::sync::Mutex;

const SHARDS: usize = 200;
const WORKERS: usize = 5;
const LEASE: Duration = Duration::from_secs(3);

/// Both tests run many workers and time them: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

fn small(backend: Backend) -> ScaleConfig {
    let mut config = ScaleConfig::new(SHARDS, WORKERS, backend);
    config.worker_config = WorkerConfig::default()
        .initial_position(InitialPosition::TrimHorizon)
        .lease_duration(LEASE)
        .taker_interval(Duration::from_secs(1));
    config.records_per_second = 200;
    config.balance_limit = Duration::from_secs(40);
    config.window = Duration::from_secs(3);
    config.settle_after_takeover = Duration::from_secs(2);
    config.shutdown_limit = Duration::from_secs(15);
    config
}

fn check(report: &ScaleReport) {
    report.print();
    let shown = report.table();
    assert!(
        report.balance.is_some(),
        "the shards were never balanced:\n{shown}"
    );
    assert!(
        report.victim_shards > 0,
        "the aborted worker held nothing:\n{shown}"
    );
    assert!(
        report.takeover.is_some(),
        "the aborted worker's shards were not all taken over within the lease + 30 s:\n{shown}"
    );
    assert_eq!(
        report.leases_lost_by_live_workers, 0,
        "live workers lost leases:\n{shown}"
    );
    for kind in [CallKind::Renew, CallKind::Heartbeat] {
        assert!(
            report.window_calls.get(kind).calls > 0,
            "no {} call was counted in the steady window:\n{shown}",
            kind.name()
        );
    }
    // Settled workers may take no census in the window: they skip it while nothing changes.
    assert!(
        report.run_calls.get(CallKind::Census).calls > 0,
        "no census was counted in the run:\n{shown}"
    );
    assert!(
        report.renew_latency.is_some(),
        "no renewal latency:\n{shown}"
    );
    assert_eq!(
        report.shutdown_timeouts, 0,
        "workers did not shut down:\n{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_workers_balance_take_over_and_keep_their_leases_on_postgres() {
    let _one = ONE_AT_A_TIME.lock().await;
    match lease_scale::run(&small(Backend::postgres())).await {
        Ok(report) => {
            assert!(
                report.store_cpu.is_some() || report.store_processes == 0,
                "PostgreSQL processes were read but no CPU figure came of them"
            );
            check(&report);
        }
        Err(ScaleError::PostgresUnreachable(why)) if !postgres_admin::under_ci() => {
            eprintln!("SKIPPED: {why}; set KCL_TEST_POSTGRES_URL");
        }
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_workers_balance_take_over_and_keep_their_leases_on_sqlite() {
    let _one = ONE_AT_A_TIME.lock().await;
    let report = lease_scale::run(&small(Backend::Sqlite))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.store_cpu, None, "SQLite runs in this process");
    check(&report);
}
