//! Metrics beyond INFO against live servers: latency spikes and latency
//! histograms compared with what the server itself reports, CLUSTER INFO
//! of a cluster node, and the INFO of a Sentinel watching a primary.

mod common;

use std::time::Duration;

use common::exposition::Page;
use common::servers::{Process, Redis, free_port, program, redpush_run, wait_for};
use common::{wait_until, when};

fn once(url: &str) -> Page {
    let (code, out, err) = redpush_run(&["once", "--redis", url]);
    assert_eq!(code, 0, "{err}");
    Page::parse(&out)
}

#[test]
fn latency_histograms_match_the_servers_own() {
    let redis = Redis::start(&[]);
    for i in 0..500 {
        redis.cli(&["SET", &format!("k{}", i % 7), "v"]);
    }
    let page = once(&redis.url());
    let (calls, buckets) = redis.latency_histogram("set");
    assert_eq!(calls, 500.0);
    assert!(!buckets.is_empty());
    for (le, count) in &buckets {
        assert_eq!(
            page.get(
                "redis_commands_latencies_usec_bucket",
                &[("cmd", "set"), ("le", le)]
            ),
            Some(*count),
            "bucket {le}"
        );
    }
    assert_eq!(
        page.get(
            "redis_commands_latencies_usec_bucket",
            &[("cmd", "set"), ("le", "+Inf")]
        ),
        Some(500.0)
    );
    assert_eq!(
        page.get("redis_commands_latencies_usec_count", &[("cmd", "set")]),
        Some(500.0)
    );
    let usec = redis.cmdstat_usec("set");
    assert_eq!(
        page.get("redis_commands_latencies_usec_sum", &[("cmd", "set")]),
        Some(usec)
    );
    assert_eq!(
        page.type_of("redis_commands_latencies_usec_bucket"),
        Some("histogram")
    );
}

#[test]
fn latency_spikes_match_latency_latest() {
    let redis = Redis::start(&[
        "--enable-debug-command",
        "yes",
        "--latency-monitor-threshold",
        "10",
    ]);
    redis.cli(&["DEBUG", "SLEEP", "0.05"]);
    let latest = redis.cli(&["LATENCY", "LATEST"]);
    let fields: Vec<&str> = latest.lines().map(str::trim).collect();
    assert_eq!(fields.first(), Some(&"command"), "{latest}");
    let page = once(&redis.url());
    let event = [("event_name", "command")];
    assert_eq!(
        page.get("redis_latency_spike_last", &event),
        fields[1].parse().ok()
    );
    let latest_ms: f64 = fields[2].parse().expect("ms");
    assert!(latest_ms >= 50.0);
    assert_eq!(
        page.get("redis_latency_spike_duration_seconds", &event),
        Some(latest_ms / 1000.0)
    );
}

#[test]
fn a_cluster_node_reports_cluster_info() {
    let redis = Redis::start(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
    ]);
    redis.cli(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    redis.wait_cluster_ok();
    redis.cli(&["SET", "k", "v"]);
    let page = once(&redis.url());
    assert_eq!(page.get("redis_cluster_enabled", &[]), Some(1.0));
    assert_eq!(page.get("redis_cluster_state", &[]), Some(1.0));
    assert_eq!(page.get("redis_cluster_slots_assigned", &[]), Some(16384.0));
    assert_eq!(page.get("redis_cluster_slots_fail", &[]), Some(0.0));
    assert_eq!(page.get("redis_cluster_known_nodes", &[]), Some(1.0));
    assert!(
        page.get("redis_cluster_messages_sent_total", &[]).is_some()
            || page.get("redis_cluster_size", &[]).is_some()
    );
    // A cluster has database 0 only.
    assert_eq!(page.get("redis_db_keys", &[("db", "db0")]), Some(1.0));
    assert_eq!(page.get("redis_db_keys", &[("db", "db1")]), None);
}

/// Starts a Sentinel watching `primary` as `mymaster` with quorum `quorum`.
fn sentinel(primary: &Redis, quorum: u32) -> (Process, tempfile::TempDir, u16) {
    let dir = tempfile::TempDir::new().expect("dir");
    let port = free_port();
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {} {quorum}\nsentinel down-after-milliseconds mymaster 3000\nsentinel failover-timeout mymaster 10000\n",
            primary.port
        ),
    )
    .expect("conf");
    let process = Process::spawn(
        "redis-sentinel",
        &program("redis-server"),
        &[conf.display().to_string(), "--sentinel".to_owned()],
        dir.path(),
    );
    (process, dir, port)
}

