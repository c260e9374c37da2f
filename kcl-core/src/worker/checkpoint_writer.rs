//! Where checkpoints go: straight to the lease store, or, with group checkpointing
//! ([`WorkerConfig::group_checkpoints`](crate::worker::WorkerConfig::group_checkpoints)),
//! gathered for a short delay and written together in one store call.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::Error;
use crate::lease::{CheckpointUpdate, Fence, LeaseKey, LeaseStore};

/// The most checkpoints written in one group.
const MAX_GROUP: usize = 1_000;

/// A checkpoint waiting for its group, and who waits for its outcome.
type Request = (
    (LeaseKey, Fence, CheckpointUpdate),
    oneshot::Sender<Result<(), Error>>,
);

/// Writes a worker's checkpoints. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointWriter {
    store: Arc<dyn LeaseStore>,
    /// The group flusher's queue, when checkpoints are grouped.
    group: Option<mpsc::UnboundedSender<Request>>,
}

/// The flusher of a writer that groups: run it on a task of the worker's own.
pub(crate) struct GroupFlusher {
    store: Arc<dyn LeaseStore>,
    delay: Duration,
    queue: mpsc::UnboundedReceiver<Request>,
}

impl CheckpointWriter {
    /// A writer to `store`; grouping for `delay` if given, with the flusher to run.
    pub(crate) fn new(
        store: Arc<dyn LeaseStore>,
        delay: Option<Duration>,
    ) -> (Self, Option<GroupFlusher>) {
        match delay {
            None => (CheckpointWriter { store, group: None }, None),
            Some(delay) => {
                let (sender, queue) = mpsc::unbounded_channel();
                let flusher = GroupFlusher {
                    store: Arc::clone(&store),
                    delay,
                    queue,
                };
                let writer = CheckpointWriter {
                    store,
                    group: Some(sender),
                };
                (writer, Some(flusher))
            }
        }
    }

    /// Writes `update` fenced on `fence`, as [`LeaseStore::checkpoint`] does; grouped, it
    /// returns once its group is written. A group that cannot be written (the flusher stopped,
    /// the store failed for the whole group) is the transient [`Error::Unavailable`].
    pub(crate) async fn checkpoint(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        update: &CheckpointUpdate,
    ) -> Result<(), Error> {
        let Some(group) = &self.group else {
            return self.store.checkpoint(key, fence, update).await;
        };
        let stopped = || Error::Unavailable {
            message: format!("the group checkpoint writer stopped before writing {key}"),
        };
        let (reply, outcome) = oneshot::channel();
        group
            .send(((key.clone(), fence.clone(), update.clone()), reply))
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

impl GroupFlusher {
    /// Writes groups until every writer is gone: a group opens with the first checkpoint that
    /// arrives and closes `delay` later (or at [`MAX_GROUP`] checkpoints).
    pub(crate) async fn run(mut self) {
        while let Some(first) = self.queue.recv().await {
            let closes_at = Instant::now() + self.delay;
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                tokio::select! {
                    next = self.queue.recv() => match next {
                        Some(next) => group.push(next),
                        None => break,
                    },
                    _ = tokio::time::sleep_until(closes_at) => break,
                }
            }
            let (updates, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
            match self.store.checkpoint_many(&updates).await {
                Ok(outcomes) => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(outcome);
                    }
                }
                Err(error) => {
                    for reply in replies {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::lease::{
        Checkpoint, FaultInjectingLeaseStore, InMemoryLeaseStore, LeaseStoreOp, NewLease, TakeMode,
        WorkerId,
    };
    use crate::{SequenceNumber, ShardId, StreamName};

    const LONG: Duration = Duration::from_secs(60);

    /// A store counting the calls that write checkpoints (a batch is one call), with sixteen
    /// leases held by one worker, the last stolen by another.
    async fn store() -> (
        Arc<dyn LeaseStore>,
        Arc<AtomicUsize>,
        Vec<(LeaseKey, Fence)>,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let store: Arc<dyn LeaseStore> = Arc::new(FaultInjectingLeaseStore::with_decider(
            Arc::new(InMemoryLeaseStore::new()),
            move |op| {
                if op == LeaseStoreOp::Checkpoint {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                None
            },
        ));
        let stream = StreamName::new("group").expect("stream");
        let (owner, thief) = (
            WorkerId::new("owner").expect("id"),
            WorkerId::new("thief").expect("id"),
        );
        let mut held = Vec::new();
        for index in 0..16 {
            let key = LeaseKey::new(stream.clone(), ShardId::from_index(index));
            let new = NewLease::new(key.clone(), Checkpoint::TrimHorizon);
            store.create_lease_if_absent(&new).await.expect("create");
            let lease = store
                .take_lease(&key, 0, &owner, TakeMode::IfAvailable, LONG)
                .await
                .expect("take");
            held.push((key, lease.fence().expect("held")));
        }
        let (key, fence) = &held[15];
        store
            .take_lease(key, fence.epoch, &thief, TakeMode::Steal, LONG)
            .await
            .expect("steal");
        (store, calls, held)
    }

    fn update() -> CheckpointUpdate {
        CheckpointUpdate::commit(Checkpoint::Sequence(SequenceNumber::from(7u128)))
    }

    #[tokio::test]
    async fn grouped_checkpoints_are_written_together_and_fenced_one_by_one() {
        let (store, calls, held) = store().await;
        let (writer, flusher) = CheckpointWriter::new(store, Some(Duration::from_millis(50)));
        tokio::spawn(flusher.expect("grouping").run());
        let writes = held.iter().map(|(key, fence)| {
            let writer = writer.clone();
            async move { writer.checkpoint(key, fence, &update()).await }
        });
        let outcomes = futures::future::join_all(writes).await;
        for (index, outcome) in outcomes.iter().enumerate() {
            if index == 15 {
                assert!(
                    matches!(outcome, Err(Error::LeaseLost { .. })),
                    "the stolen lease's checkpoint is refused: {outcome:?}"
                );
            } else {
                assert_eq!(outcome, &Ok(()), "checkpoint {index}");
            }
        }
        let calls = calls.load(Ordering::SeqCst);
        assert!(
            (1..16).contains(&calls),
            "16 checkpoints made together share store calls: {calls} calls"
        );
    }

    #[tokio::test]
    async fn without_grouping_each_checkpoint_is_written_alone() {
        let (store, calls, held) = store().await;
        let (writer, flusher) = CheckpointWriter::new(store, None);
        assert!(flusher.is_none());
        for (key, fence) in &held[..3] {
            writer
                .checkpoint(key, fence, &update())
                .await
                .expect("written");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
