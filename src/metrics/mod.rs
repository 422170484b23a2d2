//! The sample model shared by every stage after the sampler, and the pure
//! logic that fills it: the INFO-field table, the mapper, the text exposition.
//!
//! A target's reading becomes a list of [`Family`]s: one metric name with its
//! type and the points under it. Label names are always `&'static str`
//! (every name comes from the table or the mapper's code), so only label
//! values that come from Redis (`cmd`, `db`, ...) allocate.

pub mod exposition;
pub mod keys;
pub mod mapper;
pub mod table;

use std::borrow::Cow;

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

/// Label pairs of one point, name first. Names are static, values owned.
pub type Labels = Vec<(&'static str, String)>;

/// One value of a family. `suffix` is `""` for plain samples and `_sum`,
/// `_count` or `_bucket` for the parts of a summary or histogram.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub suffix: &'static str,
    pub labels: Labels,
    pub value: f64,
}

/// All points of one metric name.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: Cow<'static, str>,
    pub kind: Kind,
    pub points: Vec<Point>,
}

/// The families of one reading, in the order they were first pushed.
///
/// A point joins the most recent family when it has the same name, else it
/// starts a new family: producers emit all points of one name together (the
/// mapper does; a test checks that names stay unique), and this keeps `push`
/// O(1) instead of a search over ~300 families for each of ~400 points.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Families {
    list: Vec<Family>,
}

impl Families {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        kind: Kind,
        suffix: &'static str,
        labels: Labels,
        value: f64,
    ) {
        let name = name.into();
        let point = Point {
            suffix,
            labels,
            value,
        };
        if let Some(family) = self.list.last_mut().filter(|f| f.name == name) {
            family.points.push(point);
        } else {
            self.list.push(Family {
                name,
                kind,
                points: vec![point],
            });
        }
    }

    /// A plain sample without labels.
    pub fn plain(&mut self, name: impl Into<Cow<'static, str>>, kind: Kind, value: f64) {
        self.push(name, kind, "", Vec::new(), value);
    }

    /// Appends copies of all of `other`'s families (whose names this does not have).
    pub fn extend_from(&mut self, other: &Families) {
        self.list.extend(other.list.iter().cloned());
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Family> {
        self.list.iter()
    }

    pub fn get(&self, name: &str) -> Option<&Family> {
        self.list.iter().find(|f| f.name == name)
    }

    pub fn extend(&mut self, other: Families) {
        for family in other.list {
            for point in family.points {
                self.push(
                    family.name.clone(),
                    family.kind,
                    point.suffix,
                    point.labels,
                    point.value,
                );
            }
        }
    }

    /// These families, then those of `older` whose names these lack: what a
    /// target looks like after an incomplete reading (see `Sampler`), which
    /// leaves the detail families of the last complete one standing.
    pub fn overlaid_on(&self, older: &Families) -> Families {
        let names: std::collections::HashSet<&str> =
            self.list.iter().map(|f| f.name.as_ref()).collect();
        let mut out = self.clone();
        out.list.extend(
            older
                .list
                .iter()
                .filter(|f| !names.contains(f.name.as_ref()))
                .cloned(),
        );
        out
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Number of points (samples) over all families.
    pub fn sample_count(&self) -> usize {
        self.list.iter().map(|f| f.points.len()).sum()
    }
}

impl<'a> IntoIterator for &'a Families {
    type Item = &'a Family;
    type IntoIter = std::slice::Iter<'a, Family>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}
