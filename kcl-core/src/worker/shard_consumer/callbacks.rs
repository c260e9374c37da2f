//! Calls into the application, each confined: an error or a panic in a processor (or its
//! factory) becomes an error of this shard's consumer, never a dead task holding a lease.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use crate::worker::{ProcessorError, RecordProcessor, RecordProcessorFactory, ShardInfo};

/// Runs a processor call, turning a panic into an error.
pub(super) async fn guarded<F>(call: F) -> Result<(), ProcessorError>
where
    F: Future<Output = Result<(), ProcessorError>>,
{
    match AssertUnwindSafe(call).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(panicked(panic)),
    }
}

/// Runs a processor call that cannot fail (`lease_lost`), turning a panic into an error.
pub(super) async fn guarded_infallible<F>(call: F) -> Result<(), ProcessorError>
where
    F: Future<Output = ()>,
{
    guarded(call.map(Ok)).await
}

/// Asks the factory for a processor, turning a panic into an error.
pub(super) fn create(
    factory: &dyn RecordProcessorFactory,
    shard: &ShardInfo,
) -> Result<Box<dyn RecordProcessor>, ProcessorError> {
    std::panic::catch_unwind(AssertUnwindSafe(|| factory.create(shard))).map_err(panicked)
}

fn panicked(panic: Box<dyn Any + Send>) -> ProcessorError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    format!("processor panicked: {message}").into()
}
