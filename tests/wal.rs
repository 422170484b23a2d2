//! The durable queue on a real file system: round trips, restarts, a crash
//! at every byte of the tail, segment rollover, the bounds and their
//! counters, corruption, and a model-based test that runs random operation
//! sequences against the log and against a plain in-memory model.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use redpush::testing::Kind;
use redpush::testing::SelfMetrics;
use redpush::testing::{Disk, DiskQueue, FileSystem, Fsync, SegmentFile, WalSettings, Writer};
use redpush::testing::{DropReason, HistogramSeries, NativeHistogram, Queue, Record, Series, Span};
use redpush::testing::{shape, target_labels};
use tempfile::TempDir;

fn now_ms() -> i64 {
    redpush::testing::now_ms()
}

/// A record whose series values identify it: `n` samples, each valued
/// `id`, of one of three targets. Records with more series than the ones
/// before them bring shapes their segment has not defined yet. Every
/// third record of two samples or more has a native histogram as its last
/// (a frame of version 3).
fn record(id: u64, n: usize) -> Arc<Record> {
    let instance = format!("127.0.0.1:{}", 6379 + id % 3);
    let natives = usize::from(id.is_multiple_of(3) && n >= 2);
    let histograms = (0..natives)
        .map(|_| HistogramSeries {
            shape: shape(
                "redis_commands_latencies_usec",
                Kind::Histogram,
                "",
                &[("cmd", "get")],
            ),
            histogram: NativeHistogram {
                count: id + 3,
                sum: id as f64 / 2.0,
                spans: vec![Span {
                    offset: (id % 5) as i32,
                    length: 2,
                }],
                deltas: vec![1, id as i64],
            },
        })
        .collect();
    Arc::new(Record {
        timestamp_ms: now_ms() - 1000 + id as i64,
        target: target_labels([("instance", instance.as_str()), ("job", "redis")]),
        histograms,
        series: (0..n - natives)
            .map(|i| Series {
                shape: shape(
                    &format!("redis_metric_{i}"),
                    Kind::Gauge,
                    "",
                    &[("db", &format!("db{}", i % 4))],
                ),
                value: id as f64,
            })
            .collect(),
    })
}

fn id_of(record: &Record) -> u64 {
    record.series[0].value as u64
}

fn settings(dir: &Path) -> WalSettings {
    let mut s = WalSettings::new(
        dir.join("wal"),
        64 * 1024 * 1024,
        Duration::from_secs(7200),
        Fsync::Always,
    );
    s.segment_bytes = 4096;
    s
}

fn open(settings: &WalSettings) -> (DiskQueue, Arc<SelfMetrics>) {
    let metrics = Arc::new(SelfMetrics::default());
    let (queue, _) = DiskQueue::open(settings.clone(), metrics.clone()).expect("open");
    (queue, metrics)
}

