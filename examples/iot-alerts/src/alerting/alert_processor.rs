//! The application's `RecordProcessor`: readings in, alerts out, checkpoints as it goes.

use std::sync::Arc;

use async_trait::async_trait;
use kcl_core::Record;
use kcl_core::worker::{
    Checkpointer, ProcessRecordsInput, ProcessorError, RecordProcessor, RecordProcessorFactory,
    ShardInfo,
};

use super::{
    Alert, AlertDetector, AlertRules, AlertSink, CheckpointPolicy, CheckpointSchedule,
    ProcessingStats, Reading,
};

/// Everything the processors of one worker share: the rules, where alerts go, how often to
/// checkpoint, and the counters.
#[derive(Clone)]
pub struct AlertSettings {
    /// The alert rules.
    pub rules: AlertRules,
    /// Where alerts go.
    pub sink: Arc<dyn AlertSink>,
    /// How often to checkpoint.
    pub checkpoints: CheckpointPolicy,
    /// The counters.
    pub stats: Arc<ProcessingStats>,
}

/// Raises alerts from one shard's readings.
///
/// Per batch: parse each record (a record that is not a reading is counted, logged with its
/// sequence number and skipped: one bad sensor must not stop a shard), run the readings
/// through the [`AlertDetector`], hand alerts to the sink, and checkpoint when the
/// [`CheckpointPolicy`] says so. Alerts reach the sink before the checkpoint that covers their
/// reading, so a crash can repeat an alert but never lose one.
pub struct AlertProcessor {
    shard: ShardInfo,
    detector: AlertDetector,
    schedule: CheckpointSchedule,
    settings: AlertSettings,
}

/// A factory of [`AlertProcessor`]s for a worker.
pub fn alert_processors(settings: AlertSettings) -> impl RecordProcessorFactory {
    move |shard: &ShardInfo| -> Box<dyn RecordProcessor> {
        Box::new(AlertProcessor::new(shard.clone(), settings.clone()))
    }
}

impl AlertProcessor {
    /// A processor for `shard`, with no history.
    pub fn new(shard: ShardInfo, settings: AlertSettings) -> Self {
        AlertProcessor {
            detector: AlertDetector::new(settings.rules.clone()),
            schedule: CheckpointSchedule::new(settings.checkpoints),
            shard,
            settings,
        }
    }

    fn handle(&mut self, record: &Record) -> std::io::Result<()> {
        let reading = match Reading::parse(&record.data) {
            Ok(reading) => reading,
            Err(error) => {
                self.settings.stats.skipped();
                tracing::warn!(
                    shard = %self.shard.shard_id,
                    sequence_number = %record.sequence_number,
                    partition_key = %record.partition_key,
                    %error,
                    "skipped a record that is not a reading"
                );
                return Ok(());
            }
        };
        for detection in self.detector.observe(&reading) {
            let alert = Alert {
                sensor: reading.sensor.clone(),
                alert: detection.kind,
                celsius: detection.celsius,
                average_celsius: detection.average_celsius,
                ts: reading.ts,
                shard: self.shard.shard_id.to_string(),
                sequence_number: record.sequence_number.to_string(),
            };
            self.settings.sink.raise(&alert)?;
            self.settings.stats.alerted();
        }
        Ok(())
    }
}

#[async_trait]
impl RecordProcessor for AlertProcessor {
    async fn process_records(
        &mut self,
        input: &ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        for record in &input.records {
            self.handle(record)?;
        }
        self.settings.stats.processed(input.records.len() as u64);
        if self.schedule.processed(input.records.len() as u64) {
            checkpointer.checkpoint().await?;
            self.schedule.checkpointed();
        }
        Ok(())
    }

    async fn lease_lost(&mut self) {
        tracing::info!(
            shard = %self.shard.shard_id,
            "another worker took the shard; it goes on from the last checkpoint"
        );
    }
}
