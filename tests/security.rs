//! TLS, auth, secrets and hostile input: Redis over TLS (with and without
//! client certificates) with certificates made here, a Prometheus receiver
//! behind TLS and basic auth, the agent's own endpoint protected, fake
//! servers that answer garbage, too much or half a reply, and a check that
//! no secret reaches a log, an error, check-config or a metric.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::exposition::Page;
use common::fault_receiver::{Fault, FaultReceiver};
use common::servers::{
    Agent, FakeRedis, Misbehaviour, Receiver, Redis, SilentServer, program, redpush_run,
};
use common::tls::Certs;
use common::{wait_until, when};

/// A Redis 7.0 with a TLS port (and its plain port, for the test's own redis-cli).
fn tls_redis(certs: &Certs, auth_clients: bool) -> (Redis, u16) {
    let tls_port = common::servers::free_port();
    let redis = Redis::start(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &certs.show("server.crt"),
        "--tls-key-file",
        &certs.show("server.key"),
        "--tls-ca-cert-file",
        &certs.show("ca.crt"),
        "--tls-auth-clients",
        if auth_clients { "yes" } else { "no" },
    ]);
    (redis, tls_port)
}

/// Runs `redpush once` with one target given as TOML lines.
fn once_with(target: &str) -> (i32, String, String) {
    let dir = tempfile::TempDir::new().expect("dir");
    let config = dir.path().join("redpush.toml");
    std::fs::write(&config, format!("[[targets]]\n{target}")).expect("config");
    redpush_run(&["once", "--config", config.to_str().expect("utf-8")])
}

#[test]
fn redis_over_tls_with_a_ca_file_and_a_server_name() {
    let certs = Certs::new(true);
    let (redis, port) = tls_redis(&certs, false);
    redis.cli(&["SET", "k", "v"]);
    let url = format!("url = \"rediss://127.0.0.1:{port}\"\n");

    let (code, out, err) = once_with(&format!(
        "{url}tls_ca_file = \"{}\"\n",
        certs.show("ca.crt")
    ));
    assert_eq!(code, 0, "{err}");
    let page = Page::parse(&out);
    assert_eq!(page.get("redis_up", &[]), Some(1.0));
    assert_eq!(page.get("redis_db_keys", &[("db", "db0")]), Some(1.0));

    // Not trusted by the system's roots: a clear TLS error, exit 1.
    let (code, _, err) = once_with(&url);
    assert_eq!(code, 1);
    assert!(err.contains("TLS") && err.contains("handshake"), "{err}");

    // insecure_skip_verify connects anyway, and says so.
    let (code, _, err) = once_with(&format!("{url}insecure_skip_verify = true\n"));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(SKIP_WARNING), "{err}");

    // A certificate for a name only: verify against that name.
    let named = Certs::new(false);
    let (_redis, port) = tls_redis(&named, false);
    let url = format!(
        "url = \"rediss://127.0.0.1:{port}\"\ntls_ca_file = \"{}\"\n",
        named.show("ca.crt")
    );
    let (code, _, _) = once_with(&url);
    assert_eq!(code, 1, "127.0.0.1 is not in the certificate");
    let (code, _, err) = once_with(&format!("{url}tls_server_name = \"redis.test\"\n"));
    assert_eq!(code, 0, "{err}");
}

const SKIP_WARNING: &str = "insecure_skip_verify: the server's TLS certificate is not checked";

#[test]
fn insecure_skip_verify_warns_for_each_client_built() {
    let certs = Certs::new(true);
    let (redis, port) = tls_redis(&certs, false);
    let receiver = FaultReceiver::start(vec![], Fault::Status(204));
    let plain = format!(
        "interval = \"1s\"\nadaptive = false\n[[targets]]\nurl = \"{}\"\n",
        redis.url()
    );
    let agent = Agent::start(&plain, &[]);
    agent.wait_page("a reading", |p| p.get("redis_up", &[]) == Some(1.0));
    assert!(!agent.process.output().contains(SKIP_WARNING));
    // A target and a remote-write endpoint added by a reload, both unverified.
    let tls_instance = format!("127.0.0.1:{port}");
    agent.reload(&format!(
        "{plain}[[targets]]\nurl = \"rediss://{tls_instance}\"\ninsecure_skip_verify = true\n\
         [remote_write]\nurl = \"{}\"\nflush_deadline = \"1s\"\n[remote_write.tls]\ninsecure_skip_verify = true\n",
        receiver.url
    ));
    agent.wait_page("the TLS target up", |p| {
        p.get("redis_up", &[("instance", &tls_instance)]) == Some(1.0)
    });
    let log = agent.process.output();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(SKIP_WARNING)).collect();
    assert!(
        warnings.iter().any(|l| l.contains(&tls_instance))
            && warnings.iter().any(|l| l.contains(&receiver.url)),
        "{log}"
    );
}

