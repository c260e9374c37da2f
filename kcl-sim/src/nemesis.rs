//! The nemesis: the cluster-wide faults, one step at a time until the chaos phase ends.

use std::collections::BTreeSet;
use std::time::Duration;

use kcl_core::ShardId;
use kcl_engine::{MAX_READ_RECORDS, ShardFilter};
use tokio::time::Instant;

use crate::clock::VirtualClock;
use crate::cluster::Cluster;
use crate::faults::FaultKind;
use crate::history::{Event, Expiry};
use crate::scenario::Scenario;

/// How often each of the nemesis's faults is chosen, relative to the others a seed enables.
fn weight(kind: FaultKind) -> u64 {
    match kind {
        FaultKind::Crash | FaultKind::Pause | FaultKind::Split | FaultKind::Merge => 3,
        FaultKind::Shutdown | FaultKind::StoreBlackout | FaultKind::LivenessRevoked => 2,
        _ => 1,
    }
}

/// Runs the nemesis until the chaos phase is over.
pub(crate) async fn run(
    cluster: &mut Cluster,
    scenario: &Scenario,
    clock: &VirtualClock,
) -> Result<(), String> {
    let end = Instant::now() + scenario.chaos;
    let rng = cluster.shared().rng.clone();
    let enabled = scenario.faults.nemesis();
    let total: u64 = enabled.iter().map(|&kind| weight(kind)).sum();
    let lease = scenario.config.lease_duration;
    while Instant::now() < end {
        tokio::time::sleep(rng.duration(scenario.nemesis_gap.0, scenario.nemesis_gap.1)).await;
        cluster.restart_due()?;
        if rng.chance(0.3) {
            cluster.heal_hangs();
        }
        // Group commit, at moments the seed picks: what a crash loses is the tail since.
        if cluster.shared().engine.is_durable() && rng.chance(0.5) {
            cluster.shared().engine.sync()?;
        }
        let mut pick = rng.within(0..total.max(1));
        let Some(&kind) = enabled.iter().find(|&&kind| {
            let hit = pick < weight(kind);
            pick = pick.saturating_sub(weight(kind));
            hit
        }) else {
            continue;
        };
        let running = cluster.running();
        let slot = rng.index(running.len()).map(|index| running[index]);
        let done = match (kind, slot) {
            (FaultKind::Crash, Some(slot)) => {
                cluster.crash(slot, rng.duration(lease / 4, lease * 3));
                true
            }
            (FaultKind::Shutdown, Some(slot)) => {
                cluster.shut_down(slot, rng.duration(lease / 4, lease * 3));
                true
            }
            (FaultKind::Pause, Some(slot)) => {
                cluster.pause(slot, rng.duration(lease / 4, lease * 3));
                true
            }
            (FaultKind::LivenessRevoked, Some(slot)) => cluster.revoke_liveness(slot),
            (FaultKind::StoreBlackout, Some(slot)) => {
                cluster.black_out(slot, rng.duration(lease / 4, lease * 2));
                true
            }
            (FaultKind::Split, _) => reshard(cluster, scenario, 1, false)?,
            (FaultKind::Merge, _) => reshard(cluster, scenario, 1, true)?,
            (FaultKind::ReshardChain, _) => {
                let steps = rng.within(2..6);
                let merge_first = rng.chance(0.5);
                reshard(cluster, scenario, steps, merge_first)?
            }
            (FaultKind::EngineCrash, _) => {
                crash_engine(cluster)?;
                true
            }
            (FaultKind::Retention, _) => {
                expire(
                    cluster,
                    clock,
                    rng.duration(Duration::from_secs(2), Duration::from_secs(30)),
                )?;
                true
            }
            _ => false,
        };
        if done {
            cluster.shared().faults.count(kind);
        }
    }
    Ok(())
}

