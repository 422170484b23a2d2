//! Nothing lost, nothing out of order: redpush at a 1 s interval in front of
//! a receiver that fails (503 for 20 s), across a `kill -9` during an
//! outage, and in front of a real Prometheus that is stopped for 60 s.

mod common;

use std::time::Duration;

use common::exposition::Page;
use common::fault_receiver::{Fault, FaultReceiver};
use common::servers::{Agent, Receiver, Redis, redpush_run};
use common::{wait_until, when};

fn config(redis: &Redis, write_url: &str) -> String {
    format!(
        "interval = \"1s\"\nadaptive = false\n[[targets]]\nurl = \"{}\"\n[remote_write]\nurl = \"{write_url}\"\nflush_deadline = \"1s\"\nmax_backoff = \"1s\"\n",
        redis.url()
    )
}

fn now_ms() -> i64 {
    redpush::testing::now_ms()
}

/// Waits until the receiver has accepted a `redis_up` sample taken after `after_ms`.
fn wait_accepted_after(receiver: &FaultReceiver, instance: &str, after_ms: i64, timeout: Duration) {
    wait_until(&format!("redis_up after {after_ms}"), timeout, || {
        let up = receiver.accepted("redis_up", &[("instance", instance)]);
        when(up.iter().any(|(ts, _)| *ts > after_ms), (), || {
            format!("{up:?}")
        })
    });
}

/// Waits until the agent's queue holds samples at least `seconds` old.
fn wait_backlog_age(agent: &Agent, seconds: f64) -> Page {
    let timeout = Duration::from_secs_f64(seconds + 30.0);
    agent.wait_page_within(&format!("a backlog {seconds} s old"), timeout, |page| {
        page.total("redpush_queue_oldest_sample_age_seconds", &[])
            .is_some_and(|age| age >= seconds)
    })
}

/// Accepted samples of `redis_up`: strictly increasing (so in order and no
/// duplicates), all 1, and no gap longer than `max_gap_ms`.
fn assert_continuous(samples: &[(i64, f64)], max_gap_ms: i64) {
    assert!(samples.len() > 5, "{samples:?}");
    for pair in samples.windows(2) {
        assert!(
            pair[0].0 < pair[1].0,
            "out of order or duplicated: {pair:?}"
        );
        assert!(
            pair[1].0 - pair[0].0 <= max_gap_ms,
            "gap of {} ms: {pair:?}",
            pair[1].0 - pair[0].0
        );
    }
    assert!(samples.iter().all(|(_, v)| *v == 1.0), "{samples:?}");
}

#[test]
fn a_20_second_outage_loses_nothing_and_keeps_order() {
    let redis = Redis::start(&[]);
    let receiver = FaultReceiver::start(vec![], Fault::Status(204));
    let agent = Agent::start(&config(&redis, &receiver.url), &[]);
    let instance = redis.instance();
    wait_accepted_after(&receiver, &instance, 0, Duration::from_secs(30));

    receiver.set_mode(Fault::Status(503));
    let outage_start = now_ms();
    // The outage lasts until the agent's backlog is 21 s old (its oldest
    // sample may be from just before the receiver failed).
    let page = wait_backlog_age(&agent, 21.0);
    assert!(
        page.total("redpush_queue_samples", &[])
            .is_some_and(|n| n > 1000.0),
        "a backlog builds up"
    );
    receiver.set_mode(Fault::Status(204));
    let outage_end = now_ms();
    wait_accepted_after(&receiver, &instance, outage_end, Duration::from_secs(30));

    let up = receiver.accepted("redis_up", &[("instance", &instance)]);
    assert_continuous(&up, 1600);
    let during = up
        .iter()
        .filter(|(ts, _)| *ts > outage_start && *ts < outage_end)
        .count();
    assert!(
        during >= 18,
        "only {during} samples from the 20 s outage arrived"
    );
    // Retries were made, and every one was of a batch that had been refused.
    let page = Page::parse(&agent.metrics());
    assert!(
        page.total("redpush_send_errors_total", &[("status", "503")])
            .is_some_and(|n| n >= 5.0)
    );
    assert_eq!(
        page.total("redpush_samples_dropped_total", &[("reason", "rejected")]),
        Some(0.0)
    );
    assert_eq!(
        page.total("redpush_samples_dropped_total", &[("reason", "queue_full")]),
        Some(0.0)
    );
    // The log said so at the default level: at once, not once per retry,
    // and once more when delivery came back.
    let log = wait_for_log(&agent, "remote write delivering again after");
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains("remote write"))
        .collect();
    assert!(
        (1..=3).contains(&warnings.len()),
        "{} warnings for a 20 s outage:\n{log}",
        warnings.len()
    );
    assert!(warnings[0].contains("503"), "{log}");
}

