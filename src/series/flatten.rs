//! A reading's families turned into series, matched by position against
//! the target's reading before.
//!
//! A reading is flattened into [`Series`] (a shared shape and a value, 16
//! bytes) by position: a target's readings list their series in the same
//! order every time, so each point is first compared with the series at its
//! place in the previous reading. Only a point that differs there (a new
//! command, a replica gone) is looked up in the catalogue, under its lock.
//! [`Flattener`] skips even the comparison when a fingerprint of the
//! reading says its series are those of the reading before.

use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, LazyLock, MutexGuard};

use super::catalogue::{Catalogue, catalogue, point_labels};
use super::record::{HistogramSeries, Series};
use crate::metrics::{Families, Kind, NativePoint};

/// Flattens the readings of one kind of one target, each against the one
/// before, and knows without looking at a single shape when a reading has
/// exactly the series of the one before (nearly always).
///
/// Matching each point against the shape at its place in the reading
/// before reads every one of a reading's few hundred shapes, which are
/// shared by every target and spread over the heap: at 1000 targets that
/// was a tenth of the agent's CPU, most of it waiting for memory. A
/// fingerprint of the reading's series, made from the reading itself
/// (names, types, suffixes, labels; not values), tells the usual case
/// apart: then the series are the shapes of the reading before with the
/// new values.
#[derive(Debug, Default)]
pub struct Flattener {
    /// The fingerprint of the reading flattened last.
    last: Option<u64>,
}

impl Flattener {
    /// Appends the series of `families` to `out`, as [`flatten`] does.
    /// `previous` must begin with the series this flattener produced for
    /// the reading before (stale markers may follow them): the caller keeps
    /// the two together (`TargetSeries` does, one flattener per kind of
    /// reading).
    pub fn flatten(
        &mut self,
        families: &Families,
        previous: &[Series],
        out: &mut Vec<Series>,
    ) -> Matched {
        let fingerprint = fingerprint(families);
        let count = families.sample_count();
        if self.last.replace(fingerprint) == Some(fingerprint) && previous.len() >= count {
            let start = out.len();
            let values = families
                .iter()
                .flat_map(|f| f.points.iter().map(|p| p.value));
            out.extend(
                previous[..count]
                    .iter()
                    .zip(values)
                    .map(|(s, value)| Series {
                        shape: s.shape.clone(),
                        value,
                    }),
            );
            debug_assert!(
                same_as_compared(families, previous, &out[start..]),
                "a fingerprint matched a reading of other series"
            );
            return Matched {
                unchanged: true,
                unmatched: Vec::new(),
            };
        }
        flatten(families, previous, out)
    }
}

/// Whether `series` are what comparing each point of `families` with
/// `previous` gives: what the fingerprint stands for, checked in debug
/// builds (every test run) where release builds trust it.
fn same_as_compared(families: &Families, previous: &[Series], series: &[Series]) -> bool {
    let mut compared = Vec::with_capacity(series.len());
    let matched = flatten(families, previous, &mut compared);
    compared.len() == series.len()
        && compared
            .iter()
            .zip(series)
            .all(|(a, b)| Arc::ptr_eq(&a.shape, &b.shape) && a.value.to_bits() == b.value.to_bits())
        && matched.unmatched.iter().all(|&j| j >= series.len())
}

/// A fingerprint of which series `families` hold, in order. Seeded per
/// process (label values come from the server): two different readings
/// share one with a chance of 2^-64, once in billions of years of
/// readings. Label names and suffixes are the mapper's static strings and
/// are hashed by address; names and values by their text.
fn fingerprint(families: &Families) -> u64 {
    static SEED: LazyLock<foldhash::quality::RandomState> = LazyLock::new(Default::default);
    let mut h = SEED.build_hasher();
    for family in families {
        h.write_usize(family.name.len() << 40 | family.points.len() << 8 | family.kind as usize);
        h.write(family.name.as_bytes());
        for point in family.points {
            // A static string's address (below 2^47) and a length below
            // 2^16 share a word without overlapping; so do the lengths of a
            // name (below 2^24) and of a family (2^32) and its type.
            h.write_usize(point.suffix.as_ptr() as usize ^ (point.labels.len() << 48));
            for (name, value) in &point.labels {
                h.write_usize(name.as_ptr() as usize ^ (name.len() << 48));
                h.write_usize(value.len());
                h.write(value.as_bytes());
            }
        }
    }
    h.finish()
}

