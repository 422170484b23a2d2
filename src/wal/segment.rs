//! Segment files: their names, the index of the frames in one, and the
//! queue's directory as a restart finds it.
//!
//! A segment is `<first seq, 20 digits>.wal`, frames appended one after
//! the other (`frame.rs`), never rewritten. Its index ([`RecordMeta`] per
//! frame) is made by reading it once at open and kept up to date by the
//! writer, so nothing else reads a segment except to decode records.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tracing::{error, warn};

use super::WalError;
use super::frame;

/// Where one record is and what the sender needs to know of it without
/// reading it.
#[derive(Clone, Copy, Debug)]
pub(super) struct RecordMeta {
    pub(super) offset: u64,
    pub(super) len: u32,
    pub(super) samples: u32,
    pub(super) timestamp_ms: i64,
}

/// One segment file and the index of its frames.
#[derive(Debug)]
pub(super) struct Segment {
    /// The sequence number of its first record.
    pub(super) base: u64,
    pub(super) path: PathBuf,
    /// Bytes of valid frames (the file's length once a torn tail is cut).
    pub(super) bytes: u64,
    pub(super) records: Vec<RecordMeta>,
}

impl Segment {
    pub(super) fn new(dir: &Path, base: u64) -> Segment {
        Segment {
            base,
            path: segment_path(dir, base),
            bytes: 0,
            records: Vec::new(),
        }
    }

    /// The number after its last record.
    pub(super) fn end(&self) -> u64 {
        self.base + self.records.len() as u64
    }
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.wal"))
}

/// The first numbers of the segments in `dir`, ascending.
pub(super) fn bases(dir: &Path) -> io::Result<Vec<u64>> {
    let mut bases: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name();
            name.to_str()?.strip_suffix(".wal")?.parse::<u64>().ok()
        })
        .collect();
    bases.sort_unstable();
    Ok(bases)
}

/// The segment file of `base` in `dir`, read whole.
pub(super) fn read(dir: &Path, base: u64) -> Result<(PathBuf, Vec<u8>), WalError> {
    let path = segment_path(dir, base);
    let mut bytes = Vec::new();
    let read = super::files::open_read(&path).and_then(|mut f| {
        use std::io::Read;
        f.read_to_end(&mut bytes)
    });
    match read {
        Ok(_) => Ok((path, bytes)),
        Err(source) => Err(WalError::Read { path, source }),
    }
}

/// Indexes the valid frames of a segment; returns them and the length of
/// the valid prefix.
pub(super) fn index(bytes: &[u8]) -> (Vec<RecordMeta>, usize) {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        match frame::check(&bytes[at..]) {
            Ok((meta, _)) => {
                records.push(RecordMeta {
                    offset: at as u64,
                    len: meta.frame_len as u32,
                    samples: meta.samples,
                    timestamp_ms: meta.timestamp_ms,
                });
                at += meta.frame_len;
            }
            Err(_) => break,
        }
    }
    (records, at)
}

/// What `recover` found, for `redpush wal inspect` and the log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpenReport {
    pub segments: usize,
    pub torn_tail_bytes: u64,
    pub corrupt_segments: Vec<String>,
}

/// The segments of `dir` as a restart finds them. A torn frame at the tail
/// of the last segment (a crash or power loss mid-write) is cut off, so
/// appends go after the last good frame; a corrupt frame inside an older
/// segment ends that segment's readable part. Segments with nothing
/// readable are deleted, and one whose numbers overlap the one before
/// (only a damaged directory has that) is skipped.
pub(super) fn recover(dir: &Path) -> Result<(VecDeque<Segment>, OpenReport), WalError> {
    let bases = bases(dir).map_err(|source| WalError::Dir {
        path: dir.to_owned(),
        source,
    })?;
    let mut report = OpenReport::default();
    let mut segments: VecDeque<Segment> = VecDeque::new();
    let count = bases.len();
    for (i, base) in bases.into_iter().enumerate() {
        let (path, bytes) = read(dir, base)?;
        let (records, valid) = index(&bytes);
        if valid < bytes.len() {
            if i + 1 == count {
                report.torn_tail_bytes = (bytes.len() - valid) as u64;
                cut_torn_tail(&path, valid as u64, report.torn_tail_bytes)?;
            } else {
                error!(
                    file = %path.display(),
                    offset = valid,
                    "corrupt record in the queue; the rest of this segment cannot be read and is skipped"
                );
                report.corrupt_segments.push(path.display().to_string());
            }
        }
        if records.is_empty() {
            // A segment created just before a crash, or one whose only
            // record was torn: it would only confuse numbering.
            let _ = fs::remove_file(&path);
            continue;
        }
        if segments.back().is_some_and(|prev| base < prev.end()) {
            error!(file = %path.display(), "queue segment overlaps its predecessor; skipped");
            continue;
        }
        segments.push_back(Segment {
            base,
            path,
            bytes: valid as u64,
            records,
        });
    }
    report.segments = segments.len();
    Ok((segments, report))
}

fn cut_torn_tail(path: &Path, valid: u64, torn: u64) -> Result<(), WalError> {
    warn!(
        file = %path.display(),
        bytes = torn,
        "the queue's last record was cut short (crash or power loss while writing); dropping its {torn} bytes"
    );
    super::files::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_len(valid))
        .map_err(|source| WalError::Read {
            path: path.to_owned(),
            source,
        })
}
