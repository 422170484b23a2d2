//! The agent's HTTP endpoint under clients that hold connections: with a
//! low file limit and many idle connections open, `/healthz` still answers
//! and a reload still works; a TLS handshake never started is given up.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::servers::{Agent, Redis, http_get};
use common::tls::Certs;

#[test]
fn idle_connections_beyond_the_cap_do_not_starve_the_agent() {
    let redis = Redis::start(&[]);
    let second = Redis::start(&[]);
    let config = |targets: &[&Redis]| {
        let mut config = "interval = \"1s\"\nadaptive = false\n".to_owned();
        for r in targets {
            config.push_str(&format!("[[targets]]\nurl = \"{}\"\n", r.url()));
        }
        config
    };
    let dir = tempfile::TempDir::new().expect("dir");
    let agent = Agent::start_under(
        &["prlimit", "--nofile=100:100"],
        dir,
        &config(&[&redis]),
        &[],
    );
    agent.wait_page("a reading", |p| p.get("redis_up", &[]) == Some(1.0));
    // 150 connections that never send a byte: more than the file limit
    // leaves room for.
    let idle: Vec<TcpStream> = (0..150)
        .map(|_| TcpStream::connect(("127.0.0.1", agent.listen)).expect("connect"))
        .collect();
    let healthz = format!("http://127.0.0.1:{}/healthz", agent.listen);
    assert_eq!(http_get(&healthz).trim(), "ok");
    // A reload reads the config file: a descriptor must be free for it.
    agent.reload(&config(&[&redis, &second]));
    let instance = second.instance();
    agent.wait_page("the reload applied", |p| {
        p.get("redpush_config_last_reload_successful", &[]) == Some(1.0)
            && p.get("redis_up", &[("instance", &instance)]) == Some(1.0)
    });
    let log = agent.process.output();
    assert!(!log.contains("Too many open files"), "{log}");
    drop(idle);
}

#[test]
fn a_tls_handshake_never_started_is_given_up() {
    let certs = Certs::new(true);
    let redis = Redis::start(&[]);
    let config = format!(
        "[[targets]]\nurl = \"{}\"\n[http]\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        redis.url(),
        certs.show("server.crt"),
        certs.show("server.key")
    );
    let agent = Agent::start(&config, &[]);
    let mut silent = TcpStream::connect(("127.0.0.1", agent.listen)).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 64];
    // The agent closes it (a read of 0 bytes or a reset), well before the
    // 60 s this read would wait.
    let read = silent.read(&mut buf);
    let waited = started.elapsed();
    assert!(
        matches!(read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut),
        "{read:?} after {waited:?}"
    );
    assert!(waited >= Duration::from_secs(9), "closed after {waited:?}");
}
