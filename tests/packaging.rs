//! What ships in `packaging/`: the systemd unit, the Debian package, the
//! Kubernetes examples' configs, the alert rules and the Grafana dashboard,
//! each checked with the tool that consumes it (systemd-analyze, dpkg,
//! `redpush check-config`, promtool, a real Prometheus fed by redpush), and
//! two agents behind a deduplicating VictoriaMetrics (high availability).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::servers::{
    Agent, Receiver, Redis, eventually, http_get, program, push_config, redpush_binary, redpush_run,
};
use common::{wait_until, when};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(program_name: &str, args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(program(program_name))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program_name}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

// --- systemd ------------------------------------------------------------------

#[test]
fn systemd_unit_verifies_and_is_sandboxed() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    // verify checks that ExecStart's program exists: point it at this build.
    let unit = std::fs::read_to_string(repo().join("packaging/systemd/redpush.service"))
        .expect("unit file");
    assert!(unit.contains("ExecStart=/usr/bin/redpush "), "{unit}");
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    assert!(unit.contains("StateDirectory=redpush"));
    // systemctl start returns once the agent says it is ready (tests/agent.rs
    // checks READY=1), and no flag overrides what the config file says.
    assert!(unit.contains("\nType=notify\n"), "{unit}");
    let exec_start = unit
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("ExecStart");
    assert_eq!(
        exec_start,
        "ExecStart=/usr/bin/redpush --config /etc/redpush/redpush.toml"
    );
    let unit = unit.replace("/usr/bin/redpush", &redpush_binary().display().to_string());
    let path = dir.path().join("redpush.service");
    std::fs::write(&path, unit).expect("write unit");
    let path = path.display().to_string();

    let (ok, out) = run("systemd-analyze", &["verify", &path], dir.path());
    assert!(ok && out.trim().is_empty(), "systemd-analyze verify: {out}");

    // The exposure score is 0 (locked down) to 10 (unprotected); --threshold
    // takes it times ten. 2.0 is "OK" in systemd's own words.
    let (ok, out) = run(
        "systemd-analyze",
        &["security", "--offline=true", "--threshold=20", &path],
        dir.path(),
    );
    assert!(ok, "exposure above 2.0: {out}");
    let overall = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_default()
        .to_owned();
    assert!(overall.contains("OK"), "{overall}");
}

// --- Debian package -------------------------------------------------------------

