//! The sample model shared by every stage after the sampler, and the pure
//! logic that fills it: the INFO-field table, the mapper, the text exposition.
//!
//! A target's reading becomes a list of [`Family`]s: one metric name with its
//! type and the points under it. It is built anew at every reading and
//! flattened into shared series at once (`series::flatten`), so it is made
//! to cost next to no allocation: all points sit in one vector, label names
//! are `&'static str` (every name comes from the table or the mapper's
//! code), a point's labels sit inline, and so do label values up to 23 bytes
//! (`cmd`, `db`, a replica's address), which is nearly all of them.

pub(crate) mod help;
pub(crate) mod keys;
pub(crate) mod mapper;
pub(crate) mod native;
pub(crate) mod table;

use std::fmt::Write;
use std::ops::Deref;
use std::sync::Arc;

use smallvec::SmallVec;

pub(crate) use native::NativeHistogram;
pub(crate) use smallvec::smallvec;
pub(crate) use smol_str::{SmolStr, format_smolstr};

/// The NaN Prometheus reserves for "this series ended here": a float
/// sample's value (`series::stale`), a native histogram's sum (`native`).
pub(crate) const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Prometheus metric type, as written in `# TYPE` lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Summary,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
            Kind::Histogram => "histogram",
        }
    }
}

/// Label pairs of one point, name first: inline up to two, the most any
/// frequent point has.
pub(crate) type Labels = SmallVec<[(&'static str, SmolStr); 2]>;

/// One value of a family. `suffix` is `""` for plain samples and `_sum`,
/// `_count` or `_bucket` for the parts of a summary or histogram.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub suffix: &'static str,
    pub labels: Labels,
    pub value: f64,
}

/// All points of one metric name: a view into [`Families`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Family<'a> {
    pub name: &'a str,
    pub kind: Kind,
    pub points: &'a [Point],
}

/// A family name: the table's or the mapper's own static string, or a name
/// made at run time (`redis_<field>` for an INFO field the table does not
/// know), shared so that a later reading does not make it again.
#[derive(Clone, Debug)]
pub enum Name {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Name::Static(s) => s,
            Name::Shared(s) => s,
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        **self == **other
    }
}

impl From<&'static str> for Name {
    fn from(s: &'static str) -> Name {
        Name::Static(s)
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name::Shared(s.into())
    }
}

impl From<Arc<str>> for Name {
    fn from(s: Arc<str>) -> Name {
        Name::Shared(s)
    }
}

/// Where a family's points start in [`Families::points`].
#[derive(Clone, Debug, PartialEq)]
struct Head {
    name: Name,
    kind: Kind,
    start: usize,
}

/// The families of one reading, in the order they were first pushed.
///
/// A point joins the most recent family when it has the same name, else it
/// starts a new family: producers emit all points of one name together (the
/// mapper does; a test checks that names stay unique), and this keeps `push`
/// O(1) instead of a search over ~300 families for each of ~400 points.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Families {
    heads: Vec<Head>,
    points: Vec<Point>,
    /// Native histograms, a lane of their own: few (one per command) and
    /// only in complete readings, so the points' hot path never sees them.
    natives: Vec<NativePoint>,
}

/// One native histogram of a reading: its family name, own labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct NativePoint {
    pub name: &'static str,
    pub labels: Labels,
    pub histogram: NativeHistogram,
}

