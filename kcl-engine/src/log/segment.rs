//! One segment file: its name, what is remembered about it, and reading its frames.
//!
//! A segment holds the frames of a contiguous run of offsets, all numbered in one generation
//! (see [`crate::sequence`]), and is named by the first offset and the generation. Its records
//! stay on disk; memory holds only a few numbers per segment and a sparse index
//! with one entry per [`INDEX_EVERY_RECORDS`] records or [`INDEX_EVERY_BYTES`] bytes, so memory
//! does not grow with the data.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::frame::{self, Decoded, FrameInfo};
use crate::Error;
use crate::sequence::OFFSET_LIMIT;

/// The file extension of segment files.
const EXTENSION: &str = "log";

/// Digits of the base offset in a segment's name: enough for any `u64`, zero-padded so that
/// names sort like their offsets.
const NAME_DIGITS: usize = 20;

/// Digits of the generation in a segment's name: enough for [`crate::sequence::MAX_GENERATION`].
const GENERATION_DIGITS: usize = 6;

/// A sparse index entry is added after at most this many records...
const INDEX_EVERY_RECORDS: u64 = 1024;

/// ...or this many bytes of frames, whichever comes first.
const INDEX_EVERY_BYTES: u64 = 64 << 10;

/// Bytes read from a segment at a time, so that scanning costs one syscall per many records.
const READ_CHUNK: usize = 256 << 10;

/// The path of the segment whose first record has offset `base_offset`, in `generation`. Names
/// in generation 0 carry no generation, as every segment was named before generations existed.
pub(super) fn segment_path(dir: &Path, base_offset: u64, generation: u32) -> PathBuf {
    if generation == 0 {
        return dir.join(format!("{base_offset:0NAME_DIGITS$}.{EXTENSION}"));
    }
    dir.join(format!(
        "{base_offset:0NAME_DIGITS$}-{generation:0GENERATION_DIGITS$}.{EXTENSION}"
    ))
}

/// The base offset and generation a segment file name spells (as [`segment_path`] spells
/// them), `None` for any other file.
pub(super) fn parse_segment_name(name: &str) -> Option<(u64, u32)> {
    let stem = name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    let (base, generation) = match stem.split_once('-') {
        Some((base, generation)) => (base, Some(generation)),
        None => (stem, None),
    };
    let digits_only = |text: &str, len: usize| {
        text.len() == len && text.bytes().all(|byte| byte.is_ascii_digit())
    };
    if !digits_only(base, NAME_DIGITS) {
        return None;
    }
    let generation =
        match generation {
            Some(generation) if digits_only(generation, GENERATION_DIGITS) => generation
                .parse()
                .ok()
                .filter(|&generation| generation > 0)?,
            Some(_) => return None,
            None => 0,
        };
    Some((base.parse().ok()?, generation))
}

/// Creates a new, empty segment file, open for reading and writing.
pub(super) fn create_segment_file(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|error| Error::io(path, error))
}

/// The error for a segment file holding what no writer of ours wrote.
pub(super) fn corrupt(path: impl Into<PathBuf>, reason: String) -> Error {
    Error::Corrupt {
        path: path.into(),
        reason,
    }
}

/// A point in a segment a scan can start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IndexEntry {
    /// The offset of the record whose frame starts at `position`.
    offset: u64,
    /// Byte position of that frame in the file.
    position: u64,
    /// The latest arrival among the segment's records before `offset`. A running maximum, so
    /// that it never decreases along the index and a binary search by time stays correct even
    /// if arrival times do not.
    max_arrival_before_ms: u64,
}

/// What is remembered about one segment: O(1) numbers plus the sparse index.
#[derive(Debug)]
pub(super) struct Segment {
    base_offset: u64,
    generation: u32,
    next_offset: u64,
    /// Bytes of valid frames; appends go here.
    len: u64,
    last_arrival_ms: Option<u64>,
    max_arrival_ms: Option<u64>,
    index: Vec<IndexEntry>,
    records_since_entry: u64,
    bytes_since_entry: u64,
}

impl Segment {
    /// An empty segment whose first record will get `base_offset`, numbered in `generation`.
    pub(super) fn new(base_offset: u64, generation: u32) -> Self {
        Segment {
            base_offset,
            generation,
            next_offset: base_offset,
            len: 0,
            last_arrival_ms: None,
            max_arrival_ms: None,
            index: Vec::new(),
            records_since_entry: 0,
            bytes_since_entry: 0,
        }
    }

    /// The offset of the segment's first record (its name).
    pub(super) fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// The generation the segment's records are numbered in.
    pub(super) fn generation(&self) -> u32 {
        self.generation
    }

