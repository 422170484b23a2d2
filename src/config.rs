//! Configuration: the TOML file and the command-line overrides, validated
//! into typed [`Settings`].
//!
//! Every error names where the bad value came from: the file and line, or
//! the flag. Unknown keys are errors (a typo must not silently fall back to
//! a default). Secrets are held in [`Secret`], whose `Debug` and `Display`
//! never show the value.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::secret::Secret;

/// The longest interval allowed: Prometheus marks a series stale when it has
/// no sample for 5 minutes, so a slower interval would show gaps.
pub(crate) const MAX_INTERVAL_LIMIT: Duration = Duration::from_secs(290);

pub(crate) const DEFAULT_TARGET: &str = "redis://127.0.0.1:6379";
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:9121";
/// Most bytes a sample may read from Redis by default (INFO ALL of a busy
/// server is tens of KiB; 8 MiB leaves room and still bounds memory).
pub(crate) const DEFAULT_MAX_REPLY_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{origin}: `{key}` {message}")]
    Invalid {
        origin: Origin,
        key: String,
        message: String,
    },
}

/// Where a setting came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    File { path: PathBuf, line: usize },
    Flag(&'static str),
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// Command-line values that override the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub redis: Vec<String>,
    pub remote_write: Option<String>,
    pub pushgateway: Option<String>,
    pub interval: Option<String>,
    pub min_interval: Option<String>,
    pub max_interval: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub listen: Option<String>,
}

// ---------------------------------------------------------------------------
// The file as written. Durations stay strings until validation so that a
// bad one is reported with its line like any other bad value.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<Spanned<String>>,
    state_dir: Option<PathBuf>,
    job: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
    min_interval: Option<Spanned<String>>,
    max_interval: Option<Spanned<String>>,
    adaptive: Option<bool>,
    #[serde(default)]
    external_labels: BTreeMap<Spanned<String>, String>,
    #[serde(default)]
    targets: Vec<FileTarget>,
    remote_write: Option<FileRemoteWrite>,
    pushgateway: Option<FilePushgateway>,
    #[serde(default)]
    metrics: FileMetrics,
    #[serde(default)]
    queue: FileQueue,
    #[serde(default)]
    http: FileHttp,
}

/// The agent's own endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHttp {
    basic_auth: Option<FileBasicAuth>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTarget {
    url: Spanned<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    connect_timeout: Option<Spanned<String>>,
    command_timeout: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
    min_interval: Option<Spanned<String>>,
    max_interval: Option<Spanned<String>>,
    adaptive: Option<bool>,
    #[serde(default)]
    labels: BTreeMap<Spanned<String>, String>,
    password_env: Option<String>,
    max_reply_bytes: Option<Spanned<ByteSize>>,
    tls_ca_file: Option<PathBuf>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    tls_server_name: Option<String>,
    insecure_skip_verify: Option<bool>,
    cluster: Option<bool>,
    sentinel_discovery: Option<bool>,
    discovery_interval: Option<Spanned<String>>,
    #[serde(default)]
    check_keys: Vec<String>,
    #[serde(default)]
    check_single_keys: Vec<String>,
    #[serde(default)]
    count_keys: Vec<String>,
    key_interval: Option<Spanned<String>>,
    key_time_budget: Option<Spanned<String>>,
    key_scan_count: Option<Spanned<u32>>,
    key_max: Option<Spanned<usize>>,
    client_list: Option<bool>,
    client_list_detail: Option<bool>,
    script_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRemoteWrite {
    url: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    flush_deadline: Option<Spanned<String>>,
    min_backoff: Option<Spanned<String>>,
    max_backoff: Option<Spanned<String>>,
    max_samples_per_send: Option<Spanned<usize>>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    basic_auth: Option<FileBasicAuth>,
    bearer_token_file: Option<PathBuf>,
    tls: Option<FileHttpTls>,
}

/// TLS of an HTTP client (remote write, Pushgateway).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHttpTls {
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

impl FileHttpTls {
    fn settings(&self, key: &str) -> Result<TlsSettings, ConfigError> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(invalid(
                Origin::Default,
                &format!("{key}.cert_file"),
                "and key_file go together (mutual TLS needs both)",
            ));
        }
        Ok(TlsSettings {
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            server_name: None,
            insecure_skip_verify: self.insecure_skip_verify,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBasicAuth {
    username: String,
    password_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePushgateway {
    url: Spanned<String>,
    timeout: Option<Spanned<String>>,
    job: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
    #[serde(default)]
    grouping: BTreeMap<Spanned<String>, String>,
    basic_auth: Option<FileBasicAuth>,
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    delete_on_shutdown: bool,
    tls: Option<FileHttpTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileQueue {
    max_disk_bytes: Option<Spanned<ByteSize>>,
    max_age: Option<Spanned<String>>,
    fsync: Option<Spanned<String>>,
}

/// A size written as a number of bytes or as a string with a unit.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ByteSize {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMetrics {
    unmapped_info_fields: Option<bool>,
    config_refresh: Option<Spanned<String>>,
    detail_interval: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------
// Typed settings.

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub job: String,
    pub intervals: Intervals,
    /// Labels added to every pushed series, sorted by name.
    pub external_labels: Vec<(String, String)>,
    pub targets: Vec<TargetSettings>,
    pub remote_write: Option<RemoteWriteSettings>,
    pub pushgateway: Option<PushgatewaySettings>,
    pub metrics: MetricsSettings,
    pub queue: QueueSettings,
    pub http: HttpSettings,
}

/// Protection of the agent's own endpoint (`/metrics`; `/healthz` stays
/// open for probes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpSettings {
    pub basic_auth: Option<(String, PathBuf)>,
    /// Certificate chain and key (PEM): serve HTTPS instead of HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// When appended records reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// fsync what was written within `queue::SYNC_WINDOW`: nothing pushed
    /// is lost to a crash of the machine or a power loss.
    Always,
    /// Leave it to the operating system: survives `kill -9`, not power loss.
    Never,
}

/// The on-disk queue under `state_dir/wal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSettings {
    pub max_disk_bytes: u64,
    pub max_age: Duration,
    pub fsync: Fsync,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intervals {
    pub interval: Duration,
    pub min: Duration,
    pub max: Duration,
}

/// How to reach a Redis server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

#[derive(Clone, Debug, PartialEq)]
pub struct TargetSettings {
    pub address: Address,
    /// Labels added to this target's pushed series.
    pub labels: Vec<(String, String)>,
    pub intervals: Intervals,
    pub adaptive: bool,
    /// The `instance` label: `host:port`, or the socket path.
    pub instance: String,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Read at every (re)connect, so a rotated password is picked up.
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password, read at every connect.
    pub password_env: Option<String>,
    /// TLS, for `rediss://` targets.
    pub tls: Option<TlsSettings>,
    /// Most bytes one sample may read from the server.
    pub max_reply_bytes: u64,
    /// A seed that stands for every node of its Redis Cluster.
    pub cluster: bool,
    /// A Sentinel whose watched masters and replicas become targets too.
    pub sentinel_discovery: bool,
    /// How often a cluster seed's `CLUSTER NODES` is re-read.
    pub discovery_interval: Duration,
    /// Key and stream metrics, when any key is configured.
    pub keys: Option<KeySettings>,
    /// Summarise CLIENT LIST on every sample.
    pub client_list: bool,
    /// Also the exporter's series per client (implies reading CLIENT LIST).
    pub client_list_detail: bool,
    /// A Lua script run with EVAL on every sample; its key/value pairs
    /// become `redis_script_values`. Read at every run.
    pub script_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
}

/// The key sampler of a target (opt-in: it costs the server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySettings {
    /// Patterns found with SCAN MATCH.
    pub check_keys: Vec<String>,
    /// Exact key names, read without SCAN.
    pub check_single_keys: Vec<String>,
    /// Patterns whose matching keys are counted.
    pub count_keys: Vec<String>,
    /// How often the keys are read (a longer interval than sampling).
    pub interval: Duration,
    /// Time allowed for the SCANs of one run.
    pub budget: Duration,
    /// COUNT hint of each SCAN call.
    pub scan_count: u32,
    /// Most keys read per run.
    pub max_keys: usize,
}

/// TLS client settings; files are read at every connect, so renewed
/// certificates are picked up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// CA certificates (PEM) to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM), for mutual TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Name to verify the server's certificate against, if not the host.
    pub server_name: Option<String>,
    /// Accept any server certificate (logged as a warning).
    pub insecure_skip_verify: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RemoteWriteSettings {
    pub url: String,
    pub timeout: Duration,
    pub flush_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub max_samples_per_send: usize,
    pub headers: Vec<(String, String)>,
    pub basic_auth: Option<(String, PathBuf)>,
    pub bearer_token_file: Option<PathBuf>,
    pub tls: Option<TlsSettings>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PushgatewaySettings {
    pub url: String,
    pub timeout: Duration,
    /// The `job` of the pushed groups (default: the top-level `job`).
    pub job: String,
    /// How often the agent pushes (default: the base interval).
    pub interval: Duration,
    /// Extra grouping labels, after `job` and `instance` in the group path.
    pub grouping: Vec<(String, String)>,
    pub basic_auth: Option<(String, PathBuf)>,
    pub bearer_token_file: Option<PathBuf>,
    /// Delete the agent's groups when it stops.
    pub delete_on_shutdown: bool,
    pub tls: Option<TlsSettings>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricsSettings {
    pub unmapped_info_fields: bool,
    pub config_refresh: Duration,
    /// Longest time between complete readings (`INFO ALL` and the costly
    /// commands); samples in between read only the fast-moving sections.
    /// Zero: every sample is complete.
    pub detail_interval: Duration,
}

/// Resolves spans to lines for error messages.
struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn origin<T>(&self, spanned: &Spanned<T>) -> Origin {
        let start = spanned.span().start.min(self.text.len());
        Origin::File {
            path: self.path.to_owned(),
            line: self.text[..start].bytes().filter(|&b| b == b'\n').count() + 1,
        }
    }
}

fn invalid(origin: Origin, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin,
        key: key.to_owned(),
        message: message.into(),
    }
}

/// A value with its origin: from a flag, from the file, or the default.
fn pick<'a>(
    flag: Option<&'a str>,
    flag_name: &'static str,
    file: Option<&'a Spanned<String>>,
    loc: &Locator<'_>,
    default: &'a str,
) -> (&'a str, Origin) {
    match (flag, file) {
        (Some(v), _) => (v, Origin::Flag(flag_name)),
        (None, Some(s)) => (s.get_ref().as_str(), loc.origin(s)),
        (None, None) => (default, Origin::Default),
    }
}

fn duration(value: &str, origin: &Origin, key: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        invalid(
            origin.clone(),
            key,
            format!("is not a duration (\"{value}\": {e}); write e.g. \"10s\", \"1m\", \"500ms\""),
        )
    })
}

