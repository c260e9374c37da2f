//! 128-bit hash keys and the ranges shards own.

use std::fmt;

use md5::{Digest, Md5};

use crate::Error;

/// A point in the 128-bit hash key space, `[0, 2^128 − 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HashKey(pub u128);

impl HashKey {
    /// The hash key Kinesis gives a partition key: MD5 of its UTF-8 bytes read as a big-endian
    /// unsigned 128-bit integer.
    ///
    /// ```
    /// use kcl_core::HashKey;
    /// // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
    /// assert_eq!(HashKey::of_partition_key("a").0, 0x0cc175b9c0f1b6a831c399e269772661);
    /// ```
    pub fn of_partition_key(partition_key: &str) -> Self {
        let digest: [u8; 16] = Md5::digest(partition_key.as_bytes()).into();
        HashKey(u128::from_be_bytes(digest))
    }

    /// Parses a decimal hash key (`0|[1-9]\d{0,38}` within `[0, 2^128 − 1]`), reporting errors
    /// against `field` (`ExplicitHashKey`, `NewStartingHashKey`, ...).
    pub fn parse(field: &'static str, text: &str) -> Result<Self, Error> {
        let well_formed = !text.is_empty()
            && text.len() <= 39
            && text.bytes().all(|b| b.is_ascii_digit())
            && (text == "0" || !text.starts_with('0'));
        if !well_formed {
            return Err(Error::invalid(
                field,
                format!("{text:?} is not a decimal hash key of at most 39 digits"),
            ));
        }
        text.parse::<u128>().map(HashKey).map_err(|_| {
            Error::invalid(
                field,
                format!("{text} is outside the hash key range [0, 2^128 - 1]"),
            )
        })
    }
}

impl fmt::Display for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An inclusive range of hash keys, as a shard owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct HashKeyRange {
    /// The first key in the range.
    #[serde(with = "decimal")]
    pub start: u128,
    /// The last key in the range (inclusive).
    #[serde(with = "decimal")]
    pub end: u128,
}

impl HashKeyRange {
    /// The whole key space, `[0, 2^128 − 1]`.
    pub const FULL: HashKeyRange = HashKeyRange {
        start: 0,
        end: u128::MAX,
    };

    /// True when `key` lies in the range.
    pub fn contains(&self, key: HashKey) -> bool {
        self.start <= key.0 && key.0 <= self.end
    }

    /// True when `other` starts right after this range ends, or ends right before it starts.
    pub fn is_adjacent_to(&self, other: &HashKeyRange) -> bool {
        self.end.checked_add(1) == Some(other.start) || other.end.checked_add(1) == Some(self.start)
    }

    /// The `index`-th of `count` equal slices of the key space (the last slices take the
    /// remainder), as Kinesis lays out a new stream's shards. `count` must be at least 1 and
    /// `index` below it.
    ///
    /// ```
    /// use kcl_core::HashKeyRange;
    /// let halves = [HashKeyRange::uniform_slice(0, 2), HashKeyRange::uniform_slice(1, 2)];
    /// assert_eq!(halves[0].start, 0);
    /// assert_eq!(halves[0].end + 1, halves[1].start);
    /// assert_eq!(halves[1].end, u128::MAX);
    /// ```
    pub fn uniform_slice(index: u64, count: u64) -> HashKeyRange {
        let start = Self::uniform_boundary(index, count);
        let end = if index + 1 >= count {
            u128::MAX
        } else {
            Self::uniform_boundary(index + 1, count) - 1
        };
        HashKeyRange { start, end }
    }

    /// floor(2^128 × index / count), computed without overflow (index ≤ count).
    fn uniform_boundary(index: u64, count: u64) -> u128 {
        let count = u128::from(count.max(1));
        let index = u128::from(index);
        // 2^128 = count × quotient + remainder, from u128::MAX = 2^128 − 1.
        let (mut quotient, mut remainder) = (u128::MAX / count, u128::MAX % count + 1);
        if remainder == count {
            // Only for count = 1 does the quotient reach 2^128 and wrap to 0; then index is 0
            // and the product is 0 either way.
            quotient = quotient.wrapping_add(1);
            remainder = 0;
        }
        index * quotient + index * remainder / count
    }
}

impl fmt::Display for HashKeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.start, self.end)
    }
}

/// Hash keys travel as decimal strings (they do not fit in JSON numbers).
mod decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_whole_range_and_nothing_beyond() {
        assert_eq!(
            HashKey::parse("ExplicitHashKey", "0").ok(),
            Some(HashKey(0))
        );
        assert_eq!(
            HashKey::parse("ExplicitHashKey", &u128::MAX.to_string()).ok(),
            Some(HashKey(u128::MAX))
        );
        for bad in [
            "",
            "01",
            "-1",
            "340282366920938463463374607431768211456",
            "1e3",
        ] {
            assert!(
                matches!(
                    HashKey::parse("ExplicitHashKey", bad),
                    Err(Error::InvalidArgument {
                        field: "ExplicitHashKey",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn uniform_slices_partition_the_key_space(count in 1u64..=10_000) {
            let mut next = 0u128;
            for i in 0..count {
                let slice = HashKeyRange::uniform_slice(i, count);
                prop_assert_eq!(slice.start, next);
                prop_assert!(slice.end >= slice.start);
                next = slice.end.wrapping_add(1);
            }
            prop_assert_eq!(next, 0, "the last slice ends at 2^128 - 1");
        }
    }
}
