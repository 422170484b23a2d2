//! The mapping against the community exporter's real output: the INFO of a
//! Redis 7.0 primary and replica in, every series that exporter printed for
//! the same instances out, with the same names, labels and types. Plus the
//! INFO layouts of Redis 6.0 and 6.2 and Valkey.

mod common;

use common::exposition::Page;
use common::{TYPE_CHANGED_SINCE_1_45, exporter_internal, fixture};
use redpush::testing::Families;
use redpush::testing::Info;
use redpush::testing::write_families;
use redpush::testing::{MapOptions, Reading, ServerConfig, Slowlog, map_reading};

/// What the exporter read with CONFIG GET on the reference instance.
fn reference_config() -> ServerConfig {
    ServerConfig::from_pairs([
        ("maxmemory", "0"),
        ("maxclients", "10000"),
        ("io-threads", "1"),
        ("databases", "16"),
        ("repl-backlog-size", "1048576"),
        (
            "client-output-buffer-limit",
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        ),
    ])
}

fn map_text(text: &str, config: Option<&ServerConfig>, options: MapOptions) -> Page {
    let info = Info::parse(text);
    let mut families = Families::new();
    families.plain("redis_up", redpush::testing::Kind::Gauge, 1.0);
    let reading = Reading {
        info: &info,
        config,
        slowlog: Some(Slowlog::default()),
        extras: Default::default(),
        now_secs: 1_795_558_279.0,
    };
    map_reading(&reading, options, &mut families);
    let mut text = String::new();
    write_families(&mut text, &families, &[]);
    Page::parse(&text)
}

