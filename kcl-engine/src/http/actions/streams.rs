//! Creating, deleting, describing and listing streams, and their retention period.

use serde_json::json;

use super::{Api, Reply};
use crate::http::arn::{required_stream, stream_arn};
use crate::http::encode;
use crate::http::error::ApiError;
use crate::http::fields::Fields;
use crate::http::next_token::PageToken;
use crate::http::validate;
use crate::{MAX_MAX_RECORD_SIZE_KIB, StreamOptions};

/// The most shards DescribeStream returns when `Limit` is not given, as Kinesis.
const DEFAULT_DESCRIBE_LIMIT: i64 = 100;
/// The most streams ListStreams returns when `Limit` is not given, as Kinesis.
const DEFAULT_LIST_STREAMS_LIMIT: i64 = 100;

impl Api {
    pub(super) async fn create_stream(&self, fields: Fields<'_>) -> Result<Reply, ApiError> {
        let name = fields.required_string("StreamName")?;
        validate::name("StreamName", name)?;
        if let Some(mode) = fields.object("StreamModeDetails")? {
            let mode = Fields::new(mode, "StreamModeDetails.");
            let kind = mode.required_string("StreamMode")?;
            let kind = validate::one_of(
                "StreamModeDetails.StreamMode",
                kind,
                &["PROVISIONED", "ON_DEMAND"],
            )?;
            if kind == "ON_DEMAND" {
                return Err(ApiError::invalid_argument(
                    "StreamModeDetails.StreamMode ON_DEMAND is not supported by this engine; \
                     create a PROVISIONED stream with a ShardCount",
                ));
            }
        }
        let shard_count = fields.required_integer("ShardCount")?;
        validate::range("ShardCount", shard_count, 1, 100_000)?;
        let mut options = StreamOptions::with_shards(shard_count.unsigned_abs());
        if let Some(kib) = fields.integer("MaxRecordSizeInKiB")? {
            validate::range(
                "MaxRecordSizeInKiB",
                kib,
                1024,
                i64::from(MAX_MAX_RECORD_SIZE_KIB),
            )?;
            options = options.max_record_size_kib(u32::try_from(kib).unwrap_or(u32::MAX));
        }
        let tags = match fields.object("Tags")? {
            Some(tags) => Some(super::tags::validated_tags(tags, 50)?),
            None => None,
        };
        let name = name.to_owned();
        self.blocking(move |engine| {
            engine.create_stream(&name, options)?;
            match tags {
                Some(tags) => engine.set_tags(&name, tags),
                None => Ok(()),
            }
        })
        .await?;
        Ok(None)
    }

    pub(super) async fn delete_stream(&self, fields: Fields<'_>) -> Result<Reply, ApiError> {
        let stream = required_stream(&fields)?;
        // Consumers are not supported, so there is nothing for EnforceConsumerDeletion to do.
        fields.boolean("EnforceConsumerDeletion")?;
        self.blocking(move |engine| engine.delete_stream(&stream))
            .await?;
        Ok(None)
    }

    pub(super) async fn describe_stream(&self, fields: Fields<'_>) -> Result<Reply, ApiError> {
        let stream = required_stream(&fields)?;
        let limit = fields.integer("Limit")?.unwrap_or(DEFAULT_DESCRIBE_LIMIT);
        validate::range("Limit", limit, 1, 10_000)?;
        let after = fields.string("ExclusiveStartShardId")?;
        if let Some(after) = after {
            validate::name("ExclusiveStartShardId", after)?;
        }
        let after = after.map(shard_order_key);
        let description = self
            .blocking(move |engine| engine.describe_stream(&stream))
            .await?;
        let remaining: Vec<_> = description
            .shards
            .iter()
            .filter(|shard| {
                after
                    .as_ref()
                    .is_none_or(|after| shard_order_key(shard.shard_id.as_str()) > *after)
            })
            .collect();
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let shards: Vec<_> = remaining
            .iter()
            .take(limit)
            .map(|shard| encode::shard(shard))
            .collect();
        let name = description.name.to_string();
        Ok(Some(json!({
            "StreamDescription": {
                "StreamName": name,
                "StreamARN": stream_arn(&self.config, &name),
                "StreamStatus": description.status.as_str(),
                "StreamModeDetails": encode::stream_mode(),
                "Shards": shards,
                "HasMoreShards": remaining.len() > limit,
                "RetentionPeriodHours": description.retention_hours,
                "StreamCreationTimestamp": encode::timestamp(description.created_at),
                "EnhancedMonitoring": encode::enhanced_monitoring(),
                "EncryptionType": "NONE",
            }
        })))
    }

