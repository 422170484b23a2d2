//! Turns one reading (parsed INFO plus the few other replies the sampler
//! collects) into metric families with the community exporter's names,
//! labels, types and units.
//!
//! Pure: no I/O, no clock (the caller passes `now`). Plain fields go through
//! the table in `table.rs`; this file holds only the fields that carry labels
//! or need another field to make sense.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use super::table::{self, IDENTITY_FIELDS, INFO_FIELDS};
use super::{Families, Kind, Labels, Name, NativeHistogram, SmolStr, format_smolstr, smallvec};
use crate::config::LatencyHistograms;
use crate::reading::{CommandHistogram, LatencyEvent, SentinelMaster, ServerConfig, Slowlog};
use crate::redis::info::{Info, number, pair, pairs, pairs_named};

/// Replies of commands beyond INFO, CONFIG and SLOWLOG; each is absent when
/// the server does not have (or allow) the command.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extras<'a> {
    pub latency: Option<&'a [LatencyEvent]>,
    pub histograms: Option<&'a [CommandHistogram]>,
    /// `CLUSTER INFO`, parsed like INFO.
    pub cluster_info: Option<&'a Info<'a>>,
    pub sentinel: Option<&'a [SentinelMaster]>,
    /// `CLIENT LIST` text.
    pub clients: Option<&'a str>,
}

/// The replies of one sample, ready to map.
#[derive(Clone, Copy, Debug)]
pub struct Reading<'a> {
    pub info: &'a Info<'a>,
    pub config: Option<&'a ServerConfig>,
    pub slowlog: Option<Slowlog>,
    pub extras: Extras<'a>,
    /// Unix time in seconds, for `redis_start_time_seconds`.
    pub now_secs: f64,
}

#[derive(Clone, Copy, Debug)]
pub struct MapOptions {
    /// Export numeric INFO fields the exporter has no name for as
    /// `redis_<field>` gauges (`instantaneous_ops_per_sec`, `total_forks`, ...).
    pub unmapped_fields: bool,
    /// With a CLIENT LIST reply: also the exporter's series per client
    /// (one `redis_connected_client_*` set per connection; opt-in, as the
    /// number of series follows the number of clients).
    pub client_detail: bool,
    /// How `LATENCY HISTOGRAM` is exported.
    pub latency_histograms: LatencyHistograms,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            unmapped_fields: true,
            client_detail: false,
            latency_histograms: LatencyHistograms::Classic,
        }
    }
}

/// Most databases reported with zero keys when empty.
pub(crate) const MAX_DATABASES: u32 = 1024;

/// Names the mapper produces itself; an unmapped field must never take one.
const SPECIAL_NAMES: &[&str] = &[
    "redis_up",
    "redis_start_time_seconds",
    "redis_instance_info",
    "redis_slave_info",
    "redis_master_link_up",
    "redis_master_last_io_seconds_ago",
    "redis_master_sync_in_progress",
    "redis_slave_repl_offset",
    "redis_connected_slave_offset_bytes",
    "redis_connected_slave_lag_seconds",
    "redis_db_keys",
    "redis_db_keys_expiring",
    "redis_db_avg_ttl_seconds",
    "redis_db_keys_cached",
    "redis_commands_total",
    "redis_commands_duration_seconds_total",
    "redis_commands_rejected_calls_total",
    "redis_commands_failed_calls_total",
    "redis_latency_percentiles_usec",
    "redis_errors_total",
    "redis_active_time_io_thread_seconds_total",
    "redis_config_maxmemory",
    "redis_config_maxclients",
    "redis_config_io_threads",
    "redis_config_repl_backlog_size",
    "redis_config_client_output_buffer_limit_bytes",
    "redis_config_client_output_buffer_limit_overcome_seconds",
    "redis_slowlog_length",
    "redis_slowlog_last_id",
    "redis_last_slow_execution_duration_seconds",
    "redis_latency_spike_last",
    "redis_latency_spike_duration_seconds",
    "redis_commands_latencies_usec",
    "redis_sentinel_master_status",
    "redis_sentinel_master_slaves",
    "redis_sentinel_master_sentinels",
    "redis_sentinel_master_setting_ckquorum",
    "redis_sentinel_master_setting_failover_timeout",
    "redis_sentinel_master_setting_parallel_syncs",
    "redis_sentinel_master_setting_down_after_milliseconds",
    "redis_sentinel_master_config_epoch",
    "redis_sentinel_master_last_ok_ping_reply_seconds",
    "redis_sentinel_master_ckquorum_status",
    "redis_sentinel_master_ok_sentinels",
    "redis_sentinel_master_ok_slaves",
    "redis_clients_by_name",
    "redis_clients_by_user",
    "redis_clients_by_flags",
    "redis_clients_oldest_connection_seconds",
    "redis_clients_biggest_output_buffer_bytes",
    "redis_clients_biggest_query_buffer_bytes",
    "redis_connected_client_info",
    "redis_connected_client_output_buffer_memory_usage_bytes",
    "redis_connected_client_total_memory_consumed_bytes",
    "redis_connected_client_created_at_timestamp",
    "redis_connected_client_idle_since_timestamp",
    "redis_connected_client_channel_subscriptions_count",
    "redis_connected_client_pattern_matching_subscriptions_count",
    "redis_connected_client_query_buffer_length_bytes",
    "redis_connected_client_query_buffer_free_space_bytes",
    "redis_connected_client_output_buffer_length_bytes",
    "redis_connected_client_output_list_length",
];

