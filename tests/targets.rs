//! Many targets in one agent: each on its own cadence, a stopped or hanging
//! target never delays the others, and the target set changes on SIGHUP
//! without losing queued data. Pushes go to a receiver that records every
//! sample with its timestamp.

mod common;

use std::time::Duration;

use common::fault_receiver::{Fault, FaultReceiver};
use common::servers::{Agent, Redis, SilentServer, program};
use common::{wait_until, when};

fn targets_config(urls: &[String], write_url: &str) -> String {
    let mut config = format!(
        "interval = \"1s\"\nadaptive = false\n[remote_write]\nurl = \"{write_url}\"\nflush_deadline = \"1s\"\n"
    );
    for url in urls {
        config.push_str(&format!(
            "[[targets]]\nurl = \"{url}\"\nconnect_timeout = \"1s\"\ncommand_timeout = \"2s\"\n"
        ));
    }
    config
}

/// The largest gap between consecutive `redis_up` samples of `instance`
/// accepted after `from_ms`.
fn max_gap(receiver: &FaultReceiver, instance: &str, from_ms: i64) -> i64 {
    let up = receiver.accepted("redis_up", &[("instance", instance)]);
    let times: Vec<i64> = up
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t >= from_ms)
        .collect();
    assert!(times.len() > 5, "{instance}: {times:?}");
    times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
}

/// Waits until the receiver has accepted `redis_up` samples of `instance`
/// that `accept` takes; returns them.
fn wait_accepted(
    receiver: &FaultReceiver,
    instance: &str,
    what: &str,
    accept: impl Fn(&[(i64, f64)]) -> bool,
) -> Vec<(i64, f64)> {
    wait_until(what, Duration::from_secs(30), || {
        let up = receiver.accepted("redis_up", &[("instance", instance)]);
        when(accept(&up), up.clone(), || format!("{instance}: {up:?}"))
    })
}

#[test]
fn one_stopped_or_hanging_target_does_not_delay_the_others() {
    let a = Redis::start(&[]);
    let b = Redis::start(&[]);
    let c = Redis::start(&[]);
    let hanging = SilentServer::start();
    let hanging_url = format!("redis://127.0.0.1:{}", hanging.port);
    let receiver = FaultReceiver::start(vec![], Fault::Status(204));
    let agent = Agent::start(
        &targets_config(&[a.url(), b.url(), c.url(), hanging_url], &receiver.url),
        &[],
    );
    let start = redpush::testing::now_ms();
    for r in [&a, &b, &c] {
        wait_accepted(&receiver, &r.instance(), "three samples delivered", |up| {
            up.len() >= 3
        });
    }

    // Stop b until the agent has found it down and the hanging target has
    // timed out, then bring b back on its port.
    let b_port = b.port;
    let b_instance = b.instance();
    drop(b);
    let hanging_instance = format!("127.0.0.1:{}", hanging.port);
    let page = agent.wait_page("b down, the hanging target timed out", |page| {
        page.get("redis_up", &[("instance", &b_instance)]) == Some(0.0)
            && page
                .get(
                    "redpush_target_errors_total",
                    &[("instance", &hanging_instance), ("reason", "timeout")],
                )
                .is_some_and(|n| n >= 1.0)
    });
    assert_eq!(
        page.get("redis_up", &[("instance", &a.instance())]),
        Some(1.0)
    );
    assert_eq!(
        page.get("redis_up", &[("instance", &hanging_instance)]),
        Some(0.0)
    );
    let _b = Redis::start_on(&program("redis-server"), b_port, &[]);
    wait_accepted(&receiver, &b_instance, "b up again, delivered", |up| {
        up.iter().any(|(_, v)| *v == 0.0) && up.last().is_some_and(|(_, v)| *v == 1.0)
    });

    // a and c kept one sample a second throughout.
    for r in [&a, &c] {
        wait_accepted(&receiver, &r.instance(), "six samples delivered", |up| {
            up.iter().filter(|(t, _)| *t >= start).count() > 5
        });
        let gap = max_gap(&receiver, &r.instance(), start);
        assert!(gap <= 1600, "{} had a gap of {gap} ms", r.instance());
    }
    // b was sampled throughout too: up, then down (0), then up again.
    let b_up: Vec<f64> = receiver
        .accepted("redis_up", &[("instance", &b_instance)])
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let first_down = b_up
        .iter()
        .position(|v| *v == 0.0)
        .expect("b reported down");
    assert!(b_up[..first_down].iter().all(|v| *v == 1.0));
    assert_eq!(b_up.last(), Some(&1.0), "{b_up:?}");
}