fn file_duration(
    file: Option<&Spanned<String>>,
    loc: &Locator<'_>,
    key: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match file {
        Some(s) => {
            let origin = loc.origin(s);
            let d = duration(s.get_ref(), &origin, key)?;
            if d.is_zero() {
                return Err(invalid(origin, key, "must be greater than 0"));
            }
            Ok(d)
        }
        None => Ok(default),
    }
}

/// `[metrics] detail_interval`: zero is allowed (every sample complete),
/// above the staleness window it is not (the detail series would go stale
/// between complete readings).
fn detail_interval(
    file: Option<&Spanned<String>>,
    loc: &Locator<'_>,
) -> Result<Duration, ConfigError> {
    const KEY: &str = "metrics.detail_interval";
    let Some(s) = file else {
        return Ok(Duration::from_secs(10));
    };
    let origin = loc.origin(s);
    let d = duration(s.get_ref(), &origin, KEY)?;
    if d > MAX_INTERVAL_LIMIT {
        return Err(invalid(
            origin,
            KEY,
            "may not exceed 4m50s: Prometheus ends a series after 5 minutes without a sample",
        ));
    }
    Ok(d)
}

impl Settings {
    /// Reads the file named by `overrides.config` (if any), applies the
    /// flags and validates the result.
    pub fn load(overrides: &Overrides) -> Result<Settings, ConfigError> {
        let (path, text) = match &overrides.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                (path.clone(), text)
            }
            None => (PathBuf::from("<no config file>"), String::new()),
        };
        Settings::from_toml(&path, &text, overrides)
    }

    /// Parses `text` (the contents of `path`) and applies `overrides`.
    pub fn from_toml(
        path: &Path,
        text: &str,
        overrides: &Overrides,
    ) -> Result<Settings, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let loc = Locator { path, text };

        let (listen, origin) = pick(
            overrides.listen.as_deref(),
            "--listen",
            file.listen.as_ref(),
            &loc,
            DEFAULT_LISTEN,
        );
        let listen: SocketAddr = listen.parse().map_err(|_| {
            invalid(
                origin,
                "listen",
                format!("is not an address:port (\"{listen}\"), e.g. \"127.0.0.1:9121\""),
            )
        })?;

        let state_dir = overrides
            .state_dir
            .clone()
            .or_else(|| file.state_dir.clone())
            .unwrap_or_else(|| PathBuf::from("/var/lib/redpush"));

        let job = match &file.job {
            Some(job) if job.get_ref().is_empty() => {
                return Err(invalid(loc.origin(job), "job", "must not be empty"));
            }
            Some(job) => job.get_ref().clone(),
            None => "redis".to_owned(),
        };

        let intervals = intervals(&file, overrides, &loc)?;

        let mut external_labels = Vec::new();
        for (name, value) in &file.external_labels {
            check_label_name(name.get_ref()).map_err(|m| {
                invalid(
                    loc.origin(name),
                    &format!("external_labels.{}", name.get_ref()),
                    m,
                )
            })?;
            external_labels.push((name.get_ref().clone(), value.clone()));
        }

        let adaptive = file.adaptive.unwrap_or(true);
        let mut targets = Vec::new();
        if overrides.redis.is_empty() {
            for (i, t) in file.targets.iter().enumerate() {
                let key = format!("targets[{i}]");
                let origin = loc.origin(&t.url);
                let mut target = parse_target(t.url.get_ref(), origin, &format!("{key}.url"))?;
                target.intervals = target_intervals(t, intervals, &loc, &key)?;
                target.password_env = t.password_env.clone();
                target.cluster = t.cluster.unwrap_or(false);
                target.sentinel_discovery = t.sentinel_discovery.unwrap_or(false);
                target.client_list_detail = t.client_list_detail.unwrap_or(false);
                target.client_list = t.client_list.unwrap_or(false) || target.client_list_detail;
                target.script_file = t.script_file.clone();
                target.discovery_interval = file_duration(
                    t.discovery_interval.as_ref(),
                    &loc,
                    &format!("{key}.discovery_interval"),
                    target.discovery_interval,
                )?;
                if !(t.check_keys.is_empty()
                    && t.check_single_keys.is_empty()
                    && t.count_keys.is_empty())
                {
                    let positive = |n: Option<&Spanned<u32>>, name: &str, default: u32| match n {
                        Some(n) if *n.get_ref() == 0 => Err(invalid(
                            loc.origin(n),
                            &format!("{key}.{name}"),
                            "must be greater than 0",
                        )),
                        Some(n) => Ok(*n.get_ref()),
                        None => Ok(default),
                    };
                    let max_keys = match &t.key_max {
                        Some(n) if *n.get_ref() == 0 => {
                            return Err(invalid(
                                loc.origin(n),
                                &format!("{key}.key_max"),
                                "must be greater than 0",
                            ));
                        }
                        Some(n) => *n.get_ref(),
                        None => 1000,
                    };
                    target.keys = Some(KeySettings {
                        check_keys: t.check_keys.clone(),
                        check_single_keys: t.check_single_keys.clone(),
                        count_keys: t.count_keys.clone(),
                        interval: file_duration(
                            t.key_interval.as_ref(),
                            &loc,
                            &format!("{key}.key_interval"),
                            Duration::from_secs(60),
                        )?,
                        budget: file_duration(
                            t.key_time_budget.as_ref(),
                            &loc,
                            &format!("{key}.key_time_budget"),
                            Duration::from_millis(500),
                        )?,
                        scan_count: positive(t.key_scan_count.as_ref(), "key_scan_count", 100)?,
                        max_keys,
                    });
                }
                if target.cluster && matches!(target.address, Address::Unix(_)) {
                    return Err(invalid(
                        loc.origin(&t.url),
                        &format!("{key}.cluster"),
                        "needs a redis:// or rediss:// URL: cluster nodes are reached over TCP",
                    ));
                }
                if let Some(size) = &t.max_reply_bytes {
                    target.max_reply_bytes =
                        byte_size(size, &loc, &format!("{key}.max_reply_bytes"), 1024)?;
                }
                let tls_keys = t.tls_ca_file.is_some()
                    || t.tls_cert_file.is_some()
                    || t.tls_key_file.is_some()
                    || t.tls_server_name.is_some()
                    || t.insecure_skip_verify.is_some();
                match &mut target.tls {
                    Some(tls) => {
                        tls.ca_file = t.tls_ca_file.clone();
                        tls.cert_file = t.tls_cert_file.clone();
                        tls.key_file = t.tls_key_file.clone();
                        tls.server_name = t.tls_server_name.clone();
                        tls.insecure_skip_verify = t.insecure_skip_verify.unwrap_or(false);
                        if tls.cert_file.is_some() != tls.key_file.is_some() {
                            return Err(invalid(
                                loc.origin(&t.url),
                                &format!("{key}.tls_cert_file"),
                                "and tls_key_file go together (mutual TLS needs both)",
                            ));
                        }
                    }
                    None if tls_keys => {
                        return Err(invalid(
                            loc.origin(&t.url),
                            &format!("{key}.url"),
                            "has tls_* settings but is not a rediss:// URL",
                        ));
                    }
                    None => {}
                }
                target.adaptive = t.adaptive.unwrap_or(adaptive);
                for (name, value) in &t.labels {
                    check_label_name(name.get_ref()).map_err(|m| {
                        invalid(
                            loc.origin(name),
                            &format!("{key}.labels.{}", name.get_ref()),
                            m,
                        )
                    })?;
                    target.labels.push((name.get_ref().clone(), value.clone()));
                }
                if t.username.is_some() {
                    target.username = t.username.clone();
                }
                target.password_file = t.password_file.clone();
                target.connect_timeout = file_duration(
                    t.connect_timeout.as_ref(),
                    &loc,
                    &format!("{key}.connect_timeout"),
                    target.connect_timeout,
                )?;
                target.command_timeout = file_duration(
                    t.command_timeout.as_ref(),
                    &loc,
                    &format!("{key}.command_timeout"),
                    target.command_timeout,
                )?;
                targets.push(target);
            }
        } else {
            for url in &overrides.redis {
                targets.push(parse_target(url, Origin::Flag("--redis"), "redis")?);
            }
        }
        if targets.is_empty() {
            targets.push(parse_target(DEFAULT_TARGET, Origin::Default, "redis")?);
        }
        if file.targets.is_empty() || !overrides.redis.is_empty() {
            // Targets from flags or the default take the global settings.
            for t in &mut targets {
                t.intervals = intervals;
                t.adaptive = adaptive;
            }
        }
        for (i, t) in targets.iter().enumerate() {
            // The instance tells targets apart on /metrics and in pushes.
            if targets[..i]
                .iter()
                .any(|other| other.instance == t.instance)
            {
                return Err(invalid(
                    Origin::Default,
                    "targets",
                    format!("lists {} twice", t.instance),
                ));
            }
        }

        let remote_write = remote_write(file.remote_write.as_ref(), overrides, &loc)?;
        let pushgateway = pushgateway(
            file.pushgateway.as_ref(),
            overrides,
            &loc,
            &job,
            intervals.interval,
        )?;

        let metrics = MetricsSettings {
            unmapped_info_fields: file.metrics.unmapped_info_fields.unwrap_or(true),
            config_refresh: file_duration(
                file.metrics.config_refresh.as_ref(),
                &loc,
                "metrics.config_refresh",
                Duration::from_secs(60),
            )?,
            detail_interval: detail_interval(file.metrics.detail_interval.as_ref(), &loc)?,
        };

        let queue = queue_settings(&file.queue, &loc)?;
        let http = HttpSettings {
            basic_auth: file
                .http
                .basic_auth
                .as_ref()
                .map(|b| (b.username.clone(), b.password_file.clone())),
            tls: match (&file.http.tls_cert_file, &file.http.tls_key_file) {
                (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
                (None, None) => None,
                _ => {
                    return Err(invalid(
                        Origin::Default,
                        "http.tls_cert_file",
                        "and http.tls_key_file go together",
                    ));
                }
            },
        };

        Ok(Settings {
            listen,
            state_dir,
            job,
            intervals,
            external_labels,
            targets,
            remote_write,
            pushgateway,
            metrics,
            queue,
            http,
        })
    }
}