fn dpkg_status(package: &str) -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .expect("dpkg-query");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the .deb with cargo-deb, installs it with dpkg, runs the installed
/// binary against a real Redis, then purges it and checks nothing is left.
/// Needs root (dpkg); CI runs as root.
#[test]
fn deb_package_installs_runs_and_purges_cleanly() {
    // std has no safe geteuid; `id -u` is what every shell script uses.
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        eprintln!("SKIPPED: installing a .deb needs root (CI runs as root)");
        return;
    }
    assert!(
        !dpkg_status("redpush").contains("installed"),
        "a redpush package is already installed on this machine; remove it first"
    );
    let cargo_deb = home_cargo_bin("cargo-deb");
    assert!(
        cargo_deb.exists() || which("cargo-deb"),
        "cargo-deb is missing: run .ci/install-test-deps"
    );

    // Its own target dir: the release build must not wait on the lock of
    // the `cargo test` that runs this.
    let out_dir = tempfile::TempDir::new().expect("temp dir");
    let deb = out_dir.path().join("redpush.deb");
    let status = Command::new("cargo")
        .args(["deb", "--locked", "--output"])
        .arg(&deb)
        .env("CARGO_TARGET_DIR", repo().join("target/deb"))
        .current_dir(repo())
        .status()
        .expect("cargo deb");
    assert!(status.success(), "cargo deb failed");

    // The package's contents and metadata.
    let (ok, contents) = run(
        "dpkg-deb",
        &["--contents", &deb.display().to_string()],
        out_dir.path(),
    );
    assert!(ok, "{contents}");
    for path in [
        "./usr/bin/redpush",
        "./etc/redpush/redpush.toml",
        "/systemd/system/redpush.service",
        "./usr/share/doc/redpush/README.md",
        "./usr/share/redpush/grafana/redis.json",
        "./usr/share/redpush/prometheus/alerts.yml",
        "./usr/share/redpush/prometheus/native-histogram-alerts.yml",
    ] {
        assert!(
            contents.contains(path),
            "{path} not in the package:\n{contents}"
        );
    }
    let (_, conffiles) = run(
        "dpkg-deb",
        &["--info", &deb.display().to_string(), "conffiles"],
        out_dir.path(),
    );
    assert!(
        conffiles.contains("/etc/redpush/redpush.toml"),
        "conffiles: {conffiles}"
    );

    // Install. No service may start here: the tests run their own processes
    // (on a machine with systemd as PID 1, policy-rc.d keeps it stopped).
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let own_policy = !policy.exists();
    if own_policy {
        std::fs::write(policy, "#!/bin/sh\nexit 101\n").expect("policy-rc.d");
        let _ = Command::new("chmod")
            .args(["+x", "/usr/sbin/policy-rc.d"])
            .status();
    }
    let installed = Command::new("dpkg")
        .args(["-i"])
        .arg(&deb)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .expect("dpkg -i");
    let purge = || {
        let _ = Command::new("dpkg")
            .args(["--purge", "redpush"])
            .stdout(Stdio::null())
            .status();
    };
    if !installed.status.success() {
        purge();
        if own_policy {
            let _ = std::fs::remove_file(policy);
        }
        panic!(
            "dpkg -i failed: {}{}",
            String::from_utf8_lossy(&installed.stdout),
            String::from_utf8_lossy(&installed.stderr)
        );
    }
    // Whatever fails below, the machine gets the package removed.
    struct Cleanup<F: Fn()>(F, bool);
    impl<F: Fn()> Drop for Cleanup<F> {
        fn drop(&mut self) {
            (self.0)();
            if self.1 {
                let _ = std::fs::remove_file("/usr/sbin/policy-rc.d");
            }
        }
    }
    let cleanup = Cleanup(purge, own_policy);

    assert_eq!(dpkg_status("redpush"), "install ok installed");
    let passwd = Command::new("getent")
        .args(["passwd", "redpush"])
        .output()
        .expect("getent");
    assert!(passwd.status.success(), "no redpush user after install");
    let state = std::fs::metadata("/var/lib/redpush").expect("/var/lib/redpush");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(state.permissions().mode() & 0o777, 0o700);
    let config = std::fs::metadata("/etc/redpush/redpush.toml").expect("config");
    assert_eq!(config.permissions().mode() & 0o777, 0o640);

    // The installed binary, its installed config, a real Redis.
    let (ok, out) = run(
        "/usr/bin/redpush",
        &["check-config", "--config", "/etc/redpush/redpush.toml"],
        Path::new("/"),
    );
    assert!(ok, "check-config of the packaged config: {out}");
    let redis = Redis::start(&[]);
    let out = Command::new("/usr/bin/redpush")
        .args(["once", "--config", "/etc/redpush/redpush.toml", "--redis"])
        .arg(redis.url())
        .output()
        .expect("installed redpush once");
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{page}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(page.lines().any(|l| l == "redis_up 1"), "{page}");
    let port_line = format!("tcp_port=\"{}\"", redis.port);
    assert!(page.contains(&port_line), "not the test's Redis: {page}");

    // Purge: binary, config, unit, queue and user gone.
    drop(cleanup);
    assert!(!dpkg_status("redpush").contains("installed"));
    for path in [
        "/usr/bin/redpush",
        "/etc/redpush/redpush.toml",
        "/lib/systemd/system/redpush.service",
        "/usr/lib/systemd/system/redpush.service",
        "/var/lib/redpush",
    ] {
        assert!(!Path::new(path).exists(), "{path} left after purge");
    }
    let passwd = Command::new("getent")
        .args(["passwd", "redpush"])
        .output()
        .expect("getent");
    assert!(!passwd.status.success(), "redpush user left after purge");
}

