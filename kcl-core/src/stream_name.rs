//! Stream names.

use std::fmt;
use std::sync::Arc;

use crate::Error;

/// The longest stream name Kinesis accepts.
pub const MAX_STREAM_NAME_LEN: usize = 128;

/// A validated stream name: 1–128 characters of `[a-zA-Z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamName(Arc<str>);

impl StreamName {
    /// Validates `name`.
    ///
    /// ```
    /// use kcl_core::StreamName;
    /// assert!(StreamName::new("sensor-readings").is_ok());
    /// assert!(StreamName::new("no spaces").is_err());
    /// ```
    pub fn new(name: &str) -> Result<Self, Error> {
        if name.is_empty() || name.len() > MAX_STREAM_NAME_LEN {
            return Err(Error::invalid(
                "StreamName",
                format!(
                    "length {} is outside 1..={MAX_STREAM_NAME_LEN} characters",
                    name.chars().count()
                ),
            ));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(Error::invalid(
                "StreamName",
                format!("character {bad:?} is not one of [a-zA-Z0-9_.-]"),
            ));
        }
        Ok(StreamName(name.into()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for StreamName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_kinesis_alphabet_and_length() {
        assert!(StreamName::new("a.B-c_9").is_ok());
        assert!(StreamName::new(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn rejects_empty_long_and_foreign_characters() {
        for bad in ["", &"x".repeat(129), "a/b", "a b", "é"] {
            match StreamName::new(bad) {
                Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "StreamName"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
