//! The series catalogue: one shared description of each series in the
//! process.
//!
//! A series is a metric name and a label set. Most of its labels come from
//! the reading (`__name__`, `cmd="get"`) and are the same on every target;
//! a few come from the target (`job`, `instance`, external labels) and are
//! the same on every series of it. The two halves are kept apart: a
//! [`Shape`] is a series without its target, shared by every target that
//! has it, and [`TargetLabels`] are a target's own labels, shared by all its
//! series. A receiver's encoder merges the two. So at 1000 targets the
//! process holds about as many shapes as one target has series, not a
//! thousand copies of every label set.
//!
//! Invariants:
//! - one `Arc` per distinct shape and per distinct target set: equal parts
//!   give the same `Arc` (pointer equality is series identity for the
//!   flattener, the stale tracker and the request encoder);
//! - ids come from one counter and are never reused (the queue's segment
//!   files name shapes and sets by them);
//! - an entry that only the catalogue holds any more is dropped once the
//!   catalogue has doubled since its last sweep; holding a shape (a
//!   reading, a queued record, the stale tracker, the queue's reader) is
//!   what keeps it.

use std::borrow::Cow;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock, PoisonError};

use hashbrown::HashTable;

use super::intern::intern;
use crate::metrics::{Kind, Point};

/// One label: name and value, each the process' shared copy (`intern`).
pub(crate) type Label = (Arc<str>, Arc<str>);

