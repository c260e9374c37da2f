//! A taker's census of the lease table (contract clause 13), computed by the server: other
//! workers' settled leases are counted there, and only the rows a taker may act on travel.

use std::time::Duration;

use kcl_core::{Error, Lease, LeaseCensus, OwnerTally, StreamName, WorkerId};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::PostgresLeaseStore;
use crate::error_mapping::from_sqlx;
use crate::row_codec::{corrupt, decode};

/// An owner's tally, from a census row with a tally.
fn decode_tally(row: &PgRow, tally: i64) -> Result<OwnerTally, Error> {
    let owner: String = row.try_get("owner").map_err(|e| corrupt("owner", e))?;
    let soonest: i64 = row
        .try_get("expires_at_ms")
        .map_err(|e| corrupt("expires_at_ms", e))?;
    let now: i64 = row.try_get("now_ms").map_err(|e| corrupt("now_ms", e))?;
    Ok(OwnerTally {
        owner: WorkerId::new(&owner).map_err(|e| corrupt("owner", e))?,
        leases: usize::try_from(tally).map_err(|e| corrupt("tally", e))?,
        soonest_expiry: Duration::from_millis(
            u64::try_from(soonest.saturating_sub(now)).unwrap_or(0),
        ),
    })
}

/// Leases from rows selected with the store's lease columns, ordered by shard id.
pub(crate) fn decode_leases<'a>(
    rows: impl Iterator<Item = &'a PgRow>,
) -> Result<Vec<Lease>, Error> {
    let mut leases = rows
        .map(|row| decode(row).map(|(lease, now)| lease.to_lease(now)))
        .collect::<Result<Vec<Lease>, Error>>()?;
    leases.sort_unstable_by(|a, b| a.key.shard.cmp(&b.key.shard));
    Ok(leases)
}

impl PostgresLeaseStore {
    pub(crate) async fn census(
        &self,
        stream: &StreamName,
        worker: &WorkerId,
    ) -> Result<LeaseCensus, Error> {
        let rows = Self::query(&self.sql.census)
            .bind(stream.as_str())
            .bind(worker.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| from_sqlx(&format!("counting the leases of stream {stream}"), e))?;
        let mut listed = Vec::new();
        let mut settled = Vec::new();
        for row in &rows {
            let tally: Option<i64> = row.try_get("tally").map_err(|e| corrupt("tally", e))?;
            match tally {
                Some(tally) => settled.push(decode_tally(row, tally)?),
                None => listed.push(row),
            }
        }
        settled.sort_by(|a: &OwnerTally, b| a.owner.cmp(&b.owner));
        Ok(LeaseCensus {
            leases: decode_leases(listed.into_iter())?,
            settled,
        })
    }

    pub(crate) async fn held_by(
        &self,
        stream: &StreamName,
        owner: &WorkerId,
    ) -> Result<Vec<Lease>, Error> {
        let rows = Self::query(&self.sql.held_by)
            .bind(stream.as_str())
            .bind(owner.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| from_sqlx(&format!("listing the leases {owner} holds"), e))?;
        decode_leases(rows.iter())
    }
}