/// Most label values per client summary family; the rest are summed
/// under `other`, so a server with thousands of distinct client names
/// cannot blow up the series count.
pub const MAX_CLIENT_GROUPS: usize = 50;

static RESERVED_NAMES: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    INFO_FIELDS
        .iter()
        .map(|row| row.1)
        .chain(SPECIAL_NAMES.iter().copied())
        .collect()
});

/// Labels of `redis_instance_info`, with the INFO field each comes from.
const INSTANCE_INFO_LABELS: &[&str] = &[
    "maxmemory_policy",
    "os",
    "process_id",
    "redis_build_id",
    "redis_mode",
    "redis_version",
    "role",
    "run_id",
    "tcp_port",
];

/// Labels Valkey adds to `redis_instance_info`, only when its INFO has them.
const VALKEY_INFO_LABELS: &[&str] = &["valkey_release_stage", "valkey_version"];

/// One `cmdstat_<cmd>` line.
struct CommandStat<'a> {
    cmd: &'a str,
    calls: f64,
    usec: f64,
    rejected: Option<f64>,
    failed: Option<f64>,
}

impl<'a> CommandStat<'a> {
    /// `calls=..,usec=..,usec_per_call=..,rejected_calls=..,failed_calls=..`
    /// of command `cmd` (the last two from Redis 6.2 on).
    fn parse(cmd: &'a str, value: &str) -> Self {
        let [calls, usec, rejected, failed] =
            pairs_named(value, ["calls", "usec", "rejected_calls", "failed_calls"])
                .map(|v| v.and_then(number));
        CommandStat {
            cmd,
            calls: calls.unwrap_or(0.0),
            usec: usec.unwrap_or(0.0),
            rejected,
            failed,
        }
    }
}

/// Replica-side replication fields, gathered during the pass because the
/// labels (`master_host`, `master_port`) come from other lines.
#[derive(Default)]
struct ReplicaSide<'a> {
    master_host: &'a str,
    master_port: &'a str,
    link_status: Option<&'a str>,
    last_io: Option<f64>,
    sync_in_progress: Option<f64>,
    repl_offset: Option<f64>,
    read_only: &'a str,
}

/// The fields whose series need other fields, or all of their kind,
/// gathered in the one pass over INFO and mapped after it.
#[derive(Default)]
struct Gathered<'a> {
    keyspace: Vec<(u32, &'a str)>,
    cmdstats: Vec<CommandStat<'a>>,
    latencies: Vec<(&'a str, &'a str)>,
    replicas: Vec<&'a str>,
    replica_side: ReplicaSide<'a>,
    role: &'a str,
    cluster_enabled: bool,
    sentinel_masters: Vec<&'a str>,
}

/// Maps one reading into `out`. `redis_up` is the caller's: it knows whether
/// the sample succeeded at all.
pub fn map_reading(reading: &Reading<'_>, options: MapOptions, out: &mut Families) {
    let info = reading.info;
    let mut g = Gathered::default();
    for field in info.fields() {
        g.take(field.section, field.key, field.value, reading, options, out);
    }
    // A reading between complete ones has no `server` section.
    if info.get("redis_version").is_some() {
        instance_info(info, out);
    }
    if g.role == "slave" {
        replica_metrics(&g.replica_side, out);
    }
    connected_replicas(&g.replicas, out);
    let databases = if g.cluster_enabled {
        1
    } else {
        // A server may claim any number; past a sane bound the zero series
        // would only cost memory (Redis' own default is 16).
        reading
            .config
            .and_then(|c| c.databases)
            .unwrap_or(16)
            .min(MAX_DATABASES)
    };
    keyspace_metrics(&mut g.keyspace, databases, out);
    command_metrics(&g.cmdstats, out);
    latency_summaries(&g.latencies, &g.cmdstats, out);
    if let Some(config) = reading.config {
        config_metrics(config, out);
    }
    sentinel_metrics(&g.sentinel_masters, out);
    map_extras(&reading.extras, &g.cmdstats, reading.now_secs, options, out);
    if let Some(slowlog) = reading.slowlog {
        out.plain("redis_slowlog_length", Kind::Gauge, slowlog.length);
        out.plain("redis_slowlog_last_id", Kind::Gauge, slowlog.last_id);
        out.plain(
            "redis_last_slow_execution_duration_seconds",
            Kind::Gauge,
            slowlog.last_duration_micros / 1e6,
        );
    }
}