/// A series without its target: metric name, type and own labels.
#[derive(Debug)]
pub struct Shape {
    /// Names the shape in the queue's segment files; never reused.
    id: u64,
    hash: u64,
    name: Arc<str>,
    kind: Kind,
    suffix: Arc<str>,
    /// Own labels in the mapper's order, empty values kept: the text
    /// exposition writes them so. A name is the mapper's own `&'static str`
    /// when the shape was made from a point, so that matching a point
    /// against it usually compares pointers, not strings.
    labels: Box<[(Cow<'static, str>, Arc<str>)]>,
    /// What remote write sends of it: `__name__` and the own labels with a
    /// value, sorted byte-wise by name, each name once (the first wins).
    sorted: Box<[Label]>,
    /// Own labels with an empty value. They are no labels, but they hide a
    /// target label of the same name.
    hidden: Box<[Arc<str>]>,
    /// `sorted` as an encoder writes it, made at its first use.
    encoded: OnceLock<EncodedLabels>,
}

impl PartialEq for Shape {
    fn eq(&self, other: &Shape) -> bool {
        self.same(&other.name, other.kind, &other.suffix, other.labels())
    }
}

impl Shape {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The family name (without the suffix).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// `""`, or `_sum`, `_count`, `_bucket` for a part of a summary or histogram.
    pub fn suffix(&self) -> &str {
        &self.suffix
    }

    /// Own labels as the mapper gave them, empty values included.
    pub fn labels(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone {
        self.labels.iter().map(|(n, v)| (&**n, &**v))
    }

    /// `__name__` (name and suffix) and the own labels with a value, sorted
    /// byte-wise by name, each name once (the first given wins): what
    /// remote write sends of the shape.
    pub fn sorted(&self) -> &[Label] {
        &self.sorted
    }

    /// Names of own labels given with an empty value: no labels, but each
    /// hides a target label of its name.
    pub fn hidden(&self) -> &[Arc<str>] {
        &self.hidden
    }

    /// `sorted` as `encode` writes it, made by the first caller and kept.
    pub fn encoded(&self, encode: impl FnOnce(&[Label]) -> EncodedLabels) -> &EncodedLabels {
        self.encoded.get_or_init(|| encode(&self.sorted))
    }

    /// Whether this is the shape of these parts.
    pub(super) fn same<'a>(
        &self,
        name: &str,
        kind: Kind,
        suffix: &str,
        mut labels: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    ) -> bool {
        self.kind == kind
            && self.labels.len() == labels.len()
            && *self.suffix == *suffix
            && *self.name == *name
            && self
                .labels
                .iter()
                .all(|(n, v)| labels.next().is_some_and(|(m, w)| **n == *m && **v == *w))
    }

    /// Whether `point` of family `name` has this shape. The hot path of
    /// every reading, so strings are compared only where pointers do not
    /// tell: the family name once per family (`name_ok`, the address of a
    /// shape name found equal to it), label names by the mapper's static
    /// strings, an empty suffix by its length.
    pub(super) fn is_point(
        &self,
        name: &str,
        kind: Kind,
        point: &Point,
        name_ok: &mut *const u8,
    ) -> bool {
        if self.kind != kind
            || self.labels.len() != point.labels.len()
            || self.suffix.len() != point.suffix.len()
            || (!point.suffix.is_empty() && *self.suffix != *point.suffix)
        {
            return false;
        }
        if self.name.as_ptr() != *name_ok {
            if *self.name != *name {
                return false;
            }
            *name_ok = self.name.as_ptr();
        }
        self.labels
            .iter()
            .zip(&point.labels)
            .all(|((n, v), (m, w))| same_name(n, m) && **v == **w)
    }
}

/// A shape's label name against a point's: the same static string, or equal.
fn same_name(ours: &str, theirs: &str) -> bool {
    (ours.as_ptr() == theirs.as_ptr() && ours.len() == theirs.len()) || ours == theirs
}

pub(super) fn point_labels(
    point: &Point,
) -> impl ExactSizeIterator<Item = (Cow<'static, str>, &str)> + Clone {
    point
        .labels
        .iter()
        .map(|(n, v)| (Cow::Borrowed(*n), v.as_str()))
}

/// The labels a target adds to each of its series: `job`, `instance`,
/// its own labels and the external ones.
#[derive(Debug)]
pub struct TargetLabels {
    /// Names the set in the queue's segment files; never reused.
    id: u64,
    hash: u64,
    /// Sorted byte-wise by name, each name once, no empty value.
    sorted: Box<[Label]>,
    /// `sorted` as an encoder writes it, made at its first use.
    encoded: OnceLock<EncodedLabels>,
}

impl PartialEq for TargetLabels {
    fn eq(&self, other: &TargetLabels) -> bool {
        self.sorted == other.sorted
    }
}

impl TargetLabels {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn labels(&self) -> &[Label] {
        &self.sorted
    }

    /// `labels` as `encode` writes it, made by the first caller and kept.
    pub fn encoded(&self, encode: impl FnOnce(&[Label]) -> EncodedLabels) -> &EncodedLabels {
        self.encoded.get_or_init(|| encode(&self.sorted))
    }
}

/// A label set as an encoder writes it, made once per shape or target set
/// and kept with it, so that a request copies bytes instead of encoding
/// every label of every series again (remote write makes it:
/// `remote_write::labels`).
#[derive(Debug)]
pub struct EncodedLabels {
    /// Each label's sort key: its name's first eight bytes, big-endian,
    /// zero-padded. Keys order as the names do byte-wise, except between
    /// names that share those bytes.
    pub keys: Box<[u64]>,
    /// Where each label's bytes end in `bytes`.
    pub ends: Box<[u32]>,
    pub bytes: Box<[u8]>,
}

// foldhash, not SipHash: see remote_write/encode.rs. Seeded per process,
// since label values come from the monitored servers.
static HASHER: LazyLock<foldhash::fast::RandomState> = LazyLock::new(Default::default);

/// Ids for shapes and target sets, from one counter: the queue's segment
/// files name both by it.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, AtomicOrdering::Relaxed)
}

fn shape_hash<N: AsRef<str>, V: AsRef<str>>(
    name: &str,
    kind: Kind,
    suffix: &str,
    labels: impl Iterator<Item = (N, V)>,
) -> u64 {
    let mut h = HASHER.build_hasher();
    name.hash(&mut h);
    (kind as u8).hash(&mut h);
    suffix.hash(&mut h);
    for (n, v) in labels {
        n.as_ref().hash(&mut h);
        v.as_ref().hash(&mut h);
    }
    h.finish()
}

/// Smallest catalogue worth sweeping.
const SWEEP_FROM: usize = 4096;

#[derive(Default)]
pub(super) struct Catalogue {
    shapes: HashTable<Arc<Shape>>,
    targets: HashTable<Arc<TargetLabels>>,
    /// Entries after the last sweep.
    swept_at: usize,
}

static CATALOGUE: LazyLock<Mutex<Catalogue>> = LazyLock::new(Default::default);

pub(super) fn catalogue() -> MutexGuard<'static, Catalogue> {
    // Every change leaves the tables valid, so a poisoned lock is used as is.
    CATALOGUE.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Catalogue {
    /// The shape of these parts; `labels` yields each label name as the
    /// shape keeps it (the mapper's static string where there is one).
    pub(super) fn shape<'a, I>(
        &mut self,
        name: &str,
        kind: Kind,
        suffix: &str,
        labels: I,
    ) -> Arc<Shape>
    where
        I: ExactSizeIterator<Item = (Cow<'static, str>, &'a str)> + Clone,
    {
        let hash = shape_hash(name, kind, suffix, labels.clone());
        if let Some(found) = self.shapes.find(hash, |s| {
            s.kind == kind
                && *s.name == *name
                && *s.suffix == *suffix
                && s.labels.len() == labels.len()
                && s.labels
                    .iter()
                    .zip(labels.clone())
                    .all(|((n, v), (m, w))| **n == *m && **v == *w)
        }) {
            return found.clone();
        }
        self.sweep();
        let shape = Arc::new(new_shape(hash, name, kind, suffix, labels));
        self.shapes.insert_unique(hash, shape.clone(), |s| s.hash);
        shape
    }

