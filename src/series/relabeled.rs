//! Relabeling applied to series, once per shape and target set.
//!
//! A series is a shape and its target's labels (`catalogue`); the rules
//! see both merged, as a scraper sees a series with its target's labels.
//! What they leave is made a shape again, relative to the same target
//! labels, so records, the queue, the page and the encoder keep working
//! with shapes: the result's labels that differ from the target's become
//! the new shape's own labels (own labels win over the target's), and a
//! target label the rules removed becomes an own label with an empty
//! value, which hides it (`Shape::hidden`).
//!
//! Invariants:
//! - the rules run once per (shape, target set), not per sample: the
//!   outcome is kept while anything else holds that shape and target set
//!   (a sweep, once the outcomes have doubled, drops the others);
//! - labels the rules leave as they were give back the very same shape;
//! - a relabeled record holds each resulting series once (the first wins
//!   when rules make two series one), in the order of the record given.

use std::sync::{Arc, Weak};

use foldhash::{HashMap, HashSet};

use super::catalogue::{Shape, TargetLabels, shape};
use super::record::{HistogramSeries, Record, Series};
use crate::metrics::Kind;
use crate::relabel::{LabelSet, NAME, Rules};

/// Outcomes kept below this many entries are never swept.
const SWEEP_FROM: usize = 4096;

/// The rules' outcome for one shape on one target set: the shape to
/// use, `None` when dropped. It knows (weakly) the shape it was made from,
/// so a sweep can tell whether anything still holds it.
#[derive(Debug)]
struct Outcome {
    from: Weak<Shape>,
    shape: Option<Arc<Shape>>,
}

impl Outcome {
    /// Whether something besides the catalogue (which keeps one of each
    /// while anything else does) and this outcome (whose shape may be the
    /// very one it came from) holds its shape: a record, a reading,
    /// another relabeler.
    fn live(&self) -> bool {
        let ours = self
            .shape
            .as_ref()
            .is_some_and(|s| std::ptr::eq(Arc::as_ptr(s), self.from.as_ptr()));
        self.from.strong_count() > 1 + usize::from(ours)
    }
}

/// The outcomes of one target set, by shape id. A table per target set
/// keeps each table as small as one target's series (a few hundred): one
/// table of every outcome would, at a thousand targets, be a million
/// entries, and growing it holds the old table and the new one at once.
#[derive(Debug)]
struct TargetOutcomes {
    target: Weak<TargetLabels>,
    shapes: HashMap<u64, Outcome>,
}

impl TargetOutcomes {
    /// Whether something besides the catalogue holds the target set.
    fn live(&self) -> bool {
        self.target.strong_count() > 1
    }
}

/// Rules and their outcome per (shape, target set).
#[derive(Debug)]
pub(crate) struct Relabeler {
    rules: Rules,
    /// By target id.
    targets: HashMap<u64, TargetOutcomes>,
    /// Outcomes held, over all target sets.
    outcomes: usize,
    sweep_at: usize,
}

impl Relabeler {
    pub(crate) fn new(rules: Rules) -> Relabeler {
        Relabeler {
            rules,
            targets: HashMap::default(),
            outcomes: 0,
            sweep_at: SWEEP_FROM,
        }
    }

    /// The shape a series of `shape` on `target` has after the rules, or
    /// `None` when they drop it.
    #[cfg(test)]
    fn shape(&mut self, shape: &Arc<Shape>, target: &Arc<TargetLabels>) -> Option<Arc<Shape>> {
        let mut of = self.of(target);
        of.shape(shape)
    }

    /// The outcomes of `target`, to look up its series' shapes in.
    fn of<'a>(&'a mut self, target: &'a Arc<TargetLabels>) -> OfTarget<'a> {
        let outcomes = self
            .targets
            .entry(target.id())
            .or_insert_with(|| TargetOutcomes {
                target: Arc::downgrade(target),
                shapes: HashMap::default(),
            });
        OfTarget {
            rules: &self.rules,
            target,
            shapes: &mut outcomes.shapes,
            made: &mut self.outcomes,
        }
    }

    /// `series` of `target` after the rules: dropped ones left out, each
    /// resulting series once.
    pub(crate) fn series(&mut self, series: &[Series], target: &Arc<TargetLabels>) -> Vec<Series> {
        self.sweep();
        self.of(target).each(
            series,
            |s| &s.shape,
            |s, shape| Series {
                shape,
                value: s.value,
            },
        )
    }