fn home_cargo_bin(name: &str) -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default()
        .join("bin")
        .join(name)
}

fn which(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// --- Kubernetes -------------------------------------------------------------------

/// The `redpush.toml: |` blocks of a manifest, unindented.
fn embedded_configs(manifest: &str) -> Vec<String> {
    let mut configs = Vec::new();
    let mut lines = manifest.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() != "redpush.toml: |" {
            continue;
        }
        let key_indent = line.len() - line.trim_start().len();
        let mut block = String::new();
        while let Some(next) = lines.peek() {
            let indent = next.len() - next.trim_start().len();
            if !next.trim().is_empty() && indent <= key_indent {
                break;
            }
            block.push_str(next.get(key_indent + 2..).unwrap_or("").trim_end());
            block.push('\n');
            lines.next();
        }
        configs.push(block);
    }
    configs
}

#[test]
fn kubernetes_examples_carry_valid_configs() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    for name in ["sidecar.yaml", "deployment.yaml"] {
        let manifest = std::fs::read_to_string(repo().join("packaging/kubernetes").join(name))
            .expect("manifest");
        let configs = embedded_configs(&manifest);
        assert_eq!(configs.len(), 1, "{name}: one redpush.toml expected");
        // check-config reads every file the config names: the Secret's
        // files, mounted here under a directory of the test's.
        let secrets = dir.path().join(format!("{name}-secrets"));
        std::fs::create_dir_all(&secrets).expect("secrets dir");
        for rest in configs[0].split("\"/etc/redpush/secrets/").skip(1) {
            let key = rest.split('"').next().expect("key");
            std::fs::write(secrets.join(key), "from-the-secret\n").expect("secret file");
        }
        let config = configs[0].replace(
            "\"/etc/redpush/secrets/",
            &format!("\"{}/", secrets.display()),
        );
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, &config).expect("write");
        let (code, out, err) =
            redpush_run(&["check-config", "--config", &path.display().to_string()]);
        assert_eq!(code, 0, "{name}: {err}\n{config}");
        // The probes and the Pod's port must match what the agent listens on.
        assert!(out.contains("listen = \"0.0.0.0:9121\""), "{name}: {out}");
        assert!(manifest.contains("containerPort: 9121"), "{name}");
        // Probes through `redpush healthcheck`, which follows the config's
        // [http] TLS; the ConfigMap mounted as a directory (a subPath mount
        // never sees an update) at the path the agent is given; no API token.
        assert!(
            manifest.contains("\"/usr/bin/redpush\", \"healthcheck\", \"--config\", \"/etc/redpush/config/redpush.toml\""),
            "{name}"
        );
        assert!(
            manifest.contains("args: [\"--config\", \"/etc/redpush/config/redpush.toml\"]"),
            "{name}"
        );
        assert!(
            manifest.contains("{name: config, mountPath: /etc/redpush/config, readOnly: true}"),
            "{name}"
        );
        assert!(!manifest.contains("subPath: redpush.toml"), "{name}");
        assert!(
            manifest.contains("automountServiceAccountToken: false"),
            "{name}"
        );
        // Credentials come from the Secret, never inline in the ConfigMap.
        assert!(
            !configs[0].contains("password ="),
            "{name}: inline password"
        );
        for file in configs[0]
            .lines()
            .filter_map(|l| l.split_once("password_file = \"").map(|(_, r)| r))
        {
            let file = file.trim_end_matches('"');
            assert!(
                file.starts_with("/etc/redpush/secrets/"),
                "{name}: {file} is not in the Secret's mount"
            );
            let key = file.trim_start_matches("/etc/redpush/secrets/");
            assert!(
                manifest.contains(&format!("  {key}: ")),
                "{name}: the Secret lacks {key}"
            );
        }
    }
}

// --- alert rules -------------------------------------------------------------------