fn intervals(
    file: &FileConfig,
    overrides: &Overrides,
    loc: &Locator<'_>,
) -> Result<Intervals, ConfigError> {
    let read = |flag: Option<&str>,
                flag_name: &'static str,
                spanned: Option<&Spanned<String>>,
                key: &str,
                default: &str| {
        let (value, origin) = pick(flag, flag_name, spanned, loc, default);
        Ok::<_, ConfigError>((positive(value, &origin, key)?, origin))
    };
    let interval = read(
        overrides.interval.as_deref(),
        "--interval",
        file.interval.as_ref(),
        "interval",
        "10s",
    )?;
    let min = read(
        overrides.min_interval.as_deref(),
        "--min-interval",
        file.min_interval.as_ref(),
        "min_interval",
        "1s",
    )?;
    let max = read(
        overrides.max_interval.as_deref(),
        "--max-interval",
        file.max_interval.as_ref(),
        "max_interval",
        "60s",
    )?;
    check_intervals(interval, min, max, "")
}

/// A target's intervals: its own where it sets them, the global ones otherwise.
fn target_intervals(
    t: &FileTarget,
    global: Intervals,
    loc: &Locator<'_>,
    key: &str,
) -> Result<Intervals, ConfigError> {
    let read = |spanned: Option<&Spanned<String>>, name: &str, default: Duration| match spanned {
        Some(s) => {
            let origin = loc.origin(s);
            Ok::<_, ConfigError>((
                positive(s.get_ref(), &origin, &format!("{key}.{name}"))?,
                origin,
            ))
        }
        None => Ok((default, Origin::Default)),
    };
    check_intervals(
        read(t.interval.as_ref(), "interval", global.interval)?,
        read(t.min_interval.as_ref(), "min_interval", global.min)?,
        read(t.max_interval.as_ref(), "max_interval", global.max)?,
        &format!("{key}."),
    )
}

