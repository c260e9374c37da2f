//! Writing records: PutRecord and PutRecords.

use serde_json::{Value, json};

use super::{Api, Reply};
use crate::http::arn::required_stream;
use crate::http::error::ApiError;
use crate::http::fields::{Fields, list_object};
use crate::http::validate;
use crate::{MAX_MAX_RECORD_SIZE_KIB, MAX_RECORDS_PER_PUT, PutRecordsEntry};

/// The largest `Data` the API model admits (the largest per-stream maximum record size); a
/// stream's own, smaller maximum is the engine's to enforce.
const MAX_DATA_BYTES: usize = MAX_MAX_RECORD_SIZE_KIB as usize * 1024;

impl Api {
    pub(super) async fn put_record(&self, fields: Fields<'_>) -> Result<Reply, ApiError> {
        let stream = required_stream(&fields)?;
        let entry = entry(&fields)?;
        if let Some(ordering) = fields.string("SequenceNumberForOrdering")? {
            // Sequence numbers only grow within a shard, and children's exceed their parents',
            // so every new record already follows any number this engine issued.
            validate::decimal("SequenceNumberForOrdering", ordering, 129)?;
        }
        let written = self
            .blocking(move |engine| engine.put_record(&stream, entry))
            .await?;
        Ok(Some(json!({
            "ShardId": written.shard_id.to_string(),
            "SequenceNumber": written.sequence_number.to_string(),
            "EncryptionType": "NONE",
        })))
    }

    pub(super) async fn put_records(&self, fields: Fields<'_>) -> Result<Reply, ApiError> {
        let stream = required_stream(&fields)?;
        let records = fields
            .list("Records")?
            .ok_or_else(|| fields.missing("Records"))?;
        validate::count("Records", records.len(), 1, MAX_RECORDS_PER_PUT)?;
        let paths: Vec<String> = (1..=records.len())
            .map(|position| format!("Records.{position}."))
            .collect();
        let mut entries = Vec::with_capacity(records.len());
        for (index, (record, path)) in records.iter().zip(&paths).enumerate() {
            let record = list_object("Records", index, record)?;
            entries.push(entry(&Fields::new(record, path))?);
        }
        // A record too large for this stream fails the whole request, as Kinesis answers it,
        // rather than leaving the rest of the batch half written.
        let max_bytes = self.summary(&stream).await?.max_record_size_kib as usize * 1024;
        if let Some((position, entry)) = entries
            .iter()
            .enumerate()
            .find(|(_, entry)| entry.size() > max_bytes)
        {
            return Err(ApiError::invalid_argument(format!(
                "Records.{}: record of {} bytes (data plus partition key) exceeds the stream's \
                 maximum of {max_bytes} bytes",
                position + 1,
                entry.size()
            )));
        }
        let results = self
            .blocking(move |engine| engine.put_records(&stream, &entries))
            .await?;
        let failed = results.iter().filter(|result| result.is_err()).count();
        let results: Vec<Value> = results
            .into_iter()
            .map(|result| match result {
                Ok(written) => json!({
                    "ShardId": written.shard_id.to_string(),
                    "SequenceNumber": written.sequence_number.to_string(),
                }),
                Err(error) => json!({
                    "ErrorCode": entry_error_code(&error),
                    "ErrorMessage": error.to_string(),
                }),
            })
            .collect();
        Ok(Some(json!({
            "FailedRecordCount": failed,
            "Records": results,
            "EncryptionType": "NONE",
        })))
    }
}

/// A record of PutRecord or of PutRecords's `Records`, checked against the API model.
fn entry(fields: &Fields<'_>) -> Result<PutRecordsEntry, ApiError> {
    let data = fields.required_blob("Data")?;
    if data.len() > MAX_DATA_BYTES {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at '{}' failed to satisfy constraint: Member \
             must have length less than or equal to {MAX_DATA_BYTES}",
            fields.name("Data")
        )));
    }
    let partition_key = fields.required_string("PartitionKey")?;
    validate::length(&fields.name("PartitionKey"), partition_key, 1, 256)?;
    let mut entry = PutRecordsEntry::new(partition_key, data);
    if let Some(key) = fields.string("ExplicitHashKey")? {
        validate::decimal(&fields.name("ExplicitHashKey"), key, 39)?;
        // 39 digits can exceed 2^128 - 1: refuse the whole request, not one entry of it.
        kcl_core::HashKey::parse("ExplicitHashKey", key).map_err(crate::Error::from)?;
        entry = entry.with_explicit_hash_key(key);
    }
    Ok(entry)
}

/// The `ErrorCode` of a failed PutRecords entry: Kinesis reports throttling and internal
/// failures per record.
fn entry_error_code(error: &crate::Error) -> &'static str {
    match error.kinesis_error_type() {
        "InternalFailureException" => "InternalFailure",
        other => other,
    }
}
