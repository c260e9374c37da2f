//! The harness of kcl-rs's cross-crate tests: an engine with a stream and a producer, lease
//! stores of every kind, and a processor that records every delivery so tests can check the
//! guarantees (nothing lost, order per shard and per key, parents before children).

pub mod bench_args;
pub mod black_hole_proxy;
pub mod counting_lease_store;
pub mod http_producer;
pub mod late_deliveries;
pub mod lease_scale;
pub mod log_checker;
pub mod postgres_admin;
pub mod process_cluster;
pub mod processes;
pub mod processor_faults;
pub mod producer;
pub mod recording;
pub mod seeded_rng;
pub mod stores;
pub mod stream_admin;
pub mod wait;
pub mod worker_log;
