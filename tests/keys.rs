//! Key and stream metrics on real data, compared with what the server
//! itself reports (LLEN, MEMORY USAGE, PTTL, XINFO), and counted patterns.

mod common;

use common::exposition::Page;
use common::servers::{Exporter, Redis, redpush_run};

fn once_with(redis: &Redis, keys: &str) -> Page {
    let dir = tempfile::TempDir::new().expect("dir");
    let config = dir.path().join("redpush.toml");
    std::fs::write(
        &config,
        format!("[[targets]]\nurl = \"{}\"\n{keys}", redis.url()),
    )
    .expect("config");
    let (code, out, err) = redpush_run(&["once", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    Page::parse(&out)
}

fn num(text: String) -> f64 {
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {text}"))
}

#[test]
fn keys_and_streams_match_what_the_server_reports() {
    let redis = Redis::start(&[]);
    for i in 0..5 {
        redis.cli(&["RPUSH", "queue:a", &format!("job{i}")]);
    }
    redis.cli(&[
        "HSET", "user:1", "name", "ada", "role", "admin", "age", "36",
    ]);
    redis.cli(&["SET", "counter", "12345", "EX", "600"]);
    for i in 0..3 {
        redis.cli(&["XADD", "events", "*", "n", &i.to_string()]);
    }
    redis.cli(&["XGROUP", "CREATE", "events", "workers", "0"]);
    redis.cli(&[
        "XREADGROUP",
        "GROUP",
        "workers",
        "w1",
        "COUNT",
        "1",
        "STREAMS",
        "events",
        ">",
    ]);
    for i in 0..250 {
        redis.cli(&["SET", &format!("session:{i}"), "x"]);
    }
    let page = once_with(
        &redis,
        "check_keys = [\"queue:*\", \"user:*\", \"events\"]\ncheck_single_keys = [\"counter\", \"missing-key\"]\ncount_keys = [\"session:*\"]\nkey_scan_count = 50\n",
    );
    fn key(name: &str) -> [(&str, &str); 2] {
        [("db", "db0"), ("key", name)]
    }
    assert_eq!(
        page.get("redis_key_size", &key("queue:a")),
        Some(num(redis.cli(&["LLEN", "queue:a"])))
    );
    assert_eq!(page.get("redis_key_size", &key("user:1")), Some(3.0));
    assert_eq!(
        page.get("redis_key_size", &key("counter")),
        Some(5.0),
        "STRLEN of 12345"
    );
    assert_eq!(
        page.get("redis_key_memory_usage_bytes", &key("queue:a")),
        Some(num(redis.cli(&["MEMORY", "USAGE", "queue:a"])))
    );
    let ttl = page
        .get("redis_key_ttl_seconds", &key("counter"))
        .expect("ttl");
    assert!((590.0..=600.0).contains(&ttl), "{ttl}");
    assert_eq!(
        page.get("redis_key_ttl_seconds", &key("queue:a")),
        None,
        "no expiry, no series"
    );
    // A missing key is absent, not 0.
    assert_eq!(page.get("redis_key_size", &key("missing-key")), None);

    let stream = [("db", "db0"), ("stream", "events")];
    assert_eq!(
        page.get("redis_stream_length", &stream),
        Some(num(redis.cli(&["XLEN", "events"])))
    );
    assert_eq!(page.get("redis_stream_groups", &stream), Some(1.0));
    assert_eq!(
        page.get("redis_stream_entries_added_total", &stream),
        Some(3.0)
    );
    let last_id = redis.cli(&["XINFO", "STREAM", "events"]);
    let last_generated = last_id
        .lines()
        .skip_while(|l| l.trim() != "last-generated-id")
        .nth(1)
        .and_then(|id| id.trim().split('-').next().map(str::to_owned))
        .expect("last-generated-id");
    assert_eq!(
        page.get("redis_stream_last_generated_id", &stream),
        Some(num(last_generated))
    );
    let group = [("db", "db0"), ("stream", "events"), ("group", "workers")];
    assert_eq!(
        page.get("redis_stream_group_messages_pending", &group),
        Some(1.0)
    );
    assert_eq!(page.get("redis_stream_group_consumers", &group), Some(1.0));
    assert_eq!(page.get("redis_stream_group_lag", &group), Some(2.0));
    assert_eq!(
        page.get("redis_stream_group_entries_read", &group),
        Some(1.0)
    );

    assert_eq!(
        page.get("redis_keys_count", &[("db", "db0"), ("key", "session:*")]),
        Some(250.0)
    );
    // The agent's own time on the server, per kind of round trip.
    for cmd in ["sample", "scan", "keys"] {
        let seconds = page.get("redpush_redis_command_duration_seconds", &[("cmd", cmd)]);
        assert!(
            seconds.is_some_and(|s| s > 0.0 && s < 5.0),
            "{cmd}: {seconds:?}"
        );
    }
}

#[test]
fn a_scan_out_of_budget_leaves_the_count_out() {
    let redis = Redis::start(&[]);
    // Enough keys that SCAN with COUNT 1 cannot finish in a millisecond.
    let mut args = vec!["MSET".to_owned()];
    for i in 0..20000 {
        args.push(format!("k{i}"));
        args.push("v".to_owned());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    redis.cli(&refs);
    let page = once_with(
        &redis,
        "count_keys = [\"k*\"]\nkey_scan_count = 1\nkey_time_budget = \"1ms\"\n",
    );
    assert_eq!(page.get("redis_up", &[]), Some(1.0));
    assert_eq!(
        page.get("redis_keys_count", &[("db", "db0"), ("key", "k*")]),
        None
    );
}

#[test]
fn a_lua_script_returns_metrics() {
    let redis = Redis::start(&[]);
    redis.cli(&["SET", "orders", "17"]);
    let dir = tempfile::TempDir::new().expect("dir");
    let good = dir.path().join("orders.lua");
    std::fs::write(&good, "return {'orders', redis.call('GET', 'orders'), 'keys', tostring(redis.call('DBSIZE')), 'label', 'not-a-number'}").expect("script");
    let page = once_with(&redis, &format!("script_file = \"{}\"\n", good.display()));
    assert_eq!(
        page.get("redis_script_result", &[("filename", "orders.lua")]),
        Some(1.0)
    );
    assert_eq!(
        page.get(
            "redis_script_values",
            &[("filename", "orders.lua"), ("key", "orders")]
        ),
        Some(17.0)
    );
    assert_eq!(
        page.get(
            "redis_script_values",
            &[("filename", "orders.lua"), ("key", "keys")]
        ),
        Some(1.0)
    );
    assert_eq!(
        page.get(
            "redis_script_values",
            &[("filename", "orders.lua"), ("key", "label")]
        ),
        None
    );

    let bad = dir.path().join("bad.lua");
    std::fs::write(&bad, "return redis.call('NO_SUCH_COMMAND')").expect("script");
    let page = once_with(&redis, &format!("script_file = \"{}\"\n", bad.display()));
    assert_eq!(
        page.get("redis_script_result", &[("filename", "bad.lua")]),
        Some(0.0)
    );
    assert_eq!(
        page.get("redis_up", &[]),
        Some(1.0),
        "a failing script does not take the target down"
    );
}

#[test]
fn string_values_are_reported_as_the_exporter_reports_them() {
    let redis = Redis::start(&[]);
    redis.cli(&["SET", "num", "12345"]);
    redis.cli(&["SET", "float", "-1.5e3"]);
    redis.cli(&["SET", "text", "hello world"]);
    redis.cli(&["SET", "long", &"x".repeat(2000)]);
    redis.cli(&["RPUSH", "list", "a"]);
    let keys = ["num", "float", "text", "list"];
    let ours = once_with(
        &redis,
        &format!(
            "check_single_keys = {:?}\n",
            [&keys[..], &["long"]].concat()
        ),
    );
    let exporter =
        Exporter::start_with(&redis, &[&format!("-check-single-keys={}", keys.join(","))]);
    let theirs = Page::parse(&exporter.scrape());
    let values = |page: &Page| -> Vec<(common::exposition::SeriesKey, f64)> {
        page.values
            .iter()
            .filter(|((name, _), _)| {
                name == "redis_key_value" || name == "redis_key_value_as_string"
            })
            .map(|(key, v)| (key.clone(), *v))
            .collect()
    };
    let ours_values = values(&ours);
    assert_eq!(ours_values.len(), 3, "{ours_values:?}");
    assert_eq!(ours_values, values(&theirs));
    assert_eq!(
        ours.get("redis_key_value", &[("db", "db0"), ("key", "num")]),
        Some(12345.0)
    );
    assert_eq!(
        ours.get(
            "redis_key_value_as_string",
            &[("db", "db0"), ("key", "text"), ("val", "hello world")]
        ),
        Some(1.0)
    );
    // A value too long for a label is left out; its size is there.
    assert!(
        !ours_values
            .iter()
            .any(|((_, labels), _)| labels.iter().any(|(_, v)| v == "long"))
    );
    assert_eq!(
        ours.get("redis_key_size", &[("db", "db0"), ("key", "long")]),
        Some(2000.0)
    );
}

#[test]
fn key_groups_match_the_exporter_on_the_same_keys() {
    let redis = Redis::start(&[]);
    for i in 0..30 {
        redis.cli(&["SET", &format!("user:{i}:name"), "someone"]);
    }
    for i in 0..20 {
        redis.cli(&["SET", &format!("session:{}{i}", ["a", "b"][i % 2]), "x"]);
    }
    for i in 0..10 {
        redis.cli(&["HSET", &format!("cart:{i}"), "item", "1", "qty", "2"]);
    }
    for key in ["misc", "other", "x:1"] {
        redis.cli(&["SET", key, "1"]);
    }
    let patterns = ["^(user):", "^(session):(%a)", "^(cart):"];
    let groups = |page: &Page| -> Vec<(common::exposition::SeriesKey, f64)> {
        page.values
            .iter()
            .filter(|((name, labels), _)| {
                (name.starts_with("redis_key_group_")
                    || name == "redis_number_of_distinct_key_groups")
                    && labels.contains(&("db".to_owned(), "db0".to_owned()))
            })
            .map(|(key, v)| (key.clone(), *v))
            .collect()
    };
    for max in [2, 100] {
        let ours = once_with(
            &redis,
            &format!("check_key_groups = {patterns:?}\nmax_distinct_key_groups = {max}\n"),
        );
        let exporter = Exporter::start_with(
            &redis,
            &[
                &format!("-check-key-groups={}", patterns.join(",")),
                &format!("-max-distinct-key-groups={max}"),
            ],
        );
        let theirs = Page::parse(&exporter.scrape());
        let ours_groups = groups(&ours);
        assert_eq!(ours_groups, groups(&theirs), "max {max}");
        let count = |group: &str| {
            ours.get(
                "redis_key_group_count",
                &[("db", "db0"), ("key_group", group)],
            )
        };
        assert_eq!(count("user"), Some(30.0));
        assert_eq!(
            ours.get("redis_number_of_distinct_key_groups", &[("db", "db0")]),
            Some(5.0),
            "user, sessiona, sessionb, cart, unclassified"
        );
        if max == 2 {
            assert_eq!(ours_groups.len(), 2 * 3 + 1, "two groups and overflow");
            assert!(count("overflow").is_some());
        } else {
            assert_eq!(count("unclassified"), Some(3.0));
            assert_eq!(count("sessiona"), Some(10.0));
        }
        assert!(
            ours.get("redis_last_key_groups_scrape_duration_milliseconds", &[])
                .is_some()
        );
    }
}
