//! The durable queue: a write-ahead log of records under the state
//! directory, read in order by the sender.
//!
//! Layout of `<state_dir>/wal/`:
//! - `<first seq, 20 digits>.wal`: segment files of frames (`frame.rs`),
//!   appended to, never rewritten. A record's sequence number is the
//!   segment's first number plus its index in the segment.
//! - `ack`: the sequence number of the first record the receiver has not
//!   accepted yet, overwritten in place after every batch (`AckFile`).
//!
//! Every record is written (and by default fsync'd) before `push` returns,
//! so `kill -9` loses nothing that was pushed. A restart resumes at the
//! acknowledged position; delivery is at least once (a batch accepted just
//! before a crash may be sent again, which receivers tolerate as duplicate
//! samples). A torn frame at the tail (power loss mid-write) fails its
//! checksum and is cut off at open; a corrupt frame inside an older segment
//! ends that segment's readable part. Either way the queue opens.
//!
//! The log is bounded by `max_disk_bytes`: when an append goes over, whole
//! oldest segments are deleted and their unsent samples counted as
//! `queue_full`. Samples older than `max_age` are dropped at the head as
//! `too_old` (receivers would refuse them). Recently appended records are
//! also kept decoded in memory up to `cache_samples`, so a sender that keeps
//! up never reads the disk; a sender that is behind reads a segment range
//! at a time.

pub mod frame;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{error, warn};

use crate::queue::{Queue, QueueStats, Queued, Record};
use crate::self_metrics::SelfMetrics;

/// When appended records reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// fsync after every record: nothing pushed is lost to a crash or power loss.
    Always,
    /// Leave it to the operating system: survives `kill -9`, not power loss.
    Never,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WalSettings {
    pub dir: PathBuf,
    pub max_disk_bytes: u64,
    pub segment_bytes: u64,
    pub max_age: Duration,
    pub fsync: Fsync,
    /// Most samples kept decoded in memory ahead of the sender.
    pub cache_samples: usize,
}

