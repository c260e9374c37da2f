//! The batch operations, each one statement over arrays (`unnest`): a worker's renewals in one
//! round trip per cycle, its group checkpoints in one per flush, a shard sync's leases in one.
//! A lease the statement did not write is explained as the single operation would be, by
//! reading its row.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kcl_core::{
    CheckpointUpdate, Error, Fence, Lease, LeaseKey, LeaseStore, NewLease, lease_duration_millis,
};

use crate::PostgresLeaseStore;
use crate::error_mapping::from_sqlx;
use crate::row_codec::{decode, epoch_column, join_shard_ids, stage_and_number};

/// Of `keys` (index, key), the indexes of first occurrences, in key order, and those of
/// repeats, in input order (written one by one after the batch: one statement writes a row
/// once).
fn first_occurrences<'a>(
    keys: impl Iterator<Item = (usize, &'a LeaseKey)>,
) -> (Vec<usize>, Vec<usize>) {
    let mut firsts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut repeats = Vec::new();
    for (index, key) in keys {
        let slot = (key.stream.as_str(), key.shard.as_str());
        match firsts.entry(slot) {
            std::collections::btree_map::Entry::Occupied(_) => repeats.push(index),
            std::collections::btree_map::Entry::Vacant(first) => {
                first.insert(index);
            }
        }
    }
    (firsts.into_values().collect(), repeats)
}

/// The (stream, shard) pairs a `RETURNING stream, shard` statement wrote.
fn written_keys(rows: &[sqlx::postgres::PgRow]) -> Result<BTreeSet<(String, String)>, Error> {
    use sqlx::Row;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get::<String, _>("stream")
                    .map_err(|e| from_sqlx("reading a written lease's stream", e))?,
                row.try_get::<String, _>("shard")
                    .map_err(|e| from_sqlx("reading a written lease's shard", e))?,
            ))
        })
        .collect()
}

/// A checkpoint's stage and number columns, both `NULL` for no checkpoint.
fn stage_and_number_of(checkpoint: Option<&kcl_core::Checkpoint>) -> (Option<i16>, Option<String>) {
    checkpoint
        .map(stage_and_number)
        .map_or((None, None), |(stage, number)| (Some(stage), number))
}

/// A lease's key as the (stream, shard) columns of its row.
pub(crate) fn slot(key: &LeaseKey) -> (String, String) {
    (key.stream.to_string(), key.shard.to_string())
}

/// A batch's answer for one input, which every path above gives.
fn every_answered<T>(answer: Option<Result<T, Error>>) -> Result<T, Error> {
    answer.unwrap_or_else(|| {
        Err(Error::Storage {
            message: "PostgreSQL lease store: a batch left an input without an answer".into(),
        })
    })
}