    /// Native histogram series of `target` after the rules, as [`Relabeler::series`].
    pub(crate) fn histograms(
        &mut self,
        histograms: &[HistogramSeries],
        target: &Arc<TargetLabels>,
    ) -> Vec<HistogramSeries> {
        self.of(target).each(
            histograms,
            |h| &h.shape,
            |h, shape| HistogramSeries {
                shape,
                histogram: h.histogram.clone(),
            },
        )
    }

    /// `record` after the rules (see [`Relabeler::series`]).
    pub(crate) fn record(&mut self, record: &Record) -> Record {
        Record {
            timestamp_ms: record.timestamp_ms,
            target: record.target.clone(),
            series: self.series(&record.series, &record.target),
            histograms: self.histograms(&record.histograms, &record.target),
        }
    }

    /// Forgets the outcomes no series can come for any more (their shape
    /// or their target set no longer held), once the outcomes have doubled
    /// since the last sweep. An outcome in use is never forgotten:
    /// forgetting by recent use instead made a sender with more outcomes
    /// than it sees between two sweeps compute nearly every one again, for
    /// every batch.
    fn sweep(&mut self) {
        if self.outcomes < self.sweep_at {
            return;
        }
        self.targets.retain(|_, of| {
            of.live() && {
                of.shapes.retain(|_, outcome| outcome.live());
                !of.shapes.is_empty()
            }
        });
        self.outcomes = self.targets.values().map(|of| of.shapes.len()).sum();
        self.sweep_at = (2 * self.outcomes).max(SWEEP_FROM);
    }
}

/// One target set's outcomes, borrowed to look up many shapes.
struct OfTarget<'a> {
    rules: &'a Rules,
    target: &'a Arc<TargetLabels>,
    shapes: &'a mut HashMap<u64, Outcome>,
    /// The relabeler's count of outcomes held.
    made: &'a mut usize,
}

impl OfTarget<'_> {
    /// `items` after the rules: dropped ones left out, each resulting
    /// series once (the first), the others in order.
    fn each<T>(
        &mut self,
        items: &[T],
        shape_of: impl Fn(&T) -> &Arc<Shape>,
        with_shape: impl Fn(&T, Arc<Shape>) -> T,
    ) -> Vec<T> {
        let mut seen: HashSet<usize> = HashSet::default();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(shape) = self.shape(shape_of(item)) else {
                continue;
            };
            if seen.insert(Arc::as_ptr(&shape) as usize) {
                out.push(with_shape(item, shape));
            }
        }
        out
    }

    fn shape(&mut self, shape: &Arc<Shape>) -> Option<Arc<Shape>> {
        if let Some(outcome) = self.shapes.get(&shape.id()) {
            return outcome.shape.clone();
        }
        let outcome = Outcome {
            shape: relabel(self.rules, shape, self.target),
            from: Arc::downgrade(shape),
        };
        let shape_after = outcome.shape.clone();
        self.shapes.insert(shape.id(), outcome);
        *self.made += 1;
        shape_after
    }
}

/// The labels of a series as a scraper sees them: the target's, the
/// shape's own over them (an empty one removing it), and `__name__`.
pub(crate) fn label_set(shape: &Shape, target: &TargetLabels) -> LabelSet {
    let mut set: LabelSet = target
        .labels()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    for (name, value) in shape.labels() {
        if value.is_empty() {
            set.remove(name);
        } else {
            set.insert(name.to_owned(), value.to_owned());
        }
    }
    set.insert(
        NAME.to_owned(),
        format!("{}{}", shape.name(), shape.suffix()),
    );
    set
}

fn relabel(rules: &Rules, shape: &Arc<Shape>, target: &TargetLabels) -> Option<Arc<Shape>> {
    let before = label_set(shape, target);
    let mut after = before.clone();
    if !rules.apply(&mut after) {
        return None;
    }
    if after == before {
        return Some(shape.clone());
    }
    Some(to_shape(shape, target, after))
}