#[test]
fn redis_requiring_client_certificates() {
    let certs = Certs::new(true);
    let (_redis, port) = tls_redis(&certs, true);
    let base = format!(
        "url = \"rediss://127.0.0.1:{port}\"\ntls_ca_file = \"{}\"\n",
        certs.show("ca.crt")
    );
    let (code, _, err) = once_with(&base);
    assert_eq!(code, 1, "no client certificate must fail");
    assert!(err.contains("127.0.0.1"), "{err}");
    let (code, out, err) = once_with(&format!(
        "{base}tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        certs.show("client.crt"),
        certs.show("client.key")
    ));
    assert_eq!(code, 0, "{err}");
    assert_eq!(Page::parse(&out).get("redis_up", &[]), Some(1.0));
}

#[test]
fn password_from_an_environment_variable() {
    let redis = Redis::start(&["--requirepass", "env-pass-123"]);
    let dir = tempfile::TempDir::new().expect("dir");
    let config = dir.path().join("redpush.toml");
    std::fs::write(
        &config,
        format!(
            "[[targets]]\nurl = \"{}\"\npassword_env = \"REDPUSH_TEST_PASSWORD\"\n",
            redis.url()
        ),
    )
    .expect("config");
    let out = Command::new(common::servers::redpush_binary())
        .args(["once", "--config", config.to_str().expect("utf-8")])
        .env("REDPUSH_TEST_PASSWORD", "env-pass-123")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        Page::parse(&String::from_utf8_lossy(&out.stdout)).get("redis_up", &[]),
        Some(1.0)
    );
}

#[test]
fn hostile_servers_cost_one_clear_error_within_the_timeout() {
    let garbage = FakeRedis::start(Misbehaviour::Garbage);
    let huge = FakeRedis::start(Misbehaviour::Huge);
    let reset = FakeRedis::start(Misbehaviour::ResetMidReply);
    let silent = SilentServer::start();
    let silent_url = format!("redis://127.0.0.1:{}", silent.port);
    for (name, url) in [
        ("garbage", garbage.url()),
        ("huge", huge.url()),
        ("reset", reset.url()),
        ("hang", silent_url),
    ] {
        let started = Instant::now();
        let (code, out, err) = once_with(&format!(
            "url = \"{url}\"\nconnect_timeout = \"2s\"\ncommand_timeout = \"2s\"\n"
        ));
        let elapsed = started.elapsed();
        assert_eq!(code, 1, "{name}: {err}");
        assert_eq!(
            Page::parse(&out).get("redis_up", &[]),
            Some(0.0),
            "{name}: {out}"
        );
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(elapsed < Duration::from_secs(10), "{name} took {elapsed:?}");
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("redpush: 127.0.0.1"))
            .collect();
        assert_eq!(lines.len(), 1, "{name}: one clear line expected:\n{err}");
        if name == "huge" {
            assert!(err.contains("larger than max_reply_bytes"), "{err}");
        }
        if name == "hang" {
            assert!(err.contains("no answer within"), "{err}");
        }
    }
}

