//! Hostile input, generated: random bodies, headers, methods and sizes for every action name,
//! JSON of the wrong shapes, and random values for every member of every action. Whatever
//! arrives, the server answers with a Kinesis error (`{"__type", "message"}`, a known type, a
//! short message, the `x-amzn-ErrorType` header) or with a response of the action's shape; it
//! never panics, never fails internally, keeps serving, and its memory stays bounded.
//!
//! Cases per property: `PROPTEST_CASES` (512 by default, a few seconds).

mod http_support;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use http_support::TestServer;
use hyper_util::rt::TokioIo;
use kcl_engine::http::HttpConfig;
use kcl_engine::{Engine, EngineConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every action, with the members its request may carry.
const ACTIONS: [(&str, &[&str]); 18] = [
    (
        "CreateStream",
        &[
            "StreamName",
            "ShardCount",
            "StreamModeDetails",
            "MaxRecordSizeInKiB",
            "Tags",
        ],
    ),
    (
        "DeleteStream",
        &["StreamName", "StreamARN", "EnforceConsumerDeletion"],
    ),
    (
        "DescribeStream",
        &["StreamName", "StreamARN", "Limit", "ExclusiveStartShardId"],
    ),
    ("DescribeStreamSummary", &["StreamName", "StreamARN"]),
    (
        "ListStreams",
        &["Limit", "ExclusiveStartStreamName", "NextToken"],
    ),
    (
        "ListShards",
        &[
            "StreamName",
            "StreamARN",
            "NextToken",
            "ExclusiveStartShardId",
            "MaxResults",
            "StreamCreationTimestamp",
            "ShardFilter",
        ],
    ),
    (
        "PutRecord",
        &[
            "StreamName",
            "StreamARN",
            "Data",
            "PartitionKey",
            "ExplicitHashKey",
            "SequenceNumberForOrdering",
        ],
    ),
    ("PutRecords", &["StreamName", "StreamARN", "Records"]),
    (
        "GetShardIterator",
        &[
            "StreamName",
            "StreamARN",
            "ShardId",
            "ShardIteratorType",
            "StartingSequenceNumber",
            "Timestamp",
        ],
    ),
    ("GetRecords", &["ShardIterator", "Limit", "StreamARN"]),
    (
        "SplitShard",
        &[
            "StreamName",
            "StreamARN",
            "ShardToSplit",
            "NewStartingHashKey",
        ],
    ),
    (
        "MergeShards",
        &[
            "StreamName",
            "StreamARN",
            "ShardToMerge",
            "AdjacentShardToMerge",
        ],
    ),
    (
        "UpdateShardCount",
        &["StreamName", "StreamARN", "TargetShardCount", "ScalingType"],
    ),
    (
        "IncreaseStreamRetentionPeriod",
        &["StreamName", "StreamARN", "RetentionPeriodHours"],
    ),
    (
        "DecreaseStreamRetentionPeriod",
        &["StreamName", "StreamARN", "RetentionPeriodHours"],
    ),
    ("AddTagsToStream", &["StreamName", "StreamARN", "Tags"]),
    (
        "ListTagsForStream",
        &["StreamName", "StreamARN", "Limit", "ExclusiveStartTagKey"],
    ),
    (
        "RemoveTagsFromStream",
        &["StreamName", "StreamARN", "TagKeys"],
    ),
];

/// The error types a Kinesis client may receive from this server.
const ERROR_TYPES: [&str; 11] = [
    "ResourceNotFoundException",
    "ResourceInUseException",
    "InvalidArgumentException",
    "ProvisionedThroughputExceededException",
    "ExpiredIteratorException",
    "ExpiredNextTokenException",
    "LimitExceededException",
    "ValidationException",
    "SerializationException",
    "UnknownOperationException",
    "AccessDeniedException",
];

/// The longest error message: messages quote offending values cut short, whatever was sent.
const MAX_MESSAGE_BYTES: usize = 1024;

const STREAMS: [&str; 3] = ["fuzz-a", "fuzz-b", "fuzz-new"];

/// Panics on the server's threads (tokio workers and the blocking pool), counted by a hook.
static SERVER_PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_server_panics() {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            if thread
                .name()
                .is_some_and(|name| name.starts_with("tokio-runtime-worker"))
            {
                SERVER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(512)
}

/// What a server answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: Bytes,
}

/// A request of the fuzzer's making.
#[derive(Debug, Clone)]
struct Fuzzed {
    http2: bool,
    method: &'static str,
    target: Option<String>,
    content_type: Option<&'static str>,
    extra_headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Sends one request over a fresh connection; a connection the server drops is an error.
async fn send(addr: SocketAddr, request: &Fuzzed) -> Result<Answer, String> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let io = TokioIo::new(stream);
        let mut builder = hyper::Request::builder()
            .method(request.method)
            .uri(format!("http://{addr}/"));
        if let Some(target) = &request.target {
            builder = builder.header("x-amz-target", target.as_str());
        }
        if let Some(content_type) = request.content_type {
            builder = builder.header("content-type", content_type);
        }
        for (name, value) in &request.extra_headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let built = builder
            .body(Full::new(Bytes::from(request.body.clone())))
            .map_err(|e| format!("building the request: {e}"))?;
        let response = if request.http2 {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(connection);
            sender
                .send_request(built)
                .await
                .map_err(|e| format!("h2 request: {e}"))?
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(connection);
            sender
                .send_request(built)
                .await
                .map_err(|e| format!("request: {e}"))?
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Answer {
            status,
            headers,
            body,
        })
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .map_err(|_| "no answer within 20 s".to_owned())?
}

/// The checks every answer passes; `action` and `request` (when the body was a JSON object
/// for a known action) let a successful answer be checked against the action's shape.
fn check_answer(
    answer: &Answer,
    action: Option<&str>,
    request: Option<&Map<String, Value>>,
) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(&answer.body);
    let shown = &text[..text.len().min(300)];
    prop_assert!(
        answer.status < 500,
        "server failed ({}): {shown}",
        answer.status
    );
    prop_assert!(
        answer.headers.contains_key("x-amzn-requestid"),
        "no request id: {shown}"
    );
    prop_assert_eq!(
        answer
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-amz-json-1.1")
    );
    if answer.status != 200 {
        prop_assert!(
            answer.status == 400 || answer.status == 413,
            "status {}: {shown}",
            answer.status
        );
        let body: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| TestCaseError::fail(format!("error body is not JSON ({e}): {shown}")))?;
        let kind = body["__type"].as_str().unwrap_or("");
        prop_assert!(ERROR_TYPES.contains(&kind), "unknown error type: {shown}");
        let message = body["message"].as_str();
        prop_assert!(message.is_some(), "no message: {shown}");
        let message = message.unwrap_or("");
        prop_assert!(
            message.len() <= MAX_MESSAGE_BYTES,
            "a message of {} bytes: {}...",
            message.len(),
            &message[..message.len().min(300)]
        );
        prop_assert_eq!(
            answer
                .headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok()),
            Some(kind)
        );
        return Ok(());
    }
    let Some(action) = action else {
        return Ok(());
    };
    let void = matches!(
        action,
        "CreateStream"
            | "DeleteStream"
            | "SplitShard"
            | "MergeShards"
            | "IncreaseStreamRetentionPeriod"
            | "DecreaseStreamRetentionPeriod"
            | "AddTagsToStream"
            | "RemoveTagsFromStream"
    );
    if void {
        prop_assert!(answer.body.is_empty(), "{action} answered {shown}");
        return Ok(());
    }
    let body: Value = serde_json::from_slice(&answer.body)
        .map_err(|e| TestCaseError::fail(format!("{action}: not JSON ({e}): {shown}")))?;
    let shaped = match action {
        "DescribeStream" => {
            body["StreamDescription"]["Shards"].is_array()
                && body["StreamDescription"]["StreamName"].is_string()
                && body["StreamDescription"]["HasMoreShards"].is_boolean()
        }
        "DescribeStreamSummary" => body["StreamDescriptionSummary"]["OpenShardCount"].is_u64(),
        "ListStreams" => body["StreamNames"].is_array() && body["HasMoreStreams"].is_boolean(),
        "ListShards" => body["Shards"].is_array(),
        "PutRecord" => body["ShardId"].is_string() && body["SequenceNumber"].is_string(),
        "PutRecords" => {
            let sent = request
                .and_then(|request| request.get("Records"))
                .and_then(Value::as_array)
                .map(Vec::len);
            let results = body["Records"].as_array();
            let failed = results.map(|results| {
                results
                    .iter()
                    .filter(|result| result["ErrorCode"].is_string())
                    .count()
            });
            results.map(Vec::len) == sent
                && body["FailedRecordCount"].as_u64() == failed.map(|f| f as u64)
                && results.is_some_and(|results| {
                    results.iter().all(|result| {
                        (result["ShardId"].is_string() && result["SequenceNumber"].is_string())
                            || result["ErrorCode"].is_string()
                    })
                })
        }
        "GetShardIterator" => body["ShardIterator"].is_string(),
        "GetRecords" => {
            body["Records"].is_array()
                && body["MillisBehindLatest"].is_u64()
                && (body["NextShardIterator"].is_string() || body["ChildShards"].is_array())
        }
        "UpdateShardCount" => {
            body["CurrentShardCount"].is_u64() && body["TargetShardCount"].is_u64()
        }
        "ListTagsForStream" => body["Tags"].is_array() && body["HasMoreTags"].is_boolean(),
        _ => true,
    };
    prop_assert!(shaped, "{action}: a response of the wrong shape: {shown}");
    Ok(())
}