fn positive(value: &str, origin: &Origin, key: &str) -> Result<Duration, ConfigError> {
    let d = duration(value, origin, key)?;
    if d.is_zero() {
        return Err(invalid(origin.clone(), key, "must be greater than 0"));
    }
    Ok(d)
}

/// min ≤ interval ≤ max ≤ the staleness limit; `prefix` names the table.
fn check_intervals(
    (interval, interval_origin): (Duration, Origin),
    (min, min_origin): (Duration, Origin),
    (max, max_origin): (Duration, Origin),
    prefix: &str,
) -> Result<Intervals, ConfigError> {
    let show = |d: Duration| humantime::format_duration(d).to_string();
    if max > MAX_INTERVAL_LIMIT {
        return Err(invalid(
            max_origin,
            &format!("{prefix}max_interval"),
            format!(
                "is {}, above the limit of {}: Prometheus marks a series stale after 5 minutes without a sample",
                show(max),
                show(MAX_INTERVAL_LIMIT)
            ),
        ));
    }
    if min > max {
        return Err(invalid(
            min_origin,
            &format!("{prefix}min_interval"),
            format!("is {}, above max_interval {}", show(min), show(max)),
        ));
    }
    if interval < min || interval > max {
        return Err(invalid(
            interval_origin,
            &format!("{prefix}interval"),
            format!(
                "is {}, outside min_interval {} .. max_interval {}",
                show(interval),
                show(min),
                show(max)
            ),
        ));
    }
    Ok(Intervals { interval, min, max })
}

