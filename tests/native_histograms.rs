//! `[metrics] latency_histograms`: each command's LATENCY HISTOGRAM as a
//! Prometheus native histogram, pushed to a real Prometheus (2.42, native
//! histograms on) and read back: its count, buckets and quantiles against
//! the server's own histogram, and beside the classic series with `both`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::fault_receiver::{Fault, FaultReceiver};
use common::servers::{Agent, Native, Receiver, Redis, push_config};
use common::{wait_until, when};

/// Redis' key of its histogram level `k` in µs (see `metrics/native.rs`):
/// the level is native bucket `k`, (2^(k−1), 2^k] µs.
fn redis_key(k: u32) -> u64 {
    ((1u64 << (10 + k)) + (1u64 << (3 + k)) - 1) / 1000
}

fn level_of(key: &str) -> u32 {
    let key: u64 = key.parse().expect("a key");
    (0..52)
        .find(|&k| redis_key(k) == key)
        .unwrap_or_else(|| panic!("{key} is no level's key"))
}

/// The native bucket index of a bucket the query API shows.
fn index_of(bucket: &(f64, f64, f64)) -> i32 {
    let (lower, upper, _) = *bucket;
    assert_eq!(upper, 2.0 * lower, "a schema-0 bucket: {bucket:?}");
    upper.log2() as i32
}

/// The server's calls per level, by the native bucket index of the level.
fn level_counts(levels: &[(String, f64)]) -> BTreeMap<i32, f64> {
    let mut below = 0.0;
    let mut counts = BTreeMap::new();
    for (key, cumulative) in levels {
        counts.insert(level_of(key) as i32, cumulative - below);
        below = *cumulative;
    }
    counts
}

/// A native histogram's count per bucket index, as the query API shows it.
fn native_counts(h: &Native) -> BTreeMap<i32, f64> {
    h.buckets.iter().map(|b| (index_of(b), b.2)).collect()
}

/// `histogram_quantile(0.99)` of SET lies in (2^(k−1), 2^k], k being the
/// server's level that holds the 99th percentile: the first whose count
/// of calls at or below reaches 99% (by index: see `redis_key`).
fn assert_p99_in_the_servers_bucket(prometheus: &Receiver, calls: f64, levels: &[(String, f64)]) {
    let (key, _) = levels
        .iter()
        .find(|(_, cumulative)| *cumulative >= 0.99 * calls)
        .expect("a level holds the 99th percentile");
    let k = level_of(key) as i32;
    let (lower, upper) = (2f64.powi(k - 1), 2f64.powi(k));
    let q =
        prometheus.query("histogram_quantile(0.99, redis_commands_latencies_usec{cmd=\"set\"})");
    let q = q.first().map(|q| q.1).expect("a quantile");
    assert!(
        lower <= q && q <= upper,
        "{q} not in ({lower}, {upper}] (level {key})"
    );
}

fn set_histogram(prometheus: &Receiver, calls: f64) -> Native {
    wait_until(
        "the native histogram of SET",
        Duration::from_secs(60),
        || {
            let found = prometheus.native_histograms("redis_commands_latencies_usec{cmd=\"set\"}");
            let ok = matches!(&found[..], [(_, h)] if h.count == calls);
            when(ok, found.first().map(|f| f.1.clone()), || {
                format!("{found:?}")
            })
        },
    )
    .expect("one histogram")
}

fn start(mode: &str) -> (Redis, Receiver, Agent, f64, Vec<(String, f64)>) {
    let redis = Redis::start(&[]);
    redis.cli(&["-r", "700", "SET", "k", "v"]);
    let (calls, levels) = redis.latency_histogram("set");
    assert_eq!(calls, 700.0);
    let prometheus = Receiver::prometheus_native("");
    let extra = format!("[metrics]\nlatency_histograms = \"{mode}\"\ndetail_interval = \"0s\"\n");
    let config = push_config(&[redis.url()], &prometheus.write_url(), &extra);
    let agent = Agent::start(&config, &[]);
    (redis, prometheus, agent, calls, levels)
}

