//! Complete and fast readings: with an interval shorter than
//! `detail_interval`, the costly part (INFO ALL, LATENCY HISTOGRAM) is read
//! once per `detail_interval` and the samples in between read the fast
//! sections only, without ending the detail series anywhere.

mod common;

use std::time::Duration;

use common::exposition::Page;
use common::servers::{Agent, Receiver, Redis, eventually};

/// `calls=` of one command in the server's commandstats.
fn calls(redis: &Redis, cmd: &str) -> u64 {
    let stats = redis.cli(&["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("cmdstat_{cmd}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn detail_is_read_once_per_detail_interval_and_never_goes_stale() {
    let redis = Redis::start(&[]);
    let receiver = Receiver::prometheus();
    let config = format!(
        "interval = \"1s\"\nadaptive = false\n[metrics]\ndetail_interval = \"3s\"\n[[targets]]\nurl = \"{}\"\n[remote_write]\nurl = \"{}\"\nflush_deadline = \"1s\"\n",
        redis.url(),
        receiver.write_url()
    );
    let agent = Agent::start(&config, &[]);
    let selector = format!("instance=\"{}\"", redis.instance());
    eventually(
        "redis_up arrives",
        Duration::from_secs(30),
        || receiver.query(&format!("redis_up{{{selector}}}")),
        |r| r.len() == 1,
    );

    // What the server saw: every sample is an INFO, one in three a
    // complete one with LATENCY HISTOGRAM.
    redis.cli(&["CONFIG", "RESETSTAT"]);
    // Every page between complete readings still shows the detail series.
    for _ in 0..12 {
        let page = Page::parse(&agent.metrics());
        assert!(
            page.names().contains("redis_instance_info"),
            "page lacks redis_instance_info"
        );
        assert!(
            page.names().contains("redis_commands_total"),
            "page lacks redis_commands_total"
        );
        assert!(page.names().contains("redis_memory_used_bytes"));
        std::thread::sleep(Duration::from_millis(750));
    }
    let info = calls(&redis, "info");
    let histogram = calls(&redis, "latency|histogram");
    assert!((7..=11).contains(&info), "{info} INFO calls in 9 s");
    assert!(
        (2..=4).contains(&histogram),
        "{histogram} LATENCY HISTOGRAM calls in 9 s (INFO: {info})"
    );

    // What the receiver got: fast series every second, detail series every
    // three, and no stale marker in between (an instant query would come
    // back empty right after one).
    let window = "[9s] offset 3s";
    let fast = receiver.query(&format!(
        "count_over_time(redis_memory_used_bytes{{{selector}}}{window})"
    ));
    let detail = receiver.query(&format!(
        "count_over_time(redis_commands_total{{{selector},cmd=\"info\"}}{window})"
    ));
    assert!(
        fast.len() == 1 && fast[0].1 >= 8.0,
        "fast samples: {fast:?}"
    );
    assert!(
        detail.len() == 1 && (2.0..=4.0).contains(&detail[0].1),
        "detail samples: {detail:?}"
    );
    for _ in 0..8 {
        let info = receiver.query(&format!("redis_instance_info{{{selector}}}"));
        assert_eq!(info.len(), 1, "redis_instance_info went stale: {info:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
