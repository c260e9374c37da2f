//! The stream as one worker reads it: the in-memory engine behind injected read faults and the
//! worker's pause gate.

use std::sync::Arc;

use async_trait::async_trait;
use kcl_core::{
    Checkpoint, Error, ReadBatch, ShardDescription, ShardId, ShardReader, StartingPosition,
    StreamName, StreamSource,
};

use crate::engine::SimEngine;
use crate::faults::{FaultKind, Faults};
use crate::gate::Gate;

/// A [`StreamSource`] over the engine that fails as the seed says: listing, pinning `LATEST`
/// and opening fail as unavailable, reads fail as unavailable, with an expired iterator or
/// throttled. A reader of an engine that crashed since it was opened fails as a lost
/// connection would.
pub(crate) struct FaultInjectingSource {
    engine: Arc<SimEngine>,
    faults: Arc<Faults>,
    gate: Arc<Gate>,
}

impl FaultInjectingSource {
    pub(crate) fn new(engine: Arc<SimEngine>, faults: Arc<Faults>, gate: Arc<Gate>) -> Self {
        FaultInjectingSource {
            engine,
            faults,
            gate,
        }
    }
}

fn unavailable(what: &str) -> Error {
    Error::Unavailable {
        message: format!("injected fault: {what}"),
    }
}

#[async_trait]
impl StreamSource for FaultInjectingSource {
    async fn list_shards(&self, stream: &StreamName) -> Result<Vec<ShardDescription>, Error> {
        self.gate.pass().await;
        if self.faults.draw(FaultKind::ListShardsError) {
            return Err(unavailable("list_shards"));
        }
        StreamSource::list_shards(&self.engine.current(), stream).await
    }

    async fn open_reader(
        &self,
        stream: &StreamName,
        shard: &ShardId,
        position: StartingPosition,
    ) -> Result<Box<dyn ShardReader>, Error> {
        self.gate.pass().await;
        if self.faults.draw(FaultKind::OpenReaderError) {
            return Err(unavailable("open_reader"));
        }
        let incarnation = self.engine.incarnation();
        let reader =
            StreamSource::open_reader(&self.engine.current(), stream, shard, position).await?;
        Ok(Box::new(FaultInjectingReader {
            inner: reader,
            engine: Arc::clone(&self.engine),
            incarnation,
            faults: Arc::clone(&self.faults),
            gate: Arc::clone(&self.gate),
        }))
    }

    async fn pin_latest(&self, stream: &StreamName, shard: &ShardId) -> Result<Checkpoint, Error> {
        self.gate.pass().await;
        if self.faults.draw(FaultKind::PinLatestError) {
            return Err(unavailable("pin_latest"));
        }
        self.engine.current().pin_latest(stream, shard).await
    }
}

struct FaultInjectingReader {
    inner: Box<dyn ShardReader>,
    engine: Arc<SimEngine>,
    /// The engine's incarnation when the reader was opened.
    incarnation: u64,
    faults: Arc<Faults>,
    gate: Arc<Gate>,
}

#[async_trait]
impl ShardReader for FaultInjectingReader {
    async fn next_batch(&mut self, max_records: usize) -> Result<ReadBatch, Error> {
        self.gate.pass().await;
        if self.faults.draw(FaultKind::ReadError) {
            return Err(unavailable("next_batch"));
        }
        if self.faults.draw(FaultKind::ExpiredIterator) {
            return Err(Error::ExpiredIterator {
                message: "injected fault".to_owned(),
            });
        }
        if self.faults.draw(FaultKind::Throttled) {
            return Err(Error::Throttled {
                message: "injected fault".to_owned(),
            });
        }
        let batch = self.inner.next_batch(max_records).await;
        // A worker paused during a read waits for its answer.
        self.gate.pass().await;
        if self.engine.incarnation() != self.incarnation {
            return Err(unavailable("the engine restarted"));
        }
        batch
    }
}
