//! A kcl-rs [`StreamSource`](kcl_core::StreamSource) over the official `aws-sdk-kinesis`.
//!
//! [`KinesisSource`] lists shards with ListShards and reads them with GetShardIterator and
//! GetRecords, so the same worker runs against real Kinesis, against `kcl engine serve`, or
//! against any Kinesis-compatible server. Expired iterators are renewed just after the last
//! record delivered; throttling and transient failures are retried with backoff, and what is
//! returned maps to [`kcl_core::Error`] so that
//! [`is_transient`](kcl_core::Error::is_transient) tells retryable failures from decisions.
//!
//! ```no_run
//! use kcl_core::{ShardId, StartingPosition, StreamName, StreamSource};
//! use kcl_kinesis::KinesisSource;
//!
//! # async fn read() -> Result<(), kcl_core::Error> {
//! // A local engine (`kcl engine serve`); `KinesisSource::from_env().await` reads the AWS
//! // configuration chain instead, for real Kinesis.
//! let source = KinesisSource::local("http://127.0.0.1:4567");
//! let stream = StreamName::new("readings")?;
//! let shards = source.list_shards(&stream).await?;
//! let mut reader = source
//!     .open_reader(&stream, &shards[0].shard_id, StartingPosition::TrimHorizon)
//!     .await?;
//! let batch = reader.next_batch(1_000).await?;
//! for record in &batch.records {
//!     println!("{} {:?}", record.sequence_number, record.data);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The `rustls` feature (on by default) lets the SDK reach HTTPS endpoints such as real
//! Kinesis; without it only plain-HTTP endpoints (a local server) work.

mod client;
mod config;
mod convert;
mod errors;
mod reader;
mod retry;
mod source;

pub use client::{LOCAL_REGION, client_from_env, http_client, local_client};
pub use config::{BackoffConfig, KinesisSourceConfig};
pub use reader::KinesisShardReader;
pub use source::KinesisSource;
