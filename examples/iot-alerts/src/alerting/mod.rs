//! The application: readings in, alerts out.
//!
//! [`AlertProcessor`] is the `RecordProcessor`; it parses [`Reading`]s, runs them through an
//! [`AlertDetector`] (a threshold, a rolling average per sensor, deduplication) and hands
//! [`Alert`]s to an [`AlertSink`], checkpointing by a [`CheckpointPolicy`].

mod alert;
mod alert_dedup;
mod alert_detector;
mod alert_processor;
mod alert_rules;
mod alert_sink;
mod checkpoint_policy;
mod processing_stats;
mod reading;
mod rolling_average;

pub use alert::{Alert, AlertKind};
pub use alert_dedup::AlertDeduplicator;
pub use alert_detector::{AlertDetector, Detection};
pub use alert_processor::{AlertProcessor, AlertSettings, alert_processors};
pub use alert_rules::{AlertRules, InvalidRule};
pub use alert_sink::{AlertSink, JsonLinesSink};
pub use checkpoint_policy::{CheckpointPolicy, CheckpointSchedule};
pub use processing_stats::{ProcessingStats, StatsSnapshot};
pub use reading::{ABSOLUTE_ZERO_CELSIUS, Reading, ReadingError};
pub use rolling_average::RollingAverage;