/// What [`flatten`] learnt of a reading's series while matching them
/// against those of the reading before.
#[derive(Debug, Default, PartialEq)]
pub struct Matched {
    /// The reading has exactly the series of the one before, in order:
    /// nothing started or ended.
    pub unchanged: bool,
    /// Positions in the reading before of the series no point matched where
    /// it sat or one place off, in order: every series that ended is among
    /// them (and one that moved further, which the stale check then finds
    /// in the reading). Every other one is in the reading.
    pub unmatched: Vec<usize>,
}

impl Matched {
    /// For series compared by nothing: any of `previous_len` may have ended.
    pub fn unknown(previous_len: usize) -> Matched {
        Matched {
            unchanged: false,
            unmatched: (0..previous_len).collect(),
        }
    }
}

/// The native histograms of `families` as series, sharing the shape of
/// the one at the same place in `previous` (the target's last complete
/// reading's) where it is the same. Few per reading (one per command), so
/// no fingerprint: each is compared, and looked up when it differs.
pub(crate) fn flatten_natives(
    families: &Families,
    previous: &[HistogramSeries],
) -> Vec<HistogramSeries> {
    let mut locked: Option<MutexGuard<'static, Catalogue>> = None;
    families
        .natives()
        .iter()
        .enumerate()
        .map(|(i, point)| {
            let shape = match previous.get(i) {
                Some(before)
                    if before
                        .shape
                        .same(point.name, Kind::Histogram, "", native_labels(point)) =>
                {
                    before.shape.clone()
                }
                _ => locked.get_or_insert_with(catalogue).shape(
                    point.name,
                    Kind::Histogram,
                    "",
                    point
                        .labels
                        .iter()
                        .map(|(n, v)| (Cow::Borrowed(*n), v.as_str())),
                ),
            };
            HistogramSeries {
                shape,
                histogram: point.histogram.clone(),
            }
        })
        .collect()
}

fn native_labels(point: &NativePoint) -> impl ExactSizeIterator<Item = (&str, &str)> {
    point.labels.iter().map(|(n, v)| (*n, v.as_str()))
}

