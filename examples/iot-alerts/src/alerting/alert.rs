//! An alert: which sensor, which rule, and the record that raised it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The rule an alert comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// A reading above the threshold.
    Overheat,
    /// The sensor's rolling average above its limit.
    Drift,
}

impl AlertKind {
    /// The name alerts carry: `overheat` or `drift`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Overheat => "overheat",
            AlertKind::Drift => "drift",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One alert, as the `alerts` command writes it (one JSON object per line). `sensor` and `alert`
/// come first, so `cut -d, -f1,2` yields what it is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The sensor.
    pub sensor: String,
    /// The rule.
    pub alert: AlertKind,
    /// The reading that raised it.
    pub celsius: f64,
    /// The sensor's rolling average at that reading.
    pub average_celsius: f64,
    /// When the sensor measured that reading (milliseconds since the Unix epoch).
    pub ts: u64,
    /// The shard the reading was read from.
    pub shard: String,
    /// The reading's sequence number in that shard.
    pub sequence_number: String,
}

impl Alert {
    /// The alert as one line of JSON, without the newline.
    pub fn to_json_line(&self) -> String {
        // Serializing plain strings and numbers cannot fail; fall back to the fields by hand.
        serde_json::to_string(self).unwrap_or_else(|_| {
            format!(
                r#"{{"sensor":"{}","alert":"{}"}}"#,
                self.sensor.escape_default(),
                self.alert
            )
        })
    }
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<8} {} at {:.1} °C (average {:.1} °C)",
            self.alert, self.sensor, self.celsius, self.average_celsius
        )
    }
}
