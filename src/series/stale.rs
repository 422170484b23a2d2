//! Stale markers: when a series that was pushed disappears (a command's
//! stats reset, a replica gone, a target down or removed), the receiver is
//! told once with Prometheus' stale marker, so the series ends in PromQL at
//! once instead of after the five-minute lookback.
//!
//! Pure. The series a target had are those of its last complete reading
//! (which the target keeps anyway) and those incomplete readings added
//! since, which are all the tracker stores: usually nothing. A complete
//! reading with exactly the series of the one before (the usual case,
//! which `series::flatten` tells) costs nothing, and so does an incomplete
//! reading with the series of the incomplete one before it. Any other
//! complete reading is checked only for the series flatten could not match
//! (a new bucket of a latency histogram moves every series after it, but
//! ends none); an incomplete one costs a sort of both readings' shapes and
//! one merge.

use std::sync::Arc;

use super::catalogue::Shape;
use super::flatten::Matched;
use super::record::Series;

/// Up to this many series that may have ended are each looked for in the
/// reading; more, and both are sorted and merged.
const FEW: usize = 8;

use crate::metrics::STALE_NAN_BITS;

pub(crate) fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// The series of one target, which are all its records' series: shapes
/// identify them, since the target's labels are the same on each.
#[derive(Debug, Default)]
pub struct StaleTracker {
    /// Shapes of incomplete readings since the last complete one that it
    /// did not have, sorted by address, each once.
    added: Vec<Arc<Shape>>,
    /// Whether an incomplete reading was remembered since the last complete one.
    remembered: bool,
}

fn address(shape: &Arc<Shape>) -> usize {
    Arc::as_ptr(shape) as usize
}

/// The shapes of `series` (stale markers left out), sorted, each once.
fn sorted_shapes(series: &[Series]) -> Vec<Arc<Shape>> {
    let mut shapes = Vec::with_capacity(series.len());
    shapes.extend(
        series
            .iter()
            .filter(|s| !is_stale_marker(s.value))
            .map(|s| s.shape.clone()),
    );
    shapes.sort_unstable_by_key(address);
    shapes.dedup_by(|a, b| Arc::ptr_eq(a, b));
    shapes
}

/// Those of `shapes` (sorted) that `known` (sorted) lacks, in order.
fn missing<'a>(
    shapes: &'a [Arc<Shape>],
    known: &'a [Arc<Shape>],
) -> impl Iterator<Item = &'a Arc<Shape>> {
    let mut known = known.iter().peekable();
    shapes.iter().filter(move |shape| {
        while known.next_if(|k| address(k) < address(shape)).is_some() {}
        known.peek().is_none_or(|k| address(k) != address(shape))
    })
}

impl StaleTracker {
    /// Takes a new complete reading (`current`) and the target's complete
    /// one before it (`previous`); returns markers for the series seen
    /// since `previous` that `current` lacks. `matched`: what flattening
    /// `current` against `previous` found (`Matched::unknown` when it was
    /// not).
    pub fn markers(
        &mut self,
        previous: &[Series],
        current: &[Series],
        matched: &Matched,
    ) -> Vec<Series> {
        self.remembered = false;
        if matched.unchanged && self.added.is_empty() {
            return Vec::new();
        }
        // Only these can have ended: every other series of `previous` is
        // one of `current`'s.
        let mut candidates: Vec<Arc<Shape>> = matched
            .unmatched
            .iter()
            .filter_map(|&i| previous.get(i))
            .filter(|s| !is_stale_marker(s.value))
            .map(|s| s.shape.clone())
            .collect();
        candidates.append(&mut self.added);
        candidates.sort_unstable_by_key(address);
        candidates.dedup_by(|a, b| Arc::ptr_eq(a, b));
        let now;
        let ended: Vec<&Arc<Shape>> = if candidates.len() <= FEW {
            // A look through the reading for each costs less than a sort.
            candidates
                .iter()
                .filter(|c| {
                    !current
                        .iter()
                        .any(|s| Arc::ptr_eq(&s.shape, c) && !is_stale_marker(s.value))
                })
                .collect()
        } else {
            now = sorted_shapes(current);
            missing(&candidates, &now).collect()
        };
        ended
            .into_iter()
            .map(|shape| Series {
                shape: shape.clone(),
                value: stale_nan(),
            })
            .collect()
    }

    /// Takes an incomplete reading (one that did not read every section)
    /// and the target's last complete one: series new to both are
    /// remembered, none is ended, since a series missing from it was not
    /// read rather than gone. `unchanged`: `current` has the very series of
    /// the incomplete reading before it.
    pub fn remember(&mut self, complete: &[Series], current: &[Series], unchanged: bool) {
        if unchanged && std::mem::replace(&mut self.remembered, true) {
            // The reading before, remembered since the last complete one,
            // had these very series.
            return;
        }
        let known = sorted_shapes(complete);
        let now = sorted_shapes(current);
        let new: Vec<Arc<Shape>> = missing(&now, &known).cloned().collect();
        let before = self.added.len();
        let fresh: Vec<Arc<Shape>> = missing(&new, &self.added).cloned().collect();
        self.added.extend(fresh);
        if self.added.len() > before {
            self.added.sort_unstable_by_key(address);
        }
    }

