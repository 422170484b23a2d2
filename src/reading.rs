//! What a sample returns: the replies of one target's sample, read into
//! plain values. The sampler (`redis/`) fills them; the mapper (`metrics/`)
//! turns them into families. Neither knows the other: this is the
//! vocabulary between them.
//!
//! INFO stays text here (its parser, `redis::info`, reads it in place for
//! the mapper); every other reply is read into the structs below as it
//! arrives, so a reading holds no protocol values.

use std::sync::Arc;

/// The replies of one successful sample.
#[derive(Clone, Debug, Default)]
pub(crate) struct Replies {
    /// `INFO ALL`, or the fast sections only when `complete` is false.
    pub info: String,
    /// Whether this is a complete reading; an incomplete one leaves out the
    /// detail sections and commands, whose series it does not end.
    pub complete: bool,
    pub latency: Option<Vec<LatencyEvent>>,
    pub histograms: Option<Vec<CommandHistogram>>,
    /// `CLUSTER INFO` text.
    pub cluster_info: Option<String>,
    pub sentinel: Option<Vec<SentinelMaster>>,
    /// `CLIENT LIST` text.
    pub clients: Option<String>,
    pub config: Option<Arc<ServerConfig>>,
    pub slowlog: Option<Slowlog>,
}

/// Settings read with `CONFIG GET` (absent when CONFIG is disabled, as on
/// most managed Redis services).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerConfig {
    pub maxmemory: Option<f64>,
    pub maxclients: Option<f64>,
    pub io_threads: Option<f64>,
    pub repl_backlog_size: Option<f64>,
    pub databases: Option<u32>,
    pub client_output_buffer_limit: Option<String>,
}

/// The `CONFIG GET` parameters the metrics need, one per request: Redis
/// before 7.0 accepts a single pattern per `CONFIG GET`.
pub(crate) const CONFIG_PARAMS: &[&str] = &[
    "maxmemory",
    "maxclients",
    "io-threads",
    "repl-backlog-size",
    "databases",
    "client-output-buffer-limit",
];

impl ServerConfig {
    /// Builds the settings from `CONFIG GET` name/value pairs; unknown names
    /// and unparsable values are ignored.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut config = ServerConfig::default();
        for (name, value) in pairs {
            match name {
                "maxmemory" => config.maxmemory = value.parse().ok(),
                "maxclients" => config.maxclients = value.parse().ok(),
                "io-threads" => config.io_threads = value.parse().ok(),
                "repl-backlog-size" => config.repl_backlog_size = value.parse().ok(),
                "databases" => config.databases = value.parse().ok(),
                "client-output-buffer-limit" => {
                    config.client_output_buffer_limit = Some(value.to_owned())
                }
                _ => {}
            }
        }
        config
    }
}

/// What `SLOWLOG LEN` and `SLOWLOG GET 1` reported.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Slowlog {
    pub length: f64,
    pub last_id: f64,
    pub last_duration_micros: f64,
}

/// One `LATENCY LATEST` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyEvent {
    pub event: String,
    /// Unix time of the latest spike.
    pub last_timestamp: f64,
    pub latest_ms: f64,
}

/// One command of `LATENCY HISTOGRAM` (Redis 7.0+).
#[derive(Clone, Debug, PartialEq)]
pub struct CommandHistogram {
    pub cmd: String,
    pub calls: f64,
    /// (upper bound in µs, cumulative count), ascending.
    pub buckets: Vec<(f64, f64)>,
}

/// One master a Sentinel watches: `SENTINEL MASTERS` fields and the
/// results of CKQUORUM, SENTINELS and SLAVES for it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SentinelMaster {
    pub name: String,
    /// `ip:port`.
    pub address: String,
    pub quorum: Option<f64>,
    pub failover_timeout_ms: Option<f64>,
    pub parallel_syncs: Option<f64>,
    pub down_after_ms: Option<f64>,
    pub config_epoch: Option<f64>,
    pub last_ok_ping_reply_ms: Option<f64>,
    /// `Ok(message)` or `Err(message)` of SENTINEL CKQUORUM.
    pub ckquorum: Option<Result<String, String>>,
    /// Sentinels (this one included) and replicas not flagged down.
    pub ok_sentinels: Option<f64>,
    pub ok_slaves: Option<f64>,
}

/// What was read about one key.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct KeyReading {
    pub key: String,
    /// Length for its type (STRLEN, LLEN, SCARD, ZCARD, HLEN, XLEN).
    pub size: Option<f64>,
    pub memory_bytes: Option<f64>,
    /// Seconds to live, for keys with an expiry.
    pub ttl_seconds: Option<f64>,
    pub stream: Option<StreamReading>,
    /// A string key's value (`GETRANGE` of its first `MAX_KEY_VALUE_BYTES`).
    pub value: Option<KeyValue>,
}

/// Longest string value read of a checked key: longer ones are neither a
/// number nor fit for a label, and are left out.
pub(crate) const MAX_KEY_VALUE_BYTES: usize = 1024;

/// A string key's value as the exporter reports it: a number as
/// `redis_key_value`, anything else in `redis_key_value_as_string`'s `val`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum KeyValue {
    Number(f64),
    Text(String),
}

impl KeyValue {
    /// The value of `bytes` (a whole string value).
    pub(crate) fn of(bytes: &[u8]) -> KeyValue {
        let text = String::from_utf8_lossy(bytes);
        match text.parse::<f64>() {
            Ok(n) => KeyValue::Number(n),
            Err(_) => KeyValue::Text(text.into_owned()),
        }
    }
}

/// `XINFO STREAM` and `XINFO GROUPS` of a stream key.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct StreamReading {
    /// (field of XINFO STREAM, value); ids already reduced to their ms part.
    pub fields: Vec<(String, f64)>,
    pub groups: Vec<GroupReading>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct GroupReading {
    pub name: String,
    /// (field of XINFO GROUPS, value); ids reduced to their ms part.
    pub fields: Vec<(String, f64)>,
}

/// Everything one run of the key sampler read.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct KeysReading {
    /// `db0`, ...
    pub db: String,
    pub keys: Vec<KeyReading>,
    /// (pattern, number of matching keys) for `count_keys`.
    pub counts: Vec<(String, f64)>,
    /// `check_key_groups`, when configured and read in full.
    pub groups: Option<KeyGroups>,
}

/// A key group: its name, its keys, their memory in bytes.
pub(crate) type KeyGroup = (String, f64, f64);

/// Every key of a database grouped by `check_key_groups`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct KeyGroups {
    /// Every group, sorted by name.
    pub groups: Vec<KeyGroup>,
    /// How long the walk over the keys took.
    pub duration_ms: f64,
}

/// The outcome of a user's Lua script, as the exporter reports it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ScriptOutcome {
    /// The (key, value) pairs the script returned; values that are not
    /// numbers are left out.
    Values(Vec<(String, f64)>),
    Empty,
    Failed,
}
