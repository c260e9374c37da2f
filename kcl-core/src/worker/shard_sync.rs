//! Leases for the stream's shards: created for shards that lack one, deleted for finished
//! parents whose children have all started and whose shards the stream no longer lists.

use std::collections::{BTreeMap, BTreeSet};

use crate::lease::{Checkpoint, Lease, NewLease};
use crate::worker::InitialPosition;
use crate::worker::context::WorkerContext;
use crate::{Error, ShardDescription, ShardId};

/// Creates a lease for every shard that needs one. On the application's first start (no lease
/// for the stream yet), shards start at the configured initial position (`LATEST`: open shards
/// only, pinned where the newest record is now). Afterwards every shard without a lease was
/// born while the application ran, so it starts at `TRIM_HORIZON`, whether or not its parents
/// are still listed (retention may have removed the closed shards between it and a leased
/// ancestor). A shard with a leased descendant is never leased again: it was processed
/// already. The leases are created in one batch (one statement or transaction where the store
/// can, so that workers starting together do not each create thousands of leases one by one),
/// parents before children, so a reader of the table never sees a child without its parent.
///
/// The leases are listed before the shards: a shard whose lease was deleted (finished, its
/// children started, itself gone from the stream) before the lease listing is not in the later
/// shard listing, so it is never leased again. Listing the other way round, a delayed lease listing could
/// miss a lease deleted after a shard listing that did not show the children yet.
/// Returns the ids of the shards the stream listed.
pub(crate) async fn create_missing_leases(ctx: &WorkerContext) -> Result<BTreeSet<ShardId>, Error> {
    let leases = ctx.store.list_leases(&ctx.stream).await?;
    create_missing_from(ctx, &leases).await
}

/// A shard sync: the leases are listed once, for creating the missing ones and then deleting
/// the finished parents (each lists the shards after that listing).
pub(crate) async fn sync(ctx: &WorkerContext) -> Result<(), Error> {
    let leases = ctx.store.list_leases(&ctx.stream).await?;
    create_missing_from(ctx, &leases).await?;
    delete_finished_from(ctx, &leases).await?;
    Ok(())
}

/// [`create_missing_leases`] given the leases listed (before the shards are).
async fn create_missing_from(
    ctx: &WorkerContext,
    leases: &[Lease],
) -> Result<BTreeSet<ShardId>, Error> {
    let mut leased: BTreeSet<ShardId> =
        leases.iter().map(|lease| lease.key.shard.clone()).collect();
    let first_start = leased.is_empty();
    let mut shards = ctx.source.list_shards(&ctx.stream).await?;
    shards
        .sort_by(|a, b| (a.shard_id.index(), &a.shard_id).cmp(&(b.shard_id.index(), &b.shard_id)));
    let mut children: BTreeMap<&ShardId, Vec<&ShardId>> = BTreeMap::new();
    for shard in &shards {
        for parent in shard.parents() {
            children.entry(parent).or_default().push(&shard.shard_id);
        }
    }
    let mut missing = Vec::new();
    for shard in &shards {
        if leased.contains(&shard.shard_id)
            || has_leased_descendant(&shard.shard_id, &children, &leased)
        {
            continue;
        }
        let Some(checkpoint) = starting_checkpoint(ctx, shard, &leased, first_start).await? else {
            continue;
        };
        missing.push(
            NewLease::new(ctx.key(&shard.shard_id), checkpoint)
                .with_parents(shard.parents().cloned().collect()),
        );
        leased.insert(shard.shard_id.clone());
    }
    if !missing.is_empty() {
        let created = ctx.store.create_leases_if_absent(&missing).await?;
        tracing::debug!(
            created = created.iter().filter(|created| **created).count(),
            "created leases"
        );
    }
    Ok(shards.into_iter().map(|shard| shard.shard_id).collect())
}

async fn starting_checkpoint(
    ctx: &WorkerContext,
    shard: &ShardDescription,
    leased: &BTreeSet<ShardId>,
    first_start: bool,
) -> Result<Option<Checkpoint>, Error> {
    if !first_start || shard.parents().any(|parent| leased.contains(parent)) {
        return Ok(Some(Checkpoint::TrimHorizon));
    }
    Ok(match ctx.config.initial_position {
        InitialPosition::Latest if shard.is_open() => {
            Some(ctx.source.pin_latest(&ctx.stream, &shard.shard_id).await?)
        }
        InitialPosition::Latest => None,
        InitialPosition::TrimHorizon => Some(Checkpoint::TrimHorizon),
        InitialPosition::AtTimestamp(at) => Some(Checkpoint::AtTimestamp(at)),
    })
}

