//! Every family described: `# HELP` and `# TYPE` on `/metrics`, and the
//! same type and help (with the unit the name gives) in remote write's
//! metadata, decoded at a test receiver; real receivers take the
//! metadata requests; `send_metadata = false` sends none.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::fault_receiver::{Fault, FaultReceiver};
use common::servers::{Agent, Receiver, Redis, push_config};
use common::{wait_until, when};

/// Type numbers of remote write's `MetricMetadata.MetricType`.
fn type_number(kind: &str) -> i32 {
    match kind {
        "counter" => 1,
        "gauge" => 2,
        "histogram" => 3,
        "summary" => 5,
        other => panic!("type {other}"),
    }
}

#[test]
fn every_family_on_the_page_is_described_at_the_receiver() {
    let redis = Redis::start(&[]);
    let receiver = FaultReceiver::start(Vec::new(), Fault::Status(204));
    let agent = Agent::start(&push_config(&[redis.url()], &receiver.url, ""), &[]);
    let page = agent.wait_page("a reading and the agent's own series", |p| {
        p.get("redis_up", &[]) == Some(1.0) && p.types.contains_key("redpush_queue_samples")
    });
    assert!(page.types.len() > 100, "{} families", page.types.len());
    let missing_help: Vec<&String> = page
        .types
        .keys()
        .filter(|name| !page.helps.contains_key(*name))
        .collect();
    assert!(missing_help.is_empty(), "no HELP: {missing_help:?}");

    let described = wait_until(
        "metadata of every family on the page",
        Duration::from_secs(60),
        || {
            let described: BTreeMap<String, (i32, String, String)> = receiver
                .metadata()
                .into_iter()
                .flat_map(|r| r.metadata)
                .map(|m| (m.metric_family_name, (m.r#type, m.help, m.unit)))
                .collect();
            let missing: Vec<&String> = page
                .types
                .keys()
                .filter(|name| !described.contains_key(*name))
                .collect();
            when(missing.is_empty(), described.clone(), || {
                format!("missing {missing:?}")
            })
        },
    );
    for (name, kind) in &page.types {
        let (number, help, _) = &described[name];
        assert_eq!(*number, type_number(kind), "type of {name}");
        assert_eq!(help, &page.helps[name], "help of {name}");
    }
    assert_eq!(
        described["redis_connected_clients"].1,
        "connected_clients metric"
    );
    assert_eq!(described["redis_memory_used_bytes"].2, "bytes");
    assert_eq!(described["redis_cpu_sys_seconds_total"].2, "seconds");
    assert_eq!(described["redis_connected_clients"].2, "");
}

#[test]
fn real_receivers_take_the_metadata_requests() {
    let redis = Redis::start(&[]);
    for receiver in [Receiver::prometheus(), Receiver::victoria_metrics()] {
        let config = push_config(&[redis.url()], &receiver.write_url(), "");
        let agent = Agent::start(&config, &["--log-level", "debug"]);
        // A reading delivered, then one more: metadata went before it.
        let sent = |p: &common::exposition::Page| p.total("redpush_requests_sent_total", &[]);
        let first = agent.wait_page("a delivery", |p| sent(p).is_some_and(|n| n >= 1.0));
        let before = sent(&first).expect("counted");
        agent.wait_page("a delivery after the metadata's first check", |p| {
            sent(p).is_some_and(|n| n >= before + 6.0)
        });
        let log = agent.process.output();
        assert!(log.contains("remote write: metadata sent"), "{log}");
        assert!(!log.contains("metadata not accepted"), "{log}");
    }
}

#[test]
fn send_metadata_false_sends_none() {
    let redis = Redis::start(&[]);
    let receiver = FaultReceiver::start(Vec::new(), Fault::Status(204));
    let config = push_config(&[redis.url()], &receiver.url, "");
    let agent = Agent::start(&format!("{config}send_metadata = false\n"), &[]);
    // Batches every second for longer than the metadata's check interval.
    wait_until("eight batches delivered", Duration::from_secs(60), || {
        let n = receiver.requests();
        when(n >= 8, n, || format!("{n} requests"))
    });
    assert!(receiver.metadata().is_empty());
    drop(agent);
}
