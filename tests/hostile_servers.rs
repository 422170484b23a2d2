//! Servers that misbehave on purpose: what they say never reaches a log or
//! a terminal as they wrote it (no forged lines, no escapes, no echoed
//! password), redirects are reported and not followed.

mod common;

use std::time::Duration;

use common::fault_receiver::{Fault, FaultReceiver};
use common::servers::{Agent, FakeRedis, Misbehaviour, Redis, redpush_run};
use common::{wait_until, when};

const PW: &str = "Echo-S3cret-pw";

#[test]
fn text_from_servers_never_writes_a_log_line_of_its_own() {
    let fake = FakeRedis::start(Misbehaviour::EchoAuth);
    let receiver = FaultReceiver::start(
        vec![Fault::Status(400), Fault::Status(302)],
        Fault::Status(204),
    );
    let redis = Redis::start(&[]);
    let config = format!(
        "interval = \"1s\"\nadaptive = false\n\
         [[targets]]\nurl = \"redis://:{PW}@127.0.0.1:{}\"\n\
         [[targets]]\nurl = \"{}\"\n\
         [remote_write]\nurl = \"{}\"\nflush_deadline = \"1s\"\nmin_backoff = \"10ms\"\nmax_backoff = \"200ms\"\n",
        fake.port,
        redis.url(),
        receiver.url
    );
    let mut agent = Agent::start(&config, &[]);
    let instance = redis.instance();
    wait_until(
        "a batch accepted after the 400 and the 302",
        Duration::from_secs(30),
        || {
            let up = receiver.accepted("redis_up", &[("instance", &instance)]);
            when(!up.is_empty(), (), || agent.process.output())
        },
    );
    assert_eq!(agent.process.terminate(), Some(0));
    let log = agent.process.output();
    // Each was said, escaped.
    assert!(
        log.contains("<redacted> is wrong\\nlevel=ERROR msg=forged\\u{1b}[2J"),
        "{log}"
    );
    assert!(
        log.contains("out of bounds\\nlevel=ERROR msg=forged\\u{1b}[2J"),
        "{log}"
    );
    assert!(
        log.contains("302 Found: redirected to http://elsewhere/api/v1/write?token=<redacted>"),
        "{log}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("level=ERROR")),
        "a forged line:\n{log}"
    );
    assert!(!log.contains('\u{1b}'), "an escape reached the log:\n{log}");
    assert!(!log.contains(PW) && !log.contains("Loc-S3cret"), "{log}");
}

#[test]
fn once_prints_no_control_character_a_server_sent() {
    let redis = Redis::start(&[]);
    // A replica of a "host" whose name holds a terminal escape and a bell:
    // the server reports it in INFO as it was given.
    redis.cli(&["REPLICAOF", "evil\u{1b}[2J\u{7}", "6379"]);
    wait_until("the host in INFO", Duration::from_secs(10), || {
        let host = redis.info_field("master_host").unwrap_or_default();
        when(host.contains('\u{1b}'), (), || host.clone())
    });
    let (code, out, err) = redpush_run(&["once", "--redis", &redis.url()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("master_host=\"evil\u{fffd}[2J\u{fffd}\""),
        "{out}"
    );
    assert!(
        !out.chars().any(|c| c.is_control() && c != '\n'),
        "a control character printed"
    );
}

#[test]
fn a_reading_is_cut_at_max_series_per_target() {
    let fake = FakeRedis::start(Misbehaviour::HugeInfo(30_000));
    let redis = Redis::start(&[]);
    let prometheus = common::servers::Receiver::prometheus();
    let config = format!(
        "interval = \"1s\"\nadaptive = false\n[metrics]\nmax_series_per_target = 500\n\
         [[targets]]\nurl = \"{}\"\n[[targets]]\nurl = \"{}\"\n\
         [remote_write]\nurl = \"{}\"\nflush_deadline = \"1s\"\n",
        fake.url(),
        redis.url(),
        prometheus.write_url()
    );
    let mut agent = Agent::start(&config, &[]);
    let hostile = format!("127.0.0.1:{}", fake.port);
    let page = agent.wait_page("three cut readings", |p| {
        p.get("redpush_series_limited_total", &[("instance", &hostile)])
            .is_some_and(|n| n >= 3.0)
    });
    let of = |instance: &str| {
        page.values
            .keys()
            .filter(|(_, labels)| labels.iter().any(|(k, v)| k == "instance" && v == instance))
            .count()
    };
    // The mapped series are cut to 500 (redis_up among them); the agent's
    // own come on top. The well-behaved target is whole.
    let own = page
        .values
        .keys()
        .filter(|(name, labels)| {
            name.starts_with("redpush_")
                && labels.iter().any(|(k, v)| k == "instance" && v == &hostile)
        })
        .count();
    assert_eq!(of(&hostile), 500 + own, "{:?}", page.values.len());
    assert_eq!(page.get("redis_up", &[("instance", &hostile)]), Some(1.0));
    assert!(of(&redis.instance()) > 100);
    assert_eq!(
        page.get(
            "redpush_series_limited_total",
            &[("instance", &redis.instance())]
        ),
        Some(0.0)
    );
    // What is pushed is cut the same way: the receiver holds 500 + own
    // series of the hostile target, no more.
    let count = format!("count({{instance=\"{hostile}\"}})");
    let stored = common::servers::eventually(
        "the hostile target's series stored",
        Duration::from_secs(30),
        || prometheus.query(&count),
        |r| r.first().is_some_and(|(_, n)| *n >= (500 + own) as f64),
    );
    assert_eq!(stored[0].1, (500 + own) as f64);
    assert_eq!(agent.process.terminate(), Some(0));
    let log = agent.process.output();
    let warnings = log
        .lines()
        .filter(|l| l.contains("reading cut to 500 series"))
        .collect::<Vec<_>>();
    assert_eq!(warnings.len(), 1, "said once a minute:\n{log}");
    assert!(
        warnings[0].contains("INFO had more than 500 fields"),
        "{log}"
    );
}

#[test]
fn many_targets_failing_at_once_give_a_few_lines() {
    let mut ports = std::collections::BTreeSet::new();
    while ports.len() < 200 {
        ports.insert(common::servers::free_port());
    }
    let mut config = "interval = \"1s\"\nadaptive = false\n".to_owned();
    for port in &ports {
        config.push_str(&format!(
            "[[targets]]\nurl = \"redis://127.0.0.1:{port}\"\n"
        ));
    }
    let mut agent = Agent::start(&config, &[]);
    agent.wait_page("every target tried", |p| {
        p.values
            .iter()
            .filter(|((name, _), v)| name == "redis_up" && **v == 0.0)
            .count()
            == ports.len()
    });
    assert_eq!(agent.process.terminate(), Some(0));
    let log = agent.process.output();
    let down = log.lines().filter(|l| l.contains("target down")).count();
    assert!((1..=30).contains(&down), "{down} lines:\n{log}");
}
