//! The application the simulated workers run: a processor that records every call and fails,
//! panics and dawdles as the seed says.

use std::sync::{Arc, Once};
use std::time::Duration;

use async_trait::async_trait;
use kcl_core::worker::{
    Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorError, RecordProcessor,
    RecordProcessorFactory, ShardInfo,
};

use crate::faults::{FaultKind, Faults};
use crate::gate::Gate;
use crate::history::{Event, History, WorkerName};
use crate::rng::SimRng;

/// The payload of every panic the simulation injects: the panic hook keeps them quiet.
#[derive(Debug)]
pub(crate) struct InjectedPanic;

/// Keeps injected panics off stderr (there are thousands); any other panic is reported as usual.
pub(crate) fn silence_injected_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<InjectedPanic>().is_none() {
                previous(info);
            }
        }));
    });
}

/// What every processor of one worker shares.
#[derive(Clone)]
pub(crate) struct ProcessorContext {
    pub(crate) worker: WorkerName,
    pub(crate) history: Arc<History>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) rng: SimRng,
    pub(crate) gate: Arc<Gate>,
    /// The longest a slow callback takes.
    pub(crate) slowest: Duration,
}

/// Makes one [`SimProcessor`] per shard taken; panics when the seed says so.
pub(crate) struct SimProcessorFactory(pub(crate) ProcessorContext);

impl RecordProcessorFactory for SimProcessorFactory {
    fn create(&self, shard: &ShardInfo) -> Box<dyn RecordProcessor> {
        let ctx = &self.0;
        if ctx.faults.draw(FaultKind::FactoryPanic) {
            ctx.history.record(Event::FactoryPanicked {
                worker: Arc::clone(&ctx.worker),
                shard: shard.shard_id.clone(),
            });
            std::panic::panic_any(InjectedPanic);
        }
        let run = ctx
            .history
            .new_run(Arc::clone(&ctx.worker), shard.shard_id.clone());
        Box::new(SimProcessor {
            run,
            ctx: ctx.clone(),
        })
    }
}

/// One shard's processor: records every call in the history. A batch counts as processed when
/// `process_records` is about to return `Ok`; it checkpoints (in one of the ways the API offers)
/// only after that, and a failed checkpoint does not fail the batch.
struct SimProcessor {
    run: u64,
    ctx: ProcessorContext,
}

impl SimProcessor {
    fn record(&self, event: Event) {
        self.ctx.history.record(event);
    }

    /// What every callback does first: wait while the worker is paused, and maybe take its time.
    async fn enter(&self) {
        self.ctx.gate.pass().await;
        if self.ctx.faults.draw(FaultKind::SlowProcessor) {
            let slow = self.ctx.rng.duration(Duration::ZERO, self.ctx.slowest);
            tokio::time::sleep(slow).await;
        }
    }

    /// Fails the callback if the seed says so: a panic, or an error.
    fn injected_failure(
        &self,
        callback: &'static str,
        error: FaultKind,
        panic: FaultKind,
    ) -> Result<(), ProcessorError> {
        if self.ctx.faults.draw(panic) {
            self.record(Event::CallbackFailed {
                run: self.run,
                callback,
                panicked: true,
            });
            std::panic::panic_any(InjectedPanic);
        }
        if self.ctx.faults.draw(error) {
            self.record(Event::CallbackFailed {
                run: self.run,
                callback,
                panicked: false,
            });
            return Err(format!("injected failure in {callback}").into());
        }
        Ok(())
    }

    async fn checkpoint(&self, checkpointer: &mut Checkpointer, last: &kcl_core::Record) {
        let outcome = match self.ctx.rng.within(0..10) {
            0..=4 => checkpointer.checkpoint().await.map(|()| "checkpoint"),
            5 | 6 => checkpointer
                .checkpoint_at(&last.sequence_number)
                .await
                .map(|()| "checkpoint_at"),
            7 => match checkpointer.prepare(Some(b"state".to_vec())).await {
                Ok(prepared) => checkpointer.commit(prepared).await.map(|()| "commit"),
                Err(error) => Err(error),
            },
            _ => return,
        };
        self.record(Event::ProcessorCheckpointed {
            run: self.run,
            outcome: match outcome {
                Ok(how) => how.to_owned(),
                Err(error) => format!("failed: {error}"),
            },
        });
    }
}

impl Drop for SimProcessor {
    fn drop(&mut self) {
        self.record(Event::ProcessorDropped { run: self.run });
    }
}

#[async_trait]
impl RecordProcessor for SimProcessor {
    async fn initialize(&mut self, input: InitializeInput) -> Result<(), ProcessorError> {
        self.record(Event::Initialized {
            run: self.run,
            checkpoint: input.checkpoint,
        });
        self.enter().await;
        self.injected_failure(
            "initialize",
            FaultKind::InitializeError,
            FaultKind::InitializePanic,
        )
    }

    async fn process_records(
        &mut self,
        input: &ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        self.record(Event::Delivered {
            run: self.run,
            epoch: checkpointer.lease_epoch(),
            records: input
                .records
                .iter()
                .map(|record| record.sequence_number.clone())
                .collect(),
        });
        self.enter().await;
        if self.ctx.faults.draw(FaultKind::ProcessPanic) {
            self.record(Event::ProcessingFailed {
                run: self.run,
                panicked: true,
            });
            std::panic::panic_any(InjectedPanic);
        }
        if self.ctx.faults.draw(FaultKind::ProcessError) {
            self.record(Event::ProcessingFailed {
                run: self.run,
                panicked: false,
            });
            return Err("injected processing failure".into());
        }
        self.record(Event::Processed { run: self.run });
        if let Some(last) = input.records.last() {
            self.checkpoint(checkpointer, last).await;
        }
        Ok(())
    }

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ProcessorError> {
        self.record(Event::ShardEndedCalled { run: self.run });
        self.enter().await;
        self.injected_failure(
            "shard_ended",
            FaultKind::ShardEndedError,
            FaultKind::ShardEndedPanic,
        )?;
        if self.ctx.faults.draw(FaultKind::ShardEndedWithoutCheckpoint) {
            return Ok(());
        }
        checkpointer.checkpoint().await?;
        Ok(())
    }

    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        self.record(Event::ShutdownRequestedCalled { run: self.run });
        self.enter().await;
        self.injected_failure(
            "shutdown_requested",
            FaultKind::ShutdownRequestedError,
            FaultKind::ShutdownRequestedPanic,
        )?;
        // What the documentation recommends: checkpoint what was processed before letting go.
        if checkpointer.has_unchecked_records() {
            checkpointer.checkpoint().await?;
        }
        Ok(())
    }

    async fn lease_lost(&mut self) {
        self.record(Event::LeaseLostCalled { run: self.run });
        self.enter().await;
        if self.ctx.faults.draw(FaultKind::LeaseLostPanic) {
            self.record(Event::CallbackFailed {
                run: self.run,
                callback: "lease_lost",
                panicked: true,
            });
            std::panic::panic_any(InjectedPanic);
        }
    }
}