impl PostgresLeaseStore {
    pub(crate) async fn create_many(&self, leases: &[NewLease]) -> Result<Vec<bool>, Error> {
        let (batch, repeats) = first_occurrences(leases.iter().map(|lease| &lease.key).enumerate());
        let mut created = vec![false; leases.len()];
        if !batch.is_empty() {
            let leases_at = || batch.iter().map(|&index| &leases[index]);
            let checkpoints = leases_at().map(|lease| stage_and_number(&lease.checkpoint));
            let (stages, numbers): (Vec<i16>, Vec<Option<String>>) = checkpoints.unzip();
            let rows = Self::query(&self.sql.create_many)
                .bind(
                    leases_at()
                        .map(|l| l.key.stream.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    leases_at()
                        .map(|l| l.key.shard.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    leases_at()
                        .map(|l| l.checkpoint.to_string())
                        .collect::<Vec<_>>(),
                )
                .bind(stages)
                .bind(numbers)
                .bind(
                    leases_at()
                        .map(|l| join_shard_ids(&l.parent_shard_ids))
                        .collect::<Vec<_>>(),
                )
                .fetch_all(&self.pool)
                .await
                .map_err(|e| from_sqlx(&format!("creating {} leases", batch.len()), e))?;
            let written = written_keys(&rows)?;
            for index in batch {
                created[index] = written.contains(&slot(&leases[index].key));
            }
        }
        // A repeat of a key in the batch finds it created: `false`, as its entry says already.
        let _ = repeats;
        Ok(created)
    }

    pub(crate) async fn renew_many(
        &self,
        leases: &[(LeaseKey, Fence)],
        duration: Duration,
    ) -> Result<Vec<Result<Lease, Error>>, Error> {
        let duration_ms = lease_duration_millis(duration)?;
        let (batch, repeats) = first_occurrences(leases.iter().map(|(key, _)| key).enumerate());
        let mut renewed: BTreeMap<(String, String), Lease> = BTreeMap::new();
        if !batch.is_empty() {
            let mut columns: (Vec<&str>, Vec<&str>, Vec<&str>, Vec<i64>) = Default::default();
            for &index in &batch {
                let (key, fence) = &leases[index];
                columns.0.push(key.stream.as_str());
                columns.1.push(key.shard.as_str());
                columns.2.push(fence.owner.as_str());
                columns.3.push(epoch_column(fence.epoch)?);
            }
            let _one_batch = self.batch_writes.lock().await;
            let rows = Self::query(&self.sql.renew_many)
                .bind(columns.0)
                .bind(columns.1)
                .bind(columns.2)
                .bind(columns.3)
                .bind(duration_ms)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| from_sqlx(&format!("renewing {} leases", batch.len()), e))?;
            for row in &rows {
                let (lease, now) = decode(row)?;
                let lease = lease.to_lease(now);
                renewed.insert(slot(&lease.key), lease);
            }
        }
        let mut results: Vec<Option<Result<Lease, Error>>> = leases
            .iter()
            .map(|(key, _)| renewed.remove(&slot(key)).map(Ok))
            .collect();
        // Not written by the statement: a repeat, renewed now as the single renewal would; the
        // others refused, explained from their rows read at once.
        for &index in &repeats {
            let (key, fence) = &leases[index];
            results[index] = Some(self.renew_lease(key, fence, duration).await);
        }
        let refused: Vec<usize> = (0..leases.len())
            .filter(|index| results[*index].is_none())
            .collect();
        let keys: Vec<&LeaseKey> = refused.iter().map(|&index| &leases[index].0).collect();
        let refusals = self
            .explain_refusals(&keys, |at, row, now| {
                row.renew(now, &leases[refused[at]].1, duration)
            })
            .await;
        for (index, refusal) in refused.into_iter().zip(refusals) {
            results[index] = Some(Err(refusal));
        }
        Ok(results.into_iter().map(every_answered).collect())
    }

    pub(crate) async fn checkpoint_many_at_once(
        &self,
        updates: &[(LeaseKey, Fence, CheckpointUpdate)],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let mut results: Vec<Option<Result<(), Error>>> = vec![None; updates.len()];
        // A pending checkpoint behind the one committed with it is refused before any SQL, as
        // a single checkpoint's is.
        for (index, (key, _, update)) in updates.iter().enumerate() {
            if let Err(refusal) = Self::pending_follows_committed(key, update) {
                results[index] = Some(Err(refusal));
            }
        }
        let (batch, repeats) = first_occurrences(
            updates
                .iter()
                .enumerate()
                .filter(|(index, _)| results[*index].is_none())
                .map(|(index, (key, _, _))| (index, key)),
        );
        if !batch.is_empty() {
            let written = self.write_checkpoints(updates, &batch).await?;
            let refused: Vec<usize> = batch
                .into_iter()
                .filter(|&index| {
                    let written = written.contains(&slot(&updates[index].0));
                    if written {
                        results[index] = Some(Ok(()));
                    }
                    !written
                })
                .collect();
            let keys: Vec<&LeaseKey> = refused.iter().map(|&index| &updates[index].0).collect();
            let refusals = self
                .explain_refusals(&keys, |at, row, _| {
                    let (_, fence, update) = &updates[refused[at]];
                    row.checkpoint(fence, update)
                })
                .await;
            for (index, refusal) in refused.into_iter().zip(refusals) {
                results[index] = Some(Err(refusal));
            }
        }
        for index in repeats {
            let (key, fence, update) = &updates[index];
            results[index] = Some(self.checkpoint(key, fence, update).await);
        }
        Ok(results.into_iter().map(every_answered).collect())
    }

    /// One statement writing the updates at `batch` (distinct keys); the keys it wrote.
    async fn write_checkpoints(
        &self,
        updates: &[(LeaseKey, Fence, CheckpointUpdate)],
        batch: &[usize],
    ) -> Result<BTreeSet<(String, String)>, Error> {
        let at = || batch.iter().map(|&index| &updates[index]);
        let epochs = at()
            .map(|(_, fence, _)| epoch_column(fence.epoch))
            .collect::<Result<Vec<i64>, Error>>()?;
        let (stages, numbers): (Vec<Option<i16>>, Vec<Option<String>>) = at()
            .map(|(_, _, update)| stage_and_number_of(update.checkpoint.as_ref()))
            .unzip();
        let pending = || at().map(|(_, _, update)| update.pending.as_ref());
        let (pending_stages, pending_numbers): (Vec<Option<i16>>, Vec<Option<String>>) = pending()
            .map(|p| stage_and_number_of(p.map(|p| &p.checkpoint)))
            .unzip();
        let _one_batch = self.batch_writes.lock().await;
        let rows = Self::query(&self.sql.checkpoint_many)
            .bind(
                at().map(|(key, _, _)| key.stream.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                at().map(|(key, _, _)| key.shard.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                at().map(|(_, fence, _)| fence.owner.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(epochs)
            .bind(
                at().map(|(_, _, update)| update.checkpoint.as_ref().map(ToString::to_string))
                    .collect::<Vec<_>>(),
            )
            .bind(stages)
            .bind(numbers)
            .bind(
                pending()
                    .map(|p| p.map(|p| p.checkpoint.to_string()))
                    .collect::<Vec<_>>(),
            )
            .bind(
                pending()
                    .map(|p| p.and_then(|p| p.state.as_deref()))
                    .collect::<Vec<_>>(),
            )
            .bind(pending_stages)
            .bind(pending_numbers)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| from_sqlx(&format!("checkpointing {} leases", batch.len()), e))?;
        written_keys(&rows)
    }
}
