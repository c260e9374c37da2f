//! The durable log: one shard's records in a directory of segment files.
//!
//! Appends go to the last ("active") segment with one write per batch; once it reaches
//! [`DiskLogOptions::segment_bytes`] the next batch starts a new one. Older ("sealed") segments
//! are immutable until retention deletes them whole. Records live on disk only: memory holds a
//! few numbers and a sparse index per segment (see [`super::segment`]).
//!
//! Crash safety: a batch reaches the OS before `append` returns, so a killed process loses
//! nothing. After a machine crash only the active segment can end in a torn frame, because a
//! segment is fsynced as it is sealed; [`DiskLog::open`] cuts such a tail off, and treats damage
//! anywhere else (whole frames following the bad bytes included) as corruption.
//!
//! Fsync failures: once an fsync fails nothing is known about what was written since the last
//! one that succeeded (Linux may drop those pages and report the next fsync as a success), so
//! the log is poisoned: it shows only the records an fsync covered and refuses writes until it
//! is reopened, when recovery finds what the disk really kept.
//!
//! Generations: unless records are fsynced before anyone sees them, a machine crash can cut
//! off records that were already read, and their offsets come round again. So the first append
//! after the log is opened seals the active segment and starts one in the next generation
//! (segment names carry it), fsyncing the directory before the append numbers anything in it.
//! Every record numbered from then on gets a higher sequence number than any this log issued
//! before, whatever a crash took (see [`crate::sequence`]).

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::mem;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kcl_core::{PartitionKey, Record, ShardId};

use super::ShardLog;
use super::frame::{self, EncodeError};
use super::recovery::{self, Recovered};
use super::segment::{ScannedFrame, Segment, SegmentFrames, corrupt, create_segment_file};
use crate::Error;
use crate::file_sync::{FileSync, OsFileSync};
use crate::sequence::{self, MAX_GENERATION, Position};

/// A batch buffer bigger than this is freed after the write rather than kept for the next.
const MAX_RETAINED_WRITE_BUFFER: usize = 1 << 20;

/// How a [`DiskLog`] lays out its files and makes them durable.
#[derive(Debug, Clone)]
pub(crate) struct DiskLogOptions {
    /// Once the active segment holds this many bytes, the next batch goes to a new segment (a
    /// batch may overshoot). Retention deletes whole segments, so this is also its granularity.
    /// Defaults to 64 MiB.
    pub(crate) segment_bytes: u64,
    /// Every fsync of the log goes through this. Defaults to the operating system's.
    pub(crate) file_sync: Arc<dyn FileSync>,
}

impl Default for DiskLogOptions {
    fn default() -> Self {
        DiskLogOptions {
            segment_bytes: 64 << 20,
            file_sync: Arc::new(OsFileSync),
        }
    }
}

/// The segment appends go to, with its open file.
struct Active {
    segment: Segment,
    /// Opened for reading and writing; reads of the newest records use it too.
    file: File,
}

/// Where the last read stopped, so that the next one starting there scans nothing twice.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// The offset of the record at `position`.
    offset: u64,
    /// The segment the position is in, by base offset and generation.
    segment: (u64, u32),
    position: u64,
}

/// Which generation appends number their records in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Generation {
    /// The log was opened over segments an earlier process wrote, and a machine crash may have
    /// cut off records it numbered past the end: the first append begins the next generation.
    /// Until then any number of the active segment's generation may have been issued.
    Inherited,
    /// `open` found no segment and created the first: nothing was ever numbered in this log, so
    /// the first append continues its generation once the segment's name is durable.
    Fresh,
    /// Appends number their records in the active segment's generation, whose segment's name is
    /// durable.
    Begun,
}

/// A shard's log in a directory of segment files; see the [module docs](self).
pub(crate) struct DiskLog {
    dir: PathBuf,
    shard_index: u64,
    options: DiskLogOptions,
    /// Sealed segments, oldest first; contiguous offsets ending where `active` starts.
    sealed: Vec<Segment>,
    active: Active,
    /// The last sealed segment read from (by base offset and generation), kept open so that a
    /// reader catching up does not reopen it for every read. One file, however many segments.
    sealed_reader: Option<((u64, u32), File)>,
    cursor: Option<Cursor>,
    generation: Generation,
    /// Reused across appends so that a batch costs no allocation.
    write_buffer: Vec<u8>,
    last_arrival_ms: Option<u64>,
    /// The active segment has data written since its last fsync.
    data_dirty: bool,
    /// A segment file was created or deleted since the directory's last fsync.
    dir_dirty: bool,
    /// `open` created the directory, whose own entry its parent has yet to fsync.
    parent_dirty: bool,
    /// Every record before this offset is durable: an fsync of its data and of its segment's
    /// name succeeded.
    durable_offset: u64,
    /// Set once an fsync failed, or a failed write left bytes that could not be cut off: see the
    /// [module docs](self).
    poison: Option<Poison>,
}

/// Why a log refuses writes until it is reopened.
#[derive(Debug)]
struct Poison {
    /// The file or directory whose fsync or write failed.
    path: PathBuf,
    reason: String,
}

impl DiskLog {
    /// Opens (creating the directory if absent) the log of shard `shard_index` in `dir`,
    /// recovering after a crash: a torn frame at the end of the newest segment is cut off, and
    /// appends continue after the last whole record.
    ///
    /// Damage anywhere else (a bad frame in an older segment, a gap in the offsets, a bad frame
    /// of the newest segment that whole frames follow) is [`Error::Corrupt`], naming the segment
    /// and the shard: cutting there would lose records a crash did not take.
    pub(crate) fn open(
        dir: &Path,
        shard_index: u64,
        options: DiskLogOptions,
    ) -> Result<DiskLog, Error> {
        let existed = dir.try_exists().map_err(|error| Error::io(dir, error))?;
        fs::create_dir_all(dir).map_err(|error| Error::io(dir, error))?;
        let Recovered {
            sealed,
            active,
            active_file,
            created,
        } = recovery::recover(dir, shard_index, options.file_sync.as_ref())?;
        let active = Active {
            segment: active,
            file: active_file,
        };
        let active_base = active.segment.base_offset();
        let last_arrival_ms = active
            .segment
            .last_arrival_ms()
            .or_else(|| sealed.iter().rev().find_map(Segment::last_arrival_ms));
        // The previous process may have died before fsyncing what it wrote.
        let data_dirty = !active.segment.is_empty();
        Ok(DiskLog {
            dir: dir.to_path_buf(),
            shard_index,
            options,
            sealed,
            active,
            sealed_reader: None,
            cursor: None,
            generation: if created {
                Generation::Fresh
            } else {
                Generation::Inherited
            },
            write_buffer: Vec::new(),
            last_arrival_ms,
            data_dirty,
            dir_dirty: created,
            parent_dirty: !existed,
            // The last process may have left the active segment's records unsynced.
            durable_offset: active_base,
            poison: None,
        })
    }

