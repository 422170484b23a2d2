//! What an operator reads of a running agent: `/api/status`, the page at
//! `/` (rendered by a real headless Chromium), `redpush status`, and
//! `/readyz` passing while the agent delivers and failing when it cannot.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::servers::{
    Agent, PushgatewayServer, Receiver, Redis, free_port, program, redpush_binary,
};
use common::{wait_until, when};
use redpush::testing::Status;

fn status(agent: &Agent) -> Status {
    let body = common::servers::http_get(&format!("http://127.0.0.1:{}/api/status", agent.listen));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Waits until the agent's status satisfies `accept`.
fn wait_status(agent: &Agent, what: &str, accept: impl Fn(&Status) -> bool) -> Status {
    wait_until(what, Duration::from_secs(40), || {
        let s = status(agent);
        let ok = accept(&s);
        when(ok, s.clone(), || {
            format!("{s:#?}\nagent log:\n{}", agent.process.output())
        })
    })
}

/// HTTP status code and body of GET `path`.
fn get(agent: &Agent, path: &str) -> (String, String) {
    let out = Command::new(program("curl"))
        .args(["-s", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{}{path}", agent.listen))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("code");
    (code.to_owned(), body.to_owned())
}

#[test]
fn status_api_page_and_command_show_targets_queue_and_delivery() {
    let redis = Redis::start(&[]);
    let prometheus = Receiver::prometheus();
    let pushgateway = PushgatewayServer::start();
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let config = format!(
        "interval = \"1s\"\nadaptive = false\n[[targets]]\nurl = \"{}\"\n[[targets]]\nurl = \"{closed}\"\nconnect_timeout = \"1s\"\n[remote_write]\nurl = \"{}\"\nflush_deadline = \"1s\"\n[pushgateway]\nurl = \"{}\"\ninterval = \"1s\"\n",
        redis.url(),
        prometheus.write_url(),
        pushgateway.url()
    );
    let agent = Agent::start(&config, &[]);
    let s = wait_status(
        &agent,
        "both targets sampled, both destinations delivered",
        |s| {
            s.targets.iter().all(|t| t.up.is_some())
                && s.remote_write
                    .first()
                    .is_some_and(|d| d.last_success_timestamp.is_some())
                && s.pushgateway
                    .as_ref()
                    .is_some_and(|d| d.last_success_timestamp.is_some())
        },
    );
    assert_eq!(s.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(s.targets.len(), 2);
    let (up, down) = (&s.targets[0], &s.targets[1]);
    assert_eq!(up.instance, redis.instance());
    assert_eq!(up.up, Some(true));
    assert_eq!(up.interval_seconds, 1.0);
    assert_eq!(up.interval_reason, "configured interval, fixed");
    assert_eq!(up.last_error, None);
    let now = redpush::testing::now_ms() as f64 / 1000.0;
    let sampled = up.last_sample_timestamp.expect("sampled");
    assert!(
        now - sampled < 30.0 && sampled <= now + 1.0,
        "{sampled} vs {now}"
    );
    assert_eq!(down.up, Some(false));
    assert!(
        down.last_error
            .as_deref()
            .is_some_and(|e| e.contains("refused")),
        "{down:?}"
    );
    assert_eq!(s.remote_write.len(), 1);
    let rw = &s.remote_write[0];
    let queue = rw.queue.as_ref().expect("a queue with remote write");
    assert!(queue.bytes > 0, "{queue:?}");
    assert_eq!(queue.dropped.get("rejected"), Some(&0));
    assert_eq!(queue.dropped.len(), 5, "{queue:?}");
    assert_eq!(rw.url, prometheus.write_url());
    let host_port = prometheus
        .write_url()
        .split('/')
        .nth(2)
        .expect("host:port")
        .to_owned();
    assert_eq!(
        rw.name.as_deref(),
        Some(host_port.as_str()),
        "named by host:port"
    );
    assert_eq!(rw.consecutive_failures, 0);
    assert!(
        rw.backlog_drain_eta_seconds.is_some_and(|eta| eta >= 0.0),
        "{rw:?}"
    );
    let pg = s.pushgateway.as_ref().expect("pushgateway");
    assert_eq!(
        pg.url,
        format!("{}/", pushgateway.url()),
        "shown as a URL, path included"
    );
    assert_eq!(pg.consecutive_failures, 0);
    assert_eq!(pg.backlog_drain_eta_seconds, None);

    // The probes: alive, and ready while delivering.
    assert_eq!(
        get(&agent, "/healthz"),
        ("200".to_owned(), "ok\n".to_owned())
    );
    assert_eq!(get(&agent, "/readyz").0, "200");

    // `redpush status`, with the agent's own config file.
    let config_file = agent.dir.path().join("redpush.toml");
    let out = Command::new(redpush_binary())
        .args(["status", "--config"])
        .arg(&config_file)
        .output()
        .expect("redpush status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |instance: &str| {
        text.lines()
            .find(|l| l.starts_with(instance))
            .unwrap_or_else(|| panic!("no line for {instance}:\n{text}"))
            .to_owned()
    };
    assert!(
        line(&redis.instance()).contains("\tup\t1s (configured interval, fixed)"),
        "{text}"
    );
    assert!(line(&down.instance).contains("\tdown\t"), "{text}");
    assert!(line(&down.instance).contains("refused"), "{text}");
    assert!(
        text.contains(&format!(
            "remote write {host_port}\t{}",
            prometheus.write_url()
        )),
        "{text}"
    );

    // The page, as a browser shows it.
    page_in_chromium(&agent, &redis.instance(), &down.instance);
}

/// Loads `/` in headless Chromium: the screenshot is taken, and the DOM the
/// browser built has a row per target with its state.
fn page_in_chromium(agent: &Agent, up: &str, down: &str) {
    let dir = tempfile::TempDir::new().expect("dir");
    let url = format!("http://127.0.0.1:{}/", agent.listen);
    let chromium = |extra: &[&str]| {
        let out = Command::new(program("chromium"))
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--window-size=1280,800",
            ])
            .arg(format!(
                "--user-data-dir={}",
                dir.path().join("profile").display()
            ))
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shot = dir.path().join("status.png");
    chromium(&[&format!("--screenshot={}", shot.display())]);
    assert_png(&shot);
    let dom = chromium(&["--dump-dom"]);
    let rows: Vec<&str> = dom.split("<tr").skip(1).collect();
    let row = |instance: &str| {
        rows.iter()
            .find(|r| r.contains(&format!("<td>{instance}</td>")))
            .unwrap_or_else(|| panic!("no row for {instance}:\n{dom}"))
            .to_owned()
    };
    assert!(row(up).contains("<td>up</td><td>1 s</td>"), "{dom}");
    assert!(row(down).contains("<td>down</td>"), "{dom}");
    assert!(dom.contains("<table id=\"destinations\">"), "{dom}");
    assert!(dom.contains("<td>remote write 127.0.0.1:"), "named: {dom}");
    assert!(dom.contains("<table id=\"queue\">"), "{dom}");
    assert!(!dom.contains("<script"), "readable without JavaScript");
}

/// A PNG of the window's size, not an empty file or an error page's bytes.
fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).expect("screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().expect("width"));
    let height = u32::from_be_bytes(bytes[20..24].try_into().expect("height"));
    assert_eq!((width, height), (1280, 800));
}

#[test]
fn readyz_fails_when_nothing_is_delivered_for_the_timeout() {
    let redis = Redis::start(&[]);
    // Nothing listens there: every push fails.
    let write_url = format!("http://127.0.0.1:{}/api/v1/write", free_port());
    let config = format!(
        "interval = \"1s\"\nadaptive = false\n[[targets]]\nurl = \"{}\"\n[remote_write]\nurl = \"{write_url}\"\nflush_deadline = \"1s\"\nmax_backoff = \"1s\"\n[http]\nready_delivery_timeout = \"3s\"\n",
        redis.url()
    );
    let agent = Agent::start(&config, &[]);
    // Failing is seen first, then the probe turns.
    let s = wait_status(&agent, "failing pushes", |s| {
        s.remote_write
            .first()
            .is_some_and(|d| d.consecutive_failures >= 2)
    });
    let rw = &s.remote_write[0];
    assert_eq!(rw.last_success_timestamp, None);
    assert_eq!(rw.backlog_drain_eta_seconds, None);
    assert!(
        rw.last_error
            .as_deref()
            .is_some_and(|e| e.contains("Connection refused")),
        "{rw:?}"
    );
    let (code, body) = wait_until("/readyz fails", Duration::from_secs(30), || {
        let (code, body) = get(&agent, "/readyz");
        when(code == "503", (code.clone(), body.clone()), || {
            format!("{code} {body}")
        })
    });
    assert_eq!(code, "503");
    assert!(
        body.starts_with("not ready: remote write 127.0.0.1:"),
        "{body}"
    );
    assert_eq!(get(&agent, "/healthz").0, "200", "still alive");
    let log = agent.process.output();
    assert!(
        log.contains("WARN") && log.contains("remote write failing"),
        "{log}"
    );
}
