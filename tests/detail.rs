//! Complete and fast readings: with an interval shorter than
//! `detail_interval`, the costly part (INFO ALL, LATENCY HISTOGRAM) is read
//! once per `detail_interval` and the samples in between read the fast
//! sections only, without ending the detail series anywhere.

mod common;

use std::time::Duration;

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

    // What the server saw over the next nine samples: every sample is an
    // INFO, one in three a complete one with LATENCY HISTOGRAM. After each
    // sample the page still shows the detail series.
    let start = unix_now();
    let mut watch = redis.watch();
    let mut served = watch.wait_for_samples(0);
    for n in 1..=9 {
        served = watch.wait_for_samples(n);
        let page = agent.wait_page("a page", |_| true);
        for name in [
            "redis_instance_info",
            "redis_commands_total",
            "redis_memory_used_bytes",
        ] {
            assert!(page.names().contains(name), "page lacks {name}");
        }
    }
    let end = unix_now();
    let (info, histogram) = (served.info_calls, served.histogram_calls);
    assert!(
        (2..=4).contains(&histogram),
        "{histogram} LATENCY HISTOGRAM calls in {info} samples"
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
    // No stale marker in between: evaluated every half second over the
    // window, the detail series never comes back empty (it would right
    // after a marker).
    let steps = receiver.query_range(
        &format!("redis_instance_info{{{selector}}}"),
        start,
        end,
        "0.5",
    );
    assert_eq!(steps.len(), 1, "{steps:?}");
    let evaluated = ((end - start) / 0.5).floor() as usize + 1;
    assert_eq!(
        steps[0].1.len(),
        evaluated,
        "redis_instance_info went stale in the window: {steps:?}"
    );
}