/// Values seen on a live server, so that generated requests reach past validation: shard ids,
/// sequence numbers, iterators and page tokens it issued.
#[derive(Debug, Clone)]
struct Known {
    sequence_numbers: Vec<String>,
    iterators: Vec<String>,
    next_tokens: Vec<String>,
}

async fn prepare(addr: SocketAddr) -> Known {
    let call = |action: &str, body: Value| {
        let request = Fuzzed {
            http2: false,
            method: "POST",
            target: Some(format!("Kinesis_20131202.{action}")),
            content_type: Some("application/x-amz-json-1.1"),
            extra_headers: Vec::new(),
            body: body.to_string().into_bytes(),
        };
        async move {
            let answer = send(addr, &request).await.expect("setup request");
            assert_eq!(answer.status, 200, "{:?}", answer.body);
            serde_json::from_slice::<Value>(&answer.body).unwrap_or(Value::Null)
        }
    };
    call(
        "CreateStream",
        json!({"StreamName": "fuzz-a", "ShardCount": 2}),
    )
    .await;
    call(
        "CreateStream",
        json!({"StreamName": "fuzz-b", "ShardCount": 1}),
    )
    .await;
    let records: Vec<Value> = (0..20)
        .map(|i| json!({"PartitionKey": format!("k{i}"), "Data": "AAEC"}))
        .collect();
    let put = call(
        "PutRecords",
        json!({"StreamName": "fuzz-a", "Records": records}),
    )
    .await;
    let sequence_numbers = put["Records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|record| record["SequenceNumber"].as_str().map(str::to_owned))
        .collect();
    let mut iterators = Vec::new();
    for shard in ["shardId-000000000000", "shardId-000000000001"] {
        for kind in ["TRIM_HORIZON", "LATEST"] {
            let answer = call(
                "GetShardIterator",
                json!({"StreamName": "fuzz-a", "ShardId": shard, "ShardIteratorType": kind}),
            )
            .await;
            iterators.extend(answer["ShardIterator"].as_str().map(str::to_owned));
        }
    }
    let mut next_tokens = Vec::new();
    let streams = call("ListStreams", json!({"Limit": 1})).await;
    next_tokens.extend(streams["NextToken"].as_str().map(str::to_owned));
    let shards = call(
        "ListShards",
        json!({"StreamName": "fuzz-a", "MaxResults": 1}),
    )
    .await;
    next_tokens.extend(shards["NextToken"].as_str().map(str::to_owned));
    assert_eq!(next_tokens.len(), 2, "page tokens to fuzz with");
    Known {
        sequence_numbers,
        iterators,
        next_tokens,
    }
}

/// Any JSON value, of any shape, nested a little.
fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |n| n.is_finite())
            .prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
        (0usize..5_000).prop_map(|n| Value::String("x".repeat(n))),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
    .boxed()
}