/// Ids of every pending record, oldest first (reads without acknowledging).
fn pending(queue: &dyn Queue) -> Vec<u64> {
    queue
        .peek(usize::MAX)
        .iter()
        .map(|q| id_of(&q.record))
        .collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .expect("wal dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    files.sort();
    files
}

#[test]
fn push_peek_ack_and_resume_after_restart() {
    let dir = TempDir::new().expect("dir");
    let s = settings(dir.path());
    {
        let (q, _) = open(&s);
        for id in 0..10 {
            q.push(record(id, 5));
        }
        let batch = q.peek(20);
        assert_eq!(
            batch.iter().map(|b| id_of(&b.record)).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        q.ack(batch[3].seq);
        let stats = q.stats();
        assert_eq!((stats.records, stats.samples), (6, 30));
        assert!(stats.bytes > 0);
    }
    let (q, _) = open(&s);
    assert_eq!(pending(&q), vec![4, 5, 6, 7, 8, 9]);
    let stats = q.stats();
    assert_eq!((stats.records, stats.samples), (6, 30));
    // The decoded record is the one that was written.
    let first = &q.peek(1)[0].record;
    assert_eq!(first.series, record(4, 5).series);
    assert_eq!(first.target, record(4, 5).target);
}

#[test]
fn a_batch_across_segments_is_all_there_after_a_restart() {
    let dir = TempDir::new().expect("dir");
    let mut s = settings(dir.path());
    s.segment_bytes = 1024;
    {
        let (q, _) = open(&s);
        q.push(record(0, 3));
        q.push_many((1..40).map(|id| record(id, 10)).collect());
        q.push(record(40, 3));
    }
    assert!(segments(dir.path()).len() > 3);
    let (q, _) = open(&s);
    assert_eq!(pending(&q), (0..41).collect::<Vec<_>>());
    for queued in q.peek(usize::MAX) {
        let id = id_of(&queued.record);
        let written = record(id, if id == 0 || id == 40 { 3 } else { 10 });
        assert_eq!(queued.record.series, written.series, "record {id}");
        assert_eq!(queued.record.target, written.target, "record {id}");
    }
}

#[test]
fn the_read_position_is_kept_in_place_and_a_torn_one_resends_rather_than_loses() {
    let dir = TempDir::new().expect("dir");
    let s = settings(dir.path());
    {
        let (q, _) = open(&s);
        for id in 0..10 {
            q.push(record(id, 5));
        }
        let batch = q.peek(15);
        q.ack(batch.last().expect("batch").seq);
    }
    let ack = dir.path().join("wal").join("ack");
    assert_eq!(
        std::fs::read_to_string(&ack).expect("ack"),
        format!("{:020}\n", 3)
    );
    // As an earlier version wrote it.
    std::fs::write(&ack, "5\n").expect("write");
    assert_eq!(pending(&open(&s).0), (5..10).collect::<Vec<_>>());
    // Torn by a power loss: everything still queued is sent again.
    std::fs::write(&ack, "000000\0\0garbage").expect("write");
    let (q, _) = open(&s);
    assert_eq!(pending(&q), (0..10).collect::<Vec<_>>());
    q.ack(q.peek(5)[0].seq);
    assert_eq!(
        std::fs::read_to_string(&ack).expect("ack"),
        format!("{:020}\n", 1)
    );
}

#[test]
fn the_writer_thread_writes_everything_before_it_ends() {
    use redpush::testing::Writer;
    let dir = TempDir::new().expect("dir");
    let s = settings(dir.path());
    {
        let (q, metrics) = open(&s);
        let q: Arc<dyn Queue> = Arc::new(q);
        let (writer, thread) = Writer::start(q.clone(), metrics.clone()).expect("writer");
        let second = writer.clone();
        for id in 0..200 {
            let w = if id % 2 == 0 { &writer } else { &second };
            w.push(record(id, 5));
        }
        drop((writer, second));
        thread.join();
        assert_eq!(pending(&*q), (0..200).collect::<Vec<_>>());
        assert_eq!(metrics.dropped_count(DropReason::QueueFull), 0);
    }
    // Synced before the thread ended: a new process finds all of it.
    let (q, _) = open(&s);
    assert_eq!(pending(&q), (0..200).collect::<Vec<_>>());
}

#[test]
fn records_read_back_share_their_shapes() {
    // The sender groups a batch by shared shape and target set: a backlog
    // read from disk must share them as the samplers' records do, or each
    // reading of a series would go out with its own copy of the labels.
    let dir = TempDir::new().expect("dir");
    let s = settings(dir.path());
    {
        let (q, _) = open(&s);
        for id in 0..4 {
            q.push(record(id, 2000));
        }
    }
    // Across segments too: they are read one run at a time.
    assert!(segments(dir.path()).len() > 1);
    let (q, _) = open(&s);
    let batch = q.peek(usize::MAX);
    assert_eq!(batch.len(), 4);
    let live = record(0, 2000);
    for queued in &batch {
        for (a, b) in live.series.iter().zip(&queued.record.series) {
            assert!(Arc::ptr_eq(&a.shape, &b.shape), "{:?} not shared", a.shape);
        }
    }
    // Records of one target share its set; different series keep different shapes.
    assert!(Arc::ptr_eq(
        &batch[0].record.target,
        &batch[3].record.target
    ));
    assert!(!Arc::ptr_eq(
        &batch[0].record.target,
        &batch[1].record.target
    ));
    let series = &batch[0].record.series;
    assert!(!Arc::ptr_eq(&series[0].shape, &series[1].shape));
}

#[test]
fn queue_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().expect("dir");
    let (q, _) = open(&settings(dir.path()));
    q.push(record(1, 1));
    let mode = std::fs::metadata(dir.path().join("wal"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn a_crash_at_every_byte_of_the_tail_loses_only_the_torn_record() {
    let dir = TempDir::new().expect("dir");
    let s = settings(dir.path());
    {
        let (q, _) = open(&s);
        q.push(record(1, 3));
        q.push(record(2, 3));
    }
    let file = segments(dir.path()).pop().expect("segment");
    let two = std::fs::read(&file).expect("read");
    {
        let (q, _) = open(&s);
        q.push(record(3, 3));
    }
    // `open` of the second run started a new segment for record 3.
    let last = segments(dir.path()).pop().expect("segment");
    let full = std::fs::read(&last).expect("read");
    assert!(!full.is_empty());
    for cut in 0..full.len() {
        std::fs::write(&last, &full[..cut]).expect("truncate");
        std::fs::write(&file, &two).expect("restore");
        let (q, _) = open(&s);
        assert_eq!(
            pending(&q),
            vec![1, 2],
            "cut at byte {cut} of {}",
            full.len()
        );
        // The queue works on: a new record lands after the good ones.
        q.push(record(4, 3));
        drop(q);
        let (q, _) = open(&s);
        assert_eq!(pending(&q), vec![1, 2, 4], "after the cut at byte {cut}");
        for extra in segments(dir.path())
            .into_iter()
            .filter(|p| *p != file && *p != last)
        {
            std::fs::remove_file(extra).expect("clean up");
        }
    }
}

#[test]
fn segments_roll_over_and_acknowledged_ones_are_deleted() {
    let dir = TempDir::new().expect("dir");
    let mut s = settings(dir.path());
    s.segment_bytes = 1024;
    let (q, _) = open(&s);
    for id in 0..100 {
        q.push(record(id, 10));
    }
    let files = segments(dir.path()).len();
    assert!(
        files > 5,
        "only {files} segments for 100 records of 1 KiB segments"
    );
    let batch = q.peek(500);
    q.ack(batch.last().expect("batch").seq);
    assert!(
        segments(dir.path()).len() < files,
        "acknowledged segments stay on disk"
    );
    assert_eq!(pending(&q), (50..100).collect::<Vec<_>>());
    let batch = q.peek(usize::MAX);
    q.ack(batch.last().expect("batch").seq);
    assert_eq!(q.stats().records, 0);
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "only the segment being written stays"
    );
}

#[test]
fn the_bound_drops_oldest_segments_and_counts_them() {
    let dir = TempDir::new().expect("dir");
    let mut s = settings(dir.path());
    s.max_disk_bytes = 16 * 1024;
    let (q, metrics) = open(&s);
    for id in 0..200 {
        q.push(record(id, 10));
    }
    let stats = q.stats();
    assert!(
        stats.bytes <= s.max_disk_bytes,
        "{} bytes on disk",
        stats.bytes
    );
    let ids = pending(&q);
    // Oldest first, no holes: what is left is the newest run.
    assert_eq!(ids.last(), Some(&199));
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    let lost = 200 - ids.len() as u64;
    assert!(lost > 0, "200 records fit in {} bytes", s.max_disk_bytes);
    assert_eq!(metrics.dropped_count(DropReason::QueueFull), lost * 10);
    assert_eq!(stats.samples as u64, ids.len() as u64 * 10);
}

#[test]
fn samples_older_than_max_age_are_dropped_as_too_old() {
    let dir = TempDir::new().expect("dir");
    let mut s = settings(dir.path());
    s.max_age = Duration::from_secs(60);
    let (q, metrics) = open(&s);
    let mut old = Record::clone(&record(1, 4));
    old.timestamp_ms = now_ms() - 120_000;
    q.push(Arc::new(old));
    q.push(record(2, 4));
    assert_eq!(pending(&q), vec![2]);
    assert_eq!(metrics.dropped_count(DropReason::TooOld), 4);
    assert_eq!(q.stats().records, 1);
}

#[test]
fn a_corrupt_older_segment_does_not_stop_the_queue() {
    let dir = TempDir::new().expect("dir");
    let s = settings(dir.path());
    {
        let (q, _) = open(&s);
        for id in 0..200 {
            q.push(record(id, 10));
        }
    }
    let files = segments(dir.path());
    assert!(files.len() >= 3, "{} segments", files.len());
    let mut bytes = std::fs::read(&files[0]).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&files[0], bytes).expect("write");
    let metrics = Arc::new(SelfMetrics::default());
    let (q, report) = DiskQueue::open(s.clone(), metrics).expect("open");
    assert_eq!(report.corrupt_segments.len(), 1);
    let ids = pending(&q);
    assert!(ids.contains(&199) && ids.contains(&0), "{ids:?}");
    assert!(ids.len() < 200, "the damaged records cannot come back");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "still in order: {ids:?}"
    );
}

#[test]
fn an_unwritable_directory_is_an_error_and_a_counter_not_a_crash() {
    let dir = TempDir::new().expect("dir");
    let s = settings(dir.path());
    let (q, metrics) = open(&s);
    q.push(record(1, 2));
    // Take the directory away under the queue and make it a file.
    std::fs::remove_dir_all(dir.path().join("wal")).expect("remove");
    std::fs::write(dir.path().join("wal"), b"not a directory").expect("file");
    // Force a new segment: enough records to roll over.
    for id in 2..100 {
        q.push(record(id, 10));
    }
    assert!(metrics.dropped_count(DropReason::WriteError) > 0);
    let text = {
        let mut out = String::new();
        redpush::testing::write_families(
            &mut out,
            &metrics.families(&[("".to_owned(), q.stats())], now_ms()),
            &[],
        );
        out
    };
    assert!(
        text.lines()
            .any(|l| l.starts_with("redpush_queue_write_errors_total ") && !l.ends_with(" 0")),
        "{text}"
    );
    // Pushing goes on without panicking, and the disk coming back is used again.
    std::fs::remove_file(dir.path().join("wal")).expect("remove");
    std::fs::create_dir(dir.path().join("wal")).expect("dir");
    for id in 100..200 {
        q.push(record(id, 10));
    }
    assert!(pending(&q).contains(&199));
}

/// Delivers 400 records of about 300 bytes each through a queue whose
/// segments (16 MiB) are far larger than its 64 KiB disk.
fn deliver_through_a_small_disk(tells_free: bool) {
    let dir = TempDir::new().expect("dir");
    let mut s = settings(dir.path());
    s.segment_bytes = 16 * 1024 * 1024;
    let disk = FullDisk::small(64 * 1024, tells_free);
    let metrics = Arc::new(SelfMetrics::default());
    let (q, _) = DiskQueue::open_on(s, metrics.clone(), Arc::new(disk.clone())).expect("open");
    let mut delivered = Vec::new();
    for id in 0..400 {
        q.push(record(id, 40));
        let batch = q.peek(usize::MAX);
        delivered.extend(batch.iter().map(|b| id_of(&b.record)));
        q.ack(batch.last().expect("batch").seq);
        assert!(disk.used() <= 64 * 1024);
    }
    assert_eq!(delivered, (0..400).collect::<Vec<_>>());
    assert_eq!(metrics.dropped_count(DropReason::WriteError), 0);
}

#[test]
fn a_disk_smaller_than_a_segment_keeps_delivering() {
    // The free space sizes the segments at open.
    deliver_through_a_small_disk(true);
    // Without it, the first failed append rolls over to a new segment and
    // deletes what was delivered, and is tried again.
    deliver_through_a_small_disk(false);
}

#[test]
fn every_acknowledged_segment_is_deleted_at_open_the_last_too() {
    let dir = TempDir::new().expect("dir");
    let s = settings(dir.path());
    {
        let (q, _) = open(&s);
        for id in 0..3 {
            q.push(record(id, 3));
        }
        let batch = q.peek(usize::MAX);
        q.ack(batch.last().expect("batch").seq);
        assert_eq!(
            segments(dir.path()).len(),
            1,
            "the last one stays while written"
        );
    }
    let (q, _) = open(&s);
    assert!(
        segments(dir.path()).is_empty(),
        "{:?}",
        segments(dir.path())
    );
    // Numbering goes on past the acknowledged records.
    q.push(record(3, 3));
    let batch = q.peek(usize::MAX);
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].seq, 3);
}

