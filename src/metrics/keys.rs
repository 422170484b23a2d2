//! Key, stream and script metrics (opt-in: they cost the server), pure:
//! what the key sampler or a user's Lua script returned becomes families
//! with the exporter's names.

use super::{Families, Kind, Labels, smallvec};
use crate::reading::{
    KeyGroup, KeyGroups, KeyReading, KeyValue, KeysReading, ScriptOutcome, StreamReading,
};

/// XINFO STREAM field → metric (all gauges but entries-added).
const STREAM_FIELDS: &[(&str, &str, Kind)] = &[
    ("length", "redis_stream_length", Kind::Gauge),
    (
        "radix-tree-keys",
        "redis_stream_radix_tree_keys",
        Kind::Gauge,
    ),
    (
        "radix-tree-nodes",
        "redis_stream_radix_tree_nodes",
        Kind::Gauge,
    ),
    ("groups", "redis_stream_groups", Kind::Gauge),
    (
        "last-generated-id",
        "redis_stream_last_generated_id",
        Kind::Gauge,
    ),
    (
        "max-deleted-entry-id",
        "redis_stream_max_deleted_entry_id",
        Kind::Gauge,
    ),
    ("first-entry", "redis_stream_first_entry_id", Kind::Gauge),
    ("last-entry", "redis_stream_last_entry_id", Kind::Gauge),
    (
        "entries-added",
        "redis_stream_entries_added_total",
        Kind::Counter,
    ),
];

/// XINFO GROUPS field → metric.
const GROUP_FIELDS: &[(&str, &str)] = &[
    ("consumers", "redis_stream_group_consumers"),
    ("pending", "redis_stream_group_messages_pending"),
    ("last-delivered-id", "redis_stream_group_last_delivered_id"),
    ("entries-read", "redis_stream_group_entries_read"),
    ("lag", "redis_stream_group_lag"),
];

/// Reads one figure of a key.
type KeyField = fn(&KeyReading) -> Option<f64>;

