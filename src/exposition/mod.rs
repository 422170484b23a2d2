//! The Prometheus text exposition format (version 0.0.4), as served on
//! `/metrics`, printed by `redpush once` and pushed to a Pushgateway.
//!
//! Written straight into one `String` the caller may reuse; no timestamps
//! (the Pushgateway refuses them, and scrapers stamp the scrape time).

pub(crate) mod protobuf;

use std::collections::HashMap;
use std::fmt::Write;
use std::ops::Range;
use std::sync::Arc;

use crate::metrics::help::help;
use crate::metrics::{Families, write_value};
use crate::series::{Record, Series, flatten, is_stale_marker};

/// Content type of the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Appends every family of `families`, each point carrying `extra` labels
/// first (e.g. `instance` when one page shows several targets).
pub fn write_families(out: &mut String, families: &Families, extra: &[(&str, &str)]) {
    let mut series = Vec::with_capacity(families.sample_count());
    flatten(families, &[], &mut series);
    write_series(out, &series, extra);
}

/// Appends a reading's series (stale markers left out: they are for the
/// receiver, not for a scraper), with `extra` labels first on each.
pub fn write_series(out: &mut String, series: &[Series], extra: &[(&str, &str)]) {
    for run in runs(series) {
        write_run(out, &series[run], extra, true);
    }
}

/// Where the series of each family are: consecutive in a reading, since
/// producers emit all points of one name together (see `Families`).
fn runs(series: &[Series]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    series
        .chunk_by(|a, b| a.shape.name() == b.shape.name())
        .filter_map(move |run| {
            let range = start..start + run.len();
            start = range.end;
            // Markers come after a reading's own series: a run of them
            // alone gets no `# TYPE` line.
            run.iter()
                .any(|s| !is_stale_marker(s.value))
                .then_some(range)
        })
}

/// Appends one family's series. `with_type` is false when the caller
/// already wrote this family's `# HELP` and `# TYPE` lines (several
/// targets on one page share them).
fn write_run(out: &mut String, run: &[Series], extra: &[(&str, &str)], with_type: bool) {
    let Some(first) = run.first() else {
        return;
    };
    if with_type {
        let name = first.shape.name();
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        escape_help(out, &help(name));
        let _ = writeln!(out, "\n# TYPE {name} {}", first.shape.kind().as_str());
    }
    for series in run.iter().filter(|s| !is_stale_marker(s.value)) {
        let shape = &series.shape;
        out.push_str(shape.name());
        out.push_str(shape.suffix());
        let labels = extra.iter().copied().chain(shape.labels());
        let mut first = true;
        for (name, value) in labels {
            out.push(if first { '{' } else { ',' });
            first = false;
            out.push_str(name);
            out.push_str("=\"");
            escape_label_value(out, value);
            out.push('"');
        }
        if !first {
            out.push('}');
        }
        out.push(' ');
        write_value(out, series.value);
        out.push('\n');
    }
}

/// Appends the series of several targets, each labelled with its target's
/// `instance`. All series of one name are written together under one
/// `# TYPE` line, as the format requires.
pub(crate) fn write_targets(out: &mut String, targets: Vec<(String, Arc<Record>)>) {
    let mut page = Page::new(targets, true);
    while page.write_next(out, usize::MAX) {}
}

/// A page of several targets' series, written a piece at a time: with 1000
/// targets a page is over 600,000 lines, and `/metrics` streams it rather
/// than holding all of it in memory at once. The page holds the targets'
/// records (shared, not copied) and, per run of one family of one target,
/// 16 bytes of order.
pub(crate) struct Page {
    targets: Vec<(String, Arc<Record>)>,
    /// Whether each series is labelled with its target's `instance`: when
    /// the page shows more than one target.
    labelled: bool,
    /// Runs in page order: by family (in order of first appearance), then
    /// by target.
    runs: Vec<RunAt>,
    next: usize,
}

#[derive(Clone, Copy)]
struct RunAt {
    family: u32,
    target: u32,
    start: u32,
    end: u32,
}

impl Page {
    /// The page of `targets`' records; `labelled`: each series carries its
    /// target's `instance` (a page of more than one target).
    pub(crate) fn new(targets: Vec<(String, Arc<Record>)>, labelled: bool) -> Page {
        let mut families: HashMap<&str, u32> = HashMap::new();
        let mut runs_at = Vec::new();
        for (t, (_, record)) in targets.iter().enumerate() {
            let series = &record.series;
            for run in runs(series) {
                let next = families.len() as u32;
                runs_at.push(RunAt {
                    family: *families
                        .entry(series[run.start].shape.name())
                        .or_insert(next),
                    target: t as u32,
                    start: run.start as u32,
                    end: run.end as u32,
                });
            }
        }
        // Stable: a family given twice by one target (only the markers of
        // a reading can be) keeps its order.
        runs_at.sort_by_key(|r| (r.family, r.target));
        Page {
            labelled,
            targets,
            runs: runs_at,
            next: 0,
        }
    }

    /// Appends whole runs until `out` holds at least `bytes` bytes or the
    /// page is done; returns whether more is left.
    pub(crate) fn write_next(&mut self, out: &mut String, bytes: usize) -> bool {
        while self.next < self.runs.len() && out.len() < bytes {
            let run = self.runs[self.next];
            let first_of_family = self
                .next
                .checked_sub(1)
                .is_none_or(|i| self.runs[i].family != run.family);
            let (instance, record) = &self.targets[run.target as usize];
            let series = &record.series[run.start as usize..run.end as usize];
            let extra = [("instance", instance.as_str())];
            let extra: &[(&str, &str)] = if self.labelled { &extra } else { &[] };
            write_run(out, series, extra, first_of_family);
            self.next += 1;
        }
        self.next < self.runs.len()
    }
}