    pub(super) async fn describe_stream_summary(
        &self,
        fields: Fields<'_>,
    ) -> Result<Reply, ApiError> {
        let stream = required_stream(&fields)?;
        let summary = self.summary(&stream).await?;
        let name = summary.name.to_string();
        Ok(Some(json!({
            "StreamDescriptionSummary": {
                "StreamName": name,
                "StreamARN": stream_arn(&self.config, &name),
                "StreamStatus": summary.status.as_str(),
                "StreamModeDetails": encode::stream_mode(),
                "RetentionPeriodHours": summary.retention_hours,
                "StreamCreationTimestamp": encode::timestamp(summary.created_at),
                "EnhancedMonitoring": encode::enhanced_monitoring(),
                "EncryptionType": "NONE",
                "OpenShardCount": summary.open_shard_count,
                "ConsumerCount": 0,
                "MaxRecordSizeInKiB": summary.max_record_size_kib,
            }
        })))
    }

    pub(super) async fn list_streams(&self, fields: Fields<'_>) -> Result<Reply, ApiError> {
        let limit = fields
            .integer("Limit")?
            .unwrap_or(DEFAULT_LIST_STREAMS_LIMIT);
        validate::range("Limit", limit, 1, 10_000)?;
        let start = fields.string("ExclusiveStartStreamName")?;
        if let Some(start) = start {
            validate::name("ExclusiveStartStreamName", start)?;
        }
        let after = match fields.string("NextToken")? {
            Some(token) => {
                if start.is_some() {
                    return Err(ApiError::invalid_argument(
                        "NextToken and ExclusiveStartStreamName cannot be combined",
                    ));
                }
                match PageToken::open(&self.signer, token, self.now(), self.next_token_ttl_ms())? {
                    PageToken::Streams { after } => Some(after),
                    PageToken::Shards { .. } => {
                        return Err(ApiError::invalid_argument("Invalid NextToken."));
                    }
                }
            }
            None => start.map(str::to_owned),
        };
        let names: Vec<String> = self
            .blocking(|engine| Ok(engine.list_streams()))
            .await?
            .into_iter()
            .map(|name| name.to_string())
            .filter(|name| after.as_ref().is_none_or(|after| name > after))
            .collect();
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let page: Vec<String> = names.iter().take(limit).cloned().collect();
        let has_more = names.len() > limit;
        let mut summaries = Vec::with_capacity(page.len());
        for name in &page {
            // A stream deleted since it was listed is left out of the summaries.
            if let Ok(summary) = self.summary(name).await {
                summaries.push(json!({
                    "StreamName": name,
                    "StreamARN": stream_arn(&self.config, name),
                    "StreamStatus": summary.status.as_str(),
                    "StreamModeDetails": encode::stream_mode(),
                    "StreamCreationTimestamp": encode::timestamp(summary.created_at),
                }));
            }
        }
        let mut reply = json!({
            "StreamNames": page,
            "HasMoreStreams": has_more,
            "StreamSummaries": summaries,
        });
        if has_more && let Some(last) = page.last() {
            reply["NextToken"] = json!(
                PageToken::Streams {
                    after: last.clone()
                }
                .seal(&self.signer, self.now())
            );
        }
        Ok(Some(reply))
    }

    pub(super) async fn change_retention(
        &self,
        fields: Fields<'_>,
        increase: bool,
    ) -> Result<Reply, ApiError> {
        let stream = required_stream(&fields)?;
        let hours = fields.required_integer("RetentionPeriodHours")?;
        validate::range("RetentionPeriodHours", hours, 1, 8_760)?;
        let hours = u32::try_from(hours).unwrap_or(u32::MAX);
        self.blocking(move |engine| {
            if increase {
                engine.increase_retention(&stream, hours)
            } else {
                engine.decrease_retention(&stream, hours)
            }
        })
        .await?;
        Ok(None)
    }
}

/// Orders shard ids as the engine numbers them (`shardId-000000000010` after
/// `shardId-000000000009`), and other ids after those, by text.
pub(super) fn shard_order_key(id: &str) -> (u64, String) {
    match kcl_core::ShardId::new(id).ok().and_then(|id| id.index()) {
        Some(index) => (index, String::new()),
        None => (u64::MAX, id.to_owned()),
    }
}
