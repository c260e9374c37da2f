//! A processor that records every delivery, and the checks made on what it recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kcl_core::worker::{
    Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorError, RecordProcessor,
    RecordProcessorFactory, ShardInfo,
};
use kcl_core::{SequenceNumber, ShardId};

use crate::producer::parse_payload;

/// One record delivered to a processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Position in the global order of deliveries.
    pub order: u64,
    /// The worker (by test name) that processed it.
    pub worker: String,
    /// Which processor instance (one per shard taken) got it.
    pub run: u64,
    /// The shard.
    pub shard: ShardId,
    /// The record's sequence number.
    pub sequence_number: SequenceNumber,
    /// The producer's key.
    pub key: String,
    /// The key's counter.
    pub n: u64,
}

/// What processors saw, in the order they saw it.
#[derive(Debug, Default)]
pub struct Log {
    deliveries: Mutex<Vec<Delivery>>,
    order: AtomicU64,
    runs: AtomicU64,
    lost: Mutex<Vec<ShardId>>,
}

/// How a [`RecordingProcessor`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behaviour {
    /// Checkpoint after every batch.
    pub checkpoint_batches: bool,
    /// Checkpoint `SHARD_END` in `shard_ended` (a well-behaved processor must).
    pub checkpoint_shard_end: bool,
    /// Checkpoint in `shutdown_requested`.
    pub checkpoint_on_shutdown: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            checkpoint_batches: true,
            checkpoint_shard_end: true,
            checkpoint_on_shutdown: true,
        }
    }
}

impl Log {
    /// A new, empty log.
    pub fn new() -> Arc<Log> {
        Arc::new(Log::default())
    }

    /// A factory of recording processors for the worker called `worker`.
    pub fn factory(
        self: &Arc<Self>,
        worker: &str,
        behaviour: Behaviour,
    ) -> impl RecordProcessorFactory + 'static {
        let log = Arc::clone(self);
        let worker = worker.to_owned();
        move |shard: &ShardInfo| -> Box<dyn RecordProcessor> {
            Box::new(RecordingProcessor {
                log: Arc::clone(&log),
                worker: worker.clone(),
                run: log.runs.fetch_add(1, Ordering::SeqCst),
                shard: shard.shard_id.clone(),
                behaviour,
                last: None,
            })
        }
    }

    /// Every delivery so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().expect("log").clone()
    }

    /// Shards whose processors were told the lease was lost.
    pub fn lost(&self) -> Vec<ShardId> {
        self.lost.lock().expect("log").clone()
    }

    /// The distinct (key, n) pairs delivered.
    pub fn distinct(&self) -> BTreeSet<(String, u64)> {
        self.deliveries()
            .into_iter()
            .map(|d| (d.key, d.n))
            .collect()
    }

    /// True once every record the producer wrote (`counts[i]` records for `key-i`) was
    /// delivered at least once.
    pub fn has_all(&self, counts: &[u64]) -> bool {
        self.missing(counts).is_empty()
    }

    /// The records written but never delivered.
    pub fn missing(&self, counts: &[u64]) -> Vec<(String, u64)> {
        let seen = self.distinct();
        counts
            .iter()
            .enumerate()
            .flat_map(|(i, &count)| (0..count).map(move |n| (format!("key-{i}"), n)))
            .filter(|pair| !seen.contains(pair))
            .collect()
    }

    /// Records delivered more than once.
    pub fn duplicates(&self) -> usize {
        self.deliveries().len() - self.distinct().len()
    }

    /// Checks that within each processor run, records came in increasing sequence order and
    /// each key's counter increased; panics naming the first violation.
    pub fn assert_ordered_within_runs(&self) {
        let mut last: BTreeMap<u64, (SequenceNumber, BTreeMap<String, u64>)> = BTreeMap::new();
        for delivery in self.deliveries() {
            let (sequence, keys) = last
                .entry(delivery.run)
                .or_insert_with(|| (SequenceNumber::from(0u128), BTreeMap::new()));
            assert!(
                delivery.sequence_number > *sequence,
                "run {} of {} went back from {sequence} to {}",
                delivery.run,
                delivery.shard,
                delivery.sequence_number
            );
            *sequence = delivery.sequence_number.clone();
            if let Some(previous) = keys.insert(delivery.key.clone(), delivery.n) {
                assert!(
                    previous < delivery.n,
                    "{} went from {previous} to {}",
                    delivery.key,
                    delivery.n
                );
            }
        }
    }

    /// Checks that, across all runs and shards, the first delivery of each (key, n) comes in
    /// the key's write order: per-key order held across moves and resharding.
    pub fn assert_key_order(&self) {
        let mut first_seen: BTreeMap<String, u64> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for delivery in self.deliveries() {
            if !seen.insert((delivery.key.clone(), delivery.n)) {
                continue;
            }
            if let Some(previous) = first_seen.insert(delivery.key.clone(), delivery.n) {
                assert!(
                    delivery.n > previous,
                    "{} delivered {} after {previous}",
                    delivery.key,
                    delivery.n
                );
            }
        }
    }
}

/// Records deliveries in the shared [`Log`].
pub struct RecordingProcessor {
    log: Arc<Log>,
    worker: String,
    run: u64,
    shard: ShardId,
    behaviour: Behaviour,
    /// The last sequence number this processor logged.
    last: Option<SequenceNumber>,
}

#[async_trait]
impl RecordProcessor for RecordingProcessor {
    async fn initialize(&mut self, _input: InitializeInput) -> Result<(), ProcessorError> {
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: &ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        {
            let mut deliveries = self.log.deliveries.lock().expect("log");
            // A batch whose processing failed (here: its checkpoint) is delivered again to the
            // same processor; its records were logged the first time.
            let fresh = input.records.iter().filter(|record| {
                self.last
                    .as_ref()
                    .is_none_or(|last| record.sequence_number > *last)
            });
            for record in fresh {
                let (key, n) = parse_payload(&record.data);
                deliveries.push(Delivery {
                    order: self.log.order.fetch_add(1, Ordering::SeqCst),
                    worker: self.worker.clone(),
                    run: self.run,
                    shard: self.shard.clone(),
                    sequence_number: record.sequence_number.clone(),
                    key,
                    n,
                });
            }
            if let Some(last) = input.records.last() {
                self.last = Some(last.sequence_number.clone());
            }
        }
        if self.behaviour.checkpoint_batches {
            checkpointer.checkpoint().await?;
        }
        Ok(())
    }

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ProcessorError> {
        if self.behaviour.checkpoint_shard_end {
            checkpointer.checkpoint().await?;
        }
        Ok(())
    }

    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        if self.behaviour.checkpoint_on_shutdown && checkpointer.has_unchecked_records() {
            checkpointer.checkpoint().await?;
        }
        Ok(())
    }

    async fn lease_lost(&mut self) {
        self.log.lost.lock().expect("log").push(self.shard.clone());
    }
}