impl WalSettings {
    /// Settings for `dir` with a segment size derived from the bound: 16
    /// segments in a full log, each between 64 KiB and 16 MiB, so that the
    /// bound drops at most a sixteenth of the backlog at a time.
    pub fn new(dir: PathBuf, max_disk_bytes: u64, max_age: Duration, fsync: Fsync) -> Self {
        WalSettings {
            dir,
            max_disk_bytes,
            segment_bytes: (max_disk_bytes / 16).clamp(64 * 1024, 16 * 1024 * 1024),
            max_age,
            fsync,
            cache_samples: 20_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("cannot use queue directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read queue file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Index entry of one record: where it is and what the sender needs to know
/// without reading it.
#[derive(Clone, Copy, Debug)]
struct RecordMeta {
    offset: u64,
    len: u32,
    samples: u32,
    timestamp_ms: i64,
}

struct Segment {
    base: u64,
    path: PathBuf,
    bytes: u64,
    records: Vec<RecordMeta>,
}

impl Segment {
    fn end(&self) -> u64 {
        self.base + self.records.len() as u64
    }
}

struct State {
    segments: VecDeque<Segment>,
    /// Open for appending to the last segment; `None` until the first push
    /// after open or after a write error (the next push starts a new segment).
    writer: Option<File>,
    /// Whether `writer` has frames not fsync'd yet.
    unsynced: bool,
    next_seq: u64,
    /// First record not yet acknowledged.
    acked: u64,
    unacked_records: usize,
    unacked_samples: usize,
    bytes: u64,
    /// Decoded records from `acked` on, in order, ending before `cache_end`.
    cache: VecDeque<Queued>,
    cache_samples: usize,
    cache_end: u64,
    frame_buf: Vec<u8>,
    /// What the frames of the last segment have defined (`frame.rs`).
    defined: frame::Defined,
    /// Ids the frame being written added to `defined`.
    added: Vec<u64>,
    scratch: frame::Scratch,
    /// Definitions read from the segment the cache was last filled from.
    reader: Option<Reader>,
    ack_file: AckFile,
    last_error_log: Option<Instant>,
}

/// The reading side's place in one segment: the definitions of its frames
/// up to `scanned` (an index into the segment's records).
struct Reader {
    base: u64,
    scanned: usize,
    defs: frame::Definitions,
}

pub struct DiskQueue {
    state: Mutex<State>,
    settings: WalSettings,
    pushed: Notify,
    /// `Queue::notify_from`.
    notify_from: AtomicUsize,
    metrics: Arc<SelfMetrics>,
}

/// What `open` found, for `redpush wal inspect` and the log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpenReport {
    pub segments: usize,
    pub torn_tail_bytes: u64,
    pub corrupt_segments: Vec<String>,
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.wal"))
}

fn now_ms() -> i64 {
    crate::remote_write::sender::now_ms()
}

impl DiskQueue {
    /// Opens (or creates) the log in `settings.dir`, cutting off a torn tail.
    pub fn open(
        settings: WalSettings,
        metrics: Arc<SelfMetrics>,
    ) -> Result<(DiskQueue, OpenReport), WalError> {
        let dir = settings.dir.clone();
        create_private_dir(&dir).map_err(|source| WalError::Dir {
            path: dir.clone(),
            source,
        })?;
        let mut bases: Vec<u64> = fs::read_dir(&dir)
            .map_err(|source| WalError::Dir {
                path: dir.clone(),
                source,
            })?
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let name = entry.file_name();
                let name = name.to_str()?;
                name.strip_suffix(".wal")?.parse::<u64>().ok()
            })
            .collect();
        bases.sort_unstable();

        let mut report = OpenReport::default();
        let mut segments = VecDeque::new();
        let count = bases.len();
        for (i, base) in bases.into_iter().enumerate() {
            let path = segment_path(&dir, base);
            let bytes = fs::read(&path).map_err(|source| WalError::Read {
                path: path.clone(),
                source,
            })?;
            let (records, valid) = index(&bytes);
            if valid < bytes.len() {
                let is_last = i + 1 == count;
                if is_last {
                    // A torn write at the tail: cut it off so appends go after the last good frame.
                    report.torn_tail_bytes = (bytes.len() - valid) as u64;
                    warn!(
                        file = %path.display(),
                        bytes = report.torn_tail_bytes,
                        "the queue's last record was cut short (crash or power loss while writing); dropping its {} bytes",
                        report.torn_tail_bytes
                    );
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|source| WalError::Read {
                            path: path.clone(),
                            source,
                        })?;
                    file.set_len(valid as u64)
                        .map_err(|source| WalError::Read {
                            path: path.clone(),
                            source,
                        })?;
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
                // Nothing readable (a segment created just before a crash, or
                // one whose only record was torn): it would only confuse numbering.
                let _ = fs::remove_file(&path);
                continue;
            }
            if let Some(prev) = segments.back()
                && base < Segment::end(prev)
            {
                // Overlapping numbers can only come from a damaged directory; keep the older data.
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

        // Numbers are never reused: a record torn off the tail may already
        // have been acknowledged, and the ack file then points past it.
        let ack = read_ack(&dir);
        let next_seq = segments
            .back()
            .map_or(0, Segment::end)
            .max(ack.unwrap_or(0));
        let first = segments.front().map_or(next_seq, |s| s.base);
        let acked = ack.unwrap_or(first).clamp(first, next_seq);
        let mut state = State {
            segments,
            writer: None,
            unsynced: false,
            next_seq,
            acked,
            unacked_records: 0,
            unacked_samples: 0,
            bytes: 0,
            cache: VecDeque::new(),
            cache_samples: 0,
            cache_end: acked,
            frame_buf: Vec::new(),
            defined: frame::Defined::default(),
            added: Vec::new(),
            scratch: frame::Scratch::default(),
            reader: None,
            ack_file: AckFile::new(&dir),
            last_error_log: None,
        };
        state.bytes = state.segments.iter().map(|s| s.bytes).sum();
        let (records, samples) = state.count_from(acked);
        state.unacked_records = records;
        state.unacked_samples = samples;
        let queue = DiskQueue {
            state: Mutex::new(state),
            settings,
            pushed: Notify::new(),
            notify_from: AtomicUsize::new(1),
            metrics,
        };
        {
            let mut state = queue.lock();
            queue.remove_acked_segments(&mut state);
        }
        Ok((queue, report))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation leaves the state consistent before it can panic, so
        // a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn settings(&self) -> &WalSettings {
        &self.settings
    }

    /// Makes room for a frame of `len` bytes: rolls to a new segment when
    /// the current one is full (or after a restart or a write error: a new
    /// segment never shares a file with bytes of unknown state). Returns
    /// whether the frame will be the first of its segment, whose frames
    /// then have defined nothing yet.
    fn start_segment(&self, state: &mut State, len: u64) -> bool {
        let next_seq = state.next_seq;
        let roll = state.segments.back().is_none_or(|last| {
            if last.records.is_empty() {
                // An empty segment is reused only if its name still fits.
                last.base != next_seq
            } else {
                state.writer.is_none() || last.bytes + len > self.settings.segment_bytes
            }
        });
        if roll {
            // Frames of this batch in the segment being closed reach the
            // disk before it is left.
            if let Err(e) = self.sync_writer(state) {
                self.sync_failed(state, &e);
            }
            state.writer = None;
            if let Some(stale) = state.segments.back().filter(|s| s.records.is_empty()) {
                let _ = fs::remove_file(&stale.path);
                state.segments.pop_back();
            }
            let base = state.next_seq;
            state.segments.push_back(Segment {
                base,
                path: segment_path(&self.settings.dir, base),
                bytes: 0,
                records: Vec::new(),
            });
        }
        let first = state.segments.back().is_none_or(|s| s.records.is_empty());
        if first {
            state.defined.clear();
        }
        first
    }

    /// Appends the frame in `state.frame_buf` to the last segment.
    fn append(&self, state: &mut State, samples: u32, timestamp_ms: i64) -> std::io::Result<()> {
        let len = state.frame_buf.len() as u64;
        let State {
            writer,
            unsynced,
            segments,
            frame_buf,
            bytes,
            ..
        } = state;
        let Some(segment) = segments.back_mut() else {
            return Err(std::io::Error::other("no segment"));
        };
        if writer.is_none() {
            // The segment holds no record yet: whatever its file holds is stale.
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&segment.path)?;
            file.set_len(0)?;
            segment.bytes = 0;
            if self.settings.fsync == Fsync::Always {
                // Make the new file's directory entry durable too.
                sync_dir(&self.settings.dir);
            }
            *writer = Some(file);
        }
        let Some(file) = writer.as_mut() else {
            return Err(std::io::Error::other("no writer"));
        };
        let offset = segment.bytes;
        if let Err(e) = file.write_all(frame_buf) {
            // Undo a partial frame so that later frames stay readable (the
            // file is in append mode: the next write lands at the new end).
            // If even that fails, the next push starts a new segment.
            if file.set_len(offset).is_err() {
                *writer = None;
            }
            return Err(e);
        }
        *unsynced = true;
        segment.bytes += len;
        segment.records.push(RecordMeta {
            offset,
            len: len as u32,
            samples,
            timestamp_ms,
        });
        *bytes += len;
        Ok(())
    }

    /// Writes the frame of one record (not fsync'd yet); returns its
    /// sequence number.
    fn write(&self, state: &mut State, record: &Record) -> std::io::Result<u64> {
        let samples = record.series.len();
        let encode = |state: &mut State| {
            state.frame_buf.clear();
            state.added.clear();
            frame::encode(
                record,
                &mut state.defined,
                &mut state.added,
                &mut state.scratch,
                &mut state.frame_buf,
            )
        };
        let defined_before = !state.defined.is_empty();
        let mut encoded = encode(state);
        if encoded.is_ok()
            && self.start_segment(state, state.frame_buf.len() as u64)
            && defined_before
        {
            // The frame was written for the segment before: in a new one it
            // has to define everything it uses.
            encoded = encode(state);
        }
        let written = encoded
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|()| self.append(state, samples as u32, record.timestamp_ms));
        if let Err(e) = written {
            // The frame is not in the file: what it defined is not either.
            for id in &state.added {
                state.defined.remove(id);
            }
            return Err(e);
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.unacked_records += 1;
        state.unacked_samples += samples;
        Ok(seq)
    }

    /// fsyncs what was written since the last sync (`Fsync::Always`).
    fn sync_writer(&self, state: &mut State) -> std::io::Result<()> {
        if self.settings.fsync == Fsync::Always
            && std::mem::take(&mut state.unsynced)
            && let Some(file) = &state.writer
        {
            file.sync_data()?;
        }
        Ok(())
    }

    /// A failed fsync leaves the written frames' fate to the disk: they
    /// stay queued (they are readable as long as the system runs), and the
    /// next frame starts a new segment rather than share a file whose tail
    /// is in doubt.
    fn sync_failed(&self, state: &mut State, e: &std::io::Error) {
        self.metrics.queue_write_error();
        state.writer = None;
        let dir = self.settings.dir.display().to_string();
        self.log_error(
            state,
            &format!("cannot fsync the queue in {dir}: {e}; what was written may not survive a power loss"),
        );
    }

    /// Deletes oldest segments while the log is over its bound; unsent
    /// samples in them are counted as `queue_full`.
    fn enforce_bound(&self, state: &mut State) {
        while state.bytes > self.settings.max_disk_bytes && state.segments.len() > 1 {
            let Some(segment) = state.segments.pop_front() else {
                break;
            };
            let lost = segment
                .records
                .iter()
                .enumerate()
                .filter(|(i, _)| segment.base + *i as u64 >= state.acked)
                .fold((0usize, 0usize), |(r, s), (_, m)| {
                    (r + 1, s + m.samples as usize)
                });
            state.unacked_records -= lost.0;
            state.unacked_samples -= lost.1;
            state.bytes -= segment.bytes;
            if lost.1 > 0 {
                self.metrics.dropped("queue_full", lost.1 as u64);
            }
            let _ = fs::remove_file(&segment.path);
            let first = state.segments.front().map_or(state.next_seq, |s| s.base);
            if state.acked < first {
                state.acked = first;
                state.drop_cache_before(first);
                let _ = state.ack_file.write(first);
            }
        }
    }

    /// Deletes segments whose records are all acknowledged (the segment
    /// being appended to stays).
    fn remove_acked_segments(&self, state: &mut State) {
        while state.segments.len() > 1
            && state
                .segments
                .front()
                .is_some_and(|s| s.end() <= state.acked)
        {
            if let Some(segment) = state.segments.pop_front() {
                state.bytes -= segment.bytes;
                let _ = fs::remove_file(&segment.path);
            }
        }
    }

    /// Drops records older than `max_age` from the head, counted as `too_old`.
    fn expire(&self, state: &mut State) {
        let oldest_allowed = now_ms() - self.settings.max_age.as_millis() as i64;
        let mut expired = 0usize;
        let mut last = None;
        while let Some((seq, meta)) = state.meta_at_or_after(state.acked) {
            if meta.timestamp_ms >= oldest_allowed {
                break;
            }
            expired += meta.samples as usize;
            last = Some(seq);
            state.advance_past(seq);
        }
        if let Some(seq) = last {
            self.metrics.dropped("too_old", expired as u64);
            state.drop_cache_before(seq + 1);
            let acked = state.acked;
            let _ = state.ack_file.write(acked);
            self.remove_acked_segments(state);
        }
    }

    /// Decodes records from disk into the cache until it holds `want` samples
    /// or reaches the tail.
    fn fill_cache(&self, state: &mut State, want: usize) {
        while state.cache_samples < want {
            let Some((start, _)) = state.meta_at_or_after(state.cache_end) else {
                break;
            };
            let Some(si) = state.segment_of(start) else {
                break;
            };
            // One read for a run of records of this segment.
            let (base, path, first, last, from, to) = {
                let segment = &state.segments[si];
                let first = (start - segment.base) as usize;
                let mut last = first;
                let mut samples = 0usize;
                while last < segment.records.len()
                    && (last == first || state.cache_samples + samples < want)
                {
                    samples += segment.records[last].samples as usize;
                    last += 1;
                }
                let from = segment.records[first].offset;
                let to = segment.records[last - 1].offset + segment.records[last - 1].len as u64;
                (segment.base, segment.path.clone(), first, last, from, to)
            };
            // A segment's frames refer to what earlier frames of it
            // defined: read those definitions first, unless this segment
            // was read up to here already.
            let mut reader = match state.reader.take() {
                Some(r) if r.base == base && r.scanned <= first => r,
                _ => Reader {
                    base,
                    scanned: 0,
                    defs: frame::Definitions::default(),
                },
            };
            let from = if reader.scanned < first {
                state.segments[si].records[reader.scanned].offset
            } else {
                from
            };
            let mut bytes = vec![0u8; (to - from) as usize];
            let read = File::open(&path).and_then(|mut f| {
                f.seek(SeekFrom::Start(from))?;
                f.read_exact(&mut bytes)
            });
            if let Err(e) = read {
                self.log_error(
                    state,
                    &format!("cannot read queued records from {}: {e}", path.display()),
                );
                break;
            }
            let mut at = 0usize;
            while reader.scanned < first {
                match frame::scan_definitions(&bytes[at..], &mut reader.defs) {
                    Ok(len) => at += len,
                    // Its records' own decoding says what is wrong below.
                    Err(_) => break,
                }
                reader.scanned += 1;
            }
            let mut seq = base + first as u64;
            let mut decoded = Vec::new();
            while at < bytes.len() {
                match frame::decode(&bytes[at..], &mut reader.defs) {
                    Ok((record, len)) => {
                        decoded.push(Queued {
                            seq,
                            record: Arc::new(record),
                        });
                        at += len;
                        seq += 1;
                    }
                    Err(e) => {
                        // The index was built from valid frames: the file changed under us.
                        self.log_error(
                            state,
                            &format!("queued record {seq} unreadable ({e}); skipped"),
                        );
                        break;
                    }
                }
            }
            reader.scanned = last;
            state.reader = Some(reader);
            let end = base + last as u64;
            for queued in decoded {
                state.cache_samples += queued.record.series.len();
                state.cache.push_back(queued);
            }
            state.cache_end = end;
        }
    }

    fn log_error(&self, state: &mut State, message: &str) {
        // At most one line a minute: a full disk must not flood the log.
        if state
            .last_error_log
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
        {
            error!("{message}");
            state.last_error_log = Some(Instant::now());
        }
    }
}

impl Queue for DiskQueue {
    fn write(&self, records: Vec<Arc<Record>>) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let was_empty = state.unacked_samples == 0;
        let mut written = Vec::with_capacity(records.len());
        for record in records {
            match self.write(state, &record) {
                Ok(seq) => written.push(Queued { seq, record }),
                Err(e) => {
                    self.metrics.queue_write_error();
                    self.metrics
                        .dropped("write_error", record.series.len() as u64);
                    let dir = self.settings.dir.display().to_string();
                    self.log_error(state, &format!("cannot write to the queue in {dir}: {e}; these samples are lost, sampling goes on"));
                }
            }
        }
        for queued in written {
            // Keep the record decoded when the cache reaches the tail, so a
            // sender that keeps up never reads it back from disk.
            let samples = queued.record.series.len();
            if state.cache_end == queued.seq
                && state.cache_samples + samples <= self.settings.cache_samples
            {
                state.cache_samples += samples;
                state.cache_end = queued.seq + 1;
                state.cache.push_back(queued);
            }
        }
        self.enforce_bound(state);
        let notify = was_empty || state.unacked_samples >= self.notify_from.load(Ordering::Relaxed);
        drop(guard);
        if notify {
            self.pushed.notify_one();
        }
    }

    fn sync(&self) {
        let mut state = self.lock();
        if let Err(e) = self.sync_writer(&mut state) {
            self.sync_failed(&mut state, &e);
        }
    }

    fn peek(&self, max_samples: usize) -> Vec<Queued> {
        let mut state = self.lock();
        self.expire(&mut state);
        // May read past `cache_samples`: the batch asked for is what bounds memory here.
        self.fill_cache(&mut state, max_samples);
        let mut batch = Vec::new();
        let mut samples = 0;
        for queued in &state.cache {
            let n = queued.record.series.len();
            if !batch.is_empty() && samples + n > max_samples {
                break;
            }
            samples += n;
            batch.push(queued.clone());
        }
        batch
    }

    fn ack(&self, seq: u64) {
        let mut state = self.lock();
        if seq < state.acked {
            return;
        }
        while let Some((s, _)) = state.meta_at_or_after(state.acked) {
            if s > seq {
                break;
            }
            state.advance_past(s);
        }
        if state.acked <= seq {
            state.acked = seq + 1;
        }
        let acked = state.acked;
        state.drop_cache_before(acked);
        if let Err(e) = state.ack_file.write(acked) {
            self.log_error(
                &mut state,
                &format!("cannot record the queue's read position: {e}"),
            );
        }
        self.remove_acked_segments(&mut state);
    }

    fn stats(&self) -> QueueStats {
        let state = self.lock();
        QueueStats {
            records: state.unacked_records,
            samples: state.unacked_samples,
            bytes: state.bytes,
            oldest_timestamp_ms: state
                .meta_at_or_after(state.acked)
                .map(|(_, m)| m.timestamp_ms),
        }
    }

    fn pushed(&self) -> &Notify {
        &self.pushed
    }

    fn notify_from(&self, samples: usize) {
        self.notify_from.store(samples.max(1), Ordering::Relaxed);
    }
}

impl State {
    /// Index of the segment holding `seq`.
    fn segment_of(&self, seq: u64) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.base <= seq);
        let si = i.checked_sub(1)?;
        (seq < self.segments[si].end()).then_some(si)
    }

    /// The first record with a number at or after `seq` (numbers may have
    /// gaps where a corrupt segment was cut short).
    fn meta_at_or_after(&self, seq: u64) -> Option<(u64, RecordMeta)> {
        if let Some(si) = self.segment_of(seq) {
            let s = &self.segments[si];
            return Some((seq, s.records[(seq - s.base) as usize]));
        }
        self.segments
            .iter()
            .find(|s| s.base > seq && !s.records.is_empty())
            .map(|s| (s.base, s.records[0]))
    }

    /// Marks record `seq` (the first unacknowledged one) as done.
    fn advance_past(&mut self, seq: u64) {
        if let Some((s, meta)) = self.meta_at_or_after(self.acked)
            && s == seq
        {
            self.unacked_records -= 1;
            self.unacked_samples -= meta.samples as usize;
        }
        self.acked = seq + 1;
        if self.cache_end < self.acked {
            self.cache_end = self.acked;
        }
    }

    fn drop_cache_before(&mut self, seq: u64) {
        while self.cache.front().is_some_and(|q| q.seq < seq) {
            if let Some(q) = self.cache.pop_front() {
                self.cache_samples -= q.record.series.len();
            }
        }
        if self.cache_end < seq {
            self.cache_end = seq;
        }
    }

    /// Records and samples from `seq` to the tail.
    fn count_from(&self, seq: u64) -> (usize, usize) {
        let mut records = 0;
        let mut samples = 0;
        for s in &self.segments {
            for (i, m) in s.records.iter().enumerate() {
                if s.base + i as u64 >= seq {
                    records += 1;
                    samples += m.samples as usize;
                }
            }
        }
        (records, samples)
    }
}