#[test]
fn alert_rules_pass_promtool_and_every_alert_has_a_test() {
    let dir = repo().join("packaging/prometheus");
    let (ok, out) = run("promtool", &["check", "rules", "alerts.yml"], &dir);
    assert!(ok, "promtool check rules: {out}");
    // Tested live instead (tests/native_histograms.rs): promtool 2.42
    // cannot write native histograms in a unit test.
    let native = "native-histogram-alerts.yml";
    let (ok, out) = run("promtool", &["check", "rules", native], &dir);
    assert!(
        ok && out.contains("1 rules found"),
        "promtool check rules: {out}"
    );
    let (ok, out) = run("promtool", &["test", "rules", "alerts_test.yml"], &dir);
    assert!(ok && out.contains("SUCCESS"), "promtool test rules: {out}");

    let rules = std::fs::read_to_string(dir.join("alerts.yml")).expect("alerts.yml");
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).expect("alerts_test.yml");
    let names = |text: &str, key: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(key))
            .map(|n| n.trim().to_owned())
            .collect()
    };
    let alerts = names(&rules, "- alert:");
    let tested = names(&tests, "alertname:");
    assert!(alerts.len() >= 12, "{alerts:?}");
    let untested: Vec<_> = alerts.difference(&tested).collect();
    assert!(
        untested.is_empty(),
        "alerts without a unit test: {untested:?}"
    );
}

// --- Grafana dashboard ---------------------------------------------------------------

/// Every `expr` of the dashboard, with the panel's title.
/// Each dashboard query with its panel's title, `$__rate_interval` as
/// Grafana works it out for that panel (below).
fn dashboard_queries() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(repo().join("packaging/grafana/redis.json")).expect("redis.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let variables: BTreeSet<String> = dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    for needed in ["datasource", "job", "instance", "agent"] {
        assert!(variables.contains(needed), "variable {needed} missing");
    }
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or_default().to_owned();
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        let rate_interval = rate_interval(panel["interval"].as_str());
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            queries.push((title.clone(), substitute(expr, &rate_interval)));
        }
    }
    queries
}

/// Grafana's `$__rate_interval` for a panel with this min interval, on a
/// Prometheus data source at Grafana's default scrape interval (15 s):
/// max($__interval + 15s, 4 × 15s), `$__interval` being the larger of the
/// panel's min interval and the time range's step (small: a few seconds
/// over the last hour on a wide panel).
fn rate_interval(min_interval: Option<&str>) -> String {
    let min = min_interval.map_or(0, |text| {
        humantime_seconds(text).unwrap_or_else(|| panic!("min interval {text}"))
    });
    format!("{}s", (min + 15).max(60))
}

fn humantime_seconds(text: &str) -> Option<u64> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    match unit {
        "s" => Some(n),
        "m" => Some(n * 60),
        _ => None,
    }
}

/// Grafana's variables as a user who picked "All" gets them.
fn substitute(expr: &str, rate_interval: &str) -> String {
    expr.replace("$__rate_interval", rate_interval)
        .replace("$job", ".+")
        .replace("$instance", ".+")
        .replace("$agent", ".+")
}

/// Whether a panel shows native histograms: empty unless they are on
/// (`latency_histograms`), which the default is not.
fn needs_native_histograms(title: &str) -> bool {
    title.contains("(native histograms)")
}

#[test]
fn every_dashboard_query_returns_data_from_redpush() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 30, "{} queries", queries.len());
    assert!(
        queries
            .iter()
            .any(|(title, _)| needs_native_histograms(title))
    );

    // A primary with AOF and maxmemory and a replica: every panel has a
    // source; native histograms beside the classic ones, for the heatmap.
    let primary = Redis::start(&["--appendonly", "yes", "--maxmemory", "200mb"]);
    let replica_of = format!("127.0.0.1 {}", primary.port);
    let replica = Redis::start(&["--replicaof", &replica_of]);
    primary.wait_replicas_online(1);
    let prometheus = Receiver::prometheus_native("");
    let both = "[metrics]\nlatency_histograms = \"both\"\n";
    let config = push_config(
        &[primary.url(), replica.url()],
        &prometheus.write_url(),
        both,
    );
    let _agent = Agent::start(&config, &[]);

    // Traffic, keys with and without a TTL, and an error reply.
    for i in 0..50 {
        primary.cli(&["SET", &format!("k{i}"), "v"]);
        primary.cli(&["SET", &format!("t{i}"), "v", "EX", "3600"]);
        primary.cli(&["GET", &format!("missing{i}")]);
    }
    primary.cli(&["LPUSH", "k0", "x"]);
    let load = primary.load(2);

    // Rates need two complete readings in their window (one every 10 s).
    wait_for_every_query(&prometheus, queries, Duration::from_secs(90));
    drop(load);
}

