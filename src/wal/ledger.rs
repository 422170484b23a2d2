//! The ledger: which records the queue holds and how far each of its
//! readers (the remote-write endpoints) has taken them, kept in memory from
//! the segments' indexes. Pure: it decides which segments go, the caller
//! deletes their files.
//!
//! Invariants:
//! - segments are in order of their numbers and do not overlap; numbers
//!   may have gaps where a corrupt segment was cut short at open;
//! - numbers are never reused: `next_seq` is past every record ever
//!   written, and past every acknowledged position read at open (a record
//!   torn off the tail may have been acknowledged already);
//! - there is at least one reader; each reader's `acked`, the first record
//!   it has not acknowledged, lies between the first segment's base (or
//!   `next_seq`) and `next_seq`, and moves only forward;
//! - a reader's `records` and `samples` count the records from its `acked`
//!   on; `bytes` counts the valid bytes of every segment;
//! - a segment goes only when every reader is past it, or when the disk
//!   bound of every reader still in it took it from them;
//! - the last segment is the one appended to: acknowledgement, expiry and
//!   the bound never take it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::segment::{RecordMeta, Segment};
use crate::queue::QueueStats;

/// A reader of the log, by its place in the list the ledger was made with.
pub(super) type ReaderId = usize;

#[derive(Debug)]
pub(super) struct Ledger {
    segments: VecDeque<Segment>,
    next_seq: u64,
    readers: Vec<Cursor>,
    bytes: u64,
}

/// One reader's place: the first record it has not acknowledged, and the
/// records and samples from there on.
#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    acked: u64,
    records: usize,
    samples: usize,
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

/// What a reader's disk bound took from it: the samples it had not sent
/// yet in the segments it was moved past.
#[derive(Debug, Default)]
pub(super) struct OverBound {
    pub(super) lost_samples: usize,
    /// Whether the reader's acknowledged position moved.
    pub(super) acked_moved: bool,
}

impl Ledger {
    /// The ledger of `segments` (as `segment::recover` found them) with a
    /// reader for each of `acks`, the acknowledged positions read from the
    /// ack files (`None`: none recorded, the reader starts at the oldest
    /// record). `acks` must not be empty.
    pub(super) fn new(segments: VecDeque<Segment>, acks: &[Option<u64>]) -> Ledger {
        assert!(!acks.is_empty(), "a ledger has at least one reader");
        let next_seq = acks
            .iter()
            .flatten()
            .fold(segments.back().map_or(0, Segment::end), |a, &b| a.max(b));
        let first = segments.front().map_or(next_seq, |s| s.base);
        let bytes = segments.iter().map(|s| s.bytes).sum();
        let mut ledger = Ledger {
            segments,
            next_seq,
            readers: Vec::with_capacity(acks.len()),
            bytes,
        };
        for ack in acks {
            let acked = ack.unwrap_or(first).clamp(first, next_seq);
            let mut cursor = Cursor {
                acked,
                ..Cursor::default()
            };
            for (_, meta) in ledger.records_from(acked) {
                cursor.records += 1;
                cursor.samples += meta.samples as usize;
            }
            ledger.readers.push(cursor);
        }
        ledger
    }

    /// Every record numbered `seq` or later, with its number.
    fn records_from(&self, seq: u64) -> impl Iterator<Item = (u64, &RecordMeta)> {
        self.segments.iter().flat_map(move |s| {
            let skip = seq.saturating_sub(s.base) as usize;
            (s.base..).zip(s.records.iter()).skip(skip)
        })
    }

    /// The first record `reader` has not acknowledged.
    pub(super) fn acked(&self, reader: ReaderId) -> u64 {
        self.readers[reader].acked
    }

    /// The first record some reader has not acknowledged.
    fn oldest_acked(&self) -> u64 {
        self.readers
            .iter()
            .map(|c| c.acked)
            .min()
            .unwrap_or(self.next_seq)
    }

    /// The number the next record will take.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// What `reader` has still to send; `bytes` is the whole log's.
    pub(super) fn stats(&self, reader: ReaderId) -> QueueStats {
        let cursor = self.readers[reader];
        QueueStats {
            records: cursor.records,
            samples: cursor.samples,
            bytes: self.bytes,
            oldest_timestamp_ms: self.first_from(cursor.acked).map(|(_, m)| m.timestamp_ms),
        }
    }

