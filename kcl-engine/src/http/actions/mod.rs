//! The Kinesis actions the server answers, one group per file, and what they share.

mod reads;
mod shards;
mod streams;
mod tags;
mod writes;

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::config::HttpConfig;
use super::error::ApiError;
use super::fields::Fields;
use super::token::TokenSigner;
use crate::{Engine, StreamSummary};

/// Every action the server knows, by its `X-Amz-Target` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    CreateStream,
    DeleteStream,
    DescribeStream,
    DescribeStreamSummary,
    ListStreams,
    ListShards,
    PutRecord,
    PutRecords,
    GetShardIterator,
    GetRecords,
    SplitShard,
    MergeShards,
    UpdateShardCount,
    IncreaseStreamRetentionPeriod,
    DecreaseStreamRetentionPeriod,
    AddTagsToStream,
    ListTagsForStream,
    RemoveTagsFromStream,
}

impl Action {
    /// The action named `name` (the part of `X-Amz-Target` after the dot).
    pub(crate) fn named(name: &str) -> Option<Action> {
        Some(match name {
            "CreateStream" => Action::CreateStream,
            "DeleteStream" => Action::DeleteStream,
            "DescribeStream" => Action::DescribeStream,
            "DescribeStreamSummary" => Action::DescribeStreamSummary,
            "ListStreams" => Action::ListStreams,
            "ListShards" => Action::ListShards,
            "PutRecord" => Action::PutRecord,
            "PutRecords" => Action::PutRecords,
            "GetShardIterator" => Action::GetShardIterator,
            "GetRecords" => Action::GetRecords,
            "SplitShard" => Action::SplitShard,
            "MergeShards" => Action::MergeShards,
            "UpdateShardCount" => Action::UpdateShardCount,
            "IncreaseStreamRetentionPeriod" => Action::IncreaseStreamRetentionPeriod,
            "DecreaseStreamRetentionPeriod" => Action::DecreaseStreamRetentionPeriod,
            "AddTagsToStream" => Action::AddTagsToStream,
            "ListTagsForStream" => Action::ListTagsForStream,
            "RemoveTagsFromStream" => Action::RemoveTagsFromStream,
            _ => return None,
        })
    }
}

/// What an action answers: a JSON body, or nothing (an empty `200`).
pub(crate) type Reply = Option<Value>;

/// The engine as the API sees it, with the server's configuration and token key.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    pub(crate) engine: Engine,
    pub(crate) config: Arc<HttpConfig>,
    pub(crate) signer: TokenSigner,
}

impl Api {
    /// Runs `action` on a request body.
    pub(crate) async fn call(
        &self,
        action: Action,
        body: &Map<String, Value>,
    ) -> Result<Reply, ApiError> {
        let fields = Fields::new(body, "");
        match action {
            Action::CreateStream => self.create_stream(fields).await,
            Action::DeleteStream => self.delete_stream(fields).await,
            Action::DescribeStream => self.describe_stream(fields).await,
            Action::DescribeStreamSummary => self.describe_stream_summary(fields).await,
            Action::ListStreams => self.list_streams(fields).await,
            Action::IncreaseStreamRetentionPeriod => self.change_retention(fields, true).await,
            Action::DecreaseStreamRetentionPeriod => self.change_retention(fields, false).await,
            Action::ListShards => self.list_shards(fields).await,
            Action::SplitShard => self.split_shard(fields).await,
            Action::MergeShards => self.merge_shards(fields).await,
            Action::UpdateShardCount => self.update_shard_count(fields).await,
            Action::PutRecord => self.put_record(fields).await,
            Action::PutRecords => self.put_records(fields).await,
            Action::GetShardIterator => self.get_shard_iterator(fields).await,
            Action::GetRecords => self.get_records(fields).await,
            Action::AddTagsToStream => self.add_tags(fields).await,
            Action::ListTagsForStream => self.list_tags(fields).await,
            Action::RemoveTagsFromStream => self.remove_tags(fields).await,
        }
    }

    /// Runs an engine operation on the blocking pool: operations may read segment files or
    /// fsync, and must not stall the threads serving other connections.
    pub(crate) async fn blocking<T, F>(&self, operation: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> Result<T, crate::Error> + Send + 'static,
    {
        let engine = self.engine.clone();
        match tokio::task::spawn_blocking(move || operation(&engine)).await {
            Ok(result) => result.map_err(ApiError::from),
            Err(error) => Err(ApiError::internal(format!(
                "the engine operation did not complete: {error}"
            ))),
        }
    }

    /// The summary of `stream`.
    pub(crate) async fn summary(&self, stream: &str) -> Result<StreamSummary, ApiError> {
        let stream = stream.to_owned();
        self.blocking(move |engine| engine.describe_stream_summary(&stream))
            .await
    }

    /// The time iterators and tokens are issued and expired by.
    pub(crate) fn now(&self) -> SystemTime {
        self.config.clock.now()
    }

    /// Lifetime of a shard iterator, in milliseconds.
    pub(crate) fn iterator_ttl_ms(&self) -> u64 {
        u64::try_from(self.config.iterator_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Lifetime of a page token, in milliseconds.
    pub(crate) fn next_token_ttl_ms(&self) -> u64 {
        u64::try_from(self.config.next_token_ttl.as_millis()).unwrap_or(u64::MAX)
    }
}
