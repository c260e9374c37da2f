//! The in-memory log, for tests and for engines that need no durability.
//!
//! Nothing survives its process, so no crash can hand an offset out twice: every record is
//! numbered in generation 0.

use std::collections::VecDeque;
use std::time::SystemTime;

use kcl_core::Record;

use super::ShardLog;
use crate::Error;
use crate::sequence::Position;

/// Records kept in a deque; reads clone shared handles, so they cost no copying of data.
#[derive(Debug, Default)]
pub(crate) struct MemoryLog {
    records: VecDeque<Record>,
    first_offset: u64,
    last_arrival: Option<SystemTime>,
}

impl MemoryLog {
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

impl ShardLog for MemoryLog {
    fn next_offset(&self) -> u64 {
        self.first_offset + self.records.len() as u64
    }

    fn first_offset(&self) -> u64 {
        self.first_offset
    }

    fn writing_generation(&mut self) -> Result<u32, Error> {
        Ok(0)
    }

    fn generation_at(&self, _offset: u64) -> u32 {
        0
    }

    fn was_issued(&self, position: Position) -> bool {
        position < Position::new(0, self.next_offset())
    }

    fn seek(&self, position: Position) -> u64 {
        if position.generation > 0 {
            return self.next_offset();
        }
        position
            .offset
            .clamp(self.first_offset(), self.next_offset())
    }

    fn append(&mut self, records: &[Record]) -> Result<(), Error> {
        self.records.extend(records.iter().cloned());
        if let Some(last) = records.last() {
            self.last_arrival = Some(last.approximate_arrival);
        }
        Ok(())
    }

    fn read(
        &mut self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, Error> {
        let start = usize::try_from(from.saturating_sub(self.first_offset)).unwrap_or(usize::MAX);
        let mut bytes = 0usize;
        let mut out = Vec::with_capacity(max_records.min(self.records.len().saturating_sub(start)));
        for record in self.records.iter().skip(start).take(max_records) {
            if !out.is_empty() && bytes + record.data.len() > max_bytes {
                break;
            }
            bytes += record.data.len();
            out.push(record.clone());
        }
        Ok(out)
    }

    fn offset_at_time(&mut self, time: SystemTime) -> Result<u64, Error> {
        let index = self
            .records
            .partition_point(|record| record.approximate_arrival < time);
        Ok(self.first_offset + index as u64)
    }

    fn last_arrival(&self) -> Option<SystemTime> {
        self.last_arrival
    }

    fn trim_before(&mut self, cutoff: SystemTime) -> Result<(), Error> {
        let expired = self
            .records
            .partition_point(|record| record.approximate_arrival < cutoff);
        self.records.drain(..expired);
        self.first_offset += expired as u64;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), Error> {
        Ok(())
    }
}