#[test]
fn sighup_adds_and_removes_targets_and_keeps_the_queue() {
    let a = Redis::start(&[]);
    let b = Redis::start(&[]);
    let receiver = FaultReceiver::start(vec![], Fault::Status(204));
    let agent = Agent::start(&targets_config(&[a.url(), b.url()], &receiver.url), &[]);
    for r in [&a, &b] {
        wait_accepted(&receiver, &r.instance(), "pushed", |up| !up.is_empty());
    }

    // Receiver down while b is sampled three more times, then remove b and
    // add c: the queued samples survive the reload.
    receiver.set_mode(Fault::Status(503));
    b.watch().wait_for_samples(3);
    let c = Redis::start(&[]);
    agent.reload(&targets_config(&[a.url(), c.url()], &receiver.url));
    let page = agent.wait_page("c sampled", |p| {
        p.get("redis_up", &[("instance", &c.instance())]) == Some(1.0)
    });
    assert_eq!(
        page.get("redis_up", &[("instance", &b.instance())]),
        None,
        "b still shown"
    );
    let reload_ms = redpush::testing::now_ms();
    receiver.set_mode(Fault::Status(204));
    wait_accepted(&receiver, &c.instance(), "c pushed", |up| !up.is_empty());

    // b's last samples from the outage arrived, then a stale marker ended it.
    let b_up = wait_accepted(&receiver, &b.instance(), "b ended", |up| {
        up.last()
            .is_some_and(|(_, v)| redpush::testing::is_stale_marker(*v))
    });
    let (last_ts, _) = *b_up.last().expect("b samples");
    assert!(last_ts <= reload_ms + 1000);
    assert!(b_up.len() >= 4, "b's outage samples were lost: {b_up:?}");
    // a kept going across the reload.
    wait_accepted(
        &receiver,
        &a.instance(),
        "a sampled after the reload",
        |up| up.iter().filter(|(t, _)| *t > reload_ms + 1000).count() >= 2,
    );
    assert!(max_gap(&receiver, &a.instance(), 0) <= 1600);
    assert!(
        agent.process.output().contains("target removed"),
        "{}",
        agent.process.output()
    );
}

#[test]
fn a_quiet_target_slows_down_and_says_why() {
    let redis = Redis::start(&[]);
    let config = format!(
        "[[targets]]\nurl = \"{}\"\ninterval = \"1s\"\nmin_interval = \"1s\"\nmax_interval = \"3s\"\n",
        redis.url()
    );
    let agent = Agent::start(&config, &[]);
    agent.wait_page("interval at max", |p| {
        p.get("redpush_sample_interval_seconds", &[]) == Some(3.0)
    });
    // Why is in the status; the default log is not filled with it.
    let status: serde_json::Value = serde_json::from_str(&common::servers::http_get(&format!(
        "http://127.0.0.1:{}/api/status",
        agent.listen
    )))
    .expect("status");
    assert_eq!(status["targets"][0]["interval_seconds"], 3.0, "{status}");
    assert_eq!(status["targets"][0]["interval_reason"], "quiet", "{status}");
    let log = agent.process.output();
    assert!(!log.contains("sampling interval changed"), "{log}");
}

#[test]
fn valkey_urls_and_bare_host_port_targets_are_sampled() {
    let a = Redis::start(&[]);
    let b = Redis::start(&[]);
    let valkey = format!("valkey://127.0.0.1:{}", a.port);
    let bare = format!("127.0.0.1:{}", b.port);
    let (code, out, err) =
        common::servers::redpush_run(&["once", "--redis", &valkey, "--redis", &bare]);
    assert_eq!(code, 0, "{err}");
    let page = common::exposition::Page::parse(&out);
    for r in [&a, &b] {
        assert_eq!(
            page.get("redis_up", &[("instance", &r.instance())]),
            Some(1.0),
            "{out}"
        );
    }
}
