//! The series catalogue: one shared description of each series in the
//! process, and a reading's families turned into series.
//!
//! A series is a metric name and a label set. Most of its labels come from
//! the reading (`__name__`, `cmd="get"`) and are the same on every target;
//! a few come from the target (`job`, `instance`, external labels) and are
//! the same on every series of it. The two halves are kept apart: a
//! [`Shape`] is a series without its target, shared by every target that
//! has it, and [`TargetLabels`] are a target's own labels, shared by all its
//! series. The request encoder merges the two ([`merged`]). So at 1000
//! targets the process holds about as many shapes as one target has series,
//! not a thousand copies of every label set.
//!
//! A reading is flattened into [`Series`] (a shared shape and a value, 16
//! bytes) by position: a target's readings list their series in the same
//! order every time, so each point is first compared with the series at its
//! place in the previous reading. Only a point that differs there (a new
//! command, a replica gone) is looked up in the catalogue, under its lock.
//!
//! Entries nobody holds any more (a command never seen again, a removed
//! target) are swept when the catalogue has doubled since the last sweep.
//! Holding a shape is what keeps it: readings, queued records, the stale
//! tracker and the queue's reader all hold theirs.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use hashbrown::HashTable;

use crate::intern::intern;
use crate::metrics::{Families, Kind, Point};

/// One label: name and value, each the process' shared copy (`intern`).
pub type Label = (Arc<str>, Arc<str>);

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
    /// `sorted` as remote write writes it.
    wire: Wire,
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

    /// Whether this is the shape of these parts.
    fn same<'a>(
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
    fn is_point(&self, name: &str, kind: Kind, point: &Point, name_ok: &mut *const u8) -> bool {
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

fn point_labels(point: &Point) -> impl ExactSizeIterator<Item = (Cow<'static, str>, &str)> + Clone {
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
    wire: Wire,
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
}

/// One series of a reading: its shape and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub shape: Arc<Shape>,
    pub value: f64,
}

/// The complete label set remote write sends for `shape` on `target`,
/// sorted byte-wise by name (upper case before `__name__`, as Prometheus
/// sorts): the shape's own labels, then the target's, except those the
/// shape has itself or hides with an empty value (a series' own labels win,
/// as Prometheus lets them win over external labels).
pub fn merged<'a>(shape: &'a Shape, target: &'a TargetLabels) -> impl Iterator<Item = &'a Label> {
    Merge::new(shape, target).map(|side| match side {
        Side::Own(i) => &shape.sorted[i],
        Side::Target(j) => &target.sorted[j],
    })
}

/// The labels of [`merged`] as remote write writes them: each as the bytes
/// of a protobuf `Label` field of a `TimeSeries`, encoded once per shape
/// and target, not once per sample. Where the target's labels go among the
/// shape's in one piece ([`splice_at`]), three slices, else one per label.
pub fn merged_wire<'a>(
    shape: &'a Shape,
    target: &'a TargetLabels,
) -> impl Iterator<Item = &'a [u8]> {
    let spliced = splice_at(shape, target).map(|at| {
        let (head, tail) = shape.wire.bytes.split_at(shape.wire.end(at));
        [head, &target.wire.bytes[..], tail]
    });
    let merged = match spliced {
        Some(_) => None,
        None => Some(Merge::new(shape, target).map(|side| match side {
            Side::Own(i) => shape.wire.label(i),
            Side::Target(j) => target.wire.label(j),
        })),
    };
    spliced
        .into_iter()
        .flatten()
        .chain(merged.into_iter().flatten())
}

/// The length of what `merged_wire` yields, without walking the labels when
/// the target's go in one piece: the encoder sizes every series of every
/// request with it before writing it.
pub fn merged_wire_len(shape: &Shape, target: &TargetLabels) -> usize {
    match splice_at(shape, target) {
        Some(_) => shape.wire.bytes.len() + target.wire.bytes.len(),
        None => merged_wire(shape, target).map(<[u8]>::len).sum(),
    }
}