/// Waits until each query has returned data once.
fn wait_for_every_query(prometheus: &Receiver, queries: Vec<(String, String)>, within: Duration) {
    let mut waiting = queries;
    wait_until("every query has data", within, || {
        waiting.retain(|(_, promql)| prometheus.query(promql).is_empty());
        let empty = waiting
            .iter()
            .map(|(title, promql)| format!("{title}: {promql}"))
            .collect::<Vec<_>>();
        when(empty.is_empty(), (), || empty.join("\n"))
    });
}

/// The defaults' steady state for a quiet target: the adaptive interval
/// at `max_interval` (60 s), where a panel's query over a window of a
/// minute would hold one sample and show nothing.
#[test]
fn every_dashboard_query_returns_data_at_the_defaults_steady_state() {
    let mut queries = dashboard_queries();
    queries.retain(|(title, _)| !needs_native_histograms(title));
    let primary = Redis::start(&["--appendonly", "yes", "--maxmemory", "200mb"]);
    let replica_of = format!("127.0.0.1 {}", primary.port);
    let replica = Redis::start(&["--replicaof", &replica_of]);
    primary.wait_replicas_online(1);
    // Keys, hits and misses and an error reply, then quiet.
    for i in 0..20 {
        primary.cli(&["SET", &format!("k{i}"), "v"]);
        primary.cli(&["SET", &format!("t{i}"), "v", "EX", "3600"]);
        primary.cli(&["GET", &format!("k{i}")]);
        primary.cli(&["GET", &format!("missing{i}")]);
    }
    primary.cli(&["LPUSH", "k0", "x"]);
    let prometheus = Receiver::prometheus();
    // The default configuration but for where it pushes, and an interval
    // that starts where a quiet target's ends: at max_interval.
    let config = format!(
        "interval = \"1m\"\n[[targets]]\nurl = \"{}\"\n[[targets]]\nurl = \"{}\"\n[remote_write]\nurl = \"{}\"\n",
        primary.url(),
        replica.url(),
        prometheus.write_url()
    );
    let agent = Agent::start(&config, &[]);
    let max_interval = 60.0;
    wait_for_every_query(&prometheus, queries, Duration::from_secs(150));
    // And they were quiet at the longest interval throughout.
    let status: serde_json::Value = serde_json::from_str(&http_get(&format!(
        "http://127.0.0.1:{}/api/status",
        agent.listen
    )))
    .expect("status");
    for target in status["targets"].as_array().expect("targets") {
        assert_eq!(target["interval_seconds"], max_interval, "{target}");
        assert_eq!(target["up"], true, "{target}");
    }
}

