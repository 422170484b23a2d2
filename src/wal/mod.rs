//! The durable queue: a write-ahead log of records under the state
//! directory, read in order by the sender.
//!
//! Layout of `<state_dir>/wal/`:
//! - `<first seq, 20 digits>.wal`: segment files of frames (`frame.rs`),
//!   appended to, never rewritten. A record's sequence number is the
//!   segment's first number plus its index in the segment.
//! - `ack`: the number of the first record the receiver has not accepted
//!   yet (`position.rs`); `ack-<name>` the same for each named reader
//!   when there are several (one per remote-write endpoint). At open each
//!   reader has its file written, and the files of readers the queue no
//!   longer has are deleted; a reader without a file starts where the
//!   one furthest behind was.
//!
//! Roles, after Vector's disk buffer: `segment.rs` (the files, their
//! index, recovery at open), `ledger.rs` (what is held and how far it was
//! taken, in memory, pure), `writer.rs` (appends, new segments, fsync),
//! `reader.rs` (the decoded cache and reads from disk), `position.rs` (the
//! ack file), `inspect.rs`, `disk.rs` (the seam the writer writes
//! through) and `files.rs` (the directory's ownership checks, files opened
//! without following symlinks, 0600).
//!
//! Invariants and guarantees:
//! - a record handed to `write` is in its segment file before `write`
//!   returns: `kill -9` loses nothing written; `sync` (within
//!   `queue::SYNC_WINDOW` of the write, with `fsync = "always"`) makes it
//!   survive a power loss too;
//! - every reader (one per remote-write endpoint) reads every record, in
//!   the order they were written, from a place of its own; a restart
//!   resumes each at its acknowledged position. Delivery is at least once: a batch accepted
//!   just before a crash may be sent again, which receivers tolerate as
//!   duplicate samples;
//! - a torn frame at the tail (power loss mid-write) fails its checksum and
//!   is cut off at open; a corrupt frame inside an older segment ends that
//!   segment's readable part. Either way the queue opens;
//! - a segment is at most a quarter of the file system's room for the
//!   queue (at open); a failed append leaves its segment, deletes what was
//!   delivered and is tried once more in a new one: a disk smaller than
//!   `segment_bytes` keeps working. A segment every reader has acknowledged
//!   is deleted (the last one at open); a deletion that fails is tried again;
//! - what each reader holds stays within `max_disk_bytes` (so the log
//!   does): when an append goes over, the reader is moved past its whole
//!   oldest segments and their unsent samples reported as `queue_full`;
//!   samples older than `max_age` are dropped at each reader's head as
//!   `too_old` (receivers would refuse them), at reads, writes and the
//!   writer thread's tidy each second, so also while the receiver is down;
//! - the state directory and `wal/` are this user's alone (else the queue
//!   does not open) and no queue file is opened through a symlink;
//! - the writer (the writer thread) and the readers (the senders) never
//!   wait for each other's disk work: each has a lock of its own, and the
//!   ledger, the caches and the ack files are locked only for bookkeeping, never
//!   while a file is read or written, and never one inside another.

mod disk;
mod files;
pub mod frame;
mod inspect;
mod ledger;
mod position;
mod reader;
mod segment;
mod writer;

use std::fmt;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::error;

use crate::clock::now_ms;
pub(crate) use crate::config::Fsync;
use crate::log_throttle::LogThrottle;
use crate::queue::{DropReason, DroppedFor, Queue, QueueEvents, QueueStats, Queued};
use crate::series::Record;
pub use disk::{Disk, FileSystem, SegmentFile};
pub(crate) use files::private_dir;
pub use inspect::inspect;
use ledger::{Ledger, ReaderId};
use position::AckFile;
use reader::{Cache, SegmentReader};
pub(crate) use segment::OpenReport;
use segment::Segment;
use writer::SegmentWriter;