fn strings(values: &[&str]) -> BoxedStrategy<Value> {
    let values: Vec<Value> = values.iter().map(|value| json!(value)).collect();
    prop::sample::select(values).boxed()
}

fn owned_strings(values: Vec<String>) -> BoxedStrategy<Value> {
    prop::sample::select(values.into_iter().map(Value::String).collect::<Vec<_>>()).boxed()
}

fn integers() -> BoxedStrategy<Value> {
    prop_oneof![
        (-3i64..10).prop_map(|n| json!(n)),
        prop::sample::select(vec![
            json!(0),
            json!(23),
            json!(24),
            json!(25),
            json!(48),
            json!(1_000),
            json!(1_023),
            json!(1_024),
            json!(10_000),
            json!(10_001),
            json!(100_001),
            json!(8_760),
            json!(8_761),
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1.5),
            json!(-0.5),
            json!(1e300),
            json!(-1e300),
        ]),
        any::<i64>().prop_map(|n| json!(n)),
    ]
    .boxed()
}

fn timestamps() -> BoxedStrategy<Value> {
    prop_oneof![
        prop::sample::select(vec![
            json!(0),
            json!(-1),
            json!(1_459_799_926.48),
            json!(4_102_444_800u64),
            json!(253_402_300_799u64),
            json!(253_402_300_800u64),
            json!(1e300),
            json!(u64::MAX),
            json!("2024-01-01T00:00:00Z"),
        ]),
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(|n| json!(n)),
    ]
    .boxed()
}

fn shard_ids() -> BoxedStrategy<Value> {
    prop_oneof![
        (0u32..8).prop_map(|n| json!(format!("shardId-{n:012}"))),
        strings(&[
            "",
            "shardId-",
            "shardId-999999999999",
            "shardId-0000000000001",
            "shard 1",
            "shardId-00000000000\u{e9}",
        ]),
        "[a-zA-Z0-9_.-]{0,130}".prop_map(Value::String),
    ]
    .boxed()
}

