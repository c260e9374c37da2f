//! Shard ids.

use std::fmt;
use std::sync::Arc;

use crate::Error;

/// A shard id, such as `shardId-000000000003`.
///
/// Any 1–128 characters of `[a-zA-Z0-9_.-]` are accepted, so ids from any Kinesis-compatible
/// service round-trip; ids of the canonical form also expose their index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(Arc<str>);

const PREFIX: &str = "shardId-";

impl ShardId {
    /// Validates `id`.
    pub fn new(id: &str) -> Result<Self, Error> {
        if id.is_empty() || id.len() > 128 {
            return Err(Error::invalid(
                "ShardId",
                format!("length {} is outside 1..=128 characters", id.len()),
            ));
        }
        if let Some(bad) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(Error::invalid(
                "ShardId",
                format!("character {bad:?} is not one of [a-zA-Z0-9_.-]"),
            ));
        }
        Ok(ShardId(id.into()))
    }

    /// The canonical id of the shard created `index`-th in its stream: `shardId-` and twelve
    /// zero-padded digits.
    ///
    /// ```
    /// use kcl_core::ShardId;
    /// let id = ShardId::from_index(3);
    /// assert_eq!(id.as_str(), "shardId-000000000003");
    /// assert_eq!(id.index(), Some(3));
    /// ```
    pub fn from_index(index: u64) -> Self {
        ShardId(format!("{PREFIX}{index:012}").into())
    }

    /// The index of a canonical id, `None` for other forms.
    pub fn index(&self) -> Option<u64> {
        let digits = self.0.strip_prefix(PREFIX)?;
        if digits.len() < 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ids_round_trip_their_index() {
        for i in [0, 1, 999_999_999_999] {
            assert_eq!(ShardId::from_index(i).index(), Some(i));
            assert_eq!(
                ShardId::new(ShardId::from_index(i).as_str()).ok(),
                Some(ShardId::from_index(i))
            );
        }
        assert_eq!(ShardId::new("custom").ok().and_then(|s| s.index()), None);
    }

    #[test]
    fn rejects_bad_ids() {
        assert!(ShardId::new("").is_err());
        assert!(ShardId::new("a;b").is_err());
    }
}
