//! Which shards `list_shards` returns, as Kinesis's `ShardFilter`.

use std::time::SystemTime;

use kcl_core::ShardId;

use crate::shard::Shard;

/// Selects shards by id or by when they were open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ShardFilter {
    /// Shards whose id comes after this one.
    AfterShardId(ShardId),
    /// The shards that were open at the trim horizon: where a consumer reading everything
    /// retained starts.
    AtTrimHorizon,
    /// Every shard within retention (the default).
    #[default]
    FromTrimHorizon,
    /// The shards open now.
    AtLatest,
    /// The shards that were open at this time.
    AtTimestamp(SystemTime),
    /// The shards that were open at or after this time.
    FromTimestamp(SystemTime),
}

impl ShardFilter {
    /// Whether `shard` (closed at `closed_at`, if closed) passes. Times before the stream was
    /// created are taken as its creation, so the initial shards count as open then.
    pub(crate) fn admits(
        &self,
        shard: &Shard,
        closed_at: Option<SystemTime>,
        trim_horizon: SystemTime,
        stream_created_at: SystemTime,
    ) -> bool {
        let open_at = |time: SystemTime| {
            let time = time.max(stream_created_at);
            shard.created_at <= time && closed_at.is_none_or(|closed| closed >= time)
        };
        match self {
            ShardFilter::AfterShardId(after) => match (after.index(), shard.id.index()) {
                (Some(after), Some(index)) => index > after,
                _ => shard.id > *after,
            },
            ShardFilter::AtTrimHorizon => open_at(trim_horizon),
            ShardFilter::FromTrimHorizon => true,
            ShardFilter::AtLatest => closed_at.is_none(),
            ShardFilter::AtTimestamp(time) => open_at(*time),
            ShardFilter::FromTimestamp(time) => closed_at.is_none_or(|closed| closed >= *time),
        }
    }
}
