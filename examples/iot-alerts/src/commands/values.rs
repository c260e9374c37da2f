//! Parsing command-line values, with messages that say what is expected.

use std::time::Duration;

/// Parses a duration: a number and a unit, `ms`, `s`, `m` or `h` (`500ms`, `30s`, `2m`).
///
/// ```
/// use std::time::Duration;
/// use iot_alerts::commands::parse_duration;
///
/// assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert!(parse_duration("30").unwrap_err().contains("unit"));
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{text:?} needs a unit: ms, s, m or h (e.g. 30s)"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 500ms, 30s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit {unit:?}: use ms, s, m or h"
            ));
        }
    };
    if seconds <= 0.0 || !seconds.is_finite() || seconds > 1e9 {
        return Err(format!("{text:?} must be above zero"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Checks an endpoint URL: `http://` or `https://`.
pub fn parse_endpoint(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .ok_or_else(|| format!("{text:?} must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{text:?} names no host"));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// Checks a lease store URL: `sqlite://PATH` or `postgres://…`.
pub fn parse_lease_store_url(text: &str) -> Result<String, String> {
    let known = ["sqlite:", "postgres://", "postgresql://"];
    if !known.iter().any(|scheme| text.starts_with(scheme)) {
        return Err(format!(
            "{text:?} is neither sqlite://PATH (one machine) nor postgres://USER@HOST/DB (many)"
        ));
    }
    Ok(text.to_owned())
}

/// Parses a positive number of readings per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate.is_finite() && rate <= 1e7 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a rate in readings per second above 0 (e.g. 1000)"
        )),
    }
}

/// Parses a finite temperature in °C.
pub fn parse_celsius(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(celsius) if celsius.is_finite() => Ok(celsius),
        _ => Err(format!("{text:?} is not a temperature in °C (e.g. 80)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit_and_a_positive_value() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "s", "10", "0s", "-1s", "ten s", "5 parsecs", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_are_checked_by_scheme() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:4567/"),
            Ok("http://127.0.0.1:4567".to_owned())
        );
        assert!(parse_endpoint("127.0.0.1:4567").is_err());
        assert!(parse_endpoint("http://").is_err());
        assert!(parse_lease_store_url("sqlite://leases.db").is_ok());
        assert!(parse_lease_store_url("postgres://postgres@localhost/test").is_ok());
        assert!(parse_lease_store_url("mysql://x").is_err());
        assert!(parse_rate("0").is_err() && parse_rate("NaN").is_err());
        assert!(parse_celsius("inf").is_err());
    }
}