#[derive(Clone, Debug, PartialEq)]
pub struct WalSettings {
    pub dir: PathBuf,
    pub max_disk_bytes: u64,
    pub segment_bytes: u64,
    pub max_age: Duration,
    pub fsync: Fsync,
    /// Most samples kept decoded in memory ahead of each reader.
    pub cache_samples: usize,
    /// The readers, by name, each with a place of its own; `max_disk_bytes`
    /// and `max_age` apply to each alone. One unnamed reader by default.
    pub readers: Vec<String>,
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
            readers: vec![String::new()],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("cannot use queue directory {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read queue file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Locks one of the queue's parts. Every change to them leaves them
/// consistent before it can panic, so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where the queue's troubles go: the agent's counters, and the log at
/// most once a minute (a full disk must not flood it).
struct Troubles {
    events: Arc<dyn QueueEvents>,
    log: LogThrottle,
}

impl Troubles {
    fn log(&self, message: fmt::Arguments<'_>) {
        if self.log.ready() {
            error!("{message}");
        }
    }
}

/// The queue as one reader sees it: the shared log, and this reader's
/// place in it. Writing through any reader's `DiskQueue` appends to the one
/// log for every reader; reading, acknowledging and the statistics are
/// this reader's own.
pub struct DiskQueue {
    log: Arc<Log>,
    reader: ReaderId,
}

/// The log every reader shares: its segments, the ledger of what each
/// reader took, the writer, and each reader's side.
struct Log {
    settings: WalSettings,
    ledger: Mutex<Ledger>,
    writer: Mutex<SegmentWriter>,
    readers: Vec<ReaderSide>,
    troubles: Troubles,
    /// Files of segments the ledger gave up that could not be deleted (a
    /// read-only directory): tried again at every later deletion and tidy.
    undeleted: Mutex<Vec<PathBuf>>,
}

/// What one reader keeps besides its place in the ledger.
struct ReaderSide {
    name: String,
    /// Held by the one reading at a time (`peek`), for as long as it reads.
    reader: Mutex<SegmentReader>,
    cache: Mutex<Cache>,
    position: Mutex<AckFile>,
    pushed: Notify,
    /// `Queue::notify_from`.
    notify_from: AtomicUsize,
}

/// Segments are never sized below this by the free space: each segment's
/// frames define the shapes they use again, so small ones cost their
/// definitions over and over.
const MIN_SEGMENT_BYTES: u64 = 64 * 1024;

impl DiskQueue {
    /// Opens (or creates) the log in `settings.dir`, cutting off a torn
    /// tail; it reports what it loses to `events`. The queue returned is
    /// the first of `settings.readers`; [`DiskQueue::reader`] gives the others.
    pub fn open(
        settings: WalSettings,
        events: Arc<dyn QueueEvents>,
    ) -> Result<(DiskQueue, OpenReport), WalError> {
        Self::open_on(settings, events, Arc::new(FileSystem))
    }

    /// [`DiskQueue::open`], writing segments through `disk`.
    ///
    /// A segment is at most a quarter of what the file system holds for the
    /// queue (its free space and the queue's own files), so that on a disk
    /// smaller than `segment_bytes` the queue still rolls over and frees
    /// what was delivered. Every segment every reader is past is deleted,
    /// the last one too.
    pub fn open_on(
        mut settings: WalSettings,
        events: Arc<dyn QueueEvents>,
        disk: Arc<dyn Disk>,
    ) -> Result<(DiskQueue, OpenReport), WalError> {
        let dir = settings.dir.clone();
        files::private_dir(&dir, false).map_err(|source| WalError::Dir {
            path: dir.clone(),
            source,
        })?;
        if settings.readers.is_empty() {
            settings.readers.push(String::new());
        }
        let (segments, report) = segment::recover(&dir)?;
        let acks: Vec<Option<u64>> = settings
            .readers
            .iter()
            .map(|name| position::read(&dir, name))
            .collect();
        let mut ledger = Ledger::new(segments, &acks);
        if let Some(free) = disk.available(&dir) {
            let room = free.saturating_add(ledger.stats(0).bytes);
            settings.segment_bytes = settings
                .segment_bytes
                .min((room / 4).max(MIN_SEGMENT_BYTES));
        }
        let mut done: Vec<Segment> = ledger.retire_acknowledged_tail(&dir).into_iter().collect();
        done.extend(ledger.take_acknowledged());
        let readers = (settings.readers.iter().enumerate())
            .map(|(id, name)| ReaderSide {
                name: name.clone(),
                reader: Mutex::new(SegmentReader::default()),
                cache: Mutex::new(Cache::new(ledger.acked(id), settings.cache_samples)),
                position: Mutex::new(AckFile::new(&dir, name)),
                pushed: Notify::new(),
                notify_from: AtomicUsize::new(1),
            })
            .collect();
        let log = Log {
            writer: Mutex::new(SegmentWriter::new(
                &dir,
                settings.segment_bytes,
                settings.fsync,
                disk,
            )),
            ledger: Mutex::new(ledger),
            readers,
            troubles: Troubles {
                events,
                log: LogThrottle::default(),
            },
            undeleted: Mutex::default(),
            settings,
        };
        log.record_positions();
        log.delete(done);
        let queue = DiskQueue {
            log: Arc::new(log),
            reader: 0,
        };
        Ok((queue, report))
    }

    /// The queue as the reader `name` (one of `settings.readers`) sees it.
    pub fn reader(&self, name: &str) -> Option<DiskQueue> {
        let reader = self.log.readers.iter().position(|r| r.name == name)?;
        Some(DiskQueue {
            log: self.log.clone(),
            reader,
        })
    }

    pub fn settings(&self) -> &WalSettings {
        &self.log.settings
    }

    fn side(&self) -> &ReaderSide {
        &self.log.readers[self.reader]
    }
}

impl Log {
    /// A failed write or fsync: counted, and logged (throttled).
    fn write_failed(&self, what: &str, e: &std::io::Error, consequence: &str) {
        self.troubles.events.write_failed();
        let dir = self.settings.dir.display();
        self.troubles.log(format_args!(
            "cannot {what} the queue in {dir}: {e}; {consequence}"
        ));
    }

    /// At open: each reader's position in a file of its own, then the
    /// files of readers this log no longer has deleted (`position.rs`).
    fn record_positions(&self) {
        let ledger = lock(&self.ledger);
        let mut recorded = true;
        for (reader, side) in self.readers.iter().enumerate() {
            if let Err(e) = lock(&side.position).write(ledger.acked(reader)) {
                recorded = false;
                self.troubles
                    .log(format_args!("cannot record the queue's read position: {e}"));
            }
        }
        let names: Vec<String> = self.readers.iter().map(|r| r.name.clone()).collect();
        if !recorded {
            return;
        }
        if let Err(e) = position::remove_others(&self.settings.dir, &names) {
            self.troubles.log(format_args!(
                "cannot delete the read position of a removed endpoint: {e}"
            ));
        }
    }

    /// Records `reader`'s acknowledged position on disk and forgets what is
    /// before it; deletes the segments it freed.
    fn advanced(&self, reader: ReaderId, acked: u64, freed: Vec<Segment>) {
        let side = &self.readers[reader];
        lock(&side.cache).drop_before(acked);
        if let Err(e) = lock(&side.position).write(acked) {
            self.troubles
                .log(format_args!("cannot record the queue's read position: {e}"));
        }
        self.delete(freed);
    }

    /// Deletes the files of segments the ledger gave up, and those an
    /// earlier attempt could not; keeps what fails for the next attempt.
    fn delete(&self, segments: Vec<Segment>) {
        let mut undeleted = lock(&self.undeleted);
        if segments.is_empty() && undeleted.is_empty() {
            return;
        }
        let paths = std::mem::take(&mut *undeleted)
            .into_iter()
            .chain(segments.into_iter().map(|s| s.path));
        for path in paths {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    self.troubles.log(format_args!(
                        "cannot delete the delivered queue file {}: {e}; tried again later",
                        path.display()
                    ));
                    undeleted.push(path);
                }
                _ => {}
            }
        }
    }

