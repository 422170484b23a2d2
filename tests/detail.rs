//! Complete and fast readings: with an interval shorter than
//! `detail_interval`, the costly part (INFO ALL, LATENCY HISTOGRAM) is read
//! once per `detail_interval` and the samples in between read the fast
//! sections only, without ending the detail series anywhere.

mod common;

use std::time::Duration;

use common::exposition::Page;
use common::servers::{Agent, Receiver, Redis, eventually};

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Timestamps of one series' raw samples in the `window` seconds before `end`.
fn samples(receiver: &Receiver, metric: &str, selector: &str, window: f64, end: f64) -> Vec<f64> {
    // `metric` may carry its own matchers: merge them with the instance's.
    let matchers = match metric.split_once('{') {
        Some((name, rest)) => format!("{name}{{{selector},{rest}"),
        None => format!("{metric}{{{selector}}}"),
    };
    let series = receiver.raw_samples(&format!("{matchers}[{window}s]"), end);
    assert!(series.len() <= 1, "{matchers}: {series:?}");
    series
        .into_iter()
        .flat_map(|(_, points)| points.into_iter().map(|(t, _)| t))
        .collect()
}

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
    let start = unix_now();
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
    let end = unix_now();
    assert!((7..=11).contains(&info), "{info} INFO calls in 9 s");
    assert!(
        (2..=4).contains(&histogram),
        "{histogram} LATENCY HISTOGRAM calls in 9 s (INFO: {info})"
    );

    // What the receiver got over the same seconds: fast series every
    // second, detail series every three. The window is read back only once
    // a later sample has arrived, so delivery latency on a busy machine
    // does not shorten it.
    eventually(
        "a sample after the window arrives",
        Duration::from_secs(30),
        || receiver.query(&format!("timestamp(redis_memory_used_bytes{{{selector}}})")),
        |r| r.len() == 1 && r[0].1 > end,
    );
    let window = (end - start).floor();
    let fast = samples(&receiver, "redis_memory_used_bytes", &selector, window, end);
    let detail = samples(
        &receiver,
        "redis_commands_total{cmd=\"info\"}",
        &selector,
        window,
        end,
    );
    // At most one tick in four lost to a starved test machine; the detail
    // series must still arrive at a third of that rate.
    assert!(
        fast.len() as f64 >= window * 0.75,
        "{} fast samples in {window} s: {fast:?}",
        fast.len()
    );
    let expected_detail = window / 3.0;
    assert!(
        (detail.len() as f64 - expected_detail).abs() <= 1.5,
        "{} detail samples in {window} s, expected about {expected_detail}: {detail:?}",
        detail.len()
    );
    assert!(
        fast.len() >= 2 * detail.len(),
        "fast ({}) not read more often than detail ({})",
        fast.len(),
        detail.len()
    );
    // No stale marker in between (an instant query would come back empty
    // right after one).
    for _ in 0..8 {
        let info = receiver.query(&format!("redis_instance_info{{{selector}}}"));
        assert_eq!(info.len(), 1, "redis_instance_info went stale: {info:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