impl Families {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `points` points without growing (a reading of about the
    /// size of the one before).
    pub fn with_capacity(points: usize) -> Self {
        Families {
            heads: Vec::with_capacity(points / 2),
            points: Vec::with_capacity(points),
            natives: Vec::new(),
        }
    }

    pub fn push(
        &mut self,
        name: impl Into<Name>,
        kind: Kind,
        suffix: &'static str,
        labels: Labels,
        value: f64,
    ) {
        let name = name.into();
        if self.heads.last().is_none_or(|h| *h.name != *name) {
            self.heads.push(Head {
                name,
                kind,
                start: self.points.len(),
            });
        }
        self.points.push(Point {
            suffix,
            labels,
            value,
        });
    }

    /// A native histogram of family `name` (of kind histogram).
    pub fn push_native(&mut self, name: &'static str, labels: Labels, histogram: NativeHistogram) {
        self.natives.push(NativePoint {
            name,
            labels,
            histogram,
        });
    }

    /// The native histograms, in the order they were pushed.
    pub fn natives(&self) -> &[NativePoint] {
        &self.natives
    }

    /// A plain sample without labels.
    pub fn plain(&mut self, name: impl Into<Name>, kind: Kind, value: f64) {
        self.push(name, kind, "", Labels::new(), value);
    }

    /// Appends copies of all of `other`'s families (whose names this does not have).
    pub fn extend_from(&mut self, other: &Families) {
        let offset = self.points.len();
        self.heads.extend(other.heads.iter().map(|h| Head {
            start: h.start + offset,
            ..h.clone()
        }));
        self.points.extend(other.points.iter().cloned());
        self.natives.extend(other.natives.iter().cloned());
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            families: self,
            next: 0,
        }
    }

    pub fn get(&self, name: &str) -> Option<Family<'_>> {
        self.iter().find(|f| f.name == name)
    }

    pub fn len(&self) -> usize {
        self.heads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }

    /// Number of points (float samples) over all families, native
    /// histograms left out.
    pub fn sample_count(&self) -> usize {
        self.points.len()
    }

    /// Keeps at most `max` points; returns how many were dropped. Families
    /// are kept in order while they fit. A counter or gauge family that
    /// does not fit keeps the points that do (each stands alone); a summary
    /// or histogram that does not fit is left out whole (a part of one is
    /// malformed), and a smaller family after it may still fit. The same
    /// reading shape is cut the same way every time. Native histograms
    /// count one each and come last: those the points leave room for stay.
    pub fn keep_at_most(&mut self, max: usize) -> usize {
        let total = self.points.len();
        if total + self.natives.len() <= max {
            return 0;
        }
        let natives = self.natives.len();
        self.natives.truncate(max.saturating_sub(total));
        let dropped_natives = natives - self.natives.len();
        if total <= max {
            return dropped_natives;
        }
        let mut heads = Vec::new();
        let mut points = Vec::with_capacity(max);
        for (i, head) in self.heads.iter().enumerate() {
            let room = max - points.len();
            if room == 0 {
                break;
            }
            let end = self.heads.get(i + 1).map_or(total, |h| h.start);
            let len = end - head.start;
            let take = match head.kind {
                _ if len <= room => len,
                Kind::Counter | Kind::Gauge => room,
                Kind::Summary | Kind::Histogram => 0,
            };
            if take > 0 {
                heads.push(Head {
                    start: points.len(),
                    ..head.clone()
                });
                points.extend_from_slice(&self.points[head.start..head.start + take]);
            }
        }
        self.heads = heads;
        self.points = points;
        total - self.points.len() + dropped_natives
    }
}

/// The families of [`Families`], in order.
pub struct Iter<'a> {
    families: &'a Families,
    next: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Family<'a>;

    fn next(&mut self) -> Option<Family<'a>> {
        let heads = &self.families.heads;
        let head = heads.get(self.next)?;
        self.next += 1;
        let end = heads
            .get(self.next)
            .map_or(self.families.points.len(), |h| h.start);
        Some(Family {
            name: &head.name,
            kind: head.kind,
            points: &self.families.points[head.start..end],
        })
    }
}

