//! [`KinesisSource`]: the [`StreamSource`] over `aws-sdk-kinesis`.

use std::sync::Arc;

use async_trait::async_trait;
use kcl_core::{
    ShardDescription, ShardId, ShardReader, StartingPosition, StreamName, StreamSource,
};

use crate::client::{client_from_env, local_client};
use crate::config::KinesisSourceConfig;
use crate::convert;
use crate::errors::from_sdk;
use crate::reader::KinesisShardReader;
use crate::retry::with_backoff;

/// A stream source that reads through the Kinesis API: real Kinesis, `kcl engine serve`, or any
/// Kinesis-compatible server. Cheap to clone: clones share the SDK client.
#[derive(Debug, Clone)]
pub struct KinesisSource {
    client: aws_sdk_kinesis::Client,
    config: Arc<KinesisSourceConfig>,
}

impl KinesisSource {
    /// A source over an SDK client configured by the caller.
    pub fn new(client: aws_sdk_kinesis::Client) -> Self {
        KinesisSource {
            client,
            config: Arc::new(KinesisSourceConfig::default()),
        }
    }

    /// A source on a local Kinesis-compatible server at `endpoint` (e.g.
    /// `http://127.0.0.1:4567`), with fixed local credentials and region `us-east-1`.
    pub fn local(endpoint: &str) -> Self {
        Self::new(local_client(endpoint))
    }

    /// A source configured by the usual AWS chain (region, credentials, and `AWS_ENDPOINT_URL`
    /// for a local server).
    pub async fn from_env() -> Self {
        Self::new(client_from_env().await)
    }

    /// Replaces the polling and backoff configuration, after checking it.
    pub fn with_config(mut self, config: KinesisSourceConfig) -> Result<Self, kcl_core::Error> {
        config.validate()?;
        self.config = Arc::new(config);
        Ok(self)
    }

    /// The SDK client, for calls the source does not make (creating streams, writing).
    pub fn client(&self) -> &aws_sdk_kinesis::Client {
        &self.client
    }

    /// The polling and backoff configuration.
    pub fn config(&self) -> &KinesisSourceConfig {
        &self.config
    }
}

/// Every shard of `stream` (ListShards, all pages), in shard id order; a missing stream is
/// [`NotFound`](kcl_core::Error::NotFound) of kind `stream`.
pub(crate) async fn list_all_shards(
    client: &aws_sdk_kinesis::Client,
    config: &KinesisSourceConfig,
    stream: &StreamName,
) -> Result<Vec<ShardDescription>, kcl_core::Error> {
    let mut shards = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let token = next_token.clone();
        let page = with_backoff(&config.backoff, "ListShards", stream.as_str(), || {
            let request = match &token {
                Some(token) => client.list_shards().next_token(token),
                None => client.list_shards().stream_name(stream.as_str()),
            };
            async move {
                request
                    .send()
                    .await
                    .map_err(|error| match from_sdk("ListShards", error) {
                        // The only resource ListShards names.
                        kcl_core::Error::NotFound { .. } => {
                            kcl_core::Error::not_found("stream", stream.as_str())
                        }
                        error => error,
                    })
            }
        })
        .await?;
        for shard in page.shards() {
            shards.push(convert::shard(shard)?);
        }
        next_token = page.next_token().map(str::to_owned);
        if next_token.is_none() {
            break;
        }
    }
    shards.sort_by_key(|shard| (shard.shard_id.index(), shard.shard_id.clone()));
    Ok(shards)
}

#[async_trait]
impl StreamSource for KinesisSource {
    async fn list_shards(
        &self,
        stream: &StreamName,
    ) -> Result<Vec<ShardDescription>, kcl_core::Error> {
        list_all_shards(&self.client, &self.config, stream).await
    }

    async fn open_reader(
        &self,
        stream: &StreamName,
        shard: &ShardId,
        position: StartingPosition,
    ) -> Result<Box<dyn ShardReader>, kcl_core::Error> {
        let reader = KinesisShardReader::open(
            self.client.clone(),
            Arc::clone(&self.config),
            stream.clone(),
            shard.clone(),
            position,
        )
        .await?;
        Ok(Box::new(reader))
    }
}
