//! The whole pipeline into real receivers: redpush at a 1 s interval
//! pushing to Prometheus (remote-write receiver) and to VictoriaMetrics,
//! read back with PromQL over their HTTP APIs.

mod common;

use std::time::Duration;

use common::exposition::Page;
use common::servers::{Agent, Receiver, Redis, eventually, push_config};

type QueryFn<'a> = Box<dyn Fn(&str) -> Vec<(std::collections::BTreeMap<String, String>, f64)> + 'a>;

fn agent_config(redis: &Redis, write_url: &str) -> String {
    push_config(
        &[redis.url()],
        write_url,
        "[external_labels]\nsite = \"edge-1\"",
    )
}

/// Fills two databases so that the sum of `redis_db_keys` has a known value.
fn fill(redis: &Redis) -> f64 {
    for i in 0..30 {
        redis.cli(&["SET", &format!("k{i}"), "v"]);
    }
    for i in 0..7 {
        redis.cli(&["-n", "2", "SET", &format!("k{i}"), "v"]);
    }
    let db0: f64 = redis.cli(&["DBSIZE"]).parse().expect("DBSIZE");
    let db2: f64 = redis.cli(&["-n", "2", "DBSIZE"]).parse().expect("DBSIZE");
    db0 + db2
}

/// The checks both receivers must pass.
fn check_receiver(redis: &Redis, agent: &Agent, query: QueryFn<'_>) {
    let instance = redis.instance();
    let selector = format!("instance=\"{instance}\",job=\"redis\",site=\"edge-1\"");
    let timeout = Duration::from_secs(30);

    let up = eventually(
        "redis_up",
        timeout,
        || query(&format!("redis_up{{{selector}}}")),
        |r| r.len() == 1,
    );
    assert_eq!(up[0].1, 1.0);

    let expected_keys = fill(redis);
    assert_eq!(expected_keys, 37.0);
    eventually(
        "sum(redis_db_keys) equal to DBSIZE",
        timeout,
        || query(&format!("sum(redis_db_keys{{{selector}}})")),
        |r| r.len() == 1 && r[0].1 == expected_keys,
    );

    // Under load, the command counters grow between samples.
    let load = redis.load(4);
    // Command stats come with the complete readings, every `detail_interval`
    // (10 s by default), so the rate window must hold two of them.
    let rate = eventually(
        "rate(redis_commands_total) under load",
        Duration::from_secs(60),
        || {
            query(&format!(
                "sum(rate(redis_commands_total{{{selector},cmd=\"set\"}}[25s]))"
            ))
        },
        |r| r.len() == 1 && r[0].1 > 100.0,
    );
    drop(load);
    assert!(rate[0].1 > 100.0);

    // Counters and the agent's own metrics arrive too.
    let processed = query(&format!("redis_commands_processed_total{{{selector}}}"));
    assert!(
        processed.len() == 1 && processed[0].1 > 1000.0,
        "{processed:?}"
    );
    let sent = eventually(
        "redpush_samples_sent_total",
        timeout,
        || query("redpush_samples_sent_total{site=\"edge-1\"}"),
        |r| r.len() == 1 && r[0].1 > 0.0,
    );
    assert_eq!(sent[0].0.get("job").map(String::as_str), Some("redis"));

    // The pull endpoint shows the same target, without an instance label.
    let page = Page::parse(&agent.metrics());
    assert_eq!(page.get("redis_up", &[]), Some(1.0));
    assert_eq!(page.get("redis_db_keys", &[("db", "db2")]), Some(7.0));
    assert_eq!(
        page.total("redpush_samples_dropped_total", &[("reason", "rejected")]),
        Some(0.0)
    );
    assert!(
        page.total("redpush_samples_sent_total", &[])
            .is_some_and(|n| n > 0.0)
    );
}

#[test]
fn pushes_to_a_prometheus_receiver() {
    let redis = Redis::start(&[]);
    let prometheus = Receiver::prometheus();
    let agent = Agent::start(&agent_config(&redis, &prometheus.write_url()), &[]);
    check_receiver(&redis, &agent, Box::new(|q| prometheus.query(q)));
    // Prometheus logs out-of-order and out-of-bounds samples it refused.
    let log = prometheus.process.output();
    let lower = log.to_lowercase();
    assert!(
        !lower.contains("out of order") && !lower.contains("out of bounds"),
        "{log}"
    );
}

#[test]
fn pushes_to_victoria_metrics() {
    let redis = Redis::start(&[]);
    let vm = Receiver::victoria_metrics();
    let agent = Agent::start(&agent_config(&redis, &vm.write_url()), &[]);
    check_receiver(&redis, &agent, Box::new(|q| vm.query(q)));
}

#[test]
fn once_pushes_one_reading_with_remote_write() {
    let redis = Redis::start(&[]);
    redis.cli(&["SET", "a", "1"]);
    let prometheus = Receiver::prometheus();
    let (code, out, err) = common::servers::redpush_run(&[
        "once",
        "--redis",
        &redis.url(),
        "--remote-write",
        &prometheus.write_url(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "once --remote-write prints nothing: {out}");
    let keys = eventually(
        "redis_db_keys from once",
        Duration::from_secs(15),
        || {
            prometheus.query(&format!(
                "redis_db_keys{{instance=\"{}\",db=\"db0\"}}",
                redis.instance()
            ))
        },
        |r| r.len() == 1,
    );
    assert_eq!(keys[0].1, 1.0);

    // An endpoint that refuses the request: exit 3, not 0.
    let bad = format!("http://127.0.0.1:{}/no-such-path", prometheus.port);
    let (code, _, err) =
        common::servers::redpush_run(&["once", "--redis", &redis.url(), "--remote-write", &bad]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("answered 404"), "{err}");
}

#[test]
fn agent_stops_cleanly_on_sigterm() {
    let redis = Redis::start(&[]);
    let mut agent = Agent::start(
        &format!(
            "interval = \"1s\"\nadaptive = false\n[[targets]]\nurl = \"{}\"\n",
            redis.url()
        ),
        &[],
    );
    let page = Page::parse(&agent.metrics());
    assert!(page.get("redis_up", &[]).is_some());
    assert_eq!(
        agent.process.terminate(),
        Some(0),
        "{}",
        agent.process.output()
    );
}

#[test]
fn a_vanished_series_ends_at_once_in_prometheus() {
    let redis = Redis::start(&[]);
    redis.cli(&["LPUSH", "list", "x"]);
    let prometheus = Receiver::prometheus();
    let _agent = Agent::start(&agent_config(&redis, &prometheus.write_url()), &[]);
    let lpush = format!(
        "redis_commands_total{{instance=\"{}\",cmd=\"lpush\"}}",
        redis.instance()
    );
    eventually(
        "the lpush series",
        Duration::from_secs(30),
        || prometheus.query(&lpush),
        |r| r.len() == 1,
    );

    // Resetting the stats removes the cmdstat_lpush line: the series is gone.
    redis.cli(&["CONFIG", "RESETSTAT"]);
    // Without a stale marker Prometheus would keep answering for five
    // minutes; with it the series ends at the next complete reading (within
    // detail_interval, 10 s), which a busy machine may delay a little.
    eventually(
        "the lpush series to end",
        Duration::from_secs(40),
        || prometheus.query(&lpush),
        |r| r.is_empty(),
    );
    let up = prometheus.query(&format!("redis_up{{instance=\"{}\"}}", redis.instance()));
    assert_eq!(up.len(), 1, "redis_up must go on: {up:?}");
}