pub(crate) fn map_keys(reading: &KeysReading, out: &mut Families) {
    let key_labels = |k: &KeyReading| -> Labels {
        smallvec![
            ("db", reading.db.as_str().into()),
            ("key", k.key.as_str().into())
        ]
    };
    let per_key: [(&'static str, KeyField); 3] = [
        ("redis_key_size", |k| k.size),
        ("redis_key_memory_usage_bytes", |k| k.memory_bytes),
        ("redis_key_ttl_seconds", |k| k.ttl_seconds),
    ];
    for (name, value) in per_key {
        for k in &reading.keys {
            if let Some(v) = value(k) {
                out.push(name, Kind::Gauge, "", key_labels(k), v);
            }
        }
    }
    // A string key's value: a number as itself, else as a label (1).
    for k in &reading.keys {
        if let Some(KeyValue::Number(v)) = k.value {
            out.push("redis_key_value", Kind::Gauge, "", key_labels(k), v);
        }
    }
    for k in &reading.keys {
        if let Some(KeyValue::Text(text)) = &k.value {
            let mut labels = key_labels(k);
            labels.push(("val", text.as_str().into()));
            out.push("redis_key_value_as_string", Kind::Gauge, "", labels, 1.0);
        }
    }
    let streams: Vec<(&KeyReading, &StreamReading)> = reading
        .keys
        .iter()
        .filter_map(|k| Some((k, k.stream.as_ref()?)))
        .collect();
    let stream_labels = |k: &KeyReading| -> Labels {
        smallvec![
            ("db", reading.db.as_str().into()),
            ("stream", k.key.as_str().into())
        ]
    };
    for &(field, name, kind) in STREAM_FIELDS {
        for (k, s) in &streams {
            if let Some((_, v)) = s.fields.iter().find(|(f, _)| f == field) {
                out.push(name, kind, "", stream_labels(k), *v);
            }
        }
    }
    for &(field, name) in GROUP_FIELDS {
        for (k, s) in &streams {
            for g in &s.groups {
                if let Some((_, v)) = g.fields.iter().find(|(f, _)| f == field) {
                    let mut labels = stream_labels(k);
                    labels.push(("group", g.name.as_str().into()));
                    out.push(name, Kind::Gauge, "", labels, *v);
                }
            }
        }
    }
    for (pattern, count) in &reading.counts {
        out.push(
            "redis_keys_count",
            Kind::Gauge,
            "",
            smallvec![
                ("db", reading.db.as_str().into()),
                ("key", pattern.as_str().into())
            ],
            *count,
        );
    }
}

/// Key groups as the exporter gives them: `redis_key_group_count` and
/// `redis_key_group_memory_usage_bytes{db,key_group}` for the `max` groups
/// using the most memory, the others summed as `key_group="overflow"`;
/// `redis_number_of_distinct_key_groups{db}` (all of them, before the
/// cut) and the walk's duration.
pub(crate) fn map_key_groups(db: &str, groups: &KeyGroups, max: usize, out: &mut Families) {
    let shown = top_groups(&groups.groups, max);
    let group_labels =
        |group: &str| -> Labels { smallvec![("db", db.into()), ("key_group", group.into())] };
    for (group, keys, _) in &shown {
        out.push(
            "redis_key_group_count",
            Kind::Gauge,
            "",
            group_labels(group),
            *keys,
        );
    }
    for (group, _, memory) in &shown {
        let name = "redis_key_group_memory_usage_bytes";
        out.push(name, Kind::Gauge, "", group_labels(group), *memory);
    }
    out.push(
        "redis_number_of_distinct_key_groups",
        Kind::Gauge,
        "",
        smallvec![("db", db.into())],
        groups.groups.len() as f64,
    );
    out.plain(
        "redis_last_key_groups_scrape_duration_milliseconds",
        Kind::Gauge,
        groups.duration_ms,
    );
}

/// The `max` groups using the most memory (ties by name), then, when there
/// are more, the rest summed as `overflow`.
fn top_groups(groups: &[KeyGroup], max: usize) -> Vec<KeyGroup> {
    let mut sorted = groups.to_vec();
    sorted.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    if sorted.len() > max {
        let rest = sorted.split_off(max);
        let keys = rest.iter().map(|g| g.1).sum();
        let memory = rest.iter().map(|g| g.2).sum();
        sorted.push(("overflow".to_owned(), keys, memory));
    }
    sorted
}

/// `redis_script_result{filename}` (1 ok, 0 error, 2 empty) and
/// `redis_script_values{key,filename}`.
pub(crate) fn map_script(filename: &str, outcome: &ScriptOutcome, out: &mut Families) {
    let result = match outcome {
        ScriptOutcome::Values(_) => 1.0,
        ScriptOutcome::Failed => 0.0,
        ScriptOutcome::Empty => 2.0,
    };
    out.push(
        "redis_script_result",
        Kind::Gauge,
        "",
        smallvec![("filename", filename.into())],
        result,
    );
    if let ScriptOutcome::Values(values) = outcome {
        for (key, value) in values {
            let labels = smallvec![("filename", filename.into()), ("key", key.as_str().into())];
            out.push("redis_script_values", Kind::Gauge, "", labels, *value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::GroupReading;

    #[test]
    fn key_groups_beyond_the_limit_are_summed_as_overflow() {
        let group = |name: &str, keys: f64, memory: f64| (name.to_owned(), keys, memory);
        let groups = KeyGroups {
            groups: vec![
                group("a", 1.0, 50.0),
                group("session", 3.0, 216.0),
                group("unclassified", 2.0, 192.0),
                group("user", 3.0, 216.0),
            ],
            duration_ms: 2.0,
        };
        let shown = top_groups(&groups.groups, 2);
        assert_eq!(
            shown,
            vec![
                group("session", 3.0, 216.0),
                group("user", 3.0, 216.0),
                group("overflow", 3.0, 242.0),
            ]
        );
        assert_eq!(
            top_groups(&groups.groups, 4).len(),
            4,
            "no overflow when all fit"
        );
        let mut families = Families::new();
        map_key_groups("db0", &groups, 2, &mut families);
        let mut text = String::new();
        crate::exposition::write_families(&mut text, &families, &[]);
        for line in [
            "redis_key_group_count{db=\"db0\",key_group=\"overflow\"} 3\n",
            "redis_key_group_memory_usage_bytes{db=\"db0\",key_group=\"user\"} 216\n",
            "redis_number_of_distinct_key_groups{db=\"db0\"} 4\n",
            "redis_last_key_groups_scrape_duration_milliseconds 2\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn keys_streams_and_counts() {
        let reading = KeysReading {
            db: "db0".into(),
            keys: vec![
                KeyReading {
                    key: "queue".into(),
                    size: Some(3.0),
                    memory_bytes: Some(120.0),
                    ttl_seconds: None,
                    stream: None,
                    value: None,
                },
                KeyReading {
                    key: "n".into(),
                    value: Some(KeyValue::of(b"12.5")),
                    ..KeyReading::default()
                },
                KeyReading {
                    key: "t".into(),
                    value: Some(KeyValue::of(b"on\n")),
                    ..KeyReading::default()
                },
                KeyReading {
                    key: "events".into(),
                    size: Some(2.0),
                    memory_bytes: None,
                    ttl_seconds: Some(60.0),
                    stream: Some(StreamReading {
                        fields: vec![("length".into(), 2.0), ("entries-added".into(), 5.0)],
                        groups: vec![GroupReading {
                            name: "workers".into(),
                            fields: vec![("lag".into(), 1.0)],
                        }],
                    }),
                    value: None,
                },
            ],
            counts: vec![("session:*".into(), 42.0)],
            groups: None,
        };
        let mut families = Families::new();
        map_keys(&reading, &mut families);
        let mut text = String::new();
        crate::exposition::write_families(&mut text, &families, &[]);
        assert!(
            text.contains("redis_key_size{db=\"db0\",key=\"queue\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("redis_key_ttl_seconds{db=\"db0\",key=\"events\"} 60\n"),
            "{text}"
        );
        assert!(!text.contains("redis_key_ttl_seconds{db=\"db0\",key=\"queue\"}"));
        assert!(
            text.contains("redis_key_value{db=\"db0\",key=\"n\"} 12.5\n"),
            "{text}"
        );
        assert!(
            text.contains("redis_key_value_as_string{db=\"db0\",key=\"t\",val=\"on\\n\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE redis_stream_entries_added_total counter\nredis_stream_entries_added_total{db=\"db0\",stream=\"events\"} 5\n"), "{text}");
        assert!(
            text.contains(
                "redis_stream_group_lag{db=\"db0\",stream=\"events\",group=\"workers\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("redis_keys_count{db=\"db0\",key=\"session:*\"} 42\n"),
            "{text}"
        );
    }
}
