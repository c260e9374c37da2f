//! Hostile clients: bodies declared far larger than what is sent, senders that trickle their
//! headers or bodies a byte at a time, connections that send nothing, and thousands of
//! connections at once. The server lets each go after its timeout or answers at once, and a
//! well-behaved client's requests keep completing quickly while the attack runs.

mod http_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use http_support::{TestServer, target};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use kcl_engine::http::HttpConfig;
use kcl_engine::{Engine, EngineConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The bound on a well-behaved request while an attack runs (they take milliseconds).
const GENEROUS: Duration = Duration::from_secs(5);
/// The timeouts of the server under attack: short, so the test sees them fire.
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
const BODY_TIMEOUT: Duration = Duration::from_secs(2);
/// How late a cut-off may come after its timeout on a busy machine.
const SLACK: Duration = Duration::from_secs(3);

async fn serve(config: HttpConfig) -> TestServer {
    let engine = Engine::open(EngineConfig::in_memory().read_wait(Duration::from_millis(10)))
        .expect("engine");
    let server = TestServer::start_with(engine, config).await;
    let answer = call(
        server.addr,
        "CreateStream",
        json!({"StreamName": "s", "ShardCount": 2}),
    )
    .await
    .expect("create");
    assert_eq!(answer.0, 200, "{}", answer.1);
    server
}

/// One request over a fresh connection: status and body text, or why there was none.
async fn call(addr: SocketAddr, action: &str, body: Value) -> Result<(u16, String), String> {
    let exchange = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = hyper::Request::post(format!("http://{addr}/"))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", target(action))
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| "no answer within 30 s".to_owned())?
}

/// A well-behaved client: writes a record, reads the shard, lists streams, in a loop until
/// stopped. Returns the latency of every request; panics on a failed one.
struct GoodClient {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Vec<Duration>>,
}

impl GoodClient {
    fn start(addr: SocketAddr) -> GoodClient {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut timed = async |action: &str, body: Value| -> Value {
                let started = Instant::now();
                let answer = call(addr, action, body).await;
                latencies.push(started.elapsed());
                let (status, text) = answer.unwrap_or_else(|why| panic!("{action}: {why}"));
                assert_eq!(status, 200, "{action}: {text}");
                serde_json::from_str(&text).unwrap_or(Value::Null)
            };
            let iterator = timed(
                "GetShardIterator",
                json!({"StreamName": "s", "ShardId": "shardId-000000000000",
                       "ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await;
            let mut iterator = iterator["ShardIterator"].as_str().unwrap_or("").to_owned();
            let mut n = 0u64;
            while !stopped.load(Ordering::Relaxed) {
                n += 1;
                timed(
                    "PutRecord",
                    json!({"StreamName": "s", "PartitionKey": format!("k{n}"), "Data": "AAEC"}),
                )
                .await;
                let read = timed("GetRecords", json!({ "ShardIterator": iterator })).await;
                if let Some(next) = read["NextShardIterator"].as_str() {
                    iterator = next.to_owned();
                }
                timed("ListStreams", json!({})).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            latencies
        });
        GoodClient { stop, task }
    }

    /// Stops the client and checks its requests completed within the bound.
    async fn finish(self, attack: &str) -> Vec<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        let mut latencies = self.task.await.expect("the good client failed");
        latencies.sort();
        let worst = latencies.last().copied().unwrap_or_default();
        let median = latencies
            .get(latencies.len() / 2)
            .copied()
            .unwrap_or_default();
        println!(
            "{attack}: the good client made {} requests, median {} ms, worst {} ms",
            latencies.len(),
            median.as_millis(),
            worst.as_millis()
        );
        assert!(
            latencies.len() >= 20,
            "{attack}: only {} requests",
            latencies.len()
        );
        assert!(
            worst < GENEROUS,
            "{attack}: a request took {} ms",
            worst.as_millis()
        );
        latencies
    }
}

/// What became of a hostile connection.
#[derive(Debug)]
struct Outcome {
    /// When the server closed the connection, after the first byte was sent.
    closed_after: Option<Duration>,
    /// What the server sent.
    answer: Vec<u8>,
}

impl Outcome {
    fn status_line(&self) -> String {
        String::from_utf8_lossy(&self.answer)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    }
}

/// Sends `start`, then `drip` one byte every `interval`, while reading what the server sends;
/// stops when the server closes the connection or after `give_up`.
async fn trickle(
    addr: SocketAddr,
    start: Vec<u8>,
    drip: Vec<u8>,
    interval: Duration,
    give_up: Duration,
) -> Outcome {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let began = Instant::now();
    let _ = stream.write_all(&start).await;
    let mut drip = drip.into_iter();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::sleep(give_up);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => {
                    return Outcome { closed_after: Some(began.elapsed()), answer };
                }
                Ok(read) => answer.extend_from_slice(&buffer[..read]),
            },
            () = tokio::time::sleep(interval) => {
                if let Some(byte) = drip.next()
                    && stream.write_all(&[byte]).await.is_err()
                {
                    return Outcome { closed_after: Some(began.elapsed()), answer };
                }
            }
            () = &mut deadline => return Outcome { closed_after: None, answer },
        }
    }
}