#[test]
fn max_age_is_applied_while_nothing_reads_the_queue() {
    let dir = TempDir::new().expect("dir");
    let mut s = settings(dir.path());
    s.max_age = Duration::from_millis(300);
    let (q, metrics) = open(&s);
    let q: Arc<dyn Queue> = Arc::new(q);
    let (writer, thread) = Writer::start(q.clone(), metrics.clone()).expect("writer");
    for id in 0..20 {
        writer.push(record(id, 5));
    }
    // Nothing peeks (the receiver is down): the writer thread's tidy drops
    // them once they are older than max_age.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while metrics.dropped_count(DropReason::TooOld) < 100 {
        assert!(std::time::Instant::now() < deadline, "{:?}", q.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(metrics.dropped_count(DropReason::TooOld), 100);
    assert_eq!(q.stats().records, 0);
    assert!(
        segments(dir.path()).len() <= 1,
        "only the segment written to stays"
    );
    drop(writer);
    thread.join();
}

// ---------------------------------------------------------------------------
// Model-based: random operations against the log and a VecDeque.

/// The file system, with appends that fail as a full disk's do (after
/// writing part of the frame): the next `failing` ones, on command; or,
/// for a disk of `capacity` bytes, any that would take the files it
/// created past it. `tells_free`: whether it answers how much is free (a
/// file system whose free space cannot be read leaves the queue to find
/// out by failing).
#[derive(Clone, Default)]
struct FullDisk {
    failing: Arc<AtomicUsize>,
    capacity: Option<u64>,
    tells_free: bool,
    files: Arc<std::sync::Mutex<Vec<PathBuf>>>,
}

impl FullDisk {
    fn small(capacity: u64, tells_free: bool) -> FullDisk {
        FullDisk {
            capacity: Some(capacity),
            tells_free,
            ..FullDisk::default()
        }
    }

    /// Bytes of the files it created that are still there.
    fn used(&self) -> u64 {
        let files = self.files.lock().expect("lock");
        files
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// How much of a frame of `len` bytes fits: all, or what is written
    /// before the append fails.
    fn room_for(&self, len: usize) -> Result<(), usize> {
        let fail = self
            .failing
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(len / 2);
        }
        match self.capacity {
            Some(capacity) => {
                let free = capacity.saturating_sub(self.used()) as usize;
                if len > free { Err(free) } else { Ok(()) }
            }
            None => Ok(()),
        }
    }
}

struct FullDiskFile {
    file: Box<dyn SegmentFile>,
    disk: FullDisk,
}

impl Disk for FullDisk {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn SegmentFile>> {
        self.files.lock().expect("lock").push(path.to_owned());
        Ok(Box::new(FullDiskFile {
            file: FileSystem.create(path)?,
            disk: self.clone(),
        }))
    }

    fn available(&self, _dir: &Path) -> Option<u64> {
        let capacity = self.capacity.filter(|_| self.tells_free)?;
        Some(capacity.saturating_sub(self.used()))
    }
}

impl SegmentFile for FullDiskFile {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Err(fits) = self.disk.room_for(bytes.len()) {
            self.file.append(&bytes[..fits])?;
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
        self.file.append(bytes)
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.file.truncate(len)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync()
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// A record of this many series; `true`: stamped three hours ago.
    Push(usize, bool),
    /// Several records in one append (one fsync).
    PushMany(Vec<usize>),
    /// Several records handed to the writer thread, which ends once it has
    /// written them.
    ThroughWriter(Vec<usize>),
    /// Peek up to n samples and acknowledge k of the returned records.
    PeekAck(usize, usize),
    /// The next n appends fail (a full disk).
    FailWrites(usize),
    Restart,
    /// Crash while writing: the last `n` bytes of the newest segment are lost.
    TornTail(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..20, proptest::bool::weighted(0.1)).prop_map(|(n, old)| Op::Push(n, old)),
        2 => proptest::collection::vec(1usize..20, 1..12).prop_map(Op::PushMany),
        1 => proptest::collection::vec(1usize..20, 1..12).prop_map(Op::ThroughWriter),
        3 => (1usize..200, 0usize..5).prop_map(|(n, k)| Op::PeekAck(n, k)),
        1 => (1usize..6).prop_map(Op::FailWrites),
        1 => Just(Op::Restart),
        1 => (1usize..40).prop_map(Op::TornTail),
    ]
}

/// A pending record as the model knows it.
#[derive(Clone, Copy, Debug)]
struct Pending {
    id: u64,
    samples: usize,
    /// Three hours ago for an old record (max_age is two).
    timestamp_ms: i64,
}

impl Pending {
    fn old(&self) -> bool {
        self.timestamp_ms < now_ms() - 2 * 3600 * 1000
    }
}

/// The record of `p`, as it was written.
fn written(p: &Pending) -> Arc<Record> {
    let mut r = record(p.id, p.samples);
    Arc::make_mut(&mut r).timestamp_ms = p.timestamp_ms;
    r
}

/// The log under test and what the model expects of it.
struct ModelRun {
    settings: WalSettings,
    disk: FullDisk,
    queue: Arc<DiskQueue>,
    metrics: Arc<SelfMetrics>,
    /// Pending records, oldest first.
    model: VecDeque<Pending>,
    next_id: u64,
    /// The newest record written since the last restart, while it is the
    /// last frame of the newest segment.
    tail: Option<u64>,
    /// Samples the model expects dropped, by reason.
    dropped: [u64; 3],
}

const FULL: usize = 0;
const OLD: usize = 1;
const WRITE: usize = 2;

impl ModelRun {
    fn new(dir: &Path) -> ModelRun {
        let mut settings = settings(dir);
        settings.segment_bytes = 2048;
        settings.max_disk_bytes = 6 * 1024;
        settings.cache_samples = 50;
        // Restarts here are clean drops of the queue: fsync adds time, not coverage.
        settings.fsync = Fsync::Never;
        let disk = FullDisk::default();
        let (queue, metrics) = Self::open(&settings, &disk);
        ModelRun {
            settings,
            disk,
            queue,
            metrics,
            model: VecDeque::new(),
            next_id: 0,
            tail: None,
            dropped: [0; 3],
        }
    }

    fn open(settings: &WalSettings, disk: &FullDisk) -> (Arc<DiskQueue>, Arc<SelfMetrics>) {
        let metrics = Arc::new(SelfMetrics::default());
        let (queue, _) =
            DiskQueue::open_on(settings.clone(), metrics.clone(), Arc::new(disk.clone()))
                .expect("open");
        (Arc::new(queue), metrics)
    }

    /// The next records to write; those the disk will refuse are counted
    /// as dropped instead of pending. A failed append is tried once more in
    /// a new segment: a record is lost when both attempts fail.
    fn next(&mut self, sizes: &[usize], old: bool) -> Vec<Arc<Record>> {
        let mut failing = self.disk.failing.load(Ordering::Relaxed);
        let mut out = Vec::new();
        for &samples in sizes {
            let age = if old { 3 * 3600 * 1000 } else { 0 };
            let p = Pending {
                id: self.next_id,
                samples,
                timestamp_ms: now_ms() - age,
            };
            self.next_id += 1;
            out.push(written(&p));
            if failing >= 2 {
                failing -= 2;
                self.dropped[WRITE] += samples as u64;
            } else {
                failing = 0;
                self.model.push_back(p);
                self.tail = Some(p.id);
            }
        }
        out
    }

    fn apply(&mut self, op: Op, dir: &Path) -> Result<(), TestCaseError> {
        let writes = matches!(op, Op::Push(..) | Op::PushMany(_) | Op::ThroughWriter(_));
        match op {
            Op::Push(n, old) => {
                let records = self.next(&[n], old);
                self.queue.push(records[0].clone());
            }
            Op::PushMany(sizes) => {
                let records = self.next(&sizes, false);
                self.queue.push_many(records);
            }
            Op::ThroughWriter(sizes) => {
                let records = self.next(&sizes, false);
                let queue: Arc<dyn Queue> = self.queue.clone();
                let (writer, thread) = Writer::start(queue, self.metrics.clone()).expect("writer");
                for r in records {
                    writer.push(r);
                }
                drop(writer);
                thread.join();
            }
            Op::PeekAck(max, k) => self.peek_ack(max, k)?,
            Op::FailWrites(n) => self.disk.failing.store(n, Ordering::Relaxed),
            Op::Restart => self.restart(),
            Op::TornTail(cut) => {
                let queue =
                    std::mem::replace(&mut self.queue, Self::open(&self.settings, &self.disk).0);
                drop(queue);
                self.tear(cut, dir);
                self.restart();
            }
        }
        if writes {
            // A write drops what is too old at the head, as a read does.
            self.expire_head();
        }
        self.bound()
    }

    fn peek_ack(&mut self, max: usize, k: usize) -> Result<(), TestCaseError> {
        let batch = self.queue.peek(max);
        self.expire_head();
        let mut expected = Vec::new();
        let mut samples = 0;
        for p in &self.model {
            if !expected.is_empty() && samples + p.samples > max {
                break;
            }
            samples += p.samples;
            expected.push(*p);
        }
        prop_assert_eq!(
            batch.iter().map(|b| id_of(&b.record)).collect::<Vec<_>>(),
            expected.iter().map(|p| p.id).collect::<Vec<_>>()
        );
        // Read back whole: its target, stamp and every series' shape and value.
        for (b, p) in batch.iter().zip(&expected) {
            prop_assert_eq!(&*b.record, &*written(p));
        }
        if k > 0 && !batch.is_empty() {
            let k = k.min(batch.len());
            self.queue.ack(batch[k - 1].seq);
            self.model.drain(..k);
        }
        Ok(())
    }

    /// What a peek drops first: records older than max_age at the head.
    fn expire_head(&mut self) {
        while self.model.front().is_some_and(Pending::old) {
            let p = self.model.pop_front().expect("front");
            self.dropped[OLD] += p.samples as u64;
        }
    }

    fn restart(&mut self) {
        // The counters are the process's: they start again with it.
        let (queue, metrics) = Self::open(&self.settings, &self.disk);
        self.queue = queue;
        self.metrics = metrics;
        self.dropped = [0; 3];
        self.tail = None;
    }

    /// Cuts `cut` bytes off the newest segment, within its last record.
    fn tear(&mut self, cut: usize, dir: &Path) {
        let Some(path) = segments(dir).pop() else {
            return;
        };
        let bytes = std::fs::read(&path).expect("read");
        // Only a cut inside the newest record is a torn write; limit the
        // cut to it (its frame is at least 21 bytes).
        if let Some(id) = self.tail
            && !bytes.is_empty()
        {
            let cut = cut.min(20).min(bytes.len());
            std::fs::write(&path, &bytes[..bytes.len() - cut]).expect("truncate");
            if self.model.back().map(|p| p.id) == Some(id) {
                self.model.pop_back();
            }
        }
    }

    /// What the disk bound took: records from the head, counted as
    /// `queue_full`; then the counts and counters agree with the model.
    fn bound(&mut self) -> Result<(), TestCaseError> {
        let stats = self.queue.stats();
        prop_assert!(
            stats.records <= self.model.len(),
            "{stats:?} {:?}",
            self.model
        );
        while self.model.len() > stats.records {
            let p = self.model.pop_front().expect("front");
            self.dropped[FULL] += p.samples as u64;
        }
        prop_assert!(
            stats.bytes <= self.settings.max_disk_bytes,
            "{} bytes over the bound",
            stats.bytes
        );
        prop_assert_eq!(
            stats.samples,
            self.model.iter().map(|p| p.samples).sum::<usize>()
        );
        let counted = [
            DropReason::QueueFull,
            DropReason::TooOld,
            DropReason::WriteError,
        ]
        .map(|reason| self.metrics.dropped_count(reason));
        prop_assert_eq!(counted, self.dropped);
        Ok(())
    }
}

proptest! {
    // 64 cases in CI; PROPTEST_CASES=5000 for a longer search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    /// Whatever the operations, the log holds the records the model holds,
    /// in order, and drops exactly the ones the model drops, for the reason
    /// the model drops them: the oldest to the disk bound, old ones at the
    /// head to max_age, refused writes to the disk, a torn newest record to
    /// a crash.
    #[test]
    fn the_log_behaves_like_a_fifo(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = TempDir::new().expect("dir");
        let mut run = ModelRun::new(dir.path());
        for op in ops {
            run.apply(op, dir.path())?;
        }
        let pending = pending(&*run.queue);
        run.expire_head();
        prop_assert_eq!(pending, run.model.iter().map(|p| p.id).collect::<Vec<_>>());
        run.bound()?;
    }
}

/// Whether a notification of `pushed` is waiting; takes it.
fn notified(queue: &dyn Queue) -> bool {
    use std::future::Future;
    let mut wait = std::pin::pin!(queue.pushed().notified());
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    wait.as_mut().poll(&mut context).is_ready()
}

#[test]
fn writes_notify_from_empty_and_from_a_full_batch() {
    let dir = TempDir::new().expect("dir");
    let (q, _) = open(&settings(dir.path()));
    // By default every write notifies.
    q.push(record(0, 5));
    assert!(notified(&q));
    q.push(record(1, 5));
    assert!(notified(&q));
    q.ack(q.peek(usize::MAX).last().expect("records").seq);

    q.notify_from(12);
    q.push(record(2, 5));
    assert!(notified(&q), "a write into an empty queue notifies");
    q.push(record(3, 5));
    assert!(!notified(&q), "10 samples of the 12 asked for");
    q.push(record(4, 5));
    assert!(notified(&q), "15 samples of the 12 asked for");
    q.push(record(5, 5));
    assert!(notified(&q), "still over");
    q.ack(q.peek(usize::MAX).last().expect("records").seq);
    q.push(record(6, 5));
    assert!(notified(&q), "empty again");
}

#[test]
fn try_peek_serves_what_is_kept_decoded_and_leaves_disk_reads_to_peek() {
    let dir = TempDir::new().expect("dir");
    let s = settings(dir.path());
    {
        let (q, _) = open(&s);
        q.push(record(0, 5));
        q.push(record(1, 5));
        let batch = q.try_peek(usize::MAX).expect("just written: kept decoded");
        assert_eq!(
            batch.iter().map(|b| id_of(&b.record)).collect::<Vec<_>>(),
            [0, 1]
        );
    }
    // After a restart the backlog is on disk only: try_peek declines,
    // peek reads it, and then it is kept decoded.
    let (q, _) = open(&s);
    assert!(q.try_peek(usize::MAX).is_none());
    assert_eq!(pending(&q), [0, 1]);
    let batch = q.try_peek(usize::MAX).expect("read by peek");
    assert_eq!(batch.len(), 2);
}

/// Two readers over one log (two remote-write endpoints): each reads every
/// record from its own place, a segment is deleted only once both are past
/// it, each resumes at its own place after a restart, and the bound drops
/// only from the reader that is behind.
#[test]
fn two_readers_each_take_every_record_and_free_segments_together() {
    let dir = TempDir::new().expect("dir");
    let mut s = settings(dir.path());
    s.segment_bytes = 1024;
    s.readers = vec!["local".to_owned(), "cloud".to_owned()];
    {
        let (local, _) = open(&s);
        let cloud = local.reader("cloud").expect("the second reader");
        assert!(local.reader("nobody").is_none());
        for id in 0..30 {
            local.push(record(id, 5));
        }
        assert!(segments(dir.path()).len() > 2, "several segments to free");
        let all: Vec<u64> = (0..30).collect();
        assert_eq!(pending(&local), all);
        assert_eq!(pending(&cloud), all, "what one reader wrote, both read");
        // The local endpoint takes everything; the cloud one is down.
        let batch = local.peek(usize::MAX);
        local.ack(batch.last().expect("records").seq);
        assert_eq!(local.stats().records, 0);
        assert_eq!(cloud.stats().records, 30);
        assert!(
            segments(dir.path()).len() > 2,
            "kept while cloud lacks them"
        );
        // The cloud endpoint takes the first ten.
        let batch = cloud.peek(usize::MAX);
        cloud.ack(batch[9].seq);
        assert_eq!(pending(&cloud), (10..30).collect::<Vec<_>>());
    }
    let (local, _) = open(&s);
    let cloud = local.reader("cloud").expect("reader");
    assert!(pending(&local).is_empty(), "local resumes past everything");
    assert_eq!(pending(&cloud), (10..30).collect::<Vec<_>>());
    assert!(dir.path().join("wal/ack-local").exists());
    assert!(dir.path().join("wal/ack-cloud").exists());
    // `redpush wal inspect` names each reader; pending is the one behind's.
    let summary = redpush::testing::inspect(&dir.path().join("wal")).expect("inspect");
    assert!(
        summary.contains("reader cloud: acknowledged up to record 10\n"),
        "{summary}"
    );
    assert!(
        summary.contains("reader local: acknowledged up to record 30\n"),
        "{summary}"
    );
    assert!(
        summary.contains("pending: 20 records, 100 samples"),
        "{summary}"
    );
    let batch = cloud.peek(usize::MAX);
    cloud.ack(batch.last().expect("records").seq);
    local.push(record(30, 5));
    assert!(
        segments(dir.path()).len() <= 1,
        "both past every full segment: {:?}",
        segments(dir.path())
    );
    assert_eq!(pending(&local), vec![30]);
    assert_eq!(pending(&cloud), vec![30]);
}

/// The disk bound applies to each reader alone: the one behind loses its
/// oldest samples (counted), the one that keeps up loses nothing.
#[test]
fn the_bound_drops_only_from_the_reader_behind() {
    let dir = TempDir::new().expect("dir");
    let mut s = settings(dir.path());
    s.segment_bytes = 1024;
    s.max_disk_bytes = 4 * 1024;
    s.readers = vec!["fast".to_owned(), "down".to_owned()];
    let (fast, metrics) = open(&s);
    let down = fast.reader("down").expect("reader");
    for id in 0..200 {
        fast.push(record(id, 5));
        let batch = fast.peek(usize::MAX);
        fast.ack(batch.last().expect("record").seq);
    }
    assert_eq!(fast.stats().records, 0, "the fast reader lost nothing");
    let left = pending(&down);
    assert!(left.len() < 200 && left.last() == Some(&199), "{left:?}");
    let dropped = metrics.dropped_count(DropReason::QueueFull);
    assert_eq!(dropped, (200 - left.len() as u64) * 5);
    let bytes: u64 = segments(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).expect("file").len())
        .sum();
    assert!(bytes <= s.max_disk_bytes + s.segment_bytes, "{bytes}");
}

