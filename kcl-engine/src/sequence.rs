//! How the engine spells sequence numbers.
//!
//! A sequence number is `4`, the shard's index in 14 digits and the record's offset in the shard
//! in 20 digits: 35 digits, increasing within a shard, and naming its shard, so a reader can be
//! told when it passes a number from another shard. Children have higher indexes than their
//! parents, so numbers also increase across a split or merge.

use kcl_core::SequenceNumber;

const LEADING_DIGIT: u128 = 4;
const OFFSET_DIGITS: u32 = 20;
const INDEX_DIGITS: u32 = 14;

/// The sequence number of the record at `offset` in shard `shard_index`.
pub(crate) fn encode(shard_index: u64, offset: u64) -> SequenceNumber {
    let offset_span = 10u128.pow(OFFSET_DIGITS);
    let index_span = 10u128.pow(INDEX_DIGITS);
    SequenceNumber::from(
        (LEADING_DIGIT * index_span + u128::from(shard_index)) * offset_span + u128::from(offset),
    )
}

/// The shard index and offset a sequence number of ours encodes; `None` for numbers this
/// engine did not issue.
pub(crate) fn decode(sequence_number: &SequenceNumber) -> Option<(u64, u64)> {
    let text = sequence_number.as_str();
    let total_digits = (1 + INDEX_DIGITS + OFFSET_DIGITS) as usize;
    if text.len() != total_digits || !text.starts_with('4') {
        return None;
    }
    let index = text[1..1 + INDEX_DIGITS as usize].parse().ok()?;
    let offset = text[1 + INDEX_DIGITS as usize..].parse().ok()?;
    Some((index, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips_and_orders_by_offset(index in 0u64..99_999_999_999_999, a: u64, b: u64) {
            prop_assert_eq!(decode(&encode(index, a)), Some((index, a)));
            prop_assert_eq!(encode(index, a).cmp(&encode(index, b)), a.cmp(&b));
        }
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