/// Where the target's labels go among the shape's when they go in one
/// piece: none of their names sorts among the shape's own or ties with one
/// in its first eight bytes, and the shape hides none. That is the usual
/// case (`instance` and `job` after `__name__` and `cmd`), and it costs two
/// comparisons instead of a merge of every label of every series.
fn splice_at(shape: &Shape, target: &TargetLabels) -> Option<usize> {
    let (own, theirs) = (&shape.wire.keys, &target.wire.keys);
    let (Some(&first), Some(&last)) = (theirs.first(), theirs.last()) else {
        return Some(own.len());
    };
    if !shape.hidden.is_empty() {
        return None;
    }
    // Keys order names as bytes do, except that equal keys may hide
    // different names: strictly smaller and strictly greater are safe.
    let at = own.partition_point(|&k| k < first);
    match own.get(at) {
        Some(&next) if next <= last => None,
        _ => Some(at),
    }
}

/// Where the next label of a merged set comes from.
enum Side {
    Own(usize),
    Target(usize),
}

/// The merge of a shape's and a target's sorted labels, by index. Names
/// compare by their first eight bytes (`Wire::keys`) and, only where those
/// are equal, by the rest: no string comparison for most labels.
struct Merge<'a> {
    shape: &'a Shape,
    target: &'a TargetLabels,
    own: usize,
    theirs: usize,
}

impl<'a> Merge<'a> {
    fn new(shape: &'a Shape, target: &'a TargetLabels) -> Self {
        Merge {
            shape,
            target,
            own: 0,
            theirs: 0,
        }
    }
}

impl Iterator for Merge<'_> {
    type Item = Side;

    fn next(&mut self) -> Option<Side> {
        let (own, theirs) = (&self.shape.wire.keys, &self.target.wire.keys);
        loop {
            let take_own = match (own.get(self.own), theirs.get(self.theirs)) {
                (None, None) => return None,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => match a.cmp(b).then_with(|| {
                    let a = &self.shape.sorted[self.own].0;
                    let b = &self.target.sorted[self.theirs].0;
                    a.as_bytes().cmp(b.as_bytes())
                }) {
                    Ordering::Less => true,
                    Ordering::Greater => false,
                    Ordering::Equal => {
                        // The shape's label of that name wins.
                        self.theirs += 1;
                        true
                    }
                },
            };
            if take_own {
                self.own += 1;
                return Some(Side::Own(self.own - 1));
            }
            self.theirs += 1;
            let name = &self.target.sorted[self.theirs - 1].0;
            if !self.shape.hidden.contains(name) {
                return Some(Side::Target(self.theirs - 1));
            }
        }
    }
}

/// Sorted labels in the form the request encoder needs: each one's sort
/// key and its bytes as a protobuf `Label` field of a `TimeSeries`.
#[derive(Debug)]
struct Wire {
    /// The name's first eight bytes, big-endian, zero-padded: ordered as the
    /// names are byte-wise, except between two names that share them.
    keys: Box<[u64]>,
    /// Where each label's bytes end in `bytes`.
    ends: Box<[u32]>,
    bytes: Box<[u8]>,
}

/// Field numbers of proto/remote_write.proto: `TimeSeries.labels`,
/// `Label.name`, `Label.value`.
const TIMESERIES_LABELS: u32 = 1;
const LABEL_NAME: u32 = 1;
const LABEL_VALUE: u32 = 2;

impl Wire {
    fn new(labels: &[Label]) -> Wire {
        use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
        let field_len = |s: &str| 1 + encoded_len_varint(s.len() as u64) + s.len();
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(labels.len());
        for (name, value) in labels {
            encode_key(TIMESERIES_LABELS, WireType::LengthDelimited, &mut bytes);
            encode_varint((field_len(name) + field_len(value)) as u64, &mut bytes);
            for (field, s) in [(LABEL_NAME, name), (LABEL_VALUE, value)] {
                encode_key(field, WireType::LengthDelimited, &mut bytes);
                encode_varint(s.len() as u64, &mut bytes);
                bytes.extend_from_slice(s.as_bytes());
            }
            ends.push(bytes.len() as u32);
        }
        let keys = labels
            .iter()
            .map(|(name, _)| {
                let mut key = [0u8; 8];
                let head = &name.as_bytes()[..name.len().min(8)];
                key[..head.len()].copy_from_slice(head);
                u64::from_be_bytes(key)
            })
            .collect();
        Wire {
            keys,
            ends: ends.into(),
            bytes: bytes.into(),
        }
    }