#[test]
fn the_agent_survives_a_hostile_target_and_keeps_sampling_the_others() {
    let good = Redis::start(&[]);
    let huge = FakeRedis::start(Misbehaviour::Huge);
    let config = format!(
        "interval = \"1s\"\nadaptive = false\n[[targets]]\nurl = \"{}\"\n[[targets]]\nurl = \"{}\"\ncommand_timeout = \"2s\"\n",
        good.url(),
        huge.url()
    );
    let mut agent = Agent::start(&config, &[]);
    let huge_instance = format!("127.0.0.1:{}", huge.port);
    let page = agent.wait_page("two refused replies", |page| {
        page.get(
            "redpush_target_errors_total",
            &[("instance", &huge_instance), ("reason", "reply")],
        )
        .is_some_and(|n| n >= 2.0)
    });
    assert_eq!(
        page.get("redis_up", &[("instance", &good.instance())]),
        Some(1.0)
    );
    assert_eq!(
        page.get("redis_up", &[("instance", &huge_instance)]),
        Some(0.0)
    );
    assert!(agent.process.is_running());
    // Memory stayed bounded: far below the gigabyte the server announced.
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", agent.process.pid())).expect("status");
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    assert!(rss_kib < 100 * 1024, "RSS {rss_kib} KiB");
    assert_eq!(agent.process.terminate(), Some(0));
}

#[test]
fn prometheus_behind_tls_and_basic_auth() {
    let certs = Certs::new(true);
    let dir = tempfile::TempDir::new().expect("dir");
    // bcrypt of "rw-secret-pass", as Prometheus' web config wants it.
    let web = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  redpush: $2b$04$Ya0XygHdOLsTzLrYqoGMVOvvTT4Os.61W54QTaUfNrux4u1l7q.le\n",
        certs.show("server.crt"),
        certs.show("server.key")
    );
    let web_file = dir.path().join("web.yml");
    std::fs::write(&web_file, web).expect("web config");
    let prometheus = Receiver::prometheus_with_web_config(
        &web_file,
        &certs.show("ca.crt"),
        ("redpush", "rw-secret-pass"),
    );
    let redis = Redis::start(&[]);
    let password = dir.path().join("rw.pass");
    std::fs::write(&password, "rw-secret-pass\n").expect("password");
    let config = |pass: &std::path::Path| {
        format!(
            "interval = \"1s\"\nadaptive = false\n[[targets]]\nurl = \"{}\"\n[remote_write]\nurl = \"https://127.0.0.1:{}/api/v1/write\"\nflush_deadline = \"1s\"\n[remote_write.basic_auth]\nusername = \"redpush\"\npassword_file = \"{}\"\n[remote_write.tls]\nca_file = \"{}\"\n",
            redis.url(),
            prometheus.port,
            pass.display(),
            certs.show("ca.crt")
        )
    };
    let _agent = Agent::start(&config(&password), &[]);
    let up = common::servers::eventually(
        "redis_up over TLS and basic auth",
        Duration::from_secs(20),
        || prometheus.query(&format!("redis_up{{instance=\"{}\"}}", redis.instance())),
        |r| r.len() == 1,
    );
    assert_eq!(up[0].1, 1.0);

    // An expired credential: the receiver answers 401. The queue is held,
    // not dropped; once the password file holds the right one again (it is
    // read per request), the backlog of those seconds arrives.
    let rotated = dir.path().join("rotated.pass");
    std::fs::write(&rotated, "not-it\n").expect("password");
    let second = format!(
        "{}[external_labels]\nagent = \"second\"\n",
        config(&rotated)
    );
    let agent = Agent::start(&second, &[]);
    agent.wait_page("a 401", |page| {
        page.total("redpush_send_errors_total", &[("status", "401")])
            .is_some_and(|n| n >= 1.0)
    });
    agent.wait_page("a backlog 10 s old", |page| {
        page.total("redpush_queue_oldest_sample_age_seconds", &[])
            .is_some_and(|age| age >= 10.0)
    });
    let log = agent.process.output();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ERROR ") && l.contains("status=401"))
        .collect();
    assert_eq!(errors.len(), 1, "one ERROR for the 401s:\n{log}");
    assert!(
        errors[0].contains(&format!(
            "url=https://127.0.0.1:{}/api/v1/write",
            prometheus.port
        )),
        "{log}"
    );
    std::fs::write(&rotated, "rw-secret-pass\n").expect("password");
    // The first samples Prometheus has of this agent are those it held:
    // ten seconds' worth at once, not the few taken since the fix.
    let selector = r#"count_over_time(redis_up{agent="second"}[5m])"#;
    let count = common::servers::eventually(
        "the held samples delivered",
        Duration::from_secs(30),
        || prometheus.query(selector),
        |r| r.len() == 1,
    );
    assert!(count[0].1 >= 10.0, "only {} samples arrived", count[0].1);
    let page = Page::parse(&agent.metrics());
    assert_eq!(
        page.total("redpush_samples_dropped_total", &[("reason", "rejected")]),
        Some(0.0)
    );
}

