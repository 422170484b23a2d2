//! SIGHUP applies what it can to a running agent: a remote-write endpoint
//! added, changed (the queue kept) and removed, a Pushgateway added; a file
//! that does not load keeps the running configuration. Both outcomes are
//! metrics, under Prometheus' names.

mod common;

use std::time::Duration;

use common::exposition::Page;
use common::fault_receiver::{Fault, FaultReceiver};
use common::servers::{Agent, PushgatewayServer, Receiver, Redis};
use common::{wait_until, when};

fn config(redis: &Redis, destinations: &str) -> String {
    format!(
        "interval = \"1s\"\nadaptive = false\n[[targets]]\nurl = \"{}\"\n{destinations}",
        redis.url()
    )
}

fn remote_write(url: &str) -> String {
    format!("[remote_write]\nurl = \"{url}\"\nflush_deadline = \"1s\"\nmax_backoff = \"1s\"\n")
}

fn reload_gauges(agent: &Agent) -> (f64, f64) {
    let page = Page::parse(&agent.metrics());
    (
        page.get("redpush_config_last_reload_successful", &[])
            .expect("reload gauge"),
        page.get("redpush_config_last_reload_success_timestamp_seconds", &[])
            .expect("reload timestamp"),
    )
}

/// Waits until `receiver` accepted a `redis_up` of `instance` taken after `after_ms`.
fn wait_accepted_after(receiver: &FaultReceiver, instance: &str, after_ms: i64) -> Vec<(i64, f64)> {
    wait_until("redis_up accepted", Duration::from_secs(30), || {
        let up = receiver.accepted("redis_up", &[("instance", instance)]);
        when(up.iter().any(|(t, _)| *t > after_ms), up.clone(), || {
            format!("{up:?}")
        })
    })
}

#[test]
fn sighup_adds_changes_and_removes_destinations() {
    let redis = Redis::start(&[]);
    let instance = redis.instance();
    let agent = Agent::start(&config(&redis, ""), &[]);
    agent.wait_page("up", |p| p.get("redis_up", &[]) == Some(1.0));
    let (ok, started) = reload_gauges(&agent);
    assert_eq!(ok, 1.0, "the start's load counts as a successful one");
    let now_s = redpush::testing::now_ms() as f64 / 1000.0;
    assert!(started > now_s - 60.0 && started <= now_s, "{started}");

    // A file that does not load: counted, and the agent goes on.
    agent.reload("interval = \"never\"\n");
    agent.wait_page("a failed reload", |p| {
        p.get("redpush_config_last_reload_successful", &[]) == Some(0.0)
    });
    assert_eq!(reload_gauges(&agent).1, started, "no new success");

    // Remote write added: pushing starts without a restart.
    let first = Receiver::prometheus();
    agent.reload(&config(&redis, &remote_write(&first.write_url())));
    let up = common::servers::eventually(
        "redis_up pushed after the reload",
        Duration::from_secs(30),
        || first.query(&format!("redis_up{{instance=\"{instance}\"}}")),
        |r| r.len() == 1,
    );
    assert_eq!(up[0].1, 1.0);
    let (ok, reloaded) = reload_gauges(&agent);
    assert_eq!(ok, 1.0);
    assert!(reloaded > started, "{reloaded} after {started}");

    // The endpoint changed while the new one fails: what the queue holds
    // goes to the new endpoint once it answers, in order, nothing lost.
    let second = FaultReceiver::start(vec![], Fault::Status(503));
    let switched_ms = redpush::testing::now_ms();
    agent.reload(&config(&redis, &remote_write(&second.url)));
    agent.wait_page("samples queued for the new endpoint", |p| {
        p.total("redpush_queue_samples", &[])
            .is_some_and(|n| n > 300.0)
    });
    second.set_mode(Fault::Status(204));
    let up = wait_accepted_after(&second, &instance, redpush::testing::now_ms());
    for pair in up.windows(2) {
        assert!(pair[0].0 < pair[1].0, "out of order: {pair:?}");
        assert!(pair[1].0 - pair[0].0 <= 1600, "gap: {pair:?}");
    }
    assert!(
        up.first().is_some_and(|(t, _)| *t <= switched_ms + 1000),
        "what was queued at the switch went to the new endpoint: {:?}",
        up.first()
    );
    // The endpoint's default name (its host:port) changed with its url:
    // the queue was opened again with the new name as its reader.
    let log = agent.process.output();
    assert!(
        log.contains("remote-write endpoints changed: the queue is opened again"),
        "{log}"
    );
    assert!(!log.contains("takes effect when redpush restarts"), "{log}");

    // The same endpoint (same name) with other settings: only its sender
    // is replaced, and its counters count on.
    let sent = |agent: &Agent| {
        Page::parse(&agent.metrics())
            .total("redpush_samples_sent_total", &[])
            .unwrap_or(0.0)
    };
    let before = sent(&agent);
    assert!(before > 0.0);
    agent.reload(&config(
        &redis,
        &remote_write(&second.url).replace("max_backoff = \"1s\"", "max_backoff = \"2s\""),
    ));
    wait_until("the sender replaced", Duration::from_secs(30), || {
        let log = agent.process.output();
        when(log.contains("changed: now pushing to"), (), || log.clone())
    });
    let after = sent(&agent);
    assert!(
        after >= before,
        "counted on, not reset: {after} after {before}"
    );

    // Remote write removed, a Pushgateway added.
    let pushgateway = PushgatewayServer::start();
    agent.reload(&config(
        &redis,
        &format!(
            "[pushgateway]\nurl = \"{}\"\ninterval = \"1s\"\n",
            pushgateway.url()
        ),
    ));
    wait_until(
        "the Pushgateway has the group",
        Duration::from_secs(30),
        || {
            let text = pushgateway.scrape();
            let ok = text.contains(&format!(
                "redis_up{{instance=\"{instance}\",job=\"redis\"}} 1"
            ));
            when(ok, (), || {
                format!("{text}\nagent log:\n{}", agent.process.output())
            })
        },
    );
    let log = agent.process.output();
    assert!(log.contains("remote write removed"), "{log}");
    let page = Page::parse(&agent.metrics());
    assert_eq!(
        page.total("redpush_queue_samples", &[]),
        None,
        "no queue shown"
    );
}

#[test]
fn an_edited_config_file_is_applied_without_a_signal() {
    let a = Redis::start(&[]);
    let b = Redis::start(&[]);
    let agent = Agent::start(&config(&a, ""), &[]);
    agent.wait_page("a up", |p| p.get("redis_up", &[]) == Some(1.0));
    // As a ConfigMap update or an editor leaves it: the file changes, no SIGHUP.
    agent.rewrite(&format!(
        "interval = \"1s\"\nadaptive = false\n[[targets]]\nurl = \"{}\"\n[[targets]]\nurl = \"{}\"\n",
        a.url(),
        b.url()
    ));
    agent.wait_page("b sampled after the edit", |p| {
        p.get("redis_up", &[("instance", &b.instance())]) == Some(1.0)
    });
    let log = agent.process.output();
    assert_eq!(
        log.matches("reloading the configuration").count(),
        1,
        "{log}"
    );
}
