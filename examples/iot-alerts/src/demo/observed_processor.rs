//! The demo's view into its processors: the alert processor, wrapped to record each shard's
//! history and to announce resharding as it is followed.

use std::sync::Arc;

use async_trait::async_trait;
use kcl_core::worker::{
    Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorError, RecordProcessor, ShardInfo,
};

use super::{Console, ShardTimeline};

/// Runs `inner` and records what it does in the [`ShardTimeline`].
pub struct ObservedProcessor {
    worker: String,
    shard: ShardInfo,
    timeline: Arc<ShardTimeline>,
    console: Arc<Console>,
    inner: Box<dyn RecordProcessor>,
}

impl ObservedProcessor {
    /// Observes `inner`, the processor of `shard` on `worker`.
    pub fn new(
        worker: &str,
        shard: &ShardInfo,
        timeline: Arc<ShardTimeline>,
        console: Arc<Console>,
        inner: Box<dyn RecordProcessor>,
    ) -> Self {
        ObservedProcessor {
            worker: worker.to_owned(),
            shard: shard.clone(),
            timeline,
            console,
            inner,
        }
    }
}

#[async_trait]
impl RecordProcessor for ObservedProcessor {
    async fn initialize(&mut self, input: InitializeInput) -> Result<(), ProcessorError> {
        self.timeline.initialized(&self.shard, &self.worker);
        self.inner.initialize(input).await
    }

    async fn process_records(
        &mut self,
        input: &ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        if let Some(child) = self.timeline.delivering(&self.shard.shard_id) {
            let parents: Vec<String> = child.parents.iter().map(ToString::to_string).collect();
            self.console.line(&format!(
                "resharding: {} (child of {}) starts on {}, {} ms after its parent's last reading{}",
                self.shard.shard_id,
                parents.join(" and "),
                self.worker,
                child.gap_ms,
                if child.after_parents {
                    ""
                } else {
                    " -- BEFORE ITS PARENT ENDED"
                }
            ));
        }
        self.inner.process_records(input, checkpointer).await?;
        self.timeline.processed(
            &self.shard.shard_id,
            &input.records,
            input.millis_behind_latest,
        );
        Ok(())
    }

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ProcessorError> {
        self.timeline.ended(&self.shard.shard_id);
        self.inner.shard_ended(checkpointer).await?;
        self.console.line(&format!(
            "resharding: {} ended on {}: every reading processed, SHARD_END checkpointed; its \
             children may start",
            self.shard.shard_id, self.worker
        ));
        Ok(())
    }

    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        self.inner.shutdown_requested(checkpointer).await
    }

    async fn lease_lost(&mut self) {
        self.inner.lease_lost().await;
    }
}
