//! `kcl engine serve --fsync always` killed with SIGKILL during steady writes and restarted on
//! the same data directory and port: every record it acknowledged is there and readable in
//! order, no acknowledged sequence number is handed out twice, and a worker reading through the
//! Kinesis API carries on and processes every acknowledged record.
//!
//! Figures are printed as `crash test: ...` lines (`cargo test -p kcl-cli --test crash --
//! --nocapture`). `KCL_CRASH_ROUNDS` sets the number of kills (5 by default).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use kcl_core::InMemoryLeaseStore;
use kcl_core::worker::{InitialPosition, Worker, WorkerConfig, process_with};
use kcl_kinesis::{BackoffConfig, KinesisSource, KinesisSourceConfig};

const KCL: &str = env!("CARGO_BIN_EXE_kcl");
const STREAM: &str = "crash";
const SHARDS: i32 = 4;
const PRODUCERS: usize = 4;
const BATCH: usize = 25;
/// Records acknowledged between two kills, at least.
const ACKS_PER_ROUND: usize = 2_000;

/// (shard, sequence number) → data.
type Records = BTreeMap<(String, String), String>;

/// (shard, sequence number) → data and how many times the worker processed it.
type Processed = BTreeMap<(String, String), (String, u32)>;

/// `kcl engine serve` with `--fsync always`, killed when dropped.
struct Served {
    child: Child,
    endpoint: String,
}