    /// Appends `record`; after a failed append (a full disk) the segment
    /// is left, what was delivered is deleted and the append tried once
    /// more in a new segment.
    fn append(&self, writer: &mut SegmentWriter, record: &Record) -> Result<u64, std::io::Error> {
        let on_sync_error = |e: std::io::Error| {
            self.write_failed("fsync", &e, "what was written may not survive a power loss");
        };
        match writer.write(record, &self.ledger, on_sync_error) {
            Ok(seq) => Ok(seq),
            Err(_) => {
                writer.roll(&self.ledger);
                let freed = lock(&self.ledger).take_acknowledged();
                self.delete(freed);
                let retried = writer.write(record, &self.ledger, on_sync_error);
                if retried.is_err() {
                    writer.roll(&self.ledger);
                }
                retried
            }
        }
    }

    /// Moves each reader past its oldest segments while what it holds is
    /// over the bound; deletes what no reader holds any more.
    fn enforce_bound(&self) {
        for reader in 0..self.readers.len() {
            let (over, acked, freed) = {
                let mut ledger = lock(&self.ledger);
                let over = ledger.over_bound(reader, self.settings.max_disk_bytes);
                (over, ledger.acked(reader), ledger.take_acknowledged())
            };
            if over.lost_samples > 0 {
                self.troubles.events.dropped(
                    DroppedFor::Reader(&self.readers[reader].name),
                    DropReason::QueueFull,
                    over.lost_samples as u64,
                );
            }
            if over.acked_moved {
                self.advanced(reader, acked, freed);
            } else {
                self.delete(freed);
            }
        }
    }

    /// Drops records older than `max_age` from `reader`'s head.
    fn expire(&self, reader: ReaderId) {
        let oldest_allowed = now_ms() - self.settings.max_age.as_millis() as i64;
        let (expired, acked, freed) = {
            let mut ledger = lock(&self.ledger);
            let Some(expired) = ledger.expire(reader, oldest_allowed) else {
                return;
            };
            (expired, ledger.acked(reader), ledger.take_acknowledged())
        };
        self.troubles.events.dropped(
            DroppedFor::Reader(&self.readers[reader].name),
            DropReason::TooOld,
            expired as u64,
        );
        self.advanced(reader, acked, freed);
    }

    fn expire_all(&self) {
        (0..self.readers.len()).for_each(|reader| self.expire(reader));
    }
}

