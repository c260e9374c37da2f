//! [`KinesisShardReader`]: one shard read through GetShardIterator and GetRecords.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use kcl_core::{
    ChildShard, ReadBatch, SequenceNumber, ShardId, ShardReader, StartingPosition, StreamName,
};

use crate::config::KinesisSourceConfig;
use crate::convert;
use crate::errors::from_sdk;
use crate::retry::{Retries, with_backoff};
use crate::source::list_all_shards;

/// The most records one GetRecords returns.
const MAX_GET_RECORDS: usize = 10_000;

/// How many times in a row an expired iterator is replaced before the error is returned.
const MAX_ITERATOR_RENEWALS: u32 = 3;

/// Reads one shard through the Kinesis API.
///
/// - The reader moves past a batch only when it returns it: a call that fails or is dropped
///   before then leaves the next call to read the same records again.
/// - An expired shard iterator is replaced by one just after the last record delivered (or at
///   the starting position if none was), so nothing is skipped or repeated. The one exception:
///   a reader opened at `Latest` that has returned nothing resolves `Latest` anew, past any
///   record written meanwhile.
/// - Throttling and transient failures are retried with backoff; past the retry budget the
///   transient error is returned, and the next call carries on from the same place.
/// - When a read returns nothing new, the next read waits the idle poll interval first.
/// - A shard that no longer exists (retention removed it once closed) is
///   [`NotFound`](kcl_core::Error::NotFound) of kind `shard`; a missing stream, of kind
///   `stream`.
/// - At the end of a closed shard the batch carries the child shards (from GetRecords's
///   `ChildShards`, or from ListShards for services that do not send them), and every later call
///   returns the same end.
#[derive(Debug)]
pub struct KinesisShardReader {
    client: aws_sdk_kinesis::Client,
    config: Arc<KinesisSourceConfig>,
    stream: StreamName,
    shard: ShardId,
    start: StartingPosition,
    /// Where the next GetRecords reads: just after `last_delivered` (or at `start`). `None`:
    /// take a new iterator there first.
    iterator: Option<String>,
    /// The last record returned to the caller.
    last_delivered: Option<SequenceNumber>,
    /// The last read found nothing new: wait the idle interval before the next.
    idle: bool,
    /// The children, once the end of the shard was returned.
    end: Option<Vec<ChildShard>>,
}

impl KinesisShardReader {
    /// Opens a reader at `start`, taking its first shard iterator (so a missing stream or shard
    /// is reported here).
    pub(crate) async fn open(
        client: aws_sdk_kinesis::Client,
        config: Arc<KinesisSourceConfig>,
        stream: StreamName,
        shard: ShardId,
        start: StartingPosition,
    ) -> Result<Self, kcl_core::Error> {
        let mut reader = KinesisShardReader {
            client,
            config,
            stream,
            shard,
            start,
            iterator: None,
            last_delivered: None,
            idle: false,
            end: None,
        };
        let backoff = reader.config.backoff;
        let seed = reader.shard.to_string();
        match with_backoff(&backoff, "GetShardIterator", &seed, || {
            reader.new_iterator()
        })
        .await
        {
            Ok(iterator) => {
                reader.iterator = Some(iterator);
                Ok(reader)
            }
            Err(error @ kcl_core::Error::NotFound { .. }) => Err(reader.not_found(error).await),
            Err(error) => Err(error),
        }
    }

    /// The sequence number of the last record this reader returned.
    pub fn last_delivered(&self) -> Option<&SequenceNumber> {
        self.last_delivered.as_ref()
    }

