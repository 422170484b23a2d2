//! The reading side: records kept decoded ahead of the sender ([`Cache`]),
//! and records read back from their segment where the cache does not reach
//! ([`SegmentReader`]).
//!
//! The cache holds the records from the acknowledged position on, in
//! order, up to `end`: a record just written joins it when the cache
//! reaches the tail, so a sender that keeps up never reads the disk. A
//! sender that is behind reads a run of records at a time, holding no lock
//! the writer needs while it reads and decodes: the cache is locked only to
//! look at its end and to add what was read, and what was read is dropped
//! if the end moved meanwhile.

use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};

use super::frame;
use super::ledger::{Ledger, Run};
use super::lock;
use crate::queue::Queued;

/// Records decoded ahead of the sender.
#[derive(Debug)]
pub(super) struct Cache {
    records: VecDeque<Queued>,
    samples: usize,
    /// The number after the last record held (or the position from which
    /// nothing is held).
    end: u64,
    /// Most samples kept of records just written.
    capacity: usize,
}

impl Cache {
    pub(super) fn new(from: u64, capacity: usize) -> Cache {
        Cache {
            records: VecDeque::new(),
            samples: 0,
            end: from,
            capacity,
        }
    }

    /// Keeps a record just written when the cache reaches it and has room.
    pub(super) fn push_written(&mut self, queued: Queued) {
        let samples = queued.record.samples();
        if self.end == queued.seq && self.samples + samples <= self.capacity {
            self.samples += samples;
            self.end = queued.seq + 1;
            self.records.push_back(queued);
        }
    }

    /// Forgets the records before `seq` (acknowledged or dropped).
    pub(super) fn drop_before(&mut self, seq: u64) {
        while self.records.front().is_some_and(|q| q.seq < seq) {
            if let Some(q) = self.records.pop_front() {
                self.samples -= q.record.samples();
            }
        }
        self.end = self.end.max(seq);
    }

    /// Whether the cache holds a whole batch of `max_samples`, or every
    /// record up to `tail`.
    pub(super) fn covers(&self, max_samples: usize, tail: u64) -> bool {
        self.samples >= max_samples || self.end >= tail
    }

    /// Records from the head, up to `max_samples` samples in all (but at
    /// least one record when there is one).
    pub(super) fn batch(&self, max_samples: usize) -> Vec<Queued> {
        let mut batch = Vec::new();
        let mut samples = 0;
        for queued in &self.records {
            let n = queued.record.samples();
            if !batch.is_empty() && samples + n > max_samples {
                break;
            }
            samples += n;
            batch.push(queued.clone());
        }
        batch
    }
}

/// What the frames of one segment defined, up to `scanned` (an index into
/// its records): a reader that goes on in the same segment reads no frame
/// twice.
#[derive(Debug, Default)]
struct Place {
    base: u64,
    scanned: usize,
    defs: frame::Definitions,
}

/// Reads records from their segments into the cache.
#[derive(Debug, Default)]
pub(super) struct SegmentReader {
    place: Option<Place>,
}

/// Why records could not be read back; each is logged and the read ends.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    #[error("cannot read queued records from {}: {source}", path.display())]
    File {
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error("queued record {seq} unreadable ({source}); skipped")]
    Frame { seq: u64, source: frame::FrameError },
}

impl SegmentReader {
    /// Reads records into `cache` until it holds `want` samples or reaches
    /// the tail. An unreadable run ends the read (the next one tries
    /// again); an unreadable record is skipped.
    pub(super) fn fill(
        &mut self,
        ledger: &Mutex<Ledger>,
        cache: &Mutex<Cache>,
        want: usize,
        on_error: impl Fn(ReadError),
    ) {
        loop {
            let (end, have) = {
                let cache = lock(cache);
                (cache.end, cache.samples)
            };
            if have >= want {
                return;
            }
            let defined = self.place.as_ref().map(|p| (p.base, p.scanned));
            let Some(run) = lock(ledger).run(end, have, want, defined) else {
                return;
            };
            let bytes = match read_range(&run) {
                Ok(bytes) => bytes,
                Err(e) => {
                    on_error(e);
                    return;
                }
            };
            let decoded = self.decode(&run, &bytes, &on_error);
            let mut cache = lock(cache);
            if cache.end == end {
                for queued in decoded {
                    cache.samples += queued.record.samples();
                    cache.records.push_back(queued);
                }
                cache.end = run.base + run.last as u64;
            }
        }
    }

