//! Raw HTTP against the server: malformed requests answer with Kinesis error types and the
//! server keeps serving; iterators cannot be forged and expire; HTTP/2 prior knowledge works.

mod http_support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http_support::{TestServer, post, post_h2, send, target};
use kcl_engine::http::HttpConfig;
use kcl_engine::{Engine, ManualClock};
use serde_json::json;

async fn create(server: &TestServer, name: &str, shards: u64) {
    let answer = post(
        server.addr,
        Some(&target("CreateStream")),
        json!({"StreamName": name, "ShardCount": shards}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

async fn trim_horizon_iterator(server: &TestServer, stream: &str, shard: &str) -> String {
    let answer = post(
        server.addr,
        Some(&target("GetShardIterator")),
        json!({"StreamName": stream, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"})
            .to_string(),
    )
    .await;
    answer.body["ShardIterator"]
        .as_str()
        .unwrap_or_else(|| panic!("no iterator: {}", answer.text))
        .to_owned()
}

#[tokio::test]
async fn unsigned_json_requests_are_answered_with_kinesis_headers() {
    let server = TestServer::start().await;
    create(&server, "plain", 1).await;
    let answer = post(server.addr, Some(&target("ListStreams")), "{}").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["StreamNames"], json!(["plain"]));
    assert_eq!(
        answer
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-amz-json-1.1")
    );
    assert!(answer.headers.contains_key("x-amzn-requestid"));

    // A void action answers 200 with an empty body; an empty request body counts as `{}`.
    let empty = post(server.addr, Some(&target("ListStreams")), "").await;
    assert_eq!(empty.status, 200, "{}", empty.text);
}

#[tokio::test]
async fn malformed_requests_get_kinesis_error_types_naming_the_field() {
    let server = TestServer::start().await;
    create(&server, "s", 1).await;
    let addr = server.addr;
    let cases: Vec<(Option<String>, String, &str, &str)> = vec![
        (None, "{}".into(), "UnknownOperationException", "X-Amz-Target"),
        (Some("Kinesis_20131202.Nope".into()), "{}".into(), "UnknownOperationException", "Nope"),
        (Some("DynamoDB_20120810.ListTables".into()), "{}".into(), "UnknownOperationException", "Kinesis_20131202"),
        (Some(target("ListStreams")), "{\"Limit\": ".into(), "SerializationException", "JSON"),
        (Some(target("ListStreams")), "[1, 2]".into(), "SerializationException", "object"),
        (Some(target("ListStreams")), json!({"Limit": "ten"}).to_string(), "SerializationException", "Limit"),
        (Some(target("DescribeStream")), json!({"StreamName": 5}).to_string(), "SerializationException", "StreamName"),
        (Some(target("DescribeStream")), json!({}).to_string(), "ValidationException", "StreamName"),
        (Some(target("DescribeStream")), json!({"StreamName": "a b"}).to_string(), "ValidationException", "StreamName"),
        (Some(target("ListStreams")), json!({"Limit": 0}).to_string(), "ValidationException", "Limit"),
        (
            Some(target("PutRecord")),
            json!({"StreamName": "s", "PartitionKey": "k", "Data": "not base64!"}).to_string(),
            "SerializationException",
            "Data",
        ),
        (
            Some(target("PutRecords")),
            json!({"StreamName": "s", "Records": [{"PartitionKey": "k", "Data": "AAAA"}, {"PartitionKey": "k", "Data": "%%%"}]}).to_string(),
            "SerializationException",
            "Records.2.Data",
        ),
        (
            Some(target("PutRecords")),
            json!({"StreamName": "s", "Records": [{"Data": "AAAA"}]}).to_string(),
            "ValidationException",
            "Records.1.PartitionKey",
        ),
        (
            Some(target("PutRecords")),
            json!({"StreamName": "s", "Records": "nope"}).to_string(),
            "SerializationException",
            "Records",
        ),
        (
            Some(target("GetShardIterator")),
            json!({"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "SIDEWAYS"}).to_string(),
            "ValidationException",
            "ShardIteratorType",
        ),
        (
            Some(target("CreateStream")),
            json!({"StreamName": "t", "ShardCount": 0}).to_string(),
            "ValidationException",
            "ShardCount",
        ),
        (
            Some(target("GetRecords")),
            json!({"ShardIterator": "AAAA"}).to_string(),
            "InvalidArgumentException",
            "ShardIterator",
        ),
    ];
    for (action, body, expected, named) in cases {
        let answer = post(addr, action.as_deref(), body.clone()).await;
        assert_eq!(
            answer.error_type(),
            expected,
            "{action:?} {body}: {}",
            answer.text
        );
        assert_eq!(answer.status, 400, "{body}");
        assert_eq!(
            answer
                .headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok()),
            Some(expected)
        );
        assert!(
            answer.message().contains(named),
            "{action:?} {body}: message {:?} should name {named}",
            answer.message()
        );
    }

    // A GET is no Kinesis call.
    let get = send(
        addr,
        false,
        "GET",
        Some(&target("ListStreams")),
        Bytes::new(),
    )
    .await;
    assert_eq!(get.error_type(), "UnknownOperationException");

    // The server kept serving throughout.
    let answer = post(addr, Some(&target("ListStreams")), "{}").await;
    assert_eq!(answer.body["StreamNames"], json!(["s"]));
}

#[tokio::test]
async fn oversized_bodies_are_refused_without_reading_them_whole() {
    let config = HttpConfig::default().max_body_bytes(64 * 1024);
    let server = TestServer::start_with(Engine::in_memory(), config).await;
    create(&server, "s", 1).await;
    let data = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 100 * 1024]);
    let body = json!({"StreamName": "s", "PartitionKey": "k", "Data": data}).to_string();
    let answer = post(server.addr, Some(&target("PutRecord")), body).await;
    assert_eq!(answer.status, 413, "{}", answer.text);
    assert_eq!(answer.error_type(), "ValidationException");
    assert!(answer.message().contains("65536"), "{}", answer.message());

    // Within the limit, the same request succeeds.
    let small = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 1024]);
    let body = json!({"StreamName": "s", "PartitionKey": "k", "Data": small}).to_string();
    let answer = post(server.addr, Some(&target("PutRecord")), body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

#[tokio::test]
async fn the_default_limit_admits_a_full_put_records_and_refuses_more() {
    let server = TestServer::start().await;
    create(&server, "big", 1).await;
    // 500 records of 20,000 bytes: 10,000,000 bytes of data, under the 10 MiB batch limit.
    let data = base64::engine::general_purpose::STANDARD.encode(vec![1u8; 20_000]);
    let records: Vec<_> = (0..500)
        .map(|i| json!({"PartitionKey": format!("k{i}"), "Data": data}))
        .collect();
    let body = json!({"StreamName": "big", "Records": records}).to_string();
    let answer = post(server.addr, Some(&target("PutRecords")), body).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        &answer.text[..answer.text.len().min(300)]
    );
    assert_eq!(answer.body["FailedRecordCount"], json!(0));

    let huge = Bytes::from(vec![b' '; 17 * 1024 * 1024]);
    let answer = post(server.addr, Some(&target("PutRecords")), huge).await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.error_type(), "ValidationException");
}

#[tokio::test]
async fn shard_iterators_cannot_be_forged_for_another_shard_or_stream() {
    let server = TestServer::start().await;
    create(&server, "mine", 2).await;
    create(&server, "theirs", 2).await;
    let iterator = trim_horizon_iterator(&server, "mine", "shardId-000000000000").await;

    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(&iterator)
        .expect("base64 iterator");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    for (from, to) in [
        ("mine", "their"),
        ("shardId-000000000000", "shardId-000000000001"),
    ] {
        let Some(at) = text.find(from) else {
            continue;
        };
        let mut forged = bytes.clone();
        forged[at..at + to.len()].copy_from_slice(to.as_bytes());
        let forged = base64::engine::general_purpose::STANDARD.encode(&forged);
        let answer = post(
            server.addr,
            Some(&target("GetRecords")),
            json!({"ShardIterator": forged}).to_string(),
        )
        .await;
        assert_eq!(
            answer.error_type(),
            "InvalidArgumentException",
            "{}",
            answer.text
        );
    }
    // Flipping any byte breaks it.
    bytes[3] ^= 1;
    let answer = post(
        server.addr,
        Some(&target("GetRecords")),
        json!({"ShardIterator": base64::engine::general_purpose::STANDARD.encode(&bytes)})
            .to_string(),
    )
    .await;
    assert_eq!(answer.error_type(), "InvalidArgumentException");

    // An iterator of another server (another key) is refused too.
    let other = TestServer::start().await;
    create(&other, "mine", 2).await;
    let answer = post(
        other.addr,
        Some(&target("GetRecords")),
        json!({"ShardIterator": iterator}).to_string(),
    )
    .await;
    assert_eq!(answer.error_type(), "InvalidArgumentException");
}

#[tokio::test]
async fn iterators_and_page_tokens_expire() {
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let config = HttpConfig::default().clock(clock.clone());
    let server = TestServer::start_with(Engine::in_memory(), config).await;
    create(&server, "s", 3).await;
    let iterator = trim_horizon_iterator(&server, "s", "shardId-000000000000").await;
    let pages = post(
        server.addr,
        Some(&target("ListShards")),
        json!({"StreamName": "s", "MaxResults": 1}).to_string(),
    )
    .await;
    let token = pages.body["NextToken"]
        .as_str()
        .expect("NextToken")
        .to_owned();

    clock.advance(Duration::from_secs(299));
    let fresh = post(
        server.addr,
        Some(&target("GetRecords")),
        json!({"ShardIterator": iterator}).to_string(),
    )
    .await;
    assert_eq!(fresh.status, 200, "{}", fresh.text);
    let next = fresh.body["NextShardIterator"]
        .as_str()
        .expect("next")
        .to_owned();

    clock.advance(Duration::from_secs(2));
    let expired = post(
        server.addr,
        Some(&target("GetRecords")),
        json!({"ShardIterator": iterator}).to_string(),
    )
    .await;
    assert_eq!(
        expired.error_type(),
        "ExpiredIteratorException",
        "{}",
        expired.text
    );
    let expired_token = post(
        server.addr,
        Some(&target("ListShards")),
        json!({"NextToken": token}).to_string(),
    )
    .await;
    assert_eq!(expired_token.error_type(), "ExpiredNextTokenException");

    // The iterator handed out by the read is fresh.
    let continued = post(
        server.addr,
        Some(&target("GetRecords")),
        json!({"ShardIterator": next}).to_string(),
    )
    .await;
    assert_eq!(continued.status, 200, "{}", continued.text);
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served_on_the_same_port() {
    let server = TestServer::start().await;
    create(&server, "h2", 1).await;
    let answer = post_h2(
        server.addr,
        Some(&target("DescribeStreamSummary")),
        json!({"StreamName": "h2"}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.body["StreamDescriptionSummary"]["OpenShardCount"],
        json!(1)
    );
    let error = post_h2(server.addr, Some(&target("Nope")), "{}").await;
    assert_eq!(error.error_type(), "UnknownOperationException");
}

#[tokio::test]
async fn cbor_requests_are_refused_with_a_hint() {
    let server = TestServer::start().await;
    let stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method("POST")
        .uri("/")
        .header("content-type", "application/x-amz-cbor-1.1")
        .header("x-amz-target", target("ListStreams"))
        .body(http_body_util::Full::new(Bytes::from_static(b"\xa0")))
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok()),
        Some("SerializationException")
    );
}

#[tokio::test]
async fn a_graceful_stop_finishes_and_syncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(kcl_engine::EngineConfig::durable(dir.path())).expect("engine");
    let server = TestServer::start_with(engine, HttpConfig::default()).await;
    create(&server, "kept", 1).await;
    let answer = post(
        server.addr,
        Some(&target("PutRecord")),
        json!({"StreamName": "kept", "PartitionKey": "k", "Data": "AQID"}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 200);
    server.stop().await.expect("graceful stop");

    let reopened = Engine::open(kcl_engine::EngineConfig::durable(dir.path())).expect("reopen");
    let mut reader = reopened
        .open_reader(
            "kept",
            "shardId-000000000000",
            kcl_core::StartingPosition::TrimHorizon,
        )
        .expect("reader");
    let batch = reader.read(10).expect("read");
    assert_eq!(batch.records.len(), 1);
    assert_eq!(batch.records[0].data.as_ref(), [1, 2, 3]);
}

#[tokio::test]
async fn a_durable_engines_iterators_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(kcl_engine::EngineConfig::durable(dir.path())).expect("engine");
    let server = TestServer::start_with(engine, HttpConfig::default()).await;
    create(&server, "kept", 1).await;
    let put = post(
        server.addr,
        Some(&target("PutRecord")),
        json!({"StreamName": "kept", "PartitionKey": "k", "Data": "AQID"}).to_string(),
    )
    .await;
    assert_eq!(put.status, 200);
    let iterator = trim_horizon_iterator(&server, "kept", "shardId-000000000000").await;
    server.stop().await.expect("graceful stop");

    let reopened = Engine::open(kcl_engine::EngineConfig::durable(dir.path())).expect("reopen");
    let server = TestServer::start_with(reopened, HttpConfig::default()).await;
    let answer = post(
        server.addr,
        Some(&target("GetRecords")),
        json!({"ShardIterator": iterator}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["Records"][0]["Data"], "AQID");
    // A forged iterator is still refused after the restart.
    let forged = format!("A{}", &iterator[1..]);
    let refused = post(
        server.addr,
        Some(&target("GetRecords")),
        json!({"ShardIterator": forged}).to_string(),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
}
