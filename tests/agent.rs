//! The long-running agent against live Redis servers: reconnecting after the
//! server goes away, staying quiet on servers without CONFIG and SLOWLOG,
//! and unix sockets. Read through the agent's own /metrics.

mod common;

use common::servers::{Agent, MANAGED_REDIS, Redis, program};

fn target_config(url: &str) -> String {
    format!(
        "interval = \"1s\"\nadaptive = false\n[[targets]]\nurl = \"{url}\"\nconnect_timeout = \"1s\"\ncommand_timeout = \"1s\"\n"
    )
}

#[test]
fn reports_down_while_redis_is_gone_and_reconnects() {
    let redis = Redis::start(&[]);
    let port = redis.port;
    let agent = Agent::start(&target_config(&redis.url()), &[]);
    agent.wait_page("up", |p| p.get("redis_up", &[]) == Some(1.0));

    // Several samples on one connection: no reconnect per sample.
    let agent_served = redis.watch().wait_for_samples(3);
    assert_eq!(
        agent_served.connections, 0,
        "redpush opened new connections"
    );

    drop(redis);
    let page = agent.wait_page("down", |p| p.get("redis_up", &[]) == Some(0.0));
    assert!(
        page.get("redpush_target_errors_total", &[("reason", "connect")])
            .is_some_and(|n| n >= 1.0)
    );
    assert!(agent.metrics().contains("redis_up 0"));

    let _back = Redis::start_on(&program("redis-server"), port, &[]);
    agent.wait_page("up again", |p| {
        p.get("redis_up", &[]) == Some(1.0) && p.get("redis_db_keys", &[("db", "db0")]).is_some()
    });
    let log = agent.process.output();
    assert_eq!(
        log.matches("target down").count(),
        1,
        "one log line per change:\n{log}"
    );
    assert!(log.contains("target up again"), "{log}");
}

#[test]
fn servers_without_config_and_slowlog_are_probed_once_per_connection() {
    let redis = Redis::start(MANAGED_REDIS);
    let agent = Agent::start(&target_config(&redis.url()), &[]);
    agent.wait_page("up", |p| p.get("redis_up", &[]) == Some(1.0));
    // Three more samples on the same connection.
    let agent_served = redis.watch().wait_for_samples(3);
    assert_eq!(
        agent_served.error_replies, 0,
        "the server's error counter grew with the samples"
    );
    let log = agent.process.output();
    assert_eq!(
        log.matches("CONFIG GET is not available").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("SLOWLOG is not available").count(), 1, "{log}");
}

#[test]
fn samples_over_a_unix_socket() {
    let dir = tempfile::TempDir::new().expect("dir");
    let socket = dir.path().join("redis.sock");
    let socket_arg = socket.display().to_string();
    let redis = Redis::start(&["--unixsocket", &socket_arg, "--unixsocketperm", "700"]);
    redis.cli(&["SET", "x", "1"]);
    let agent = Agent::start(&target_config(&format!("unix://{socket_arg}")), &[]);
    let page = agent.wait_page("up", |p| p.get("redis_up", &[]) == Some(1.0));
    assert_eq!(page.get("redis_db_keys", &[("db", "db0")]), Some(1.0));
}

#[test]
fn startup_is_logged_with_version_config_and_state_dir_in_json() {
    let redis = Redis::start(&[]);
    let agent = Agent::start(&target_config(&redis.url()), &["--log-format", "json"]);
    agent.wait_page("up", |p| p.get("redis_up", &[]) == Some(1.0));
    let log = agent.process.output();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let start = &events[0];
    assert_eq!(start["level"], "INFO", "{log}");
    assert_eq!(start["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        start["config"],
        agent.dir.path().join("redpush.toml").display().to_string()
    );
    assert_eq!(start["state_dir"], agent.state_dir().display().to_string());
    assert_eq!(start["targets"], 1);
    assert!(
        events
            .iter()
            .any(|e| e["message"] == "sampling" && e["instance"] == redis.instance()),
        "{log}"
    );
}

/// systemd's Type=notify: READY=1 once the config is loaded and the endpoint
/// listens (systemctl start returns then), STOPPING=1 on SIGTERM.
#[test]
fn tells_systemd_when_ready_and_when_stopping() {
    use std::os::unix::net::UnixDatagram;
    let redis = Redis::start(&[]);
    let dir = tempfile::TempDir::new().expect("dir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind");
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("timeout");
    let listen = common::servers::free_port();
    let config = dir.path().join("redpush.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{listen}\"\nstate_dir = \"{}\"\n{}",
            dir.path().join("state").display(),
            target_config(&redis.url())
        ),
    )
    .expect("config");
    let mut child = std::process::Command::new(common::servers::redpush_binary())
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redpush");
    let mut message = [0u8; 256];
    let n = socket.recv(&mut message).expect("a notification");
    assert_eq!(&message[..n], b"READY=1\n");
    // Ready means serving.
    let health = common::servers::http_get(&format!("http://127.0.0.1:{listen}/healthz"));
    assert_eq!(health, "ok\n");
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let n = socket.recv(&mut message).expect("a notification");
    assert_eq!(&message[..n], b"STOPPING=1\n");
    assert!(child.wait().expect("exit").success());
}

/// A scraper that asks for gzip (Prometheus does) gets the page compressed,
/// and the same page once decompressed.
#[test]
fn metrics_are_gzip_compressed_when_asked_for() {
    use std::io::Read;
    let redis = Redis::start(&[]);
    let agent = Agent::start(&target_config(&redis.url()), &[]);
    agent.wait_page("up", |p| p.get("redis_up", &[]) == Some(1.0));
    let url = format!("http://127.0.0.1:{}/metrics", agent.listen);
    let out = std::process::Command::new(program("curl"))
        .args(["-s", "-D", "-", "-H", "Accept-Encoding: gzip", &url])
        .output()
        .expect("curl");
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers");
    let headers = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let body = &raw[split + 4..];
    assert!(headers.contains("content-encoding: gzip"), "{headers}");
    // The page depends on both: the format (`Accept`) and the compression.
    assert!(
        headers.contains("vary: accept, accept-encoding"),
        "{headers}"
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut text)
        .expect("a gzip stream");
    let names = |page: &str| -> std::collections::BTreeSet<String> {
        page.lines()
            .filter(|l| l.starts_with("# TYPE "))
            .map(str::to_owned)
            .collect()
    };
    let plain = agent.metrics();
    assert!(text.contains("redis_up 1"), "{text}");
    assert_eq!(names(&text), names(&plain));
    assert!(
        body.len() * 3 < plain.len(),
        "{} compressed bytes for {} plain",
        body.len(),
        plain.len()
    );
}