/// Waits until the agent's log holds `text`; returns the log.
fn wait_for_log(agent: &Agent, text: &str) -> String {
    wait_until(
        &format!("the log line {text:?}"),
        Duration::from_secs(30),
        || {
            let log = agent.process.output();
            when(log.contains(text), log.clone(), || log)
        },
    )
}

#[test]
fn kill_9_during_an_outage_loses_nothing_that_was_queued() {
    let redis = Redis::start(&[]);
    let receiver = FaultReceiver::start(vec![], Fault::Status(503));
    let agent = Agent::start(&config(&redis, &receiver.url), &[]);
    let instance = redis.instance();
    // Eight readings refused and queued, then the kill.
    redis.watch().wait_for_samples(8);
    let state = agent.state_dir();
    let dir = agent.kill();
    let killed_at = now_ms();

    // What the log holds after the kill, read by `redpush wal inspect`.
    let (code, inspect, err) = redpush_run(&[
        "wal",
        "inspect",
        "--state-dir",
        state.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let pending_samples: usize = inspect
        .lines()
        .find_map(|l| l.strip_prefix("pending: "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|s| s.strip_suffix(" samples"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pending line in:\n{inspect}"));
    assert!(pending_samples > 1000, "{inspect}");
    assert_eq!(
        receiver.accepted("redis_up", &[]).len(),
        0,
        "nothing was accepted before the kill"
    );

    receiver.set_mode(Fault::Status(204));
    let _agent = Agent::start_in(dir, &config(&redis, &receiver.url), &[]);
    wait_accepted_after(
        &receiver,
        &instance,
        killed_at + 2000,
        Duration::from_secs(30),
    );

    let up = receiver.accepted("redis_up", &[("instance", &instance)]);
    let before_kill: Vec<(i64, f64)> = up
        .iter()
        .copied()
        .filter(|(ts, _)| *ts < killed_at)
        .collect();
    assert!(before_kill.len() >= 7, "{before_kill:?}");
    assert_continuous(&before_kill, 1600);
    // Every sample that was in the log was delivered, once.
    let delivered_before_kill: usize = receiver.with_received(|received| {
        received
            .iter()
            .filter(|r| r.answered == Fault::Status(204))
            .flat_map(|r| r.request.timeseries.iter())
            .flat_map(|ts| ts.samples.iter())
            .filter(|s| s.timestamp < killed_at)
            .count()
    });
    assert_eq!(delivered_before_kill, pending_samples);
    // And the run after the restart continues the series in order.
    let all = receiver.accepted("redis_up", &[("instance", &instance)]);
    assert!(
        all.windows(2).all(|w| w[0].0 < w[1].0),
        "out of order across the restart"
    );
}

#[test]
fn prometheus_stopped_for_a_minute_gets_everything_in_order() {
    let redis = Redis::start(&[]);
    let mut prometheus = Receiver::prometheus();
    let agent = Agent::start(&config(&redis, &prometheus.write_url()), &[]);
    let started = std::time::Instant::now();
    let instance = redis.instance();
    let selector = format!("redis_up{{instance=\"{instance}\"}}");
    common::servers::eventually(
        "first sample",
        Duration::from_secs(15),
        || prometheus.query(&selector),
        |r| r.len() == 1,
    );

    // Stop Prometheus until the agent's backlog is a minute old, and bring
    // it back on the same port and data.
    prometheus.process.terminate();
    wait_backlog_age(&agent, 60.0);
    prometheus = prometheus.restart();
    let back = now_ms() as f64 / 1000.0;

    // Wait until the backlog has drained (the agent's queue holds only
    // fresh samples) and a sample taken after the return has arrived.
    agent.wait_page("the backlog drained", |page| {
        page.total("redpush_queue_oldest_sample_age_seconds", &[])
            .is_some_and(|age| age < 5.0)
    });
    common::servers::eventually(
        "a sample taken after Prometheus came back",
        Duration::from_secs(30),
        || prometheus.query(&format!("timestamp({selector})")),
        |r| r.len() == 1 && r[0].1 > back,
    );
    // No gap: one sample per second over the whole run, outage included.
    let window = started.elapsed().as_secs() - 2;
    let count = prometheus.query(&format!("count_over_time({selector}[{window}s])"));
    assert_eq!(count.len(), 1, "{count:?}");
    assert!(
        count[0].1 >= (window - 3) as f64,
        "{} samples over {window} s",
        count[0].1
    );
    let page = Page::parse(&agent.metrics());
    assert_eq!(
        page.total("redpush_samples_dropped_total", &[("reason", "rejected")]),
        Some(0.0)
    );
    let log = prometheus.process.output().to_lowercase();
    assert!(
        !log.contains("out of order") && !log.contains("out of bounds"),
        "{log}"
    );
}
