//! A processor made of one closure, for applications that only need to see records.

use std::sync::Arc;

use async_trait::async_trait;

use crate::Record;
use crate::worker::{
    Checkpointer, ProcessRecordsInput, ProcessorError, RecordProcessor, RecordProcessorFactory,
    ShardInfo,
};

/// A factory of processors that call `handle` for every batch and checkpoint after each one
/// that succeeds, and at the end of a closed shard.
///
/// ```
/// use kcl_core::worker::process_with;
///
/// let factory = process_with(|shard, records| {
///     for record in records {
///         println!("{} {}: {} bytes", shard.shard_id, record.sequence_number, record.data.len());
///     }
///     Ok(())
/// });
/// # let _ = factory;
/// ```
pub fn process_with<F>(handle: F) -> impl RecordProcessorFactory
where
    F: Fn(&ShardInfo, &[Record]) -> Result<(), ProcessorError> + Send + Sync + 'static,
{
    let handle = Arc::new(handle);
    move |shard: &ShardInfo| -> Box<dyn RecordProcessor> {
        Box::new(ClosureProcessor {
            shard: shard.clone(),
            handle: Arc::clone(&handle),
        })
    }
}

struct ClosureProcessor<F> {
    shard: ShardInfo,
    handle: Arc<F>,
}

#[async_trait]
impl<F> RecordProcessor for ClosureProcessor<F>
where
    F: Fn(&ShardInfo, &[Record]) -> Result<(), ProcessorError> + Send + Sync + 'static,
{
    async fn process_records(
        &mut self,
        input: &ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        (self.handle)(&self.shard, &input.records)?;
        checkpointer.checkpoint().await?;
        Ok(())
    }
}
