//! Stale markers: when a series that was pushed disappears (a command's
//! stats reset, a replica gone, a target down or removed), the receiver is
//! told once with Prometheus' stale marker, so the series ends in PromQL at
//! once instead of after the five-minute lookback.
//!
//! Pure. Remembers the (shared) label sets of the last reading by hash and
//! the reading that last had each; a reading allocates nothing unless a
//! series is new or gone.

use std::hash::BuildHasher;

// foldhash, not SipHash: see remote_write/encode.rs.
use foldhash::HashMap;

use crate::queue::{LabelSet, Series};

/// The NaN Prometheus reserves for "this series ended here".
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

#[derive(Debug, Default)]
pub struct StaleTracker {
    /// Every series of the readings since the last complete one, by the
    /// hash of its labels, with the number of the last complete reading
    /// (or the one in progress) that had it.
    seen: HashMap<u64, (LabelSet, u64)>,
    /// Hashes label sets into the keys of `seen`.
    hasher: foldhash::fast::RandomState,
    /// Complete readings so far.
    readings: u64,
}

impl StaleTracker {
    /// Takes the series of a new complete reading; returns markers for the
    /// series seen before that are missing from it.
    pub fn markers(&mut self, current: &[Series]) -> Vec<Series> {
        self.readings += 1;
        let now = self.readings;
        self.note(current, now);
        let mut gone = Vec::new();
        self.seen.retain(|_, (labels, reading)| {
            let keep = *reading == now;
            if !keep {
                gone.push(Series {
                    labels: labels.clone(),
                    value: stale_nan(),
                });
            }
            keep
        });
        gone
    }

    /// Takes the series of an incomplete reading (one that did not read
    /// every section): new series are remembered, none is ended, since a
    /// series missing from it was not read rather than gone.
    pub fn remember(&mut self, current: &[Series]) {
        // Under the number of the last complete reading: the next complete
        // one ends whatever it does not have itself.
        self.note(current, self.readings);
    }

    fn note(&mut self, current: &[Series], reading: u64) {
        for series in current {
            if is_stale_marker(series.value) {
                continue;
            }
            self.seen
                .entry(self.hasher.hash_one(&series.labels[..]))
                .and_modify(|(_, r)| *r = (*r).max(reading))
                .or_insert_with(|| (series.labels.clone(), reading));
        }
    }

    /// Markers for every remembered series (the target was removed); forgets them.
    pub fn all(&mut self) -> Vec<Series> {
        self.seen
            .drain()
            .map(|(_, (labels, _))| Series {
                labels,
                value: stale_nan(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str) -> Series {
        Series {
            labels: vec![("__name__".into(), name.into())].into(),
            value: 1.0,
        }
    }

    fn names(markers: &[Series]) -> Vec<String> {
        let mut names: Vec<String> = markers.iter().map(|s| s.labels[0].1.clone()).collect();
        names.sort();
        names
    }

    #[test]
    fn vanished_series_get_one_marker() {
        let mut t = StaleTracker::default();
        assert!(
            t.markers(&[series("a"), series("b"), series("c")])
                .is_empty()
        );
        let markers = t.markers(&[series("a")]);
        assert_eq!(names(&markers), ["b", "c"]);
        assert!(markers.iter().all(|s| is_stale_marker(s.value)));
        // Once only.
        assert!(t.markers(&[series("a")]).is_empty());
        // A series that comes back is tracked again.
        assert!(t.markers(&[series("a"), series("b")]).is_empty());
        assert_eq!(names(&t.all()), ["a", "b"]);
        assert!(t.all().is_empty());
    }

    #[test]
    fn an_incomplete_reading_ends_nothing_and_adds_what_is_new() {
        let mut t = StaleTracker::default();
        assert!(t.markers(&[series("fast"), series("detail")]).is_empty());
        // Between complete readings only the fast series are read.
        t.remember(&[series("fast"), series("new")]);
        t.remember(&[series("fast")]);
        // The next complete reading judges everything seen since the last.
        let markers = t.markers(&[series("fast"), series("detail")]);
        assert_eq!(names(&markers), ["new"]);
    }

    #[test]
    fn the_marker_is_prometheus_stale_nan() {
        assert!(stale_nan().is_nan());
        assert_eq!(stale_nan().to_bits(), 0x7ff0000000000002);
        assert!(!is_stale_marker(f64::NAN));
    }
}
