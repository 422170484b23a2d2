//! Stale markers: when a series that was pushed disappears (a command's
//! stats reset, a replica gone, a target down or removed), the receiver is
//! told once with Prometheus' stale marker, so the series ends in PromQL at
//! once instead of after the five-minute lookback.
//!
//! Pure. Remembers the (shared) label sets of the last reading by the keys
//! the target's label cache gave them and the reading that last had each; a
//! reading allocates nothing unless a series is new or gone.

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
    /// Every series of the readings since the last complete one, by its key
    /// (`LabelCache::keys`), with the number of the last complete reading
    /// (or the one in progress) that had it.
    seen: HashMap<u64, (LabelSet, u64)>,
    /// Complete readings so far.
    readings: u64,
}

impl StaleTracker {
    /// Takes the series of a new complete reading and their keys (one per
    /// series, equal keys for equal label sets: `LabelCache::keys`);
    /// returns markers for the series seen before that are missing from it.
    pub fn markers(&mut self, current: &[Series], keys: &[u64]) -> Vec<Series> {
        self.readings += 1;
        let now = self.readings;
        self.note(current, keys, now);
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
    pub fn remember(&mut self, current: &[Series], keys: &[u64]) {
        // Under the number of the last complete reading: the next complete
        // one ends whatever it does not have itself.
        self.note(current, keys, self.readings);
    }

    fn note(&mut self, current: &[Series], keys: &[u64], reading: u64) {
        debug_assert_eq!(current.len(), keys.len(), "one key per series");
        for (series, &key) in current.iter().zip(keys) {
            if is_stale_marker(series.value) {
                continue;
            }
            self.seen
                .entry(key)
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

    /// A reading of series named `names`, with a key per series as the
    /// label cache gives them (here: derived from the name).
    fn reading(names: &[&str]) -> (Vec<Series>, Vec<u64>) {
        let series = names
            .iter()
            .map(|name| Series {
                labels: vec![("__name__".into(), (*name).into())].into(),
                value: 1.0,
            })
            .collect();
        let keys = names
            .iter()
            .map(|name| name.bytes().fold(7u64, |h, b| h * 31 + u64::from(b)))
            .collect();
        (series, keys)
    }

    fn markers(t: &mut StaleTracker, names: &[&str]) -> Vec<Series> {
        let (series, keys) = reading(names);
        t.markers(&series, &keys)
    }

    fn remember(t: &mut StaleTracker, names: &[&str]) {
        let (series, keys) = reading(names);
        t.remember(&series, &keys);
    }

    fn names(markers: &[Series]) -> Vec<String> {
        let mut names: Vec<String> = markers.iter().map(|s| s.labels[0].1.to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn vanished_series_get_one_marker() {
        let mut t = StaleTracker::default();
        assert!(markers(&mut t, &["a", "b", "c"]).is_empty());
        let ended = markers(&mut t, &["a"]);
        assert_eq!(names(&ended), ["b", "c"]);
        assert!(ended.iter().all(|s| is_stale_marker(s.value)));
        // Once only.
        assert!(markers(&mut t, &["a"]).is_empty());
        // A series that comes back is tracked again.
        assert!(markers(&mut t, &["a", "b"]).is_empty());
        assert_eq!(names(&t.all()), ["a", "b"]);
        assert!(t.all().is_empty());
    }

    #[test]
    fn an_incomplete_reading_ends_nothing_and_adds_what_is_new() {
        let mut t = StaleTracker::default();
        assert!(markers(&mut t, &["fast", "detail"]).is_empty());
        // Between complete readings only the fast series are read.
        remember(&mut t, &["fast", "new"]);
        remember(&mut t, &["fast"]);
        // The next complete reading judges everything seen since the last.
        let ended = markers(&mut t, &["fast", "detail"]);
        assert_eq!(names(&ended), ["new"]);
    }

    #[test]
    fn the_marker_is_prometheus_stale_nan() {
        assert!(stale_nan().is_nan());
        assert_eq!(stale_nan().to_bits(), 0x7ff0000000000002);
        assert!(!is_stale_marker(f64::NAN));
    }
}
