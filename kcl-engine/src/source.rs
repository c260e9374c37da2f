//! The in-process engine as a [`StreamSource`] for the worker.

use async_trait::async_trait;
use kcl_core::{
    Checkpoint, ShardDescription, ShardId, ShardReader, StartingPosition, StreamName, StreamSource,
};

use crate::{Engine, ShardFilter};

#[async_trait]
impl StreamSource for Engine {
    async fn list_shards(
        &self,
        stream: &StreamName,
    ) -> Result<Vec<ShardDescription>, kcl_core::Error> {
        Ok(Engine::list_shards(
            self,
            stream.as_str(),
            &ShardFilter::FromTrimHorizon,
        )?)
    }

    async fn open_reader(
        &self,
        stream: &StreamName,
        shard: &ShardId,
        position: StartingPosition,
    ) -> Result<Box<dyn ShardReader>, kcl_core::Error> {
        Ok(Box::new(Engine::open_reader(
            self,
            stream.as_str(),
            shard.as_str(),
            position,
        )?))
    }

    /// Exact: the newest retained record, or `TRIM_HORIZON` when the shard retains none.
    async fn pin_latest(
        &self,
        stream: &StreamName,
        shard: &ShardId,
    ) -> Result<Checkpoint, kcl_core::Error> {
        Ok(
            match self.newest_sequence_number(stream.as_str(), shard.as_str())? {
                Some(newest) => Checkpoint::Sequence(newest),
                None => Checkpoint::TrimHorizon,
            },
        )
    }
}
