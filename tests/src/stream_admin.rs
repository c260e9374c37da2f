//! The stream as the tests administer it over the Kinesis API: creating it, listing its shards
//! with their lineage, splitting and merging.

use std::time::Duration;

use aws_sdk_kinesis::Client;

/// A shard as ListShards describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardLineage {
    /// The shard.
    pub shard: String,
    /// Its parent and adjacent parent, if any.
    pub parents: Vec<String>,
    /// The first hash key of its range.
    pub start: u128,
    /// The last hash key of its range.
    pub end: u128,
    /// True while it takes writes (no ending sequence number).
    pub open: bool,
}

/// Creates `stream` with `shards` shards.
pub async fn create_stream(client: &Client, stream: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateStream {stream}: {e:?}"));
}

/// Every shard of `stream`, open and closed, ordered by hash range start.
pub async fn list_shards(client: &Client, stream: &str) -> Vec<ShardLineage> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = match &token {
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_name(stream),
        };
        let output = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListShards {stream}: {e:?}"));
        for shard in output.shards() {
            let range = shard.hash_key_range();
            let parse = |text: Option<&str>| -> u128 {
                text.and_then(|t| t.parse().ok())
                    .unwrap_or_else(|| panic!("a hash key in {range:?}"))
            };
            shards.push(ShardLineage {
                shard: shard.shard_id().to_owned(),
                parents: shard
                    .parent_shard_id()
                    .into_iter()
                    .chain(shard.adjacent_parent_shard_id())
                    .map(str::to_owned)
                    .collect(),
                start: parse(range.map(|r| r.starting_hash_key())),
                end: parse(range.map(|r| r.ending_hash_key())),
                open: shard
                    .sequence_number_range()
                    .is_none_or(|range| range.ending_sequence_number().is_none()),
            });
        }
        token = output.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    shards.sort_by_key(|shard| shard.start);
    shards
}

/// The open shards of `stream`, ordered by hash range start.
pub async fn open_shards(client: &Client, stream: &str) -> Vec<ShardLineage> {
    let mut shards = list_shards(client, stream).await;
    shards.retain(|shard| shard.open);
    shards
}

/// Splits `shard` in the middle of its hash range.
pub async fn split_in_half(client: &Client, stream: &str, shard: &ShardLineage) {
    let middle = shard.start / 2 + shard.end / 2 + (shard.start % 2 + shard.end % 2) / 2 + 1;
    client
        .split_shard()
        .stream_name(stream)
        .shard_to_split(&shard.shard)
        .new_starting_hash_key(middle.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("SplitShard {}: {e:?}", shard.shard));
}

/// Merges two open shards with adjacent ranges (`low` ends where `high` starts).
pub async fn merge(client: &Client, stream: &str, low: &ShardLineage, high: &ShardLineage) {
    client
        .merge_shards()
        .stream_name(stream)
        .shard_to_merge(&low.shard)
        .adjacent_shard_to_merge(&high.shard)
        .send()
        .await
        .unwrap_or_else(|e| panic!("MergeShards {} {}: {e:?}", low.shard, high.shard));
}

/// Waits until `stream` lists at least one shard (the server answers at once; this also rides
/// out a server that is still starting).
pub async fn wait_until_listed(client: &Client, stream: &str) {
    for _ in 0..100 {
        if let Ok(output) = client.list_shards().stream_name(stream).send().await
            && !output.shards().is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{stream} never listed its shards");
}