fn request_head(content_length: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nHost: kinesis\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: Kinesis_20131202.PutRecord\r\nContent-Length: {content_length}\r\n\r\n"
    )
    .into_bytes()
}

/// Resident memory of this process (server and clients), in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_senders_are_let_go_and_do_not_starve_others() {
    let config = HttpConfig::default()
        .header_read_timeout(HEADER_TIMEOUT)
        .body_read_timeout(BODY_TIMEOUT);
    let server = serve(config).await;
    let addr = server.addr;
    let memory_before = resident_bytes();
    let good = GoodClient::start(addr);

    let drip_interval = Duration::from_millis(100);
    let give_up = Duration::from_secs(20);
    let mut attacks: Vec<(&str, JoinHandle<Outcome>)> = Vec::new();
    let mut launch = |kind: &'static str, count: usize, start: Vec<u8>, drip: Vec<u8>| {
        for _ in 0..count {
            let (start, drip) = (start.clone(), drip.clone());
            attacks.push((
                kind,
                tokio::spawn(trickle(addr, start, drip, drip_interval, give_up)),
            ));
        }
    };
    // Connects and sends nothing.
    launch("silent", 100, Vec::new(), Vec::new());
    // Starts the HTTP/2 preface and stops.
    launch(
        "partial preface",
        50,
        b"PRI * HTTP/2.0\r\n".to_vec(),
        Vec::new(),
    );
    // Trickles its headers, a byte every 100 ms, for ever.
    launch(
        "slow headers",
        100,
        b"POST / HTTP/1.1\r\nHost: kinesis\r\n".to_vec(),
        b"X-Slow: a\r\n".repeat(1_000),
    );
    // Declares a body and trickles it.
    launch(
        "slow body",
        100,
        request_head("100000"),
        b"{ ".repeat(50_000),
    );
    // Declares 16,000,000 bytes (within the limit) and sends none of them.
    launch(
        "huge declared length",
        50,
        request_head("16000000"),
        Vec::new(),
    );
    // Declares more than the limit: refused at once.
    launch(
        "over-limit length",
        50,
        request_head("1000000000000"),
        Vec::new(),
    );
    launch(
        "unparsable length",
        20,
        request_head("99999999999999999999999"),
        Vec::new(),
    );

    let mut worst_by_kind: std::collections::BTreeMap<&str, Duration> = Default::default();
    for (kind, attack) in attacks {
        let outcome = attack.await.expect("attack task");
        let closed = outcome
            .closed_after
            .unwrap_or_else(|| panic!("{kind}: still connected after {give_up:?}"));
        let status = outcome.status_line();
        let deadline = match kind {
            "silent" | "partial preface" | "slow headers" => {
                assert!(
                    outcome.answer.is_empty() || status.starts_with("HTTP/1.1 408"),
                    "{kind}: {status}"
                );
                // The HTTP/1.1 header timeout starts once the protocol is known.
                HEADER_TIMEOUT * 2
            }
            "slow body" | "huge declared length" => {
                assert!(status.starts_with("HTTP/1.1 408"), "{kind}: {status}");
                let text = String::from_utf8_lossy(&outcome.answer);
                assert!(text.contains("RequestTimeoutException"), "{kind}: {text}");
                BODY_TIMEOUT
            }
            "over-limit length" => {
                assert!(status.starts_with("HTTP/1.1 413"), "{kind}: {status}");
                Duration::ZERO
            }
            _ => {
                assert!(status.starts_with("HTTP/1.1 400"), "{kind}: {status}");
                Duration::ZERO
            }
        };
        assert!(
            closed < deadline + SLACK,
            "{kind}: let go after {} ms",
            closed.as_millis()
        );
        let worst = worst_by_kind.entry(kind).or_default();
        *worst = (*worst).max(closed);
    }
    let latencies = good.finish("slow and silent senders").await;
    assert!(!latencies.is_empty());
    let grown = resident_bytes().saturating_sub(memory_before);
    for (kind, worst) in &worst_by_kind {
        println!(
            "slow and silent senders: {kind}: let go within {} ms",
            worst.as_millis()
        );
    }
    println!(
        "slow and silent senders: resident memory grew by {} MiB",
        grown >> 20
    );
    assert!(grown < 256 << 20, "memory grew by {} MiB", grown >> 20);
}

