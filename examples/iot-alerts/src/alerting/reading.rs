//! A sensor reading as the sensors write it, and why a record may not be one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The lowest temperature there is; a reading below it is broken, not cold.
pub const ABSOLUTE_ZERO_CELSIUS: f64 = -273.15;

/// One temperature reading, written as JSON with the sensor id as the partition key:
/// `{"sensor":"sensor-0042","ts":1767225600000,"celsius":21.5}`.
///
/// The partition key keeps each sensor's readings in one shard, in the order they were written.
/// Unknown fields are ignored, so sensors can add some without breaking consumers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The sensor's id.
    pub sensor: String,
    /// When the sensor measured, in milliseconds since the Unix epoch (event time: windows are
    /// measured on it, not on when the record arrived).
    pub ts: u64,
    /// The temperature measured.
    pub celsius: f64,
}

/// Why a record is not a [`Reading`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadingError {
    /// The data is not JSON at all.
    NotJson(String),
    /// The JSON is not a reading: a field is missing or has the wrong type.
    NotAReading(String),
    /// The reading is well formed but impossible (an empty sensor id, a temperature below
    /// absolute zero).
    Impossible(String),
}

impl fmt::Display for ReadingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadingError::NotJson(why) => write!(f, "not JSON: {why}"),
            ReadingError::NotAReading(why) => write!(f, "not a reading: {why}"),
            ReadingError::Impossible(why) => write!(f, "impossible reading: {why}"),
        }
    }
}

impl std::error::Error for ReadingError {}

impl Reading {
    /// Parses a record's data.
    ///
    /// ```
    /// use iot_alerts::alerting::{Reading, ReadingError};
    ///
    /// let reading = Reading::parse(br#"{"sensor":"sensor-7","ts":1000,"celsius":21.5}"#)?;
    /// assert_eq!(reading.celsius, 21.5);
    /// assert!(matches!(Reading::parse(b"21.5 degrees"), Err(ReadingError::NotJson(_))));
    /// assert!(matches!(
    ///     Reading::parse(br#"{"sensor":"sensor-7","ts":1000}"#),
    ///     Err(ReadingError::NotAReading(_))
    /// ));
    /// assert!(matches!(
    ///     Reading::parse(br#"{"sensor":"sensor-7","ts":1000,"celsius":"hot"}"#),
    ///     Err(ReadingError::NotAReading(_))
    /// ));
    /// # Ok::<(), ReadingError>(())
    /// ```
    pub fn parse(data: &[u8]) -> Result<Reading, ReadingError> {
        let reading: Reading = serde_json::from_slice(data).map_err(|error| {
            // Only on failure: tell data that is not JSON from JSON that is not a reading.
            match serde_json::from_slice::<serde::de::IgnoredAny>(data) {
                Ok(_) => ReadingError::NotAReading(error.to_string()),
                Err(syntax) => ReadingError::NotJson(syntax.to_string()),
            }
        })?;
        if reading.sensor.is_empty() {
            return Err(ReadingError::Impossible(
                "the sensor id is empty".to_owned(),
            ));
        }
        if reading.celsius < ABSOLUTE_ZERO_CELSIUS {
            return Err(ReadingError::Impossible(format!(
                "{} °C is below absolute zero",
                reading.celsius
            )));
        }
        Ok(reading)
    }

    /// The reading as the JSON sensors write.
    pub fn to_json(&self) -> String {
        // Rounded to hundredths, as a real sensor reports; a float always serializes.
        format!(
            r#"{{"sensor":{},"ts":{},"celsius":{:.2}}}"#,
            serde_json::Value::from(self.sensor.as_str()),
            self.ts,
            self.celsius
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_round_trip_and_extra_fields_are_ignored() {
        let reading = Reading {
            sensor: "sensor-0001".to_owned(),
            ts: 1_767_225_600_000,
            celsius: 21.456,
        };
        let parsed = Reading::parse(reading.to_json().as_bytes()).unwrap();
        assert_eq!(parsed.sensor, "sensor-0001");
        assert_eq!(parsed.celsius, 21.46);
        let extra = br#"{"sensor":"s","ts":1,"celsius":2.0,"battery":0.9}"#;
        assert!(Reading::parse(extra).is_ok());
    }

    #[test]
    fn every_kind_of_bad_data_is_named() {
        let not_json: [&[u8]; 5] = [
            b"",
            b"not json",
            b"{\"sensor\":",
            &[0xff, 0xfe, 0x00],
            b"21.5 degrees",
        ];
        for data in not_json {
            assert!(
                matches!(Reading::parse(data), Err(ReadingError::NotJson(_))),
                "{data:?}"
            );
        }
        let not_readings: [&[u8]; 6] = [
            b"42",
            b"[1, 2]",
            br#"{"ts":1,"celsius":2}"#,
            br#"{"sensor":"s","celsius":2}"#,
            br#"{"sensor":"s","ts":-5,"celsius":2}"#,
            br#"{"sensor":7,"ts":1,"celsius":2}"#,
        ];
        for data in not_readings {
            assert!(
                matches!(Reading::parse(data), Err(ReadingError::NotAReading(_))),
                "{}",
                String::from_utf8_lossy(data)
            );
        }
        let impossible: [&[u8]; 2] = [
            br#"{"sensor":"","ts":1,"celsius":2}"#,
            br#"{"sensor":"s","ts":1,"celsius":-300}"#,
        ];
        for data in impossible {
            assert!(matches!(
                Reading::parse(data),
                Err(ReadingError::Impossible(_))
            ));
        }
    }
}