fn decimals(known: &Known) -> BoxedStrategy<Value> {
    let two_128 = (1u128 << 127).to_string();
    prop_oneof![
        owned_strings(known.sequence_numbers.clone()),
        any::<u128>().prop_map(|n| json!(n.to_string())),
        strings(&[
            "0",
            "00",
            "01",
            "-1",
            "1.5",
            "",
            "340282366920938463463374607431768211455",
            "340282366920938463463374607431768211456",
            "9999999999999999999999999999999999999999",
        ]),
        Just(json!(two_128)),
        "[0-9]{1,140}".prop_map(Value::String),
    ]
    .boxed()
}

fn stream_names() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => strings(&STREAMS),
        1 => strings(&["", "a b", "fuzz-\u{e9}", "../etc", "fuzz-a\u{0}"]),
        1 => (0usize..200).prop_map(|n| json!("s".repeat(n))),
    ]
    .boxed()
}

fn stream_arns() -> BoxedStrategy<Value> {
    prop_oneof![
        prop::sample::select(STREAMS.to_vec()).prop_map(|name| json!(format!(
            "arn:aws:kinesis:us-east-1:000000000000:stream/{name}"
        ))),
        strings(&[
            "arn:aws:kinesis:eu-west-1:123456789012:stream/fuzz-b",
            "arn:aws:kinesis:us-east-1:000000000000:stream/",
            "arn:aws:kinesis:us-east-1:0:stream/fuzz-a",
            "arn:aws:s3:::bucket",
            "arn:aws:kinesis:us-east-1:000000000000:stream/fuzz-a/consumer/c:1",
        ]),
        ".{0,60}".prop_map(Value::String),
    ]
    .boxed()
}

fn blobs() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..256).prop_map(|bytes| json!(b64(bytes))),
        1 => strings(&["not base64!", "AAE", "AA==AA==", "====", "\u{e9}\u{e9}"]),
        1 => (0usize..4).prop_map(|extra| {
            // Just above a stream's default maximum record (1 MiB): refused, unless the
            // stream was created with a larger maximum.
            json!(b64(vec![0u8; (1 << 20) + extra]))
        }),
    ]
    .boxed()
}

fn partition_keys() -> BoxedStrategy<Value> {
    prop_oneof![
        ".{0,20}".prop_map(Value::String),
        (250usize..260).prop_map(|n| json!("k".repeat(n))),
        (250usize..260).prop_map(|n| json!("\u{e9}".repeat(n))),
    ]
    .boxed()
}