    fn label(&self, i: usize) -> &[u8] {
        &self.bytes[self.end(i)..self.ends[i] as usize]
    }

    /// Where the bytes of the first `n` labels end.
    fn end(&self, n: usize) -> usize {
        n.checked_sub(1).map_or(0, |p| self.ends[p] as usize)
    }
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
struct Catalogue {
    shapes: HashTable<Arc<Shape>>,
    targets: HashTable<Arc<TargetLabels>>,
    /// Entries after the last sweep.
    swept_at: usize,
}

static CATALOGUE: LazyLock<Mutex<Catalogue>> = LazyLock::new(Default::default);

fn catalogue() -> MutexGuard<'static, Catalogue> {
    // Every change leaves the tables valid, so a poisoned lock is used as is.
    CATALOGUE.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Catalogue {
    /// The shape of these parts; `labels` yields each label name as the
    /// shape keeps it (the mapper's static string where there is one).
    fn shape<'a, I>(&mut self, name: &str, kind: Kind, suffix: &str, labels: I) -> Arc<Shape>
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
            wire: Wire::new(&sorted),
            sorted,
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
        wire: Wire::new(&sorted),
        sorted: sorted.into(),
        hidden: hidden.into(),
    }
}

/// The shared shape of these parts (for series read back from disk, and tests).
pub fn shape(name: &str, kind: Kind, suffix: &str, labels: &[(&str, &str)]) -> Arc<Shape> {
    let labels = labels.iter().map(|&(n, v)| (Cow::Owned(n.to_owned()), v));
    catalogue().shape(name, kind, suffix, labels)
}

