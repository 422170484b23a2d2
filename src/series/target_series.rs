//! One target's series over time: a reading in, its record out, and at the
//! end of the target a record that ends every series it still has.
//!
//! A target's readings come in two kinds (see `redis::plan`): complete ones,
//! which read everything, and fast ones between them, which read only the
//! families that move fast. Each kind is flattened against the last reading
//! of its kind, where its series sit in the same places: a lane each, a
//! [`Flattener`] and the last record it made. Stale markers come only with
//! complete readings: a series a fast reading lacks was not read, not ended.
//!
//! Invariants:
//! - a lane's flattener was last given the families its last record's
//!   series (before any stale markers) were made from, which is what
//!   [`Flattener::flatten`] asks of its caller;
//! - every series pushed (when markers are kept) is, by the end of the
//!   target, in every later complete reading or ended by exactly one stale
//!   marker: in the first complete reading that lacks it, or at [`end`];
//! - a fast reading ends nothing;
//! - with `metric_relabel_configs`, the lanes and the stale tracker work on
//!   the series as read, and the records given out are those series after
//!   the rules (`Relabeler`): a series ends when the series it came from
//!   ends, and what the rules drop is neither given out nor ended.
//!
//! [`end`]: TargetSeries::end

use std::sync::Arc;

use super::catalogue::TargetLabels;
use super::flatten::{Flattener, Matched, flatten_natives};
use super::record::{HistogramSeries, Record, Series};
use super::relabeled::Relabeler;
use super::stale::StaleTracker;
use crate::metrics::{Families, NativeHistogram};
use crate::relabel::Rules;

/// One kind of reading's history: see the module's text.
#[derive(Debug, Default)]
struct Lane {
    flattener: Flattener,
    last: Option<Arc<Record>>,
}

impl Lane {
    fn last_series(&self) -> &[Series] {
        self.last.as_ref().map_or(&[], |r| &r.series)
    }

    fn flatten(&mut self, families: &Families, out: &mut Vec<Series>) -> Matched {
        let previous = self.last.as_ref().map_or(&[][..], |r| &r.series);
        self.flattener.flatten(families, previous, out)
    }
}

/// A target's two lanes and, when its records are pushed, what decides its
/// stale markers.
#[derive(Debug)]
pub struct TargetSeries {
    target: Arc<TargetLabels>,
    complete: Lane,
    fast: Lane,
    /// `None` when nothing is pushed (only `/metrics` or the Pushgateway
    /// read the records, and they leave markers out): no reading then pays
    /// for the stale check.
    stale: Option<StaleTracker>,
    /// `metric_relabel_configs`, when there are any.
    relabel: Option<Relabeler>,
}

impl TargetSeries {
    /// The series of the target labelled `target`; `markers`: its records
    /// are pushed, so series that end get stale markers.
    pub fn new(target: Arc<TargetLabels>, markers: bool) -> Self {
        TargetSeries {
            target,
            complete: Lane::default(),
            fast: Lane::default(),
            stale: markers.then(StaleTracker::default),
            relabel: None,
        }
    }

    /// Records given out are relabeled by `rules` (none: as read).
    pub(crate) fn relabeled(mut self, rules: &Rules) -> Self {
        self.relabel = (!rules.is_empty()).then(|| Relabeler::new(rules.clone()));
        self
    }

    /// `record` after the rules, if there are any.
    fn give_out(&mut self, record: Arc<Record>) -> Arc<Record> {
        match &mut self.relabel {
            Some(relabeler) => Arc::new(relabeler.record(&record)),
            None => record,
        }
    }

    /// The record of a reading taken at `timestamp_ms`: its series in the
    /// order of `families`, then, for a complete reading with markers kept,
    /// a stale marker for every series seen since the last complete reading
    /// that this one lacks.
    pub fn record(
        &mut self,
        families: &Families,
        timestamp_ms: i64,
        complete: bool,
    ) -> Arc<Record> {
        let mut series = Vec::with_capacity(families.sample_count());
        let lane = if complete {
            &mut self.complete
        } else {
            &mut self.fast
        };
        let matched = lane.flatten(families, &mut series);
        if let Some(stale) = &mut self.stale {
            let last_complete = self.complete.last_series();
            if complete {
                let markers = stale.markers(last_complete, &series, &matched);
                series.extend(markers);
            } else {
                stale.remember(last_complete, &series, matched.unchanged);
            }
        }
        let histograms = if complete {
            self.histograms(families)
        } else {
            Vec::new()
        };
        let record = Arc::new(Record {
            timestamp_ms,
            target: self.target.clone(),
            series,
            histograms,
        });
        let lane = if complete {
            &mut self.complete
        } else {
            &mut self.fast
        };
        lane.last = Some(record.clone());
        self.give_out(record)
    }

