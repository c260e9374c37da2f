//! What opening a shard's log finds on disk, and the repair of a torn tail after a crash.
//!
//! Sealed segments were fsynced as they were sealed, so any damage in them is corruption. The
//! newest segment may end in a frame a crash cut short (or, after a machine crash, in pages that
//! never reached the disk); it is cut back to its last whole frame, which loses only records
//! that were never fsynced. But when a whole frame of the log still follows the bad bytes, they
//! are no torn tail: cutting there would silently drop records that were written whole, and
//! perhaps fsynced and acknowledged, so that is corruption too, left for an operator to judge.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use kcl_core::ShardId;

use super::frame::{self, CLAIM_LEN, Decoded, MIN_FRAME_LEN};
use super::segment::{
    FrameScanner, Scan, Segment, corrupt, create_segment_file, parse_segment_name, segment_path,
};
use crate::Error;
use crate::file_sync::FileSync;
use crate::sequence::{MAX_GENERATION, OFFSET_LIMIT};

/// The segments of a log directory after recovery.
pub(super) struct Recovered {
    /// Sealed segments, oldest first, with contiguous offsets.
    pub(super) sealed: Vec<Segment>,
    /// The newest segment, which appends continue.
    pub(super) active: Segment,
    /// The newest segment's file, open for reading and writing.
    pub(super) active_file: File,
    /// Whether a first segment file was created, whose name the directory has yet to fsync.
    pub(super) created: bool,
}

/// Finds the segments in `dir` (an existing directory), checking every frame and cutting off a
/// torn tail of the newest; an empty directory gets a first segment starting at offset 0.
pub(super) fn recover(
    dir: &Path,
    shard_index: u64,
    file_sync: &dyn FileSync,
) -> Result<Recovered, Error> {
    let names = segment_names(dir)?;
    let Some((&active_name, sealed_names)) = names.split_last() else {
        let active = Segment::new(0, 0);
        return Ok(Recovered {
            active_file: create_segment_file(&active.path(dir))?,
            sealed: Vec::new(),
            active,
            created: true,
        });
    };
    let mut sealed = Vec::with_capacity(sealed_names.len());
    let mut previous = None;
    for &name in sealed_names {
        let segment = recover_sealed(dir, name, previous)?;
        previous = Some((segment.next_offset(), segment.generation()));
        sealed.push(segment);
    }
    let (active, active_file) = recover_active(dir, shard_index, active_name, previous, file_sync)?;
    Ok(Recovered {
        sealed,
        active,
        active_file,
        created: false,
    })
}