    /// The segment at `index` among all retained ones, oldest first (the active one last).
    fn segment(&self, index: usize) -> Option<&Segment> {
        if index == self.sealed.len() {
            Some(&self.active.segment)
        } else {
            self.sealed.get(index)
        }
    }

    /// The index of the segment that holds `offset` (or would, past the end: the active one),
    /// the first retained one for offsets before it.
    fn segment_index(&self, offset: u64) -> usize {
        if self.active.segment.base_offset() <= offset {
            self.sealed.len()
        } else {
            // The last segment starting at or before `offset`: after an empty segment comes one
            // with the same base offset, which is the one holding it.
            self.sealed
                .partition_point(|segment| segment.base_offset() <= offset)
                .saturating_sub(1)
        }
    }

    /// Where a scan for `offset` (retained, not past the end) starts: segment index, and the
    /// offset and byte position of a frame at or before it, from the cursor when that is
    /// closer than the sparse index.
    fn locate(&self, offset: u64) -> (usize, u64, u64) {
        let index = self.segment_index(offset);
        let Some(segment) = self.segment(index) else {
            return (index, offset, 0);
        };
        let (mut start, mut position) = segment.seek_offset(offset);
        if let Some(cursor) = self.cursor
            && cursor.segment == (segment.base_offset(), segment.generation())
            && (start..=offset).contains(&cursor.offset)
            && cursor.position <= segment.len()
        {
            (start, position) = (cursor.offset, cursor.position);
        }
        (index, start, position)
    }

    /// Seals the active segment and starts a new one at the next offset, in `generation`.
    fn roll(&mut self, generation: u32) -> Result<(), Error> {
        // Sealed segments are durable, so recovery may trust them whole and only ever has the
        // active segment's tail to repair. One fsync per segment is cheap.
        self.sync_active_data()?;
        let segment = Segment::new(self.active.segment.next_offset(), generation);
        let file = create_segment_file(&segment.path(&self.dir))?;
        let previous = mem::replace(&mut self.active, Active { segment, file });
        self.sealed.push(previous.segment);
        self.dir_dirty = true;
        Ok(())
    }

    /// The generation appends number their records in, beginning it on the first call: see the
    /// [module docs](self).
    fn begin_generation(&mut self) -> Result<u32, Error> {
        self.check_poison()?;
        if self.generation != Generation::Begun {
            if self.generation == Generation::Inherited {
                let next = self
                    .active
                    .segment
                    .generation()
                    .checked_add(1)
                    .filter(|&next| next <= MAX_GENERATION)
                    .ok_or_else(|| Error::LimitExceeded {
                        message: format!(
                            "shard log {} was reopened and written more often than sequence numbers can tell apart ({MAX_GENERATION} generations)",
                            self.dir.display()
                        ),
                    })?;
                self.roll(next)?;
            }
            // Were this name lost in a crash, the next process would begin the same generation
            // again and number other records like the ones this one is about to show.
            self.sync_names()?;
            self.generation = Generation::Begun;
        }
        Ok(self.active.segment.generation())
    }

    /// Fsyncs the directories whose entries changed, so that the names created or deleted in
    /// them survive a machine crash.
    fn sync_names(&mut self) -> Result<(), Error> {
        if self.dir_dirty {
            self.sync_dir(self.dir.clone())?;
            self.dir_dirty = false;
        }
        if self.parent_dirty {
            let parent = self
                .dir
                .parent()
                .filter(|parent| !parent.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            self.sync_dir(parent)?;
            self.parent_dirty = false;
        }
        Ok(())
    }

    /// Fsyncs a directory, poisoning the log if that fails.
    fn sync_dir(&mut self, dir: PathBuf) -> Result<(), Error> {
        match self.options.file_sync.sync_dir(&dir) {
            Ok(()) => Ok(()),
            Err(error) => Err(self.poison(dir, format!("fsync of the directory failed: {error}"))),
        }
    }

    /// Fsyncs the active segment's data if it was written since, poisoning the log if that
    /// fails.
    fn sync_active_data(&mut self) -> Result<(), Error> {
        if !self.data_dirty {
            return Ok(());
        }
        let path = self.active.segment.path(&self.dir);
        if let Err(error) = self.options.file_sync.sync_data(&self.active.file, &path) {
            return Err(self.poison(path, format!("fsync failed: {error}")));
        }
        self.data_dirty = false;
        Ok(())
    }

    /// Refuses writes from now on, and shows only what is durable; returns the error to answer.
    fn poison(&mut self, path: PathBuf, reason: String) -> Error {
        tracing::error!(
            path = %path.display(),
            reason,
            durable_offset = self.durable_offset,
            written_offset = self.active.segment.next_offset(),
            "a shard log can no longer make its writes durable; it shows only what an fsync covered and refuses writes until the engine is reopened"
        );
        let error = self.poisoned(&path, &reason);
        self.poison = Some(Poison { path, reason });
        error
    }

    /// `LogPoisoned` once the log is poisoned.
    fn check_poison(&self) -> Result<(), Error> {
        match &self.poison {
            None => Ok(()),
            Some(Poison { path, reason }) => Err(self.poisoned(path, reason)),
        }
    }

    fn poisoned(&self, path: &Path, reason: &str) -> Error {
        Error::LogPoisoned {
            shard: ShardId::from_index(self.shard_index).to_string(),
            path: path.to_path_buf(),
            reason: reason.to_owned(),
        }
    }

    /// Frames `records` into the write buffer, the first getting offset `first`.
    fn encode_batch(&mut self, records: &[Record], first: u64) -> Result<(), Error> {
        self.write_buffer.clear();
        let generation = self.active.segment.generation();
        for (offset, record) in (first..).zip(records) {
            debug_assert_eq!(
                sequence::decode(&record.sequence_number),
                Some((self.shard_index, Position::new(generation, offset))),
                "a record's sequence number must encode its shard, generation and offset",
            );
            frame::encode(
                &mut self.write_buffer,
                offset,
                millis_floor(record.approximate_arrival),
                record.partition_key.as_str().as_bytes(),
                &record.data,
            )
            .map_err(|error| match error {
                EncodeError::KeyTooLong(len) => Error::invalid(
                    "PartitionKey",
                    format!("{len} bytes is more than a log frame holds"),
                ),
                EncodeError::TooLarge(len) => Error::invalid(
                    "Data",
                    format!("a record of {len} bytes is more than a log frame holds"),
                ),
            })?;
        }
        Ok(())
    }
}

impl ShardLog for DiskLog {
    fn next_offset(&self) -> u64 {
        let written = self.active.segment.next_offset();
        match self.poison {
            None => written,
            Some(_) => written.min(self.durable_offset),
        }
    }