    /// The bytes of the segments that hold records `reader` has not
    /// acknowledged: what its disk bound limits.
    pub(super) fn held_bytes(&self, reader: ReaderId) -> u64 {
        let acked = self.readers[reader].acked;
        self.segments
            .iter()
            .filter(|s| s.end() > acked)
            .map(|s| s.bytes)
            .sum()
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

    /// Marks record `seq` (the first one `reader` has not acknowledged, or
    /// a gap's number) done for it.
    fn advance_past(&mut self, reader: ReaderId, seq: u64) {
        let first = self.first_from(self.readers[reader].acked);
        let cursor = &mut self.readers[reader];
        if let Some((s, meta)) = first
            && s == seq
        {
            cursor.records -= 1;
            cursor.samples -= meta.samples as usize;
        }
        cursor.acked = seq + 1;
    }

    /// Acknowledges every record up to and including `seq` for `reader`;
    /// whether its position moved.
    pub(super) fn acknowledge(&mut self, reader: ReaderId, seq: u64) -> bool {
        if seq < self.readers[reader].acked {
            return false;
        }
        while let Some((s, _)) = self.first_from(self.readers[reader].acked) {
            if s > seq {
                break;
            }
            self.advance_past(reader, s);
        }
        let cursor = &mut self.readers[reader];
        if cursor.acked <= seq {
            cursor.acked = seq + 1;
        }
        true
    }

    /// Acknowledges for `reader` the records at its head stamped before
    /// `oldest_allowed_ms`; the samples they held, if there were any.
    pub(super) fn expire(&mut self, reader: ReaderId, oldest_allowed_ms: i64) -> Option<usize> {
        let mut expired = None;
        while let Some((seq, meta)) = self.first_from(self.readers[reader].acked) {
            if meta.timestamp_ms >= oldest_allowed_ms {
                break;
            }
            *expired.get_or_insert(0) += meta.samples as usize;
            self.advance_past(reader, seq);
        }
        expired
    }

    /// Takes the segments every reader is past (never the last one), for
    /// the caller to delete.
    pub(super) fn take_acknowledged(&mut self) -> Vec<Segment> {
        let oldest = self.oldest_acked();
        let mut done = Vec::new();
        while self.segments.len() > 1 && self.segments.front().is_some_and(|s| s.end() <= oldest) {
            if let Some(segment) = self.segments.pop_front() {
                self.bytes -= segment.bytes;
                done.push(segment);
            }
        }
        done
    }

    /// When every reader has acknowledged every record of the last segment,
    /// an empty segment for the next record takes its place as the last
    /// one, so that [`Ledger::take_acknowledged`] can take it too: a queue
    /// whose every record was delivered then holds no file at all. Returns
    /// a last segment left empty, for the caller to delete.
    pub(super) fn retire_acknowledged_tail(&mut self, dir: &Path) -> Option<Segment> {
        let oldest = self.oldest_acked();
        let done = self
            .segments
            .back()
            .is_some_and(|s| !s.records.is_empty() && s.end() <= oldest);
        if done { self.start_segment(dir) } else { None }
    }

    /// Moves `reader` past its oldest segments (never the last one) while
    /// the segments it holds are over `max_bytes`; the samples it had not
    /// sent from them are lost to it. The segments go once no reader holds
    /// them ([`Ledger::take_acknowledged`]).
    pub(super) fn over_bound(&mut self, reader: ReaderId, max_bytes: u64) -> OverBound {
        let mut out = OverBound::default();
        while self.held_bytes(reader) > max_bytes {
            let acked = self.readers[reader].acked;
            let Some(next) = self
                .segments
                .iter()
                .position(|s| s.end() > acked)
                .and_then(|i| self.segments.get(i + 1))
                .map(|s| s.base)
            else {
                break;
            };
            let before = self.readers[reader].samples;
            while self.readers[reader].acked < next {
                let Some((seq, _)) = self.first_from(self.readers[reader].acked) else {
                    break;
                };
                self.advance_past(reader, seq.min(next - 1));
            }
            self.readers[reader].acked = self.readers[reader].acked.max(next);
            out.lost_samples += before - self.readers[reader].samples;
            out.acked_moved = true;
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
        for cursor in &mut self.readers {
            cursor.records += 1;
            cursor.samples += meta.samples as usize;
        }
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
        ledger_for(sizes, 1)
    }

    /// [`ledger`] with `readers` readers, none of which has acknowledged anything.
    fn ledger_for(sizes: &[usize], readers: usize) -> Ledger {
        let dir = Path::new("/nowhere");
        let mut ledger = Ledger::new(VecDeque::new(), &vec![None; readers]);
        for &n in sizes {
            ledger.start_segment(dir);
            for i in 0..n {
                let seq = ledger.next_seq as i64;
                ledger.appended(meta(i as u64 * 10, 2, seq));
            }
        }
        ledger
    }

    fn bases(segments: &[Segment]) -> Vec<u64> {
        segments.iter().map(|s| s.base).collect()
    }

    #[test]
    fn counts_follow_appends_acknowledgements_and_expiry() {
        let mut l = ledger(&[3, 3]);
        assert_eq!(l.stats(0).records, 6);
        assert_eq!(l.stats(0).samples, 12);
        assert_eq!(l.stats(0).bytes, 60);
        assert!(l.acknowledge(0, 1));
        assert_eq!((l.acked(0), l.stats(0).records), (2, 4));
        assert!(!l.acknowledge(0, 0), "behind the position: nothing moves");
        assert_eq!(l.expire(0, 4), Some(4), "records 2 and 3 are older than 4");
        assert_eq!(l.expire(0, 4), None);
        assert_eq!(l.stats(0).oldest_timestamp_ms, Some(4));
        assert_eq!(bases(&l.take_acknowledged()), [0]);
        assert_eq!(l.stats(0).bytes, 30);
    }

    #[test]
    fn the_bound_takes_oldest_segments_but_never_the_last() {
        let mut l = ledger(&[2, 2, 2]);
        l.acknowledge(0, 0);
        let over = l.over_bound(0, 25);
        assert_eq!(over.lost_samples, 3 * 2, "records 1, 2 and 3 were not sent");
        assert!(over.acked_moved);
        assert_eq!(l.acked(0), 4);
        assert_eq!(l.stats(0).records, 2);
        assert_eq!(bases(&l.take_acknowledged()), [0, 2]);
        assert!(!l.over_bound(0, 0).acked_moved, "the last segment stays");
    }

    #[test]
    fn a_segment_goes_when_every_reader_is_past_it() {
        let mut l = ledger_for(&[2, 2, 1], 2);
        assert!(l.acknowledge(0, 3));
        assert!(l.take_acknowledged().is_empty(), "reader 1 holds all");
        assert_eq!((l.stats(0).records, l.stats(1).records), (1, 5));
        assert!(l.acknowledge(1, 1));
        assert_eq!(bases(&l.take_acknowledged()), [0]);
        assert_eq!(l.held_bytes(0), 10);
        assert_eq!(l.held_bytes(1), 30);
        // Each reader's bound and age are its own.
        let over = l.over_bound(1, 15);
        assert_eq!((over.lost_samples, l.acked(1)), (2 * 2, 4));
        assert_eq!(l.acked(0), 4, "reader 0 is not moved by reader 1's bound");
        assert_eq!(bases(&l.take_acknowledged()), [2]);
        assert_eq!(l.expire(0, 5), Some(2));
        assert_eq!(l.stats(1).records, 1);
        assert!(l.retire_acknowledged_tail(Path::new("/nowhere")).is_none());
        assert!(l.acknowledge(1, 4));
        assert!(l.retire_acknowledged_tail(Path::new("/nowhere")).is_none());
        assert_eq!(
            bases(&l.take_acknowledged()),
            [4],
            "the tail, once both have it"
        );
    }

    #[test]
    fn each_reader_starts_at_its_own_position() {
        let l = Ledger::new(ledger(&[3, 3]).segments, &[Some(4), None, Some(99)]);
        assert_eq!((l.acked(0), l.acked(1), l.acked(2)), (4, 0, 99));
        assert_eq!(l.next_seq(), 99, "never reused: past every position read");
        assert_eq!(l.stats(0).records, 2);
        assert_eq!(l.stats(1).samples, 12);
        assert_eq!(l.stats(2).records, 0);
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
        let l = Ledger::new(VecDeque::new(), &[Some(17)]);
        assert_eq!((l.next_seq, l.acked(0)), (17, 17));
        assert!(l.needs_segment(false, 10, 100));
    }

    /// What the ledger must agree with: every record written, in order,
    /// with its segment; each reader's position.
    #[derive(Debug, Default)]
    struct Model {
        /// (seq, segment base, samples, timestamp)
        records: Vec<(u64, u64, usize, i64)>,
        acked: Vec<u64>,
    }

    #[derive(Clone, Debug)]
    enum Op {
        Append { samples: u32, new_segment: bool },
        Acknowledge { reader: usize, ahead: u64 },
        Expire { reader: usize, ahead: i64 },
        Bound { reader: usize, max_bytes: u64 },
        Take,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            3 => (1u32..5, proptest::bool::weighted(0.3))
                .prop_map(|(samples, new_segment)| Op::Append { samples, new_segment }),
            2 => (0usize..3, 0u64..4).prop_map(|(reader, ahead)| Op::Acknowledge { reader, ahead }),
            1 => (0usize..3, 0i64..4).prop_map(|(reader, ahead)| Op::Expire { reader, ahead }),
            1 => (0usize..3, 0u64..80).prop_map(|(reader, max_bytes)| Op::Bound { reader, max_bytes }),
            1 => Just(Op::Take),
        ]
    }

    proptest::proptest! {
        /// Random appends, acknowledgements, expiry and bounds of three
        /// readers against the plain model: each reader's counts, and the
        /// segments taken only once every reader is past them.
        #[test]
        fn several_readers_agree_with_a_plain_model(ops in proptest::collection::vec(op(), 1..80)) {
            let dir = Path::new("/nowhere");
            let mut l = Ledger::new(VecDeque::new(), &[None, None, None]);
            let mut m = Model { acked: vec![0; 3], ..Model::default() };
            for op in ops {
                match op {
                    Op::Append { samples, new_segment } => {
                        if new_segment || l.tail().is_none() {
                            l.start_segment(dir);
                        }
                        let seq = l.next_seq;
                        let base = l.tail().map_or(seq, |s| s.base);
                        l.appended(meta(0, samples, seq as i64));
                        m.records.push((seq, base, samples as usize, seq as i64));
                    }
                    Op::Acknowledge { reader, ahead } => {
                        let seq = m.acked[reader] + ahead;
                        if seq < l.next_seq {
                            l.acknowledge(reader, seq);
                            m.acked[reader] = seq + 1;
                        }
                    }
                    Op::Expire { reader, ahead } => {
                        let oldest = m.acked[reader] as i64 + ahead;
                        let gone: Vec<_> = m.records.iter()
                            .filter(|r| r.0 >= m.acked[reader] && r.3 < oldest)
                            .collect();
                        let samples = gone.iter().map(|r| r.2).sum::<usize>();
                        let expected = (!gone.is_empty()).then_some(samples);
                        if let Some(last) = gone.last() {
                            m.acked[reader] = last.0 + 1;
                        }
                        proptest::prop_assert_eq!(l.expire(reader, oldest), expected);
                        proptest::prop_assert_eq!(l.acked(reader), m.acked[reader]);
                    }
                    Op::Bound { reader, max_bytes } => {
                        let before = l.stats(reader).samples;
                        let over = l.over_bound(reader, max_bytes);
                        proptest::prop_assert_eq!(before - l.stats(reader).samples, over.lost_samples);
                        let last = l.tail().map_or(0, |s| s.base);
                        proptest::prop_assert!(l.acked(reader) <= last.max(m.acked[reader]));
                        proptest::prop_assert!(l.held_bytes(reader) <= max_bytes || l.acked(reader) >= last);
                        m.acked[reader] = l.acked(reader);
                    }
                    Op::Take => {
                        let oldest = *m.acked.iter().min().expect("readers");
                        for segment in l.take_acknowledged() {
                            proptest::prop_assert!(segment.end() <= oldest);
                            proptest::prop_assert!(l.tail().is_some(), "never the last");
                        }
                    }
                }
                for reader in 0..3 {
                    let mine = m.records.iter().filter(|r| r.0 >= m.acked[reader]);
                    let (records, samples) = mine.fold((0, 0), |(n, s), r| (n + 1, s + r.2));
                    let stats = l.stats(reader);
                    proptest::prop_assert_eq!((stats.records, stats.samples), (records, samples), "reader {}", reader);
                }
                let bytes: u64 = l.segments.iter().map(|s| s.bytes).sum();
                proptest::prop_assert_eq!(l.stats(0).bytes, bytes);
            }
        }
    }
}