#[test]
fn native_histograms_arrive_with_the_servers_counts_and_buckets() {
    let (redis, prometheus, _agent, calls, levels) = start("native");
    let h = set_histogram(&prometheus, calls);
    // Bucket for level: each of the server's levels is its native bucket.
    assert_eq!(native_counts(&h), level_counts(&levels), "{levels:?}");
    assert_eq!(h.sum, redis.cmdstat_usec("set"));

    let count = prometheus.query("histogram_count(redis_commands_latencies_usec{cmd=\"set\"})");
    assert_eq!(count.first().map(|c| c.1), Some(calls), "{count:?}");
    assert_p99_in_the_servers_bucket(&prometheus, calls, &levels);
    // With `native` alone there is no classic series.
    let classic = prometheus.query("redis_commands_latencies_usec_bucket");
    assert!(classic.is_empty(), "{classic:?}");

    // The server forgets SET's histogram: the series ends at once (a stale
    // marker), not five minutes later.
    redis.cli(&["CONFIG", "RESETSTAT"]);
    wait_until("the SET histogram ended", Duration::from_secs(30), || {
        let found = prometheus.native_histograms("redis_commands_latencies_usec{cmd=\"set\"}");
        when(found.is_empty(), (), || format!("{found:?}"))
    });
    let info = prometheus.native_histograms("redis_commands_latencies_usec{cmd=\"info\"}");
    assert_eq!(info.len(), 1, "the agent's own INFO goes on: {info:?}");
}

#[test]
fn with_both_the_classic_buckets_agree_with_the_native_ones() {
    let (_redis, prometheus, _agent, calls, levels) = start("both");
    let h = set_histogram(&prometheus, calls);
    let classic = |le: &str| {
        let q = format!("redis_commands_latencies_usec_bucket{{cmd=\"set\",le=\"{le}\"}}");
        let found = prometheus.query(&q);
        found.first().map(|f| f.1)
    };
    assert_eq!(classic("+Inf"), Some(calls));
    for (key, cumulative) in &levels {
        let k = level_of(key) as i32;
        // Calls at or below Redis' key: the native buckets up to its level.
        let native: f64 = h
            .buckets
            .iter()
            .filter(|b| index_of(b) <= k)
            .map(|b| b.2)
            .sum();
        assert_eq!(native, *cumulative, "level {key}");
        assert_eq!(classic(key), Some(*cumulative), "le={key}");
    }
    let count = prometheus.query("redis_commands_latencies_usec_count{cmd=\"set\"}");
    assert_eq!(count.first().map(|c| c.1), Some(h.count));
    let sum = prometheus.query("redis_commands_latencies_usec_sum{cmd=\"set\"}");
    assert_eq!(sum.first().map(|c| c.1), Some(h.sum));
}

/// An agent config for `redis` pushing to `write_url` every second, with
/// native histograms and every reading complete (they come with complete
/// readings), retrying at once.
fn native_config(redis: &Redis, write_url: &str) -> String {
    format!(
        "interval = \"1s\"\nadaptive = false\n[metrics]\nlatency_histograms = \"native\"\ndetail_interval = \"0s\"\n[[targets]]\nurl = \"{}\"\n[remote_write]\nurl = \"{write_url}\"\nflush_deadline = \"1s\"\nmax_backoff = \"1s\"\n",
        redis.url()
    )
}

/// The timestamps of the SET histogram's samples the receiver accepted, in
/// the order they came.
fn accepted_histograms(receiver: &FaultReceiver, before_ms: i64) -> Vec<i64> {
    receiver.with_received(|received| {
        received
            .iter()
            .filter(|r| r.answered == Fault::Status(204))
            .flat_map(|r| r.request.timeseries.iter())
            .filter(|ts| {
                ts.labels
                    .iter()
                    .any(|l| l.name == "cmd" && l.value == "set")
            })
            .flat_map(|ts| ts.histograms.iter())
            .map(|h| h.timestamp)
            .filter(|&t| t < before_ms)
            .collect()
    })
}

#[test]
fn kill_9_during_an_outage_loses_no_native_histogram() {
    let redis = Redis::start(&[]);
    redis.cli(&["-r", "50", "SET", "k", "v"]);
    let receiver = FaultReceiver::start(vec![], Fault::Status(503));
    let config = native_config(&redis, &receiver.url);
    let agent = Agent::start(&config, &[]);
    // Eight readings refused and queued, then the kill.
    redis.watch().wait_for_samples(8);
    let dir = agent.kill();
    let killed_at = redpush::testing::now_ms();
    assert!(accepted_histograms(&receiver, i64::MAX).is_empty());

    receiver.set_mode(Fault::Status(204));
    let _agent = Agent::start_in(dir, &config, &[]);
    let delivered = wait_until(
        "histograms from after the kill",
        Duration::from_secs(30),
        || {
            let got = accepted_histograms(&receiver, i64::MAX);
            when(
                got.iter().any(|&t| t > killed_at + 2000),
                got.clone(),
                || format!("{got:?}"),
            )
        },
    );
    // Every reading before the kill (one a second) arrived once, in order.
    let before: Vec<i64> = delivered
        .iter()
        .copied()
        .filter(|&t| t < killed_at)
        .collect();
    assert!(before.len() >= 7, "{before:?}");
    assert!(
        delivered.windows(2).all(|w| w[0] < w[1]),
        "out of order or duplicated: {delivered:?}"
    );
    assert!(
        before.windows(2).all(|w| w[1] - w[0] <= 1600),
        "a gap: {before:?}"
    );
}