/// Checks that `ours` has every series of `exporter` with the same type,
/// and returns the series whose values differ.
fn assert_superset(exporter: &Page, ours: &Page, commands: &[String]) -> Vec<String> {
    let mut missing = Vec::new();
    let mut differing = Vec::new();
    for ((name, labels), value) in &exporter.values {
        if exporter_internal(name) {
            continue;
        }
        // The exporter's own commands (CLIENT SETNAME, INFO, CONFIG GET, ...)
        // ran after the reference INFO was taken; only commands that INFO
        // knew of can be expected.
        if labels
            .iter()
            .any(|(k, v)| k == "cmd" && !commands.contains(v))
        {
            continue;
        }
        match ours.values.get(&(name.clone(), labels.clone())) {
            None => missing.push(format!("{name}{labels:?}")),
            Some(v) => {
                if !TYPE_CHANGED_SINCE_1_45.contains(&name.as_str()) {
                    assert_eq!(
                        ours.type_of(name),
                        exporter.type_of(name),
                        "type of {name} differs from the exporter's"
                    );
                }
                if (v - value).abs() > 1e-9 * value.abs().max(1.0) {
                    differing.push(name.clone());
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "series the exporter has and redpush lacks: {missing:#?}"
    );
    differing
}

/// The reference INFO and the exporter output were taken a few seconds
/// apart; these are the series whose values moved in between (uptime, the
/// exporter's own commands and connection, replication offsets).
const MOVED_BETWEEN_CAPTURES: &[&str] = &[
    "redis_uptime_in_seconds",
    "redis_commands_total",
    "redis_commands_duration_seconds_total",
    "redis_latency_percentiles_usec",
    "redis_latency_percentiles_usec_sum",
    "redis_latency_percentiles_usec_count",
    "redis_commands_processed_total",
    "redis_connections_received_total",
    "redis_net_input_bytes_total",
    "redis_net_output_bytes_total",
    "redis_net_repl_output_bytes_total",
    "redis_total_reads_processed",
    "redis_total_writes_processed",
    "redis_cpu_sys_seconds_total",
    "redis_cpu_user_seconds_total",
    "redis_cpu_sys_main_thread_seconds_total",
    "redis_cpu_user_main_thread_seconds_total",
    "redis_cpu_sys_children_seconds_total",
    "redis_cpu_user_children_seconds_total",
    "redis_master_repl_offset",
    "redis_slave_repl_offset",
    "redis_connected_slave_offset_bytes",
    "redis_repl_backlog_history_bytes",
    "redis_repl_backlog_first_byte_offset",
    "redis_aof_current_size_bytes",
    "redis_db_avg_ttl_seconds",
    "redis_master_last_io_seconds_ago",
    "redis_client_recent_max_input_buffer_bytes",
    "redis_client_recent_max_output_buffer_bytes",
    "redis_connected_clients",
    "redis_total_error_replies",
    "redis_errors_total",
    "redis_keyspace_hits_total",
    "redis_keyspace_misses_total",
    "redis_process_id",
    "redis_start_time_seconds",
    "redis_config_io_threads",
];

/// The commands of the `cmdstat_*` lines of an INFO text.
fn commands_in(info: &str) -> Vec<String> {
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| l.split_once(':'))
        .map(|(cmd, _)| cmd.to_owned())
        .collect()
}

/// Compares the mapping of `info` with the exporter's output for the same
/// instance. `memory_moved`: the memory series whose values moved between
/// the two captures (the allocator's and the dataset's); every other memory
/// series is compared by value.
fn check_against_exporter(info: &str, exporter: &str, memory_moved: &[&str]) {
    let exporter = Page::parse(&fixture(exporter));
    let info = fixture(info);
    let ours = map_text(&info, Some(&reference_config()), MapOptions::default());
    let differing = assert_superset(&exporter, &ours, &commands_in(&info));
    assert_same_help(&exporter, &ours);
    let unexpected: Vec<&String> = differing
        .iter()
        .filter(|name| {
            !MOVED_BETWEEN_CAPTURES.contains(&name.as_str())
                && !memory_moved.contains(&name.as_str())
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "values that should be stable differ: {unexpected:?}"
    );
}

/// Every family of ours has a `# HELP`, the exporter's text where the
/// exporter has the family.
fn assert_same_help(exporter: &Page, ours: &Page) {
    let without: Vec<&String> = ours
        .types
        .keys()
        .filter(|name| !ours.helps.contains_key(*name))
        .collect();
    assert!(without.is_empty(), "families without HELP: {without:?}");
    let mut compared = 0;
    for (name, text) in &exporter.helps {
        let Some(ours) = ours.helps.get(name) else {
            continue;
        };
        assert_eq!(ours, text, "HELP of {name}");
        compared += 1;
    }
    assert!(compared > 100, "only {compared} families compared");
}

#[test]
fn primary_matches_the_exporter_series_for_series() {
    check_against_exporter(
        "info-redis7.0-primary.txt",
        "redis_exporter-1.45-on-redis7.0-primary.txt",
        &[
            "redis_allocator_active_bytes",
            "redis_allocator_allocated_bytes",
            "redis_allocator_frag_bytes",
            "redis_allocator_resident_bytes",
            "redis_mem_fragmentation_bytes",
            "redis_mem_fragmentation_ratio",
            "redis_memory_used_bytes",
            "redis_memory_used_dataset_bytes",
        ],
    );
}

#[test]
fn replica_matches_the_exporter_series_for_series() {
    check_against_exporter(
        "info-redis7.0-replica.txt",
        "redis_exporter-1.45-on-redis7.0-replica.txt",
        &[
            "redis_allocator_active_bytes",
            "redis_allocator_allocated_bytes",
            "redis_allocator_frag_bytes",
            "redis_allocator_resident_bytes",
            "redis_allocator_rss_bytes",
            "redis_allocator_rss_ratio",
            "redis_mem_clients_normal",
            "redis_mem_fragmentation_bytes",
            "redis_mem_fragmentation_ratio",
            "redis_memory_used_bytes",
            "redis_memory_used_dataset_bytes",
            "redis_memory_used_overhead_bytes",
            "redis_memory_used_peak_bytes",
            "redis_memory_used_rss_bytes",
        ],
    );
}

#[test]
fn exact_exporter_set_without_unmapped_fields() {
    let info = fixture("info-redis7.0-primary.txt");
    let ours = map_text(
        &info,
        Some(&reference_config()),
        MapOptions {
            unmapped_fields: false,
            ..MapOptions::default()
        },
    );
    let exporter = Page::parse(&fixture("redis_exporter-1.45-on-redis7.0-primary.txt"));
    assert_superset(&exporter, &ours, &commands_in(&info));
    // Everything beyond 1.45's set is a name the current exporter has too:
    // fields it learned after 1.45, hz, and redis_total_system_memory_bytes
    // (behind a flag there, by default here).
    let extra: Vec<&str> = ours
        .names()
        .into_iter()
        .filter(|n| !exporter.names().contains(n))
        .collect();
    assert_eq!(
        extra,
        [
            "redis_mem_replication_backlog_bytes",
            "redis_rdb_saves_total",
            "redis_config_client_output_buffer_limit_bytes",
            "redis_config_client_output_buffer_limit_overcome_seconds",
            "redis_config_repl_backlog_size",
            "redis_configured_hz",
            "redis_current_eviction_exceeded_time_ms",
            "redis_eviction_exceeded_time_ms_total",
            "redis_evicted_clients_total",
            "redis_hz",
            "redis_max_clients",
            "redis_mem_aof_buffer_bytes",
            "redis_mem_cluster_links_bytes",
            "redis_mem_total_replication_buffers_bytes",
            "redis_memory_used_functions_bytes",
            "redis_memory_used_scripts_eval_bytes",
            "redis_memory_used_vm_eval_bytes",
            "redis_memory_used_vm_functions_bytes",
            "redis_memory_used_vm_total",
            "redis_number_of_functions",
            "redis_number_of_libraries",
            "redis_pubsubshard_channels",
            "redis_rdb_last_load_expired_keys",
            "redis_rdb_last_load_loaded_keys",
            "redis_reply_buffer_expands_total",
            "redis_reply_buffer_shrinks_total",
            "redis_total_system_memory_bytes",
            "redis_async_loading",
            "redis_lazyfreed_objects",
            "redis_net_repl_input_bytes_total",
            "redis_net_repl_output_bytes_total",
            "redis_expire_cycle_cpu_time_ms_total",
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
}

#[test]
fn redis_6_0_layout() {
    let ours = map_text(
        &fixture("info-redis6.0-layout.txt"),
        None,
        MapOptions::default(),
    );
    assert_eq!(
        ours.get("redis_commands_total", &[("cmd", "get")]),
        Some(24.0)
    );
    assert_eq!(
        ours.get("redis_commands_duration_seconds_total", &[("cmd", "get")]),
        Some(0.000096)
    );
    // 6.0 has no rejected/failed call counts, no Errorstats, no Latencystats.
    assert_eq!(
        ours.get("redis_commands_failed_calls_total", &[("cmd", "get")]),
        None
    );
    assert!(!ours.names().contains("redis_errors_total"));
    assert!(!ours.names().contains("redis_latency_percentiles_usec"));
    assert_eq!(ours.get("redis_db_keys", &[("db", "db0")]), Some(10.0));
    assert_eq!(
        ours.get("redis_db_keys_expiring", &[("db", "db0")]),
        Some(2.0)
    );
    assert_eq!(
        ours.get("redis_db_avg_ttl_seconds", &[("db", "db0")]),
        Some(61.0)
    );
    // Without CONFIG, the exporter's default of 16 databases is reported.
    assert_eq!(ours.get("redis_db_keys", &[("db", "db15")]), Some(0.0));
    assert_eq!(ours.get("redis_memory_max_bytes", &[]), Some(104857600.0));
    assert_eq!(ours.get("redis_evicted_keys_total", &[]), Some(5.0));
    assert_eq!(ours.get("redis_rdb_last_bgsave_status", &[]), Some(1.0));
    assert_eq!(ours.get("redis_cpu_sys_seconds_total", &[]), Some(1.234567));
    assert!(!ours.names().contains("redis_config_maxmemory"));
    let info = ours
        .values
        .iter()
        .find(|((name, _), _)| name == "redis_instance_info")
        .map(|((_, labels), _)| labels.clone())
        .expect("instance info");
    assert!(info.contains(&("redis_version".into(), "6.0.16".into())));
    assert!(info.contains(&("maxmemory_policy".into(), "allkeys-lru".into())));
    assert!(info.contains(&("role".into(), "master".into())));
}

#[test]
fn redis_6_2_capture() {
    let ours = map_text(
        &fixture("info-redis6.2.txt"),
        Some(&reference_config()),
        MapOptions::default(),
    );
    assert_eq!(
        ours.get("redis_errors_total", &[("err", "WRONGTYPE")]),
        Some(1.0)
    );
    assert_eq!(
        ours.get("redis_commands_failed_calls_total", &[("cmd", "hget")]),
        Some(1.0)
    );
    assert_eq!(
        ours.get("redis_commands_total", &[("cmd", "set")]),
        Some(2.0)
    );
    assert_eq!(ours.get("redis_db_keys", &[("db", "db0")]), Some(1.0));
    assert_eq!(ours.get("redis_db_keys", &[("db", "db2")]), Some(1.0));
    assert_eq!(
        ours.get("redis_db_keys_expiring", &[("db", "db2")]),
        Some(1.0)
    );
    assert_eq!(ours.get("redis_db_keys", &[("db", "db1")]), Some(0.0));
    assert_eq!(ours.type_of("redis_errors_total"), Some("counter"));
}

#[test]
fn missing_sections_unknown_fields_and_non_numbers() {
    let text = "# Server\r\nredis_version:9.9.9\r\nsome_future_field:42\r\nmem_allocator:jemalloc-5.3.0\r\nused_memory_peak_perc:93.60%\r\nrun_id:12345\r\n";
    let ours = map_text(text, None, MapOptions::default());
    assert_eq!(ours.get("redis_some_future_field", &[]), Some(42.0));
    assert!(
        !ours
            .names()
            .iter()
            .any(|n| n.contains("allocator") || n.contains("perc") || n.contains("run_id"))
    );
    // No Keyspace section at all: still every database, at zero.
    assert_eq!(ours.get("redis_db_keys", &[("db", "db0")]), Some(0.0));
    let strict = map_text(
        text,
        None,
        MapOptions {
            unmapped_fields: false,
            ..MapOptions::default()
        },
    );
    assert_eq!(strict.get("redis_some_future_field", &[]), None);
}

#[test]
fn replica_with_link_down_and_valkey_labels() {
    let text = "# Server\nvalkey_version:8.0.1\nredis_version:7.2.4\nserver_name:valkey\n# Replication\nrole:slave\nmaster_host:10.0.0.5\nmaster_port:6379\nmaster_link_status:down\nmaster_last_io_seconds_ago:-1\nmaster_sync_in_progress:0\nslave_repl_offset:100\nmaster_link_down_since_seconds:12\nslave_read_only:1\n";
    let ours = map_text(text, None, MapOptions::default());
    let master = [("master_host", "10.0.0.5"), ("master_port", "6379")];
    assert_eq!(ours.get("redis_master_link_up", &master), Some(0.0));
    assert_eq!(ours.get("redis_slave_repl_offset", &master), Some(100.0));
    assert_eq!(
        ours.get(
            "redis_slave_info",
            &[
                ("master_host", "10.0.0.5"),
                ("master_port", "6379"),
                ("read_only", "1")
            ]
        ),
        Some(1.0)
    );
    // Not named by the exporter: exported under the field's own name.
    assert_eq!(
        ours.get("redis_master_link_down_since_seconds", &[]),
        Some(12.0)
    );
    let info = ours
        .values
        .keys()
        .find(|(name, _)| name == "redis_instance_info")
        .map(|(_, labels)| labels.clone())
        .expect("instance info");
    assert!(info.contains(&("valkey_version".into(), "8.0.1".into())));
}

#[test]
fn cluster_mode_reports_one_database() {
    let text = "# Cluster\ncluster_enabled:1\n# Keyspace\ndb0:keys=5,expires=0,avg_ttl=0\n";
    let ours = map_text(text, Some(&reference_config()), MapOptions::default());
    assert_eq!(ours.get("redis_db_keys", &[("db", "db0")]), Some(5.0));
    assert_eq!(ours.get("redis_db_keys", &[("db", "db1")]), None);
    assert_eq!(ours.get("redis_cluster_enabled", &[]), Some(1.0));
}

#[test]
fn client_output_buffer_limits_from_config() {
    let ours = map_text(
        "# Server\n",
        Some(&reference_config()),
        MapOptions::default(),
    );
    let bytes = "redis_config_client_output_buffer_limit_bytes";
    assert_eq!(
        ours.get(bytes, &[("class", "slave"), ("limit", "hard")]),
        Some(268435456.0)
    );
    assert_eq!(
        ours.get(bytes, &[("class", "pubsub"), ("limit", "soft")]),
        Some(8388608.0)
    );
    assert_eq!(
        ours.get(
            "redis_config_client_output_buffer_limit_overcome_seconds",
            &[("class", "slave"), ("limit", "soft")]
        ),
        Some(60.0)
    );
    assert_eq!(ours.get("redis_config_maxclients", &[]), Some(10000.0));
}

#[test]
fn every_family_name_appears_once() {
    for name in [
        "info-redis7.0-primary.txt",
        "info-redis7.0-replica.txt",
        "info-redis6.2.txt",
        "info-redis6.0-layout.txt",
    ] {
        let info_text = fixture(name);
        let info = Info::parse(&info_text);
        let mut families = Families::new();
        let reading = Reading {
            info: &info,
            config: Some(&reference_config()),
            slowlog: Some(Slowlog::default()),
            extras: Default::default(),
            now_secs: 0.0,
        };
        map_reading(&reading, MapOptions::default(), &mut families);
        let mut seen = std::collections::HashSet::new();
        for family in &families {
            assert!(
                seen.insert(family.name.to_string()),
                "{name}: {} appears twice",
                family.name
            );
        }
        assert!(
            families.len() > 100,
            "{name}: only {} families",
            families.len()
        );
    }
}

fn map_with(text: &str, extras: redpush::testing::Extras<'_>) -> Page {
    let info = Info::parse(text);
    let mut families = Families::new();
    let reading = Reading {
        info: &info,
        config: Some(&reference_config()),
        slowlog: None,
        extras,
        now_secs: 0.0,
    };
    map_reading(
        &reading,
        MapOptions {
            unmapped_fields: false,
            ..MapOptions::default()
        },
        &mut families,
    );
    let mut text = String::new();
    write_families(&mut text, &families, &[]);
    Page::parse(&text)
}

#[test]
fn sentinel_info_lines() {
    let text = "# Server\nredis_mode:sentinel\n# Sentinel\nsentinel_masters:2\nsentinel_tilt:0\nsentinel_running_scripts:0\nsentinel_scripts_queue_length:0\nsentinel_simulate_failure_flags:0\nmaster0:name=mymaster,status=ok,address=127.0.0.1:6379,slaves=1,sentinels=3\nmaster1:name=other,status=odown,address=10.0.0.2:6380,slaves=0,sentinels=2\n";
    let page = map_with(text, Default::default());
    assert_eq!(page.get("redis_sentinel_masters", &[]), Some(2.0));
    assert_eq!(page.get("redis_sentinel_tilt", &[]), Some(0.0));
    let mymaster = [
        ("master_address", "127.0.0.1:6379"),
        ("master_name", "mymaster"),
    ];
    assert_eq!(
        page.get(
            "redis_sentinel_master_status",
            &[mymaster[0], mymaster[1], ("master_status", "ok")]
        ),
        Some(1.0)
    );
    assert_eq!(
        page.get(
            "redis_sentinel_master_status",
            &[
                ("master_address", "10.0.0.2:6380"),
                ("master_name", "other"),
                ("master_status", "odown")
            ]
        ),
        Some(0.0)
    );
    assert_eq!(
        page.get("redis_sentinel_master_slaves", &mymaster),
        Some(1.0)
    );
    assert_eq!(
        page.get("redis_sentinel_master_sentinels", &mymaster),
        Some(3.0)
    );
}

#[test]
fn latency_events_histograms_and_cluster_info() {
    use redpush::testing::{CommandHistogram, Extras, LatencyEvent};
    let events = [LatencyEvent {
        event: "command".into(),
        last_timestamp: 1_700_000_000.0,
        latest_ms: 250.0,
    }];
    let histograms = [CommandHistogram {
        cmd: "config".into(),
        calls: 4.0,
        buckets: vec![(8.0, 1.0), (16.0, 3.0), (33.0, 4.0)],
    }];
    let cluster = Info::parse(
        "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_fail:0\r\ncluster_known_nodes:6\r\ncluster_stats_messages_sent:120\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n",
    );
    let text = "# Commandstats\ncmdstat_config|get:calls=3,usec=30,usec_per_call=10.00\ncmdstat_config|set:calls=1,usec=12,usec_per_call=12.00\n";
    let page = map_with(
        text,
        Extras {
            latency: Some(&events),
            histograms: Some(&histograms),
            cluster_info: Some(&cluster),
            sentinel: None,
            clients: None,
        },
    );
    assert_eq!(
        page.get("redis_latency_spike_last", &[("event_name", "command")]),
        Some(1_700_000_000.0)
    );
    assert_eq!(
        page.get(
            "redis_latency_spike_duration_seconds",
            &[("event_name", "command")]
        ),
        Some(0.25)
    );
    let bucket = |le: &str| {
        page.get(
            "redis_commands_latencies_usec_bucket",
            &[("cmd", "config"), ("le", le)],
        )
    };
    assert_eq!(
        (bucket("8"), bucket("16"), bucket("33"), bucket("+Inf")),
        (Some(1.0), Some(3.0), Some(4.0), Some(4.0))
    );
    assert_eq!(
        page.get("redis_commands_latencies_usec_sum", &[("cmd", "config")]),
        Some(42.0)
    );
    assert_eq!(
        page.get("redis_commands_latencies_usec_count", &[("cmd", "config")]),
        Some(4.0)
    );
    assert_eq!(
        page.type_of("redis_commands_latencies_usec_bucket"),
        Some("histogram")
    );
    assert_eq!(page.get("redis_cluster_state", &[]), Some(1.0));
    assert_eq!(page.get("redis_cluster_slots_assigned", &[]), Some(16384.0));
    assert_eq!(page.get("redis_cluster_known_nodes", &[]), Some(6.0));
    assert_eq!(
        page.get("redis_cluster_messages_sent_total", &[]),
        Some(120.0)
    );
    assert!(
        !page
            .names()
            .contains("redis_total_cluster_links_buffer_limit_exceeded")
    );
}

#[test]
fn client_summaries_are_capped() {
    use redpush::testing::{Extras, MAX_CLIENT_GROUPS};
    let list: String = (0..60)
        .map(|i| {
            format!(
                "id={i} addr=127.0.0.1:{i} name=c{i} age={i} flags=N user=default omem={} qbuf=0\n",
                i * 10
            )
        })
        .collect();
    let page = map_with(
        "# Server\n",
        Extras {
            clients: Some(&list),
            ..Extras::default()
        },
    );
    let names: Vec<_> = page
        .values
        .keys()
        .filter(|(n, _)| n == "redis_clients_by_name")
        .collect();
    assert_eq!(names.len(), MAX_CLIENT_GROUPS);
    assert_eq!(
        page.get("redis_clients_by_name", &[("name", "other")]),
        Some(11.0)
    );
    assert_eq!(
        page.get("redis_clients_by_flags", &[("flags", "N")]),
        Some(60.0)
    );
    assert_eq!(
        page.get("redis_clients_oldest_connection_seconds", &[]),
        Some(59.0)
    );
    assert_eq!(
        page.get("redis_clients_biggest_output_buffer_bytes", &[]),
        Some(590.0)
    );
}
