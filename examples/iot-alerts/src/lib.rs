//! `iot-alerts`: temperature alerts from a stream of sensor readings, the kcl-rs example
//! application.
//!
//! Sensors write readings (partition key: the sensor id) to a stream; the
//! [`AlertProcessor`](alerting::AlertProcessor), a kcl-rs `RecordProcessor`, raises an alert
//! when a reading crosses a threshold or a sensor's rolling average drifts, and checkpoints as
//! it goes; several workers share the shards through a lease store.
//!
//! - [`alerting`]: the application logic (readings, rules, detector, processor, sinks).
//! - [`simulation`]: the seeded sensor fleet with planned anomalies, and its producer.
//! - [`demo`]: the one-process demo.
//! - [`commands`]: the command line (`demo`, `sensors`, `alerts`).

pub mod alerting;
pub mod commands;
pub mod demo;
pub mod simulation;
