//! Shard iterators: where a reader of one shard of one stream stands, sealed by the server,
//! usable for [`HttpConfig::iterator_ttl`](super::HttpConfig::iterator_ttl) after issue.

use std::time::SystemTime;

use kcl_core::SequenceNumber;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::token::TokenSigner;
use crate::stream::to_millis;

/// What a shard iterator carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardIterator {
    /// The stream.
    pub(crate) stream: String,
    /// When the stream was created (milliseconds since the epoch): an iterator of a deleted
    /// stream does not read a new stream of the same name.
    pub(crate) stream_created_ms: u64,
    /// The shard.
    pub(crate) shard: String,
    /// The sequence number of the next record to return (see
    /// [`EngineShardReader::position`](crate::EngineShardReader::position)).
    pub(crate) position: SequenceNumber,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    /// Marks the payload as a shard iterator, so no other token of ours passes for one.
    k: String,
    s: String,
    c: u64,
    h: String,
    p: String,
    t: u64,
}

const KIND: &str = "iterator";

impl ShardIterator {
    /// The token for this iterator, issued at `now`.
    pub(crate) fn seal(&self, signer: &TokenSigner, now: SystemTime) -> String {
        signer.seal(&Sealed {
            k: KIND.to_owned(),
            s: self.stream.clone(),
            c: self.stream_created_ms,
            h: self.shard.clone(),
            p: self.position.to_string(),
            t: to_millis(now),
        })
    }

    /// The iterator a token carries, if this server issued it within `ttl_ms` before `now`.
    pub(crate) fn open(
        signer: &TokenSigner,
        token: &str,
        now: SystemTime,
        ttl_ms: u64,
    ) -> Result<ShardIterator, ApiError> {
        let invalid = || ApiError::invalid_argument("Invalid ShardIterator.");
        let sealed: Sealed = signer.open(token).ok_or_else(invalid)?;
        if sealed.k != KIND {
            return Err(invalid());
        }
        let now_ms = to_millis(now);
        if now_ms.saturating_sub(sealed.t) > ttl_ms {
            return Err(ApiError::expired_iterator(format!(
                "Iterator expired. The iterator was created at time {} ms while right now it is \
                 {now_ms} ms, which is further in the future than the tolerated delay of \
                 {ttl_ms} milliseconds.",
                sealed.t
            )));
        }
        Ok(ShardIterator {
            stream: sealed.s,
            stream_created_ms: sealed.c,
            shard: sealed.h,
            position: SequenceNumber::new(&sealed.p).map_err(|_| invalid())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_iterator_expires_after_its_lifetime() {
        let signer = TokenSigner::random().unwrap_or_else(|e| panic!("no /dev/urandom: {e}"));
        let iterator = ShardIterator {
            stream: "s".into(),
            stream_created_ms: 1,
            shard: "shardId-000000000000".into(),
            position: SequenceNumber::from(42u128),
        };
        let issued = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let token = iterator.seal(&signer, issued);
        let later = |secs| issued + Duration::from_secs(secs);
        assert_eq!(
            ShardIterator::open(&signer, &token, later(300), 300_000).as_ref(),
            Ok(&iterator)
        );
        assert_eq!(
            ShardIterator::open(&signer, &token, later(301), 300_000).map_err(|e| e.kind),
            Err("ExpiredIteratorException")
        );
    }
}
