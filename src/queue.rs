//! The queue between the targets and the sender.
//!
//! Targets push one [`Record`] per reading; the sender peeks a batch from
//! the head, sends it, and acknowledges it only once the receiver accepted
//! (or finally rejected) it, so a record is never lost between the two.
//! The implementation is the durable log in `wal/`; targets hand their
//! records to it through a [`Writer`]. What the queue loses (a full disk,
//! an old backlog) it reports through [`QueueEvents`], which the agent's
//! counters implement.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::warn;

use crate::log_throttle::LogThrottle;
use crate::series::Record;

/// Why samples were dropped rather than delivered:
/// `redpush_samples_dropped_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The queue reached `max_disk_bytes`, or its disk fell behind.
    QueueFull,
    /// Older than `max_age` before they could be sent.
    TooOld,
    /// The receiver refused the batch for good (a 4xx).
    Rejected,
    /// The disk refused the write.
    WriteError,
    /// A sample not later than its series' last one in the same request.
    OutOfOrder,
}

impl DropReason {
    /// Every reason, in the order the counters are reported.
    pub const ALL: [DropReason; 5] = [
        DropReason::QueueFull,
        DropReason::TooOld,
        DropReason::Rejected,
        DropReason::WriteError,
        DropReason::OutOfOrder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::TooOld => "too_old",
            DropReason::Rejected => "rejected",
            DropReason::WriteError => "write_error",
            DropReason::OutOfOrder => "out_of_order",
        }
    }
}

/// Whose samples were dropped: a queue has a reader per remote-write
/// endpoint, and a sample a reader drops is lost to its endpoint only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DroppedFor<'a> {
    /// Lost before any reader had it (the disk refused it or fell behind).
    Every,
    /// Dropped from this reader's backlog (its bound, `max_age`).
    Reader(&'a str),
}

impl DroppedFor<'_> {
    /// Whether reader `name` lost the samples.
    pub fn includes(self, name: &str) -> bool {
        match self {
            DroppedFor::Every => true,
            DroppedFor::Reader(reader) => reader == name,
        }
    }
}