fn remote_write(
    file: Option<&FileRemoteWrite>,
    overrides: &Overrides,
    loc: &Locator<'_>,
) -> Result<Option<RemoteWriteSettings>, ConfigError> {
    let url = match (&overrides.remote_write, file.and_then(|f| f.url.as_ref())) {
        (Some(url), _) => http_url(url, Origin::Flag("--remote-write"), "remote_write")?,
        (None, Some(url)) => http_url(url.get_ref(), loc.origin(url), "remote_write.url")?,
        (None, None) => return Ok(None),
    };
    let d = |s: Option<&Spanned<String>>, key: &str, default: Duration| {
        file_duration(s, loc, key, default)
    };
    let count = |s: Option<&Spanned<usize>>, key: &str, default: usize| match s {
        Some(n) if *n.get_ref() == 0 => Err(invalid(loc.origin(n), key, "must be greater than 0")),
        Some(n) => Ok(*n.get_ref()),
        None => Ok(default),
    };
    let settings = RemoteWriteSettings {
        url,
        timeout: d(
            file.and_then(|f| f.timeout.as_ref()),
            "remote_write.timeout",
            Duration::from_secs(30),
        )?,
        flush_deadline: d(
            file.and_then(|f| f.flush_deadline.as_ref()),
            "remote_write.flush_deadline",
            Duration::from_secs(5),
        )?,
        min_backoff: d(
            file.and_then(|f| f.min_backoff.as_ref()),
            "remote_write.min_backoff",
            Duration::from_millis(30),
        )?,
        max_backoff: d(
            file.and_then(|f| f.max_backoff.as_ref()),
            "remote_write.max_backoff",
            Duration::from_secs(5),
        )?,
        max_samples_per_send: count(
            file.and_then(|f| f.max_samples_per_send.as_ref()),
            "remote_write.max_samples_per_send",
            5000,
        )?,
        headers: file
            .map(|f| {
                f.headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        basic_auth: file
            .and_then(|f| f.basic_auth.as_ref())
            .map(|b| (b.username.clone(), b.password_file.clone())),
        bearer_token_file: file.and_then(|f| f.bearer_token_file.clone()),
        tls: file
            .and_then(|f| f.tls.as_ref())
            .map(|t| t.settings("remote_write.tls"))
            .transpose()?,
    };
    if settings.min_backoff > settings.max_backoff {
        return Err(invalid(
            Origin::Default,
            "remote_write.min_backoff",
            "must not be above remote_write.max_backoff",
        ));
    }
    Ok(Some(settings))
}

fn queue_settings(file: &FileQueue, loc: &Locator<'_>) -> Result<QueueSettings, ConfigError> {
    let max_disk_bytes = match &file.max_disk_bytes {
        None => 256 * 1024 * 1024,
        Some(spanned) => {
            let origin = loc.origin(spanned);
            let bytes = match spanned.get_ref() {
                ByteSize::Bytes(n) => Some(*n),
                ByteSize::Text(text) => parse_bytes(text),
            }
            .ok_or_else(|| {
                invalid(
                    origin.clone(),
                    "queue.max_disk_bytes",
                    "is not a size; write e.g. 268435456 or \"256MiB\"",
                )
            })?;
            if bytes < 1024 * 1024 {
                return Err(invalid(
                    origin,
                    "queue.max_disk_bytes",
                    "must be at least 1MiB",
                ));
            }
            bytes
        }
    };
    let max_age = file_duration(
        file.max_age.as_ref(),
        loc,
        "queue.max_age",
        Duration::from_secs(2 * 3600),
    )?;
    let fsync = match &file.fsync {
        None => Fsync::Always,
        Some(s) => match s.get_ref().as_str() {
            "always" => Fsync::Always,
            "never" => Fsync::Never,
            other => {
                return Err(invalid(
                    loc.origin(s),
                    "queue.fsync",
                    format!("is \"{other}\"; write \"always\" or \"never\""),
                ));
            }
        },
    };
    Ok(QueueSettings {
        max_disk_bytes,
        max_age,
        fsync,
    })
}

/// A size from the file, at least `min` bytes.
fn byte_size(
    size: &Spanned<ByteSize>,
    loc: &Locator<'_>,
    key: &str,
    min: u64,
) -> Result<u64, ConfigError> {
    let origin = loc.origin(size);
    let bytes = match size.get_ref() {
        ByteSize::Bytes(n) => Some(*n),
        ByteSize::Text(text) => parse_bytes(text),
    }
    .ok_or_else(|| {
        invalid(
            origin.clone(),
            key,
            "is not a size; write e.g. 268435456 or \"256MiB\"",
        )
    })?;
    if bytes < min {
        return Err(invalid(
            origin,
            key,
            format!("must be at least {min} bytes"),
        ));
    }
    Ok(bytes)
}

/// `"256MiB"`, `"1 GiB"`, `"512KiB"`, `"100MB"`, `"4096"`.
fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

fn pushgateway(
    file: Option<&FilePushgateway>,
    overrides: &Overrides,
    loc: &Locator<'_>,
    job: &str,
    interval: Duration,
) -> Result<Option<PushgatewaySettings>, ConfigError> {
    let url = match (&overrides.pushgateway, file) {
        (Some(url), _) => http_url(url, Origin::Flag("--pushgateway"), "pushgateway")?,
        (None, Some(p)) => http_url(p.url.get_ref(), loc.origin(&p.url), "pushgateway.url")?,
        (None, None) => return Ok(None),
    };
    let mut grouping = Vec::new();
    let mut job = job.to_owned();
    let mut settings_interval = interval;
    let mut timeout = Duration::from_secs(10);
    let (mut basic_auth, mut bearer_token_file, mut delete_on_shutdown) = (None, None, false);
    let mut tls = None;
    if let Some(p) = file {
        timeout = file_duration(p.timeout.as_ref(), loc, "pushgateway.timeout", timeout)?;
        settings_interval =
            file_duration(p.interval.as_ref(), loc, "pushgateway.interval", interval)?;
        if let Some(j) = &p.job {
            if j.get_ref().is_empty() {
                return Err(invalid(
                    loc.origin(j),
                    "pushgateway.job",
                    "must not be empty",
                ));
            }
            job = j.get_ref().clone();
        }
        for (name, value) in &p.grouping {
            let key = format!("pushgateway.grouping.{}", name.get_ref());
            check_label_name(name.get_ref()).map_err(|m| invalid(loc.origin(name), &key, m))?;
            grouping.push((name.get_ref().clone(), value.clone()));
        }
        basic_auth = p
            .basic_auth
            .as_ref()
            .map(|b| (b.username.clone(), b.password_file.clone()));
        bearer_token_file = p.bearer_token_file.clone();
        delete_on_shutdown = p.delete_on_shutdown;
        tls = p
            .tls
            .as_ref()
            .map(|t| t.settings("pushgateway.tls"))
            .transpose()?;
    }
    Ok(Some(PushgatewaySettings {
        url,
        timeout,
        job,
        interval: settings_interval,
        grouping,
        basic_auth,
        bearer_token_file,
        delete_on_shutdown,
        tls,
    }))
}

fn http_url(value: &str, origin: Origin, key: &str) -> Result<String, ConfigError> {
    match url::Url::parse(value) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
            if u.password().is_some() {
                return Err(invalid(
                    origin,
                    key,
                    "must not carry a password; use remote_write.basic_auth with password_file",
                ));
            }
            Ok(value.to_owned())
        }
        Ok(u) => Err(invalid(
            origin,
            key,
            format!("must be an http:// or https:// URL, not {}://", u.scheme()),
        )),
        Err(e) => Err(invalid(origin, key, format!("is not a URL ({e})"))),
    }
}

fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !valid_start || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)".to_owned());
    }
    if name.starts_with("__") {
        return Err("must not start with __ (reserved by Prometheus)".to_owned());
    }
    if name == "job" || name == "instance" {
        return Err("is set by redpush itself; use `job` for the job name".to_owned());
    }
    Ok(())
}