/// Appends the series of `families` to `out`, sharing the shapes of
/// `previous` (the target's last reading of the same kind) where a point
/// sits where it sat then, or one place off.
pub fn flatten(families: &Families, previous: &[Series], out: &mut Vec<Series>) -> Matched {
    let mut in_place = true;
    // Which series of `previous` a point matched: kept from the first point
    // that is not where it was (until then, all of those before it).
    let mut matched: Option<Vec<u64>> = None;
    let mark = |matched: &mut Option<Vec<u64>>, at: isize| {
        if let (Some(bits), Ok(at)) = (matched.as_mut(), usize::try_from(at)) {
            bits[at / 64] |= 1 << (at % 64);
        }
    };
    // Taken at the first point that is not where it was, if any.
    let mut locked: Option<MutexGuard<'static, Catalogue>> = None;
    // How far the previous reading's series are from this one's: a series
    // that appeared or vanished moves the ones after it by one place.
    let mut shift: isize = 0;
    let mut i: isize = 0;
    for family in families {
        let mut name_ok = std::ptr::null();
        for point in family.points {
            let at = i + shift;
            let before = usize::try_from(at).ok().and_then(|at| previous.get(at));
            let shape = match before {
                Some(s)
                    if s.shape
                        .is_point(family.name, family.kind, point, &mut name_ok) =>
                {
                    in_place &= shift == 0;
                    mark(&mut matched, at);
                    s.shape.clone()
                }
                _ => {
                    if in_place {
                        in_place = false;
                        let mut bits = vec![0u64; previous.len().div_ceil(64)];
                        for j in 0..(i as usize).min(previous.len()) {
                            bits[j / 64] |= 1 << (j % 64);
                        }
                        matched = Some(bits);
                    }
                    let table = locked.get_or_insert_with(catalogue);
                    let shape =
                        table.shape(family.name, family.kind, point.suffix, point_labels(point));
                    // Is it one place off? Then so are the ones after it.
                    for delta in [0, 1, -1] {
                        let moved = usize::try_from(at + delta)
                            .ok()
                            .and_then(|j| previous.get(j));
                        if moved.is_some_and(|s| Arc::ptr_eq(&s.shape, &shape)) {
                            shift += delta;
                            mark(&mut matched, at + delta);
                            break;
                        }
                    }
                    shape
                }
            };
            out.push(Series {
                shape,
                value: point.value,
            });
            i += 1;
        }
    }
    let count = i as usize;
    match matched {
        None if count == previous.len() => Matched {
            unchanged: true,
            unmatched: Vec::new(),
        },
        // Every point matched in place; `previous` may have more.
        None => Matched {
            unchanged: false,
            unmatched: (count..previous.len()).collect(),
        },
        Some(bits) => Matched {
            unchanged: false,
            unmatched: (0..previous.len())
                .filter(|&j| bits[j / 64] & (1 << (j % 64)) == 0)
                .collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Kind, smallvec};
    use crate::series::catalogue::shape;
    use proptest::prelude::*;

    fn commands(names: &[&str]) -> Families {
        let mut families = Families::new();
        families.plain("redis_up", Kind::Gauge, 1.0);
        for name in names {
            families.push(
                "redis_commands_total",
                Kind::Counter,
                "",
                smallvec![("cmd", (*name).into())],
                1.0,
            );
        }
        families.plain("redis_uptime_in_seconds", Kind::Gauge, 7.0);
        families
    }

    fn read(families: &Families, previous: &[Series]) -> Vec<Series> {
        let mut out = Vec::new();
        flatten(families, previous, &mut out);
        out
    }

    #[test]
    fn flatten_tells_whether_the_series_are_those_of_the_reading_before() {
        let mut out = Vec::new();
        assert!(!flatten(&commands(&["get"]), &[], &mut out).unchanged);
        let first = std::mem::take(&mut out);
        assert!(flatten(&commands(&["get"]), &first, &mut out).unchanged);
        out.clear();
        assert!(!flatten(&commands(&["get", "set"]), &first, &mut out).unchanged);
        out.clear();
        assert!(!flatten(&commands(&[]), &first, &mut out).unchanged);
    }

    #[test]
    fn a_flattener_reuses_the_shapes_of_a_reading_like_the_one_before() {
        let mut flattener = Flattener::default();
        let mut first = Vec::new();
        assert!(
            !flattener
                .flatten(&commands(&["get", "set"]), &[], &mut first)
                .unchanged
        );
        // Stale markers after the series do not matter.
        let marker = shape("stale_marker_test", Kind::Gauge, "", &[]);
        first.push(Series {
            shape: marker,
            value: f64::NAN,
        });
        let mut again = commands(&["get", "set"]);
        again.plain("redis_other_value", Kind::Gauge, 2.0);
        let mut second = Vec::new();
        // A family more: not the same series.
        assert!(!flattener.flatten(&again, &first, &mut second).unchanged);
        let mut third = Vec::new();
        assert!(flattener.flatten(&again, &second, &mut third).unchanged);
        assert_eq!(third, second);
        // New values, same series: the shapes of the reading before.
        let mut values = Families::new();
        values.plain("redis_up", Kind::Gauge, 0.0);
        for cmd in ["get", "set"] {
            values.push(
                "redis_commands_total",
                Kind::Counter,
                "",
                smallvec![("cmd", cmd.into())],
                5.0,
            );
        }
        values.plain("redis_uptime_in_seconds", Kind::Gauge, 9.0);
        values.plain("redis_other_value", Kind::Gauge, 3.0);
        let mut fourth = Vec::new();
        assert!(flattener.flatten(&values, &third, &mut fourth).unchanged);
        let got: Vec<f64> = fourth.iter().map(|s| s.value).collect();
        assert_eq!(got, [0.0, 5.0, 5.0, 9.0, 3.0]);
        assert!(
            fourth
                .iter()
                .zip(&third)
                .all(|(a, b)| Arc::ptr_eq(&a.shape, &b.shape))
        );
        // A label value changed: flattened anew, shapes of its own.
        let mut fifth = Vec::new();
        let mut other = commands(&["get", "del"]);
        other.plain("redis_other_value", Kind::Gauge, 2.0);
        assert!(!flattener.flatten(&other, &fourth, &mut fifth).unchanged);
        assert_eq!(fifth[2].shape.labels().next(), Some(("cmd", "del")));
    }

    /// `unmatched` names the series of the reading before that the new one
    /// lacks, whatever appeared or vanished around them; a series that
    /// moved more than one place is named too.
    #[test]
    fn flatten_names_the_series_no_point_matched() {
        let reading = |names: &[&str]| read(&commands(names), &[]);
        let unmatched = |before: &[&str], now: &[&str]| {
            let mut out = Vec::new();
            flatten(&commands(now), &reading(before), &mut out).unmatched
        };
        // Positions count `redis_up` first, then the commands.
        assert_eq!(unmatched(&["a", "b", "c"], &["a", "b", "c"]), [0usize; 0]);
        assert_eq!(unmatched(&["a", "b", "c"], &["a", "c"]), [2]);
        assert_eq!(
            unmatched(&["a", "b", "c"], &["a", "x", "b", "c"]),
            [0usize; 0]
        );
        // `a` moved two places.
        assert_eq!(unmatched(&["a", "b", "c"], &["b", "a", "c"]), [1]);
        // `a` and `b` ended; `c` and `redis_uptime_in_seconds` moved two places.
        assert_eq!(unmatched(&["a", "b", "c"], &["c"]), [1, 2, 3, 4]);
    }

    proptest! {
        /// Whatever the two readings, every series of the one before that
        /// the new one lacks is among `unmatched`.
        #[test]
        fn flatten_never_misses_an_ended_series(
            before in prop::collection::vec(0u8..8, 0..12),
            now in prop::collection::vec(0u8..8, 0..12),
        ) {
            let names = |ids: &[u8]| ids.iter().map(|i| format!("c{i}")).collect::<Vec<_>>();
            let (before, now) = (names(&before), names(&now));
            fn strs(v: &[String]) -> Vec<&str> {
                v.iter().map(String::as_str).collect()
            }
            let previous = read(&commands(&strs(&before)), &[]);
            let mut out = Vec::new();
            let matched = flatten(&commands(&strs(&now)), &previous, &mut out);
            for (j, s) in previous.iter().enumerate() {
                if !out.iter().any(|o| Arc::ptr_eq(&o.shape, &s.shape)) {
                    prop_assert!(matched.unmatched.contains(&j), "{j} ended but not named");
                }
            }
            prop_assert_eq!(matched.unchanged, matched.unmatched.is_empty() && out.len() == previous.len()
                && out.iter().zip(&previous).all(|(a, b)| Arc::ptr_eq(&a.shape, &b.shape)));
        }
    }

    #[test]
    fn equal_points_share_one_shape_across_readings_and_targets() {
        let a = read(&commands(&["get", "set"]), &[]);
        let b = read(&commands(&["get", "set"]), &[]);
        let again = read(&commands(&["get", "set"]), &a);
        for ((x, y), z) in a.iter().zip(&b).zip(&again) {
            assert!(Arc::ptr_eq(&x.shape, &y.shape));
            assert!(Arc::ptr_eq(&x.shape, &z.shape));
        }
        assert_eq!(a[1].shape.labels().next(), Some(("cmd", "get")));
        assert_eq!(a[1].shape.kind(), Kind::Counter);
    }

    #[test]
    fn a_series_that_appears_or_vanishes_moves_the_rest() {
        let before = read(&commands(&["get", "set", "del"]), &[]);
        // One more command in the middle, then one fewer.
        let more = read(&commands(&["get", "hset", "set", "del"]), &before);
        let fewer = read(&commands(&["get", "del"]), &more);
        let names = |s: &[Series]| -> Vec<String> {
            s.iter()
                .map(|s| match s.shape.labels().next() {
                    Some((_, v)) => v.to_owned(),
                    None => s.shape.name().to_owned(),
                })
                .collect()
        };
        assert_eq!(
            names(&more),
            [
                "redis_up",
                "get",
                "hset",
                "set",
                "del",
                "redis_uptime_in_seconds"
            ]
        );
        assert_eq!(
            names(&fewer),
            ["redis_up", "get", "del", "redis_uptime_in_seconds"]
        );
        // Every series still has the one shared shape of its kind.
        for s in more.iter().chain(&fewer) {
            let fresh = shape(
                s.shape.name(),
                s.shape.kind(),
                s.shape.suffix(),
                &s.shape.labels().collect::<Vec<_>>(),
            );
            assert!(Arc::ptr_eq(&s.shape, &fresh));
        }
    }
}
