//! Parallel requests (`max_shards`): against a receiver that answers
//! after 100 ms, a load one request at a time cannot carry keeps up when
//! the sender may send several at once, and every series' samples still
//! arrive in time order.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::exposition::Page;
use common::fault_receiver::{Fault, FaultReceiver};
use common::servers::{Agent, Redis};
use common::{wait_until, when};

/// A target read completely every 100 ms (about 6,000 samples a second),
/// sent 100 samples a request: one request in flight carries 1,000 a second.
fn config(redis: &Redis, url: &str, shards: usize) -> String {
    format!(
        "interval = \"100ms\"\nmin_interval = \"100ms\"\nadaptive = false\n\
         [metrics]\ndetail_interval = \"0s\"\n\
         [[targets]]\nurl = \"{}\"\n\
         [remote_write]\nurl = \"{url}\"\nflush_deadline = \"1s\"\n\
         max_samples_per_send = 100\nmax_shards = {shards}\nsend_metadata = false\n",
        redis.url()
    )
}

fn queued(page: &Page) -> f64 {
    page.total("redpush_queue_samples", &[]).unwrap_or(0.0)
}

#[test]
fn a_slow_receiver_is_kept_up_with_by_parallel_requests_in_order() {
    let redis = Redis::start(&[]);

    // One request at a time: the backlog grows (the load is real).
    let receiver = FaultReceiver::start(Vec::new(), Fault::Slow(100));
    let agent = Agent::start(&config(&redis, &receiver.url, 1), &[]);
    agent.wait_page("a backlog with one request at a time", |p| {
        queued(p) > 20_000.0
    });
    drop(agent);

    // Sixteen at a time: it keeps up.
    let receiver = FaultReceiver::start(Vec::new(), Fault::Slow(100));
    let agent = Agent::start(&config(&redis, &receiver.url, 16), &[]);
    let sent = |p: &Page| p.total("redpush_samples_sent_total", &[]).unwrap_or(0.0);
    let mut most = 0.0f64;
    wait_until(
        "100,000 samples delivered",
        Duration::from_secs(120),
        || {
            let page = agent.wait_page("the page", |_| true);
            most = most.max(queued(&page));
            let n = sent(&page);
            when(n >= 100_000.0, n, || {
                format!("{n} sent, backlog {}", queued(&page))
            })
        },
    );
    assert!(most < 20_000.0, "the backlog reached {most} samples");

    // Each series' samples arrived in time order.
    let out_of_order = receiver.with_received(|received| {
        let mut last: HashMap<Vec<(String, String)>, i64> = HashMap::new();
        let mut bad = 0;
        for r in received {
            for ts in &r.request.timeseries {
                let key: Vec<(String, String)> = ts
                    .labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect();
                for s in &ts.samples {
                    let previous = last.insert(key.clone(), s.timestamp);
                    if previous.is_some_and(|p| p >= s.timestamp) {
                        bad += 1;
                    }
                }
            }
        }
        bad
    });
    assert_eq!(out_of_order, 0);
    let concurrent = receiver.requests();
    assert!(concurrent > 1000, "{concurrent} requests");
}