impl<'a> Gathered<'a> {
    /// Takes one INFO field: keeps it for later, or maps it at once when
    /// its series stands alone.
    fn take(
        &mut self,
        section: &str,
        key: &'a str,
        value: &'a str,
        reading: &Reading<'_>,
        options: MapOptions,
        out: &mut Families,
    ) {
        if let Some(db) = db_index(key) {
            self.keyspace.push((db, value));
        } else if let Some(cmd) = key.strip_prefix("cmdstat_") {
            self.cmdstats.push(CommandStat::parse(cmd, value));
        } else if let Some(cmd) = key.strip_prefix("latency_percentiles_usec_") {
            self.latencies.push((cmd, value));
        } else if let Some(err) = key.strip_prefix("errorstat_") {
            if let Some(count) = pair(value, "count").and_then(number) {
                let labels = smallvec![("err", err.into())];
                out.push("redis_errors_total", Kind::Counter, "", labels, count);
            }
        } else if is_numbered(key, "slave") {
            self.replicas.push(value);
        } else if let Some(thread) = key.strip_prefix("used_active_time_io_thread_") {
            if let Some(v) = number(value) {
                let labels = smallvec![("thread", thread.into())];
                out.push(
                    "redis_active_time_io_thread_seconds_total",
                    Kind::Counter,
                    "",
                    labels,
                    v,
                );
            }
        } else if section.eq_ignore_ascii_case("sentinel") && is_numbered(key, "master") {
            self.sentinel_masters.push(value);
        } else if key.starts_with("sentinel_") {
            // The exporter names every sentinel_* field after itself.
            if let Some(v) = number(value) {
                out.plain(field_name(key).0, Kind::Gauge, v);
            }
        } else {
            self.take_plain(key, value, reading, options, out);
        }
    }

    /// A field without a prefix of its own: replication and mode fields are
    /// kept, the rest go through the table.
    fn take_plain(
        &mut self,
        key: &'a str,
        value: &'a str,
        reading: &Reading<'_>,
        options: MapOptions,
        out: &mut Families,
    ) {
        let side = &mut self.replica_side;
        match key {
            "role" => self.role = value,
            "master_host" => side.master_host = value,
            "master_port" => side.master_port = value,
            "master_link_status" => side.link_status = Some(value),
            "master_last_io_seconds_ago" => side.last_io = number(value),
            "master_sync_in_progress" => side.sync_in_progress = number(value),
            "slave_repl_offset" => side.repl_offset = number(value),
            "slave_read_only" | "replica_read_only" => side.read_only = value,
            "cluster_enabled" => {
                self.cluster_enabled = value == "1";
                generic(key, value, options, out);
            }
            "uptime_in_seconds" => {
                if let Some(uptime) = number(value) {
                    let started = reading.now_secs.floor() - uptime;
                    out.plain("redis_start_time_seconds", Kind::Gauge, started);
                }
                generic(key, value, options, out);
            }
            _ => generic(key, value, options, out),
        }
    }
}

