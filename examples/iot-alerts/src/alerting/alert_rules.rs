//! When a reading is worth an alert: the thresholds, the averaging window, the cooldown.

use std::fmt;
use std::time::Duration;

/// The rules an [`AlertDetector`](super::AlertDetector) applies to each sensor's readings.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRules {
    /// A reading above this raises `overheat`. Defaults to 80 °C.
    pub threshold_celsius: f64,
    /// A sensor's rolling average above this raises `drift`: a slow rise that no single reading
    /// makes obvious. Defaults to 40 °C (the simulated sensors idle at 18–24 °C).
    pub average_limit_celsius: f64,
    /// The rolling average covers the readings of this much event time. Defaults to 5 s.
    pub window: Duration,
    /// The average is judged only once the window holds this many readings spanning at least a
    /// quarter of the window, so that one hot reading among a few cannot pass for a drift.
    /// Defaults to 20.
    pub min_readings: usize,
    /// After an alert, the same alert for the same sensor is not raised again for this long
    /// (event time), even if the condition clears and returns. Defaults to 60 s.
    pub cooldown: Duration,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            threshold_celsius: 80.0,
            average_limit_celsius: 40.0,
            window: Duration::from_secs(5),
            min_readings: 20,
            cooldown: Duration::from_secs(60),
        }
    }
}

/// A rule out of range, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRule {
    /// The field.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for InvalidRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.message)
    }
}

impl std::error::Error for InvalidRule {}

impl AlertRules {
    /// Sets the overheat threshold.
    pub fn threshold_celsius(mut self, celsius: f64) -> Self {
        self.threshold_celsius = celsius;
        self
    }

    /// Sets the limit of the rolling average.
    pub fn average_limit_celsius(mut self, celsius: f64) -> Self {
        self.average_limit_celsius = celsius;
        self
    }

    /// Sets the averaging window.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Sets the cooldown between repeated alerts.
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The window in milliseconds, the unit of reading timestamps.
    pub fn window_ms(&self) -> u64 {
        u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX)
    }

    /// The cooldown in milliseconds.
    pub fn cooldown_ms(&self) -> u64 {
        u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX)
    }

    /// Checks the rules, naming the first bad field.
    pub fn validate(&self) -> Result<(), InvalidRule> {
        let invalid = |field, message: &str| {
            Err(InvalidRule {
                field,
                message: message.to_owned(),
            })
        };
        if !self.threshold_celsius.is_finite() {
            return invalid("threshold_celsius", "must be a finite temperature");
        }
        if !self.average_limit_celsius.is_finite() {
            return invalid("average_limit_celsius", "must be a finite temperature");
        }
        if self.window.as_millis() == 0 {
            return invalid("window", "must be at least 1 ms");
        }
        if self.min_readings == 0 {
            return invalid("min_readings", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_fields_are_named() {
        assert_eq!(AlertRules::default().validate(), Ok(()));
        let field = |rules: AlertRules| rules.validate().map_err(|e| e.field);
        assert_eq!(
            field(AlertRules::default().window(Duration::ZERO)),
            Err("window")
        );
        assert_eq!(
            field(AlertRules::default().threshold_celsius(f64::NAN)),
            Err("threshold_celsius")
        );
    }
}
