//! Reading records: GetShardIterator and GetRecords.

use kcl_core::{SequenceNumber, StartingPosition};
use serde_json::json;

use super::{Api, Reply};
use crate::MAX_READ_RECORDS;
use crate::http::arn::{optional_stream, required_stream};
use crate::http::encode;
use crate::http::error::ApiError;
use crate::http::fields::Fields;
use crate::http::iterator::ShardIterator;
use crate::http::validate;
use crate::stream::to_millis;

const ITERATOR_TYPES: [&str; 5] = [
    "AT_SEQUENCE_NUMBER",
    "AFTER_SEQUENCE_NUMBER",
    "TRIM_HORIZON",
    "LATEST",
    "AT_TIMESTAMP",
];

impl Api {
    pub(super) async fn get_shard_iterator(&self, fields: Fields<'_>) -> Result<Reply, ApiError> {
        let stream = required_stream(&fields)?;
        let shard = fields.required_string("ShardId")?;
        validate::name("ShardId", shard)?;
        let kind = fields.required_string("ShardIteratorType")?;
        let kind = validate::one_of("ShardIteratorType", kind, &ITERATOR_TYPES)?;
        let sequence = fields.string("StartingSequenceNumber")?;
        if let Some(sequence) = sequence {
            validate::decimal("StartingSequenceNumber", sequence, 129)?;
        }
        let timestamp = fields.timestamp("Timestamp")?;
        let needs = |what: &str| {
            ApiError::invalid_argument(format!(
                "Must specify {what} for the {kind} shard iterator type."
            ))
        };
        let sequence = || -> Result<SequenceNumber, ApiError> {
            let text = sequence.ok_or_else(|| needs("StartingSequenceNumber"))?;
            SequenceNumber::new(text).map_err(|e| ApiError::from(crate::Error::from(e)))
        };
        let position = match kind {
            "AT_SEQUENCE_NUMBER" => StartingPosition::AtSequence(sequence()?),
            "AFTER_SEQUENCE_NUMBER" => StartingPosition::AfterSequence(sequence()?),
            "TRIM_HORIZON" => StartingPosition::TrimHorizon,
            "LATEST" => StartingPosition::Latest,
            _ => StartingPosition::AtTimestamp(timestamp.ok_or_else(|| needs("Timestamp"))?),
        };
        let summary = self.summary(&stream).await?;
        let shard = shard.to_owned();
        let (shard, position) = self
            .blocking(move |engine| {
                let reader = engine.open_reader(&stream, &shard, position)?;
                Ok((shard, reader.position()))
            })
            .await?;
        let iterator = ShardIterator {
            stream: summary.name.to_string(),
            stream_created_ms: to_millis(summary.created_at),
            shard,
            position,
        };
        Ok(Some(json!({
            "ShardIterator": iterator.seal(&self.signer, self.now()),
        })))
    }

    pub(super) async fn get_records(&self, fields: Fields<'_>) -> Result<Reply, ApiError> {
        let token = fields.required_string("ShardIterator")?;
        validate::length("ShardIterator", token, 1, 512)?;
        let limit = fields.integer("Limit")?.unwrap_or(MAX_READ_RECORDS as i64);
        validate::range("Limit", limit, 1, MAX_READ_RECORDS as i64)?;
        let named = optional_stream(&fields)?;
        let iterator =
            ShardIterator::open(&self.signer, token, self.now(), self.iterator_ttl_ms())?;
        if named
            .as_ref()
            .is_some_and(|named| *named != iterator.stream)
        {
            return Err(ApiError::invalid_argument(
                "the ShardIterator belongs to another stream than StreamARN names",
            ));
        }
        let summary = self.summary(&iterator.stream).await?;
        if to_millis(summary.created_at) != iterator.stream_created_ms {
            return Err(ApiError::not_found(format!(
                "stream {} was deleted since the ShardIterator was issued",
                iterator.stream
            )));
        }
        let limit = usize::try_from(limit).unwrap_or(MAX_READ_RECORDS);
        let ShardIterator {
            stream,
            stream_created_ms,
            shard,
            position,
        } = iterator;
        let (shard, batch, next) = self
            .blocking(move |engine| {
                let mut reader = engine.resume_reader(&stream, &shard, &position)?;
                let batch = reader.read(limit)?;
                Ok((shard, batch, reader.position()))
            })
            .await?;
        let mut reply = json!({
            "Records": batch.records.iter().map(encode::record).collect::<Vec<_>>(),
            "MillisBehindLatest": batch.millis_behind_latest,
        });
        match &batch.child_shards {
            Some(children) => {
                reply["ChildShards"] = children.iter().map(encode::child_shard).collect();
            }
            None => {
                let next = ShardIterator {
                    stream: summary.name.to_string(),
                    stream_created_ms,
                    shard,
                    position: next,
                };
                reply["NextShardIterator"] = json!(next.seal(&self.signer, self.now()));
            }
        }
        Ok(Some(reply))
    }
}
