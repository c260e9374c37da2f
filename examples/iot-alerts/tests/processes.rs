//! Several `alerts` processes against the engine's Kinesis server: one is killed mid-run, the
//! other takes its shards over, and the alerts raised are exactly the anomalies the seeded
//! `sensors` injected: none missing, none invented, and repeats only from the records after the
//! killed worker's last checkpoint.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use iot_alerts::alerting::{Alert, AlertKind};
use kcl_core::{Checkpoint, Lease, LeaseStore, SequenceNumber, ShardId, StreamName};
use kcl_engine::http::{HttpConfig, KinesisServer};
use kcl_engine::{Engine, EngineConfig, PutRecordsEntry, ShardFilter, StreamOptions};
use kcl_store_sqlite::SqliteLeaseStore;
use support::{Process, log_of};

const STREAM: &str = "readings";
const SHARDS: u64 = 4;

fn read_alerts(path: &Path) -> Vec<Alert> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

fn owned_by<'a>(leases: &'a [Lease], prefix: &str) -> Vec<&'a Lease> {
    leases
        .iter()
        .filter(|lease| {
            lease
                .owner
                .as_ref()
                .is_some_and(|owner| owner.as_str().starts_with(prefix))
        })
        .collect()
}

/// Polls `condition` every 100 ms for up to `limit`.
async fn eventually<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    condition().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_loses_no_alert_and_repeats_only_what_it_had_not_checkpointed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name);

    // The engine's Kinesis server (what `kcl engine serve` runs), in this process so the test
    // can look at the stream; the workers and the sensors are real processes.
    let engine = Engine::open(EngineConfig::in_memory()).expect("engine");
    engine
        .create_stream(STREAM, StreamOptions::with_shards(SHARDS))
        .expect("stream");
    let server = KinesisServer::bind(
        engine.clone(),
        HttpConfig::default().listen(([127, 0, 0, 1], 0).into()),
    )
    .await
    .expect("bind");
    let endpoint = server.endpoint_url();
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = server_stopped.await;
    }));

    let leases_url = format!("sqlite://{}", path("leases.db").display());
    let alerts = |name: &str, checkpoint_interval: &str| -> Process {
        let out = path(&format!("{name}.jsonl"));
        Process::start(
            name,
            &[
                "alerts",
                "--endpoint",
                &endpoint,
                "--stream",
                STREAM,
                "--leases",
                &leases_url,
                "--out",
                out.to_str().expect("utf-8 path"),
                "--checkpoint-every",
                "100000",
                "--checkpoint-interval",
                checkpoint_interval,
                "--lease-duration",
                "3s",
                "--name",
                name,
            ],
            Stdio::null(),
            &path(&format!("{name}.log")),
        )
    };
    // The victim checkpoints rarely, so that it dies with alerts raised after its last
    // checkpoint, which the survivor must raise again.
    let mut survivor = alerts("survivor", "1s");
    let mut victim = alerts("victim", "3s");
    let logs = || {
        format!(
            "--- survivor\n{}\n--- victim\n{}",
            log_of(&path("survivor.log")),
            log_of(&path("victim.log"))
        )
    };

    let store = SqliteLeaseStore::connect(&leases_url)
        .await
        .expect("lease store");
    let stream = StreamName::new(STREAM).expect("name");
    let leases = || async { store.list_leases(&stream).await.unwrap_or_default() };

    // Both workers hold two shards before any reading is written.
    let balanced = eventually(Duration::from_secs(40), || async {
        let now = leases().await;
        owned_by(&now, "survivor").len() == 2 && owned_by(&now, "victim").len() == 2
    })
    .await;
    assert!(balanced, "never balanced: {:?}\n{}", leases().await, logs());

    // 14 s of readings from 40 sensors, each every 50 ms.
    let mut sensors = Process::start(
        "sensors",
        &[
            "sensors",
            "--endpoint",
            &endpoint,
            "--stream",
            STREAM,
            "--sensors",
            "40",
            "--rate",
            "800",
            "--seed",
            "7",
            "--count",
            "11200",
        ],
        Stdio::piped(),
        &path("sensors.log"),
    );
    tokio::time::sleep(Duration::from_secs(6)).await;

    // A crash: nothing checkpointed or released. The survivor takes the leases at once, so the
    // victim's last checkpoints are read while it is frozen, just before it is killed.
    victim.freeze();
    let at_crash = leases().await;
    victim.crash();
    let victim_checkpoints: BTreeMap<ShardId, Checkpoint> = owned_by(&at_crash, "victim")
        .into_iter()
        .map(|lease| (lease.key.shard.clone(), lease.checkpoint.clone()))
        .collect();
    assert_eq!(victim_checkpoints.len(), 2, "{at_crash:?}");
    assert!(
        victim_checkpoints
            .values()
            .all(|c| matches!(c, Checkpoint::Sequence(_))),
        "the victim had checkpointed progress: {victim_checkpoints:?}"
    );

    let taken_over = eventually(Duration::from_secs(30), || async {
        owned_by(&leases().await, "survivor").len() == SHARDS as usize
    })
    .await;
    assert!(taken_over, "the survivor never took over\n{}", logs());

    let status = sensors.wait(Duration::from_secs(60));
    assert!(
        status.success(),
        "sensors failed\n{}",
        log_of(&path("sensors.log"))
    );
    let mut stdout = String::new();
    if let Some(mut out) = sensors.child.stdout.take() {
        use std::io::Read;
        out.read_to_string(&mut stdout).expect("sensors' output");
    }
    let injected: BTreeSet<(String, AlertKind)> = stdout
        .lines()
        .map(|line| {
            let anomaly: serde_json::Value = serde_json::from_str(line).expect("JSON");
            let kind = serde_json::from_value(anomaly["alert"].clone()).expect("kind");
            (anomaly["sensor"].as_str().expect("sensor").to_owned(), kind)
        })
        .collect();
    assert!(injected.len() >= 5, "few anomalies: {stdout}");
    assert!(injected.iter().any(|(_, kind)| *kind == AlertKind::Drift));
    assert!(
        injected
            .iter()
            .any(|(_, kind)| *kind == AlertKind::Overheat)
    );

    // Every record is processed and checkpointed: a reading written to each shard after a
    // pause lets the survivor's time-based checkpoint fire, until each shard is checkpointed
    // at its last record.
    let shards = engine
        .list_shards(STREAM, &ShardFilter::default())
        .expect("shards");
    let mut last_written: BTreeMap<ShardId, SequenceNumber> = BTreeMap::new();
    let started = Instant::now();
    let all_checkpointed = loop {
        for shard in &shards {
            let reading = format!(
                r#"{{"sensor":"tail-{}","ts":1,"celsius":20.0}}"#,
                shard.shard_id
            );
            let entry = PutRecordsEntry::new("tail", reading)
                .with_explicit_hash_key(shard.hash_key_range.start.to_string());
            let written = engine.put_record(STREAM, entry).expect("tail reading");
            last_written.insert(written.shard_id, written.sequence_number);
        }
        // The survivor polls an idle shard every second and checkpoints a second after its
        // last checkpoint.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let now = leases().await;
        let done = now.len() == shards.len()
            && now.iter().all(|lease| {
                last_written
                    .get(&lease.key.shard)
                    .is_some_and(|last| lease.checkpoint == Checkpoint::Sequence(last.clone()))
            });
        if done || started.elapsed() > Duration::from_secs(40) {
            break done;
        }
    };
    assert!(all_checkpointed, "{:?}\n{}", leases().await, logs());

    survivor.terminate();
    let status = survivor.wait(Duration::from_secs(30));
    assert!(status.success(), "SIGTERM: {status}\n{}", logs());
    let after = leases().await;
    assert!(
        after.iter().all(|lease| lease.owner.is_none()),
        "a graceful stop releases every lease: {after:?}"
    );

    // The alerts: the union is exactly the injected anomalies.
    let from_victim = read_alerts(&path("victim.jsonl"));
    let from_survivor = read_alerts(&path("survivor.jsonl"));
    let key = |a: &Alert| (a.sensor.clone(), a.alert);
    let raised: BTreeSet<(String, AlertKind)> =
        from_victim.iter().chain(&from_survivor).map(key).collect();
    let missing: Vec<_> = injected.difference(&raised).collect();
    let invented: Vec<_> = raised.difference(&injected).collect();
    assert!(missing.is_empty(), "missed {missing:?}\n{}", logs());
    assert!(invented.is_empty(), "false alerts {invented:?}");

    // Each process raised each alert once; one raised by both comes from the survivor reading
    // again what the victim had processed but not checkpointed.
    for (name, alerts) in [("victim", &from_victim), ("survivor", &from_survivor)] {
        let distinct: BTreeSet<_> = alerts.iter().map(key).collect();
        assert_eq!(
            distinct.len(),
            alerts.len(),
            "{name} repeated itself: {alerts:?}"
        );
    }
    let by_victim: BTreeSet<_> = from_victim.iter().map(key).collect();
    let mut repeated = 0;
    for alert in from_survivor.iter().filter(|a| by_victim.contains(&key(a))) {
        repeated += 1;
        let shard = ShardId::new(&alert.shard).expect("shard id");
        let checkpoint = victim_checkpoints
            .get(&shard)
            .unwrap_or_else(|| panic!("{alert:?} repeated on a shard the victim did not hold"));
        let sequence = SequenceNumber::new(&alert.sequence_number).expect("sequence number");
        let Checkpoint::Sequence(checkpointed) = checkpoint else {
            panic!("{checkpoint:?}")
        };
        assert!(
            sequence > *checkpointed,
            "{alert:?} was raised again from a record at or before the victim's checkpoint \
             {checkpointed}"
        );
    }
    println!(
        "{} anomalies injected; victim raised {}, survivor {}, {repeated} raised by both",
        injected.len(),
        from_victim.len(),
        from_survivor.len()
    );

    let _ = stop_server.send(());
    let _ = serving.await;
}