    /// The native histograms of a complete reading, then, with markers
    /// kept, a stale one for each of the last complete reading's that this
    /// one lacks. Only complete readings have native histograms, so the
    /// last complete record holds every one the target has.
    fn histograms(&self, families: &Families) -> Vec<HistogramSeries> {
        let before = self
            .complete
            .last
            .as_ref()
            .map_or(&[][..], |r| &r.histograms);
        let mut histograms = flatten_natives(families, before);
        if self.stale.is_some() {
            let ended: Vec<HistogramSeries> = live_histograms(before)
                .filter(|b| !histograms.iter().any(|h| Arc::ptr_eq(&h.shape, &b.shape)))
                .map(|b| HistogramSeries {
                    shape: b.shape.clone(),
                    histogram: NativeHistogram::stale(),
                })
                .collect();
            histograms.extend(ended);
        }
        histograms
    }

    /// The target has ended (removed from the configuration, or a node
    /// gone): a record of stale markers for every series it still has, if
    /// markers are kept and there are any.
    pub fn end(mut self, timestamp_ms: i64) -> Option<Arc<Record>> {
        let series = self.stale.as_mut()?.all(self.complete.last_series());
        let before = self
            .complete
            .last
            .as_ref()
            .map_or(&[][..], |r| &r.histograms);
        let histograms = live_histograms(before)
            .map(|h| HistogramSeries {
                shape: h.shape.clone(),
                histogram: NativeHistogram::stale(),
            })
            .collect();
        let record = Arc::new(Record {
            timestamp_ms,
            target: self.target.clone(),
            series,
            histograms,
        });
        let record = self.give_out(record);
        (record.samples() > 0).then_some(record)
    }
}