    /// A shard iterator just after the last delivered record, or at the start.
    async fn new_iterator(&self) -> Result<String, kcl_core::Error> {
        let position = match &self.last_delivered {
            Some(last) => StartingPosition::AfterSequence(last.clone()),
            None => self.start.clone(),
        };
        let request = self
            .client
            .get_shard_iterator()
            .stream_name(self.stream.as_str())
            .shard_id(self.shard.as_str());
        let request = match position {
            StartingPosition::TrimHorizon => {
                request.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            StartingPosition::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
            StartingPosition::AtSequence(number) => request
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(number.as_str()),
            StartingPosition::AfterSequence(number) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(number.as_str()),
            StartingPosition::AtTimestamp(time) => request
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(DateTime::from(time)),
        };
        let output = request
            .send()
            .await
            .map_err(|error| from_sdk("GetShardIterator", error))?;
        output
            .shard_iterator()
            .map(str::to_owned)
            .ok_or_else(|| kcl_core::Error::Unavailable {
                message: "GetShardIterator answered without a ShardIterator".to_owned(),
            })
    }

    /// One GetRecords, taking a new iterator first if there is none.
    ///
    /// The reader moves past a batch only once nothing is left that can fail or wait before it
    /// is returned. Until then `iterator` still points at the batch's first record, so when
    /// anything fails first (ListShards at the end of the shard, a record that does not convert)
    /// or the caller drops the call, the next poll reads the same records again.
    async fn poll(&mut self, limit: i32) -> Result<ReadBatch, kcl_core::Error> {
        let iterator = match &self.iterator {
            Some(iterator) => iterator.clone(),
            None => {
                let iterator = self.new_iterator().await?;
                self.iterator = Some(iterator.clone());
                iterator
            }
        };
        let output = match self
            .client
            .get_records()
            .shard_iterator(&iterator)
            .limit(limit)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) => {
                let error = from_sdk("GetRecords", error);
                if matches!(
                    error,
                    kcl_core::Error::ExpiredIterator { .. } | kcl_core::Error::NotFound { .. }
                ) {
                    // The next poll takes a new one just after the last record returned.
                    self.iterator = None;
                }
                return Err(error);
            }
        };
        let millis_behind_latest = output
            .millis_behind_latest()
            .map_or(0, |millis| u64::try_from(millis).unwrap_or(0));
        let next = output.next_shard_iterator().map(str::to_owned);
        let children = output
            .child_shards()
            .iter()
            .map(convert::child_shard)
            .collect::<Result<Vec<_>, _>>()?;
        let records = output
            .records
            .into_iter()
            .map(convert::record)
            .collect::<Result<Vec<_>, _>>()?;
        let child_shards = match next {
            Some(_) => None,
            None if !children.is_empty() => Some(children),
            None => Some(self.children_from_listing().await?),
        };
        // Nothing below fails or waits: the batch is returned, so the reader moves past it.
        if let Some(last) = records.last() {
            self.last_delivered = Some(last.sequence_number.clone());
        }
        self.iterator = next;
        self.idle = records.is_empty() && child_shards.is_none() && millis_behind_latest == 0;
        if let Some(children) = &child_shards {
            self.end = Some(children.clone());
        }
        Ok(ReadBatch {
            records,
            millis_behind_latest,
            child_shards,
        })
    }

    /// What a ResourceNotFoundException on this shard means, as ListShards tells: the stream is
    /// gone (`NotFound` of kind `stream`), or only the shard is, removed by retention once
    /// closed (`NotFound` of kind `shard`, named `stream/shard`, so that the worker ends it).
    async fn not_found(&self, error: kcl_core::Error) -> kcl_core::Error {
        match list_all_shards(&self.client, &self.config, &self.stream).await {
            Ok(shards) if shards.iter().any(|shard| shard.shard_id == self.shard) => {
                // Listed, yet not found: the service contradicts itself for now; ask again later.
                kcl_core::Error::Unavailable {
                    message: format!("{error}, yet ListShards still lists the shard"),
                }
            }
            Ok(_) => kcl_core::Error::not_found("shard", format!("{}/{}", self.stream, self.shard)),
            Err(listing) => listing,
        }
    }

    /// The children of this shard as ListShards describes them, for an answer that ends the
    /// shard without naming them. If the listing still shows the shard open, that answer is a
    /// failure worth retrying, not an end: the worker would never read the shard again.
    async fn children_from_listing(&self) -> Result<Vec<ChildShard>, kcl_core::Error> {
        let shards = list_all_shards(&self.client, &self.config, &self.stream).await?;
        if shards
            .iter()
            .any(|shard| shard.shard_id == self.shard && shard.is_open())
        {
            return Err(kcl_core::Error::Unavailable {
                message: format!(
                    "GetRecords answered no NextShardIterator for {}/{}, which ListShards shows open",
                    self.stream, self.shard
                ),
            });
        }
        Ok(shards
            .iter()
            .filter(|shard| shard.parents().any(|parent| *parent == self.shard))
            .map(convert::child_of_description)
            .collect())
    }
}

#[async_trait]
impl ShardReader for KinesisShardReader {
    async fn next_batch(&mut self, max_records: usize) -> Result<ReadBatch, kcl_core::Error> {
        if let Some(children) = &self.end {
            return Ok(ReadBatch {
                records: Vec::new(),
                millis_behind_latest: 0,
                child_shards: Some(children.clone()),
            });
        }
        if self.idle {
            tokio::time::sleep(self.config.idle_poll_interval).await;
        }
        let limit = i32::try_from(max_records.clamp(1, MAX_GET_RECORDS)).unwrap_or(10_000);
        let backoff = self.config.backoff;
        let mut retries = Retries::new(&backoff, "GetRecords", self.shard.as_str());
        let mut renewals = 0;
        loop {
            match self.poll(limit).await {
                Ok(batch) => return Ok(batch),
                Err(error @ kcl_core::Error::ExpiredIterator { .. }) => {
                    // The iterator was dropped; the next poll takes one after the last record
                    // delivered. Expiring again at once means something else is wrong.
                    renewals += 1;
                    if renewals > MAX_ITERATOR_RENEWALS {
                        return Err(error);
                    }
                    tracing::debug!(shard = %self.shard, "shard iterator expired; renewing");
                }
                Err(error @ kcl_core::Error::NotFound { .. }) => {
                    return Err(self.not_found(error).await);
                }
                Err(error) => retries.pause_after(error).await?,
            }
        }
    }
}