/// The base offsets and generations the segment files in `dir` are named by, in order. Other
/// files are left alone.
fn segment_names(dir: &Path) -> Result<Vec<(u64, u32)>, Error> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|error| Error::io(dir, error))? {
        let entry = entry.map_err(|error| Error::io(dir, error))?;
        if let Some(name) = entry.file_name().to_str().and_then(parse_segment_name) {
            names.push(name);
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// `Corrupt` unless a segment named `(base, generation)` continues where the previous one
/// ended, `previous` being that one's next offset and generation: offsets are contiguous and
/// generations never go back.
fn check_name(
    path: &Path,
    (base, generation): (u64, u32),
    previous: Option<(u64, u32)>,
) -> Result<(), Error> {
    if base >= OFFSET_LIMIT || generation > MAX_GENERATION {
        return Err(corrupt(
            path,
            "segment name is past the last offset or generation a shard can have".to_string(),
        ));
    }
    match previous {
        Some((end, _)) if end != base => Err(corrupt(
            path,
            format!("segment starts at offset {base}, but the previous one ends at {end}"),
        )),
        Some((_, previous)) if previous > generation => Err(corrupt(
            path,
            format!("segment of generation {generation} follows one of generation {previous}"),
        )),
        _ => Ok(()),
    }
}

/// Scans a sealed segment: every frame must be whole and valid.
fn recover_sealed(
    dir: &Path,
    name: (u64, u32),
    previous: Option<(u64, u32)>,
) -> Result<Segment, Error> {
    let path = segment_path(dir, name.0, name.1);
    check_name(&path, name, previous)?;
    let file = File::open(&path).map_err(|error| Error::io(&path, error))?;
    let (segment, tear) = scan_segment(&file, name, &path)?;
    match tear {
        None => Ok(segment),
        Some(Tear {
            position, reason, ..
        }) => Err(corrupt(
            &path,
            format!("{reason} at byte {position} of a sealed segment"),
        )),
    }
}

/// Scans the newest segment and cuts off a torn tail, durably, before appends follow it; damage
/// that whole frames follow is corruption.
fn recover_active(
    dir: &Path,
    shard_index: u64,
    name: (u64, u32),
    previous: Option<(u64, u32)>,
    file_sync: &dyn FileSync,
) -> Result<(Segment, File), Error> {
    let path = segment_path(dir, name.0, name.1);
    check_name(&path, name, previous)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|error| Error::io(&path, error))?;
    let (segment, tear) = scan_segment(&file, name, &path)?;
    if let Some(Tear {
        position,
        reason,
        file_len,
    }) = tear
    {
        let expected = segment.next_offset();
        let after = whole_frame_after(&file, position, file_len, expected)
            .map_err(|error| Error::io(&path, error))?;
        if let Some((at, offset)) = after {
            return Err(corrupt(
                &path,
                format!(
                    "shard {}: {reason} at byte {position} of the newest segment, but a whole \
                     frame (offset {offset}) follows at byte {at}; cutting the segment there \
                     would lose records written after the damage",
                    ShardId::from_index(shard_index)
                ),
            ));
        }
        tracing::warn!(
            path = %path.display(),
            position,
            reason,
            "cutting off a torn tail of the log, left by a crash during a write"
        );
        file.set_len(position)
            .and_then(|()| file_sync.sync_data(&file, &path))
            .map_err(|error| Error::io(&path, error))?;
    }
    Ok((segment, file))
}

/// Where the valid frames of a segment file stop short of its end, and why.
struct Tear {
    position: u64,
    reason: &'static str,
    /// The length of the file.
    file_len: u64,
}

/// The first whole frame of the log after the bad bytes at `from` (before `end`): its byte
/// position and offset, which is at least `expected`. The damaged frame's length cannot be
/// trusted, so every byte position is tried; a candidate is read whole only when its header
/// claims an offset the rest of the file could reach, so a long tail of garbage costs one read
/// per window.
fn whole_frame_after(
    file: &File,
    from: u64,
    end: u64,
    expected: u64,
) -> io::Result<Option<(u64, u64)>> {
    const WINDOW: u64 = 256 << 10;
    let reachable = expected.saturating_add((end - from) / MIN_FRAME_LEN as u64);
    let mut buf = Vec::new();
    let mut candidate = Vec::new();
    let mut start = from + 1;
    while start < end {
        let window = WINDOW.min(end - start);
        // A claim starting near the window's end reads on into the next window.
        let len = (window + CLAIM_LEN as u64).min(end - start);
        buf.resize(usize::try_from(len).unwrap_or(usize::MAX), 0);
        file.read_exact_at(&mut buf, start)?;
        for at in 0..usize::try_from(window).unwrap_or(usize::MAX) {
            let Some((frame_len, offset)) = buf.get(at..).and_then(frame::claimed) else {
                continue;
            };
            let position = start + at as u64;
            if !(expected..=reachable).contains(&offset) || position + frame_len as u64 > end {
                continue;
            }
            candidate.resize(frame_len, 0);
            file.read_exact_at(&mut candidate, position)?;
            if let Decoded::Frame(_) = frame::decode(&candidate) {
                return Ok(Some((position, offset)));
            }
        }
        start += window;
    }
    Ok(None)
}

/// Reads every frame of a segment file named `(base, generation)`, checking that offsets run on
/// from `base`. Returns what the valid frames say, and the tear after them if they do not reach
/// the end of the file.
fn scan_segment(
    file: &File,
    (base, generation): (u64, u32),
    path: &Path,
) -> Result<(Segment, Option<Tear>), Error> {
    let file_len = file
        .metadata()
        .map_err(|error| Error::io(path, error))?
        .len();
    let mut segment = Segment::new(base, generation);
    let mut scanner = FrameScanner::new(file, 0, file_len);
    loop {
        match scanner
            .next_frame()
            .map_err(|error| Error::io(path, error))?
        {
            Scan::Frame(frame) => {
                // A whole frame with a valid CRC but the wrong offset is no torn write.
                frame.check_offset(segment.next_offset(), || path.to_path_buf())?;
                segment.push(frame.position, frame.arrival_ms, frame.len);
            }
            Scan::End => return Ok((segment, None)),
            Scan::Torn { position, reason } => {
                return Ok((
                    segment,
                    Some(Tear {
                        position,
                        reason,
                        file_len,
                    }),
                ));
            }
        }
    }
}