    fn first_offset(&self) -> u64 {
        self.sealed
            .first()
            .unwrap_or(&self.active.segment)
            .base_offset()
    }

    fn append(&mut self, records: &[Record]) -> Result<(), Error> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        self.begin_generation()?;
        if self.active.segment.len() >= self.options.segment_bytes
            && !self.active.segment.is_empty()
        {
            self.roll(self.active.segment.generation())?;
        }
        let start = self.active.segment.len();
        self.encode_batch(records, self.active.segment.next_offset())?;

        // One write for the whole batch, at the known end of the valid frames.
        if let Err(error) = self.active.file.write_all_at(&self.write_buffer, start) {
            // Cut off whatever part did land, so that the next batch follows valid frames.
            let path = self.active.segment.path(&self.dir);
            if let Err(cut) = self.active.file.set_len(start) {
                // Appending after those bytes would bury them inside the log.
                return Err(self.poison(
                    path,
                    format!("a failed write ({error}) could not be cut off: {cut}"),
                ));
            }
            return Err(Error::io(path, error));
        }
        self.data_dirty = true;

        let mut position = start;
        for record in records {
            let len = frame::frame_len(record.partition_key.as_str().len(), record.data.len());
            let arrival_ms = millis_floor(record.approximate_arrival);
            self.active.segment.push(position, arrival_ms, len as u64);
            position += len as u64;
        }
        self.last_arrival_ms = Some(millis_floor(last.approximate_arrival));
        if self.write_buffer.capacity() > MAX_RETAINED_WRITE_BUFFER {
            self.write_buffer = Vec::new();
        }
        Ok(())
    }

    fn read(
        &mut self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, Error> {
        let from = from.max(self.first_offset());
        let available = self.next_offset().saturating_sub(from);
        // Short of the end of the segments when a poisoned log hides what no fsync covered.
        let max_records = max_records.min(usize::try_from(available).unwrap_or(usize::MAX));
        if max_records == 0 {
            return Ok(Vec::new());
        }
        let (mut index, mut offset, mut position) = self.locate(from);
        let mut batch = ReadBatch {
            shard_index: self.shard_index,
            generation: 0,
            from,
            max_records,
            max_bytes,
            records: Vec::with_capacity(max_records.min(1024)),
            bytes: 0,
            last_key: None,
        };

        let Self {
            dir,
            sealed,
            active,
            sealed_reader,
            cursor,
            ..
        } = self;
        while let Some((segment, file)) =
            segment_and_file(dir, sealed, active, sealed_reader, index)?
        {
            let mut frames = SegmentFrames::new(dir, segment, file, offset, position);
            batch.generation = segment.generation();
            let name = (segment.base_offset(), segment.generation());
            while let Some(frame) = frames.next()? {
                let taken = batch
                    .take(&frame)
                    .map_err(|reason| corrupt(segment.path(dir), reason))?;
                if let Some((offset, position)) = taken {
                    *cursor = Some(Cursor {
                        offset,
                        segment: name,
                        position,
                    });
                    return Ok(batch.records);
                }
            }
            *cursor = Some(Cursor {
                offset: segment.next_offset(),
                segment: name,
                position: segment.len(),
            });
            index += 1;
            offset = segment.next_offset();
            position = 0;
        }
        Ok(batch.records)
    }

    fn offset_at_time(&mut self, time: SystemTime) -> Result<u64, Error> {
        let end = self.next_offset();
        let wanted = millis_ceil(time);
        let holds_wanted =
            |segment: &Segment| segment.max_arrival_ms().is_some_and(|max| max >= wanted);
        // Segment metadata alone says where to start; only that segment's file is read.
        let Some(mut index) =
            (0..=self.sealed.len()).find(|&index| self.segment(index).is_some_and(holds_wanted))
        else {
            return Ok(end);
        };
        let Self {
            dir,
            sealed,
            active,
            sealed_reader,
            cursor,
            ..
        } = self;
        while let Some((segment, file)) =
            segment_and_file(dir, sealed, active, sealed_reader, index)?
        {
            index += 1;
            if !holds_wanted(segment) {
                continue;
            }
            let (offset, position) = segment.seek_arrival(wanted);
            let mut frames = SegmentFrames::new(dir, segment, file, offset, position);
            while let Some(frame) = frames.next()? {
                if frame.arrival_ms >= wanted {
                    // A read from here usually follows; let it start without a scan.
                    *cursor = Some(Cursor {
                        offset: frame.offset,
                        segment: (segment.base_offset(), segment.generation()),
                        position: frame.position,
                    });
                    return Ok(frame.offset.min(end));
                }
            }
        }
        Ok(end)
    }

    fn last_arrival(&self) -> Option<SystemTime> {
        self.last_arrival_ms.and_then(time_from_millis)
    }

    fn trim_before(&mut self, cutoff: SystemTime) -> Result<(), Error> {
        // Rounded down, so that a record is dropped only if it surely arrived before `cutoff`.
        let cutoff_ms = millis_floor(cutoff);
        // The active segment always stays; when it is empty so does the segment before it, so
        // that the newest record (and `last_arrival` after a reopen) is never lost.
        let deletable = if self.active.segment.is_empty() {
            self.sealed.len().saturating_sub(1)
        } else {
            self.sealed.len()
        };
        let expired = self
            .sealed
            .iter()
            .take(deletable)
            .take_while(|segment| segment.max_arrival_ms().is_none_or(|max| max < cutoff_ms))
            .count();

        // The newer segments' names are made durable before any older one goes: a power cut
        // after the deletions must not leave a directory with neither, which would reopen as
        // an empty log and hand out again the sequence numbers readers have seen.
        if expired > 0 {
            self.sync_names()?;
        }
        let mut deleted = 0;
        let mut result = Ok(());
        for segment in self.sealed.iter().take(expired) {
            let path = segment.path(&self.dir);
            match fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(error) if error.kind() == io::ErrorKind::NotFound => deleted += 1,
                Err(error) => {
                    result = Err(Error::io(path, error));
                    break;
                }
            }
        }
        if deleted > 0 {
            self.sealed.drain(..deleted);
            self.dir_dirty = true;
            let first = self.first_offset();
            if self
                .sealed_reader
                .as_ref()
                .is_some_and(|((base, _), _)| *base < first)
            {
                self.sealed_reader = None;
            }
            if self.cursor.is_some_and(|cursor| cursor.offset < first) {
                self.cursor = None;
            }
        }
        result
    }

