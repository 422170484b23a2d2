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