    fn target<'a>(
        &mut self,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Arc<TargetLabels> {
        let mut sorted: Vec<(&str, &str)> =
            labels.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        // Stable: of a name given twice the first is kept (a target's own
        // labels come before the external ones).
        sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        sorted.dedup_by(|a, b| a.0 == b.0);
        let hash = HASHER.hash_one(&sorted);
        let same = |t: &Arc<TargetLabels>| {
            t.sorted.len() == sorted.len()
                && t.sorted
                    .iter()
                    .zip(&sorted)
                    .all(|((n, v), (m, w))| **n == **m && **v == **w)
        };
        if let Some(found) = self.targets.find(hash, same) {
            return found.clone();
        }
        self.sweep();
        let sorted: Box<[Label]> = sorted.iter().map(|(n, v)| (intern(n), intern(v))).collect();
        let target = Arc::new(TargetLabels {
            id: next_id(),
            hash,
            sorted,
            encoded: OnceLock::new(),
        });
        self.targets.insert_unique(hash, target.clone(), |t| t.hash);
        target
    }

    /// Drops what only the catalogue still holds, once it has doubled
    /// since the last sweep (so sweeping costs O(1) per insert on average).
    fn sweep(&mut self) {
        let len = self.shapes.len() + self.targets.len();
        if len < SWEEP_FROM.max(self.swept_at * 2) {
            return;
        }
        self.shapes.retain(|s| Arc::strong_count(s) > 1);
        self.targets.retain(|t| Arc::strong_count(t) > 1);
        self.swept_at = self.shapes.len() + self.targets.len();
    }
}

fn new_shape<'a>(
    hash: u64,
    name: &str,
    kind: Kind,
    suffix: &str,
    labels: impl Iterator<Item = (Cow<'static, str>, &'a str)>,
) -> Shape {
    let labels: Box<[(Cow<'static, str>, Arc<str>)]> =
        labels.map(|(n, v)| (n, intern(v))).collect();
    let mut sorted: Vec<Label> = Vec::with_capacity(labels.len() + 1);
    let mut metric = String::with_capacity(name.len() + suffix.len());
    metric.push_str(name);
    metric.push_str(suffix);
    sorted.push((intern("__name__"), intern(&metric)));
    let mut hidden = Vec::new();
    for (n, v) in labels.iter() {
        if v.is_empty() {
            hidden.push(intern(n));
        } else {
            sorted.push((intern(n), v.clone()));
        }
    }
    // Stable, so that `__name__` and then the first of a label given twice
    // are the ones kept.
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    sorted.dedup_by(|a, b| a.0 == b.0);
    Shape {
        id: next_id(),
        hash,
        name: intern(name),
        kind,
        suffix: intern(suffix),
        labels,
        sorted: sorted.into(),
        encoded: OnceLock::new(),
        hidden: hidden.into(),
    }
}

/// The shared shape of these parts (for series read back from disk, and tests).
pub fn shape(name: &str, kind: Kind, suffix: &str, labels: &[(&str, &str)]) -> Arc<Shape> {
    let labels = labels.iter().map(|&(n, v)| (Cow::Owned(n.to_owned()), v));
    catalogue().shape(name, kind, suffix, labels)
}

/// Every family among the shapes the process holds, each once, sorted by
/// name: what remote write's metadata describes.
pub(crate) fn families() -> Vec<(Arc<str>, Kind)> {
    let mut families: Vec<(Arc<str>, Kind)> = catalogue()
        .shapes
        .iter()
        .map(|s| (s.name.clone(), s.kind))
        .collect();
    families.sort_unstable_by(|a, b| a.0.cmp(&b.0).then((a.1 as u8).cmp(&(b.1 as u8))));
    families.dedup();
    families
}

/// Changes whenever a shape or target set is made: whether
/// [`families`] may have changed since this was last read.
pub(crate) fn generation() -> u64 {
    NEXT_ID.load(AtomicOrdering::Relaxed)
}

/// The shared label set of a target: `labels` in order of precedence (of
/// a name given twice the first wins), empty values left out.
pub fn target_labels<'a>(
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Arc<TargetLabels> {
    catalogue().target(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_and_suffix_tell_shapes_apart() {
        let a = shape("x", Kind::Gauge, "", &[]);
        assert!(!Arc::ptr_eq(&a, &shape("x", Kind::Counter, "", &[])));
        assert!(!Arc::ptr_eq(&a, &shape("x", Kind::Gauge, "_sum", &[])));
        assert!(Arc::ptr_eq(&a, &shape("x", Kind::Gauge, "", &[])));
    }

    #[test]
    fn unused_entries_are_swept() {
        let kept = shape("series-test-kept", Kind::Gauge, "", &[]);
        for i in 0..3 * SWEEP_FROM {
            drop(shape(
                "series-test-dropped",
                Kind::Gauge,
                "",
                &[("i", &i.to_string())],
            ));
        }
        let catalogue = catalogue();
        let dropped = catalogue
            .shapes
            .iter()
            .filter(|s| s.name() == "series-test-dropped")
            .count();
        assert!(dropped < 2 * SWEEP_FROM, "{dropped} unused shapes kept");
        let hash = shape_hash(
            "series-test-kept",
            Kind::Gauge,
            "",
            std::iter::empty::<(&str, &str)>(),
        );
        assert!(
            catalogue
                .shapes
                .find(hash, |s| Arc::ptr_eq(s, &kept))
                .is_some()
        );
    }
}