/// The replies beyond INFO, CONFIG and SLOWLOG.
fn map_extras(
    extras: &Extras<'_>,
    cmdstats: &[CommandStat<'_>],
    now_secs: f64,
    options: MapOptions,
    out: &mut Families,
) {
    if let Some(events) = extras.latency {
        latency_events(events, out);
    }
    if let Some(histograms) = extras.histograms {
        latency_histograms(histograms, cmdstats, options.latency_histograms, out);
    }
    if let Some(clients) = extras.clients {
        client_summary(clients, out);
        if options.client_detail {
            client_detail(clients, now_secs, out);
        }
    }
    if let Some(masters) = extras.sentinel {
        sentinel_details(masters, out);
    }
    if let Some(cluster) = extras.cluster_info {
        for field in cluster.fields() {
            // The exporter keeps only the cluster_* fields of CLUSTER INFO.
            if field.key.starts_with("cluster_") && field.key != "cluster_enabled" {
                generic(field.key, field.value, options, out);
            }
        }
    }
}

/// A field with no labels: the table, the exporter's `cluster_` prefix rule,
/// or (when enabled) a gauge named after the field.
fn generic(key: &str, value: &str, options: MapOptions, out: &mut Families) {
    let Some(v) = number(value) else { return };
    if let Some(&(_, name, kind, scale)) = table::lookup(key) {
        out.plain(name, kind, scale.apply(v));
    } else if key.starts_with("cluster_") {
        out.plain(field_name(key).0, Kind::Gauge, v);
    } else if options.unmapped_fields && !IDENTITY_FIELDS.contains(&key) {
        let (name, reserved) = field_name(key);
        if !reserved {
            out.plain(name, Kind::Gauge, v);
        }
    }
}

/// Most names of unknown INFO fields kept; past it (a server inventing
/// field names) they are made anew at each reading instead.
const MAX_FIELD_NAMES: usize = 4096;

/// Names made for INFO fields the table does not know, by field.
type FieldNames = HashMap<Box<str>, (Arc<str>, bool), foldhash::fast::RandomState>;
static FIELD_NAMES: LazyLock<Mutex<FieldNames>> = LazyLock::new(Default::default);

/// The exporter's name for an INFO field the table does not know,
/// `redis_<field>`, and whether the mapper makes that name itself (then
/// the field must not take it). Made once per process: a reading has a few
/// dozen such fields, and formatting their names was most of the mapper's
/// allocations.
fn field_name(key: &str) -> (Name, bool) {
    let mut names = FIELD_NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((name, reserved)) = names.get(key) {
        return (Name::Shared(name.clone()), *reserved);
    }
    let name = format!("redis_{}", sanitize(key));
    let reserved = RESERVED_NAMES.contains(name.as_str());
    let name: Arc<str> = name.into();
    if names.len() < MAX_FIELD_NAMES {
        names.insert(key.into(), (name.clone(), reserved));
    }
    (Name::Shared(name), reserved)
}

fn instance_info(info: &Info<'_>, out: &mut Families) {
    let mut labels: Labels = INSTANCE_INFO_LABELS
        .iter()
        .map(|&name| (name, info.get(name).unwrap_or("").into()))
        .collect();
    for &name in VALKEY_INFO_LABELS {
        if let Some(value) = info.get(name) {
            labels.push((name, value.into()));
        }
    }
    labels.sort_by_key(|(name, _)| *name);
    out.push("redis_instance_info", Kind::Gauge, "", labels, 1.0);
}

fn replica_metrics(side: &ReplicaSide<'_>, out: &mut Families) {
    let master = || -> Labels {
        smallvec![
            ("master_host", side.master_host.into()),
            ("master_port", side.master_port.into()),
        ]
    };
    let mut info_labels = master();
    info_labels.push(("read_only", side.read_only.into()));
    out.push("redis_slave_info", Kind::Gauge, "", info_labels, 1.0);
    if let Some(status) = side.link_status {
        let up = if status == "up" { 1.0 } else { 0.0 };
        out.push("redis_master_link_up", Kind::Gauge, "", master(), up);
    }
    let rest = [
        ("redis_master_last_io_seconds_ago", side.last_io),
        ("redis_master_sync_in_progress", side.sync_in_progress),
        ("redis_slave_repl_offset", side.repl_offset),
    ];
    for (name, value) in rest {
        if let Some(v) = value {
            out.push(name, Kind::Gauge, "", master(), v);
        }
    }
}

/// `slaveN:ip=..,port=..,state=..,offset=..,lag=..` lines of a primary.
fn connected_replicas(lines: &[&str], out: &mut Families) {
    let replicas: Vec<(Labels, Option<f64>, Option<f64>)> = lines
        .iter()
        .map(|line| {
            let [ip, port, state, offset, lag] =
                pairs_named(line, ["ip", "port", "state", "offset", "lag"]);
            let labels: Labels = smallvec![
                ("slave_ip", ip.unwrap_or("").into()),
                ("slave_port", port.unwrap_or("").into()),
                ("slave_state", state.unwrap_or("").into()),
            ];
            (labels, offset.and_then(number), lag.and_then(number))
        })
        .collect();
    for (labels, offset, _) in &replicas {
        if let Some(offset) = *offset {
            out.push(
                "redis_connected_slave_offset_bytes",
                Kind::Gauge,
                "",
                labels.clone(),
                offset,
            );
        }
    }
    for (labels, _, lag) in replicas {
        // Absent before Redis 3.0; the exporter then omits the series.
        if let Some(lag) = lag {
            out.push(
                "redis_connected_slave_lag_seconds",
                Kind::Gauge,
                "",
                labels,
                lag,
            );
        }
    }
}

/// `dbN` lines, plus zeros for every empty database below `databases`, as
/// the exporter reports them (dashboards sum over `db`).
fn keyspace_metrics(keyspace: &mut Vec<(u32, &str)>, databases: u32, out: &mut Families) {
    for db in 0..databases {
        if !keyspace.iter().any(|(d, _)| *d == db) {
            keyspace.push((db, ""));
        }
    }
    keyspace.sort_by_key(|(db, _)| *db);
    // Each line read once, for every family's field.
    let dbs: Vec<(SmolStr, [Option<f64>; 4])> = keyspace
        .iter()
        .map(|&(db, value)| {
            let fields = pairs_named(value, DB_FAMILIES.map(|(_, field, ..)| field));
            (
                format_smolstr!("db{db}"),
                fields.map(|v| v.and_then(number)),
            )
        })
        .collect();
    for (i, (name, _, absent, divisor)) in DB_FAMILIES.into_iter().enumerate() {
        for (db, fields) in &dbs {
            if let Some(v) = fields[i].or(absent) {
                out.push(
                    name,
                    Kind::Gauge,
                    "",
                    smallvec![("db", db.clone())],
                    v / divisor,
                );
            }
        }
    }
}

/// The families of a `dbN` line, in the exporter's order: name, the line's
/// field, the value when the field is absent (`None`: no series), and what
/// the field is divided by.
const DB_FAMILIES: [(&str, &str, Option<f64>, f64); 4] = [
    ("redis_db_keys", "keys", Some(0.0), 1.0),
    ("redis_db_keys_expiring", "expires", Some(0.0), 1.0),
    // Milliseconds.
    ("redis_db_avg_ttl_seconds", "avg_ttl", None, 1000.0),
    // KeyDB only. The exporter takes the fourth field whatever its name,
    // which on Redis 7.4+ is `subexpiry`; only the real field is used here.
    ("redis_db_keys_cached", "cached_keys", None, 1.0),
];

/// The families of a `cmdstat_` line, in the exporter's order, and each
/// one's value (`None`: no series, as before Redis 6.2 for the last two).
type CommandValue = fn(&CommandStat<'_>) -> Option<f64>;
const COMMAND_FAMILIES: [(&str, CommandValue); 4] = [
    ("redis_commands_total", |s| Some(s.calls)),
    ("redis_commands_duration_seconds_total", |s| {
        Some(s.usec / 1e6)
    }),
    ("redis_commands_rejected_calls_total", |s| s.rejected),
    ("redis_commands_failed_calls_total", |s| s.failed),
];

fn command_metrics(stats: &[CommandStat<'_>], out: &mut Families) {
    // Each command's label made once for its four families.
    let labels: Vec<Labels> = stats
        .iter()
        .map(|s| smallvec![("cmd", s.cmd.into())])
        .collect();
    for (name, value) in COMMAND_FAMILIES {
        for (s, cmd) in stats.iter().zip(&labels) {
            if let Some(v) = value(s) {
                out.push(name, Kind::Counter, "", cmd.clone(), v);
            }
        }
    }
}

/// `latency_percentiles_usec_<cmd>:p50=..,p99=..,p99.9=..` as a summary.
/// Quantile labels keep the exporter's spelling ("50", "99", "99.9"), and
/// `_count`/`_sum` come from the command's `cmdstat` line (calls, usec).
fn latency_summaries(latencies: &[(&str, &str)], stats: &[CommandStat<'_>], out: &mut Families) {
    const NAME: &str = "redis_latency_percentiles_usec";
    let mut next = 0;
    for &(cmd, value) in latencies {
        let label: SmolStr = cmd.into();
        for (quantile, v) in pairs(value) {
            let (Some(q), Some(v)) = (quantile.strip_prefix('p'), number(v)) else {
                continue;
            };
            let labels = smallvec![("cmd", label.clone()), ("quantile", q.into())];
            out.push(NAME, Kind::Summary, "", labels, v);
        }
        // The two sections list commands in the same order, so the
        // command's `cmdstat` line is nearly always the next one.
        let at = match stats.get(next) {
            Some(s) if s.cmd == cmd => Some(next),
            _ => stats.iter().position(|s| s.cmd == cmd),
        };
        next = at.map_or(next, |i| i + 1);
        let (calls, usec) = at.map_or((0.0, 0.0), |i| (stats[i].calls, stats[i].usec));
        out.push(
            NAME,
            Kind::Summary,
            "_sum",
            smallvec![("cmd", label.clone())],
            usec,
        );
        out.push(
            NAME,
            Kind::Summary,
            "_count",
            smallvec![("cmd", label)],
            calls,
        );
    }
}

/// Sentinel's `masterN:name=..,status=..,address=..,slaves=..,sentinels=..` lines.
fn sentinel_metrics(masters: &[&str], out: &mut Families) {
    let labels = |line: &str| -> Labels {
        smallvec![
            ("master_address", pair(line, "address").unwrap_or("").into(),),
            ("master_name", pair(line, "name").unwrap_or("").into()),
        ]
    };
    for line in masters {
        let status = pair(line, "status").unwrap_or("");
        let mut with_status = labels(line);
        with_status.push(("master_status", status.into()));
        let ok = if status == "ok" { 1.0 } else { 0.0 };
        out.push(
            "redis_sentinel_master_status",
            Kind::Gauge,
            "",
            with_status,
            ok,
        );
    }
    for (name, field) in [
        ("redis_sentinel_master_slaves", "slaves"),
        ("redis_sentinel_master_sentinels", "sentinels"),
    ] {
        for line in masters {
            if let Some(v) = pair(line, field).and_then(number) {
                out.push(name, Kind::Gauge, "", labels(line), v);
            }
        }
    }
}

/// `CLIENT LIST` summarised: clients by name, user and flags (at most
/// `MAX_CLIENT_GROUPS` values each), the oldest connection, the biggest
/// output and query buffers.
fn client_summary(text: &str, out: &mut Families) {
    let mut by: [Vec<(SmolStr, f64)>; 3] = Default::default();
    let (mut oldest, mut omem, mut qbuf) = (0.0f64, 0.0f64, 0.0f64);
    for line in text.lines() {
        let field = |name: &str| {
            line.split(' ').find_map(|kv| {
                kv.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('='))
            })
        };
        if field("id").is_none() {
            continue;
        }
        for (i, name) in ["name", "user", "flags"].iter().enumerate() {
            let value = field(name).unwrap_or("");
            match by[i].iter_mut().find(|(v, _)| v == value) {
                Some(slot) => slot.1 += 1.0,
                None => by[i].push((value.into(), 1.0)),
            }
        }
        let num = |name: &str| {
            field(name)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        oldest = oldest.max(num("age"));
        omem = omem.max(num("omem"));
        qbuf = qbuf.max(num("qbuf"));
    }
    let names = [
        ("redis_clients_by_name", "name"),
        ("redis_clients_by_user", "user"),
        ("redis_clients_by_flags", "flags"),
    ];
    for (mut groups, (metric, label)) in by.into_iter().zip(names) {
        groups.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        if groups.len() > MAX_CLIENT_GROUPS {
            let rest: f64 = groups.drain(MAX_CLIENT_GROUPS - 1..).map(|(_, n)| n).sum();
            groups.push(("other".into(), rest));
        }
        for (value, count) in groups {
            out.push(metric, Kind::Gauge, "", smallvec![(label, value)], count);
        }
    }
    out.plain(
        "redis_clients_oldest_connection_seconds",
        Kind::Gauge,
        oldest,
    );
    out.plain(
        "redis_clients_biggest_output_buffer_bytes",
        Kind::Gauge,
        omem,
    );
    out.plain(
        "redis_clients_biggest_query_buffer_bytes",
        Kind::Gauge,
        qbuf,
    );
}

/// The exporter's per-client series: `redis_connected_client_info{id,name,
/// flags,db,host,user}` and, per `{id,name}`, buffers, memory, age, idle
/// time and subscriptions.
fn client_detail(text: &str, now_secs: f64, out: &mut Families) {
    let clients: Vec<Vec<(&str, &str)>> = text
        .lines()
        .map(|line| {
            line.split(' ')
                .filter_map(|kv| kv.split_once('='))
                .collect::<Vec<_>>()
        })
        .filter(|fields| fields.iter().any(|(k, _)| *k == "id"))
        .collect();
    fn get<'t>(c: &[(&str, &'t str)], k: &str) -> &'t str {
        c.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| *v)
            .unwrap_or("")
    }
    for c in &clients {
        let addr = get(c, "addr");
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let labels = Labels::from_iter([
            ("db", get(c, "db").into()),
            ("flags", get(c, "flags").into()),
            ("host", host.into()),
            ("id", get(c, "id").into()),
            ("name", get(c, "name").into()),
            ("user", get(c, "user").into()),
        ]);
        out.push("redis_connected_client_info", Kind::Gauge, "", labels, 1.0);
    }
    let per_client: [(&'static str, &str, ClientScale); 10] = [
        (
            "redis_connected_client_output_buffer_memory_usage_bytes",
            "omem",
            ClientScale::Same,
        ),
        (
            "redis_connected_client_total_memory_consumed_bytes",
            "tot-mem",
            ClientScale::Same,
        ),
        (
            "redis_connected_client_created_at_timestamp",
            "age",
            ClientScale::SecondsAgo,
        ),
        (
            "redis_connected_client_idle_since_timestamp",
            "idle",
            ClientScale::SecondsAgo,
        ),
        (
            "redis_connected_client_channel_subscriptions_count",
            "sub",
            ClientScale::Same,
        ),
        (
            "redis_connected_client_pattern_matching_subscriptions_count",
            "psub",
            ClientScale::Same,
        ),
        (
            "redis_connected_client_query_buffer_length_bytes",
            "qbuf",
            ClientScale::Same,
        ),
        (
            "redis_connected_client_query_buffer_free_space_bytes",
            "qbuf-free",
            ClientScale::Same,
        ),
        (
            "redis_connected_client_output_buffer_length_bytes",
            "obl",
            ClientScale::Same,
        ),
        (
            "redis_connected_client_output_list_length",
            "oll",
            ClientScale::Same,
        ),
    ];
    for (name, field, scale) in per_client {
        for c in &clients {
            let Some(v) = number(get(c, field)) else {
                continue;
            };
            let value = match scale {
                ClientScale::Same => v,
                ClientScale::SecondsAgo => now_secs.floor() - v,
            };
            let labels = smallvec![("id", get(c, "id").into()), ("name", get(c, "name").into()),];
            out.push(name, Kind::Gauge, "", labels, value);
        }
    }
}