fn iterators(known: &Known) -> BoxedStrategy<Value> {
    let valid = known.iterators.clone();
    let tampered: Vec<String> = valid
        .iter()
        .map(|iterator| {
            let mut bytes = iterator.clone().into_bytes();
            let middle = bytes.len() / 2;
            bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .collect();
    prop_oneof![
        3 => owned_strings(valid),
        1 => owned_strings(tampered),
        1 => "[A-Za-z0-9+/=]{0,600}".prop_map(Value::String),
    ]
    .boxed()
}

fn records(known: &Known) -> BoxedStrategy<Value> {
    let record = prop::collection::btree_map(
        prop::sample::select(vec!["Data", "PartitionKey", "ExplicitHashKey", "Nonsense"]),
        prop_oneof![
            2 => blobs(),
            2 => partition_keys(),
            1 => decimals(known),
            1 => any_json(),
        ],
        0..4,
    )
    .prop_map(|map| {
        Value::Object(
            map.into_iter()
                .map(|(key, value)| (key.to_owned(), value))
                .collect(),
        )
    });
    let simple = json!({"PartitionKey": "k", "Data": "AAEC"});
    prop_oneof![
        6 => prop::collection::vec(prop_oneof![4 => record, 1 => any_json()], 0..20)
            .prop_map(Value::Array),
        1 => (498usize..503).prop_map(move |n| Value::Array(vec![simple.clone(); n])),
        1 => any_json(),
    ]
    .boxed()
}

fn tags() -> BoxedStrategy<Value> {
    prop_oneof![
        prop::collection::btree_map(
            prop_oneof![
                "[a-z]{1,8}|.{0,20}|[a-z]{127,130}",
                (0usize..3_000).prop_map(|n| "k".repeat(n)),
            ],
            prop_oneof![
                ".{0,10}".prop_map(Value::String),
                (250usize..3_000).prop_map(|n| json!("v".repeat(n))),
                any_json()
            ],
            0..8
        )
        .prop_map(|map| Value::Object(map.into_iter().collect())),
        (45usize..55).prop_map(|n| {
            Value::Object((0..n).map(|i| (format!("t{i}"), json!("v"))).collect())
        }),
        any_json(),
    ]
    .boxed()
}

/// Standard base64, as blobs travel.
fn b64(bytes: Vec<u8>) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Values of a member that the API model admits, mostly naming what exists.
fn valid_value(name: &str, known: &Known) -> BoxedStrategy<Value> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let record = ("[a-z0-9]{1,12}", prop::collection::vec(any::<u8>(), 0..64))
        .prop_map(move |(key, data)| json!({"PartitionKey": key, "Data": b64(data)}));
    match name {
        "StreamName" | "ExclusiveStartStreamName" => strings(&STREAMS),
        "StreamARN" => prop::sample::select(STREAMS.to_vec())
            .prop_map(|name| {
                json!(format!(
                    "arn:aws:kinesis:us-east-1:000000000000:stream/{name}"
                ))
            })
            .boxed(),
        "ShardId"
        | "ShardToSplit"
        | "ShardToMerge"
        | "AdjacentShardToMerge"
        | "ExclusiveStartShardId" => (0u32..4)
            .prop_map(|n| json!(format!("shardId-{n:012}")))
            .boxed(),
        "ShardCount" | "TargetShardCount" => (1i64..5).prop_map(|n| json!(n)).boxed(),
        "Limit" | "MaxResults" => (1i64..100).prop_map(|n| json!(n)).boxed(),
        "RetentionPeriodHours" => (24i64..200).prop_map(|n| json!(n)).boxed(),
        "MaxRecordSizeInKiB" => (1_024i64..2_048).prop_map(|n| json!(n)).boxed(),
        "ShardIteratorType" => strings(&[
            "AT_SEQUENCE_NUMBER",
            "AFTER_SEQUENCE_NUMBER",
            "TRIM_HORIZON",
            "LATEST",
            "AT_TIMESTAMP",
        ]),
        "StartingSequenceNumber" | "SequenceNumberForOrdering" => {
            owned_strings(known.sequence_numbers.clone())
        }
        "ExplicitHashKey" | "NewStartingHashKey" => {
            any::<u128>().prop_map(|n| json!(n.to_string())).boxed()
        }
        "Timestamp" | "StreamCreationTimestamp" => (now.saturating_sub(3_600)..now + 60)
            .prop_map(|seconds| json!(seconds))
            .boxed(),
        "ShardIterator" => owned_strings(known.iterators.clone()),
        "NextToken" => owned_strings(known.next_tokens.clone()),
        "Data" => prop::collection::vec(any::<u8>(), 0..256)
            .prop_map(move |bytes| json!(b64(bytes)))
            .boxed(),
        "PartitionKey" => "[a-z0-9]{1,20}".prop_map(Value::String).boxed(),
        "Records" => prop::collection::vec(record, 1..20)
            .prop_map(Value::Array)
            .boxed(),
        "ScalingType" => strings(&["UNIFORM_SCALING"]),
        "StreamModeDetails" => Just(json!({"StreamMode": "PROVISIONED"})).boxed(),
        "Tags" => prop::collection::btree_map("[a-z]{1,8}", "[a-z ]{0,8}", 1..5)
            .prop_map(|tags| json!(tags))
            .boxed(),
        "TagKeys" => prop::collection::vec("[a-z]{1,8}", 1..5)
            .prop_map(|keys| json!(keys))
            .boxed(),
        "ExclusiveStartTagKey" => "[a-z]{1,8}".prop_map(Value::String).boxed(),
        "ShardFilter" => prop_oneof![
            strings(&["AT_TRIM_HORIZON", "FROM_TRIM_HORIZON", "AT_LATEST"])
                .prop_map(|kind| json!({ "Type": kind })),
            Just(json!({"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000000"})),
            strings(&["AT_TIMESTAMP", "FROM_TIMESTAMP"])
                .prop_map(move |kind| json!({ "Type": kind, "Timestamp": now })),
        ]
        .boxed(),
        "EnforceConsumerDeletion" => any::<bool>().prop_map(Value::Bool).boxed(),
        _ => any_json(),
    }
}

/// Plausible values of a member (edge values among them), valid ones, or anything.
fn member_value(name: &str, known: &Known) -> BoxedStrategy<Value> {
    let plausible = match name {
        "StreamName" | "ExclusiveStartStreamName" => stream_names(),
        "StreamARN" => stream_arns(),
        "ShardId"
        | "ShardToSplit"
        | "ShardToMerge"
        | "AdjacentShardToMerge"
        | "ExclusiveStartShardId" => shard_ids(),
        "ShardCount"
        | "TargetShardCount"
        | "Limit"
        | "MaxResults"
        | "RetentionPeriodHours"
        | "MaxRecordSizeInKiB" => integers(),
        "ShardIteratorType" => strings(&[
            "AT_SEQUENCE_NUMBER",
            "AFTER_SEQUENCE_NUMBER",
            "TRIM_HORIZON",
            "LATEST",
            "AT_TIMESTAMP",
            "trim_horizon",
            "",
        ]),
        "StartingSequenceNumber"
        | "SequenceNumberForOrdering"
        | "ExplicitHashKey"
        | "NewStartingHashKey" => decimals(known),
        "Timestamp" | "StreamCreationTimestamp" => timestamps(),
        "ShardIterator" => iterators(known),
        "NextToken" => prop_oneof![
            3 => owned_strings(known.next_tokens.clone()),
            1 => ".{0,100}".prop_map(Value::String),
        ]
        .boxed(),
        "Data" => blobs(),
        "PartitionKey" => partition_keys(),
        "Records" => records(known),
        "ScalingType" => strings(&["UNIFORM_SCALING", "uniform", ""]),
        "StreamModeDetails" => prop_oneof![
            strings(&["PROVISIONED", "ON_DEMAND", "SOMETIMES"])
                .prop_map(|mode| json!({ "StreamMode": mode })),
            Just(json!({})),
        ]
        .boxed(),
        "Tags" => tags(),
        "TagKeys" => prop_oneof![
            prop::collection::vec(".{0,10}|[a-z]{127,130}", 0..55).prop_map(|keys| json!(keys)),
            any_json(),
        ]
        .boxed(),
        "ExclusiveStartTagKey" => ".{0,130}".prop_map(Value::String).boxed(),
        "ShardFilter" => (
            strings(&[
                "AFTER_SHARD_ID",
                "AT_TRIM_HORIZON",
                "FROM_TRIM_HORIZON",
                "AT_LATEST",
                "AT_TIMESTAMP",
                "FROM_TIMESTAMP",
                "NOPE",
            ]),
            prop::option::of(shard_ids()),
            prop::option::of(timestamps()),
        )
            .prop_map(|(kind, shard, time)| {
                let mut filter = Map::new();
                filter.insert("Type".into(), kind);
                if let Some(shard) = shard {
                    filter.insert("ShardId".into(), shard);
                }
                if let Some(time) = time {
                    filter.insert("Timestamp".into(), time);
                }
                Value::Object(filter)
            })
            .boxed(),
        "EnforceConsumerDeletion" => any::<bool>().prop_map(Value::Bool).boxed(),
        _ => any_json(),
    };
    prop_oneof![6 => valid_value(name, known), 3 => plausible, 1 => any_json()].boxed()
}

/// A request object for `action`: each of its members present or not, with plausible or
/// arbitrary values, and sometimes a member it does not know.
fn action_request(
    action: &'static str,
    members: &'static [&'static str],
    known: &Known,
) -> BoxedStrategy<Map<String, Value>> {
    let fields = |value: &dyn Fn(&str) -> BoxedStrategy<Value>| -> Vec<_> {
        members
            .iter()
            .map(|name| {
                prop::option::weighted(0.85, value(name))
                    .prop_map(move |value| value.map(|value| ((*name).to_owned(), value)))
                    .boxed()
            })
            .collect()
    };
    // Streams come and go under names of their own, so that the others stay to be read.
    let lifecycle = matches!(action, "CreateStream" | "DeleteStream");
    let valid = fields(&|name| match name {
        "StreamName" if lifecycle => strings(&["fuzz-new", "fuzz-c"]),
        "StreamARN" if lifecycle => {
            strings(&["arn:aws:kinesis:us-east-1:000000000000:stream/fuzz-c"])
        }
        _ => valid_value(name, known),
    });
    let mixed = fields(&|name| match name {
        "StreamName" | "StreamARN" if lifecycle => prop_oneof![
            3 => strings(&["fuzz-new", "fuzz-c"]),
            // fuzz-a, whose iterators the fuzzer holds, is never deleted.
            1 => member_value(name, known).prop_map(|value| match value.as_str() {
                Some(text) if text.contains("fuzz-a") => json!("fuzz-c"),
                _ => value,
            }),
        ]
        .boxed(),
        _ => member_value(name, known),
    });
    let object = |fields: Vec<Option<(String, Value)>>, extra: Option<(String, Value)>| {
        let mut map: Map<String, Value> = fields.into_iter().flatten().collect();
        if let Some((name, value)) = extra {
            map.entry(name).or_insert(value);
        }
        map
    };
    prop_oneof![
        // Valid members only, so that requests reach the engine.
        1 => valid.prop_map(move |fields| {
            let mut request = object(fields, None);
            if request.contains_key("StreamName") {
                // Both, naming different streams, is a mistake of its own.
                request.remove("StreamARN");
            }
            request
        }),
        2 => (mixed, prop::option::weighted(0.2, (".{0,16}", any_json())))
            .prop_map(move |(fields, extra)| object(fields, extra)),
    ]
    .boxed()
}

