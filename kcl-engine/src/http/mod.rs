//! The engine over HTTP: the Kinesis JSON 1.1 API (feature `http`).
//!
//! boto3, the AWS CLI, the AWS SDKs (`aws-sdk-kinesis` among them) and `kcl-kinesis` talk to a
//! [`KinesisServer`] as they would to Kinesis: `POST /` with
//! `X-Amz-Target: Kinesis_20131202.<Action>`, JSON bodies, errors as
//! `{"__type": ..., "message": ...}` with `x-amzn-ErrorType` and `x-amzn-RequestId` headers.
//! Signed and unsigned requests are both accepted (signatures are not checked). HTTP/1.1 and
//! HTTP/2 with prior knowledge are served on the same port. A client has 30 s to send a
//! request's headers and 60 s for its body (then `408 RequestTimeoutException`), so slow or
//! silent clients do not hold connections for ever; see
//! [`header_read_timeout`](HttpConfig::header_read_timeout()) and
//! [`body_read_timeout`](HttpConfig::body_read_timeout()).
//!
//! Actions: CreateStream, DeleteStream, DescribeStream, DescribeStreamSummary, ListStreams,
//! ListShards (pagination, `ShardFilter`), PutRecord, PutRecords, GetShardIterator, GetRecords
//! (`MillisBehindLatest`, `ChildShards`), SplitShard, MergeShards, UpdateShardCount,
//! Increase/DecreaseStreamRetentionPeriod, AddTagsToStream, ListTagsForStream,
//! RemoveTagsFromStream. A stream is named by `StreamName` or `StreamARN`.
//!
//! Shard iterators and pagination tokens are sealed with an HMAC keyed by random bytes drawn at
//! start: they cannot be forged or edited to read another stream or shard, they expire (5
//! minutes and 300 s by default), and a restarted server refuses older ones.
//!
//! ```no_run
//! use kcl_engine::http::{HttpConfig, KinesisServer};
//! use kcl_engine::{Engine, EngineConfig};
//!
//! # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::open(EngineConfig::durable("/tmp/kcl-data"))?;
//! let server = KinesisServer::bind(engine, HttpConfig::default()).await?;
//! println!("Kinesis API at {}", server.endpoint_url());
//! // Serves until the future completes; `kcl engine serve` passes SIGINT / SIGTERM here.
//! server.run(std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

mod actions;
mod arn;
mod config;
mod connection;
mod encode;
mod error;
mod fields;
mod iterator;
mod next_token;
mod protocol;
mod server;
mod token;
mod validate;

pub use config::{DEFAULT_MAX_BODY_BYTES, HttpConfig};
pub use server::KinesisServer;