    /// The path of the segment's file in the log directory `dir`.
    pub(super) fn path(&self, dir: &Path) -> PathBuf {
        segment_path(dir, self.base_offset, self.generation)
    }

    /// The offset the record after the segment's last gets.
    pub(super) fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Whether the segment holds no record.
    pub(super) fn is_empty(&self) -> bool {
        self.next_offset == self.base_offset
    }

    /// Bytes of valid frames in the file.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// When the segment's last record arrived.
    pub(super) fn last_arrival_ms(&self) -> Option<u64> {
        self.last_arrival_ms
    }

    /// The latest arrival of any of the segment's records.
    pub(super) fn max_arrival_ms(&self) -> Option<u64> {
        self.max_arrival_ms
    }

    /// Notes that the record `offset` (the segment's next) was written at `position` in a frame
    /// of `frame_len` bytes. Called in offset order, on append and when scanning at open.
    pub(super) fn push(&mut self, position: u64, arrival_ms: u64, frame_len: u64) {
        if let Some(max_before) = self.max_arrival_ms
            && (self.records_since_entry >= INDEX_EVERY_RECORDS
                || self.bytes_since_entry >= INDEX_EVERY_BYTES)
        {
            self.index.push(IndexEntry {
                offset: self.next_offset,
                position,
                max_arrival_before_ms: max_before,
            });
            self.records_since_entry = 0;
            self.bytes_since_entry = 0;
        }
        self.records_since_entry += 1;
        self.bytes_since_entry += frame_len;
        self.next_offset += 1;
        self.len = position + frame_len;
        self.last_arrival_ms = Some(arrival_ms);
        self.max_arrival_ms = Some(
            self.max_arrival_ms
                .map_or(arrival_ms, |m| m.max(arrival_ms)),
        );
    }

    /// The latest indexed point at or before `offset`: where a scan for it starts, as
    /// `(offset, byte position)`.
    pub(super) fn seek_offset(&self, offset: u64) -> (u64, u64) {
        let after = self.index.partition_point(|entry| entry.offset <= offset);
        self.start_of(after)
    }

    /// The latest indexed point before which no record arrived at or after `arrival_ms`: where a
    /// scan for the first such record starts, as `(offset, byte position)`.
    pub(super) fn seek_arrival(&self, arrival_ms: u64) -> (u64, u64) {
        let after = self
            .index
            .partition_point(|entry| entry.max_arrival_before_ms < arrival_ms);
        self.start_of(after)
    }

    /// The point of the index entry before `after` (the segment's start when there is none).
    fn start_of(&self, after: usize) -> (u64, u64) {
        after
            .checked_sub(1)
            .and_then(|i| self.index.get(i))
            .map_or((self.base_offset, 0), |entry| {
                (entry.offset, entry.position)
            })
    }
}

/// One frame read by a [`FrameScanner`], borrowing the scanner's buffer.
#[derive(Debug)]
pub(super) struct ScannedFrame<'a> {
    /// Byte position of the frame in the file.
    pub(super) position: u64,
    /// Bytes the frame takes.
    pub(super) len: u64,
    /// The record's offset.
    pub(super) offset: u64,
    /// The record's arrival, milliseconds since the Unix epoch.
    pub(super) arrival_ms: u64,
    /// The partition key's bytes (not yet checked to be UTF-8).
    pub(super) key: &'a [u8],
    /// The record's data.
    pub(super) data: &'a [u8],
}

impl ScannedFrame<'_> {
    /// `Corrupt` (naming the file `path` returns) unless the frame holds the `expected`
    /// offset: the offsets of a shard are contiguous.
    pub(super) fn check_offset(
        &self,
        expected: u64,
        path: impl FnOnce() -> PathBuf,
    ) -> Result<(), Error> {
        if self.offset >= OFFSET_LIMIT {
            // No sequence number can name it, so no log of ours holds it.
            return Err(corrupt(
                path(),
                format!(
                    "frame at byte {} holds offset {}, past the last a shard can have",
                    self.position, self.offset
                ),
            ));
        }
        if self.offset == expected {
            return Ok(());
        }
        Err(corrupt(
            path(),
            format!(
                "frame at byte {} holds offset {}, expected {expected}",
                self.position, self.offset
            ),
        ))
    }
}

