//! Listing shards (ListShards, with pagination and ShardFilter) and resharding (SplitShard,
//! MergeShards, UpdateShardCount).

use serde_json::json;

use super::streams::shard_order_key;
use super::{Api, Reply};
use crate::ShardFilter;
use crate::http::arn::{optional_stream, required_stream, stream_arn};
use crate::http::encode;
use crate::http::error::ApiError;
use crate::http::fields::Fields;
use crate::http::next_token::{FilterToken, PageToken};
use crate::http::validate;
use crate::stream::to_millis;

/// The most shards one ListShards call returns, whatever `MaxResults` asks, as Kinesis.
const MAX_SHARDS_PER_PAGE: usize = 1_000;

const FILTER_TYPES: [&str; 6] = [
    "AFTER_SHARD_ID",
    "AT_TRIM_HORIZON",
    "FROM_TRIM_HORIZON",
    "AT_LATEST",
    "AT_TIMESTAMP",
    "FROM_TIMESTAMP",
];

impl Api {
    pub(super) async fn list_shards(&self, fields: Fields<'_>) -> Result<Reply, ApiError> {
        let stream = optional_stream(&fields)?;
        let max_results = fields.integer("MaxResults")?;
        if let Some(max) = max_results {
            validate::range("MaxResults", max, 1, 10_000)?;
        }
        let page_size = max_results
            .and_then(|max| usize::try_from(max).ok())
            .unwrap_or(MAX_SHARDS_PER_PAGE)
            .min(MAX_SHARDS_PER_PAGE);
        let exclusive_start = fields.string("ExclusiveStartShardId")?;
        if let Some(start) = exclusive_start {
            validate::name("ExclusiveStartShardId", start)?;
        }
        // Accepted for compatibility; a stream name names one stream here at any time.
        fields.timestamp("StreamCreationTimestamp")?;
        let filter = match fields.object("ShardFilter")? {
            Some(filter) => Some(shard_filter(&Fields::new(filter, "ShardFilter."))?),
            None => None,
        };
        let next_token = fields.string("NextToken")?;
        if let Some(token) = next_token {
            validate::length("NextToken", token, 1, 1_048_576)?;
        }

        let (stream, created_ms, filter, after) = match (next_token, stream) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid_argument(
                    "NextToken and StreamName cannot be provided together.",
                ));
            }
            (None, None) => {
                return Err(ApiError::invalid_argument(
                    "Either NextToken or StreamName should be provided.",
                ));
            }
            (Some(token), None) => {
                if exclusive_start.is_some() || filter.is_some() {
                    return Err(ApiError::invalid_argument(
                        "NextToken cannot be combined with ExclusiveStartShardId or ShardFilter.",
                    ));
                }
                match PageToken::open(&self.signer, token, self.now(), self.next_token_ttl_ms())? {
                    PageToken::Shards {
                        stream,
                        created_ms,
                        after,
                        filter,
                    } => {
                        let filter = filter
                            .filter()
                            .ok_or_else(|| ApiError::invalid_argument("Invalid NextToken."))?;
                        (stream, Some(created_ms), filter, Some(after))
                    }
                    PageToken::Streams { .. } => {
                        return Err(ApiError::invalid_argument("Invalid NextToken."));
                    }
                }
            }
            (None, Some(stream)) => {
                let filter = match (filter, exclusive_start) {
                    (Some(_), Some(_)) => {
                        return Err(ApiError::invalid_argument(
                            "ShardFilter and ExclusiveStartShardId cannot be provided together.",
                        ));
                    }
                    (Some(filter), None) => filter,
                    (None, Some(start)) => ShardFilter::AfterShardId(
                        kcl_core::ShardId::new(start).map_err(crate::Error::from)?,
                    ),
                    (None, None) => ShardFilter::FromTrimHorizon,
                };
                (stream, None, filter, None)
            }
        };

        let summary = self.summary(&stream).await?;
        let stream_created_ms = to_millis(summary.created_at);
        if created_ms.is_some_and(|created| created != stream_created_ms) {
            return Err(ApiError::not_found(format!(
                "the stream {stream} that NextToken pages was deleted"
            )));
        }
        let listed_filter = filter.clone();
        let listed_stream = stream.clone();
        let shards = self
            .blocking(move |engine| engine.list_shards(&listed_stream, &listed_filter))
            .await?;
        let after = after.map(|after| shard_order_key(&after));
        let remaining: Vec<_> = shards
            .iter()
            .filter(|shard| {
                after
                    .as_ref()
                    .is_none_or(|after| shard_order_key(shard.shard_id.as_str()) > *after)
            })
            .collect();
        let page: Vec<_> = remaining.iter().take(page_size).collect();
        let mut reply = json!({
            "Shards": page.iter().map(|shard| encode::shard(shard)).collect::<Vec<_>>(),
        });
        if remaining.len() > page_size
            && let Some(last) = page.last()
        {
            let token = PageToken::Shards {
                stream,
                created_ms: stream_created_ms,
                after: last.shard_id.to_string(),
                filter: FilterToken::of(&filter),
            };
            reply["NextToken"] = json!(token.seal(&self.signer, self.now()));
        }
        Ok(Some(reply))
    }

    pub(super) async fn split_shard(&self, fields: Fields<'_>) -> Result<Reply, ApiError> {
        let stream = required_stream(&fields)?;
        let shard = fields.required_string("ShardToSplit")?;
        validate::name("ShardToSplit", shard)?;
        let key = fields.required_string("NewStartingHashKey")?;
        validate::decimal("NewStartingHashKey", key, 39)?;
        let (shard, key) = (shard.to_owned(), key.to_owned());
        self.blocking(move |engine| engine.split_shard(&stream, &shard, &key))
            .await?;
        Ok(None)
    }

    pub(super) async fn merge_shards(&self, fields: Fields<'_>) -> Result<Reply, ApiError> {
        let stream = required_stream(&fields)?;
        let shard = fields.required_string("ShardToMerge")?;
        validate::name("ShardToMerge", shard)?;
        let adjacent = fields.required_string("AdjacentShardToMerge")?;
        validate::name("AdjacentShardToMerge", adjacent)?;
        let (shard, adjacent) = (shard.to_owned(), adjacent.to_owned());
        self.blocking(move |engine| engine.merge_shards(&stream, &shard, &adjacent))
            .await?;
        Ok(None)
    }

    pub(super) async fn update_shard_count(&self, fields: Fields<'_>) -> Result<Reply, ApiError> {
        let stream = required_stream(&fields)?;
        let target = fields.required_integer("TargetShardCount")?;
        validate::range("TargetShardCount", target, 1, 100_000)?;
        let scaling = fields.required_string("ScalingType")?;
        validate::one_of("ScalingType", scaling, &["UNIFORM_SCALING"])?;
        let target = target.unsigned_abs();
        let current = self
            .blocking(move |engine| {
                let current = engine.describe_stream_summary(&stream)?.open_shard_count;
                engine.update_shard_count(&stream, target)?;
                Ok((stream, current))
            })
            .await?;
        let (stream, current) = current;
        Ok(Some(json!({
            "StreamName": stream,
            "StreamARN": stream_arn(&self.config, &stream),
            "CurrentShardCount": current,
            "TargetShardCount": target,
        })))
    }
}