#[test]
fn a_sentinel_quorum_through_a_failover() {
    let primary = Redis::start(&[]);
    let replica = Redis::start(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    replica.wait_replica_link();
    let sentinels: Vec<_> = (0..3).map(|_| sentinel(&primary, 2)).collect();
    let url = format!("redis://127.0.0.1:{}", sentinels[0].2);
    let master = |address: &str| {
        vec![
            ("master_address", address.to_owned()),
            ("master_name", "mymaster".to_owned()),
        ]
    };
    let get = |page: &Page, name: &str, labels: &[(&str, String)]| {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        page.get(name, &labels)
    };
    let before = master(&primary.instance());
    wait_for(
        &sentinels[0].0,
        "the quorum of three sees the replica",
        || {
            let (code, out, _) = redpush_run(&["once", "--redis", &url]);
            let page = Page::parse(&out);
            code == 0
                && get(&page, "redis_sentinel_master_ok_sentinels", &before) == Some(3.0)
                && get(&page, "redis_sentinel_master_ok_slaves", &before) == Some(1.0)
        },
    );
    let page = once(&url);
    assert_eq!(page.get("redis_sentinel_masters", &[]), Some(1.0));
    assert_eq!(
        get(&page, "redis_sentinel_master_setting_ckquorum", &before),
        Some(2.0)
    );
    assert_eq!(
        get(
            &page,
            "redis_sentinel_master_setting_down_after_milliseconds",
            &before
        ),
        Some(3000.0)
    );
    assert_eq!(
        get(
            &page,
            "redis_sentinel_master_setting_failover_timeout",
            &before
        ),
        Some(10000.0)
    );
    assert_eq!(
        get(
            &page,
            "redis_sentinel_master_setting_parallel_syncs",
            &before
        ),
        Some(1.0)
    );
    assert_eq!(
        get(&page, "redis_sentinel_master_sentinels", &before),
        Some(3.0)
    );
    let mut status = before.clone();
    status.push(("master_status", "ok".to_owned()));
    assert_eq!(
        get(&page, "redis_sentinel_master_status", &status),
        Some(1.0)
    );
    let ckquorum = page
        .values
        .iter()
        .find(|((n, _), _)| n == "redis_sentinel_master_ckquorum_status")
        .map(|((_, l), v)| (l.clone(), *v))
        .expect("ckquorum");
    assert_eq!(ckquorum.1, 1.0, "{ckquorum:?}");
    let info = page
        .values
        .keys()
        .find(|(n, _)| n == "redis_instance_info")
        .map(|(_, l)| l.clone())
        .expect("info");
    assert!(
        info.contains(&("redis_mode".to_owned(), "sentinel".to_owned())),
        "{info:?}"
    );

    // A failover moves the master to the replica's address.
    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &sentinels[0].2.to_string(),
            "SENTINEL",
            "FAILOVER",
            "mymaster",
        ])
        .output()
        .expect("redis-cli");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("OK"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let after = master(&replica.instance());
    wait_for(&sentinels[0].0, "the master moved to the replica", || {
        let (code, out, _) = redpush_run(&["once", "--redis", &url]);
        code == 0
            && get(
                &Page::parse(&out),
                "redis_sentinel_master_setting_ckquorum",
                &after,
            ) == Some(2.0)
    });
    let page = once(&url);
    assert!(get(&page, "redis_sentinel_master_config_epoch", &after).is_some_and(|e| e >= 1.0));
    assert_eq!(
        get(&page, "redis_sentinel_master_setting_ckquorum", &before),
        None,
        "the old address is gone"
    );
}

/// An idle client connection with a name, kept open while it lives.
fn named_client(redis: &Redis, name: &str) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", redis.port)).expect("connect");
    stream
        .write_all(format!("CLIENT SETNAME {name}\r\n").as_bytes())
        .expect("write");
    let mut ok = [0u8; 5];
    stream.read_exact(&mut ok).expect("+OK");
    stream
}