/// Splits or merges `steps` times in a row, alternating, starting with a merge if
/// `merge_first`: chains of reshards with no time for shard sync in between. Returns whether
/// any happened (a stream at its shard limit does not split; one with one shard does not
/// merge).
fn reshard(
    cluster: &Cluster,
    scenario: &Scenario,
    steps: u64,
    merge_first: bool,
) -> Result<bool, String> {
    let shared = cluster.shared();
    let stream = shared.stream.as_str();
    let mut any = false;
    for step in 0..steps {
        let engine = shared.engine.current();
        let mut open = engine
            .list_shards(stream, &ShardFilter::AtLatest)
            .map_err(|error| format!("listing shards: {error}"))?;
        open.sort_by_key(|shard| shard.hash_key_range.start);
        let before: BTreeSet<ShardId> = engine
            .list_shards(stream, &ShardFilter::FromTrimHorizon)
            .map_err(|error| format!("listing shards: {error}"))?
            .into_iter()
            .map(|shard| shard.shard_id)
            .collect();
        let merge = (step % 2 == 0) == merge_first;
        let changed = if merge || open.len() >= scenario.max_open_shards {
            match shared.rng.index(open.len().saturating_sub(1)) {
                Some(left) => engine
                    .merge_shards(
                        stream,
                        open[left].shard_id.as_str(),
                        open[left + 1].shard_id.as_str(),
                    )
                    .map(|()| true),
                None => Ok(false),
            }
        } else {
            let Some(index) = shared.rng.index(open.len()) else {
                continue;
            };
            let range = open[index].hash_key_range;
            if range.start == range.end {
                continue;
            }
            let key = shared.rng.within_u128(range.start + 1..range.end);
            engine
                .split_shard(stream, open[index].shard_id.as_str(), &key.to_string())
                .map(|()| true)
        }
        .map_err(|error| format!("resharding: {error}"))?;
        if !changed {
            continue;
        }
        any = true;
        for shard in engine
            .list_shards(stream, &ShardFilter::FromTrimHorizon)
            .map_err(|error| format!("listing shards: {error}"))?
        {
            if !before.contains(&shard.shard_id) {
                shared.history.record(Event::ShardCreated {
                    parents: shard.parents().cloned().collect(),
                    shard: shard.shard_id,
                });
            }
        }
    }
    Ok(any)
}

/// Moves the engine's clock a day less `keep` ahead and enforces retention: every record older
/// than `keep` expires, and every shard closed before then goes. Records what went.
fn expire(cluster: &Cluster, clock: &VirtualClock, keep: Duration) -> Result<(), String> {
    let shared = cluster.shared();
    let day = Duration::from_secs(24 * 3600);
    clock.jump(day.saturating_sub(keep));
    let engine = shared.engine.current();
    engine
        .enforce_retention()
        .map_err(|error| format!("enforcing retention: {error}"))?;
    let mut expired = Vec::new();
    for shard in shared.history.acked().into_keys() {
        let kept = engine.open_reader(
            shared.stream.as_str(),
            shard.as_str(),
            kcl_core::StartingPosition::TrimHorizon,
        );
        let expiry = match kept {
            Ok(reader) => Expiry::Below(reader.position()),
            Err(_) => Expiry::Removed,
        };
        expired.push((shard, expiry));
    }
    shared.history.record(Event::RetentionEnforced { expired });
    Ok(())
}

/// Crashes the engine's machine and reopens the engine, recording which acknowledged records
/// the crash lost (those it no longer has and retention did not take).
fn crash_engine(cluster: &Cluster) -> Result<(), String> {
    let shared = cluster.shared();
    shared.engine.crash_and_reopen()?;
    let engine = shared.engine.current();
    let mut lost = Vec::new();
    for (shard, acked) in shared.history.acked() {
        let Ok(mut reader) = engine.open_reader(
            shared.stream.as_str(),
            shard.as_str(),
            kcl_core::StartingPosition::TrimHorizon,
        ) else {
            // Gone with retention: nothing in it is owed.
            continue;
        };
        let first_kept = reader.position();
        let mut kept = BTreeSet::new();
        loop {
            let batch = reader
                .read(MAX_READ_RECORDS)
                .map_err(|error| format!("reading {shard} after the crash: {error}"))?;
            if batch.records.is_empty() {
                break;
            }
            kept.extend(
                batch
                    .records
                    .into_iter()
                    .map(|record| record.sequence_number),
            );
        }
        lost.extend(
            acked
                .into_iter()
                .filter(|record| *record >= first_kept && !kept.contains(record))
                .map(|record| (shard.clone(), record)),
        );
    }
    shared.history.record(Event::EngineRestarted { lost });
    Ok(())
}