/// A `ShardFilter` structure.
fn shard_filter(fields: &Fields<'_>) -> Result<ShardFilter, ApiError> {
    let kind = fields.required_string("Type")?;
    let kind = validate::one_of(&fields.name("Type"), kind, &FILTER_TYPES)?;
    let shard_id = fields.string("ShardId")?;
    if let Some(id) = shard_id {
        validate::name(&fields.name("ShardId"), id)?;
    }
    let timestamp = fields.timestamp("Timestamp")?;
    let needs = |what: &str| {
        ApiError::invalid_argument(format!(
            "ShardFilter of type {kind} needs ShardFilter.{what}"
        ))
    };
    Ok(match kind {
        "AFTER_SHARD_ID" => {
            let id = shard_id.ok_or_else(|| needs("ShardId"))?;
            ShardFilter::AfterShardId(kcl_core::ShardId::new(id).map_err(crate::Error::from)?)
        }
        "AT_TRIM_HORIZON" => ShardFilter::AtTrimHorizon,
        "FROM_TRIM_HORIZON" => ShardFilter::FromTrimHorizon,
        "AT_LATEST" => ShardFilter::AtLatest,
        "AT_TIMESTAMP" => ShardFilter::AtTimestamp(timestamp.ok_or_else(|| needs("Timestamp"))?),
        _ => ShardFilter::FromTimestamp(timestamp.ok_or_else(|| needs("Timestamp"))?),
    })
}
