//! Leases for the stream's shards: created for shards that lack one, deleted for finished
//! parents whose children have all started.

use std::collections::{BTreeMap, BTreeSet};

use crate::lease::{Checkpoint, Lease, LeaseKey, NewLease};
use crate::worker::InitialPosition;
use crate::worker::context::WorkerContext;
use crate::{Error, ShardDescription, ShardId};

/// Creates a lease for every shard that needs one: shards that continue a leased shard start
/// at `TRIM_HORIZON`; others start at the configured initial position (`LATEST`: open shards
/// only, pinned where the newest record is now). A shard with a leased descendant is never
/// leased again: it was processed already. Parents are created before children, so a reader
/// of the table never sees a child without its parent.
pub(crate) async fn create_missing_leases(ctx: &WorkerContext) -> Result<usize, Error> {
    let mut shards = ctx.source.list_shards(&ctx.stream).await?;
    shards
        .sort_by(|a, b| (a.shard_id.index(), &a.shard_id).cmp(&(b.shard_id.index(), &b.shard_id)));
    let mut leased: BTreeSet<ShardId> = ctx
        .store
        .list_leases(&ctx.stream)
        .await?
        .into_iter()
        .map(|lease| lease.key.shard)
        .collect();
    let mut children: BTreeMap<&ShardId, Vec<&ShardId>> = BTreeMap::new();
    for shard in &shards {
        for parent in shard.parents() {
            children.entry(parent).or_default().push(&shard.shard_id);
        }
    }
    let mut created = 0;
    for shard in &shards {
        if leased.contains(&shard.shard_id)
            || has_leased_descendant(&shard.shard_id, &children, &leased)
        {
            continue;
        }
        let Some(checkpoint) = starting_checkpoint(ctx, shard, &leased).await? else {
            continue;
        };
        let lease = NewLease::new(ctx.key(&shard.shard_id), checkpoint)
            .with_parents(shard.parents().cloned().collect());
        if ctx.store.create_lease_if_absent(&lease).await? {
            tracing::debug!(shard = %shard.shard_id, "created lease");
            created += 1;
        }
        leased.insert(shard.shard_id.clone());
    }
    Ok(created)
}

async fn starting_checkpoint(
    ctx: &WorkerContext,
    shard: &ShardDescription,
    leased: &BTreeSet<ShardId>,
) -> Result<Option<Checkpoint>, Error> {
    if shard.parents().any(|parent| leased.contains(parent)) {
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
/// A merge child's other parent may have no lease yet: reshards faster than shard sync (split
/// a shard, merge one half with a neighbour) give it a parent whose own parent is still being
/// processed. A missing parent lease means "finished" to the taker, so the parents' leases are
/// created first, by a shard sync, before any child's.
pub(crate) async fn create_child_leases(
    ctx: &WorkerContext,
    children: &[crate::ChildShard],
) -> Result<(), Error> {
    let leased: BTreeSet<ShardId> = ctx
        .store
        .list_leases(&ctx.stream)
        .await?
        .into_iter()
        .map(|lease| lease.key.shard)
        .collect();
    let parent_unleased = children
        .iter()
        .flat_map(|child| &child.parent_shards)
        .any(|parent| !leased.contains(parent));
    if parent_unleased {
        create_missing_leases(ctx).await?;
    }
    for child in children {
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

/// Deletes the leases of finished shards once every child has started (been taken at least
/// once), so the table does not grow with every resharding.
pub(crate) async fn delete_finished_parents(ctx: &WorkerContext) -> Result<usize, Error> {
    let leases = ctx.store.list_leases(&ctx.stream).await?;
    let by_shard: BTreeMap<ShardId, &Lease> = leases
        .iter()
        .map(|lease| (lease.key.shard.clone(), lease))
        .collect();
    let mut deleted = 0;
    for lease in &leases {
        if lease.checkpoint != Checkpoint::ShardEnd || lease.owner.is_some() {
            continue;
        }
        let children: Vec<&ShardId> = if lease.child_shard_ids.is_empty() {
            leases
                .iter()
                .filter(|child| child.parent_shard_ids.contains(&lease.key.shard))
                .map(|child| &child.key.shard)
                .collect()
        } else {
            lease.child_shard_ids.iter().collect()
        };
        let all_started = !children.is_empty()
            && children.iter().all(|child| {
                by_shard
                    .get(*child)
                    .is_some_and(|child| child.epoch > 0 || !child.checkpoint.is_initial())
            });
        if all_started {
            let key = LeaseKey::new(ctx.stream.clone(), lease.key.shard.clone());
            if ctx.store.delete_lease(&key).await? {
                tracing::debug!(lease = %key, "deleted finished parent lease");
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}
