//! What opening a shard's log finds on disk, and the repair of a torn tail after a crash.
//!
//! Sealed segments were fsynced as they were sealed, so any damage in them is corruption. The
//! newest segment may end in a frame a crash cut short (or, after a machine crash, in pages that
//! never reached the disk); it is cut back to its last whole frame, which loses only records
//! that were never fsynced.

use std::fs::{self, File, OpenOptions};
use std::path::Path;

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
pub(super) fn recover(dir: &Path, file_sync: &dyn FileSync) -> Result<Recovered, Error> {
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
    let (active, active_file) = recover_active(dir, active_name, previous, file_sync)?;
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
        Some(Tear { position, reason }) => Err(corrupt(
            &path,
            format!("{reason} at byte {position} of a sealed segment"),
        )),
    }
}

/// Scans the newest segment and cuts off a torn tail, durably, before appends follow it.
fn recover_active(
    dir: &Path,
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
    if let Some(Tear { position, reason }) = tear {
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
                return Ok((segment, Some(Tear { position, reason })));
            }
        }
    }
}