/// A body sent over HTTP/2 a byte at a time is answered 408 after the body timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_http2_body_is_answered_after_the_body_timeout() {
    let config = HttpConfig::default()
        .header_read_timeout(HEADER_TIMEOUT)
        .body_read_timeout(BODY_TIMEOUT);
    let server = serve(config).await;
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(connection);
    let (mut body, channel) = http_body_util::channel::Channel::<Bytes, hyper::Error>::new(1);
    let request = hyper::Request::post(format!("http://{}/", server.addr))
        .header("x-amz-target", target("ListStreams"))
        .body(channel)
        .expect("request");
    let dripping = tokio::spawn(async move {
        for _ in 0..1_000 {
            if body
                .send(Frame::data(Bytes::from_static(b" ")))
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let started = Instant::now();
    let response = tokio::time::timeout(BODY_TIMEOUT + SLACK, sender.send_request(request))
        .await
        .expect("answered in time")
        .expect("response");
    assert_eq!(response.status(), 408);
    assert!(started.elapsed() >= BODY_TIMEOUT);
    dripping.abort();
}

/// Thousands of open connections and clients sending large bodies as fast as they can: the
/// good client's requests still complete quickly, and memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_and_heavy_clients_do_not_starve_others() {
    let server = serve(HttpConfig::default()).await;
    let addr = server.addr;
    let memory_before = resident_bytes();

    // Open connections that send nothing (the 30 s header timeout outlasts the test).
    let mut idle = Vec::new();
    for _ in 0..2_000 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    // Connections that sent half a request and wait.
    for _ in 0..500 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"POST / HTTP/1.1\r\nHost: kinesis\r\n")
            .await
            .expect("write");
        idle.push(stream);
    }

    let good = GoodClient::start(addr);
    let stop = Arc::new(AtomicBool::new(false));
    // Clients sending 2 MiB bodies back to back: refused after reading (a record larger than
    // the stream allows), so the engine does not keep them.
    let data = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 2 << 20]);
    let heavy_body = json!({"StreamName": "s", "PartitionKey": "k", "Data": data});
    let heavy: Vec<JoinHandle<usize>> = (0..8)
        .map(|_| {
            let (stop, body) = (Arc::clone(&stop), heavy_body.clone());
            tokio::spawn(async move {
                let mut sent = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (status, text) = call(addr, "PutRecord", body.clone())
                        .await
                        .unwrap_or_else(|why| panic!("heavy client: {why}"));
                    assert_eq!(status, 400, "{text}");
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    let mut peak = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(resident_bytes());
    }
    stop.store(true, Ordering::Relaxed);
    let mut heavy_requests = 0;
    for client in heavy {
        heavy_requests += client.await.expect("heavy client");
    }
    good.finish("2,500 open connections and 8 clients sending 2 MiB bodies")
        .await;
    let grown = peak.saturating_sub(memory_before);
    println!(
        "2,500 open connections and 8 clients sending 2 MiB bodies: {heavy_requests} large \
         requests refused; resident memory peaked {} MiB above the start",
        grown >> 20
    );
    assert!(grown < 1 << 30, "memory grew by {} MiB", grown >> 20);
    drop(idle);
}

/// A graceful stop does not wait for connections that never started a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_does_not_wait_for_silent_connections() {
    let server = serve(HttpConfig::default()).await;
    let silent = TcpStream::connect(server.addr).await.expect("connect");
    let mut partial = TcpStream::connect(server.addr).await.expect("connect");
    partial.write_all(b"PRI * HTTP").await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = tokio::time::timeout(Duration::from_secs(5), server.stop()).await;
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "the stop waited for connections that sent no request: {stopped:?}"
    );
    drop((silent, partial));
}