#[test]
fn the_agents_endpoint_with_tls_and_basic_auth() {
    let certs = Certs::new(true);
    let redis = Redis::start(&[]);
    let dir = tempfile::TempDir::new().expect("dir");
    let password = dir.path().join("http.pass");
    std::fs::write(&password, "scrape-pass\n").expect("password");
    let config = format!(
        "[[targets]]\nurl = \"{}\"\n[http]\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n[http.basic_auth]\nusername = \"prom\"\npassword_file = \"{}\"\n",
        redis.url(),
        certs.show("server.crt"),
        certs.show("server.key"),
        password.display()
    );
    let agent = Agent::start(&config, &[]);
    let curl = |path: &str, auth: Option<&str>| -> String {
        let mut cmd = Command::new(program("curl"));
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            &certs.show("ca.crt"),
        ]);
        if let Some(auth) = auth {
            cmd.args(["-u", auth]);
        }
        let out = cmd
            .arg(format!("https://127.0.0.1:{}{path}", agent.listen))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl("/metrics", None), "401");
    assert_eq!(curl("/metrics", Some("prom:wrong")), "401");
    assert_eq!(curl("/metrics", Some("prom:scrape-pass")), "200");
    assert_eq!(curl("/healthz", None), "200");
    // Plain HTTP on the TLS port gets nowhere.
    assert!(
        ureq::get(&format!("http://127.0.0.1:{}/metrics", agent.listen))
            .call()
            .is_err()
    );
    // The container health check and exec probes speak HTTPS to it, and
    // `redpush status` verifies its certificate and authenticates.
    let config = agent.dir.path().join("redpush.toml");
    let config = config.to_str().expect("utf-8");
    for args in [
        &["healthcheck", "--config", config][..],
        &["healthcheck", "--ready", "--config", config],
    ] {
        let (code, _, err) = redpush_run(args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    let (code, out, err) = redpush_run(&["status", "--config", config]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&redis.instance()), "{out}");
    let mut agent = agent;
    assert_eq!(agent.process.terminate(), Some(0));
    let (code, _, err) = redpush_run(&["healthcheck", "--config", config]);
    assert_eq!(code, 1, "a stopped agent is not healthy");
    assert!(err.contains("cannot reach the agent"), "{err}");
}

