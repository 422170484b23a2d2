//! Prometheus' documented relabeling behaviours, one case each (the cases
//! of `model/relabel/relabel_test.go` and the configuration docs), and
//! the config checks.

use super::*;

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .chain([(NAME.to_owned(), "m".to_owned())])
        .collect()
}

/// A rule from `field = value` pairs, as a config file gives them.
fn rule(fields: &[(&str, &str)]) -> Result<Rule, String> {
    let mut text = RuleText::default();
    for &(field, value) in fields {
        let value = value.to_owned();
        match field {
            "source_labels" => {
                text.source_labels = Some(value.split(',').map(str::to_owned).collect());
            }
            "separator" => text.separator = Some(value),
            "regex" => text.regex = Some(value),
            "modulus" => text.modulus = Some(value.parse().expect("number")),
            "target_label" => text.target_label = Some(value),
            "replacement" => text.replacement = Some(value),
            "action" => text.action = Some(value),
            other => panic!("no field {other}"),
        }
    }
    Rule::new(&text)
}

/// Applies the rules to `input`: the labels kept, or `None` for a drop.
fn run(input: &[(&str, &str)], rules: &[&[(&str, &str)]]) -> Option<LabelSet> {
    let rules = Rules::new(rules.iter().map(|r| rule(r).expect("valid rule")).collect());
    let mut set = labels(input);
    rules.apply(&mut set).then_some(set)
}

#[test]
fn replace_with_capture_groups_and_chained_rules() {
    let abc = [("a", "foo"), ("b", "bar"), ("c", "baz")];
    let out = run(
        &abc,
        &[&[
            ("source_labels", "a"),
            ("regex", "f(.*)"),
            ("target_label", "d"),
            ("replacement", "ch${1}-ch${1}"),
        ]],
    );
    assert_eq!(
        out,
        Some(labels(&[
            ("a", "foo"),
            ("b", "bar"),
            ("c", "baz"),
            ("d", "choo-choo")
        ]))
    );
    // Several sources joined by the separator; a rule sees the last one's work.
    let out = run(
        &abc,
        &[
            &[
                ("source_labels", "a,b"),
                ("regex", "f(.*);(.*)r"),
                ("target_label", "a"),
                ("replacement", "b${1}${2}m"),
            ],
            &[
                ("source_labels", "c,a"),
                ("regex", "(b).*b(.*)ba(.*)"),
                ("target_label", "d"),
                ("replacement", "$1$2$2$3"),
            ],
        ],
    );
    assert_eq!(
        out,
        Some(labels(&[
            ("a", "boobam"),
            ("b", "bar"),
            ("c", "baz"),
            ("d", "boooom")
        ]))
    );
}

#[test]
fn replace_leaves_labels_alone_without_a_match_and_removes_on_empty() {
    let out = run(
        &[("a", "foo")],
        &[&[
            ("source_labels", "a"),
            ("regex", "f"),
            ("target_label", "b"),
        ]],
    );
    assert_eq!(out, Some(labels(&[("a", "foo")])), "the regex is anchored");
    // `$1x` names a group `1x`, which does not exist: the empty value
    // removes the label.
    let out = run(
        &[("a", "foo"), ("b", "bar")],
        &[&[
            ("source_labels", "a"),
            ("regex", "(f).*"),
            ("target_label", "b"),
            ("replacement", "$1x"),
        ]],
    );
    assert_eq!(out, Some(labels(&[("a", "foo")])));
    // Defaults: regex (.*), replacement $1, action replace.
    let out = run(
        &[("a", "foo")],
        &[&[("source_labels", "a"), ("target_label", "z")]],
    );
    assert_eq!(out, Some(labels(&[("a", "foo"), ("z", "foo")])));
    // `$$` is a dollar sign.
    let out = run(
        &[("a", "foo")],
        &[&[
            ("source_labels", "a"),
            ("target_label", "z"),
            ("replacement", "$$1"),
        ]],
    );
    assert_eq!(out, Some(labels(&[("a", "foo"), ("z", "$1")])));
}

