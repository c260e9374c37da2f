//! A lease row's columns and their Rust values, both ways.

use kcl_core::{
    Checkpoint, Error, LeaseKey, LeaseRow, PendingCheckpoint, ShardId, StreamName, WorkerId,
};
use sqlx::Row;
use sqlx::postgres::PgRow;

/// Shard ids as stored: joined by `,`, which a [`ShardId`] cannot contain.
pub(crate) fn join_shard_ids(ids: &[ShardId]) -> String {
    ids.iter()
        .map(ShardId::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

fn split_shard_ids(text: &str) -> Result<Vec<ShardId>, Error> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',').map(ShardId::new).collect()
}

/// A checkpoint's place in the forward-only order, as the `checkpoint_stage` and
/// `checkpoint_seq` columns hold it.
pub(crate) fn stage_and_number(checkpoint: &Checkpoint) -> (i16, Option<String>) {
    match checkpoint {
        Checkpoint::Sequence(s) => (1, Some(s.as_str().to_owned())),
        Checkpoint::ShardEnd => (2, None),
        _ => (0, None),
    }
}

/// An epoch as PostgreSQL's BIGINT.
pub(crate) fn epoch_column(epoch: u64) -> Result<i64, Error> {
    i64::try_from(epoch).map_err(|_| Error::invalid("epoch", format!("{epoch} exceeds BIGINT")))
}

/// A row that does not decode: which column (or what), and why.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Storage {
        message: format!("a PostgreSQL lease row does not decode ({what}): {e}"),
    }
}

/// Decodes a row selected with the store's lease columns: the row, and `now()` in
/// milliseconds.
pub(crate) fn decode(row: &PgRow) -> Result<(LeaseRow, i64), Error> {
    let text = |column: &str| -> Result<String, Error> {
        row.try_get::<String, _>(column)
            .map_err(|e| corrupt(column, e))
    };
    let optional_text = |column: &str| -> Result<Option<String>, Error> {
        row.try_get::<Option<String>, _>(column)
            .map_err(|e| corrupt(column, e))
    };
    let worker = |column: &str| -> Result<Option<WorkerId>, Error> {
        optional_text(column)?
            .map(|id| WorkerId::new(&id).map_err(|e| corrupt(column, e)))
            .transpose()
    };
    let stream = StreamName::new(&text("stream")?).map_err(|e| corrupt("stream", e))?;
    let shard = ShardId::new(&text("shard")?).map_err(|e| corrupt("shard", e))?;
    let epoch: i64 = row.try_get("epoch").map_err(|e| corrupt("epoch", e))?;
    let pending = optional_text("pending_checkpoint")?
        .map(|cp| {
            cp.parse::<Checkpoint>()
                .map_err(|e| corrupt("pending_checkpoint", e))
        })
        .transpose()?;
    let state: Option<Vec<u8>> = row
        .try_get("pending_state")
        .map_err(|e| corrupt("pending_state", e))?;
    let now_ms: i64 = row.try_get("now_ms").map_err(|e| corrupt("now_ms", e))?;
    let lease = LeaseRow {
        key: LeaseKey::new(stream, shard),
        owner: worker("owner")?,
        epoch: u64::try_from(epoch).map_err(|e| corrupt("epoch", e))?,
        expires_at_ms: row
            .try_get("expires_at_ms")
            .map_err(|e| corrupt("expires_at_ms", e))?,
        checkpoint: text("checkpoint")?
            .parse()
            .map_err(|e| corrupt("checkpoint", e))?,
        pending_checkpoint: pending.map(|checkpoint| PendingCheckpoint::new(checkpoint, state)),
        parent_shard_ids: split_shard_ids(&text("parent_shard_ids")?)
            .map_err(|e| corrupt("parent_shard_ids", e))?,
        child_shard_ids: split_shard_ids(&text("child_shard_ids")?)
            .map_err(|e| corrupt("child_shard_ids", e))?,
        handoff_to: worker("handoff_to")?,
    };
    Ok((lease, now_ms))
}
