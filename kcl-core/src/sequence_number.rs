//! Sequence numbers: decimal strings of any length, ordered numerically.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::Error;

/// A record's position in its shard, as a decimal string of any length.
///
/// Kinesis sequence numbers have 56 digits, more than `u128` holds, so they are kept as text and
/// compared numerically: by length once leading zeros are dropped, then digit by digit.
/// Leading zeros are removed when parsing, so equal numbers are equal values.
///
/// ```
/// use kcl_core::SequenceNumber;
/// let small: SequenceNumber = "99".parse()?;
/// let big: SequenceNumber = "49590338271490256608559692538361571095921575989136588898".parse()?;
/// assert!(small < big);
/// assert_eq!("007".parse::<SequenceNumber>()?, "7".parse()?);
/// assert!("12a".parse::<SequenceNumber>().is_err());
/// # Ok::<(), kcl_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SequenceNumber(Arc<str>);

impl SequenceNumber {
    /// Parses a decimal string; anything else is [`Error::InvalidArgument`] naming
    /// `SequenceNumber`.
    pub fn new(text: &str) -> Result<Self, Error> {
        if text.is_empty() {
            return Err(Error::invalid("SequenceNumber", "must not be empty"));
        }
        if let Some(bad) = text.chars().find(|c| !c.is_ascii_digit()) {
            return Err(Error::invalid(
                "SequenceNumber",
                format!("{text:?} is not a decimal number (found {bad:?})"),
            ));
        }
        let trimmed = text.trim_start_matches('0');
        Ok(SequenceNumber(if trimmed.is_empty() {
            "0".into()
        } else {
            trimmed.into()
        }))
    }

    /// The number as a decimal string without leading zeros.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for SequenceNumber {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        SequenceNumber::new(s)
    }
}

impl From<u128> for SequenceNumber {
    fn from(mut value: u128) -> Self {
        // Formatted on the stack: the engine makes one per record written, so one allocation
        // (the shared string) instead of two.
        let mut digits = [0u8; 39];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        let text = std::str::from_utf8(&digits[start..]).unwrap_or("0");
        SequenceNumber(text.into())
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SequenceNumber({})", self.0)
    }
}

impl serde::Serialize for SequenceNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SequenceNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        SequenceNumber::new(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn orders_like_the_numbers_it_spells(a: u128, b: u128) {
            prop_assert_eq!(SequenceNumber::from(a).cmp(&SequenceNumber::from(b)), a.cmp(&b));
        }

        #[test]
        fn leading_zeros_do_not_change_the_value(a: u128, zeros in 0usize..5) {
            let padded = format!("{}{a}", "0".repeat(zeros));
            prop_assert_eq!(SequenceNumber::new(&padded)?, SequenceNumber::from(a));
        }
    }

    #[test]
    fn longer_than_u128_still_orders() {
        let a = SequenceNumber::new(&"9".repeat(56)).ok();
        let b = SequenceNumber::new(&format!("1{}", "0".repeat(56))).ok();
        assert!(a < b);
    }

    #[test]
    fn rejects_non_numbers() {
        for bad in ["", "-1", "1.5", " 1", "abc"] {
            assert!(
                matches!(
                    SequenceNumber::new(bad),
                    Err(Error::InvalidArgument {
                        field: "SequenceNumber",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }
}