/// Those of `histograms` that are not stale markers.
fn live_histograms(histograms: &[HistogramSeries]) -> impl Iterator<Item = &HistogramSeries> {
    histograms.iter().filter(|h| !h.histogram.is_stale())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::metrics::{Kind, smallvec};
    use crate::series::{flatten, is_stale_marker, target_labels};

    /// A reading as the tests describe it: which commands of each family it
    /// has (bit i: command i), and whether it is complete (then the detail
    /// families are in it too).
    #[derive(Clone, Debug)]
    struct Reading {
        complete: bool,
        fast: u8,
        detail: u8,
        value: f64,
    }

    const COMMANDS: [&str; 3] = ["get", "set", "del"];

    fn families(r: &Reading) -> Families {
        let mut f = Families::new();
        f.plain("target_series_test_up", Kind::Gauge, 1.0);
        let mut family = |name: &'static str, mask: u8| {
            for (i, cmd) in COMMANDS.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    let labels = smallvec![("cmd", (*cmd).into())];
                    f.push(name, Kind::Counter, "", labels, r.value + i as f64);
                }
            }
        };
        family("target_series_test_fast", r.fast);
        if r.complete {
            family("target_series_test_detail", r.detail);
        }
        f
    }

    /// A series by its name and labels, for comparing with the model.
    fn key(s: &Series) -> String {
        let labels: Vec<String> = s.shape.labels().map(|(n, v)| format!("{n}={v}")).collect();
        format!("{}{{{}}}", s.shape.name(), labels.join(","))
    }

    fn keys<'a>(series: impl Iterator<Item = &'a Series>) -> BTreeSet<String> {
        series.map(key).collect()
    }

    fn readings() -> impl Strategy<Value = Vec<Reading>> {
        // Masks mostly from two, so that a reading is often like the last
        // of its kind (the flattener's fingerprint path).
        let mask = || prop_oneof![Just(0b011u8), Just(0b111u8), 0u8..8];
        let reading = (any::<bool>(), mask(), mask(), 0.0f64..1e6).prop_map(
            |(complete, fast, detail, value)| Reading {
                complete,
                fast,
                detail,
                value,
            },
        );
        prop::collection::vec(reading, 1..16)
    }

    /// Runs `readings` through a target's series (markers kept), then ends
    /// it; checks every record against a plain model of the rules.
    fn check(readings: &[Reading]) -> Result<(), TestCaseError> {
        let mut target = TargetSeries::new(target_labels([("instance", "t:1")]), true);
        // The model: series seen since the last complete reading.
        let mut seen: BTreeSet<String> = BTreeSet::new();
        // Series pushed and not ended since.
        let mut open: BTreeSet<String> = BTreeSet::new();
        let mut ts = 0;
        for r in readings {
            ts += 1;
            let families = families(r);
            let record = target.record(&families, ts, r.complete);
            let n = families.sample_count();
            // The series are the catalogue's own for these points, whichever
            // way the flattener found them.
            let mut plain = Vec::new();
            flatten(&families, &[], &mut plain);
            prop_assert_eq!(record.series.len() >= n, true);
            for (got, want) in record.series[..n].iter().zip(&plain) {
                prop_assert!(
                    Arc::ptr_eq(&got.shape, &want.shape),
                    "{} is not {}",
                    key(got),
                    key(want)
                );
                prop_assert_eq!(got.value.to_bits(), want.value.to_bits());
            }
            let now = keys(record.series[..n].iter());
            let markers = &record.series[n..];
            prop_assert!(markers.iter().all(|s| is_stale_marker(s.value)));
            let ended = keys(markers.iter());
            prop_assert_eq!(
                ended.len(),
                markers.len(),
                "a series ended twice in one record"
            );
            if r.complete {
                let expected: BTreeSet<String> = seen.difference(&now).cloned().collect();
                prop_assert_eq!(&ended, &expected);
                seen = now.clone();
            } else {
                prop_assert!(ended.is_empty(), "a fast reading ended {ended:?}");
                seen.extend(now.iter().cloned());
            }
            for e in &ended {
                prop_assert!(open.remove(e), "{} ended but was not open", e);
            }
            open.extend(now);
        }
        let end = target.end(ts + 1);
        let ended = end
            .as_ref()
            .map_or_else(BTreeSet::new, |r| keys(r.series.iter()));
        prop_assert!(
            end.iter()
                .flat_map(|r| &r.series)
                .all(|s| is_stale_marker(s.value))
        );
        prop_assert_eq!(&ended, &seen);
        // Every series pushed is ended, once.
        prop_assert_eq!(ended, open);
        Ok(())
    }

    fn with_natives(commands: &[&str]) -> Families {
        let mut f = Families::new();
        f.plain("target_series_test_up", Kind::Gauge, 1.0);
        for cmd in commands {
            let h = NativeHistogram::from_cumulative(3.0, 7.0, &[(1.0, 1.0), (4.0, 3.0)]);
            f.push_native(
                "target_series_test_latency",
                smallvec![("cmd", (*cmd).into())],
                h,
            );
        }
        f
    }

    fn histogram_keys(record: &Record, stale: bool) -> Vec<String> {
        record
            .histograms
            .iter()
            .filter(|h| h.histogram.is_stale() == stale)
            .map(|h| {
                format!(
                    "{}{:?}",
                    h.shape.name(),
                    h.shape.labels().collect::<Vec<_>>()
                )
            })
            .collect()
    }

    #[test]
    fn a_native_histogram_that_ends_gets_one_stale_marker() {
        let mut target = TargetSeries::new(target_labels([("instance", "t:7")]), true);
        let first = target.record(&with_natives(&["get", "set"]), 1, true);
        assert_eq!(histogram_keys(&first, false).len(), 2);
        assert_eq!(first.histograms[0].shape.kind(), Kind::Histogram);
        assert_eq!(first.histograms[0].shape.suffix(), "");
        let second = target.record(&with_natives(&["get"]), 2, true);
        // The same shape as the reading before: matched, not made again.
        assert!(Arc::ptr_eq(
            &second.histograms[0].shape,
            &first.histograms[0].shape
        ));
        assert_eq!(
            histogram_keys(&second, true),
            ["target_series_test_latency[(\"cmd\", \"set\")]"]
        );
        // A fast reading has no native histograms, and ends none.
        let fast = target.record(&with_natives(&[]), 3, false);
        assert!(fast.histograms.is_empty());
        let third = target.record(&with_natives(&["get"]), 4, true);
        assert!(histogram_keys(&third, true).is_empty());
        assert_eq!(histogram_keys(&third, false).len(), 1);
        let end = target.end(5).expect("series to end");
        assert_eq!(
            histogram_keys(&end, true),
            ["target_series_test_latency[(\"cmd\", \"get\")]"]
        );
        assert!(histogram_keys(&end, false).is_empty());

        let mut unpushed = TargetSeries::new(target_labels([("instance", "t:8")]), false);
        unpushed.record(&with_natives(&["get"]), 1, true);
        let record = unpushed.record(&with_natives(&[]), 2, true);
        assert!(
            record.histograms.is_empty(),
            "no markers when nothing is pushed"
        );
    }

    #[test]
    fn relabeling_rules_apply_to_native_histograms() {
        let rules = |action: &str, regex: &str| {
            let rule = crate::relabel::Rule::new(&crate::relabel::RuleText {
                source_labels: Some(vec!["cmd".into()]),
                regex: Some(regex.into()),
                action: Some(action.into()),
                target_label: Some("command".into()),
                replacement: Some("$1".into()),
                ..Default::default()
            })
            .expect("valid");
            crate::relabel::Rules::new(vec![rule])
        };
        let labels = target_labels([("instance", "t:9")]);
        let mut dropping = TargetSeries::new(labels.clone(), true).relabeled(&rules("drop", "set"));
        let record = dropping.record(&with_natives(&["get", "set"]), 1, true);
        assert_eq!(histogram_keys(&record, false).len(), 1);
        assert_eq!(
            record.histograms[0].shape.labels().next(),
            Some(("cmd", "get"))
        );
        let mut copying = TargetSeries::new(labels, true).relabeled(&rules("replace", "(.*)"));
        copying.record(&with_natives(&["get"]), 1, true);
        let end = copying.end(2).expect("the histogram ends");
        let ended = &end.histograms[0];
        assert!(ended.histogram.is_stale());
        assert_eq!(ended.shape.kind(), Kind::Histogram);
        assert!(
            ended.shape.labels().any(|l| l == ("command", "get")),
            "{:?}",
            ended.shape
        );
    }

    proptest! {
        #[test]
        fn every_series_pushed_is_continued_or_ended_once(readings in readings()) {
            check(&readings)?;
        }
    }

    proptest! {
        /// With a rule that drops one command, every record given out is
        /// the record without the rule, that command's series (markers
        /// included) left out: relabeling never changes what ends when.
        #[test]
        fn relabeled_records_are_the_plain_ones_filtered(readings in readings()) {
            let rule = crate::relabel::Rule::new(&crate::relabel::RuleText {
                source_labels: Some(vec!["cmd".into()]),
                regex: Some("set".into()),
                action: Some("drop".into()),
                ..Default::default()
            })
            .expect("valid");
            let rules = crate::relabel::Rules::new(vec![rule]);
            let labels = target_labels([("instance", "t:5")]);
            let mut plain = TargetSeries::new(labels.clone(), true);
            let mut relabeled = TargetSeries::new(labels, true).relabeled(&rules);
            let filtered = |r: &Record| -> Vec<(String, u64)> {
                r.series
                    .iter()
                    .filter(|s| !s.shape.labels().any(|l| l == ("cmd", "set")))
                    .map(|s| (key(s), s.value.to_bits()))
                    .collect()
            };
            let pairs = |r: &Record| -> Vec<(String, u64)> {
                r.series.iter().map(|s| (key(s), s.value.to_bits())).collect()
            };
            for (ts, r) in readings.iter().enumerate() {
                let families = families(r);
                let want = plain.record(&families, ts as i64, r.complete);
                let got = relabeled.record(&families, ts as i64, r.complete);
                prop_assert_eq!(pairs(&got), filtered(&want));
            }
            let want = plain.end(99).map(|r| filtered(&r)).unwrap_or_default();
            let got = relabeled.end(99).map(|r| pairs(&r)).unwrap_or_default();
            prop_assert_eq!(got, want);
        }
    }

    fn reading(complete: bool, fast: u8, detail: u8) -> Reading {
        Reading {
            complete,
            fast,
            detail,
            value: 1.0,
        }
    }

    #[test]
    fn fast_readings_end_nothing_and_the_next_complete_one_judges() {
        check(&[
            reading(true, 0b011, 0b111),
            reading(false, 0b001, 0),
            reading(false, 0b101, 0),
            reading(true, 0b011, 0b001),
            reading(true, 0b011, 0b001),
        ])
        .expect("rules hold");
        let mut target = TargetSeries::new(target_labels([("instance", "t:2")]), true);
        let first = target.record(&families(&reading(true, 0b011, 0b111)), 1, true);
        assert_eq!(first.series.len(), 1 + 2 + 3);
        let fast = target.record(&families(&reading(false, 0b001, 0)), 2, false);
        assert_eq!(fast.series.len(), 2, "only what was read, no markers");
        // `set` and two detail commands are gone.
        let next = target.record(&families(&reading(true, 0b001, 0b001)), 3, true);
        let markers: Vec<String> = next.series[3..].iter().map(key).collect();
        assert_eq!(markers.len(), 3, "{markers:?}");
    }

    #[test]
    fn readings_like_the_last_reuse_its_shapes_and_an_end_ends_all() {
        let mut target = TargetSeries::new(target_labels([("instance", "t:3")]), true);
        let a = target.record(&families(&reading(true, 0b111, 0b1)), 1, true);
        let b = target.record(&families(&reading(true, 0b111, 0b1)), 2, true);
        assert!(
            a.series
                .iter()
                .zip(&b.series)
                .all(|(x, y)| Arc::ptr_eq(&x.shape, &y.shape))
        );
        let end = target.end(3).expect("markers");
        assert_eq!(end.series.len(), a.series.len());
        assert_eq!(end.timestamp_ms, 3);
    }

    #[test]
    fn without_markers_nothing_is_ended() {
        let mut target = TargetSeries::new(target_labels([("instance", "t:4")]), false);
        target.record(&families(&reading(true, 0b111, 0b111)), 1, true);
        let next = target.record(&families(&reading(true, 0, 0)), 2, true);
        assert_eq!(next.series.len(), 1);
        assert!(target.end(3).is_none());
    }
}