impl<'a> IntoIterator for &'a Families {
    type Item = Family<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Floats as Prometheus parses them: `NaN`, `+Inf`, `-Inf`, else the
/// shortest decimal that round-trips.
pub(crate) fn write_value(out: &mut impl Write, value: f64) {
    // Below 2^53 every integer is exact, and its digits are what the float
    // formatting would print; writing them as an integer costs a fraction
    // of it (most values are counts, and every histogram bound is one).
    const EXACT: f64 = 9_007_199_254_740_992.0;
    let _ = if value.is_nan() {
        out.write_str("NaN")
    } else if value.is_infinite() {
        out.write_str(if value > 0.0 { "+Inf" } else { "-Inf" })
    } else if value.fract() == 0.0 && value.abs() < EXACT && !value.is_sign_negative() {
        write!(out, "{}", value as u64)
    } else {
        write!(out, "{value}")
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn families(spec: &[(Kind, usize)]) -> Families {
        let mut f = Families::new();
        for (i, &(kind, n)) in spec.iter().enumerate() {
            for p in 0..n {
                let labels = smallvec![("i", format_smolstr!("{p}"))];
                f.push(format!("f{i}"), kind, "", labels, p as f64);
            }
        }
        f
    }

    #[test]
    fn a_cut_keeps_whole_families_and_splits_only_plain_ones() {
        use Kind::{Counter, Gauge, Histogram};
        let mut f = families(&[
            (Gauge, 2),
            (Histogram, 5),
            (Gauge, 1),
            (Counter, 4),
            (Gauge, 3),
        ]);
        assert_eq!(f.keep_at_most(6), 9);
        let kept: Vec<(&str, usize)> = f.iter().map(|f| (f.name, f.points.len())).collect();
        // The histogram does not fit and is left out; the counter is split.
        assert_eq!(kept, [("f0", 2), ("f2", 1), ("f3", 3)]);
        assert_eq!(f.sample_count(), 6);
        let mut small = families(&[(Gauge, 2)]);
        assert_eq!(small.keep_at_most(2), 0);
        assert_eq!(small.sample_count(), 2);
    }

    #[test]
    fn native_histograms_count_one_each_and_are_cut_last() {
        let mut f = families(&[(Kind::Gauge, 3)]);
        for cmd in ["get", "set", "del"] {
            let h = NativeHistogram::from_cumulative(1.0, 1.0, &[(1.0, 1.0)]);
            f.push_native("latency", smallvec![("cmd", cmd.into())], h);
        }
        let mut roomy = f.clone();
        assert_eq!(roomy.keep_at_most(6), 0);
        assert_eq!(roomy.natives().len(), 3);
        assert_eq!(f.keep_at_most(4), 2);
        assert_eq!(f.sample_count(), 3);
        let kept: Vec<&str> = f.natives().iter().map(|n| n.labels[0].1.as_str()).collect();
        assert_eq!(kept, ["get"]);
        let mut tight = families(&[(Kind::Gauge, 3)]);
        tight.push_native("latency", smallvec![], NativeHistogram::stale());
        assert_eq!(tight.keep_at_most(2), 2);
        assert!(tight.natives().is_empty());
    }

    proptest::proptest! {
        #[test]
        fn a_cut_is_bounded_ordered_and_keeps_histograms_whole(
            spec in proptest::collection::vec((0u8..4, 1usize..6), 0..8),
            max in 0usize..20,
        ) {
            let kinds = [Kind::Counter, Kind::Gauge, Kind::Summary, Kind::Histogram];
            let spec: Vec<(Kind, usize)> = spec.iter().map(|&(k, n)| (kinds[k as usize], n)).collect();
            let full = families(&spec);
            let mut cut = full.clone();
            let dropped = cut.keep_at_most(max);
            proptest::prop_assert!(cut.sample_count() <= max);
            proptest::prop_assert_eq!(cut.sample_count() + dropped, full.sample_count());
            let mut last = None;
            for f in &cut {
                let whole = full.get(f.name).expect("a family of the reading");
                proptest::prop_assert!(last < Some(f.name), "order kept");
                last = Some(f.name);
                proptest::prop_assert_eq!(f.points, &whole.points[..f.points.len()]);
                if matches!(f.kind, Kind::Summary | Kind::Histogram) {
                    proptest::prop_assert_eq!(f.points.len(), whole.points.len());
                }
            }
        }
    }

    #[test]
    fn integers_are_written_as_the_float_formatting_writes_them() {
        let mut values = vec![0.0, -0.0, 1.0, -1.0, 0.5, 1e15, 1e16, 1e17, 2f64.powi(53)];
        values.extend((0..64).map(|i| 2f64.powi(i)));
        values.extend((0..64).map(|i| 2f64.powi(i) - 1.0));
        values.extend([
            9_007_199_254_740_991.0,
            9_007_199_254_740_993.0,
            123_456_789.0,
        ]);
        for v in values {
            let mut ours = String::new();
            write_value(&mut ours, v);
            assert_eq!(ours, format!("{v}"), "{v}");
        }
    }
}