/// Parses `redis://[user[:password]@]host[:port][/db]` or
/// `unix:///path/to/redis.sock`. The password never appears in an error.
pub(crate) fn parse_target(
    value: &str,
    origin: Origin,
    key: &str,
) -> Result<TargetSettings, ConfigError> {
    let url = url::Url::parse(value)
        .map_err(|e| invalid(origin.clone(), key, format!("is not a Redis URL ({e})")))?;
    let username = Some(url.username()).filter(|u| !u.is_empty()).map(decode);
    let password = url.password().map(|p| Secret::new(decode(p)));
    let base = |address: Address, instance: String, db: i64| TargetSettings {
        address,
        labels: Vec::new(),
        intervals: Intervals {
            interval: Duration::from_secs(10),
            min: Duration::from_secs(1),
            max: Duration::from_secs(60),
        },
        adaptive: true,
        instance,
        db,
        username: username.clone(),
        password: password.clone(),
        password_file: None,
        password_env: None,
        tls: None,
        max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
        cluster: false,
        sentinel_discovery: false,
        discovery_interval: Duration::from_secs(30),
        keys: None,
        client_list: false,
        client_list_detail: false,
        script_file: None,
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(5),
    };
    match url.scheme() {
        "redis" => {
            let host = url
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| invalid(origin.clone(), key, "has no host"))?
                .to_owned();
            let port = url.port().unwrap_or(6379);
            let db = match url.path().trim_start_matches('/') {
                "" => 0,
                db => db.parse().map_err(|_| {
                    invalid(
                        origin.clone(),
                        key,
                        format!("has a database \"{db}\" that is not a number"),
                    )
                })?,
            };
            // `host_str` keeps the brackets of an IPv6 address, as `host:port` needs.
            let instance = format!("{host}:{port}");
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            Ok(base(Address::Tcp { host, port }, instance, db))
        }
        "unix" | "redis+unix" => {
            let path = PathBuf::from(url.path());
            if url.path().is_empty() {
                return Err(invalid(origin, key, "has no socket path"));
            }
            let db = url
                .query_pairs()
                .find(|(k, _)| k == "db")
                .map(|(_, v)| v.parse::<i64>())
                .transpose()
                .map_err(|_| invalid(origin.clone(), key, "has a db= that is not a number"))?
                .unwrap_or(0);
            Ok(base(
                Address::Unix(path.clone()),
                path.display().to_string(),
                db,
            ))
        }
        "rediss" => {
            let mut redis = url.clone();
            let _ = redis.set_scheme("redis");
            let mut target = parse_target(redis.as_str(), origin, key)?;
            target.tls = Some(TlsSettings::default());
            Ok(target)
        }
        other => Err(invalid(
            origin,
            key,
            format!("has scheme {other}://; use redis://host:port or unix:///path/to/socket"),
        )),
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl fmt::Display for Settings {
    /// The effective settings, as `check-config` prints them: TOML-like,
    /// with secrets left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        writeln!(f, "listen = \"{}\"", self.listen)?;
        writeln!(f, "state_dir = \"{}\"", self.state_dir.display())?;
        writeln!(f, "job = \"{}\"", self.job)?;
        writeln!(f, "interval = \"{}\"", d(self.intervals.interval))?;
        writeln!(f, "min_interval = \"{}\"", d(self.intervals.min))?;
        writeln!(f, "max_interval = \"{}\"", d(self.intervals.max))?;
        if !self.external_labels.is_empty() {
            writeln!(f, "\n[external_labels]")?;
            for (k, v) in &self.external_labels {
                writeln!(f, "{k} = \"{v}\"")?;
            }
        }
        for t in &self.targets {
            writeln!(f, "\n[[targets]]")?;
            let scheme = match (&t.address, &t.tls) {
                (Address::Tcp { .. }, None) => "redis://",
                (Address::Tcp { .. }, Some(_)) => "rediss://",
                (Address::Unix(_), _) => "unix://",
            };
            writeln!(f, "url = \"{scheme}{}\"  # db {}", t.instance, t.db)?;
            if let Some(u) = &t.username {
                writeln!(f, "username = \"{u}\"")?;
            }
            if t.password.is_some() {
                writeln!(f, "# password: set (from the URL)")?;
            }
            if let Some(p) = &t.password_file {
                writeln!(f, "password_file = \"{}\"", p.display())?;
            }
            if let Some(var) = &t.password_env {
                writeln!(f, "password_env = \"{var}\"")?;
            }
            writeln!(f, "max_reply_bytes = {}", t.max_reply_bytes)?;
            if let Some(tls) = &t.tls {
                let path = |p: &Option<PathBuf>| {
                    p.as_ref()
                        .map_or("none".to_owned(), |p| p.display().to_string())
                };
                writeln!(
                    f,
                    "# TLS: ca_file {}, cert_file {}, key_file {}, server_name {}, insecure_skip_verify {}",
                    path(&tls.ca_file),
                    path(&tls.cert_file),
                    path(&tls.key_file),
                    tls.server_name.as_deref().unwrap_or("the host"),
                    tls.insecure_skip_verify
                )?;
            }
            writeln!(f, "connect_timeout = \"{}\"", d(t.connect_timeout))?;
            writeln!(f, "command_timeout = \"{}\"", d(t.command_timeout))?;
            writeln!(f, "interval = \"{}\"", d(t.intervals.interval))?;
            writeln!(f, "min_interval = \"{}\"", d(t.intervals.min))?;
            writeln!(f, "max_interval = \"{}\"", d(t.intervals.max))?;
            writeln!(f, "adaptive = {}", t.adaptive)?;
            if let Some(k) = &t.keys {
                writeln!(f, "check_keys = {:?}", k.check_keys)?;
                writeln!(f, "check_single_keys = {:?}", k.check_single_keys)?;
                writeln!(f, "count_keys = {:?}", k.count_keys)?;
                writeln!(f, "key_interval = \"{}\"", d(k.interval))?;
                writeln!(f, "key_time_budget = \"{}\"", d(k.budget))?;
                writeln!(f, "key_scan_count = {}", k.scan_count)?;
                writeln!(f, "key_max = {}", k.max_keys)?;
            }
            if t.client_list {
                writeln!(f, "client_list = true")?;
            }
            if t.client_list_detail {
                writeln!(f, "client_list_detail = true")?;
            }
            if let Some(script) = &t.script_file {
                writeln!(f, "script_file = \"{}\"", script.display())?;
            }
            if t.sentinel_discovery {
                writeln!(f, "sentinel_discovery = true")?;
            }
            if t.cluster {
                writeln!(f, "cluster = true")?;
                writeln!(f, "discovery_interval = \"{}\"", d(t.discovery_interval))?;
            }
            if !t.labels.is_empty() {
                let labels: Vec<String> = t
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k} = \"{v}\""))
                    .collect();
                writeln!(f, "labels = {{ {} }}", labels.join(", "))?;
            }
        }
        if let Some(rw) = &self.remote_write {
            writeln!(f, "\n[remote_write]")?;
            writeln!(f, "url = \"{}\"", rw.url)?;
            writeln!(f, "timeout = \"{}\"", d(rw.timeout))?;
            writeln!(f, "flush_deadline = \"{}\"", d(rw.flush_deadline))?;
            writeln!(f, "min_backoff = \"{}\"", d(rw.min_backoff))?;
            writeln!(f, "max_backoff = \"{}\"", d(rw.max_backoff))?;
            writeln!(f, "max_samples_per_send = {}", rw.max_samples_per_send)?;
            for (name, _) in &rw.headers {
                // Header values often carry tokens: names only.
                writeln!(f, "# header {name}: set")?;
            }
            if let Some((user, file)) = &rw.basic_auth {
                writeln!(
                    f,
                    "basic_auth = {{ username = \"{user}\", password_file = \"{}\" }}",
                    file.display()
                )?;
            }
            if let Some(file) = &rw.bearer_token_file {
                writeln!(f, "bearer_token_file = \"{}\"", file.display())?;
            }
        }
        if let Some(pg) = &self.pushgateway {
            writeln!(f, "\n[pushgateway]")?;
            writeln!(f, "url = \"{}\"", pg.url)?;
            writeln!(f, "timeout = \"{}\"", d(pg.timeout))?;
            writeln!(f, "job = \"{}\"", pg.job)?;
            writeln!(f, "interval = \"{}\"", d(pg.interval))?;
            writeln!(f, "delete_on_shutdown = {}", pg.delete_on_shutdown)?;
            for (k, v) in &pg.grouping {
                writeln!(f, "# grouping {k} = \"{v}\"")?;
            }
            if let Some((user, file)) = &pg.basic_auth {
                writeln!(
                    f,
                    "basic_auth = {{ username = \"{user}\", password_file = \"{}\" }}",
                    file.display()
                )?;
            }
            if let Some(file) = &pg.bearer_token_file {
                writeln!(f, "bearer_token_file = \"{}\"", file.display())?;
            }
        }
        if self.http.basic_auth.is_some() || self.http.tls.is_some() {
            writeln!(f, "\n[http]")?;
            if let Some((user, file)) = &self.http.basic_auth {
                writeln!(
                    f,
                    "basic_auth = {{ username = \"{user}\", password_file = \"{}\" }}",
                    file.display()
                )?;
            }
            if let Some((cert, key)) = &self.http.tls {
                writeln!(f, "tls_cert_file = \"{}\"", cert.display())?;
                writeln!(f, "tls_key_file = \"{}\"", key.display())?;
            }
        }
        writeln!(f, "\n[queue]")?;
        writeln!(f, "max_disk_bytes = {}", self.queue.max_disk_bytes)?;
        writeln!(f, "max_age = \"{}\"", d(self.queue.max_age))?;
        let fsync = match self.queue.fsync {
            Fsync::Always => "always",
            Fsync::Never => "never",
        };
        writeln!(f, "fsync = \"{fsync}\"")?;
        writeln!(f, "\n[metrics]")?;
        writeln!(
            f,
            "unmapped_info_fields = {}",
            self.metrics.unmapped_info_fields
        )?;
        writeln!(f, "config_refresh = \"{}\"", d(self.metrics.config_refresh))?;
        writeln!(
            f,
            "detail_interval = \"{}\"",
            d(self.metrics.detail_interval)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Settings, ConfigError> {
        Settings::from_toml(Path::new("redpush.toml"), text, &Overrides::default())
    }

    fn load_with(text: &str, overrides: Overrides) -> Result<Settings, ConfigError> {
        Settings::from_toml(Path::new("redpush.toml"), text, &overrides)
    }

    #[test]
    fn defaults_without_file_or_flags() {
        let s = load("").expect("defaults are valid");
        assert_eq!(s.listen.to_string(), "127.0.0.1:9121");
        assert_eq!(s.targets.len(), 1);
        assert_eq!(s.targets[0].instance, "127.0.0.1:6379");
        assert_eq!(
            s.intervals,
            Intervals {
                interval: Duration::from_secs(10),
                min: Duration::from_secs(1),
                max: Duration::from_secs(60)
            }
        );
        assert!(s.remote_write.is_none());
        assert_eq!(s.job, "redis");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = load("job = \"redis\"\n\n[remote_write]\nurl = \"http://x/api/v1/write\"\nflush_dedline = \"5s\"\n").unwrap_err().to_string();
        assert!(err.contains("flush_dedline"), "{err}");
        assert!(err.contains("line 5"), "{err}");
    }

    #[test]
    fn bad_duration_names_key_and_line() {
        let err = load("\n\ninterval = \"ten seconds\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("redpush.toml:3: `interval` is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn zero_interval_refused() {
        let err = load("interval = \"0s\"").unwrap_err().to_string();
        assert!(err.contains("`interval` must be greater than 0"), "{err}");
    }

    #[test]
    fn min_above_max_refused() {
        let err = load("min_interval = \"2m\"\nmax_interval = \"1m\"\ninterval=\"1m\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("redpush.toml:1: `min_interval` is 2m, above max_interval 1m"),
            "{err}"
        );
    }

    #[test]
    fn detail_interval_zero_allowed_beyond_staleness_refused() {
        let settings = load("[metrics]\ndetail_interval = \"0s\"").expect("0s is allowed");
        assert_eq!(settings.metrics.detail_interval, Duration::ZERO);
        let default = load("").expect("defaults");
        assert_eq!(default.metrics.detail_interval, Duration::from_secs(10));
        let err = load("[metrics]\ndetail_interval = \"5m\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("redpush.toml:2"), "{err}");
        assert!(err.contains("metrics.detail_interval"), "{err}");
    }

    #[test]
    fn max_interval_below_staleness() {
        let err = load("max_interval = \"5m\"").unwrap_err().to_string();
        assert!(err.contains("max_interval"), "{err}");
        assert!(err.contains("stale"), "{err}");
    }

    #[test]
    fn flags_override_file() {
        let overrides = Overrides {
            interval: Some("2s".into()),
            redis: vec![
                "redis://10.0.0.1:7000/2".into(),
                "unix:///run/redis.sock".into(),
            ],
            remote_write: Some("http://rw:9090/api/v1/write".into()),
            listen: Some("0.0.0.0:9999".into()),
            ..Overrides::default()
        };
        let s = load_with(
            "interval = \"30s\"\n[[targets]]\nurl = \"redis://a:1\"\n",
            overrides,
        )
        .expect("valid");
        assert_eq!(s.intervals.interval, Duration::from_secs(2));
        assert_eq!(
            s.targets
                .iter()
                .map(|t| t.instance.as_str())
                .collect::<Vec<_>>(),
            ["10.0.0.1:7000", "/run/redis.sock"]
        );
        assert_eq!(s.targets[0].db, 2);
        assert_eq!(
            s.remote_write.map(|r| r.url),
            Some("http://rw:9090/api/v1/write".to_owned())
        );
        assert_eq!(s.listen.port(), 9999);
    }

    #[test]
    fn bad_flag_is_named() {
        let overrides = Overrides {
            interval: Some("fast".into()),
            ..Overrides::default()
        };
        let err = load_with("", overrides).unwrap_err().to_string();
        assert!(err.starts_with("flag --interval: `interval`"), "{err}");
    }

    #[test]
    fn password_stays_out_of_errors_and_display() {
        let s = load("[[targets]]\nurl = \"redis://user:s3cr3t@h:7000\"\n").expect("valid");
        assert_eq!(
            s.targets[0].password.as_ref().map(Secret::expose),
            Some("s3cr3t")
        );
        assert_eq!(s.targets[0].username.as_deref(), Some("user"));
        let shown = format!("{s} {s:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let err = load("[[targets]]\nurl = \"redis://user:s3cr3t@h:notaport\"\n")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(err.contains("targets[0].url"), "{err}");
    }

    #[test]
    fn ipv6_instance_keeps_brackets() {
        let s = load("[[targets]]\nurl = \"redis://[::1]:6380\"\n").expect("valid");
        assert_eq!(s.targets[0].instance, "[::1]:6380");
        assert_eq!(
            s.targets[0].address,
            Address::Tcp {
                host: "::1".into(),
                port: 6380
            }
        );
    }

    #[test]
    fn external_label_rules() {
        assert!(load("[external_labels]\nregion = \"eu\"\n").is_ok());
        let err = load("[external_labels]\n__x = \"eu\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("redpush.toml:2: `external_labels.__x`"),
            "{err}"
        );
        assert!(load("[external_labels]\ninstance = \"x\"\n").is_err());
    }

    #[test]
    fn per_target_settings_and_their_errors() {
        let text = "interval = \"5s\"\nadaptive = false\n[[targets]]\nurl = \"redis://a:1\"\n\n[[targets]]\nurl = \"redis://b:2\"\ninterval = \"2s\"\nmax_interval = \"30s\"\nadaptive = true\nlabels = { role = \"cache\" }\n";
        let s = load(text).expect("valid");
        assert_eq!(s.targets[0].intervals.interval, Duration::from_secs(5));
        assert!(!s.targets[0].adaptive);
        assert_eq!(
            s.targets[1].intervals,
            Intervals {
                interval: Duration::from_secs(2),
                min: Duration::from_secs(1),
                max: Duration::from_secs(30)
            }
        );
        assert!(s.targets[1].adaptive);
        assert_eq!(
            s.targets[1].labels,
            vec![("role".to_owned(), "cache".to_owned())]
        );
        let err = load("[[targets]]\nurl = \"redis://a:1\"\n\n[[targets]]\nurl = \"redis://b:2\"\ninterval = \"2m\"\n").unwrap_err().to_string();
        assert!(
            err.starts_with("redpush.toml:6: `targets[1].interval` is 2m, outside"),
            "{err}"
        );
        let err = load("[[targets]]\nurl = \"redis://a:1\"\nlabels = { instance = \"x\" }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("targets[0].labels.instance"), "{err}");
        assert!(
            load("[[targets]]\nurl = \"redis://a:1\"\n[[targets]]\nurl = \"redis://a:1/2\"\n")
                .is_err(),
            "same instance twice"
        );
        // Flag targets take the global settings.
        let overrides = Overrides {
            redis: vec!["redis://c:3".into()],
            interval: Some("3s".into()),
            ..Overrides::default()
        };
        let s = load_with("adaptive = false\n", overrides).expect("valid");
        assert_eq!(s.targets[0].intervals.interval, Duration::from_secs(3));
        assert!(!s.targets[0].adaptive);
    }

    #[test]
    fn pushgateway_settings() {
        let text = "job = \"cache\"\n[pushgateway]\nurl = \"http://pg:9091\"\ninterval = \"30s\"\ndelete_on_shutdown = true\ngrouping = { dc = \"eu\" }\n";
        let p = load(text).expect("valid").pushgateway.expect("set");
        assert_eq!(
            (p.job.as_str(), p.interval, p.delete_on_shutdown),
            ("cache", Duration::from_secs(30), true)
        );
        assert_eq!(p.grouping, vec![("dc".to_owned(), "eu".to_owned())]);
        let flag = Overrides {
            pushgateway: Some("http://other:9091".into()),
            ..Overrides::default()
        };
        let p = load_with(text, flag)
            .expect("valid")
            .pushgateway
            .expect("set");
        assert_eq!(p.url, "http://other:9091");
        assert!(p.delete_on_shutdown, "the flag replaces the URL only");
    }

    #[test]
    fn queue_sizes_and_fsync() {
        let s = load("[queue]\nmax_disk_bytes = \"64MiB\"\nmax_age = \"30m\"\nfsync = \"never\"\n")
            .expect("valid");
        assert_eq!(s.queue.max_disk_bytes, 64 << 20);
        assert_eq!(s.queue.max_age, Duration::from_secs(1800));
        assert_eq!(s.queue.fsync, Fsync::Never);
        assert_eq!(
            load("[queue]\nmax_disk_bytes = 2000000\n")
                .expect("valid")
                .queue
                .max_disk_bytes,
            2_000_000
        );
        let err = load("[queue]\nmax_disk_bytes = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("redpush.toml:2: `queue.max_disk_bytes`"),
            "{err}"
        );
        assert!(load("[queue]\nfsync = \"sometimes\"\n").is_err());
        let d = load("").expect("defaults").queue;
        assert_eq!(
            (d.max_disk_bytes, d.max_age, d.fsync),
            (256 << 20, Duration::from_secs(7200), Fsync::Always)
        );
    }

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../config/redpush.example.toml");
        let s = load(text).expect("the example config must load");
        // It is also the packaged default: it pushes nowhere until a url is set.
        assert!(s.remote_write.is_none());
        let with_url = text.replace(
            "# url = \"http://127.0.0.1:9090",
            "url = \"http://127.0.0.1:9090",
        );
        let s = load(&with_url).expect("the example config with a remote-write url");
        assert!(s.remote_write.is_some());
    }
}