/// Indexes the valid frames of a segment; returns them and the length of the
/// valid prefix.
fn index(bytes: &[u8]) -> (Vec<RecordMeta>, usize) {
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

fn read_ack(dir: &Path) -> Option<u64> {
    let text = fs::read_to_string(dir.join("ack")).ok()?;
    text.trim().parse().ok()
}

/// The `ack` file, kept open and overwritten in place with one fixed-width
/// line. Creating a file and renaming it over `ack` after every batch cost
/// the agent a twentieth of its CPU at 1000 targets, most of it in the file
/// system's inode allocation. A write that a power loss tears leaves the
/// line unreadable: the queue then starts at its oldest record and sends
/// what was sent already, which at-least-once delivery allows (receivers
/// take an identical sample twice).
struct AckFile {
    path: PathBuf,
    file: Option<File>,
}

/// Digits of the widest `u64`, and the newline.
const ACK_LEN: usize = 21;

impl AckFile {
    fn new(dir: &Path) -> AckFile {
        AckFile {
            path: dir.join("ack"),
            file: None,
        }
    }

    fn write(&mut self, seq: u64) -> std::io::Result<()> {
        let line = format!("{seq:020}\n");
        let written = self
            .open()
            .and_then(|file| write_at_start(file, line.as_bytes()));
        if written.is_err() {
            // Reopened at the next write: the file may have been removed.
            self.file = None;
        }
        written
    }

    fn open(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&self.path)?;
            // A line of an earlier version may be shorter or longer.
            file.set_len(ACK_LEN as u64)?;
            self.file = Some(file);
        }
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("ack file not open"))
    }
}