/// Help texts escape `\` and newlines.
fn escape_help(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Kind;
    use crate::metrics::smallvec;

    #[test]
    fn families_with_labels_suffixes_and_escapes() {
        let mut families = Families::new();
        families.plain("redis_up", Kind::Gauge, 1.0);
        families.push(
            "redis_errors_total",
            Kind::Counter,
            "",
            smallvec![("err", "a\"b\\c\nd".into())],
            2.0,
        );
        families.push(
            "s",
            Kind::Summary,
            "",
            smallvec![("quantile", "99.9".into())],
            0.5,
        );
        families.push("s", Kind::Summary, "_count", smallvec![], f64::INFINITY);
        let mut out = String::new();
        write_families(&mut out, &families, &[("instance", "h:1")]);
        assert_eq!(
            out,
            "# HELP redis_up Information about the Redis instance\n# TYPE redis_up gauge\nredis_up{instance=\"h:1\"} 1\n\
             # HELP redis_errors_total Total number of errors per error type\n# TYPE redis_errors_total counter\nredis_errors_total{instance=\"h:1\",err=\"a\\\"b\\\\c\\nd\"} 2\n\
             # HELP s s metric\n# TYPE s summary\ns{instance=\"h:1\",quantile=\"99.9\"} 0.5\ns_count{instance=\"h:1\"} +Inf\n"
        );
    }

    fn series_of(families: &Families) -> Vec<Series> {
        let mut out = Vec::new();
        flatten(families, &[], &mut out);
        out
    }

    fn record_of(families: &Families) -> Arc<Record> {
        Arc::new(Record {
            timestamp_ms: 0,
            target: crate::series::target_labels([]),
            series: series_of(families),
            histograms: Vec::new(),
        })
    }

    #[test]
    fn several_targets_share_one_type_line() {
        let mut a = Families::new();
        a.plain("redis_up", Kind::Gauge, 1.0);
        a.plain("only_a", Kind::Gauge, 2.0);
        let mut b = Families::new();
        b.plain("redis_up", Kind::Gauge, 0.0);
        let mut out = String::new();
        write_targets(
            &mut out,
            vec![("a:1".into(), record_of(&a)), ("b:2".into(), record_of(&b))],
        );
        assert_eq!(
            out,
            "# HELP redis_up Information about the Redis instance\n# TYPE redis_up gauge\nredis_up{instance=\"a:1\"} 1\nredis_up{instance=\"b:2\"} 0\n\
             # HELP only_a only_a metric\n# TYPE only_a gauge\nonly_a{instance=\"a:1\"} 2\n"
        );
    }

    #[test]
    fn a_page_written_in_pieces_is_the_page_written_at_once() {
        let target = |names: &[&str]| {
            let mut families = Families::new();
            families.plain("redis_up", Kind::Gauge, 1.0);
            for name in names {
                families.push(
                    name.to_string(),
                    Kind::Counter,
                    "",
                    smallvec![("cmd", "get".into())],
                    2.0,
                );
                families.push(
                    name.to_string(),
                    Kind::Counter,
                    "",
                    smallvec![("cmd", "set".into())],
                    3.0,
                );
            }
            record_of(&families)
        };
        let targets = vec![
            ("a:1".to_owned(), target(&["x", "y"])),
            ("b:2".to_owned(), target(&["z", "x"])),
            ("c:3".to_owned(), target(&[])),
        ];
        let mut whole = String::new();
        let mut page = Page::new(targets.clone(), true);
        assert!(!page.write_next(&mut whole, usize::MAX));
        let mut pieces = String::new();
        let mut page = Page::new(targets, true);
        loop {
            let mut piece = String::new();
            let more = page.write_next(&mut piece, 1);
            pieces.push_str(&piece);
            if !more {
                break;
            }
        }
        assert_eq!(pieces, whole);
        for family in ["redis_up", "x", "y", "z"] {
            let types = whole.matches(&format!("# TYPE {family} ")).count();
            assert_eq!(types, 1, "{family}:\n{whole}");
        }
        // A family's lines stay together, across targets.
        let x: Vec<&str> = whole.lines().filter(|l| l.starts_with("x{")).collect();
        assert_eq!(x.len(), 4);
        let at = whole.find("# TYPE x ").expect("x");
        assert!(
            whole[at..]
                .lines()
                .skip(1)
                .take(4)
                .all(|l| l.starts_with("x{instance="))
        );
        assert!(whole.contains("redis_up{instance=\"c:3\"} 1\n"));
    }

    #[test]
    fn stale_markers_are_not_written() {
        let mut families = Families::new();
        families.plain("redis_up", Kind::Gauge, 1.0);
        families.plain("gone", Kind::Gauge, 1.0);
        let mut series = series_of(&families);
        series[1].value = crate::series::stale_nan();
        let mut out = String::new();
        write_series(&mut out, &series, &[]);
        assert_eq!(
            out,
            "# HELP redis_up Information about the Redis instance\n# TYPE redis_up gauge\nredis_up 1\n"
        );
    }

    #[test]
    fn no_braces_without_labels() {
        let mut families = Families::new();
        families.plain("x", Kind::Gauge, 0.000546);
        let mut out = String::new();
        write_families(&mut out, &families, &[]);
        assert_eq!(out, "# HELP x x metric\n# TYPE x gauge\nx 0.000546\n");
    }
}