fn has_leased_descendant(
    shard: &ShardId,
    children: &BTreeMap<&ShardId, Vec<&ShardId>>,
    leased: &BTreeSet<ShardId>,
) -> bool {
    let mut pending: Vec<&ShardId> = children.get(shard).cloned().unwrap_or_default();
    let mut seen = BTreeSet::new();
    while let Some(next) = pending.pop() {
        if leased.contains(next) {
            return true;
        }
        if seen.insert(next) {
            pending.extend(children.get(next).into_iter().flatten());
        }
    }
    false
}

/// Creates the leases of the shards that continue a finished one, as its reader reported them.
///
/// This is a shard sync (see [`create_missing_leases`]) rather than a lease per child, for two
/// reasons. A merge child's other parent may have no lease yet (reshards faster than shard
/// sync: split a shard, merge one half with a neighbour), and a missing parent lease means
/// "finished" to the taker: the sync creates the parents' leases first. And an owner that
/// stalled at its shard's end, while another worker finished the shard and its children and
/// deleted their leases, must not create those leases again: the sync skips shards with a
/// leased descendant. Children the stream does not list yet (a listing that lags the reader)
/// get their lease from the reader's report.
pub(crate) async fn create_child_leases(
    ctx: &WorkerContext,
    children: &[crate::ChildShard],
) -> Result<(), Error> {
    let listed = create_missing_leases(ctx).await?;
    for child in children
        .iter()
        .filter(|child| !listed.contains(&child.shard_id))
    {
        let lease = NewLease::new(ctx.key(&child.shard_id), Checkpoint::TrimHorizon)
            .with_parents(child.parent_shards.clone());
        ctx.store.create_lease_if_absent(&lease).await?;
    }
    Ok(())
}

/// True when every parent of `lease` was processed to its end (or its lease is gone, which
/// happens only after that).
pub(crate) fn parents_finished(lease: &Lease, by_shard: &BTreeMap<ShardId, &Lease>) -> bool {
    lease.parent_shard_ids.iter().all(|parent| {
        by_shard
            .get(parent)
            .is_none_or(|parent| parent.checkpoint == Checkpoint::ShardEnd)
    })
}

/// Deletes the leases of finished shards that the stream no longer lists (retention removed
/// them) once every child has started (been taken at least once), so the table does not grow
/// with every resharding.
///
/// A finished lease stays while its shard is listed: it is what tells a shard sync that the
/// shard was processed. Deleted earlier, a sync whose shard listing lags the lease table (it
/// shows the parent but not yet the descendants whose leases the readers created) would lease
/// the parent again at `TRIM_HORIZON` and process it after its children. The shards are listed
/// after the leases, so a shard missing from the listing is gone for good.
pub(crate) async fn delete_finished_parents(ctx: &WorkerContext) -> Result<usize, Error> {
    let leases = ctx.store.list_leases(&ctx.stream).await?;
    delete_finished_from(ctx, &leases).await
}

/// [`delete_finished_parents`] given the leases listed (before the shards are).
async fn delete_finished_from(ctx: &WorkerContext, leases: &[Lease]) -> Result<usize, Error> {
    let by_shard: BTreeMap<ShardId, &Lease> = leases
        .iter()
        .map(|lease| (lease.key.shard.clone(), lease))
        .collect();
    let finished: Vec<&Lease> = leases
        .iter()
        .filter(|lease| lease.checkpoint == Checkpoint::ShardEnd && lease.owner.is_none())
        .filter(|lease| {
            let children: Vec<&ShardId> = if lease.child_shard_ids.is_empty() {
                leases
                    .iter()
                    .filter(|child| child.parent_shard_ids.contains(&lease.key.shard))
                    .map(|child| &child.key.shard)
                    .collect()
            } else {
                lease.child_shard_ids.iter().collect()
            };
            !children.is_empty()
                && children.iter().all(|child| {
                    by_shard
                        .get(*child)
                        .is_some_and(|child| child.epoch > 0 || !child.checkpoint.is_initial())
                })
        })
        .collect();
    if finished.is_empty() {
        return Ok(0);
    }
    let listed: BTreeSet<ShardId> = ctx
        .source
        .list_shards(&ctx.stream)
        .await?
        .into_iter()
        .map(|shard| shard.shard_id)
        .collect();
    let mut deleted = 0;
    for lease in finished
        .into_iter()
        .filter(|lease| !listed.contains(&lease.key.shard))
    {
        if ctx.store.delete_lease(&lease.key).await? {
            tracing::debug!(lease = %lease.key, "deleted finished parent lease");
            deleted += 1;
        }
    }
    Ok(deleted)
}