/// A disk whose next append, once armed, says so and waits to be let go:
/// a reader can act while a write is under way.
#[derive(Clone)]
struct GatedDisk {
    armed: Arc<std::sync::atomic::AtomicBool>,
    entered: std::sync::mpsc::SyncSender<()>,
    release: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
}

struct GatedFile {
    file: Box<dyn SegmentFile>,
    disk: GatedDisk,
}

impl Disk for GatedDisk {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(GatedFile {
            file: FileSystem.create(path)?,
            disk: self.clone(),
        }))
    }
}

impl SegmentFile for GatedFile {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.disk.armed.swap(false, Ordering::SeqCst) {
            let _ = self.disk.entered.send(());
            let _ = self.disk.release.lock().expect("lock").recv();
        }
        self.file.append(bytes)
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.file.truncate(len)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync()
    }
}

#[test]
fn a_reader_that_empties_its_backlog_during_a_write_is_woken_by_it() {
    let dir = TempDir::new().expect("dir");
    let (entered_tx, entered) = std::sync::mpsc::sync_channel(1);
    let (release, release_rx) = std::sync::mpsc::channel();
    let disk = GatedDisk {
        armed: Arc::default(),
        entered: entered_tx,
        release: Arc::new(std::sync::Mutex::new(release_rx)),
    };
    let metrics = Arc::new(SelfMetrics::default());
    let (q, _) =
        DiskQueue::open_on(settings(dir.path()), metrics, Arc::new(disk.clone())).expect("open");
    let q = Arc::new(q);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    // Like the sender: woken by a write that finds it with nothing to
    // read, or by a full batch, which this test never reaches.
    q.notify_from(1_000_000);
    q.push(record(1, 10));
    runtime.block_on(q.pushed().notified());

    // The next write is under way (its append waits) while the reader
    // still holds record 1; the reader then takes it, and has nothing.
    disk.armed.store(true, Ordering::SeqCst);
    let writing = {
        let q = q.clone();
        std::thread::spawn(move || q.push(record(2, 10)))
    };
    entered.recv().expect("the write reached the disk");
    let head = q.peek(1_000);
    assert_eq!(head.len(), 1);
    q.ack(head[0].seq);
    assert_eq!(q.stats().records, 0);
    release.send(()).expect("release");
    writing.join().expect("write");

    // The write must wake it: else it would wait for a full batch.
    let woken = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), q.pushed().notified()).await
    });
    assert!(woken.is_ok(), "the reader was not woken by the write");
    assert_eq!(id_of(&q.peek(1_000)[0].record), 2);
}
