//! The harness of kcl-rs's cross-crate tests: an engine with a stream and a producer, lease
//! stores of every kind, and a processor that records every delivery so tests can check the
//! guarantees (nothing lost, order per shard and per key, parents before children).

pub mod outage;
pub mod producer;
pub mod recording;
pub mod stores;
