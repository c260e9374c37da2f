//! The sensor simulator: a seeded fleet of temperature sensors with anomalies injected at
//! planned times, and the producer that writes it to a stream.

mod anomaly_plan;
mod fleet;
mod producer;
mod record_writer;
mod seeded_random;

pub use anomaly_plan::{Anomaly, AnomalyPlan, DRIFT_RISE_CELSIUS, PlanInput};
pub use fleet::{Fleet, FleetConfig, OutgoingRecord, sensor_id};
pub use producer::{ProducerEvent, ProducerReport, produce};
pub use record_writer::{EngineWriter, KinesisWriter, MAX_RECORDS_PER_WRITE, RecordWriter};
pub use seeded_random::SeededRandom;
