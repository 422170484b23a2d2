//! The Prometheus text exposition format (version 0.0.4), as served on
//! `/metrics`, printed by `redpush once` and pushed to a Pushgateway.
//!
//! Written straight into one `String` the caller may reuse; no timestamps
//! (the Pushgateway refuses them, and scrapers stamp the scrape time).

use std::collections::HashMap;
use std::fmt::Write;

use super::{Families, Family};

/// Content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Appends every family of `families`, each point carrying `extra` labels
/// first (e.g. `instance` when one page shows several targets).
pub fn write_families(out: &mut String, families: &Families, extra: &[(&str, &str)]) {
    for family in families {
        write_family(out, family, extra, true);
    }
}

/// Appends one family. `with_type` is false when the caller already wrote
/// this family's `# TYPE` line (several targets on one page share it).
pub fn write_family(out: &mut String, family: &Family, extra: &[(&str, &str)], with_type: bool) {
    if with_type {
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.as_str());
    }
    for point in &family.points {
        out.push_str(&family.name);
        out.push_str(point.suffix);
        let labels = extra
            .iter()
            .copied()
            .chain(point.labels.iter().map(|(n, v)| (*n, v.as_str())));
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
        write_value(out, point.value);
        out.push('\n');
    }
}

/// Appends the families of several targets, each point labelled with its
/// target's `instance`. All points of one name are written together under
/// one `# TYPE` line, as the format requires.
pub fn write_targets(out: &mut String, targets: &[(&str, &Families)]) {
    let mut order: Vec<&str> = Vec::new();
    let mut by_name: HashMap<&str, Vec<(&str, &Family)>> = HashMap::new();
    for &(instance, families) in targets {
        for family in families {
            let entry = by_name.entry(family.name.as_ref()).or_insert_with(|| {
                order.push(family.name.as_ref());
                Vec::new()
            });
            entry.push((instance, family));
        }
    }
    for name in order {
        for (i, (instance, family)) in by_name[name].iter().enumerate() {
            write_family(out, family, &[("instance", instance)], i == 0);
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

/// Floats as Prometheus parses them: `NaN`, `+Inf`, `-Inf`, else the
/// shortest decimal that round-trips.
pub fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Kind;

    #[test]
    fn families_with_labels_suffixes_and_escapes() {
        let mut families = Families::new();
        families.plain("redis_up", Kind::Gauge, 1.0);
        families.push(
            "redis_errors_total",
            Kind::Counter,
            "",
            vec![("err", "a\"b\\c\nd".into())],
            2.0,
        );
        families.push(
            "s",
            Kind::Summary,
            "",
            vec![("quantile", "99.9".into())],
            0.5,
        );
        families.push("s", Kind::Summary, "_count", vec![], f64::INFINITY);
        let mut out = String::new();
        write_families(&mut out, &families, &[("instance", "h:1")]);
        assert_eq!(
            out,
            "# TYPE redis_up gauge\nredis_up{instance=\"h:1\"} 1\n\
             # TYPE redis_errors_total counter\nredis_errors_total{instance=\"h:1\",err=\"a\\\"b\\\\c\\nd\"} 2\n\
             # TYPE s summary\ns{instance=\"h:1\",quantile=\"99.9\"} 0.5\ns_count{instance=\"h:1\"} +Inf\n"
        );
    }

    #[test]
    fn several_targets_share_one_type_line() {
        let mut a = Families::new();
        a.plain("redis_up", Kind::Gauge, 1.0);
        a.plain("only_a", Kind::Gauge, 2.0);
        let mut b = Families::new();
        b.plain("redis_up", Kind::Gauge, 0.0);
        let mut out = String::new();
        write_targets(&mut out, &[("a:1", &a), ("b:2", &b)]);
        assert_eq!(
            out,
            "# TYPE redis_up gauge\nredis_up{instance=\"a:1\"} 1\nredis_up{instance=\"b:2\"} 0\n\
             # TYPE only_a gauge\nonly_a{instance=\"a:1\"} 2\n"
        );
    }

    #[test]
    fn no_braces_without_labels() {
        let mut families = Families::new();
        families.plain("x", Kind::Gauge, 0.000546);
        let mut out = String::new();
        write_families(&mut out, &families, &[]);
        assert_eq!(out, "# TYPE x gauge\nx 0.000546\n");
    }
}
