//! Pagination tokens of ListShards and ListStreams: where the next page starts, what it lists,
//! sealed by the server and usable for
//! [`HttpConfig::next_token_ttl`](super::HttpConfig::next_token_ttl).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::token::TokenSigner;
use crate::ShardFilter;
use crate::stream::to_millis;

/// What a page token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub(crate) enum PageToken {
    /// The next page of a ListShards.
    #[serde(rename = "shards")]
    Shards {
        /// The stream.
        stream: String,
        /// Its creation time in milliseconds, so the token does not page a newer stream of the
        /// same name.
        created_ms: u64,
        /// The last shard id returned so far.
        after: String,
        /// The filter of the first call.
        filter: FilterToken,
    },
    /// The next page of a ListStreams.
    #[serde(rename = "streams")]
    Streams {
        /// The last stream name returned so far.
        after: String,
    },
}

/// A [`ShardFilter`] as a token keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum FilterToken {
    AfterShardId(String),
    AtTrimHorizon,
    FromTrimHorizon,
    AtLatest,
    AtTimestamp(u64),
    FromTimestamp(u64),
}

impl FilterToken {
    pub(crate) fn of(filter: &ShardFilter) -> Self {
        match filter {
            ShardFilter::AfterShardId(id) => FilterToken::AfterShardId(id.to_string()),
            ShardFilter::AtTrimHorizon => FilterToken::AtTrimHorizon,
            ShardFilter::FromTrimHorizon => FilterToken::FromTrimHorizon,
            ShardFilter::AtLatest => FilterToken::AtLatest,
            ShardFilter::AtTimestamp(time) => FilterToken::AtTimestamp(to_millis(*time)),
            ShardFilter::FromTimestamp(time) => FilterToken::FromTimestamp(to_millis(*time)),
        }
    }

    pub(crate) fn filter(&self) -> Option<ShardFilter> {
        let time = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        Some(match self {
            FilterToken::AfterShardId(id) => {
                ShardFilter::AfterShardId(kcl_core::ShardId::new(id).ok()?)
            }
            FilterToken::AtTrimHorizon => ShardFilter::AtTrimHorizon,
            FilterToken::FromTrimHorizon => ShardFilter::FromTrimHorizon,
            FilterToken::AtLatest => ShardFilter::AtLatest,
            FilterToken::AtTimestamp(ms) => ShardFilter::AtTimestamp(time(*ms)),
            FilterToken::FromTimestamp(ms) => ShardFilter::FromTimestamp(time(*ms)),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    page: PageToken,
    t: u64,
}

impl PageToken {
    /// The token for this page, issued at `now`.
    pub(crate) fn seal(&self, signer: &TokenSigner, now: SystemTime) -> String {
        signer.seal(&Sealed {
            page: self.clone(),
            t: to_millis(now),
        })
    }

    /// The page a token names, if this server issued it within `ttl_ms` before `now`.
    pub(crate) fn open(
        signer: &TokenSigner,
        token: &str,
        now: SystemTime,
        ttl_ms: u64,
    ) -> Result<PageToken, ApiError> {
        let sealed: Sealed = signer
            .open(token)
            .ok_or_else(|| ApiError::invalid_argument("Invalid NextToken."))?;
        let now_ms = to_millis(now);
        if now_ms.saturating_sub(sealed.t) > ttl_ms {
            return Err(ApiError::expired_next_token(format!(
                "NextToken expired: it was issued at {} ms, now is {now_ms} ms, and tokens \
                 last {ttl_ms} milliseconds.",
                sealed.t
            )));
        }
        Ok(sealed.page)
    }
}