#[cfg(unix)]
fn write_at_start(file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, 0)
}

#[cfg(not(unix))]
fn write_at_start(file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    file.write_all(bytes)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Creates `dir` (and parents) readable by this user only: queued samples
/// describe the monitored servers.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir)
    }
}

/// A summary of the log for `redpush wal inspect`, read without changing it.
pub fn inspect(dir: &Path) -> Result<String, WalError> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut bases: Vec<u64> = fs::read_dir(dir)
        .map_err(|source| WalError::Dir {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".wal")?.parse().ok())
        .collect();
    bases.sort_unstable();
    let ack = read_ack(dir);
    let _ = writeln!(out, "queue: {}", dir.display());
    let _ = writeln!(
        out,
        "acknowledged up to: {}",
        ack.map_or("nothing yet".to_owned(), |a| format!("record {a}"))
    );
    let (mut records, mut samples, mut bytes) = (0usize, 0usize, 0u64);
    let (mut oldest, mut newest) = (None::<i64>, None::<i64>);
    for base in bases {
        let path = segment_path(dir, base);
        let data = fs::read(&path).map_err(|source| WalError::Read {
            path: path.clone(),
            source,
        })?;
        let (index, valid) = index(&data);
        let pending: Vec<&RecordMeta> = index
            .iter()
            .enumerate()
            .filter(|(i, _)| base + *i as u64 >= ack.unwrap_or(0))
            .map(|(_, m)| m)
            .collect();
        let seg_samples: usize = pending.iter().map(|m| m.samples as usize).sum();
        let _ = writeln!(
            out,
            "segment {}: {} bytes, records {}..{}, {} pending ({} samples){}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
            data.len(),
            base,
            base + index.len() as u64,
            pending.len(),
            seg_samples,
            if valid < data.len() {
                format!(
                    ", {} unreadable bytes at offset {valid}",
                    data.len() - valid
                )
            } else {
                String::new()
            }
        );
        for m in &pending {
            oldest = Some(oldest.map_or(m.timestamp_ms, |o| o.min(m.timestamp_ms)));
            newest = Some(newest.map_or(m.timestamp_ms, |n| n.max(m.timestamp_ms)));
        }
        records += pending.len();
        samples += seg_samples;
        bytes += data.len() as u64;
    }
    let _ = writeln!(
        out,
        "pending: {records} records, {samples} samples, {bytes} bytes on disk"
    );
    if let (Some(o), Some(n)) = (oldest, newest) {
        let age = Duration::from_millis((now_ms() - o).max(0) as u64);
        let _ = writeln!(
            out,
            "oldest pending sample: {} ms ({} ago); newest: {} ms",
            o,
            humantime::format_duration(Duration::from_secs(age.as_secs())),
            n
        );
    }
    Ok(out)
}
