//! The producer: writes records at random moments under random keys until told to stop.

use std::sync::Arc;

use kcl_engine::PutRecordsEntry;
use tokio::sync::watch;

use crate::engine::SimEngine;
use crate::history::{Event, History};
use crate::rng::SimRng;
use crate::scenario::Scenario;

/// Writes until `stop` turns true, recording every acknowledged record. A write that fails (a
/// reshard in between) is simply not acknowledged.
pub(crate) async fn produce(
    engine: Arc<SimEngine>,
    stream: String,
    history: Arc<History>,
    rng: SimRng,
    scenario: Scenario,
    mut stop: watch::Receiver<bool>,
) {
    let mut written: u64 = 0;
    loop {
        let gap = rng.duration(scenario.write_gap.0, scenario.write_gap.1);
        tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(gap) => {}
        }
        let key = format!("key-{}", rng.within(0..64));
        let entry = PutRecordsEntry::new(key, written.to_string());
        if let Ok(acked) = engine.current().put_record(&stream, entry) {
            written += 1;
            history.record(Event::Acked {
                shard: acked.shard_id,
                sequence_number: acked.sequence_number,
            });
        }
    }
}