#[test]
fn secrets_never_reach_logs_errors_check_config_or_metrics() {
    const SECRETS: &[&str] = &[
        "redis-S3cret-pw",
        "wrong-S3cret-pw",
        "rw-S3cret-pw",
        "hdr-S3cret-val",
        "http-S3cret-pw",
    ];
    let a = Redis::start(&["--requirepass", "redis-S3cret-pw"]);
    let b = Redis::start(&["--requirepass", "something-else"]);
    let receiver = FaultReceiver::start(
        vec![Fault::Status(400), Fault::Status(503), Fault::Close],
        Fault::Status(204),
    );
    let dir = tempfile::TempDir::new().expect("dir");
    let write = |name: &str, value: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, value).expect("write");
        path.display().to_string()
    };
    let wrong = write("wrong.pass", "wrong-S3cret-pw\n");
    let rw = write("rw.pass", "rw-S3cret-pw\n");
    let http = write("http.pass", "http-S3cret-pw\n");
    let config = format!(
        "interval = \"1s\"\nadaptive = false\n\
         [[targets]]\nurl = \"redis://default:redis-S3cret-pw@127.0.0.1:{}\"\n\
         [[targets]]\nurl = \"{}\"\npassword_file = \"{wrong}\"\n\
         [remote_write]\nurl = \"{}\"\nflush_deadline = \"1s\"\nmin_backoff = \"10ms\"\nmax_backoff = \"100ms\"\n\
         [remote_write.headers]\nX-Scope-OrgID = \"hdr-S3cret-val\"\n\
         [remote_write.basic_auth]\nusername = \"pusher\"\npassword_file = \"{rw}\"\n\
         [http.basic_auth]\nusername = \"prom\"\npassword_file = \"{http}\"\n",
        a.port,
        b.url(),
        receiver.url
    );
    let mut agent = Agent::start(&config, &[]);
    let b_instance = b.instance();
    let metrics_page = wait_until(
        "an auth error and four requests",
        Duration::from_secs(20),
        || {
            let response = ureq::get(&format!("http://127.0.0.1:{}/metrics", agent.listen))
                .header("Authorization", "Basic cHJvbTpodHRwLVMzY3JldC1wdw==")
                .call();
            let text = response
                .map(|mut r| r.body_mut().read_to_string().unwrap_or_default())
                .unwrap_or_default();
            let auth_errors = Page::parse(&text).get(
                "redpush_target_errors_total",
                &[("instance", &b_instance), ("reason", "auth")],
            );
            let ok = auth_errors.is_some_and(|n| n >= 1.0) && receiver.requests() >= 4;
            when(ok, text.clone(), || {
                format!("{text}\n{}", agent.process.output())
            })
        },
    );
    // The secrets were used: the receiver got the basic auth and the header.
    receiver.with_received(|received| {
        let headers = &received[0].headers;
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "authorization" && v.starts_with("Basic "))
        );
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "x-scope-orgid" && v == "hdr-S3cret-val")
        );
    });
    assert_eq!(agent.process.terminate(), Some(0));
    let log = agent.process.output();
    assert!(
        log.contains("authentication failed"),
        "the auth failure is logged:\n{log}"
    );
    let config_path = agent.dir.path().join("redpush.toml");
    let (_, check, check_err) = redpush_run(&[
        "check-config",
        "--config",
        config_path.to_str().expect("utf-8"),
    ]);
    // An error message that names the target: a bad URL with a password in it.
    let (_, _, url_err) = redpush_run(&[
        "check-config",
        "--redis",
        "redis://u:redis-S3cret-pw@host:notaport",
    ]);
    assert!(url_err.contains("redis"), "{url_err}");
    for secret in SECRETS {
        for (what, text) in [
            ("log", &log),
            ("metrics", &metrics_page),
            ("check-config", &check),
            ("check-config errors", &check_err),
            ("URL error", &url_err),
        ] {
            assert!(
                !text.contains(secret),
                "{secret} leaked into the {what}:\n{text}"
            );
        }
    }
}

#[test]
fn a_rotated_password_file_is_picked_up_on_reconnect() {
    let redis = Redis::start(&["--requirepass", "first-pass"]);
    let dir = tempfile::TempDir::new().expect("dir");
    let file = dir.path().join("redis.pass");
    std::fs::write(&file, "first-pass\n").expect("write");
    let config = format!(
        "interval = \"1s\"\nadaptive = false\n[[targets]]\nurl = \"{}\"\npassword_file = \"{}\"\n",
        redis.url(),
        file.display()
    );
    let agent = Agent::start(&config, &[]);
    let wait_up = |want: f64| {
        agent.wait_page(&format!("redis_up {want}"), |page| {
            page.get("redis_up", &[]) == Some(want)
        });
    };
    wait_up(1.0);
    // Rotate on the server and drop the agent's connection: the old password fails.
    let cli = |args: &[&str]| {
        let mut all = vec!["-a", "first-pass", "--no-auth-warning"];
        all.extend_from_slice(args);
        redis.cli(&all)
    };
    cli(&["CONFIG", "SET", "requirepass", "second-pass"]);
    let _ = Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "-a",
            "second-pass",
            "--no-auth-warning",
            "CLIENT",
            "KILL",
            "TYPE",
            "normal",
        ])
        .output();
    wait_up(0.0);
    // The reconnect with the old password is refused as an authentication error.
    agent.wait_page("an auth error", |page| {
        page.get("redpush_target_errors_total", &[("reason", "auth")])
            .is_some_and(|n| n >= 1.0)
    });
    // The new password in the file: the next reconnect uses it.
    std::fs::write(&file, "second-pass\n").expect("write");
    wait_up(1.0);
}
