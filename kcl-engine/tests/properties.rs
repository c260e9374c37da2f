//! Properties that hold after any sequence of writes, splits, merges and rescalings.

mod common;

use std::collections::BTreeMap;

use kcl_core::{HashKey, StartingPosition};
use kcl_engine::{Engine, PutRecordsEntry, ShardFilter, StreamOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Write records with these keys (and sometimes an explicit hash key).
    Put(Vec<(u16, Option<u128>)>),
    /// Split the open shard picked by the first number at a point picked by the second.
    Split(usize, u128),
    /// Merge the open shard picked by the number with its right neighbour.
    Merge(usize),
    /// Rescale to a count picked by the number within half..=double.
    Scale(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec((any::<u16>(), prop::option::weighted(0.2, any::<u128>())), 1..60)
            .prop_map(Op::Put),
        2 => (any::<usize>(), any::<u128>()).prop_map(|(s, k)| Op::Split(s, k)),
        2 => any::<usize>().prop_map(Op::Merge),
        1 => any::<u64>().prop_map(Op::Scale),
    ]
}

/// The open shards in hash key order.
fn open_by_range(engine: &Engine) -> Vec<kcl_core::ShardDescription> {
    let mut open = engine.list_shards("s", &ShardFilter::AtLatest).unwrap();
    open.sort_by_key(|shard| shard.hash_key_range.start);
    open
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn resharding_keeps_the_key_space_and_every_record(
        initial in 1u64..6,
        ops in prop::collection::vec(op(), 1..25),
    ) {
        let engine = Engine::in_memory();
        engine.create_stream("s", StreamOptions::with_shards(initial)).unwrap();
        // What each shard must hold, in write order: (partition key, data).
        let mut expected: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut written = 0usize;

        for op in ops {
            let open = open_by_range(&engine);
            match op {
                Op::Put(keys) => {
                    let entries: Vec<PutRecordsEntry> = keys
                        .iter()
                        .map(|(key, explicit)| {
                            written += 1;
                            let entry = PutRecordsEntry::new(format!("pk-{key}"), format!("r{written}"));
                            match explicit {
                                Some(hash) => entry.with_explicit_hash_key(hash.to_string()),
                                None => entry,
                            }
                        })
                        .collect();
                    let results = engine.put_records("s", &entries).unwrap();
                    for (entry, result) in entries.iter().zip(results) {
                        let out = result.unwrap();
                        let hash = match &entry.explicit_hash_key {
                            Some(explicit) => HashKey(explicit.parse().unwrap()),
                            None => HashKey::of_partition_key(&entry.partition_key),
                        };
                        let owner = open.iter().find(|s| s.hash_key_range.contains(hash)).unwrap();
                        prop_assert_eq!(&out.shard_id, &owner.shard_id, "routed by hash");
                        expected
                            .entry(out.shard_id.to_string())
                            .or_default()
                            .push((entry.partition_key.clone(), String::from_utf8(entry.data.to_vec()).unwrap()));
                    }
                }
                Op::Split(pick, point) => {
                    let shard = &open[pick % open.len()];
                    let range = shard.hash_key_range;
                    if range.start < range.end && open.len() < 200 {
                        let key = range.start + 1 + point % (range.end - range.start);
                        engine.split_shard("s", shard.shard_id.as_str(), &key.to_string()).unwrap();
                    }
                }
                Op::Merge(pick) => {
                    if open.len() > 1 {
                        let left = pick % (open.len() - 1);
                        engine
                            .merge_shards("s", open[left].shard_id.as_str(), open[left + 1].shard_id.as_str())
                            .unwrap();
                    }
                }
                Op::Scale(pick) => {
                    let current = open.len() as u64;
                    let low = current.div_ceil(2);
                    let target = low + pick % (current * 2 - low + 1);
                    if target <= 64 {
                        engine.update_shard_count("s", target).unwrap();
                    }
                }
            }

            // The open shards' ranges partition [0, 2^128 - 1] exactly.
            let open = open_by_range(&engine);
            let mut next = Some(0u128);
            for shard in &open {
                prop_assert_eq!(Some(shard.hash_key_range.start), next);
                prop_assert!(shard.hash_key_range.start <= shard.hash_key_range.end);
                next = shard.hash_key_range.end.checked_add(1);
            }
            prop_assert_eq!(next, None, "the last open shard ends at 2^128 - 1");
        }

        // Every shard read from the trim horizon returns exactly what was written to it, in
        // order, with strictly increasing sequence numbers; closed shards end at their ending
        // sequence number.
        for shard in engine.list_shards("s", &ShardFilter::default()).unwrap() {
            let records = common::read_all(&engine, "s", shard.shard_id.as_str(), StartingPosition::TrimHorizon);
            let got: Vec<(String, String)> = records
                .iter()
                .map(|r| (r.partition_key.to_string(), String::from_utf8(r.data.to_vec()).unwrap()))
                .collect();
            let want = expected.remove(shard.shard_id.as_str()).unwrap_or_default();
            prop_assert_eq!(got, want, "contents of {}", shard.shard_id);
            prop_assert!(records.windows(2).all(|w| w[0].sequence_number < w[1].sequence_number));
            if let (Some(ending), Some(last)) = (&shard.ending_sequence_number, records.last()) {
                prop_assert_eq!(ending, &last.sequence_number);
            }
        }
        prop_assert!(expected.is_empty(), "records in unlisted shards: {:?}", expected.keys());
    }
}