#[test]
fn client_list_summary() {
    let redis = Redis::start(&[]);
    let _workers: Vec<_> = (0..3).map(|_| named_client(&redis, "worker")).collect();
    let _api: Vec<_> = (0..2).map(|_| named_client(&redis, "api")).collect();
    // The oldest client is a second old before the reading.
    wait_until("a client a second old", Duration::from_secs(10), || {
        let list = redis.cli(&["CLIENT", "LIST"]);
        let old = list
            .lines()
            .any(|l| l.contains("name=worker") && !l.contains(" age=0 "));
        when(old, (), || list)
    });
    let dir = tempfile::TempDir::new().expect("dir");
    let config = dir.path().join("redpush.toml");
    std::fs::write(
        &config,
        format!(
            "[[targets]]\nurl = \"{}\"\nclient_list = true\n",
            redis.url()
        ),
    )
    .expect("config");
    let (code, out, err) = redpush_run(&["once", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    let page = Page::parse(&out);
    assert_eq!(
        page.get("redis_clients_by_name", &[("name", "worker")]),
        Some(3.0)
    );
    assert_eq!(
        page.get("redis_clients_by_name", &[("name", "api")]),
        Some(2.0)
    );
    // redpush's own connection has no name (no CLIENT SETNAME).
    assert_eq!(
        page.get("redis_clients_by_name", &[("name", "")]),
        Some(1.0)
    );
    assert_eq!(
        page.get("redis_clients_by_user", &[("user", "default")]),
        Some(6.0)
    );
    assert!(
        page.get("redis_clients_oldest_connection_seconds", &[])
            .is_some_and(|s| s >= 1.0)
    );
    assert!(
        page.get("redis_clients_biggest_output_buffer_bytes", &[])
            .is_some()
    );
}

#[test]
fn a_sentinel_brings_in_the_servers_it_watches() {
    let primary = Redis::start(&[]);
    let replica = Redis::start(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    replica.wait_replica_link();
    let (sentinel_process, _dir, port) = sentinel(&primary, 1);
    let config = format!(
        "interval = \"1s\"\nadaptive = false\n[[targets]]\nurl = \"redis://127.0.0.1:{port}\"\nsentinel_discovery = true\ndiscovery_interval = \"1s\"\n"
    );
    let agent = common::servers::Agent::start(&config, &[]);
    let sentinel_instance = format!("127.0.0.1:{port}");
    wait_for(
        &sentinel_process,
        "the sentinel, the primary and the replica sampled",
        || {
            let page = Page::parse(&agent.metrics());
            [&sentinel_instance, &primary.instance(), &replica.instance()]
                .iter()
                .all(|i| page.get("redis_up", &[("instance", i.as_str())]) == Some(1.0))
        },
    );
    let page = Page::parse(&agent.metrics());
    assert_eq!(
        page.get(
            "redis_connected_slaves",
            &[("instance", &primary.instance())]
        ),
        Some(1.0)
    );
    assert_eq!(
        page.get(
            "redis_sentinel_masters",
            &[("instance", &sentinel_instance)]
        ),
        Some(1.0)
    );
}

#[test]
fn per_client_detail_only_behind_its_flag() {
    let redis = Redis::start(&[]);
    let _worker = named_client(&redis, "worker");
    let dir = tempfile::TempDir::new().expect("dir");
    let run = |extra: &str| {
        let config = dir.path().join("redpush.toml");
        std::fs::write(
            &config,
            format!("[[targets]]\nurl = \"{}\"\n{extra}", redis.url()),
        )
        .expect("config");
        let (code, out, err) = redpush_run(&["once", "--config", config.to_str().expect("utf-8")]);
        assert_eq!(code, 0, "{err}");
        Page::parse(&out)
    };
    let summary = run("client_list = true\n");
    assert!(!summary.names().contains("redis_connected_client_info"));
    let detail = run("client_list_detail = true\n");
    let worker = detail
        .values
        .keys()
        .find(|(n, l)| {
            n == "redis_connected_client_info"
                && l.contains(&("name".to_owned(), "worker".to_owned()))
        })
        .map(|(_, l)| l.clone())
        .expect("the worker's info series");
    let id = worker
        .iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.clone())
        .expect("id");
    assert!(worker.contains(&("host".to_owned(), "127.0.0.1".to_owned())));
    let labels = [("id", id.as_str()), ("name", "worker")];
    assert_eq!(
        detail.get(
            "redis_connected_client_channel_subscriptions_count",
            &labels
        ),
        Some(0.0)
    );
    let created = detail
        .get("redis_connected_client_created_at_timestamp", &labels)
        .expect("created");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!((now - created).abs() < 30.0, "{created} vs {now}");
    // The summary comes with the detail.
    assert_eq!(
        detail.get("redis_clients_by_name", &[("name", "worker")]),
        Some(1.0)
    );
}
