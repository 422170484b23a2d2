//! Configuration: the TOML file and the command-line overrides, validated
//! into typed [`Settings`].
//!
//! Every error names where the bad value came from: the file and line, or
//! the flag. Unknown keys are errors (a typo must not silently fall back to
//! a default). Secrets are held in [`Secret`], whose `Debug` and `Display`
//! never show the value.
//!
//! Parts: `file.rs` (the file as written and the readers of its values),
//! `sections.rs` (the agent-wide settings), `targets.rs`, `endpoint.rs`
//! (`[remote_write]` and `[pushgateway]`, one endpoint reader for both),
//! `describe.rs` (what `check-config` prints).

mod check;
mod describe;
mod endpoint;
mod file;
mod redact;
mod sections;
mod targets;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::relabel::Rules;
use crate::secret::Secret;
use file::{FileConfig, Locator};
#[cfg(test)]
pub(crate) use targets::parse_target;

/// The shortest interval allowed: below it the agent would load the Redis
/// it watches (each sample is several commands).
pub(crate) const MIN_INTERVAL_LIMIT: Duration = Duration::from_millis(100);

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
    pub log_level: Option<String>,
    pub log_format: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub job: String,
    pub intervals: Intervals,
    /// Labels added to every pushed series, sorted by name.
    pub external_labels: Vec<(String, String)>,
    pub targets: Vec<TargetSettings>,
    /// The remote-write endpoints, in the file's order; each reads the one
    /// queue from a place of its own. Names are unique.
    pub remote_write: Vec<RemoteWriteSettings>,
    pub pushgateway: Option<PushgatewaySettings>,
    pub metrics: MetricsSettings,
    pub queue: QueueSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
    /// Flags that replace a value the file sets (one line each, for a warning).
    pub overridden: Vec<String>,
}

/// How the agent logs: `[log]`, `--log-level`, `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// `None`: the command's default (`info`; `warn` for `once`), unless
    /// `RUST_LOG` says otherwise.
    pub level: Option<LogLevel>,
    /// Whether the level came from `--log-level`, which `RUST_LOG` does not
    /// override (a level from the file it does).
    pub level_from_flag: bool,
    pub format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One line of text per event, for people.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// The agent's own endpoint: its protection (`/healthz` and `/readyz`
/// stay open for probes) and when `/readyz` fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    pub basic_auth: Option<(String, PathBuf)>,
    /// Certificate chain and key (PEM): serve HTTPS instead of HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `/readyz` fails when a push destination has delivered nothing for
    /// this long.
    pub ready_delivery_timeout: Duration,
}

/// The default of `http.ready_delivery_timeout`.
pub(crate) const READY_DELIVERY_TIMEOUT: Duration = Duration::from_secs(600);

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            basic_auth: None,
            tls: None,
            ready_delivery_timeout: READY_DELIVERY_TIMEOUT,
        }
    }
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
    /// `metric_relabel_configs`: applied to every series of the target
    /// (what `/metrics`, the Pushgateway and remote write get).
    pub metric_relabel: Rules,
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
    /// Lua patterns grouping every key (`redis_key_group_*`).
    pub check_key_groups: Vec<String>,
    /// Most groups reported per database, by memory; the rest summed as
    /// `overflow`.
    pub max_distinct_key_groups: usize,
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

/// Where a push goes, and how it gets there: what remote write and the
/// Pushgateway have in common.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub url: String,
    /// Of each request.
    pub timeout: Duration,
    /// User and password file, read per request.
    pub basic_auth: Option<(String, PathBuf)>,
    /// Read per request.
    pub bearer_token_file: Option<PathBuf>,
    /// OAuth2 client credentials: a token fetched and kept until it nears
    /// its expiry.
    pub oauth2: Option<OAuth2Settings>,
    /// AWS Signature Version 4 (remote write only).
    pub sigv4: Option<SigV4Settings>,
    pub tls: Option<TlsSettings>,
}

/// `[remote_write.sigv4]`, as Prometheus' `sigv4` block has it (the secret
/// in a file).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SigV4Settings {
    /// The endpoint's region; else AWS' (`AWS_REGION`, the profile's).
    pub region: Option<String>,
    /// With `secret_key_file`: these keys instead of AWS' chain.
    pub access_key: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    /// The shared config file's profile.
    pub profile: Option<String>,
    /// A role to assume with the credentials found.
    pub role_arn: Option<String>,
}

