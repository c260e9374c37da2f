//! The constraints of the Kinesis API model (lengths, ranges, patterns, enumerations), checked
//! before the engine sees a request. Breaking one is a `ValidationException` naming the member,
//! as Kinesis answers it; what the model allows but the stream refuses is left to the engine
//! (`InvalidArgumentException`).

use super::error::ApiError;

/// The most characters of an offending value a message repeats.
const SHOWN_VALUE_CHARS: usize = 64;

/// `text` for a message: quoted, and cut short if long, so a message stays small whatever the
/// request held.
pub(crate) fn describe_value(text: &str) -> String {
    format!("'{}'", cut_short(text))
}

/// `text` cut short if long, for a member name made of request content (a tag key).
pub(crate) fn cut_short(text: &str) -> String {
    if text.chars().count() <= SHOWN_VALUE_CHARS {
        text.to_owned()
    } else {
        let shown: String = text.chars().take(SHOWN_VALUE_CHARS).collect();
        format!("{shown}...")
    }
}

fn violation(field: &str, value: &str, constraint: &str) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value {} at '{field}' failed to satisfy constraint: \
         Member must {constraint}",
        describe_value(value)
    ))
}

/// A name of the model's `[a-zA-Z0-9_.-]+` kind, 1–128 characters: stream names, shard ids.
pub(crate) fn name(field: &str, value: &str) -> Result<(), ApiError> {
    length(field, value, 1, 128)?;
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(violation(
            field,
            value,
            "satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    Ok(())
}

/// A string of `min..=max` characters.
pub(crate) fn length(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    // Counting characters of a huge value is bounded by the body limit; bytes bound chars.
    let chars = if value.len() <= max {
        value.chars().count()
    } else {
        value.chars().take(max + 1).count()
    };
    if chars < min {
        return Err(violation(
            field,
            value,
            &format!("have length greater than or equal to {min}"),
        ));
    }
    if chars > max {
        return Err(violation(
            field,
            value,
            &format!("have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// An integer within `min..=max`.
pub(crate) fn range(field: &str, value: i64, min: i64, max: i64) -> Result<(), ApiError> {
    if value < min {
        return Err(violation(
            field,
            &value.to_string(),
            &format!("have value greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(violation(
            field,
            &value.to_string(),
            &format!("have value less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// A decimal of the pattern `0|([1-9]\d{0,max_digits-1})`: hash keys (39 digits) and sequence
/// numbers (129 digits).
pub(crate) fn decimal(field: &str, value: &str, max_digits: usize) -> Result<(), ApiError> {
    let well_formed = !value.is_empty()
        && value.len() <= max_digits
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'));
    if !well_formed {
        return Err(violation(
            field,
            value,
            &format!(
                "satisfy regular expression pattern: 0|([1-9]\\d{{0,{}}})",
                max_digits - 1
            ),
        ));
    }
    Ok(())
}

/// One of `allowed`.
pub(crate) fn one_of<'a>(
    field: &str,
    value: &str,
    allowed: &[&'a str],
) -> Result<&'a str, ApiError> {
    allowed
        .iter()
        .find(|candidate| **candidate == value)
        .copied()
        .ok_or_else(|| {
            violation(
                field,
                value,
                &format!("satisfy enum value set: [{}]", allowed.join(", ")),
            )
        })
}

/// A list of `min..=max` members.
pub(crate) fn count(field: &str, len: usize, min: usize, max: usize) -> Result<(), ApiError> {
    if len < min || len > max {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value with {len} members at '{field}' failed to \
             satisfy constraint: Member must have length between {min} and {max}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_model_pattern() {
        assert!(name("StreamName", "a-b_c.9").is_ok());
        for bad in ["", "a b", "ä", &"x".repeat(129)] {
            let error = name("StreamName", bad).err();
            assert_eq!(
                error.map(|e| e.kind),
                Some("ValidationException"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn decimals_refuse_leading_zeros_and_excess_digits() {
        assert!(decimal("ExplicitHashKey", "0", 39).is_ok());
        assert!(decimal("ExplicitHashKey", &"9".repeat(39), 39).is_ok());
        for bad in ["", "01", "-1", "1.0", &"9".repeat(40)] {
            assert!(decimal("ExplicitHashKey", bad, 39).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn long_values_are_cut_short_in_messages() {
        let error = length("PartitionKey", &"k".repeat(10_000), 1, 256).err();
        let message = error.map(|e| e.message).unwrap_or_default();
        assert!(message.contains("'PartitionKey'"), "{message}");
        assert!(message.len() < 300, "{message}");
    }
}