/// What a [`FrameScanner`] found next.
#[derive(Debug)]
pub(super) enum Scan<'a> {
    /// A whole frame with a matching CRC.
    Frame(ScannedFrame<'a>),
    /// The scan reached its end exactly at a frame boundary.
    End,
    /// The bytes at `position` are not a whole valid frame: a torn write, or damage.
    Torn {
        /// Where the bad bytes start; everything before is valid frames.
        position: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Reads the frames of a file from a position up to an end, verifying each CRC, with positioned
/// reads of [`READ_CHUNK`] bytes so that a scan costs one syscall per many records.
pub(super) struct FrameScanner<'f> {
    file: &'f File,
    /// File bytes `[buf_position, buf_position + buf.len())`.
    buf: Vec<u8>,
    buf_position: u64,
    /// Index in `buf` of the next frame.
    at: usize,
    end: u64,
}

impl<'f> FrameScanner<'f> {
    /// A scan of `file` from `position`, which must be a frame boundary, to `end`.
    pub(super) fn new(file: &'f File, position: u64, end: u64) -> Self {
        FrameScanner {
            file,
            buf: Vec::new(),
            buf_position: position,
            at: 0,
            end,
        }
    }

    /// The position of the next frame.
    pub(super) fn position(&self) -> u64 {
        self.buf_position + self.at as u64
    }

    /// The next frame, or where the valid frames end.
    pub(super) fn next_frame(&mut self) -> io::Result<Scan<'_>> {
        let info = loop {
            let position = self.position();
            if position >= self.end {
                return Ok(Scan::End);
            }
            let unread = self.buf.get(self.at..).unwrap_or_default();
            match frame::decode(unread) {
                Decoded::Frame(info) => break info,
                Decoded::Invalid(reason) => return Ok(Scan::Torn { position, reason }),
                Decoded::Incomplete { needed } => {
                    let left_in_file = self.end - position;
                    if needed as u64 > left_in_file {
                        return Ok(Scan::Torn {
                            position,
                            reason: "frame runs past the end of the segment",
                        });
                    }
                    if !self.refill(needed)? {
                        return Ok(Scan::Torn {
                            position,
                            reason: "file is shorter than expected",
                        });
                    }
                }
            }
        };
        let FrameInfo {
            len,
            offset,
            arrival_ms,
            key,
            data,
        } = info;
        let position = self.position();
        let frame = self.buf.get(self.at..self.at + len).unwrap_or_default();
        self.at += len;
        Ok(Scan::Frame(ScannedFrame {
            position,
            len: len as u64,
            offset,
            arrival_ms,
            key: frame.get(key).unwrap_or_default(),
            data: frame.get(data).unwrap_or_default(),
        }))
    }

    /// Moves the unread bytes to the buffer's start and reads after them until at least
    /// `needed` bytes are unread (a whole chunk when the file has it). `false` when the file
    /// ended first.
    fn refill(&mut self, needed: usize) -> io::Result<bool> {
        let position = self.position();
        self.buf.drain(..self.at.min(self.buf.len()));
        self.buf_position = position;
        self.at = 0;
        let have = self.buf.len();
        let left_in_file = usize::try_from(self.end - position).unwrap_or(usize::MAX);
        let want = needed.max(READ_CHUNK).min(left_in_file);
        if want <= have {
            return Ok(have >= needed);
        }
        self.buf.resize(want, 0);
        let read = read_at_most(self.file, &mut self.buf[have..], position + have as u64)?;
        self.buf.truncate(have + read);
        Ok(self.buf.len() >= needed)
    }
}

/// The frames of a retained segment from a known frame on. These were whole when written, so a
/// tear, a gap in the offsets or an early end is corruption here.
pub(super) struct SegmentFrames<'a> {
    scanner: FrameScanner<'a>,
    dir: &'a Path,
    segment: &'a Segment,
    expected: u64,
}

impl<'a> SegmentFrames<'a> {
    /// Frames of `segment` from the one for `offset` at byte `position`.
    pub(super) fn new(
        dir: &'a Path,
        segment: &'a Segment,
        file: &'a File,
        offset: u64,
        position: u64,
    ) -> Self {
        SegmentFrames {
            scanner: FrameScanner::new(file, position, segment.len()),
            dir,
            segment,
            expected: offset,
        }
    }

    /// The next frame, `None` at the end of the segment.
    pub(super) fn next(&mut self) -> Result<Option<ScannedFrame<'_>>, Error> {
        let path = || self.segment.path(self.dir);
        match self
            .scanner
            .next_frame()
            .map_err(|error| Error::io(path(), error))?
        {
            Scan::Frame(frame) => {
                frame.check_offset(self.expected, path)?;
                self.expected += 1;
                Ok(Some(frame))
            }
            Scan::End if self.expected == self.segment.next_offset() => Ok(None),
            Scan::End => Err(corrupt(
                path(),
                format!(
                    "frames end at offset {}, not {} as written",
                    self.expected,
                    self.segment.next_offset()
                ),
            )),
            Scan::Torn { position, reason } => {
                Err(corrupt(path(), format!("{reason} at byte {position}")))
            }
        }
    }
}