/// The shape that, with `target`'s labels, has the labels `set`.
fn to_shape(original: &Shape, target: &TargetLabels, mut set: LabelSet) -> Arc<Shape> {
    let full = set.remove(NAME).unwrap_or_default();
    let (name, kind, suffix) = name_kind_suffix(original, &full);
    let theirs = |n: &str| {
        target
            .labels()
            .iter()
            .find(|(name, _)| &**name == n)
            .map(|(_, v)| &**v)
    };
    let mut own: Vec<(String, String)> = Vec::with_capacity(set.len());
    // The shape's own labels first, in their order, where they stay.
    for (n, _) in original.labels() {
        if let Some(v) = set.remove(n) {
            own.push((n.to_owned(), v));
        }
    }
    for (n, v) in set.iter() {
        if theirs(n) != Some(v.as_str()) {
            own.push((n.clone(), v.clone()));
        }
    }
    for (n, _) in target.labels() {
        if !set.contains_key(&**n) && !own.iter().any(|(o, _)| **o == **n) {
            own.push((n.to_string(), String::new()));
        }
    }
    let labels: Vec<(&str, &str)> = own.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    shape(name, kind, suffix, &labels)
}

/// A relabeled `__name__` as a family name, type and suffix: the
/// original's type and suffix while the name still ends with that suffix;
/// otherwise a gauge of its own (part of a histogram renamed apart from
/// the rest is no histogram).
fn name_kind_suffix<'a>(original: &'a Shape, full: &'a str) -> (&'a str, Kind, &'a str) {
    let suffix = original.suffix();
    match full.strip_suffix(suffix) {
        Some(name) if !name.is_empty() => (name, original.kind(), suffix),
        _ => (full, Kind::Gauge, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relabel::{Rule, RuleText};
    use crate::series::target_labels;

    fn rules(texts: &[RuleText]) -> Rules {
        Rules::new(texts.iter().map(|t| Rule::new(t).expect("valid")).collect())
    }

    fn text(action: &str, source: &[&str], regex: &str) -> RuleText {
        RuleText {
            action: Some(action.to_owned()),
            source_labels: Some(source.iter().map(|s| (*s).to_owned()).collect()),
            regex: Some(regex.to_owned()),
            ..RuleText::default()
        }
    }

    #[test]
    fn outcomes_are_the_rules_applied_to_the_merged_labels() {
        let target = target_labels([("instance", "h:1"), ("job", "redis"), ("zone", "a")]);
        let cmd = shape(
            "relabeled_test_calls_total",
            Kind::Counter,
            "",
            &[("cmd", "get")],
        );
        let db = shape("relabeled_test_keys", Kind::Gauge, "", &[("db", "db0")]);
        let rename = RuleText {
            source_labels: Some(vec!["cmd".into()]),
            regex: Some("(.*)".into()),
            target_label: Some("command".into()),
            ..RuleText::default()
        };
        let mut relabeler = Relabeler::new(rules(&[
            text("drop", &["__name__", "db"], "relabeled_test_keys;db0"),
            rename,
            RuleText {
                regex: Some("cmd|zone".into()),
                action: Some("labeldrop".into()),
                ..RuleText::default()
            },
        ]));
        assert!(relabeler.shape(&db, &target).is_none());
        let got = relabeler.shape(&cmd, &target).expect("kept");
        assert_eq!(got.name(), "relabeled_test_calls_total");
        assert_eq!(got.kind(), Kind::Counter);
        let mut want = label_set(&cmd, &target);
        want.remove("cmd");
        want.remove("zone");
        want.insert("command".into(), "get".into());
        assert_eq!(label_set(&got, &target), want);
        // Cached: the same shape again, not a new one.
        assert!(Arc::ptr_eq(
            &got,
            &relabeler.shape(&cmd, &target).expect("kept")
        ));
    }

    #[test]
    fn unchanged_series_keep_their_shape_and_merged_ones_come_once() {
        let target = target_labels([("instance", "h:2")]);
        let a = shape("relabeled_test_merge", Kind::Gauge, "", &[("db", "db0")]);
        let b = shape("relabeled_test_merge", Kind::Gauge, "", &[("db", "db1")]);
        let other = shape("relabeled_test_other", Kind::Gauge, "", &[]);
        let mut relabeler = Relabeler::new(rules(&[RuleText {
            regex: Some("db".into()),
            action: Some("labeldrop".into()),
            ..RuleText::default()
        }]));
        let series: Vec<Series> = [(&a, 1.0), (&other, 2.0), (&b, 3.0)]
            .into_iter()
            .map(|(s, value)| Series {
                shape: s.clone(),
                value,
            })
            .collect();
        let out = relabeler.series(&series, &target);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].value, 1.0, "the first of the two wins");
        assert!(Arc::ptr_eq(&out[1].shape, &other));
    }

    #[test]
    fn a_renamed_part_keeps_its_type_only_with_its_suffix() {
        let target = target_labels([("instance", "h:3")]);
        let bucket = shape(
            "relabeled_test_hist",
            Kind::Histogram,
            "_bucket",
            &[("le", "1")],
        );
        let rename = |to: &str| RuleText {
            source_labels: Some(vec![NAME.into()]),
            regex: Some("relabeled_test_hist(.*)".into()),
            target_label: Some(NAME.into()),
            replacement: Some(to.into()),
            ..RuleText::default()
        };
        let mut keeps = Relabeler::new(rules(&[rename("relabeled_test_h${1}")]));
        let got = keeps.shape(&bucket, &target).expect("kept");
        assert_eq!(
            (got.name(), got.kind(), got.suffix()),
            ("relabeled_test_h", Kind::Histogram, "_bucket")
        );
        let mut loses = Relabeler::new(rules(&[rename("relabeled_test_flat")]));
        let got = loses.shape(&bucket, &target).expect("kept");
        assert_eq!(
            (got.name(), got.kind(), got.suffix()),
            ("relabeled_test_flat", Kind::Gauge, "")
        );
    }

    #[test]
    fn a_removed_target_label_is_hidden_and_a_changed_one_overridden() {
        let target = target_labels([("instance", "h:4"), ("job", "redis"), ("zone", "a")]);
        let s = shape("relabeled_test_hide", Kind::Gauge, "", &[]);
        let mut relabeler = Relabeler::new(rules(&[
            RuleText {
                regex: Some("zone".into()),
                action: Some("labeldrop".into()),
                ..RuleText::default()
            },
            RuleText {
                source_labels: Some(vec!["instance".into()]),
                regex: Some("(.*):.*".into()),
                target_label: Some("instance".into()),
                ..RuleText::default()
            },
        ]));
        let got = relabeler.shape(&s, &target).expect("kept");
        let set = label_set(&got, &target);
        assert_eq!(set.get("zone"), None);
        assert_eq!(set["instance"], "h");
        assert_eq!(set["job"], "redis");
        assert_eq!(got.hidden().len(), 1);
    }

    #[test]
    fn outcomes_in_use_are_kept_however_many() {
        let target = target_labels([("instance", "h:6")]);
        let mut relabeler = Relabeler::new(rules(&[text("keep", &["__name__"], ".*")]));
        let live: Vec<Series> = (0..3 * SWEEP_FROM)
            .map(|i| Series {
                shape: shape(
                    "relabeled_test_live",
                    Kind::Gauge,
                    "",
                    &[("i", &i.to_string())],
                ),
                value: 1.0,
            })
            .collect();
        // A batch at a time, as a sender sees them, twice over.
        for _ in 0..2 {
            for batch in live.chunks(500) {
                relabeler.series(batch, &target);
            }
        }
        assert_eq!(relabeler.outcomes, live.len(), "every live outcome kept");
    }

    #[test]
    fn unused_outcomes_are_swept() {
        let target = target_labels([("instance", "h:5")]);
        let mut relabeler = Relabeler::new(rules(&[text("keep", &["__name__"], ".*")]));
        for i in 0..3 * SWEEP_FROM {
            let s = shape(
                "relabeled_test_sweep",
                Kind::Gauge,
                "",
                &[("i", &i.to_string())],
            );
            let series = [Series {
                shape: s,
                value: 1.0,
            }];
            relabeler.series(&series, &target);
        }
        assert!(
            relabeler.outcomes <= 2 * SWEEP_FROM,
            "{}",
            relabeler.outcomes
        );
    }

    #[test]
    fn outcomes_of_a_target_set_no_longer_held_are_swept_together() {
        let mut relabeler = Relabeler::new(rules(&[text("keep", &["__name__"], ".*")]));
        let kept = shape("relabeled_test_gone", Kind::Gauge, "", &[]);
        let series = [Series {
            shape: kept.clone(),
            value: 1.0,
        }];
        let staying = target_labels([("instance", "h:7")]);
        relabeler.series(&series, &staying);
        for i in 0..2 * SWEEP_FROM {
            let leaving = target_labels([("instance", format!("gone-{i}:1").as_str())]);
            relabeler.series(&series, &leaving);
        }
        assert!(
            relabeler.targets.len() < SWEEP_FROM,
            "{}",
            relabeler.targets.len()
        );
        assert!(relabeler.targets.contains_key(&staying.id()));
        assert_eq!(relabeler.outcomes, relabeler.targets.len());
    }
}