    fn sync(&mut self) -> Result<(), Error> {
        // Never again after a failure: a later fsync may succeed without the lost pages.
        self.check_poison()?;
        self.sync_active_data()?;
        self.sync_names()?;
        self.durable_offset = self.active.segment.next_offset();
        Ok(())
    }

    fn writing_generation(&mut self) -> Result<u32, Error> {
        self.begin_generation()
    }

    fn generation_at(&self, offset: u64) -> u32 {
        self.segment(self.segment_index(offset))
            .map_or(0, Segment::generation)
    }

    fn was_issued(&self, position: Position) -> bool {
        let active = &self.active.segment;
        match self.generation {
            Generation::Inherited => position.generation <= active.generation(),
            Generation::Fresh | Generation::Begun => {
                position < Position::new(active.generation(), active.next_offset())
            }
        }
    }

    fn seek(&self, position: Position) -> u64 {
        // (generation, next offset) never decreases from one segment to the next, so the
        // segments whose records all come before `position` are a prefix.
        let ends_before = |segment: &Segment| {
            Position::new(segment.generation(), segment.next_offset()) <= position
        };
        let index = self.sealed.partition_point(ends_before);
        let segment = self.segment(index).unwrap_or(&self.active.segment);
        let offset = if ends_before(segment) {
            self.next_offset()
        } else if segment.generation() == position.generation {
            position.offset.max(segment.base_offset())
        } else {
            segment.base_offset()
        };
        offset.min(self.next_offset())
    }
}

impl fmt::Debug for DiskLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskLog")
            .field("dir", &self.dir)
            .field("shard_index", &self.shard_index)
            .field("first_offset", &self.first_offset())
            .field("next_offset", &self.next_offset())
            .field("segments", &(self.sealed.len() + 1))
            .finish_non_exhaustive()
    }
}

/// The records one read collects, and when it must stop.
struct ReadBatch {
    shard_index: u64,
    /// The generation of the segment being read.
    generation: u32,
    from: u64,
    max_records: usize,
    max_bytes: usize,
    records: Vec<Record>,
    /// Bytes of data in `records`.
    bytes: usize,
    /// The previous record's key: consecutive records often share one, which then costs no
    /// allocation.
    last_key: Option<PartitionKey>,
}

impl ReadBatch {
    /// Takes `frame` if the read wants it. `Some((offset, position))` when the read is complete,
    /// naming where the next one would continue; `Err` with a reason for a frame no writer of
    /// ours produced.
    fn take(&mut self, frame: &ScannedFrame<'_>) -> Result<Option<(u64, u64)>, String> {
        if frame.offset < self.from {
            return Ok(None);
        }
        if !self.records.is_empty() && self.bytes + frame.data.len() > self.max_bytes {
            return Ok(Some((frame.offset, frame.position)));
        }
        let partition_key = match &self.last_key {
            Some(key) if key.as_str().as_bytes() == frame.key => key.clone(),
            _ => {
                let text = std::str::from_utf8(frame.key).map_err(|error| {
                    format!(
                        "partition key of offset {} is not UTF-8: {error}",
                        frame.offset
                    )
                })?;
                let key = PartitionKey::new(text).map_err(|error| {
                    format!("partition key of offset {}: {error}", frame.offset)
                })?;
                self.last_key = Some(key.clone());
                key
            }
        };
        let approximate_arrival = time_from_millis(frame.arrival_ms)
            .ok_or_else(|| format!("arrival time of offset {} is out of range", frame.offset))?;
        self.bytes += frame.data.len();
        self.records.push(Record {
            partition_key,
            sequence_number: sequence::encode(
                self.shard_index,
                Position::new(self.generation, frame.offset),
            ),
            data: Bytes::copy_from_slice(frame.data),
            approximate_arrival,
        });
        Ok((self.records.len() >= self.max_records)
            .then_some((frame.offset + 1, frame.position + frame.len)))
    }
}

/// The segment at `index` (oldest first, the active one last) and a file to read it with,
/// `None` past the newest. Fields rather than `&mut DiskLog`, so that the caller can keep using
/// the segment while the reader cache lends the file.
fn segment_and_file<'a>(
    dir: &Path,
    sealed: &'a [Segment],
    active: &'a Active,
    sealed_reader: &'a mut Option<((u64, u32), File)>,
    index: usize,
) -> Result<Option<(&'a Segment, &'a File)>, Error> {
    if index == sealed.len() {
        return Ok(Some((&active.segment, &active.file)));
    }
    let Some(segment) = sealed.get(index) else {
        return Ok(None);
    };
    let name = (segment.base_offset(), segment.generation());
    let file = match sealed_reader.take() {
        Some((cached, file)) if cached == name => file,
        _ => {
            let path = segment.path(dir);
            File::open(&path).map_err(|error| Error::io(path, error))?
        }
    };
    let (_, file) = sealed_reader.insert((name, file));
    Ok(Some((segment, &*file)))
}