#[derive(Clone, Copy)]
enum ClientScale {
    Same,
    /// A duration in seconds turned into the Unix time it started.
    SecondsAgo,
}

/// Reads one figure of a watched master.
type MasterField = fn(&SentinelMaster) -> Option<f64>;

/// SENTINEL MASTERS settings and the health of each master's quorum,
/// sentinels and replicas, with the exporter's names and units.
fn sentinel_details(masters: &[SentinelMaster], out: &mut Families) {
    let labels = |m: &SentinelMaster| -> Labels {
        smallvec![
            ("master_address", m.address.as_str().into()),
            ("master_name", m.name.as_str().into()),
        ]
    };
    let series: [(&'static str, MasterField); 8] = [
        ("redis_sentinel_master_setting_ckquorum", |m| m.quorum),
        ("redis_sentinel_master_setting_failover_timeout", |m| {
            m.failover_timeout_ms
        }),
        ("redis_sentinel_master_setting_parallel_syncs", |m| {
            m.parallel_syncs
        }),
        (
            "redis_sentinel_master_setting_down_after_milliseconds",
            |m| m.down_after_ms,
        ),
        ("redis_sentinel_master_config_epoch", |m| m.config_epoch),
        ("redis_sentinel_master_last_ok_ping_reply_seconds", |m| {
            m.last_ok_ping_reply_ms.map(|ms| ms / 1000.0)
        }),
        ("redis_sentinel_master_ok_sentinels", |m| m.ok_sentinels),
        ("redis_sentinel_master_ok_slaves", |m| m.ok_slaves),
    ];
    for (name, value) in series {
        for m in masters {
            if let Some(v) = value(m) {
                out.push(name, Kind::Gauge, "", labels(m), v);
            }
        }
    }
    for m in masters {
        let (ok, message) = match &m.ckquorum {
            Some(Ok(message)) => (1.0, message.clone()),
            Some(Err(message)) => (0.0, message.clone()),
            None => continue,
        };
        let labels = smallvec![
            ("master_name", m.name.as_str().into()),
            ("message", message.into())
        ];
        out.push(
            "redis_sentinel_master_ckquorum_status",
            Kind::Gauge,
            "",
            labels,
            ok,
        );
    }
}

/// `LATENCY LATEST`: when each event last spiked and how long it took.
fn latency_events(events: &[LatencyEvent], out: &mut Families) {
    let event = |e: &LatencyEvent| -> Labels { smallvec![("event_name", e.event.as_str().into())] };
    for e in events {
        out.push(
            "redis_latency_spike_last",
            Kind::Gauge,
            "",
            event(e),
            e.last_timestamp,
        );
    }
    for e in events {
        out.push(
            "redis_latency_spike_duration_seconds",
            Kind::Gauge,
            "",
            event(e),
            e.latest_ms / 1000.0,
        );
    }
}

/// `LATENCY HISTOGRAM` as Prometheus histograms in µs, classic, native
/// (`native.rs`) or both; `_sum` from the command's `cmdstat` usec
/// (subcommands included), as the exporter does.
fn latency_histograms(
    histograms: &[CommandHistogram],
    stats: &[CommandStat<'_>],
    mode: LatencyHistograms,
    out: &mut Families,
) {
    const NAME: &str = "redis_commands_latencies_usec";
    for h in histograms {
        let cmd: SmolStr = h.cmd.as_str().into();
        let usec: f64 = stats
            .iter()
            .filter(|s| {
                s.cmd == h.cmd
                    || s.cmd
                        .strip_prefix(h.cmd.as_str())
                        .is_some_and(|rest| rest.starts_with('|'))
            })
            .map(|s| s.usec)
            .sum();
        if mode.native() {
            let native = NativeHistogram::from_cumulative(h.calls, usec, &h.buckets);
            out.push_native(NAME, smallvec![("cmd", cmd.clone())], native);
        }
        if !mode.classic() {
            continue;
        }
        for &(le, count) in &h.buckets {
            let mut bound = smol_str::SmolStrBuilder::new();
            super::write_value(&mut bound, le);
            let labels = smallvec![("cmd", cmd.clone()), ("le", bound.finish())];
            out.push(NAME, Kind::Histogram, "_bucket", labels, count);
        }
        let labels = smallvec![("cmd", cmd.clone()), ("le", "+Inf".into())];
        out.push(NAME, Kind::Histogram, "_bucket", labels, h.calls);
        out.push(
            NAME,
            Kind::Histogram,
            "_sum",
            smallvec![("cmd", cmd.clone())],
            usec,
        );
        out.push(
            NAME,
            Kind::Histogram,
            "_count",
            smallvec![("cmd", cmd)],
            h.calls,
        );
    }
}

fn config_metrics(config: &ServerConfig, out: &mut Families) {
    let plain = [
        ("redis_config_maxmemory", config.maxmemory),
        ("redis_config_maxclients", config.maxclients),
        ("redis_config_io_threads", config.io_threads),
        ("redis_config_repl_backlog_size", config.repl_backlog_size),
    ];
    for (name, value) in plain {
        if let Some(v) = value {
            out.plain(name, Kind::Gauge, v);
        }
    }
    let Some(limits) = config.client_output_buffer_limit.as_deref() else {
        return;
    };
    // "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60":
    // class, hard bytes, soft bytes, soft seconds.
    let words: Vec<&str> = limits.split_whitespace().collect();
    let classes: Vec<&[&str]> = words.chunks_exact(4).collect();
    for class in &classes {
        for (limit, raw) in [("hard", class[1]), ("soft", class[2])] {
            if let Ok(bytes) = raw.parse::<f64>() {
                let labels = smallvec![("class", class[0].into()), ("limit", limit.into())];
                out.push(
                    "redis_config_client_output_buffer_limit_bytes",
                    Kind::Gauge,
                    "",
                    labels,
                    bytes,
                );
            }
        }
    }
    for class in &classes {
        if let Ok(seconds) = class[3].parse::<f64>() {
            let labels = smallvec![("class", class[0].into()), ("limit", "soft".into())];
            out.push(
                "redis_config_client_output_buffer_limit_overcome_seconds",
                Kind::Gauge,
                "",
                labels,
                seconds,
            );
        }
    }
}

/// `db12` → 12; anything else (e.g. `dbfilename`) is not a keyspace line.
fn db_index(key: &str) -> Option<u32> {
    key.strip_prefix("db")
        .filter(|rest| !rest.is_empty())
        .and_then(|rest| rest.parse().ok())
}

/// `slave0`, `master12`: the prefix followed by digits only.
fn is_numbered(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

/// Replaces characters a metric name may not contain with `_`.
fn sanitize(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(mode: LatencyHistograms) -> Families {
        let histograms = [CommandHistogram {
            cmd: "config".into(),
            calls: 4.0,
            buckets: vec![(8.0, 1.0), (16.0, 3.0), (33.0, 4.0)],
        }];
        let info = Info::parse(
            "# Commandstats\ncmdstat_config|get:calls=3,usec=30,usec_per_call=10.00\ncmdstat_config|set:calls=1,usec=12,usec_per_call=12.00\n",
        );
        let reading = Reading {
            info: &info,
            config: None,
            slowlog: None,
            extras: Extras {
                histograms: Some(&histograms),
                ..Extras::default()
            },
            now_secs: 0.0,
        };
        let options = MapOptions {
            latency_histograms: mode,
            ..MapOptions::default()
        };
        let mut out = Families::new();
        map_reading(&reading, options, &mut out);
        out
    }

    #[test]
    fn latency_histograms_are_classic_native_or_both() {
        let classic_points = |f: &Families| {
            f.get("redis_commands_latencies_usec")
                .map_or(0, |f| f.points.len())
        };
        let classic = mapped(LatencyHistograms::Classic);
        assert_eq!(classic_points(&classic), 6);
        assert!(classic.natives().is_empty());

        let native = mapped(LatencyHistograms::Native);
        assert_eq!(classic_points(&native), 0);
        let [point] = native.natives() else {
            panic!("one native histogram: {:?}", native.natives());
        };
        assert_eq!(point.name, "redis_commands_latencies_usec");
        assert_eq!(point.labels.as_slice(), [("cmd", SmolStr::from("config"))]);
        // The classic series' count and sum; Redis' levels 3, 4 and 5.
        assert_eq!((point.histogram.count, point.histogram.sum), (4, 42.0));
        let buckets: Vec<_> = point.histogram.buckets().collect();
        assert_eq!(buckets, [(3, 1), (4, 2), (5, 1)]);

        let both = mapped(LatencyHistograms::Both);
        assert_eq!(classic_points(&both), 6);
        assert_eq!(both.natives(), native.natives());
    }
}
