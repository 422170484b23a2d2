//! The queue between the mapper and the sender.
//!
//! Samplers push one [`Record`] per reading; the sender peeks a batch from
//! the head, sends it, and acknowledges it only once the receiver accepted
//! (or finally rejected) it, so a record is never lost between the two.
//! The implementation is the durable log in `wal/`.

use std::sync::Arc;

use tokio::sync::Notify;

/// The complete labels of one series (`__name__`, `job`, `instance`,
/// external labels), sorted by name, as remote write wants them. Shared:
/// a series' set is built once and reused by every reading that has it
/// (see `remote_write::encode::LabelCache`), and its strings are the
/// process' single copies (`intern`).
pub type LabelSet = Arc<[Label]>;

/// One label: name and value.
pub type Label = (Arc<str>, Arc<str>);

/// One resolved series and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: LabelSet,
    pub value: f64,
}

/// Everything one reading of one target produced, stamped with one time.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub series: Vec<Series>,
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
    /// oldest records and counts them.
    fn push(&self, record: Record);
    /// Records from the head, oldest first, up to `max_samples` samples in
    /// all (but at least one record when the queue is not empty).
    fn peek(&self, max_samples: usize) -> Vec<Queued>;
    /// Removes every record up to and including `seq`.
    fn ack(&self, seq: u64);
    fn stats(&self) -> QueueStats;
    /// Woken on every push.
    fn pushed(&self) -> &Notify;
}