#[test]
fn replace_expands_the_target_label_and_skips_an_invalid_one() {
    let input = [("a", "some-name-value")];
    let out = run(
        &input,
        &[&[
            ("source_labels", "a"),
            ("regex", "some-([^-]+)-([^,]+)"),
            ("target_label", "${1}"),
            ("replacement", "${2}"),
        ]],
    );
    assert_eq!(
        out,
        Some(labels(&[("a", "some-name-value"), ("name", "value")]))
    );
    let out = run(
        &input,
        &[&[
            ("source_labels", "a"),
            ("regex", "some-([^-]+)-([^,]+)"),
            ("target_label", "${3}"),
            ("replacement", "${2}"),
        ]],
    );
    assert_eq!(
        out,
        Some(labels(&input)),
        "an empty target name changes nothing"
    );
    let out = run(
        &[("a", "foo")],
        &[&[
            ("source_labels", "a"),
            ("regex", "(f).*"),
            ("target_label", "$1"),
            ("replacement", "$1"),
        ]],
    );
    assert_eq!(out, Some(labels(&[("a", "foo"), ("f", "f")])));
}

#[test]
fn keep_and_drop_match_the_whole_value() {
    let input = [("a", "foo")];
    let drop = |regex| {
        run(
            &input,
            &[&[("source_labels", "a"), ("regex", regex), ("action", "drop")]],
        )
    };
    assert_eq!(drop(".*o.*"), None);
    assert_eq!(
        drop("o"),
        Some(labels(&input)),
        "anchored: `o` is not `foo`"
    );
    let keep = |regex| {
        run(
            &input,
            &[&[("source_labels", "a"), ("regex", regex), ("action", "keep")]],
        )
    };
    assert_eq!(keep("f.*"), Some(labels(&input)));
    assert_eq!(keep("no-match"), None);
    // A missing label is the empty string.
    assert_eq!(
        run(
            &input,
            &[&[("source_labels", "b"), ("regex", ""), ("action", "drop")]]
        ),
        None
    );
    // Actions are read without regard to case, as Prometheus does.
    assert_eq!(
        run(
            &input,
            &[&[("source_labels", "a"), ("regex", "foo"), ("action", "DROP")]]
        ),
        None
    );
}

#[test]
fn keepequal_and_dropequal_compare_with_the_target_label() {
    let same = [("a", "foo"), ("b", "foo")];
    let other = [("a", "foo"), ("b", "bar")];
    let rule = |action| -> Vec<(&str, &str)> {
        vec![
            ("source_labels", "a"),
            ("target_label", "b"),
            ("action", action),
        ]
    };
    let keepequal = rule("keepequal");
    let dropequal = rule("dropequal");
    assert_eq!(run(&same, &[&keepequal]), Some(labels(&same)));
    assert_eq!(run(&other, &[&keepequal]), None);
    assert_eq!(run(&same, &[&dropequal]), None);
    assert_eq!(run(&other, &[&dropequal]), Some(labels(&other)));
}

#[test]
fn hashmod_is_prometheus_md5_modulus() {
    // Prometheus' own case: md5("baz") % 1000 by its last eight bytes.
    let out = run(
        &[("a", "foo"), ("b", "bar"), ("c", "baz")],
        &[&[
            ("source_labels", "c"),
            ("target_label", "d"),
            ("modulus", "1000"),
            ("action", "hashmod"),
        ]],
    );
    assert_eq!(out.expect("kept")["d"], "976");
    assert_eq!(hash_mod("foo", 1000), 696);
}

#[test]
fn labelmap_labeldrop_labelkeep_work_on_names() {
    let input = [("a", "foo"), ("b1", "bar"), ("b2", "baz")];
    let out = run(
        &input,
        &[&[
            ("regex", "(b.*)"),
            ("replacement", "bar_${1}"),
            ("action", "labelmap"),
        ]],
    );
    assert_eq!(
        out,
        Some(labels(&[
            ("a", "foo"),
            ("b1", "bar"),
            ("b2", "baz"),
            ("bar_b1", "bar"),
            ("bar_b2", "baz"),
        ]))
    );
    let out = run(&input, &[&[("regex", "(b.*)"), ("action", "labeldrop")]]);
    assert_eq!(out, Some(labels(&[("a", "foo")])));
    // labelkeep must keep `__name__` too, or the series is dropped.
    let out = run(
        &input,
        &[&[("regex", "b.*|__name__"), ("action", "labelkeep")]],
    );
    assert_eq!(out, Some(labels(&[("b1", "bar"), ("b2", "baz")])));
    assert_eq!(
        run(&input, &[&[("regex", "b.*"), ("action", "labelkeep")]]),
        None
    );
}