/// Fills `buf` from `position` with positioned reads, stopping early only at the end of the
/// file; returns how many bytes were read.
fn read_at_most(file: &File, buf: &mut [u8], position: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], position + filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn names_sort_like_offsets_and_parse_back() {
        let dir = Path::new("/shard");
        let path = segment_path(dir, 42, 7);
        assert_eq!(path, Path::new("/shard/00000000000000000042-000007.log"));
        let name = path.file_name().and_then(|n| n.to_str()).unwrap();
        assert_eq!(parse_segment_name(name), Some((42, 7)));
        let max = segment_path(dir, u64::MAX, 999_999);
        let name = max.file_name().and_then(|n| n.to_str()).unwrap();
        assert_eq!(parse_segment_name(name), Some((u64::MAX, 999_999)));
        assert!(segment_path(dir, 9, 3) < segment_path(dir, 10, 0));
        assert!(segment_path(dir, 10, 2) < segment_path(dir, 10, 10));
        // Generation 0 is named as every segment was before generations existed.
        let zero = segment_path(dir, 42, 0);
        assert_eq!(zero, Path::new("/shard/00000000000000000042.log"));
        let name = zero.file_name().and_then(|n| n.to_str()).unwrap();
        assert_eq!(parse_segment_name(name), Some((42, 0)));
        for other in [
            "42.log",
            "0000000000000000004a.log",
            "00000000000000000042.tmp",
            "00000000000000000042-000000.log",
            "00000000000000000042-7.log",
            "00000000000000000042-00000a.log",
            "00000000000000000042-000007-000001.log",
            "x",
        ] {
            assert_eq!(parse_segment_name(other), None, "{other}");
        }
    }

    #[test]
    fn index_points_at_or_before_what_is_sought() {
        let mut segment = Segment::new(100, 0);
        let mut position = 0;
        for i in 0..5000u64 {
            segment.push(position, 1000 + i / 10, 100);
            position += 100;
        }
        assert_eq!(segment.next_offset(), 5100);
        assert_eq!(segment.len(), 500_000);
        assert!(!segment.index.is_empty());
        assert_eq!(segment.seek_offset(100), (100, 0));
        for sought in [100, 101, 1123, 3000, 5099] {
            let (offset, position) = segment.seek_offset(sought);
            assert!(offset <= sought && sought - offset <= INDEX_EVERY_RECORDS);
            assert_eq!(position, (offset - 100) * 100);
        }
        for arrival in [0, 1000, 1050, 1499] {
            let (offset, _) = segment.seek_arrival(arrival);
            let first_at_or_after = 100 + (arrival.max(1000) - 1000) * 10;
            assert!(offset <= first_at_or_after, "{arrival}");
            assert!(
                first_at_or_after - offset <= INDEX_EVERY_RECORDS,
                "{arrival}"
            );
        }
    }

    #[test]
    fn scanner_reads_frames_across_chunks_and_stops_at_a_tear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        let mut bytes = Vec::new();
        let big = vec![7u8; READ_CHUNK + 1000];
        for offset in 0..3000u64 {
            let data: &[u8] = if offset == 1500 { &big } else { b"0123456789" };
            frame::encode(&mut bytes, offset, offset, b"key", data).unwrap();
        }
        let valid = bytes.len() as u64;
        bytes.extend_from_slice(&[1, 2, 3]);
        File::create(&path).unwrap().write_all(&bytes).unwrap();

        let file = File::open(&path).unwrap();
        let mut scanner = FrameScanner::new(&file, 0, bytes.len() as u64);
        let mut expected = 0;
        loop {
            match scanner.next_frame().unwrap() {
                Scan::Frame(frame) => {
                    assert_eq!(frame.offset, expected);
                    assert_eq!(frame.key, b"key");
                    assert_eq!(
                        frame.data.len(),
                        if expected == 1500 { big.len() } else { 10 }
                    );
                    expected += 1;
                }
                Scan::Torn { position, .. } => {
                    assert_eq!(position, valid);
                    break;
                }
                Scan::End => panic!("the garbage tail was not noticed"),
            }
        }
        assert_eq!(expected, 3000);

        let mut bounded = FrameScanner::new(&file, 0, valid);
        let mut count = 0;
        while let Scan::Frame(_) = bounded.next_frame().unwrap() {
            count += 1;
        }
        assert_eq!(count, 3000);
        assert_eq!(bounded.position(), valid);
    }
}