// --- high availability ------------------------------------------------------------------

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Two agents sample one Redis and push the same series into a
/// VictoriaMetrics that deduplicates; one is killed; redis_up goes on.
#[test]
fn two_agents_into_deduplicating_victoria_metrics_leave_no_gap() {
    let redis = Redis::start(&[]);
    let vm = Receiver::victoria_metrics_with(&["-dedup.minScrapeInterval=1s"]);
    // Identical labels on both agents: VictoriaMetrics keeps one sample per
    // series per second. (Mimir/Cortex would want a distinct replica label per
    // agent instead; see README.)
    let config = push_config(
        &[redis.url()],
        &vm.write_url(),
        "[external_labels]\ncluster = \"ha-test\"",
    );
    let a = Agent::start(&config, &[]);
    let _b = Agent::start(&config, &[]);
    let selector = format!(
        "redis_up{{instance=\"{}\",cluster=\"ha-test\"}}",
        redis.instance()
    );
    eventually(
        "redis_up from both agents",
        Duration::from_secs(30),
        || vm.query(&selector),
        |r| r.len() == 1 && r[0].1 == 1.0,
    );
    let start = unix_now();
    // Eight seconds of both agents' samples, then twelve of the survivor's.
    redis.watch().wait_for_samples(16);
    let killed_at = unix_now();
    drop(a.kill());
    redis.watch().wait_for_samples(12);
    let end = unix_now();
    // The survivor's batch with the window's last sample has landed.
    eventually(
        "a sample after the window",
        Duration::from_secs(30),
        || vm.query(&format!("timestamp({selector})")),
        |r| r.len() == 1 && r[0].1 > end,
    );

    // The raw samples of the whole window, as the receiver keeps them.
    let window = format!("{selector}[{}s]", (end - start).ceil() as u64 + 2);
    let series = vm.raw_samples(&window, end);
    assert_eq!(series.len(), 1, "one series expected: {series:?}");
    let times: Vec<f64> = series[0]
        .1
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| (start..=end).contains(t))
        .collect();
    // No gap: the survivor's samples follow the killed agent's at once.
    let worst = times
        .windows(2)
        .map(|w| (w[1] - w[0], w[0] - killed_at))
        .fold((0.0, 0.0), |m, g| if g.0 > m.0 { g } else { m });
    assert!(
        worst.0 < 2.5,
        "a {:.1} s gap in redis_up, {:.1} s after the kill",
        worst.0,
        worst.1
    );
    assert!(times.len() as f64 >= (end - start) - 3.0, "{times:?}");
    // Deduplicated: while both agents pushed, still about one sample a second.
    let before_kill = times.iter().filter(|t| **t < killed_at).count() as f64;
    assert!(
        before_kill <= (killed_at - start) + 2.0,
        "{before_kill} samples in {:.1} s: not deduplicated",
        killed_at - start
    );
}

// --- container ---------------------------------------------------------------------------

/// No Docker engine here: the Dockerfile's promises are checked as text, and
/// its HEALTHCHECK command is run against a real agent.
#[test]
fn dockerfile_runs_unprivileged_and_its_healthcheck_probes_the_agent() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    assert!(dockerfile.contains("cargo build --release --locked"));
    assert!(dockerfile.contains("USER redpush"));
    assert!(dockerfile.contains("VOLUME [\"/var/lib/redpush\"]"));
    let healthcheck: String = {
        let start = dockerfile.find("HEALTHCHECK").expect("a HEALTHCHECK");
        let cmd = dockerfile[start..].find("CMD [").expect("CMD") + start + 4;
        let end = dockerfile[cmd..].find("]\n").expect("end of CMD") + cmd + 1;
        dockerfile[cmd..end].to_owned()
    };
    let argv: Vec<String> = serde_json::from_str(&healthcheck).expect("CMD is a JSON array");
    assert_eq!(
        argv,
        [
            "/usr/bin/redpush",
            "healthcheck",
            "--config",
            "/etc/redpush/redpush.toml"
        ]
    );
    // No flag overrides the image's config file; that file listens on all
    // interfaces, so the published port reaches the agent.
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/bin/redpush\"]\n"));
    assert!(
        dockerfile.contains(
            r#"sed -i 's/^listen = .*/listen = "0.0.0.0:9121"/' /etc/redpush/redpush.toml"#
        )
    );

    // The health check as the image runs it: this build, the agent's config.
    let probe = |config: &Path| {
        Command::new(redpush_binary())
            .args(&argv[1..3])
            .arg(config)
            .status()
            .expect("redpush healthcheck")
            .success()
    };
    let redis = Redis::start(&[]);
    let agent = Agent::start(&format!("[[targets]]\nurl = \"{}\"\n", redis.url()), &[]);
    let config = agent.dir.path().join("redpush.toml");
    assert!(probe(&config), "healthcheck failed against a running agent");
    let dir = agent.kill();
    assert!(
        !probe(&dir.path().join("redpush.toml")),
        "healthcheck passed with no agent"
    );
}