#[test]
fn lowercase_and_uppercase() {
    let input = [("foo", "bAr123Foo")];
    let out = run(
        &input,
        &[
            &[
                ("source_labels", "foo"),
                ("target_label", "low"),
                ("action", "lowercase"),
            ],
            &[
                ("source_labels", "foo"),
                ("target_label", "up"),
                ("action", "uppercase"),
            ],
        ],
    );
    let out = out.expect("kept");
    assert_eq!(
        (out["low"].as_str(), out["up"].as_str()),
        ("bar123foo", "BAR123FOO")
    );
}

#[test]
fn renaming_and_losing_the_name() {
    let out = run(
        &[],
        &[&[
            ("source_labels", "__name__"),
            ("regex", "m"),
            ("target_label", "__name__"),
            ("replacement", "renamed"),
        ]],
    );
    assert_eq!(out.expect("kept")[NAME], "renamed");
    assert_eq!(
        run(&[], &[&[("regex", "__name__"), ("action", "labeldrop")]]),
        None
    );
}

#[test]
fn invalid_rules_are_refused_with_the_reason() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("action", "explode")], "unknown action \"explode\""),
        (
            &[("regex", "(")],
            "regex \"(\" is invalid: found open group without closing ')'",
        ),
        (
            &[("action", "hashmod"), ("target_label", "x")],
            "modulus above 0",
        ),
        (&[("action", "replace")], "needs target_label"),
        (&[("target_label", "a-b")], "target_label: \"a-b\""),
        (
            &[("action", "lowercase"), ("target_label", "$1")],
            "target_label: \"$1\"",
        ),
        (
            &[("action", "labeldrop"), ("source_labels", "a")],
            "takes only regex",
        ),
        (
            &[
                ("action", "keepequal"),
                ("source_labels", "a"),
                ("target_label", "b"),
                ("regex", "x"),
            ],
            "takes only source_labels and target_label",
        ),
        (
            &[("action", "labelmap"), ("replacement", "a-$1")],
            "replacement: \"a-$1\"",
        ),
        (
            &[("source_labels", "a b"), ("target_label", "x")],
            "source_labels: \"a b\"",
        ),
    ];
    for (fields, reason) in cases {
        let err = rule(fields).expect_err(reason);
        assert!(err.contains(reason), "{fields:?}: {err}");
    }
    assert!(rule(&[("action", "replace"), ("target_label", "${1}_x")]).is_ok());
}

#[test]
fn a_rule_describes_what_it_was_given() {
    let r = rule(&[
        ("source_labels", "a,b"),
        ("regex", "x.*"),
        ("action", "drop"),
    ])
    .expect("valid");
    assert_eq!(
        r.describe(),
        r#"{ action = "drop", source_labels = ["a", "b"], regex = "x.*" }"#
    );
}

/// RE2 (Prometheus' engine) makes `\d`, `\w`, `\s` and `\b` ASCII; so does
/// ours. Unicode classes (`\pL`) are refused with the engine's reason.
#[test]
fn perl_classes_are_ascii_as_in_re2_and_unicode_classes_are_refused() {
    let keep = |regex: &str, value: &str| {
        run(
            &[("__name__", "m"), ("v", value)],
            &[&[("source_labels", "v"), ("regex", regex), ("action", "keep")]],
        )
        .is_some()
    };
    assert!(keep(r"\d+", "123"));
    assert!(
        !keep(r"\d+", "١٢٣"),
        "Arabic-Indic digits are no \\d in RE2"
    );
    assert!(keep(r"\w+", "db_0"));
    assert!(!keep(r"\w+", "größe"));
    assert!(keep(r"(?i)redis_.*", "REDIS_up"));
    assert!(keep(r"gr..e", "größe"), ". is one character, not one byte");
    let err = rule(&[("regex", r"\pL+")]).expect_err("unicode class");
    assert!(err.contains(r#"regex "\\pL+" is invalid"#), "{err}");
}