/// Milliseconds since the Unix epoch, rounded down (0 before the epoch).
fn millis_floor(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

/// Milliseconds since the Unix epoch, rounded up: the first stored arrival at or after `time`.
fn millis_ceil(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        let partial = since.subsec_nanos() % 1_000_000 != 0;
        u64::try_from(since.as_millis() + u128::from(partial)).unwrap_or(u64::MAX)
    })
}

/// The time `millis` after the Unix epoch; `None` if the platform cannot represent it.
fn time_from_millis(millis: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::super::segment::segment_path;
    use super::*;

    const SHARD: u64 = 3;

    fn at_millis(millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    fn record(generation: u32, offset: u64, key: &str, data: Vec<u8>, arrival_ms: u64) -> Record {
        Record {
            partition_key: PartitionKey::new(key).unwrap(),
            sequence_number: sequence::encode(SHARD, Position::new(generation, offset)),
            data: Bytes::from(data),
            approximate_arrival: at_millis(arrival_ms),
        }
    }

    /// `count` records for the next offsets of `log`, numbered in its writing generation, with
    /// sizes and keys that vary by offset and arrivals `arrival_ms(offset)`.
    fn batch(log: &mut DiskLog, count: u64, arrival_ms: impl Fn(u64) -> u64) -> Vec<Record> {
        let generation = log.writing_generation().unwrap();
        (log.next_offset()..log.next_offset() + count)
            .map(|offset| {
                let len = (offset * 37 % 120) as usize;
                let data = (0..len).map(|i| (offset as usize + i) as u8).collect();
                record(
                    generation,
                    offset,
                    &format!("key-{}", offset % 5),
                    data,
                    arrival_ms(offset),
                )
            })
            .collect()
    }

    /// `count` one-byte records numbered in `generation` from `offset`.
    fn batch_at(generation: u32, offset: u64, count: u64) -> Vec<Record> {
        (offset..offset + count)
            .map(|offset| record(generation, offset, "k", vec![1], offset))
            .collect()
    }

    fn options(segment_bytes: u64) -> DiskLogOptions {
        DiskLogOptions {
            segment_bytes,
            ..DiskLogOptions::default()
        }
    }

    fn read_all(log: &mut DiskLog) -> Vec<Record> {
        let first = log.first_offset();
        log.read(first, usize::MAX, usize::MAX).unwrap()
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
            .collect();
        files.sort();
        files
    }

    /// A log in a fresh directory holding `count` records over several small segments, with the
    /// records written.
    fn filled_log(dir: &Path, count: u64, arrival_ms: impl Fn(u64) -> u64) -> Vec<Record> {
        let mut log = DiskLog::open(dir, SHARD, options(1000)).unwrap();
        let mut written = Vec::new();
        let mut size = 1;
        while log.next_offset() < count {
            let this_batch = size.min(count - log.next_offset());
            let records = batch(&mut log, this_batch, &arrival_ms);
            log.append(&records).unwrap();
            written.extend(records);
            size = size % 9 + 1;
        }
        log.sync().unwrap();
        written
    }

    #[test]
    fn a_new_directory_starts_empty_at_offset_zero() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("stream").join("shard-3");
        let mut log = DiskLog::open(&dir, SHARD, DiskLogOptions::default()).unwrap();
        assert_eq!((log.first_offset(), log.next_offset()), (0, 0));
        assert_eq!(log.last_arrival(), None);
        assert!(log.read(0, 10, 1000).unwrap().is_empty());
        assert_eq!(log.offset_at_time(UNIX_EPOCH).unwrap(), 0);
        log.sync().unwrap();
        assert_eq!(segment_files(&dir), vec![segment_path(&dir, 0, 0)]);
    }

    #[test]
    fn round_trips_across_segment_rollovers() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = DiskLog::open(dir.path(), SHARD, options(1000)).unwrap();
        let mut written = Vec::new();
        for size in (1..=15).cycle().take(30) {
            let records = batch(&mut log, size, |offset| 1_000 + offset);
            log.append(&records).unwrap();
            written.extend(records);
        }
        let total = written.len() as u64;
        assert_eq!((log.first_offset(), log.next_offset()), (0, total));
        assert!(
            segment_files(dir.path()).len() > 5,
            "small segments roll over"
        );
        assert_eq!(read_all(&mut log), written);
        assert_eq!(log.last_arrival(), Some(at_millis(1_000 + total - 1)));

        for from in 0..total {
            let start = from as usize;
            let end = (start + 7).min(written.len());
            assert_eq!(log.read(from, 7, usize::MAX).unwrap(), written[start..end]);

            let limited = log.read(from, usize::MAX, 250).unwrap();
            assert_eq!(limited, written[start..start + limited.len()]);
            let bytes: usize = limited.iter().map(|record| record.data.len()).sum();
            assert!(
                limited.len() == 1 || bytes <= 250,
                "from {from}: {bytes} bytes"
            );
            if let Some(next) = written.get(start + limited.len()) {
                assert!(bytes + next.data.len() > 250, "from {from}: stopped early");
            }
            assert_eq!(log.read(from, 10, 0).unwrap(), written[start..=start]);
        }
        assert!(log.read(total, 10, usize::MAX).unwrap().is_empty());
        assert!(log.read(0, 0, usize::MAX).unwrap().is_empty());
    }

    #[test]
    fn sequential_reads_pick_up_where_the_last_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = DiskLog::open(dir.path(), SHARD, options(700)).unwrap();
        let mut written = Vec::new();
        let mut seen = Vec::new();
        for round in 0..40u64 {
            let records = batch(&mut log, round % 7 + 1, |offset| offset);
            log.append(&records).unwrap();
            written.extend(records);
            let from = seen.len() as u64;
            seen.extend(log.read(from, 3, usize::MAX).unwrap());
        }
        while (seen.len() as u64) < log.next_offset() {
            let from = seen.len() as u64;
            seen.extend(log.read(from, 4, 100).unwrap());
        }
        assert_eq!(seen, written);
    }

    #[test]
    fn records_larger_than_a_read_chunk_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = DiskLog::open(dir.path(), SHARD, options(1 << 20)).unwrap();
        let records: Vec<_> = (0..6)
            .map(|offset| {
                let len = if offset % 2 == 0 { 300 << 10 } else { 10 };
                record(0, offset, "big", vec![offset as u8; len], 5)
            })
            .collect();
        log.append(&records).unwrap();
        assert_eq!(read_all(&mut log), records);
        assert_eq!(log.read(3, 2, usize::MAX).unwrap(), records[3..5]);
        drop(log);
        let mut log = DiskLog::open(dir.path(), SHARD, options(1 << 20)).unwrap();
        assert_eq!(read_all(&mut log), records);
    }

    #[test]
    fn arrival_is_kept_to_the_millisecond() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = DiskLog::open(dir.path(), SHARD, options(1000)).unwrap();
        let mut precise = record(0, 0, "k", b"x".to_vec(), 0);
        precise.approximate_arrival = UNIX_EPOCH + Duration::from_micros(1_234_567_891);
        log.append(&[precise]).unwrap();
        let read = log.read(0, 1, 1).unwrap();
        assert_eq!(read[0].approximate_arrival, at_millis(1_234_567));
        assert_eq!(log.last_arrival(), Some(at_millis(1_234_567)));
    }

    #[test]
    fn each_reopened_run_that_writes_numbers_in_a_new_generation() {
        let dir = tempfile::tempdir().unwrap();
        let mut written = filled_log(dir.path(), 5, |offset| offset);
        assert!(written.iter().all(|record| {
            sequence::decode(&record.sequence_number)
                .is_some_and(|(_, position)| position.generation == 0)
        }));

        let mut log = DiskLog::open(dir.path(), SHARD, options(1000)).unwrap();
        // Before it writes, the log cannot know how far the last run numbered.
        assert!(log.was_issued(Position::new(0, 1_000)));
        assert!(!log.was_issued(Position::new(1, 0)));
        assert_eq!(log.generation_at(5), 0);
        let more = batch(&mut log, 3, |offset| offset);
        log.append(&more).unwrap();
        written.extend(more);
        assert_eq!(log.generation_at(4), 0);
        assert_eq!(log.generation_at(5), 1);
        assert_eq!(
            segment_files(dir.path()),
            [
                segment_path(dir.path(), 0, 0),
                segment_path(dir.path(), 5, 1)
            ]
        );
        assert!(log.was_issued(Position::new(0, 1_000)));
        assert!(log.was_issued(Position::new(1, 7)));
        assert!(!log.was_issued(Position::new(1, 8)));
        // A position names the first record at or after it.
        assert_eq!(log.seek(Position::new(0, 3)), 3);
        assert_eq!(log.seek(Position::new(0, 5)), 5);
        assert_eq!(log.seek(Position::new(0, 1_000)), 5);
        assert_eq!(log.seek(Position::new(1, 0)), 5);
        assert_eq!(log.seek(Position::new(1, 6)), 6);
        assert_eq!(log.seek(Position::new(1, 9)), 8);
        assert_eq!(log.seek(Position::new(2, 0)), 8);
        assert_eq!(read_all(&mut log), written);
        drop(log);

        // A run that only reads leaves the generation alone; one that writes begins the next,
        // even on an empty segment.
        drop(DiskLog::open(dir.path(), SHARD, options(1000)).unwrap());
        let mut log = DiskLog::open(dir.path(), SHARD, options(1000)).unwrap();
        assert_eq!(log.writing_generation().unwrap(), 2);
        drop(log);
        let mut log = DiskLog::open(dir.path(), SHARD, options(1000)).unwrap();
        let more = batch(&mut log, 2, |offset| offset);
        log.append(&more).unwrap();
        written.extend(more);
        assert_eq!(log.generation_at(8), 3);
        assert_eq!(log.seek(Position::new(2, 8)), 8);
        assert_eq!(read_all(&mut log), written);
        drop(log);
        let mut log = DiskLog::open(dir.path(), SHARD, options(1000)).unwrap();
        assert_eq!(read_all(&mut log), written);
        for (offset, record) in (0..).zip(&written) {
            let position = sequence::decode(&record.sequence_number).unwrap().1;
            assert_eq!(log.seek(position), offset);
            assert_eq!(log.generation_at(offset), position.generation);
        }
    }

    #[test]
    fn a_failed_fsync_poisons_the_log_until_it_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let disk = crate::SimulatedDisk::new();
        let options = DiskLogOptions {
            segment_bytes: 1000,
            file_sync: Arc::new(disk.clone()),
        };
        let mut log = DiskLog::open(dir.path(), SHARD, options.clone()).unwrap();
        let synced = batch(&mut log, 30, |offset| offset);
        log.append(&synced).unwrap();
        log.sync().unwrap();
        let unsynced = batch(&mut log, 30, |offset| offset);
        log.append(&unsynced).unwrap();
        assert_eq!(log.next_offset(), 60);

        disk.fail_next_syncs(1);
        assert!(matches!(log.sync(), Err(Error::LogPoisoned { .. })));
        assert_eq!(log.next_offset(), 30, "what no fsync covered is hidden");
        assert_eq!(read_all(&mut log), synced);
        assert_eq!(log.read(40, 10, usize::MAX).unwrap(), []);
        assert_eq!(log.seek(Position::new(0, 45)), 30);
        assert_eq!(log.offset_at_time(at_millis(45)).unwrap(), 30);
        assert!(matches!(log.sync(), Err(Error::LogPoisoned { .. })));
        assert!(matches!(
            log.writing_generation(),
            Err(Error::LogPoisoned { .. })
        ));
        let refused = batch_at(0, 30, 1);
        assert!(matches!(
            log.append(&refused),
            Err(Error::LogPoisoned { .. })
        ));
        drop(log);

        // Reopened, the log finds what the disk kept; its first write begins a new generation,
        // whose segment's name is fsynced first: a failure there numbers nothing.
        let mut log = DiskLog::open(dir.path(), SHARD, options.clone()).unwrap();
        assert_eq!(read_all(&mut log), [synced, unsynced].concat());
        log.sync().unwrap();
        disk.fail_next_syncs(1);
        assert!(matches!(
            log.writing_generation(),
            Err(Error::LogPoisoned { .. })
        ));
        assert_eq!(log.next_offset(), 60);
        drop(log);
        let mut log = DiskLog::open(dir.path(), SHARD, options).unwrap();
        let more = batch(&mut log, 5, |offset| offset);
        log.append(&more).unwrap();
        log.sync().unwrap();
        assert_eq!(log.next_offset(), 65);
    }

    #[test]
    fn reopening_finds_everything_and_continues_the_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let mut written = filled_log(dir.path(), 120, |offset| 50 + offset);

        let mut log = DiskLog::open(dir.path(), SHARD, options(1000)).unwrap();
        assert_eq!((log.first_offset(), log.next_offset()), (0, 120));
        assert_eq!(log.last_arrival(), Some(at_millis(169)));
        assert_eq!(read_all(&mut log), written);
        let more = batch(&mut log, 30, |offset| 50 + offset);
        log.append(&more).unwrap();
        written.extend(more);
        drop(log);

        let mut log = DiskLog::open(dir.path(), SHARD, options(1000)).unwrap();
        assert_eq!(log.next_offset(), 150);
        assert_eq!(read_all(&mut log), written);
        assert_eq!(log.read(77, 5, usize::MAX).unwrap(), written[77..82]);
    }

    /// Damages the end of the newest segment with `damage`, then checks that opening keeps the
    /// first `kept` records, cuts the file to `valid_len`, appends after them and reopens.
    fn recovers_from_a_torn_tail(damage: impl FnOnce(&Path, &[u8]) -> Vec<u8>, lost: u64) {
        let dir = tempfile::tempdir().unwrap();
        let written = filled_log(dir.path(), 60, |offset| offset);
        let files = segment_files(dir.path());
        assert!(files.len() > 2);
        let last = files.last().unwrap();
        let original = fs::read(last).unwrap();
        let damaged = damage(last, &original);
        fs::write(last, &damaged).unwrap();

        let kept = 60 - lost;
        let mut log = DiskLog::open(dir.path(), SHARD, options(1000)).unwrap();
        assert_eq!(log.next_offset(), kept);
        assert_eq!(read_all(&mut log), written[..kept as usize]);
        let valid_len = fs::metadata(last).unwrap().len();
        assert!(valid_len < damaged.len() as u64, "the tail was cut off");
        assert_eq!(
            &damaged[..valid_len as usize],
            &original[..valid_len as usize]
        );

        let more = batch(&mut log, 5, |offset| offset);
        log.append(&more).unwrap();
        log.sync().unwrap();
        drop(log);
        let mut expected = written[..kept as usize].to_vec();
        expected.extend(more);
        let mut log = DiskLog::open(dir.path(), SHARD, options(1000)).unwrap();
        assert_eq!(log.next_offset(), kept + 5);
        assert_eq!(read_all(&mut log), expected);
    }

    #[test]
    fn garbage_after_the_last_frame_is_cut_off() {
        recovers_from_a_torn_tail(
            |_, original| {
                let mut bytes = original.to_vec();
                bytes.extend_from_slice(b"\xde\xad\xbe\xef not a frame at all");
                bytes
            },
            0,
        );
    }

    #[test]
    fn a_partial_last_frame_is_cut_off() {
        for keep in [3, frame::HEADER_LEN + 5] {
            recovers_from_a_torn_tail(
                |_, original| {
                    let mut bytes = original.to_vec();
                    let mut next = Vec::new();
                    frame::encode(&mut next, 60, 60, b"key-0", &[9; 40]).unwrap();
                    bytes.extend_from_slice(&next[..keep]);
                    bytes
                },
                0,
            );
        }
    }

    #[test]
    fn a_last_frame_with_a_flipped_byte_is_cut_off() {
        recovers_from_a_torn_tail(
            |_, original| {
                let mut bytes = original.to_vec();
                if let Some(last) = bytes.last_mut() {
                    *last ^= 0x01;
                }
                bytes
            },
            1,
        );
    }

    #[test]
    fn damage_to_a_sealed_segment_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        filled_log(dir.path(), 60, |offset| offset);
        let first = segment_path(dir.path(), 0, 0);
        let mut bytes = fs::read(&first).unwrap();
        bytes[30] ^= 0x10;
        fs::write(&first, &bytes).unwrap();
        let error = DiskLog::open(dir.path(), SHARD, options(1000)).unwrap_err();
        assert!(matches!(error, Error::Corrupt { path, .. } if path == first));

        bytes[30] ^= 0x10;
        fs::write(&first, &bytes[..bytes.len() - 4]).unwrap();
        let error = DiskLog::open(dir.path(), SHARD, options(1000)).unwrap_err();
        assert!(matches!(error, Error::Corrupt { path, .. } if path == first));
    }

    #[test]
    fn damage_before_the_last_frame_of_the_active_segment_is_corruption() {
        type Damage = fn(&mut Vec<u8>, usize);
        let damages: [(&str, Damage); 4] = [
            ("a flipped data byte", |bytes, frame| {
                bytes[frame + frame::HEADER_LEN + 20] ^= 0x01
            }),
            ("a length beyond any frame", |bytes, frame| {
                bytes[frame + 3] = 0xff
            }),
            ("a length one byte short", |bytes, frame| bytes[frame] -= 1),
            ("zeroed header", |bytes, frame| {
                bytes[frame..frame + frame::HEADER_LEN].fill(0)
            }),
        ];
        for (what, damage) in damages {
            for damaged_frame in [0, 4, 8] {
                let dir = tempfile::tempdir().unwrap();
                let mut log = DiskLog::open(dir.path(), SHARD, options(1 << 20)).unwrap();
                let records = batch(&mut log, 10, |offset| offset);
                log.append(&records).unwrap();
                log.sync().unwrap();
                drop(log);
                let path = segment_path(dir.path(), 0, 0);
                let mut bytes = fs::read(&path).unwrap();
                let frame = records[..damaged_frame]
                    .iter()
                    .map(|r| frame::frame_len(r.partition_key.as_str().len(), r.data.len()))
                    .sum();
                damage(&mut bytes, frame);
                fs::write(&path, &bytes).unwrap();

                let error = DiskLog::open(dir.path(), SHARD, options(1 << 20)).unwrap_err();
                assert!(
                    matches!(&error, Error::Corrupt { path: at, reason }
                        if *at == path && reason.contains("shardId-000000000003")),
                    "{what} in frame {damaged_frame}: {error:?}"
                );
                assert_eq!(fs::read(&path).unwrap(), bytes, "{what}: nothing was cut");
            }
        }
    }

    #[test]
    fn a_missing_segment_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        filled_log(dir.path(), 60, |offset| offset);
        let files = segment_files(dir.path());
        fs::remove_file(&files[1]).unwrap();
        let error = DiskLog::open(dir.path(), SHARD, options(1000)).unwrap_err();
        assert!(matches!(error, Error::Corrupt { path, .. } if path == files[2]));
    }

    #[test]
    fn offset_at_time_finds_the_first_record_at_or_after() {
        // Small segments, and one big segment where the sparse index is used.
        for (segment_bytes, count) in [(600, 200), (1 << 30, 5000)] {
            let dir = tempfile::tempdir().unwrap();
            let mut log = DiskLog::open(dir.path(), SHARD, options(segment_bytes)).unwrap();
            // Three records per millisecond: 1000, 1000, 1000, 1001, ...
            let arrival = |offset: u64| 1_000 + offset / 3;
            while log.next_offset() < count {
                let records = batch(&mut log, 50, arrival);
                log.append(&records).unwrap();
            }
            assert_eq!(log.offset_at_time(UNIX_EPOCH).unwrap(), 0);
            for offset in (0..count).step_by(7) {
                let first_of_its_milli = offset - offset % 3;
                let at = at_millis(arrival(offset));
                assert_eq!(log.offset_at_time(at).unwrap(), first_of_its_milli);
                // Just after that millisecond began: the next millisecond's first record.
                let after = at + Duration::from_micros(1);
                let expected = (first_of_its_milli + 3).min(count);
                assert_eq!(log.offset_at_time(after).unwrap(), expected);
            }
            let past_the_end = at_millis(arrival(count - 1) + 1);
            assert_eq!(log.offset_at_time(past_the_end).unwrap(), count);

            // A read from the offset found starts there.
            let found = log.offset_at_time(at_millis(1_050)).unwrap();
            let read = log.read(found, 1, usize::MAX).unwrap();
            assert_eq!(read[0].approximate_arrival, at_millis(1_050));
            assert_eq!(found, 150);
        }
    }

    #[test]
    fn trimming_deletes_whole_old_segments_only() {
        let dir = tempfile::tempdir().unwrap();
        let written = filled_log(dir.path(), 120, |offset| 1_000 + offset);
        let mut log = DiskLog::open(dir.path(), SHARD, options(1000)).unwrap();
        let files = segment_files(dir.path());

        log.trim_before(at_millis(500)).unwrap();
        assert_eq!(segment_files(dir.path()), files, "nothing arrived before");

        log.trim_before(at_millis(1_037)).unwrap();
        let first = log.first_offset();
        assert!(first > 0 && first <= 37, "first offset {first}");
        assert_eq!(
            segment_files(dir.path())[0],
            segment_path(dir.path(), first, 0)
        );
        assert_eq!(read_all(&mut log), written[first as usize..]);
        assert_eq!(log.offset_at_time(at_millis(1_037)).unwrap(), 37);
        assert_eq!(log.offset_at_time(UNIX_EPOCH).unwrap(), first);
        // A read from before the first retained record starts at it, as in memory.
        assert_eq!(
            log.read(0, 1, usize::MAX).unwrap(),
            written[first as usize..=first as usize]
        );

        // Everything is old now, but the active segment stays.
        log.trim_before(at_millis(1_000_000)).unwrap();
        let active_base = log.active.segment.base_offset();
        assert_eq!(
            segment_files(dir.path()),
            vec![segment_path(dir.path(), active_base, 0)]
        );
        assert_eq!(log.first_offset(), active_base);
        assert_eq!(log.next_offset(), 120);
        assert_eq!(read_all(&mut log), written[active_base as usize..]);
        assert_eq!(log.last_arrival(), Some(at_millis(1_119)));

        let more = batch(&mut log, 40, |offset| 1_000 + offset);
        log.append(&more).unwrap();
        log.sync().unwrap();
        drop(log);

        let mut expected = written[active_base as usize..].to_vec();
        expected.extend(more);
        let mut log = DiskLog::open(dir.path(), SHARD, options(1000)).unwrap();
        assert_eq!((log.first_offset(), log.next_offset()), (active_base, 160));
        assert_eq!(read_all(&mut log), expected);
    }

    #[test]
    fn trimming_keeps_the_newest_record_when_the_active_segment_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = DiskLog::open(dir.path(), SHARD, options(1)).unwrap();
        for _ in 0..3 {
            let records = batch(&mut log, 1, |offset| 10 + offset);
            log.append(&records).unwrap();
        }
        drop(log);
        // The newest segment holds one record; tearing it leaves that segment empty.
        let last = segment_path(dir.path(), 2, 0);
        let bytes = fs::read(&last).unwrap();
        fs::write(&last, &bytes[..bytes.len() - 1]).unwrap();

        let mut log = DiskLog::open(dir.path(), SHARD, options(1)).unwrap();
        assert_eq!(log.next_offset(), 2);
        assert_eq!(log.last_arrival(), Some(at_millis(11)));
        log.trim_before(at_millis(1_000)).unwrap();
        assert_eq!(log.first_offset(), 1);
        drop(log);

        let mut log = DiskLog::open(dir.path(), SHARD, options(1)).unwrap();
        assert_eq!(log.last_arrival(), Some(at_millis(11)));
        assert_eq!(read_all(&mut log).len(), 1);
    }
}
