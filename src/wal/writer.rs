//! The writing side: each record as one frame appended to the last
//! segment, a new segment when that one is full (or after a restart or a
//! failed write), fsync when asked.
//!
//! Only the queue's writer thread writes, one record at a time, so the last
//! segment changes under nobody else: the ledger is locked only to decide
//! on a new segment and to take each frame's place in the index.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::disk::{Disk, SegmentFile};
use super::frame;
use super::ledger::Ledger;
use super::segment::RecordMeta;
use super::{Fsync, lock};
use crate::series::Record;

pub(super) struct SegmentWriter {
    dir: PathBuf,
    segment_bytes: u64,
    fsync: Fsync,
    disk: Arc<dyn Disk>,
    /// Open for appending to the last segment; `None` until the first frame
    /// after open or after a failed write or fsync: the next frame then
    /// starts a new segment rather than share a file whose tail is in doubt.
    file: Option<Box<dyn SegmentFile>>,
    /// Whether `file` has frames not fsync'd yet.
    unsynced: bool,
    frame: Vec<u8>,
    /// What the frames of the last segment have defined (`frame.rs`).
    defined: frame::Defined,
    /// Ids the frame being written added to `defined`.
    added: Vec<u64>,
    scratch: frame::Scratch,
}

impl SegmentWriter {
    pub(super) fn new(dir: &Path, segment_bytes: u64, fsync: Fsync, disk: Arc<dyn Disk>) -> Self {
        SegmentWriter {
            dir: dir.to_owned(),
            segment_bytes,
            fsync,
            disk,
            file: None,
            unsynced: false,
            frame: Vec::new(),
            defined: frame::Defined::default(),
            added: Vec::new(),
            scratch: frame::Scratch::default(),
        }
    }

    /// Appends the frame of `record` (not fsync'd yet); returns its number.
    /// `on_sync_error` hears of a failed fsync of a segment being left.
    pub(super) fn write(
        &mut self,
        record: &Record,
        ledger: &Mutex<Ledger>,
        on_sync_error: impl FnOnce(io::Error),
    ) -> io::Result<u64> {
        let defined_before = !self.defined.is_empty();
        let mut encoded = self.encode(record);
        if encoded.is_ok() && self.start_segment(ledger, on_sync_error) && defined_before {
            // The frame was made for the segment before: in a new one it
            // has to define everything it uses.
            encoded = self.encode(record);
        }
        let samples = record.samples() as u32;
        let written = encoded
            .map_err(io::Error::other)
            .and_then(|()| self.append(ledger, samples, record.timestamp_ms));
        if written.is_err() {
            // The frame is not in the file: what it defined is not either.
            for id in &self.added {
                self.defined.remove(id);
            }
        }
        written
    }

    fn encode(&mut self, record: &Record) -> Result<(), frame::FrameError> {
        self.frame.clear();
        self.added.clear();
        frame::encode(
            record,
            &mut self.defined,
            &mut self.added,
            &mut self.scratch,
            &mut self.frame,
        )
    }

    /// Makes room for the frame: a new segment when needed (see
    /// `Ledger::needs_segment`), the frames written to the one left synced
    /// first. Returns whether the frame will be the first of its segment,
    /// whose frames then have defined nothing yet.
    fn start_segment(
        &mut self,
        ledger: &Mutex<Ledger>,
        on_sync_error: impl FnOnce(io::Error),
    ) -> bool {
        let len = self.frame.len() as u64;
        let needed = lock(ledger).needs_segment(self.file.is_some(), len, self.segment_bytes);
        if needed {
            if let Err(e) = self.sync() {
                on_sync_error(e);
            }
            self.file = None;
            if let Some(empty) = lock(ledger).start_segment(&self.dir) {
                let _ = fs::remove_file(&empty.path);
            }
        }
        let first = lock(ledger).tail().is_none_or(|s| s.records.is_empty());
        if first {
            self.defined.clear();
        }
        first
    }

    /// Appends the frame to the last segment and enters it in the ledger.
    fn append(
        &mut self,
        ledger: &Mutex<Ledger>,
        samples: u32,
        timestamp_ms: i64,
    ) -> io::Result<u64> {
        let (offset, path) = {
            let ledger = lock(ledger);
            let tail = ledger
                .tail()
                .ok_or_else(|| io::Error::other("no segment"))?;
            let path = self.file.is_none().then(|| tail.path.clone());
            (tail.bytes, path)
        };
        if let Some(path) = path {
            // The segment holds no record yet: whatever its file holds is stale.
            self.file = Some(self.disk.create(&path)?);
            if self.fsync == Fsync::Always {
                // Make the new file's directory entry durable too.
                sync_dir(&self.dir);
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("no segment file"));
        };
        if let Err(e) = file.append(&self.frame) {
            // Undo a partial frame so that later frames stay readable; if
            // even that fails, the next frame starts a new segment.
            if file.truncate(offset).is_err() {
                self.file = None;
            }
            return Err(e);
        }
        self.unsynced = true;
        Ok(lock(ledger).appended(RecordMeta {
            offset,
            len: self.frame.len() as u32,
            samples,
            timestamp_ms,
        }))
    }

    /// Leaves the last segment after a failed write: its file is synced
    /// (as far as the disk allows) and closed, and the next record starts a
    /// new segment, so that the one left can be deleted once it is
    /// acknowledged (a full disk then gets room back).
    pub(super) fn roll(&mut self, ledger: &Mutex<Ledger>) {
        let _ = self.sync();
        self.file = None;
        if let Some(empty) = lock(ledger).start_segment(&self.dir) {
            let _ = fs::remove_file(&empty.path);
        }
    }

    /// fsyncs what was written since the last sync (`Fsync::Always`). A
    /// failure leaves the written frames' fate to the disk: they stay
    /// queued (readable as long as the system runs), and the next frame
    /// starts a new segment.
    pub(super) fn sync(&mut self) -> io::Result<()> {
        if self.fsync == Fsync::Always
            && std::mem::take(&mut self.unsynced)
            && let Some(file) = self.file.as_mut()
            && let Err(e) = file.sync()
        {
            self.file = None;
            return Err(e);
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
