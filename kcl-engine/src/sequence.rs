//! How the engine spells sequence numbers.
//!
//! A sequence number is `4`, the shard's index in 14 digits, the record's generation in 6 digits
//! and its offset in the shard in 14 digits: 35 digits, naming its shard, so a reader can be told
//! when it passes a number from another shard. Children have higher indexes than their parents,
//! so numbers also increase across a split or merge.
//!
//! The generation is what keeps a number from ever naming two records. A durable log that is
//! reopened numbers its next records in a new generation (see [`crate::log`]): after a machine
//! crash its end may lie before records that were already read, and their offsets are issued
//! again, but in a higher generation, so under higher numbers. Numbers therefore increase within
//! a shard by generation first, then by offset, and never repeat.
//!
//! Numbers written before generations existed had the offset in all 20 digits; every offset
//! below 10^14 reads back the same as generation 0, so they keep their meaning.

use kcl_core::SequenceNumber;

const LEADING_DIGIT: u128 = 4;
const INDEX_DIGITS: u32 = 14;
const GENERATION_DIGITS: u32 = 6;
const OFFSET_DIGITS: u32 = 14;

/// Offsets of a shard stay below this: 10^14 records, three years of a million records a
/// second.
pub(crate) const OFFSET_LIMIT: u64 = 10u64.pow(OFFSET_DIGITS);

/// The highest generation: a shard's log can be reopened and written 999,999 times.
pub(crate) const MAX_GENERATION: u32 = 10u32.pow(GENERATION_DIGITS) - 1;

/// Where a sequence number puts a record within its shard, ordered as the numbers are: by
/// generation, then by offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    /// The generation the record was numbered in.
    pub(crate) generation: u32,
    /// The record's offset in the shard's log.
    pub(crate) offset: u64,
}

impl Position {
    pub(crate) fn new(generation: u32, offset: u64) -> Self {
        Position { generation, offset }
    }

    /// The smallest position after this one.
    pub(crate) fn successor(self) -> Self {
        Position::new(self.generation, self.offset.saturating_add(1))
    }
}

/// The sequence number of the record at `position` in shard `shard_index`. The generation and
/// offset must be within their limits ([`MAX_GENERATION`], [`OFFSET_LIMIT`]).
pub(crate) fn encode(shard_index: u64, position: Position) -> SequenceNumber {
    debug_assert!(position.generation <= MAX_GENERATION && position.offset < OFFSET_LIMIT);
    let index_span = 10u128.pow(INDEX_DIGITS);
    let generation_span = 10u128.pow(GENERATION_DIGITS);
    let offset_span = 10u128.pow(OFFSET_DIGITS);
    SequenceNumber::from(
        ((LEADING_DIGIT * index_span + u128::from(shard_index)) * generation_span
            + u128::from(position.generation))
            * offset_span
            + u128::from(position.offset),
    )
}

/// The shard index and position a sequence number of ours encodes; `None` for numbers this
/// engine did not issue.
pub(crate) fn decode(sequence_number: &SequenceNumber) -> Option<(u64, Position)> {
    let text = sequence_number.as_str();
    let total_digits = (1 + INDEX_DIGITS + GENERATION_DIGITS + OFFSET_DIGITS) as usize;
    if text.len() != total_digits || !text.starts_with('4') {
        return None;
    }
    let generation_start = 1 + INDEX_DIGITS as usize;
    let offset_start = generation_start + GENERATION_DIGITS as usize;
    let index = text[1..generation_start].parse().ok()?;
    let generation = text[generation_start..offset_start].parse().ok()?;
    let offset = text[offset_start..].parse().ok()?;
    Some((index, Position::new(generation, offset)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_position() -> impl Strategy<Value = Position> {
        (0..=MAX_GENERATION, 0..OFFSET_LIMIT)
            .prop_map(|(generation, offset)| Position::new(generation, offset))
    }

    proptest! {
        #[test]
        fn round_trips_and_orders_by_position(
            index in 0u64..99_999_999_999_999,
            a in any_position(),
            b in any_position(),
        ) {
            prop_assert_eq!(decode(&encode(index, a)), Some((index, a)));
            prop_assert_eq!(encode(index, a).cmp(&encode(index, b)), a.cmp(&b));
            prop_assert!(encode(index, a) < encode(index + 1, b));
        }
    }

    #[test]
    fn numbers_from_before_generations_read_as_generation_zero() {
        // Shard 3, offset 42, as the engine spelled it with a 20-digit offset.
        let old = SequenceNumber::new("40000000000000300000000000000000042").unwrap();
        assert_eq!(decode(&old), Some((3, Position::new(0, 42))));
        assert_eq!(encode(3, Position::new(0, 42)), old);
    }

    #[test]
    fn rejects_foreign_numbers() {
        for foreign in [
            "1",
            "49590338271490256608559692538361571095921575989136588898",
        ] {
            assert_eq!(decode(&SequenceNumber::new(foreign).unwrap()), None);
        }
    }
}
