//! The ledger: which records the queue holds and how far the receiver has
//! taken them, kept in memory from the segments' indexes. Pure: it decides
//! which segments go, the caller deletes their files.
//!
//! Invariants:
//! - segments are in order of their numbers and do not overlap; numbers
//!   may have gaps where a corrupt segment was cut short at open;
//! - numbers are never reused: `next_seq` is past every record ever
//!   written, and past the acknowledged position read at open (a record
//!   torn off the tail may have been acknowledged already);
//! - `acked`, the first record not acknowledged, lies between the first
//!   segment's base (or `next_seq`) and `next_seq`;
//! - `unacked_records` and `unacked_samples` count the records from `acked`
//!   on, `bytes` the valid bytes of every segment;
//! - the last segment is the one appended to: acknowledgement, expiry and
//!   the bound never take it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::segment::{RecordMeta, Segment};
use crate::queue::QueueStats;

#[derive(Debug)]
pub(super) struct Ledger {
    segments: VecDeque<Segment>,
    next_seq: u64,
    acked: u64,
    unacked_records: usize,
    unacked_samples: usize,
    bytes: u64,
}

/// Records of one segment to read into the cache: `first..last` (indexes in
/// the segment), the file's bytes `from..to`, which begin at record
/// `scan_from` (whose frames define what the records use) or at `first`.
#[derive(Debug, PartialEq)]
pub(super) struct Run {
    pub(super) base: u64,
    pub(super) path: PathBuf,
    pub(super) scan_from: usize,
    pub(super) first: usize,
    pub(super) last: usize,
    pub(super) from: u64,
    pub(super) to: u64,
}

/// What the disk bound took: whole segments, and the samples in them not
/// sent yet.
#[derive(Debug, Default)]
pub(super) struct OverBound {
    pub(super) removed: Vec<Segment>,
    pub(super) lost_samples: usize,
    /// Whether the acknowledged position moved past the removed records.
    pub(super) acked_moved: bool,
}

impl Ledger {
    /// The ledger of `segments` (as `segment::recover` found them), with
    /// the acknowledged position read from the ack file, if any.
    pub(super) fn new(segments: VecDeque<Segment>, ack: Option<u64>) -> Ledger {
        let next_seq = segments
            .back()
            .map_or(0, Segment::end)
            .max(ack.unwrap_or(0));
        let first = segments.front().map_or(next_seq, |s| s.base);
        let acked = ack.unwrap_or(first).clamp(first, next_seq);
        let bytes = segments.iter().map(|s| s.bytes).sum();
        let (mut unacked_records, mut unacked_samples) = (0, 0);
        for s in &segments {
            for (i, meta) in s.records.iter().enumerate() {
                if s.base + i as u64 >= acked {
                    unacked_records += 1;
                    unacked_samples += meta.samples as usize;
                }
            }
        }
        Ledger {
            segments,
            next_seq,
            acked,
            unacked_records,
            unacked_samples,
            bytes,
        }
    }

    /// The first record not acknowledged.
    pub(super) fn acked(&self) -> u64 {
        self.acked
    }