/// Where the queue reports what it could not keep.
pub trait QueueEvents: Send + Sync {
    /// `samples` were dropped for `reason`, by `by`.
    fn dropped(&self, by: DroppedFor<'_>, reason: DropReason, samples: u64);
    /// A write or fsync of the queue's files failed.
    fn write_failed(&self);
}

/// A record as handed out by [`Queue::peek`], with the sequence number to
/// acknowledge it by.
#[derive(Clone, Debug)]
pub struct Queued {
    pub seq: u64,
    pub record: Arc<Record>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueueStats {
    pub records: usize,
    pub samples: usize,
    /// Bytes the queue occupies on disk (0 for a queue in memory).
    pub bytes: u64,
    /// Timestamp of the oldest queued record, if any.
    pub oldest_timestamp_ms: Option<i64>,
}

pub trait Queue: Send + Sync {
    /// Appends a record. Never blocks the sampler: a full queue drops its
    /// oldest records and counts them. Shared, because the agent keeps the
    /// same record as the target's latest reading.
    fn push(&self, record: Arc<Record>) {
        self.push_many(vec![record]);
    }
    /// Appends several records and makes them durable (one fsync for all).
    fn push_many(&self, records: Vec<Arc<Record>>) {
        self.write(records);
        self.sync();
    }
    /// Appends records without waiting for the disk: once written they
    /// survive the agent's death (`kill -9`), and after the next `sync` a
    /// power loss too.
    fn write(&self, records: Vec<Arc<Record>>);
    /// Makes everything written so far durable (an fsync, unless the queue
    /// is configured to leave that to the system).
    fn sync(&self);
    /// Upkeep that must not wait for a write or a read: samples older than
    /// `max_age` dropped (and their disk freed) while the receiver is down,
    /// a failed deletion tried again. The writer thread calls it every
    /// [`TIDY_EVERY`].
    fn tidy(&self) {}
    /// Records from the head, oldest first, up to `max_samples` samples in
    /// all (but at least one record when the queue is not empty).
    fn peek(&self, max_samples: usize) -> Vec<Queued>;
    /// What `peek` gives, when it can be had without reading the disk
    /// (the records are kept decoded); `None` when `peek` would read, which
    /// may block.
    fn try_peek(&self, max_samples: usize) -> Option<Vec<Queued>>;
    /// Removes every record up to and including `seq`.
    fn ack(&self, seq: u64);
    fn stats(&self) -> QueueStats;
    /// Notified by a write that finds the queue empty, or that leaves at
    /// least the samples asked for with `notify_from`.
    fn pushed(&self) -> &Notify;
    /// How many queued samples make a write notify `pushed` (default 1:
    /// every write). The sender waits for a full batch or a deadline; with
    /// many targets a write comes every few milliseconds, and waking it for
    /// each one only to wait again was a context switch per reading.
    fn notify_from(&self, samples: usize);
}

/// Records waiting for the writer thread at most: at 1000 targets every
/// 10 s, ten seconds of readings.
const WAITING: usize = 1024;

/// How long a written record waits for its fsync at most. An fsync costs
/// the agent about as much CPU as encoding a reading's request; sharing one
/// among every reading of this window (ten of them at 1000 targets) instead
/// of one per reading makes the agent's whole CPU about a tenth lower. What
/// the window can lose is a power loss's last tenth of a second of
/// readings, of which the one being taken is lost anyway.
pub(crate) const SYNC_WINDOW: Duration = Duration::from_millis(100);

/// Hands records to the queue from a thread of its own, so that a target
/// never waits for the disk and the runtime's workers never block on a
/// write. The thread writes every record as soon as it gets it (once
/// written, a record survives `kill -9`; it is visible to the sender at
/// once) and fsyncs at most `SYNC_WINDOW` after the first record not synced
/// yet, once for all the records written meanwhile.
#[derive(Clone)]
pub struct Writer {
    tx: SyncSender<Arc<Record>>,
    events: Arc<dyn QueueEvents>,
    behind: Arc<LogThrottle>,
}

/// The thread behind the [`Writer`]s: it ends, having written everything
/// handed to it, once every `Writer` is dropped.
pub struct WriterThread(JoinHandle<()>);

impl Writer {
    pub fn start(
        queue: Arc<dyn Queue>,
        events: Arc<dyn QueueEvents>,
    ) -> std::io::Result<(Writer, WriterThread)> {
        let (tx, rx) = std::sync::mpsc::sync_channel(WAITING);
        let thread = std::thread::Builder::new()
            .name("redpush-queue".to_owned())
            .spawn(move || write_all(&*queue, &rx))?;
        let writer = Writer {
            tx,
            events,
            behind: Arc::default(),
        };
        Ok((writer, WriterThread(thread)))
    }

    /// Never waits. When the disk has fallen `WAITING` records behind (a
    /// stalled or failing disk), the record is dropped and counted as
    /// `queue_full` rather than held in memory without bound.
    pub fn push(&self, record: Arc<Record>) {
        let record = match self.tx.try_send(record) {
            Ok(()) => return,
            Err(TrySendError::Full(record) | TrySendError::Disconnected(record)) => record,
        };
        self.events.dropped(
            DroppedFor::Every,
            DropReason::QueueFull,
            record.samples() as u64,
        );
        if self.behind.ready() {
            warn!(
                "the queue's disk is {WAITING} readings behind; readings are dropped until it catches up (more within a minute are only counted)"
            );
        }
    }
}

impl WriterThread {
    /// Waits until everything handed to the writers is written. Blocks.
    pub fn join(self) {
        let _ = self.0.join();
    }
}

/// How often the writer thread tidies the queue (`Queue::tidy`).
pub(crate) const TIDY_EVERY: Duration = Duration::from_secs(1);

fn write_all(queue: &dyn Queue, rx: &Receiver<Arc<Record>>) {
    // When the records written but not synced yet must be synced.
    let mut sync_due: Option<Instant> = None;
    let mut tidy_due = Instant::now() + TIDY_EVERY;
    loop {
        let due = sync_due.map_or(tidy_due, |sync| sync.min(tidy_due));
        let received = rx.recv_timeout(due.saturating_duration_since(Instant::now()));
        match received {
            Ok(first) => {
                let mut batch = vec![first];
                batch.extend(rx.try_iter().take(WAITING));
                queue.write(batch);
                sync_due.get_or_insert_with(|| Instant::now() + SYNC_WINDOW);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                // Every writer is gone: what they handed over is written.
                queue.sync();
                return;
            }
        }
        if sync_due.is_some_and(|due| Instant::now() >= due) {
            queue.sync();
            sync_due = None;
        }
        if Instant::now() >= tidy_due {
            queue.tidy();
            tidy_due = Instant::now() + TIDY_EVERY;
        }
    }
}