/// How a body is sent: as is, cut short, or with a byte changed.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Truncate(prop::sample::Index),
    Replace(prop::sample::Index, u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        8 => Just(Damage::None),
        1 => any::<prop::sample::Index>().prop_map(Damage::Truncate),
        1 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Replace(i, b)),
    ]
}

fn damaged(mut body: Vec<u8>, damage: &Damage) -> Vec<u8> {
    if body.is_empty() {
        return body;
    }
    match damage {
        Damage::None => {}
        Damage::Truncate(at) => body.truncate(at.index(body.len())),
        Damage::Replace(at, byte) => {
            let at = at.index(body.len());
            body[at] = *byte;
        }
    }
    body
}

fn action_names() -> impl Strategy<Value = Option<String>> {
    let names: Vec<&str> = ACTIONS.iter().map(|(name, _)| *name).collect();
    prop_oneof![
        6 => prop::sample::select(names).prop_map(|name| Some(format!("Kinesis_20131202.{name}"))),
        1 => Just(None),
        1 => strings(&[
            "Kinesis_20131202.",
            "Kinesis_20131202.Nope",
            "kinesis_20131202.PutRecord",
            "DynamoDB_20120810.PutItem",
            "PutRecords",
            "Kinesis_20131202.PutRecord.",
            "Kinesis_20131202.SubscribeToShard",
        ])
        .prop_map(|name| name.as_str().map(str::to_owned)),
        1 => "[ -~]{0,60}".prop_map(Some),
    ]
}