    /// Markers for every series of the target (it was removed): those of
    /// its last complete reading and those added since; forgets them.
    pub fn all(&mut self, complete: &[Series]) -> Vec<Series> {
        let mut seen = sorted_shapes(complete);
        seen.append(&mut self.added);
        seen.sort_unstable_by_key(address);
        seen.dedup_by(|a, b| Arc::ptr_eq(a, b));
        seen.into_iter()
            .map(|shape| Series {
                shape,
                value: stale_nan(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Kind;
    use crate::series::catalogue::shape;

    /// A reading of series named `names`.
    fn reading(names: &[&str]) -> Vec<Series> {
        names
            .iter()
            .map(|name| Series {
                shape: shape(&format!("stale_test_{name}"), Kind::Gauge, "", &[]),
                value: 1.0,
            })
            .collect()
    }

    /// A target as the agent runs it: the tracker and the last complete reading.
    #[derive(Default)]
    struct Target {
        tracker: StaleTracker,
        complete: Vec<Series>,
    }

    impl Target {
        fn complete(&mut self, names: &[&str]) -> Vec<Series> {
            self.complete_as(names, false)
        }

        fn complete_as(&mut self, names: &[&str], unchanged: bool) -> Vec<Series> {
            let current = reading(names);
            let matched = if unchanged {
                Matched {
                    unchanged: true,
                    unmatched: Vec::new(),
                }
            } else {
                Matched::unknown(self.complete.len())
            };
            let markers = self.tracker.markers(&self.complete, &current, &matched);
            self.complete = current;
            markers
        }

        fn fast(&mut self, names: &[&str]) {
            self.tracker
                .remember(&self.complete, &reading(names), false);
        }

        fn removed(&mut self) -> Vec<Series> {
            self.tracker.all(&self.complete)
        }
    }

    fn names(markers: &[Series]) -> Vec<String> {
        let mut names: Vec<String> = markers
            .iter()
            .map(|s| s.shape.name().trim_start_matches("stale_test_").to_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn vanished_series_get_one_marker() {
        let mut t = Target::default();
        assert!(t.complete(&["a", "b", "c"]).is_empty());
        let ended = t.complete(&["a"]);
        assert_eq!(names(&ended), ["b", "c"]);
        assert!(ended.iter().all(|s| is_stale_marker(s.value)));
        // Once only.
        assert!(t.complete(&["a"]).is_empty());
        // A series that comes back is tracked again.
        assert!(t.complete(&["a", "b"]).is_empty());
        assert_eq!(names(&t.removed()), ["a", "b"]);
    }

    #[test]
    fn an_incomplete_reading_ends_nothing_and_adds_what_is_new() {
        let mut t = Target::default();
        assert!(t.complete(&["fast", "detail"]).is_empty());
        // Between complete readings only the fast series are read.
        t.fast(&["fast", "new"]);
        t.fast(&["fast", "new", "newer"]);
        // The next complete reading judges everything seen since the last.
        let ended = t.complete(&["fast", "detail"]);
        assert_eq!(names(&ended), ["new", "newer"]);
        // And forgets what it judged.
        assert!(t.complete(&["fast", "detail"]).is_empty());
    }

    #[test]
    fn a_removed_target_ends_what_fast_readings_added_too() {
        let mut t = Target::default();
        assert!(t.complete(&["a"]).is_empty());
        t.fast(&["a", "b"]);
        assert_eq!(names(&t.removed()), ["a", "b"]);
    }

    #[test]
    fn markers_and_repeated_series_are_not_series_of_the_reading() {
        let mut t = Target::default();
        let mut first = reading(&["a", "a", "b"]);
        first.push(Series {
            shape: shape("stale_test_c", Kind::Gauge, "", &[]),
            value: stale_nan(),
        });
        assert!(
            t.tracker
                .markers(&[], &first, &Matched::unknown(0))
                .is_empty()
        );
        t.complete = first;
        // `c` was only a marker: it is not ended again.
        assert_eq!(names(&t.complete(&["a"])), ["b"]);
    }

    #[test]
    fn an_unchanged_reading_is_not_judged_unless_one_in_between_added() {
        let mut t = Target::default();
        assert!(t.complete(&["a", "b"]).is_empty());
        // What `unchanged` promises: the same series as the last complete reading.
        assert!(t.complete_as(&["a", "b"], true).is_empty());
        t.fast(&["a", "new"]);
        // Now `new` was seen since and must be ended, unchanged or not.
        assert_eq!(names(&t.complete_as(&["a", "b"], true)), ["new"]);
        assert!(t.complete_as(&["a", "b"], true).is_empty());
    }

    #[test]
    fn an_unchanged_incomplete_reading_is_not_judged_twice_between_complete_ones() {
        let mut t = Target::default();
        assert!(t.complete(&["a"]).is_empty());
        // `unchanged` before anything was remembered since the complete
        // reading: still judged.
        t.tracker
            .remember(&t.complete, &reading(&["a", "new"]), true);
        t.tracker
            .remember(&t.complete, &reading(&["a", "new"]), true);
        assert_eq!(names(&t.complete(&["a"])), ["new"]);
        // After a complete reading, the first incomplete one is judged again.
        t.tracker
            .remember(&t.complete, &reading(&["a", "newer"]), true);
        assert_eq!(names(&t.complete(&["a"])), ["newer"]);
    }

    #[test]
    fn many_series_ended_at_once_are_all_marked() {
        let mut t = Target::default();
        let all: Vec<String> = (0..3 * FEW).map(|i| format!("many{i}")).collect();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        assert!(t.complete(&all).is_empty());
        // More than `FEW` at once, then fewer.
        let ended = t.complete(&all[..FEW]);
        assert_eq!(ended.len(), 2 * FEW);
        assert_eq!(
            names(&t.complete(&all[..FEW - 1])),
            [format!("many{}", FEW - 1)]
        );
    }

    #[test]
    fn the_marker_is_prometheus_stale_nan() {
        assert!(stale_nan().is_nan());
        assert_eq!(stale_nan().to_bits(), 0x7ff0000000000002);
        assert!(!is_stale_marker(f64::NAN));
    }
}