impl Served {
    /// Starts the server on `port` (0 for a free one); retries for a while if the port is not
    /// free yet (the killed server's port is reused).
    fn start(data_dir: &Path, port: u16) -> Served {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match Self::try_start(data_dir, port) {
                Ok(served) => return served,
                Err(why) if Instant::now() < deadline => {
                    eprintln!("restart failed ({why}); retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(why) => panic!("kcl engine serve did not start: {why}"),
            }
        }
    }

    fn try_start(data_dir: &Path, port: u16) -> Result<Served, String> {
        let mut child = Command::new(KCL)
            .args(["engine", "serve", "--fsync", "always", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| format!("spawn: {error}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        match line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
        {
            Some(endpoint) => Ok(Served {
                endpoint: endpoint.to_owned(),
                child,
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("no endpoint in {line:?}"))
            }
        }
    }

    fn port(&self) -> u16 {
        self.endpoint
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {}", self.endpoint))
    }

    /// SIGKILL (what `Child::kill` sends on Unix), and wait for the process to be gone.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the producers saw.
#[derive(Default)]
struct Produced {
    acknowledged: Mutex<Records>,
    /// Acknowledged sequence numbers that were acknowledged before with other data.
    reused: Mutex<Vec<String>>,
    failed_requests: AtomicU64,
    /// When the last request failed and the first one after it succeeded, per outage.
    last_failure: Mutex<Option<Instant>>,
    recovered_after: Mutex<Vec<Duration>>,
}

impl Produced {
    fn count(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    fn snapshot(&self) -> Records {
        self.acknowledged.lock().unwrap().clone()
    }
}

/// Writes batches of `BATCH` records in a loop until `stop`, through a client without SDK
/// retries (an acknowledgement is a PutRecords answer naming the record's sequence number).
async fn produce(
    endpoint: String,
    producer: usize,
    produced: Arc<Produced>,
    stop: Arc<AtomicBool>,
) {
    let client = kcl_kinesis::local_client(&endpoint);
    let client = aws_sdk_kinesis::Client::from_conf(
        client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    let mut next = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let data: Vec<String> = (0..BATCH)
            .map(|i| format!("p{producer}-{}", next + i as u64))
            .collect();
        next += BATCH as u64;
        let entries = data.iter().enumerate().map(|(i, data)| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("key-{producer}-{}", i % 16))
                .data(Blob::new(data.as_bytes()))
                .build()
                .expect("entry")
        });
        let answer = client
            .put_records()
            .stream_name(STREAM)
            .set_records(Some(entries.collect()))
            .send()
            .await;
        match answer {
            Ok(output) => {
                if let Some(failed_at) = produced.last_failure.lock().unwrap().take() {
                    produced
                        .recovered_after
                        .lock()
                        .unwrap()
                        .push(failed_at.elapsed());
                }
                let mut acknowledged = produced.acknowledged.lock().unwrap();
                for (result, data) in output.records().iter().zip(data) {
                    let (Some(shard), Some(sequence)) =
                        (result.shard_id(), result.sequence_number())
                    else {
                        continue;
                    };
                    let key = (shard.to_owned(), sequence.to_owned());
                    if let Some(before) = acknowledged.insert(key, data.clone())
                        && before != data
                    {
                        produced
                            .reused
                            .lock()
                            .unwrap()
                            .push(format!("{shard} {sequence}: {before} then {data}"));
                    }
                }
            }
            Err(_) => {
                // The server is down (killed, or not listening again yet).
                produced.failed_requests.fetch_add(1, Ordering::Relaxed);
                produced
                    .last_failure
                    .lock()
                    .unwrap()
                    .get_or_insert_with(Instant::now);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Reads every shard through the API from TRIM_HORIZON until each record of `expected` in it
/// has been seen (or a read comes back empty), checking sequence numbers increase.
async fn read_back(endpoint: &str, expected: &Records) -> Records {
    let client = kcl_kinesis::local_client(endpoint);
    let shards = client
        .list_shards()
        .stream_name(STREAM)
        .send()
        .await
        .expect("ListShards after restart");
    let mut found = Records::new();
    for shard in shards.shards() {
        let shard_id = shard.shard_id();
        let wanted = expected
            .keys()
            .filter(|(shard, _)| shard == shard_id)
            .count();
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(STREAM)
            .shard_id(shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator after restart")
            .shard_iterator
            .expect("an iterator");
        let mut seen = 0;
        let mut last: Option<u128> = None;
        while seen < wanted {
            let output = client
                .get_records()
                .shard_iterator(&iterator)
                .send()
                .await
                .expect("GetRecords after restart");
            if output.records().is_empty() {
                break;
            }
            for record in output.records() {
                let number: u128 = record.sequence_number().parse().expect("decimal");
                assert!(
                    last.is_none_or(|last| number > last),
                    "{shard_id}: sequence numbers out of order"
                );
                last = Some(number);
                let key = (shard_id.to_owned(), record.sequence_number().to_owned());
                if expected.contains_key(&key) {
                    seen += 1;
                }
                let data = String::from_utf8_lossy(record.data().as_ref()).into_owned();
                found.insert(key, data);
            }
            match output.next_shard_iterator {
                Some(next) => iterator = next,
                None => break,
            }
        }
    }
    found
}

fn missing_from(acknowledged: &Records, found: &Records) -> Vec<String> {
    acknowledged
        .iter()
        .filter(|(key, data)| found.get(*key) != Some(*data))
        .map(|((shard, sequence), data)| {
            format!(
                "{shard} {sequence} {data}: found {:?}",
                found.get(&(shard.clone(), sequence.clone()))
            )
        })
        .collect()
}

fn rounds() -> usize {
    std::env::var("KCL_CRASH_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_sigkill_of_the_server_and_the_worker_carries_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let mut served = tokio::task::block_in_place(|| Served::start(&data_dir, 0));
    let port = served.port();
    let endpoint = served.endpoint.clone();
    kcl_kinesis::local_client(&endpoint)
        .create_stream()
        .stream_name(STREAM)
        .shard_count(SHARDS)
        .send()
        .await
        .expect("CreateStream");

    // The worker: in this process, its leases in memory, reading through the API.
    let delivered: Arc<Mutex<Processed>> = Arc::default();
    let source = KinesisSource::local(&endpoint)
        .with_config(
            KinesisSourceConfig::default()
                .idle_poll_interval(Duration::from_millis(50))
                .backoff(BackoffConfig {
                    initial: Duration::from_millis(20),
                    max: Duration::from_millis(300),
                    max_retries: 3,
                }),
        )
        .expect("source config");
    let log = Arc::clone(&delivered);
    let worker = Worker::builder()
        .stream(STREAM)
        .expect("stream name")
        .name("crash-worker")
        .source(Arc::new(source))
        .lease_store(Arc::new(InMemoryLeaseStore::new()))
        .processor_factory(process_with(move |shard, records| {
            let mut log = log.lock().unwrap();
            for record in records {
                let key = (
                    shard.shard_id.to_string(),
                    record.sequence_number.to_string(),
                );
                let data = String::from_utf8_lossy(&record.data).into_owned();
                log.entry(key).or_insert((data, 0)).1 += 1;
            }
            Ok(())
        }))
        .config(
            WorkerConfig::default()
                .initial_position(InitialPosition::TrimHorizon)
                .taker_interval(Duration::from_millis(500))
                .backoff(Duration::from_millis(20), Duration::from_millis(300)),
        )
        .build()
        .expect("worker")
        .start();

    let produced = Arc::new(Produced::default());
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|producer| {
            tokio::spawn(produce(
                endpoint.clone(),
                producer,
                Arc::clone(&produced),
                Arc::clone(&stop),
            ))
        })
        .collect();

    let started = Instant::now();
    let mut restarts = Vec::new();
    for round in 1..=rounds() {
        let target = produced.count() + ACKS_PER_ROUND;
        let deadline = Instant::now() + Duration::from_secs(120);
        while produced.count() < target {
            assert!(Instant::now() < deadline, "round {round}: writes too slow");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        let killed_at = Instant::now();
        tokio::task::block_in_place(|| served.kill());
        // Whatever was acknowledged was answered before the kill.
        let acknowledged = produced.snapshot();
        served = tokio::task::block_in_place(|| Served::start(&data_dir, port));
        assert_eq!(served.endpoint, endpoint, "restarted on the same port");
        restarts.push(killed_at.elapsed());

        let found = read_back(&endpoint, &acknowledged).await;
        let missing = missing_from(&acknowledged, &found);
        assert!(
            missing.is_empty(),
            "round {round}: {} of {} acknowledged records missing after the restart, e.g. {:?}",
            missing.len(),
            acknowledged.len(),
            &missing[..missing.len().min(5)]
        );
        // Let the producers notice the server is back before the next kill.
        let back = produced.count() + BATCH;
        while produced.count() < back {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    stop.store(true, Ordering::Relaxed);
    for producer in producers {
        producer.await.expect("producer");
    }
    let acknowledged = produced.snapshot();
    let reused = produced.reused.lock().unwrap().clone();
    assert!(
        reused.is_empty(),
        "sequence numbers acknowledged twice: {reused:?}"
    );

    // The worker processes every acknowledged record, including those written before each kill.
    let caught_up_from = Instant::now();
    let deadline = caught_up_from + Duration::from_secs(60);
    loop {
        let missing = {
            let delivered = delivered.lock().unwrap();
            acknowledged
                .iter()
                .filter(|(key, data)| delivered.get(*key).map(|(seen, _)| seen) != Some(*data))
                .count()
        };
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not process {missing} of {} acknowledged records",
            acknowledged.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let caught_up = caught_up_from.elapsed();
    worker.shutdown().await.expect("worker shutdown");

    let delivered = delivered.lock().unwrap();
    let duplicates: u32 = delivered.values().map(|(_, times)| times - 1).sum();
    let unacknowledged_stored = delivered
        .keys()
        .filter(|key| !acknowledged.contains_key(*key))
        .count();
    let recovered = produced.recovered_after.lock().unwrap().clone();
    let slowest = |times: &[Duration]| times.iter().max().copied().unwrap_or_default();
    println!(
        "crash test: {} kills in {:.1} s; {} records acknowledged, lost 0; {} failed PutRecords \
         during outages; restart (kill to serving) worst {} ms; writes resumed worst {} ms \
         after the first failure; worker processed all {} delivered records ({} not \
         acknowledged to the producer), {duplicates} delivered twice, caught up {} ms after \
         the writes stopped",
        restarts.len(),
        started.elapsed().as_secs_f64(),
        acknowledged.len(),
        produced.failed_requests.load(Ordering::Relaxed),
        slowest(&restarts).as_millis(),
        slowest(&recovered).as_millis(),
        delivered.len(),
        unacknowledged_stored,
        caught_up.as_millis(),
    );
}