    /// The records `run.first..run.last` from the run's bytes, after the
    /// definitions of the frames before them.
    fn decode(&mut self, run: &Run, bytes: &[u8], on_error: &impl Fn(ReadError)) -> Vec<Queued> {
        let mut place = match self.place.take() {
            Some(p) if p.base == run.base && p.scanned == run.scan_from => p,
            _ => Place {
                base: run.base,
                ..Place::default()
            },
        };
        let mut at = 0usize;
        while place.scanned < run.first {
            match frame::scan_definitions(&bytes[at..], &mut place.defs) {
                Ok(len) => at += len,
                // Its records' own decoding says what is wrong below.
                Err(_) => break,
            }
            place.scanned += 1;
        }
        let mut seq = run.base + run.first as u64;
        let mut decoded = Vec::with_capacity(run.last - run.first);
        while at < bytes.len() {
            match frame::decode(&bytes[at..], &mut place.defs) {
                Ok((record, len)) => {
                    decoded.push(Queued {
                        seq,
                        record: Arc::new(record),
                    });
                    at += len;
                    seq += 1;
                }
                Err(source) => {
                    // The index was made of valid frames: the file changed under us.
                    on_error(ReadError::Frame { seq, source });
                    break;
                }
            }
        }
        place.scanned = run.last;
        self.place = Some(place);
        decoded
    }
}

/// The bytes of a run, read with one call.
fn read_range(run: &Run) -> Result<Vec<u8>, ReadError> {
    let mut bytes = vec![0u8; (run.to - run.from) as usize];
    super::files::open_read(&run.path)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(run.from))?;
            f.read_exact(&mut bytes)
        })
        .map_err(|source| ReadError::File {
            path: run.path.clone(),
            source,
        })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::{Record, target_labels};

    fn queued(seq: u64, samples: usize) -> Queued {
        let shape = crate::series::shape("reader_test", crate::metrics::Kind::Gauge, "", &[]);
        Queued {
            seq,
            record: Arc::new(Record {
                timestamp_ms: seq as i64,
                target: target_labels([]),
                series: (0..samples)
                    .map(|_| crate::series::Series {
                        shape: shape.clone(),
                        value: 1.0,
                    })
                    .collect(),
                histograms: Vec::new(),
            }),
        }
    }

    #[test]
    fn the_cache_takes_writes_at_its_end_only_and_within_its_room() {
        let mut cache = Cache::new(5, 4);
        cache.push_written(queued(6, 1));
        assert!(cache.batch(10).is_empty(), "not at its end");
        cache.push_written(queued(5, 3));
        cache.push_written(queued(6, 2));
        assert_eq!(cache.end, 6, "no room for the second");
        assert_eq!(cache.batch(10).len(), 1);
        cache.drop_before(9);
        assert!(cache.batch(10).is_empty());
        assert_eq!((cache.end, cache.samples), (9, 0));
    }

    #[test]
    fn a_batch_holds_whole_records_up_to_its_size_and_at_least_one() {
        let mut cache = Cache::new(0, 100);
        for (seq, samples) in [(0, 3), (1, 3), (2, 3)] {
            cache.push_written(queued(seq, samples));
        }
        let seqs = |b: Vec<Queued>| b.iter().map(|q| q.seq).collect::<Vec<_>>();
        assert_eq!(seqs(cache.batch(7)), [0, 1]);
        assert_eq!(seqs(cache.batch(1)), [0]);
    }
}