/// The shared label set of a target: `labels` in order of precedence (of
/// a name given twice the first wins), empty values left out.
pub fn target_labels<'a>(
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Arc<TargetLabels> {
    catalogue().target(labels)
}

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
    /// Appends the series of `families` to `out`. `previous` must begin
    /// with the series this flattener produced for the reading before
    /// (stale markers may follow them).
    pub fn flatten(
        &mut self,
        families: &Families,
        previous: &[Series],
        out: &mut Vec<Series>,
    ) -> Matched {
        let fingerprint = fingerprint(families);
        let count = families.sample_count();
        if self.last.replace(fingerprint) == Some(fingerprint) && previous.len() >= count {
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
            return Matched {
                unchanged: true,
                unmatched: Vec::new(),
            };
        }
        flatten(families, previous, out)
    }
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
    use crate::metrics::smallvec;
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

    #[test]
    fn kind_and_suffix_tell_shapes_apart() {
        let a = shape("x", Kind::Gauge, "", &[]);
        assert!(!Arc::ptr_eq(&a, &shape("x", Kind::Counter, "", &[])));
        assert!(!Arc::ptr_eq(&a, &shape("x", Kind::Gauge, "_sum", &[])));
        assert!(Arc::ptr_eq(&a, &shape("x", Kind::Gauge, "", &[])));
    }

    #[test]
    fn target_labels_go_in_one_piece_where_they_can() {
        let target = target_labels([("job", "redis"), ("instance", "a:6379")]);
        let cmd = shape("redis_commands_total", Kind::Counter, "", &[("cmd", "get")]);
        // `__name__`, `cmd`, then `instance`, `job`.
        assert_eq!(splice_at(&cmd, &target), Some(2));
        let zone = shape("x", Kind::Gauge, "", &[("zone", "b")]);
        assert_eq!(splice_at(&zone, &target), Some(1));
        // A label between the target's, one of the same name, one that
        // hides a target label: merged label by label.
        let between = shape("x", Kind::Gauge, "", &[("isp", "c")]);
        assert_eq!(splice_at(&between, &target), None);
        let same = shape("x", Kind::Gauge, "", &[("job", "other")]);
        assert_eq!(splice_at(&same, &target), None);
        let hiding = shape("x", Kind::Gauge, "", &[("job", "")]);
        assert_eq!(splice_at(&hiding, &target), None);
        for s in [cmd, zone, between, same, hiding] {
            let wire: Vec<u8> = merged_wire(&s, &target).flatten().copied().collect();
            let one_by_one: Vec<u8> = Merge::new(&s, &target)
                .flat_map(|side| match side {
                    Side::Own(i) => s.wire.label(i),
                    Side::Target(j) => target.wire.label(j),
                })
                .copied()
                .collect();
            assert_eq!(wire, one_by_one, "{:?}", s.name());
            assert_eq!(merged_wire_len(&s, &target), wire.len(), "{:?}", s.name());
        }
    }

    fn names<'a>(labels: impl Iterator<Item = &'a Label>) -> Vec<(String, String)> {
        labels
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn merged_sorts_bytewise_and_lets_own_labels_win() {
        let target = target_labels([
            ("job", "redis"),
            ("instance", "h:6379"),
            ("Zone", "eu"),
            ("empty", ""),
            ("cmd", "target's"),
        ]);
        let s = shape("redis_commands_total", Kind::Counter, "", &[("cmd", "get")]);
        assert_eq!(
            names(merged(&s, &target)),
            [
                ("Zone", "eu"),
                ("__name__", "redis_commands_total"),
                ("cmd", "get"),
                ("instance", "h:6379"),
                ("job", "redis")
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        // An empty own label hides the target's label of that name.
        let hiding = shape("x", Kind::Gauge, "_sum", &[("Zone", "")]);
        assert_eq!(
            names(merged(&hiding, &target))
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            ["__name__", "cmd", "instance", "job"]
        );
        assert_eq!(names(merged(&hiding, &target))[0].1, "x_sum");
    }

    /// The label set as the rules say it (Prometheus' own labels over
    /// external ones): own labels first, then target labels, empty values
    /// out but hiding, first of a name wins, sorted byte-wise.
    fn reference(own: &[(String, String)], target: &[(String, String)]) -> Vec<(String, String)> {
        let mut all = vec![("__name__".to_owned(), "m".to_owned())];
        let hidden: Vec<&str> = own
            .iter()
            .filter(|(_, v)| v.is_empty())
            .map(|(n, _)| n.as_str())
            .collect();
        all.extend(own.iter().filter(|(_, v)| !v.is_empty()).cloned());
        for (n, v) in target {
            if !v.is_empty() && !hidden.contains(&n.as_str()) && !all.iter().any(|(m, _)| m == n) {
                all.push((n.clone(), v.clone()));
            }
        }
        all.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        all.dedup_by(|a, b| a.0 == b.0);
        all
    }

    fn labels() -> impl Strategy<Value = Vec<(String, String)>> {
        // Names that share their first eight bytes, or all of them, test
        // the sort keys' fallback to whole names.
        prop::collection::vec(
            (
                "(?:[aZ_]|__name__|__name__x|instance|instanceA|instance_|job|cmd)",
                "(?:|x|y)",
            ),
            0..5,
        )
    }

    proptest! {
        #[test]
        fn merged_wire_is_merged_as_prost_writes_it(own in labels(), target in labels()) {
            use crate::remote_write::proto::{Label as ProtoLabel, TimeSeries};
            use prost::Message;
            let pairs: Vec<(&str, &str)> = own.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let s = shape("m", Kind::Gauge, "", &pairs);
            let t = target_labels(target.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            let ours: Vec<u8> = merged_wire(&s, &t).flatten().copied().collect();
            prop_assert_eq!(merged_wire_len(&s, &t), ours.len());
            let theirs = TimeSeries {
                labels: merged(&s, &t)
                    .map(|(n, v)| ProtoLabel { name: n.to_string(), value: v.to_string() })
                    .collect(),
                samples: Vec::new(),
            }
            .encode_to_vec();
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn merged_is_the_rule(own in labels(), target in labels()) {
            let pairs: Vec<(&str, &str)> = own.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let s = shape("m", Kind::Gauge, "", &pairs);
            let t = target_labels(target.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            prop_assert_eq!(names(merged(&s, &t)), reference(&own, &target));
        }
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