#[test]
fn prometheus_stopped_gets_every_native_histogram_in_order() {
    let redis = Redis::start(&[]);
    redis.cli(&["-r", "50", "SET", "k", "v"]);
    let mut prometheus = Receiver::prometheus_native("");
    let agent = Agent::start(&native_config(&redis, &prometheus.write_url()), &[]);
    let started = std::time::Instant::now();
    set_histogram(&prometheus, 50.0);

    prometheus.process.terminate();
    agent.wait_page_within("a backlog 20 s old", Duration::from_secs(60), |page| {
        page.total("redpush_queue_oldest_sample_age_seconds", &[])
            .is_some_and(|age| age >= 20.0)
    });
    prometheus = prometheus.restart();
    let back = redpush::testing::now_ms();
    let selector = "redis_commands_latencies_usec{cmd=\"set\"}";
    let window = wait_until(
        "a histogram taken after the return",
        Duration::from_secs(60),
        || {
            let window = started.elapsed().as_secs() + 5;
            let samples = prometheus.native_samples(&format!("{selector}[{window}s]"));
            let last = samples.last().map_or(0, |s| s.0);
            when(last > back, (window, samples.clone()), || {
                format!("{samples:?}")
            })
        },
    );
    let (seconds, samples) = window;
    // One a second over the whole run, outage included, each with the counts.
    assert!(
        samples.len() as u64 >= seconds - 10,
        "{} histograms over {seconds} s: {samples:?}",
        samples.len()
    );
    assert!(
        samples
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[1].0 - w[0].0 <= 1600)
    );
    assert!(samples.iter().all(|s| s.1.count == 50.0), "{samples:?}");
    let log = prometheus.process.output().to_lowercase();
    assert!(
        !log.contains("out of order") && !log.contains("out of bounds"),
        "{log}"
    );
}

#[test]
fn a_prometheus_scrape_negotiates_protobuf_and_gets_the_native_histograms() {
    let redis = Redis::start(&[]);
    redis.cli(&["-r", "300", "SET", "k", "v"]);
    let (calls, levels) = redis.latency_histogram("set");
    let config = format!(
        "[metrics]\nlatency_histograms = \"native\"\ndetail_interval = \"0s\"\n[[targets]]\nurl = \"{}\"\n",
        redis.url()
    );
    let agent = Agent::start(&config, &[]);
    let scrape = format!(
        "scrape_configs:\n  - job_name: redpush\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        agent.listen
    );
    let prometheus = Receiver::prometheus_native(&scrape);
    let h = set_histogram(&prometheus, calls);
    assert_eq!(native_counts(&h), level_counts(&levels), "{levels:?}");
    // Floats and the agent's own series come in the same format.
    let up = prometheus.query("redis_up{job=\"redpush\"}");
    assert_eq!(up.first().map(|u| u.1), Some(1.0), "{up:?}");
    let build = prometheus.query("redpush_build_info");
    assert_eq!(build.len(), 1, "{build:?}");
    let commands = prometheus.query("redis_commands_total{cmd=\"set\"}");
    assert_eq!(commands.first().map(|c| c.1), Some(calls), "{commands:?}");
    assert_p99_in_the_servers_bucket(&prometheus, calls, &levels);
}

#[test]
fn the_latency_alert_example_goes_pending_for_a_slow_command_only() {
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/prometheus/native-histogram-alerts.yml");
    let redis = Redis::start(&["--enable-debug-command", "yes"]);
    redis.cli(&["-r", "1000", "SET", "k", "v"]);
    let prometheus = Receiver::prometheus_native(&format!(
        "  evaluation_interval: 1s\nrule_files:\n  - {}\n",
        rules.display()
    ));
    let extra = "[metrics]\nlatency_histograms = \"native\"\ndetail_interval = \"0s\"\n";
    let config = push_config(&[redis.url()], &prometheus.write_url(), extra);
    let _agent = Agent::start(&config, &[]);
    set_histogram(&prometheus, 1000.0);
    // A hundred calls of 20 ms, now that the series has a sample before them.
    redis.cli(&["-r", "100", "DEBUG", "SLEEP", "0.02"]);
    redis.cli(&["-r", "1000", "SET", "k", "v"]);
    let pending = "ALERTS{alertname=\"RedisCommandLatencyHigh\",alertstate=\"pending\"}";
    let alerts = common::servers::eventually(
        "the alert pending for DEBUG",
        Duration::from_secs(60),
        || prometheus.query(pending),
        |found| !found.is_empty(),
    );
    let commands: Vec<&str> = alerts
        .iter()
        .map(|(labels, _)| labels["cmd"].as_str())
        .collect();
    assert_eq!(commands, ["debug"], "{alerts:?}");
}