    /// The number the next record will take.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub(super) fn stats(&self) -> QueueStats {
        QueueStats {
            records: self.unacked_records,
            samples: self.unacked_samples,
            bytes: self.bytes,
            oldest_timestamp_ms: self.first_from(self.acked).map(|(_, m)| m.timestamp_ms),
        }
    }

    /// Index of the segment holding `seq`.
    fn segment_of(&self, seq: u64) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.base <= seq);
        let si = i.checked_sub(1)?;
        (seq < self.segments[si].end()).then_some(si)
    }

    /// The first record numbered `seq` or later.
    fn first_from(&self, seq: u64) -> Option<(u64, RecordMeta)> {
        if let Some(si) = self.segment_of(seq) {
            let s = &self.segments[si];
            return Some((seq, s.records[(seq - s.base) as usize]));
        }
        self.segments
            .iter()
            .find(|s| s.base > seq && !s.records.is_empty())
            .map(|s| (s.base, s.records[0]))
    }

    /// The records to read next from `seq` on, within one segment: enough
    /// for `want` samples where `have` are read already (at least one
    /// record). `defined`: the reader's place in a segment, `(base, n)` when
    /// it holds what the first `n` frames of segment `base` defined.
    pub(super) fn run(
        &self,
        seq: u64,
        have: usize,
        want: usize,
        defined: Option<(u64, usize)>,
    ) -> Option<Run> {
        let (start, _) = self.first_from(seq)?;
        let segment = &self.segments[self.segment_of(start)?];
        let first = (start - segment.base) as usize;
        let mut last = first;
        let mut samples = 0usize;
        while last < segment.records.len() && (last == first || have + samples < want) {
            samples += segment.records[last].samples as usize;
            last += 1;
        }
        let scan_from = match defined {
            Some((base, scanned)) if base == segment.base && scanned <= first => scanned,
            _ => 0,
        };
        let end = &segment.records[last - 1];
        Some(Run {
            base: segment.base,
            path: segment.path.clone(),
            scan_from,
            first,
            last,
            from: segment.records[scan_from.min(first)].offset,
            to: end.offset + u64::from(end.len),
        })
    }

    /// Marks record `seq` (the first one not acknowledged, or a gap's
    /// number) done.
    fn advance_past(&mut self, seq: u64) {
        if let Some((s, meta)) = self.first_from(self.acked)
            && s == seq
        {
            self.unacked_records -= 1;
            self.unacked_samples -= meta.samples as usize;
        }
        self.acked = seq + 1;
    }

    /// Acknowledges every record up to and including `seq`; whether the
    /// position moved.
    pub(super) fn acknowledge(&mut self, seq: u64) -> bool {
        if seq < self.acked {
            return false;
        }
        while let Some((s, _)) = self.first_from(self.acked) {
            if s > seq {
                break;
            }
            self.advance_past(s);
        }
        if self.acked <= seq {
            self.acked = seq + 1;
        }
        true
    }

    /// Acknowledges the records at the head stamped before
    /// `oldest_allowed_ms`; the samples they held, if there were any.
    pub(super) fn expire(&mut self, oldest_allowed_ms: i64) -> Option<usize> {
        let mut expired = None;
        while let Some((seq, meta)) = self.first_from(self.acked) {
            if meta.timestamp_ms >= oldest_allowed_ms {
                break;
            }
            *expired.get_or_insert(0) += meta.samples as usize;
            self.advance_past(seq);
        }
        expired
    }

    /// Takes the segments all of whose records are acknowledged (never the
    /// last one), for the caller to delete.
    pub(super) fn take_acknowledged(&mut self) -> Vec<Segment> {
        let mut done = Vec::new();
        while self.segments.len() > 1
            && self.segments.front().is_some_and(|s| s.end() <= self.acked)
        {
            if let Some(segment) = self.segments.pop_front() {
                self.bytes -= segment.bytes;
                done.push(segment);
            }
        }
        done
    }

    /// When every record of the last segment is acknowledged, an empty
    /// segment for the next record takes its place as the last one, so
    /// that [`Ledger::take_acknowledged`] can take it too: a queue whose
    /// every record was delivered then holds no file at all. Returns a
    /// last segment left empty, for the caller to delete.
    pub(super) fn retire_acknowledged_tail(&mut self, dir: &Path) -> Option<Segment> {
        let done = self
            .segments
            .back()
            .is_some_and(|s| !s.records.is_empty() && s.end() <= self.acked);
        if done { self.start_segment(dir) } else { None }
    }

    /// Takes oldest segments (never the last one) while the queue is over
    /// `max_bytes`, for the caller to delete; their samples not sent yet
    /// are lost.
    pub(super) fn over_bound(&mut self, max_bytes: u64) -> OverBound {
        let mut out = OverBound::default();
        while self.bytes > max_bytes && self.segments.len() > 1 {
            let Some(segment) = self.segments.pop_front() else {
                break;
            };
            for (i, meta) in segment.records.iter().enumerate() {
                if segment.base + i as u64 >= self.acked {
                    self.unacked_records -= 1;
                    self.unacked_samples -= meta.samples as usize;
                    out.lost_samples += meta.samples as usize;
                }
            }
            self.bytes -= segment.bytes;
            out.removed.push(segment);
            let first = self.segments.front().map_or(self.next_seq, |s| s.base);
            if self.acked < first {
                self.acked = first;
                out.acked_moved = true;
            }
        }
        out
    }

    /// The segment appended to.
    pub(super) fn tail(&self) -> Option<&Segment> {
        self.segments.back()
    }

    /// Whether a frame of `len` bytes needs a new segment: there is none,
    /// the last is full, or it holds records and nothing is open for
    /// appending to it (after a restart or a write error: a new segment
    /// never shares a file with bytes of unknown state). An empty last
    /// segment is reused only if its name still fits its first record.
    pub(super) fn needs_segment(&self, open: bool, len: u64, segment_bytes: u64) -> bool {
        self.segments.back().is_none_or(|last| {
            if last.records.is_empty() {
                last.base != self.next_seq
            } else {
                !open || last.bytes + len > segment_bytes
            }
        })
    }

    /// Starts a segment in `dir` for the next record; returns a last segment
    /// left empty, for the caller to delete.
    pub(super) fn start_segment(&mut self, dir: &Path) -> Option<Segment> {
        let empty = self
            .segments
            .back()
            .is_some_and(|s| s.records.is_empty())
            .then(|| self.segments.pop_back())
            .flatten();
        self.segments.push_back(Segment::new(dir, self.next_seq));
        empty
    }

    /// Takes a frame appended to the last segment; its number.
    pub(super) fn appended(&mut self, meta: RecordMeta) -> u64 {
        let Some(tail) = self.segments.back_mut() else {
            unreachable!("appended before a segment was started");
        };
        tail.bytes += u64::from(meta.len);
        tail.records.push(meta);
        self.bytes += u64::from(meta.len);
        self.unacked_records += 1;
        self.unacked_samples += meta.samples as usize;
        self.next_seq += 1;
        self.next_seq - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(offset: u64, samples: u32, timestamp_ms: i64) -> RecordMeta {
        RecordMeta {
            offset,
            len: 10,
            samples,
            timestamp_ms,
        }
    }

    /// A ledger of segments of `sizes` records, 10 bytes and 2 samples each,
    /// stamped with their numbers.
    fn ledger(sizes: &[usize]) -> Ledger {
        let dir = Path::new("/nowhere");
        let mut ledger = Ledger::new(VecDeque::new(), None);
        for &n in sizes {
            ledger.start_segment(dir);
            for i in 0..n {
                let seq = ledger.next_seq as i64;
                ledger.appended(meta(i as u64 * 10, 2, seq));
            }
        }
        ledger
    }

    #[test]
    fn counts_follow_appends_acknowledgements_and_expiry() {
        let mut l = ledger(&[3, 3]);
        assert_eq!(l.stats().records, 6);
        assert_eq!(l.stats().samples, 12);
        assert_eq!(l.stats().bytes, 60);
        assert!(l.acknowledge(1));
        assert_eq!((l.acked(), l.stats().records), (2, 4));
        assert!(!l.acknowledge(0), "behind the position: nothing moves");
        assert_eq!(l.expire(4), Some(4), "records 2 and 3 are older than 4");
        assert_eq!(l.expire(4), None);
        assert_eq!(l.stats().oldest_timestamp_ms, Some(4));
        let done = l.take_acknowledged();
        assert_eq!(done.iter().map(|s| s.base).collect::<Vec<_>>(), [0]);
        assert_eq!(l.stats().bytes, 30);
    }

    #[test]
    fn the_bound_takes_oldest_segments_but_never_the_last() {
        let mut l = ledger(&[2, 2, 2]);
        l.acknowledge(0);
        let over = l.over_bound(25);
        assert_eq!(over.removed.len(), 2);
        assert_eq!(over.lost_samples, 3 * 2, "records 1, 2 and 3 were not sent");
        assert!(over.acked_moved);
        assert_eq!(l.acked(), 4);
        assert_eq!(l.stats().records, 2);
        assert!(l.over_bound(0).removed.is_empty(), "the last segment stays");
    }

    #[test]
    fn a_run_reads_from_the_definitions_it_lacks() {
        let l = ledger(&[4]);
        let run = l.run(2, 0, 3, None).expect("records");
        assert_eq!((run.scan_from, run.first, run.last), (0, 2, 4));
        assert_eq!((run.from, run.to), (0, 40));
        let run = l.run(2, 0, 1, Some((0, 2))).expect("records");
        assert_eq!((run.scan_from, run.first, run.last), (2, 2, 3));
        assert_eq!((run.from, run.to), (20, 30));
        assert!(l.run(4, 0, 1, None).is_none());
    }

    #[test]
    fn numbers_are_never_reused_after_an_acknowledged_tail_is_lost() {
        let l = Ledger::new(VecDeque::new(), Some(17));
        assert_eq!((l.next_seq, l.acked()), (17, 17));
        assert!(l.needs_segment(false, 10, 100));
    }
}