/// OAuth2's client credentials grant (RFC 6749, 4.4), as Prometheus'
/// `oauth2` block has it.
#[derive(Clone, Debug, PartialEq)]
pub struct OAuth2Settings {
    pub client_id: String,
    /// Read at every token request, so a rotated secret is picked up.
    pub client_secret_file: PathBuf,
    pub token_url: String,
    pub scopes: Vec<String>,
    /// Extra form parameters of the token request (`audience`...).
    pub endpoint_params: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RemoteWriteSettings {
    /// `name`, or the url's `host:port`: the `remote_name` label of the
    /// endpoint's counters, its name in logs and the status, and (with
    /// several endpoints) its position file in the queue. Letters, digits
    /// and `_ . : - [ ]` only, at most 64.
    pub name: String,
    /// The table as written, for messages: `remote_write`, or
    /// `remote_write[1]` in the array form.
    pub key: String,
    pub endpoint: Endpoint,
    /// Longest wait of a sample before it is sent.
    pub flush_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub max_samples_per_send: usize,
    /// Most requests in flight at once, when a backlog builds up.
    pub max_shards: usize,
    /// Most samples a second sent on average (`None`: unlimited), so that
    /// a backlog does not flood the receiver.
    pub max_samples_per_second: Option<u64>,
    /// Sent with every request; values never logged.
    pub headers: Vec<(String, String)>,
    /// `write_relabel_configs`: applied to what this endpoint is sent.
    pub write_relabel: Rules,
    /// How often every family's metadata is sent (`None`: never,
    /// `send_metadata = false`).
    pub metadata_interval: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PushgatewaySettings {
    pub endpoint: Endpoint,
    /// The `job` of the pushed groups (default: the top-level `job`).
    pub job: String,
    /// How often the agent pushes (default: the base interval).
    pub interval: Duration,
    /// Extra grouping labels, after `job` and `instance` in the group path.
    pub grouping: Vec<(String, String)>,
    /// Delete the agent's groups when it stops.
    pub delete_on_shutdown: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricsSettings {
    pub unmapped_info_fields: bool,
    pub config_refresh: Duration,
    /// Longest time between complete readings (`INFO ALL` and the costly
    /// commands); samples in between read only the fast-moving sections.
    /// Zero: every sample is complete.
    pub detail_interval: Duration,
    /// Most series one reading of a target may give (its mapped replies;
    /// `redis_up` and the key and `redpush_*` series come on top), and
    /// most INFO fields read per reading: a hostile or broken server must
    /// not grow the agent's memory and queue without bound.
    pub max_series_per_target: usize,
    /// `LATENCY HISTOGRAM` as classic histograms, native ones, or both.
    pub latency_histograms: LatencyHistograms,
}

/// `[metrics] latency_histograms`: each command's latency as the exporter's
/// classic histogram (`_bucket{le}`, `_sum`, `_count`), as one native
/// histogram series, or both (as Prometheus stores a target that exposes both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LatencyHistograms {
    #[default]
    Classic,
    Native,
    Both,
}

impl LatencyHistograms {
    pub const NAMES: [(&'static str, LatencyHistograms); 3] = [
        ("classic", LatencyHistograms::Classic),
        ("native", LatencyHistograms::Native),
        ("both", LatencyHistograms::Both),
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("classic", |(n, _)| n)
    }

    pub(crate) fn classic(self) -> bool {
        self != LatencyHistograms::Native
    }

    pub(crate) fn native(self) -> bool {
        self != LatencyHistograms::Classic
    }
}

/// `[metrics] max_series_per_target` unless set: about ten times what a
/// busy server's complete reading gives.
pub(crate) const DEFAULT_MAX_SERIES_PER_TARGET: usize = 10_000;

impl Settings {
    /// Reads the file named by `overrides.config` (if any), applies the
    /// flags and validates the result.
    pub fn load(overrides: &Overrides) -> Result<Settings, ConfigError> {
        let (path, text) = match &overrides.config {
            Some(path) => (path.clone(), read_file(path)?),
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
        let file: FileConfig = toml::from_str(text).map_err(|e| parse_error(path, text, &e))?;
        let loc = Locator { path, text };
        let job = sections::job(&file, &loc)?;
        let intervals = sections::intervals(&file, overrides, &loc)?;
        let adaptive = file.adaptive.unwrap_or(true);
        Ok(Settings {
            listen: sections::listen(&file, overrides, &loc)?,
            state_dir: sections::state_dir(&file, overrides),
            external_labels: file::labels(&file.external_labels, &loc, "external_labels")?,
            targets: targets::targets(&file, overrides, &loc, intervals, adaptive)?,
            remote_write: endpoint::remote_writes(&file.remote_write, overrides, &loc)?,
            pushgateway: endpoint::pushgateway(
                file.pushgateway.as_ref(),
                overrides,
                &loc,
                &job,
                intervals.interval,
            )?,
            metrics: sections::metrics(&file.metrics, &loc)?,
            queue: sections::queue(&file.queue, &loc)?,
            http: sections::http(&file.http, &loc)?,
            log: sections::log(&file.log, overrides, &loc)?,
            overridden: sections::overridden(&file, overrides, &loc),
            job,
            intervals,
        })
    }
}

/// The largest config file read: far above any real one, and a bound on
/// what a mistaken path (a log, a device) can cost.
pub(crate) const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The text of the config file at `path`: a regular file (a FIFO or a
/// device would block or never end) of at most [`MAX_CONFIG_BYTES`].
pub(crate) fn read_file(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let invalid = |what: String| err(std::io::Error::new(std::io::ErrorKind::InvalidInput, what));
    // Checked before opening: opening a FIFO blocks until a writer comes.
    let meta = std::fs::metadata(path).map_err(err)?;
    if !meta.is_file() {
        return Err(invalid("not a regular file".to_owned()));
    }
    let too_big = || invalid(format!("larger than {MAX_CONFIG_BYTES} bytes"));
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_big());
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(err)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(err)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_big());
    }
    Ok(text)
}

/// A TOML error as shown: where it is, the line quoted with its secrets cut
/// out (`redact.rs`), and the message cut the same way. The caret is drawn
/// only under a line shown as written.
fn parse_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim_end();
    let Some(span) = e.span() else {
        return ConfigError::Parse {
            path: path.to_owned(),
            message: message.to_owned(),
        };
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let number = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let quoted = redact::line(text, number);
    let gutter = " ".repeat(number.to_string().len());
    let written = text[line_start..].lines().next().unwrap_or("");
    let caret = if quoted.line == written {
        format!("{gutter} | {}^\n", " ".repeat(column - 1))
    } else {
        String::new()
    };
    ConfigError::Parse {
        path: path.to_owned(),
        message: format!(
            "TOML parse error at line {number}, column {column}\n{gutter} |\n{number} | {}\n{caret}{}",
            quoted.line,
            quoted.cut(message)
        ),
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
        assert!(s.remote_write.is_empty());
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
    fn latency_histograms_is_one_of_three_names() {
        let default = load("").expect("no file");
        assert_eq!(
            default.metrics.latency_histograms,
            LatencyHistograms::Classic
        );
        for (name, mode) in LatencyHistograms::NAMES {
            let text = format!("[metrics]\nlatency_histograms = \"{name}\"");
            let settings = load(&text).expect("a valid name");
            assert_eq!(settings.metrics.latency_histograms, mode);
            assert_eq!(mode.as_str(), name);
        }
        let err = load("[metrics]\n\nlatency_histograms = \"Native\"")
            .expect_err("names are lower case")
            .to_string();
        assert!(err.contains("metrics.latency_histograms"), "{err}");
        assert!(err.contains("redpush.toml:3"), "{err}");
        assert!(err.contains("\"classic\", \"native\" or \"both\""), "{err}");
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
            s.remote_write.first().map(|r| r.endpoint.url.clone()),
            Some("http://rw:9090/api/v1/write".to_owned())
        );
        assert_eq!(s.listen.port(), 9999);
        // Said for the values the file set; a flag for a key the file
        // leaves out replaces nothing.
        assert_eq!(
            s.overridden,
            [
                "--interval overrides `interval` set in redpush.toml:1",
                "--redis overrides `[[targets]]` set in redpush.toml",
            ]
        );
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
    fn one_way_of_authenticating_per_endpoint() {
        let text = "[remote_write]\nurl = \"http://h/\"\nbearer_token_file = \"/t\"\n\
            [remote_write.oauth2]\nclient_id = \"c\"\nclient_secret_file = \"/s\"\n\
            token_url = \"https://auth/token\"\n";
        let err = load(text).unwrap_err().to_string();
        assert!(
            err.contains(
                "`remote_write` takes one of basic_auth, bearer_token_file, oauth2 and sigv4"
            ),
            "{err}"
        );
        let text = "[remote_write]\nurl = \"http://h/\"\n[remote_write.oauth2]\n\
            client_id = \"c\"\nclient_secret_file = \"/s\"\ntoken_url = \"ftp://auth/token\"\n";
        let err = load(text).unwrap_err().to_string();
        assert!(err.contains("remote_write.oauth2.token_url"), "{err}");
    }

    #[cfg(not(feature = "sigv4"))]
    #[test]
    fn sigv4_in_a_build_without_it_is_a_clear_error() {
        let text =
            "[remote_write]\nurl = \"http://h/\"\n[remote_write.sigv4]\nregion = \"eu-west-1\"\n";
        let err = load(text).unwrap_err().to_string();
        assert!(
            err.contains("`remote_write.sigv4` needs a build with SigV4"),
            "{err}"
        );
    }

    #[cfg(feature = "sigv4")]
    #[test]
    fn sigv4_keys_go_together_and_are_printed_without_the_secret() {
        let text =
            "[remote_write]\nurl = \"http://h/\"\n[remote_write.sigv4]\naccess_key = \"AK\"\n";
        let err = load(text).unwrap_err().to_string();
        assert!(err.contains("remote_write.sigv4.access_key"), "{err}");
        let text = "[remote_write]\nurl = \"http://h/\"\n[remote_write.sigv4]\nregion = \"eu-west-1\"\n\
            access_key = \"AK\"\nsecret_key_file = \"/s\"\nrole_arn = \"arn:aws:iam::1:role/w\"\n";
        let printed = load(text).expect("valid").to_string();
        assert!(
            printed.contains("sigv4 = { region = \"eu-west-1\", access_key = \"AK\", secret_key_file = \"/s\", role_arn = \"arn:aws:iam::1:role/w\" }"),
            "{printed}"
        );
    }

    #[test]
    fn several_remote_write_endpoints_each_named() {
        let text = "[[remote_write]]\nurl = \"http://vm:8428/api/v1/write\"\n\
            [[remote_write]]\nname = \"mimir-eu\"\nurl = \"https://mimir.example/api/v1/push\"\n\
            max_shards = 3\n[[remote_write.write_relabel_configs]]\naction = \"drop\"\n\
            source_labels = [\"__name__\"]\nregex = \"redis_commands_.*\"\n";
        let s = load(text).expect("valid");
        let names: Vec<(&str, &str)> = (s.remote_write.iter())
            .map(|rw| (rw.name.as_str(), rw.key.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("vm:8428", "remote_write[0]"),
                ("mimir-eu", "remote_write[1]")
            ]
        );
        assert_eq!(s.remote_write[1].max_shards, 3);
        assert!(s.remote_write[0].write_relabel.is_empty());
        assert!(!s.remote_write[1].write_relabel.is_empty());
        let printed = s.to_string();
        assert!(
            printed.contains("[[remote_write]]\nname = \"vm:8428\"\n"),
            "{printed}"
        );
        assert_eq!(load(&printed).expect("printed config reads back"), s);
        // The table form: one endpoint named by its host and port (the
        // scheme's port when none is written).
        let s = load("[remote_write]\nurl = \"https://rw.example/api/v1/write\"\n").expect("valid");
        assert_eq!(s.remote_write[0].name, "rw.example:443");
        assert_eq!(s.remote_write[0].key, "remote_write");
    }

    #[test]
    fn endpoint_mistakes_are_named_by_index_and_line() {
        let two = "[[remote_write]]\nurl = \"http://a:1/\"\n[[remote_write]]\nurl = \"ftp://b/\"\n";
        let err = load(two).unwrap_err().to_string();
        assert!(
            err.contains("redpush.toml:4: `remote_write[1].url`"),
            "{err}"
        );
        let same =
            "[[remote_write]]\nurl = \"http://a:1/x\"\n[[remote_write]]\nurl = \"http://a:1/y\"\n";
        let err = load(same).unwrap_err().to_string();
        assert!(err.contains("`remote_write[1].name`"), "{err}");
        assert!(
            err.contains("\"a:1\" is also remote_write[0]'s name"),
            "{err}"
        );
        let bad = "[[remote_write]]\nname = \"a/b\"\nurl = \"http://a:1/\"\n";
        let err = load(bad).unwrap_err().to_string();
        assert!(
            err.contains("redpush.toml:2: `remote_write[0].name`"),
            "{err}"
        );
        let missing =
            "[[remote_write]]\nurl = \"http://a:1/\"\n[[remote_write]]\ntimeout = \"1s\"\n";
        let err = load(missing).unwrap_err().to_string();
        assert!(err.contains("`remote_write[1].url` is missing"), "{err}");
        let unknown = "[[remote_write]]\nurl = \"http://a:1/\"\nurll = \"x\"\n";
        let err = load(unknown).unwrap_err().to_string();
        assert!(err.contains("unknown field `urll`"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn the_flag_replaces_the_url_of_the_one_endpoint_only() {
        let flag = Overrides {
            remote_write: Some("http://flag:9/api/v1/write".into()),
            ..Overrides::default()
        };
        let one = "[remote_write]\nurl = \"http://file:1/\"\nmax_shards = 2\n";
        let s = load_with(one, flag.clone()).expect("valid");
        assert_eq!(s.remote_write.len(), 1);
        assert_eq!(s.remote_write[0].endpoint.url, "http://flag:9/api/v1/write");
        assert_eq!(s.remote_write[0].name, "flag:9");
        assert_eq!(s.remote_write[0].max_shards, 2);
        let two =
            "[[remote_write]]\nurl = \"http://a:1/\"\n[[remote_write]]\nurl = \"http://b:1/\"\n";
        let err = load_with(two, flag).unwrap_err().to_string();
        assert!(err.contains("--remote-write"), "{err}");
        assert!(err.contains("2 [[remote_write]] tables"), "{err}");
    }

    #[test]
    fn a_bad_relabel_rule_is_named_by_its_index_and_line() {
        let text = "[[targets]]\nurl = \"redis://h:1\"\n\
            [[targets.metric_relabel_configs]]\nregex = \"x\"\naction = \"drop\"\n\
            [[targets.metric_relabel_configs]]\naction = \"hashmod\"\ntarget_label = \"s\"\n";
        let err = load(text).unwrap_err().to_string();
        assert!(
            err.contains("redpush.toml:6: `targets[0].metric_relabel_configs[1]`"),
            "{err}"
        );
        assert!(err.contains("modulus"), "{err}");
        let text = "[remote_write]\nurl = \"http://h/\"\n\
            [[remote_write.write_relabel_configs]]\nregex = \"(\"\naction = \"keep\"\n";
        let err = load(text).unwrap_err().to_string();
        assert!(
            err.contains("redpush.toml:3: `remote_write.write_relabel_configs[0]` regex \"(\" is invalid: found open group without closing ')'"),
            "{err}"
        );
        let text = "[[targets]]\nurl = \"redis://h:1\"\n\
            [[targets.metric_relabel_configs]]\nregexp = \"x\"\n";
        assert!(load(text).is_err(), "unknown keys are refused");
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
        assert_eq!(p.endpoint.url, "http://other:9091");
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
        let text = include_str!("../../config/redpush.example.toml");
        let s = load(text).expect("the example config must load");
        // It is also the packaged default: it pushes nowhere until a url is set.
        assert!(s.remote_write.is_empty());
        let with_url = text.replace(
            "# url = \"http://127.0.0.1:9090",
            "url = \"http://127.0.0.1:9090",
        );
        let s = load(&with_url).expect("the example config with a remote-write url");
        assert!(!s.remote_write.is_empty());
    }
}