impl Queue for DiskQueue {
    fn write(&self, records: Vec<Arc<Record>>) {
        let log = &*self.log;
        let mut written = Vec::with_capacity(records.len());
        {
            let mut writer = lock(&log.writer);
            for record in records {
                match log.append(&mut writer, &record) {
                    Ok(seq) => written.push(Queued { seq, record }),
                    Err(e) => {
                        log.troubles.events.dropped(
                            DroppedFor::Every,
                            DropReason::WriteError,
                            record.samples() as u64,
                        );
                        log.write_failed(
                            "write to",
                            &e,
                            "these samples are lost, sampling goes on",
                        );
                    }
                }
            }
        }
        for side in &log.readers {
            let mut cache = lock(&side.cache);
            for queued in &written {
                cache.push_written(queued.clone());
            }
        }
        log.expire_all();
        log.enforce_bound();
        // A reader that found nothing to read before these appends holds
        // only what they added: it is woken. Judged after the appends, under
        // the ledger's lock: a reader that acknowledged its last record
        // while they ran must not be missed (it would wait for
        // `notify_from` samples).
        let added: usize = written.iter().map(|q| q.record.samples()).sum();
        let ledger = lock(&log.ledger);
        for (reader, side) in log.readers.iter().enumerate() {
            let samples = ledger.stats(reader).samples;
            if samples <= added || samples >= side.notify_from.load(Ordering::Relaxed) {
                side.pushed.notify_one();
            }
        }
    }

    fn sync(&self) {
        if let Err(e) = lock(&self.log.writer).sync() {
            self.log
                .write_failed("fsync", &e, "what was written may not survive a power loss");
        }
    }

    fn tidy(&self) {
        self.log.expire_all();
        self.log.delete(Vec::new());
    }

    fn peek(&self, max_samples: usize) -> Vec<Queued> {
        let side = self.side();
        let mut reader = lock(&side.reader);
        self.log.expire(self.reader);
        let acked = lock(&self.log.ledger).acked(self.reader);
        lock(&side.cache).drop_before(acked);
        // May read past `cache_samples`: the batch asked for is what bounds memory here.
        reader.fill(&self.log.ledger, &side.cache, max_samples, |e| {
            self.log.troubles.log(format_args!("{e}"))
        });
        lock(&side.cache).batch(max_samples)
    }

    fn try_peek(&self, max_samples: usize) -> Option<Vec<Queued>> {
        let side = self.side();
        // A read in progress means the cache does not cover the head.
        let _reader = side.reader.try_lock().ok()?;
        self.log.expire(self.reader);
        let (acked, tail) = {
            let ledger = lock(&self.log.ledger);
            (ledger.acked(self.reader), ledger.next_seq())
        };
        let mut cache = lock(&side.cache);
        cache.drop_before(acked);
        cache
            .covers(max_samples, tail)
            .then(|| cache.batch(max_samples))
    }

    fn ack(&self, seq: u64) {
        let (acked, freed) = {
            let mut ledger = lock(&self.log.ledger);
            if !ledger.acknowledge(self.reader, seq) {
                return;
            }
            (ledger.acked(self.reader), ledger.take_acknowledged())
        };
        self.log.advanced(self.reader, acked, freed);
    }

    fn stats(&self) -> QueueStats {
        lock(&self.log.ledger).stats(self.reader)
    }

    fn pushed(&self) -> &Notify {
        &self.side().pushed
    }

    fn notify_from(&self, samples: usize) {
        self.side()
            .notify_from
            .store(samples.max(1), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoEvents;

    impl QueueEvents for NoEvents {
        fn dropped(&self, _: DroppedFor<'_>, _: DropReason, _: u64) {}
        fn write_failed(&self) {}
    }

    #[test]
    fn a_deletion_that_failed_is_tried_again() {
        let root = tempfile::TempDir::new().expect("dir");
        let dir = root.path().join("wal");
        let settings =
            WalSettings::new(dir.clone(), 1 << 20, Duration::from_secs(60), Fsync::Never);
        let (queue, _) = DiskQueue::open(settings, Arc::new(NoEvents)).expect("open");
        // A segment file that cannot be deleted yet: a directory stands in
        // for it (a read-only file system refuses the same way, even root).
        let segment = Segment::new(&dir, 7);
        fs::create_dir(&segment.path).expect("mkdir");
        queue.log.delete(vec![segment]);
        assert_eq!(lock(&queue.log.undeleted).len(), 1);
        // The obstacle goes; the file is there: the next tidy deletes it.
        let path = lock(&queue.log.undeleted)[0].clone();
        fs::remove_dir(&path).expect("rmdir");
        fs::write(&path, b"delivered").expect("write");
        queue.tidy();
        assert!(!path.exists());
        assert!(lock(&queue.log.undeleted).is_empty());
    }
}