fn content_types() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(vec![
        Some("application/x-amz-json-1.1"),
        Some("application/x-amz-json-1.1"),
        Some("application/json"),
        Some("application/x-amz-cbor-1.1"),
        Some("text/plain; charset=utf-8"),
        Some(""),
        None,
    ])
}

fn extra_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop_oneof![
                "x-[a-z-]{1,20}",
                strings(&[
                    "authorization",
                    "x-amz-date",
                    "x-amz-content-sha256",
                    "accept-encoding",
                    "content-encoding",
                    "expect",
                    "x-amz-target",
                    "user-agent",
                ])
                .prop_map(|name| name.as_str().unwrap_or("x").to_owned()),
            ],
            prop_oneof!["[ -~]{0,80}", (0usize..9_000).prop_map(|n| "v".repeat(n))],
        ),
        0..4,
    )
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// Resident memory of this process (server and fuzzer), in bytes.
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

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        // Shrinking a failure re-sends requests; a few hundred steps find a small one.
        max_shrink_iters: 512,
        failure_persistence: None,
        ..Config::default()
    })
}

/// The server answers every generated request as Kinesis would answer it, over HTTP/1.1 and
/// HTTP/2, and is alive and unchanged in memory use at the end.
#[test]
fn every_request_gets_a_kinesis_answer_and_memory_stays_bounded() {
    count_server_panics();
    let runtime = runtime();
    let engine = Engine::open(EngineConfig::in_memory().read_wait(Duration::from_millis(5)))
        .expect("engine");
    let server = runtime.block_on(TestServer::start_with(engine, HttpConfig::default()));
    let addr = server.addr;
    let known = runtime.block_on(prepare(addr));

    // Outcomes by phase and action, for the figures.
    let answers: RefCell<BTreeMap<String, u32>> = RefCell::default();
    let phase = Cell::new("actions");
    let exchange = |request: Fuzzed, action: Option<&str>, parsed: Option<&Map<String, Value>>| {
        let answer = runtime
            .block_on(send(addr, &request))
            .map_err(|why| TestCaseError::fail(format!("{why}: {request:?}")))?;
        let label = format!("{} {}", phase.get(), outcome(&answer));
        *answers.borrow_mut().entry(label).or_default() += 1;
        if answer.status == 200
            && let Some(action) = action
        {
            *answers
                .borrow_mut()
                .entry(format!("ok {action}"))
                .or_default() += 1;
        }
        if answer.status == 431 {
            // Headers beyond HTTP/2's header list limit (16 KiB, counting 32 bytes per header
            // besides the ones added here) are refused by the HTTP layer before any action
            // sees them; no Kinesis client sends such headers.
            let header_bytes: usize = request
                .extra_headers
                .iter()
                .map(|(name, value)| name.len() + value.len() + 32)
                .sum();
            prop_assert!(
                request.http2 && header_bytes > 15 * 1024,
                "431 for {header_bytes} bytes of headers"
            );
            return Ok(());
        }
        check_answer(&answer, action, parsed)?;
        prop_assert_eq!(
            SERVER_PANICS.load(Ordering::SeqCst),
            0,
            "the server panicked"
        );
        Ok(())
    };

    // 1. Well-formed requests of every action with plausible and arbitrary member values.
    let actions: Vec<(&'static str, &'static [&'static str])> = ACTIONS.to_vec();
    let shaped = prop::sample::select(actions)
        .prop_flat_map(|(name, members)| (Just(name), action_request(name, members, &known)))
        .prop_flat_map(|(name, request)| {
            (
                Just(name),
                Just(request),
                any::<bool>(),
                damage(),
                content_types(),
            )
        });
    let warmed_up = Cell::new(None);
    let count = Cell::new(0u32);
    runner()
        .run(&shaped, |(action, request, http2, damage, content_type)| {
            count.set(count.get() + 1);
            if count.get() == 64 {
                warmed_up.set(Some(resident_bytes()));
            }
            let body = damaged(
                Value::Object(request.clone()).to_string().into_bytes(),
                &damage,
            );
            let intact = matches!(damage, Damage::None);
            let fuzzed = Fuzzed {
                http2,
                method: "POST",
                target: Some(format!("Kinesis_20131202.{action}")),
                content_type,
                extra_headers: Vec::new(),
                body,
            };
            let checked_as = intact && content_type.is_none_or(|ct| !ct.contains("cbor"));
            exchange(
                fuzzed,
                checked_as.then_some(action),
                checked_as.then_some(&request),
            )
        })
        .unwrap_or_else(|failure| panic!("{failure}"));

    // 2. Any bytes, any JSON of any shape, any target, method and headers.
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2_048),
        any_json().prop_map(|value| value.to_string().into_bytes()),
        ".{0,200}".prop_map(String::into_bytes),
    ];
    let anything = (
        any::<bool>(),
        prop::sample::select(vec![
            "POST", "POST", "POST", "GET", "PUT", "DELETE", "OPTIONS",
        ]),
        action_names(),
        content_types(),
        extra_headers(),
        body,
    )
        .prop_map(
            |(http2, method, target, content_type, extra_headers, body)| Fuzzed {
                http2,
                method,
                target,
                content_type,
                extra_headers,
                body,
            },
        );
    phase.set("anything");
    runner()
        .run(&anything, |request| exchange(request, None, None))
        .unwrap_or_else(|failure| panic!("{failure}"));

    // 3. Bytes that are not HTTP at all, or HTTP cut short: the server answers 400 or closes,
    // and goes on serving.
    let garbage = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..1_024),
        // Part of the HTTP/2 preface, then the end of the stream.
        (1usize..24).prop_map(|len| b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..len].to_vec()),
        (
            prop::sample::select(vec![
                "POST / HTTP/1.1\r\n",
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                "GET /",
            ]),
            prop::collection::vec(any::<u8>(), 0..256),
        )
            .prop_map(|(start, rest)| [start.as_bytes(), &rest].concat()),
    ];
    runner()
        .run(&garbage, |bytes| {
            let answered = runtime.block_on(raw_exchange(addr, &bytes));
            let answered = answered.map_err(TestCaseError::fail)?;
            prop_assert!(
                answered.is_empty()
                    || answered.starts_with(b"HTTP/1.1 ")
                    || bytes.starts_with(b"PRI"),
                "not an HTTP answer: {:?}",
                String::from_utf8_lossy(&answered[..answered.len().min(200)])
            );
            let alive = Fuzzed {
                http2: false,
                method: "POST",
                target: Some("Kinesis_20131202.ListStreams".to_owned()),
                content_type: Some("application/x-amz-json-1.1"),
                extra_headers: Vec::new(),
                body: b"{}".to_vec(),
            };
            let answer = runtime
                .block_on(send(addr, &alive))
                .map_err(TestCaseError::fail)?;
            prop_assert_eq!(answer.status, 200);
            prop_assert_eq!(
                SERVER_PANICS.load(Ordering::SeqCst),
                0,
                "the server panicked"
            );
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));

    // Memory: what the fuzzing left behind is small. The engine keeps the records that were
    // accepted (small ones), nothing else grows with the number of requests.
    let answers = answers.into_inner();
    for phase in ["actions", "anything", "ok"] {
        let counts: Vec<String> = answers
            .iter()
            .filter_map(|(label, count)| {
                let outcome = label.strip_prefix(phase)?.strip_prefix(' ')?;
                Some(format!("{outcome} {count}"))
            })
            .collect();
        println!("fuzz: {phase}: {}", counts.join(", "));
    }
    let after = resident_bytes();
    let before = warmed_up.get().unwrap_or(after);
    let grown = after.saturating_sub(before);
    println!(
        "fuzz: {} cases per property; resident memory {} MiB after warm-up, {} MiB at the end",
        cases(),
        before >> 20,
        after >> 20
    );
    assert!(
        grown < 256 << 20,
        "resident memory grew by {} MiB over the run",
        grown >> 20
    );
    assert_eq!(SERVER_PANICS.load(Ordering::SeqCst), 0);
    drop(server);
}

/// `200`, or the status and Kinesis error type of a refusal.
fn outcome(answer: &Answer) -> String {
    if answer.status == 200 {
        return "200".to_owned();
    }
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    format!(
        "{} {}",
        answer.status,
        body["__type"].as_str().unwrap_or("-")
    )
}

/// Writes `bytes` on a fresh connection, closes the writing side, and returns what the server
/// sent before closing.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        // The server may answer and close before reading everything.
        let _ = stream.write_all(bytes).await;
        let _ = stream.shutdown().await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        Ok(answer)
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .map_err(|_| "the server neither answered nor closed within 20 s".to_owned())?
}
