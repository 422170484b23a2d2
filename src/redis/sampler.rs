//! One persistent connection per target and the commands of one sample.
//!
//! A sample is one pipelined round trip: `INFO`, the cheap optional
//! commands (`SLOWLOG LEN`, `SLOWLOG GET 1`, `LATENCY LATEST`, ...), and (at
//! most once per `config_refresh`) one `CONFIG GET` per setting the metrics
//! need. The connection is opened once and reused; after a failure it is
//! dropped and reopened with exponential backoff, and until then every
//! sample reports the target down without touching it.
//!
//! Not every sample is complete. On a busy server `INFO ALL` costs it about
//! 100 µs, `LATENCY HISTOGRAM` about as much again, most of it in the
//! command and latency statistics. So a complete reading (`INFO ALL` and
//! every optional command) is taken at most every `detail_interval`; the
//! samples in between, taken only when the interval is shorter than that,
//! read just the sections that move fast and that the adaptive interval
//! watches (`FAST_SECTIONS`).
//!
//! Servers that refuse CONFIG or SLOWLOG (managed Redis renames or disables
//! them) are probed once per connection: after the first error the command
//! is left out, so the server's error counters do not grow on every sample.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use redis::Value;
use tracing::{info, warn};

use crate::config::{MetricsSettings, TargetSettings};
use crate::metrics::mapper::{
    CONFIG_PARAMS, CommandHistogram, LatencyEvent, SentinelMaster, ServerConfig, Slowlog,
};
use crate::redis::connection::{self, Connection, Item, Items};
use crate::redis::info::Info;
use crate::redis::info::pair;
use crate::redis::transport::{self, Budget, TransportError};

/// INFO sections of a sample between complete readings: what the adaptive
/// interval watches (memory, ops, evictions, rejected connections, the
/// replication link) and the cheap sections whose absence would change a
/// series rather than just leave it out (`keyspace` reports every database,
/// `cluster` decides how many). Several sections in one INFO need Redis 7.
const FAST_SECTIONS: [&str; 6] = [
    "clients",
    "memory",
    "stats",
    "replication",
    "cluster",
    "keyspace",
];

/// The replies of one successful sample.
#[derive(Clone, Debug, Default)]
pub struct RawReading {
    /// `INFO ALL`, or `FAST_SECTIONS` only when `complete` is false.
    pub info: String,
    /// Whether this is a complete reading; an incomplete one leaves out the
    /// detail sections and commands, whose series it does not end.
    pub complete: bool,
    pub latency: Option<Vec<LatencyEvent>>,
    pub histograms: Option<Vec<CommandHistogram>>,
    pub cluster_info: Option<String>,
    pub sentinel: Option<Vec<SentinelMaster>>,
    /// `CLIENT LIST` text.
    pub clients: Option<String>,
    pub config: Option<Arc<ServerConfig>>,
    pub slowlog: Option<Slowlog>,
}

/// Why a sample failed; `reason()` is the `reason` label of
/// `redpush_target_errors_total`. Messages never hold a password.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("command failed: {0}")]
    Command(String),
    #[error("unexpected reply: {0}")]
    Reply(String),
    #[error("cannot read password file {path}: {error}")]
    PasswordFile { path: String, error: String },
    #[error("waiting {0:?} before reconnecting")]
    Backoff(Duration),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("reply larger than max_reply_bytes ({0} bytes); connection dropped")]
    TooLarge(u64),
}

impl SampleError {
    pub fn reason(&self) -> &'static str {
        match self {
            SampleError::Connect(_) => "connect",
            SampleError::Auth(_) | SampleError::PasswordFile { .. } => "auth",
            SampleError::Timeout(_) => "timeout",
            SampleError::Command(_) => "command",
            SampleError::Reply(_) => "reply",
            SampleError::Backoff(_) => "backoff",
            SampleError::Tls(_) => "tls",
            SampleError::TooLarge(_) => "reply",
        }
    }
}

pub struct Sampler {
    target: TargetSettings,
    config_refresh: Duration,
    /// The open connection, between samples. Taken out for a round trip
    /// and put back only if it succeeded: after a failure its stream may be
    /// out of step, so the next sample reconnects.
    conn: Option<Connection>,
    config: Option<(Instant, Arc<ServerConfig>)>,
    /// CONFIG GET failed on this connection: do not send it again until reconnect.
    config_refused: bool,
    /// Optional commands refused on this connection, by `Optional as usize`.
    refused: [bool; Optional::ALL.len()],
    /// What the last INFO said about the server, to choose the commands.
    facts: ServerFacts,
    backoff: ExponentialBackoff,
    /// No connection attempt before this instant.
    retry_at: Option<Instant>,
    /// Bytes the current sample may still read.
    budget: Budget,
    /// The last round trip's duration per kind of command.
    timings: Vec<(&'static str, f64)>,
    /// Longest time between complete readings (zero: every one is).
    detail_interval: Duration,
    /// When the last complete reading started; None after a reconnect.
    last_complete: Option<Instant>,
}

impl Sampler {
    pub fn new(target: TargetSettings, metrics: MetricsSettings) -> Self {
        Sampler {
            target,
            config_refresh: metrics.config_refresh,
            detail_interval: metrics.detail_interval,
            last_complete: None,
            conn: None,
            config: None,
            config_refused: false,
            refused: [false; Optional::ALL.len()],
            facts: ServerFacts::default(),
            backoff: reconnect_backoff(),
            retry_at: None,
            budget: Budget::default(),
            timings: Vec::new(),
        }
    }

    pub fn target(&self) -> &TargetSettings {
        &self.target
    }

    /// The open connection, or a new one once the reconnect backoff has
    /// passed; the caller puts it back after a successful round trip.
    async fn connection(&mut self) -> Result<Connection, SampleError> {
        if let Some(conn) = self.conn.take() {
            return Ok(conn);
        }
        if let Some(at) = self.retry_at {
            let now = Instant::now();
            if at > now {
                return Err(SampleError::Backoff(at - now));
            }
        }
        match self.connect().await {
            Ok(conn) => {
                self.backoff = reconnect_backoff();
                self.retry_at = None;
                self.config_refused = false;
                self.refused = [false; Optional::ALL.len()];
                // A server back from an outage gets a complete reading at once.
                self.last_complete = None;
                Ok(conn)
            }
            Err(e) => {
                self.schedule_reconnect();
                Err(e)
            }
        }
    }

    /// Runs `pipe` (errors of single commands come back as
    /// `Value::ServerError`) on the sampling connection, within the reply
    /// budget. A failure drops the connection, as in `sample`.
    pub async fn query(
        &mut self,
        pipe: &redis::Pipeline,
        label: &'static str,
    ) -> Result<Vec<Value>, SampleError> {
        let mut conn = self.connection().await?;
        let result = self.run(&mut conn, pipe, label).await;
        match result {
            Ok(_) => self.conn = Some(conn),
            Err(_) => self.schedule_reconnect(),
        }
        result
    }

    /// `CLUSTER NODES`, for discovering a cluster's nodes.
    pub async fn cluster_nodes(&mut self) -> Result<String, SampleError> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        pipe.cmd("CLUSTER").arg("NODES");
        let replies = self.query(&pipe, "cluster_nodes").await?;
        text_reply(replies.into_iter().next()).map_err(SampleError::Command)
    }

    /// Takes one sample. On an error the connection is dropped; the next
    /// call reconnects once the backoff has passed.
    pub async fn sample(&mut self) -> Result<RawReading, SampleError> {
        let mut conn = self.connection().await?;
        let mut result = self.commands(&mut conn).await;
        if let Ok(reading) = &mut result
            && self.facts.major_version == 0
        {
            // The first sample of this server: which optional commands it
            // has is known only now. Fetch them this once in a second round
            // trip, so that this reading is complete too.
            self.facts = ServerFacts::from_info(&Info::parse(&reading.info));
            result = self.late_extras(&mut conn, std::mem::take(reading)).await;
        }
        match result {
            Ok(reading) => {
                self.conn = Some(conn);
                Ok(reading)
            }
            Err(e) => {
                // Whatever went wrong, the next sample starts on a fresh connection.
                self.schedule_reconnect();
                Err(e)
            }
        }
    }

    fn schedule_reconnect(&mut self) {
        let delay = self.backoff.next().unwrap_or(Duration::from_secs(30));
        self.retry_at = Some(Instant::now() + delay);
    }

    async fn connect(&self) -> Result<Connection, SampleError> {
        let t = &self.target;
        let password = self.password()?;
        self.budget.refill(t.max_reply_bytes);
        let stream = transport::connect(t, self.budget.clone(), t.connect_timeout)
            .await
            .map_err(|e| match e {
                TransportError::Tls(m) => SampleError::Tls(m),
                TransportError::Handshake(e) => SampleError::Tls(format!("handshake failed: {e}")),
                TransportError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    SampleError::Timeout(t.connect_timeout)
                }
                TransportError::Io(e) => SampleError::Connect(e.to_string()),
            })?;
        // AUTH and SELECT run here, under the connect timeout. Nothing
        // else: no CLIENT SETINFO, which Redis before 7.2 answers with an
        // error that would raise the server's error counters on every connect.
        let login = Connection::open(
            stream,
            t.username.as_deref(),
            password.as_deref(),
            t.db,
            t.command_timeout,
        );
        tokio::time::timeout(t.connect_timeout, login)
            .await
            .map_err(|_| SampleError::Timeout(t.connect_timeout))?
            .map_err(|e| self.classify(&e, t.connect_timeout, true))
    }

    /// The password from its file or environment variable (read now, so a
    /// rotated one is used on reconnect), or from the URL.
    fn password(&self) -> Result<Option<String>, SampleError> {
        let t = &self.target;
        if let Some(path) = &t.password_file {
            let password =
                std::fs::read_to_string(path).map_err(|e| SampleError::PasswordFile {
                    path: path.display().to_string(),
                    error: e.to_string(),
                })?;
            return Ok(Some(password.trim_end_matches(['\r', '\n']).to_owned()));
        }
        if let Some(var) = &t.password_env {
            return std::env::var(var)
                .map(Some)
                .map_err(|_| SampleError::PasswordFile {
                    path: format!("environment variable {var}"),
                    error: "not set".to_owned(),
                });
        }
        Ok(t.password.as_ref().map(|p| p.expose().to_owned()))
    }

    fn classify(&self, e: &redis::RedisError, timeout: Duration, connecting: bool) -> SampleError {
        if self.budget.exceeded() {
            return SampleError::TooLarge(self.target.max_reply_bytes);
        }
        classify(e, timeout, connecting)
    }

    async fn commands(&mut self, conn: &mut Connection) -> Result<RawReading, SampleError> {
        let want_config = !self.config_refused
            && self.facts.sentinel_masters.is_none()
            && self
                .config
                .as_ref()
                .is_none_or(|(at, _)| at.elapsed() >= self.config_refresh);
        let started = Instant::now();
        let complete = self.complete_due(started);
        let optional = if complete {
            self.wanted(&Optional::ALL)
        } else {
            self.wanted(&Optional::CHEAP)
        };

        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        if complete {
            pipe.cmd("INFO").arg("ALL");
        } else if self.facts.major_version >= 7 {
            pipe.cmd("INFO").arg(&FAST_SECTIONS[..]);
        } else {
            // One section per INFO before 7.0; `default` still leaves out
            // the command statistics, the costliest part.
            pipe.cmd("INFO").arg("default");
        }
        let histogram_at = self.queue_optional(&optional, &mut pipe);
        if want_config {
            for param in CONFIG_PARAMS {
                pipe.cmd("CONFIG").arg("GET").arg(*param);
            }
        }
        let (replies, mut histograms) =
            self.run_sample(conn, &pipe, histogram_at, "sample").await?;
        let mut replies = replies.into_iter();

        let info = match replies.next() {
            Some(Value::BulkString(bytes)) => String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            Some(Value::VerbatimString { text, .. }) => text,
            Some(Value::ServerError(e)) => return Err(SampleError::Command(format!("INFO: {e}"))),
            other => {
                return Err(SampleError::Reply(format!(
                    "INFO answered {}",
                    describe(other.as_ref())
                )));
            }
        };
        let mut reading = RawReading {
            info,
            complete,
            ..RawReading::default()
        };
        if complete {
            self.last_complete = Some(started);
        }
        self.store(&optional, &mut replies, &mut histograms, &mut reading);

        if want_config {
            let mut pairs: Vec<(String, String)> = Vec::new();
            let mut refused = None;
            for param in CONFIG_PARAMS {
                match replies.next() {
                    Some(Value::ServerError(e)) => {
                        refused = Some(format!("CONFIG GET {param}: {e}"))
                    }
                    Some(value) => pairs.extend(config_pairs(value)),
                    None => refused = Some("missing reply".to_owned()),
                }
            }
            if let Some(e) = refused {
                self.config_refused = true;
                self.config = None;
                warn!(instance = %self.target.instance, "CONFIG GET is not available ({e}); config metrics are left out and 16 databases assumed until reconnect");
            } else {
                let config =
                    ServerConfig::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                self.config = Some((Instant::now(), Arc::new(config)));
            }
        }
        reading.config = self.config.as_ref().map(|(_, c)| c.clone());
        Ok(reading)
    }

    /// Whether the sample starting at `now` must be complete: the first one
    /// (the server's version and mode are not known yet), one on a Sentinel
    /// (small replies, nothing to save), and one once `detail_interval` has
    /// passed. A twentieth of it is forgiven, so that a sample a few
    /// milliseconds early does not push the complete reading a whole
    /// interval later.
    fn complete_due(&self, now: Instant) -> bool {
        self.facts.major_version == 0
            || self.facts.sentinel_masters.is_some()
            || self.last_complete.is_none_or(|at| {
                now.saturating_duration_since(at) + self.detail_interval / 20
                    >= self.detail_interval
            })
    }

    /// The optional commands of `candidates` this server should get now.
    fn wanted(&self, candidates: &[Optional]) -> Vec<Optional> {
        candidates
            .iter()
            .copied()
            .filter(|o| !self.refused[*o as usize] && o.applies(&self.facts))
            .filter(|o| *o != Optional::ClientList || self.target.client_list)
            .collect()
    }

    /// Queues the commands of `optional`; where the LATENCY HISTOGRAM went,
    /// if it is one of them.
    fn queue_optional(&self, optional: &[Optional], pipe: &mut redis::Pipeline) -> Option<usize> {
        let mut histogram_at = None;
        for o in optional {
            if *o == Optional::LatencyHistogram {
                histogram_at = Some(pipe.len());
            }
            o.queue(pipe, &self.facts);
        }
        histogram_at
    }

    /// Sends a pipeline within the reply budget, timing the round trip
    /// under `label`.
    async fn run(
        &mut self,
        conn: &mut Connection,
        pipe: &redis::Pipeline,
        label: &'static str,
    ) -> Result<Vec<Value>, SampleError> {
        self.timed(label, pipe.query_async(conn)).await
    }

    /// Sends a sample's pipeline (`ignore_errors`: a refused command's
    /// reply is its error) like `run`, reading its `LATENCY HISTOGRAM`
    /// reply (at `histogram_at`) straight from the bytes: of a few hundred
    /// values, made and dropped again only to be read once, they were the
    /// largest part of reading a complete sample's replies.
    async fn run_sample(
        &mut self,
        conn: &mut Connection,
        pipe: &redis::Pipeline,
        histogram_at: Option<usize>,
        label: &'static str,
    ) -> Result<(Vec<Value>, Option<Histograms>), SampleError> {
        let mut histograms = None;
        let round_trip = conn.round_trip(pipe, |i, reply| {
            if Some(i) == histogram_at {
                histograms = Some(latency_histogram_reply(reply));
                return Ok(Value::Nil);
            }
            connection::value(reply)
        });
        let replies = self.timed(label, round_trip).await?;
        Ok((replies, histograms))
    }

    /// Runs a round trip (which starts when awaited) within a fresh reply
    /// budget, timing it under `label`.
    async fn timed<T>(
        &mut self,
        label: &'static str,
        round_trip: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, SampleError> {
        let timeout = self.target.command_timeout;
        self.budget.refill(self.target.max_reply_bytes);
        let started = Instant::now();
        let result = round_trip
            .await
            .map_err(|e| self.classify(&e, timeout, false));
        let seconds = started.elapsed().as_secs_f64();
        match self.timings.iter_mut().find(|(l, _)| *l == label) {
            Some(slot) => slot.1 = seconds,
            None => self.timings.push((label, seconds)),
        }
        result
    }

    /// How long the last round trip of each kind took: `sample` (INFO and
    /// the commands that go with it), `sample_extras`, `scan`, `keys`,
    /// `script`, `cluster_nodes`.
    pub fn timings(&self) -> &[(&'static str, f64)] {
        &self.timings
    }

    /// Takes the replies of `optional` into `reading`. A command the server
    /// refuses is left out until reconnect, with one log line, so the
    /// server's error counters do not grow with every sample.
    fn store(
        &mut self,
        optional: &[Optional],
        replies: &mut impl Iterator<Item = Value>,
        histograms: &mut Option<Histograms>,
        reading: &mut RawReading,
    ) {
        for o in optional {
            if let Err(e) = o.store(replies, histograms, reading, &self.facts) {
                self.refused[*o as usize] = true;
                warn!(
                    instance = %self.target.instance,
                    "{} is not available ({e}); {} are left out until reconnect",
                    o.command(),
                    o.what()
                );
            }
        }
    }

    /// LATENCY HISTOGRAM, CLUSTER INFO and the SENTINEL commands for a
    /// reading taken before the server's version and mode were known.
    async fn late_extras(
        &mut self,
        conn: &mut Connection,
        mut reading: RawReading,
    ) -> Result<RawReading, SampleError> {
        let optional = self.wanted(&[
            Optional::LatencyHistogram,
            Optional::ClusterInfo,
            Optional::Sentinel,
        ]);
        if optional.is_empty() {
            return Ok(reading);
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let histogram_at = self.queue_optional(&optional, &mut pipe);
        let (replies, mut histograms) = self
            .run_sample(conn, &pipe, histogram_at, "sample_extras")
            .await?;
        self.store(
            &optional,
            &mut replies.into_iter(),
            &mut histograms,
            &mut reading,
        );
        Ok(reading)
    }

    /// Takes what the sample's INFO says about the server, to choose the
    /// commands of the next samples.
    pub fn learn(&mut self, facts: ServerFacts) {
        self.facts = facts;
    }
}

/// Commands beyond INFO that a server may lack (older versions, Sentinel,
/// managed services) or refuse (ACLs). Each is tried once per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Optional {
    Slowlog,
    LatencyLatest,
    LatencyHistogram,
    ClusterInfo,
    /// SENTINEL MASTERS, and CKQUORUM, SENTINELS and SLAVES per master.
    Sentinel,
    /// CLIENT LIST, for targets with `client_list = true`.
    ClientList,
}

impl Optional {
    const ALL: [Optional; 6] = [
        Optional::Slowlog,
        Optional::LatencyLatest,
        Optional::LatencyHistogram,
        Optional::ClusterInfo,
        Optional::Sentinel,
        Optional::ClientList,
    ];
    /// Those sent between complete readings too: a few microseconds each
    /// on the server, and `cluster_state` is a signal to have quickly.
    /// LATENCY HISTOGRAM and CLIENT LIST cost as much as INFO ALL or more.
    const CHEAP: [Optional; 3] = [
        Optional::Slowlog,
        Optional::LatencyLatest,
        Optional::ClusterInfo,
    ];

    fn command(self) -> &'static str {
        match self {
            Optional::Slowlog => "SLOWLOG",
            Optional::LatencyLatest => "LATENCY LATEST",
            Optional::LatencyHistogram => "LATENCY HISTOGRAM",
            Optional::ClusterInfo => "CLUSTER INFO",
            Optional::Sentinel => "SENTINEL MASTERS",
            Optional::ClientList => "CLIENT LIST",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Optional::Slowlog => "slowlog metrics",
            Optional::LatencyLatest => "latency spike metrics",
            Optional::LatencyHistogram => "latency histograms",
            Optional::ClusterInfo => "cluster metrics",
            Optional::Sentinel => "sentinel master details",
            Optional::ClientList => "client summaries",
        }
    }

    /// Whether the command exists on this server at all.
    fn applies(self, facts: &ServerFacts) -> bool {
        match self {
            // A Sentinel has none of these commands.
            Optional::Slowlog | Optional::LatencyLatest => facts.sentinel_masters.is_none(),
            // LATENCY HISTOGRAM exists from Redis 7.0 on.
            Optional::LatencyHistogram => {
                facts.major_version >= 7 && facts.sentinel_masters.is_none()
            }
            Optional::ClusterInfo => facts.cluster,
            Optional::Sentinel => facts.sentinel_masters.is_some(),
            // Asked for per target (see `wanted`).
            Optional::ClientList => true,
        }
    }

    fn queue(self, pipe: &mut redis::Pipeline, facts: &ServerFacts) {
        match self {
            Optional::Slowlog => {
                pipe.cmd("SLOWLOG").arg("LEN");
                pipe.cmd("SLOWLOG").arg("GET").arg(1);
            }
            Optional::LatencyLatest => {
                pipe.cmd("LATENCY").arg("LATEST");
            }
            Optional::LatencyHistogram => {
                pipe.cmd("LATENCY").arg("HISTOGRAM");
            }
            Optional::ClusterInfo => {
                pipe.cmd("CLUSTER").arg("INFO");
            }
            Optional::Sentinel => {
                pipe.cmd("SENTINEL").arg("MASTERS");
                for name in facts.sentinel_masters.iter().flatten() {
                    pipe.cmd("SENTINEL").arg("CKQUORUM").arg(name);
                    pipe.cmd("SENTINEL").arg("SENTINELS").arg(name);
                    pipe.cmd("SENTINEL").arg("SLAVES").arg(name);
                }
            }
            Optional::ClientList => {
                pipe.cmd("CLIENT").arg("LIST");
            }
        }
    }

    /// Takes this command's replies (in the order `queue` sent them); the
    /// LATENCY HISTOGRAM's from `histograms` when `run_sample` read it.
    fn store(
        self,
        replies: &mut impl Iterator<Item = Value>,
        histograms: &mut Option<Histograms>,
        reading: &mut RawReading,
        facts: &ServerFacts,
    ) -> Result<(), String> {
        match self {
            Optional::Slowlog => {
                let (len, last) = (replies.next(), replies.next());
                reading.slowlog = Some(parse_slowlog(len.as_ref(), last.as_ref())?);
            }
            Optional::LatencyLatest => {
                reading.latency = Some(parse_latency_latest(replies.next())?)
            }
            Optional::LatencyHistogram => {
                let reply = replies.next();
                reading.histograms = Some(match histograms.take() {
                    Some(read) => read?,
                    None => parse_latency_histogram(reply)?,
                });
            }
            Optional::ClusterInfo => reading.cluster_info = Some(text_reply(replies.next())?),
            Optional::Sentinel => reading.sentinel = Some(parse_sentinel(replies, facts)?),
            Optional::ClientList => reading.clients = Some(text_reply(replies.next())?),
        }
        Ok(())
    }
}

/// What INFO says about the server that decides which commands to send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerFacts {
    pub major_version: u32,
    pub cluster: bool,
    /// For a Sentinel: the names of the masters it watches.
    pub sentinel_masters: Option<Vec<String>>,
}

impl ServerFacts {
    pub fn from_info(info: &Info<'_>) -> Self {
        let major_version = info
            .get("redis_version")
            .and_then(|v| v.split('.').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let sentinel_masters = (info.get("redis_mode") == Some("sentinel")).then(|| {
            info.fields()
                .iter()
                .filter(|f| {
                    f.key.starts_with("master") && f.key[6..].bytes().all(|b| b.is_ascii_digit())
                })
                .filter_map(|f| pair(f.value, "name").map(str::to_owned))
                .collect()
        });
        ServerFacts {
            major_version,
            cluster: info.get("cluster_enabled") == Some("1"),
            sentinel_masters,
        }
    }
}

/// `SENTINEL MASTERS`, then per known master the replies of CKQUORUM,
/// SENTINELS and SLAVES. Only an error of SENTINEL MASTERS means the
/// commands are refused; a failed CKQUORUM is a reading (no quorum).
fn parse_sentinel(
    replies: &mut impl Iterator<Item = Value>,
    facts: &ServerFacts,
) -> Result<Vec<SentinelMaster>, String> {
    let masters = match replies.next() {
        Some(Value::ServerError(e)) => return Err(e.to_string()),
        Some(v @ (Value::Array(_) | Value::Map(_) | Value::Set(_))) => v,
        other => return Err(format!("answered {}", describe(other.as_ref()))),
    };
    let fields = |entry: &Value| -> Vec<(String, String)> {
        pairs_of(entry)
            .into_iter()
            .filter_map(|(k, v)| {
                Some((
                    bytes_text(k)?,
                    bytes_text(v).or_else(|| int(Some(v)).map(|n| n.to_string()))?,
                ))
            })
            .collect()
    };
    let entries: Vec<Vec<(String, String)>> = match &masters {
        Value::Array(items) | Value::Set(items) => items.iter().map(fields).collect(),
        _ => Vec::new(),
    };
    let mut out: Vec<SentinelMaster> = entries
        .iter()
        .map(|f| {
            let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            let num = |k: &str| get(k).and_then(|v| v.parse::<f64>().ok());
            SentinelMaster {
                name: get("name").unwrap_or("").to_owned(),
                address: format!("{}:{}", get("ip").unwrap_or(""), get("port").unwrap_or("")),
                quorum: num("quorum"),
                failover_timeout_ms: num("failover-timeout"),
                parallel_syncs: num("parallel-syncs"),
                down_after_ms: num("down-after-milliseconds"),
                config_epoch: num("config-epoch"),
                last_ok_ping_reply_ms: num("last-ok-ping-reply"),
                ckquorum: None,
                ok_sentinels: None,
                ok_slaves: None,
            }
        })
        .collect();
    // A peer or replica is fine unless subjectively or objectively down.
    let healthy = |list: Option<Value>| -> Option<f64> {
        match list? {
            Value::Array(items) | Value::Set(items) => Some(
                items
                    .iter()
                    .filter(|item| {
                        !fields(item).iter().any(|(k, v)| {
                            k == "flags" && v.split(',').any(|f| f == "s_down" || f == "o_down")
                        })
                    })
                    .count() as f64,
            ),
            _ => None,
        }
    };
    for name in facts.sentinel_masters.iter().flatten() {
        let ckquorum = match replies.next() {
            Some(Value::ServerError(e)) => Some(Err(e.to_string())),
            Some(v) => Some(Ok(bytes_text(&v).unwrap_or_else(|| "OK".to_owned()))),
            None => None,
        };
        let sentinels = healthy(replies.next());
        let slaves = healthy(replies.next());
        if let Some(m) = out.iter_mut().find(|m| m.name == *name) {
            m.ckquorum = ckquorum;
            // This sentinel counts itself: SENTINELS lists only its peers.
            m.ok_sentinels = sentinels.map(|n| n + 1.0);
            m.ok_slaves = slaves;
        }
    }
    Ok(out)
}

fn text_reply(value: Option<Value>) -> Result<String, String> {
    match value {
        Some(Value::BulkString(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Some(Value::VerbatimString { text, .. }) => Ok(text),
        Some(Value::ServerError(e)) => Err(e.to_string()),
        other => Err(format!("answered {}", describe(other.as_ref()))),
    }
}

pub fn bytes_text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// `LATENCY LATEST`: `[event, unix time, latest ms, max ms]` per event.
fn parse_latency_latest(value: Option<Value>) -> Result<Vec<LatencyEvent>, String> {
    match value {
        Some(Value::Array(entries)) => Ok(entries
            .iter()
            .filter_map(|entry| match entry {
                Value::Array(fields) => Some(LatencyEvent {
                    event: bytes_text(fields.first()?)?,
                    last_timestamp: int(fields.get(1))?,
                    latest_ms: int(fields.get(2))?,
                }),
                _ => None,
            })
            .collect()),
        Some(Value::ServerError(e)) => Err(e.to_string()),
        other => Err(format!("answered {}", describe(other.as_ref()))),
    }
}

/// Pairs of an array (RESP2) or a map (RESP3).
pub fn pairs_of(value: &Value) -> Vec<(&Value, &Value)> {
    pairs_iter(value).collect()
}

/// [`pairs_of`] without collecting them.
fn pairs_iter(value: &Value) -> impl Iterator<Item = (&Value, &Value)> {
    let (flat, map): (&[Value], &[(Value, Value)]) = match value {
        Value::Array(items) => (items, &[]),
        Value::Map(items) => (&[], items),
        _ => (&[], &[]),
    };
    flat.chunks_exact(2)
        .map(|kv| (&kv[0], &kv[1]))
        .chain(map.iter().map(|(k, v)| (k, v)))
}

/// Whether a reply is the string `text`.
fn is_text(value: &Value, text: &str) -> bool {
    match value {
        Value::BulkString(b) => b == text.as_bytes(),
        Value::SimpleString(s) => s == text,
        _ => false,
    }
}

/// `LATENCY HISTOGRAM` read, or the server's refusal.
type Histograms = Result<Vec<CommandHistogram>, String>;

/// `LATENCY HISTOGRAM` from its framed reply: read in place when it has the
/// shape Redis 7 gives it, else made into values and read by
/// [`parse_latency_histogram`], which gives the same result for this shape
/// (a unit test and a property test compare them) and knows the others.
fn latency_histogram_reply(reply: &[u8]) -> Histograms {
    match read_latency_histogram(reply) {
        Some(histograms) => Ok(histograms),
        None => parse_latency_histogram(connection::value(reply).ok()),
    }
}

/// `[cmd, [calls, n, histogram_usec, [le, count, ...]], ...]`, RESP2 as
/// Redis 7 writes it; `None` for anything else.
fn read_latency_histogram(reply: &[u8]) -> Option<Vec<CommandHistogram>> {
    let mut items = Items::new(reply);
    let Item::Array(len) = items.next()? else {
        return None;
    };
    let mut out = Vec::with_capacity(len / 2);
    for _ in 0..len / 2 {
        let Item::Text(cmd) = items.next()? else {
            return None;
        };
        let Item::Array(fields) = items.next()? else {
            return None;
        };
        let (mut calls, mut buckets) = (0.0, Vec::new());
        for _ in 0..fields / 2 {
            let Item::Text(key) = items.next()? else {
                return None;
            };
            match key {
                b"calls" => {
                    let Item::Int(n) = items.next()? else {
                        return None;
                    };
                    calls = n as f64;
                }
                b"histogram_usec" => {
                    let Item::Array(n) = items.next()? else {
                        return None;
                    };
                    buckets.reserve(n / 2);
                    for _ in 0..n / 2 {
                        let (Item::Int(le), Item::Int(count)) = (items.next()?, items.next()?)
                        else {
                            return None;
                        };
                        buckets.push((le as f64, count as f64));
                    }
                    if n % 2 == 1 {
                        items.skip_value()?;
                    }
                }
                _ => items.skip_value()?,
            }
        }
        if fields % 2 == 1 {
            items.skip_value()?;
        }
        if !buckets.is_sorted_by(|a, b| a.0 <= b.0) {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        out.push(CommandHistogram {
            cmd: String::from_utf8_lossy(cmd).into_owned(),
            calls,
            buckets,
        });
    }
    if len % 2 == 1 {
        items.skip_value()?;
    }
    items.is_empty().then_some(out)
}

/// `LATENCY HISTOGRAM`: per command, `calls` and `histogram_usec` (bucket
/// upper bound → cumulative count).
fn parse_latency_histogram(value: Option<Value>) -> Result<Vec<CommandHistogram>, String> {
    let value = match value {
        Some(Value::ServerError(e)) => return Err(e.to_string()),
        Some(v @ (Value::Array(_) | Value::Map(_))) => v,
        other => return Err(format!("answered {}", describe(other.as_ref()))),
    };
    // Every complete reading has one, of a few hundred values: walked in
    // place, with nothing made but the command names and bucket lists.
    let mut out = Vec::new();
    for (cmd, details) in pairs_iter(&value) {
        let Some(cmd) = bytes_text(cmd) else { continue };
        let mut calls = 0.0;
        let mut buckets = Vec::new();
        for (key, v) in pairs_iter(details) {
            if is_text(key, "calls") {
                calls = int(Some(v)).unwrap_or(0.0);
            } else if is_text(key, "histogram_usec") {
                buckets = pairs_iter(v)
                    .filter_map(|(le, count)| Some((int(Some(le))?, int(Some(count))?)))
                    .collect();
            }
        }
        buckets.sort_by(|a: &(f64, f64), b| a.0.total_cmp(&b.0));
        out.push(CommandHistogram {
            cmd,
            calls,
            buckets,
        });
    }
    Ok(out)
}

fn reconnect_backoff() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

fn classify(e: &redis::RedisError, timeout: Duration, connecting: bool) -> SampleError {
    let text = e.to_string();
    let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
        || [
            "WRONGPASS",
            "NOAUTH",
            "invalid password",
            "invalid username-password",
        ]
        .iter()
        .any(|m| text.contains(m));
    if auth {
        SampleError::Auth(text)
    } else if e.is_timeout() {
        SampleError::Timeout(timeout)
    } else if connecting || e.is_io_error() || e.is_connection_dropped() {
        SampleError::Connect(text)
    } else {
        SampleError::Command(text)
    }
}

fn describe(value: Option<&Value>) -> &'static str {
    match value {
        None => "nothing",
        Some(Value::Nil) => "nil",
        Some(Value::Int(_)) => "an integer",
        Some(Value::Array(_)) => "an array",
        Some(Value::Map(_)) => "a map",
        Some(Value::ServerError(_)) => "an error",
        Some(_) => "an unexpected type",
    }
}

pub fn int(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Int(n) => Some(*n as f64),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// `SLOWLOG LEN` is an integer; `SLOWLOG GET 1` an array of at most one
/// entry `[id, timestamp, duration_us, args, ...]`.
fn parse_slowlog(len: Option<&Value>, last: Option<&Value>) -> Result<Slowlog, String> {
    if let Some(Value::ServerError(e)) = len {
        return Err(e.to_string());
    }
    if let Some(Value::ServerError(e)) = last {
        return Err(e.to_string());
    }
    let length = int(len).ok_or("SLOWLOG LEN did not answer an integer")?;
    let mut slowlog = Slowlog {
        length,
        ..Slowlog::default()
    };
    if let Some(Value::Array(entries)) = last
        && let Some(Value::Array(entry)) = entries.first()
    {
        slowlog.last_id = int(entry.first()).unwrap_or(0.0);
        slowlog.last_duration_micros = int(entry.get(2)).unwrap_or(0.0);
    }
    Ok(slowlog)
}

/// A `CONFIG GET` reply: a flat name/value array (RESP2) or a map (RESP3).
fn config_pairs(value: Value) -> Vec<(String, String)> {
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    };
    match value {
        Value::Array(items) => items
            .chunks_exact(2)
            .filter_map(|kv| Some((text(&kv[0])?, text(&kv[1])?)))
            .collect(),
        Value::Map(items) => items
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Logs a target going down or coming back, once per change.
pub fn log_transition(
    instance: &str,
    was_up: Option<bool>,
    result: &Result<RawReading, SampleError>,
) {
    match (was_up, result) {
        (Some(true) | None, Err(e)) => warn!(instance, reason = e.reason(), "target down: {e}"),
        (Some(false), Ok(_)) => info!(instance, "target up again"),
        (None, Ok(_)) => info!(instance, "target up"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowlog_entry() {
        let len = Value::Int(3);
        let last = Value::Array(vec![Value::Array(vec![
            Value::Int(41),
            Value::Int(1700000000),
            Value::Int(12500),
            Value::Array(vec![]),
        ])]);
        let s = parse_slowlog(Some(&len), Some(&last)).expect("valid");
        assert_eq!(
            s,
            Slowlog {
                length: 3.0,
                last_id: 41.0,
                last_duration_micros: 12500.0
            }
        );
    }

    #[test]
    fn empty_slowlog_is_zero() {
        let s = parse_slowlog(Some(&Value::Int(0)), Some(&Value::Array(vec![]))).expect("valid");
        assert_eq!(s, Slowlog::default());
    }

    #[test]
    fn config_reply_shapes() {
        let flat = Value::Array(vec![
            Value::BulkString(b"maxmemory".to_vec()),
            Value::BulkString(b"0".to_vec()),
        ]);
        assert_eq!(
            config_pairs(flat),
            vec![("maxmemory".to_owned(), "0".to_owned())]
        );
        let map = Value::Map(vec![(
            Value::SimpleString("databases".into()),
            Value::BulkString(b"16".to_vec()),
        )]);
        assert_eq!(
            config_pairs(map),
            vec![("databases".to_owned(), "16".to_owned())]
        );
    }

    /// RESP2 bytes of a value tree, as a server writes them.
    fn resp(value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            Value::SimpleString(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
            Value::BulkString(b) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Value::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for item in items {
                    resp(item, out);
                }
            }
            Value::Nil => out.extend_from_slice(b"$-1\r\n"),
            other => panic!("not written by these tests: {other:?}"),
        }
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn command(cmd: &str, calls: i64, buckets: &[(i64, i64)]) -> [Value; 2] {
        let flat = buckets
            .iter()
            .flat_map(|&(le, n)| [Value::Int(le), Value::Int(n)])
            .collect();
        [
            bulk(cmd),
            Value::Array(vec![
                bulk("calls"),
                Value::Int(calls),
                bulk("histogram_usec"),
                Value::Array(flat),
            ]),
        ]
    }

    /// Read in place and through values, the reply of Redis 7.0 gives the
    /// same histograms.
    #[test]
    fn latency_histogram_read_in_place_as_through_values() {
        let reply = Value::Array(
            [
                command(
                    "set",
                    100_012,
                    &[(1, 99_000), (2, 99_900), (4, 100_000), (8, 100_012)],
                ),
                command("get", 7, &[(16, 7)]),
                command("config|get", 1, &[(131_072, 1)]),
            ]
            .concat(),
        );
        let mut bytes = Vec::new();
        resp(&reply, &mut bytes);
        let read = read_latency_histogram(&bytes).expect("the usual shape");
        assert_eq!(read.len(), 3);
        assert_eq!(read[0].cmd, "set");
        assert_eq!(read[0].calls, 100_012.0);
        assert_eq!(read[0].buckets[3], (8.0, 100_012.0));
        assert_eq!(read[2].cmd, "config|get");
        assert_eq!(Ok(read), parse_latency_histogram(Some(reply)));
        // An error goes the general way, and says so.
        let refused = b"-ERR unknown subcommand 'HISTOGRAM'\r\n";
        assert!(read_latency_histogram(refused).is_none());
        let error = latency_histogram_reply(refused).expect_err("refused");
        assert!(error.contains("unknown subcommand"), "{error}");
    }

    fn histogram_like() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            (-3i64..200_000).prop_map(Value::Int),
            prop_oneof![
                Just("calls"),
                Just("histogram_usec"),
                Just("set"),
                Just("x")
            ]
            .prop_map(bulk),
            Just(Value::SimpleString("calls".to_owned())),
            Just(Value::Nil),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            proptest::collection::vec(inner, 0..8).prop_map(Value::Array)
        })
    }

    proptest::proptest! {
        /// Whatever the reply, reading it in place (or falling back) gives
        /// what the general reader gives.
        #[test]
        fn latency_histogram_reply_reads_as_values_do(
            commands in proptest::collection::vec(
                ("[a-z|]{1,8}", 0i64..1_000_000, proptest::collection::vec((1i64..1 << 30, 0i64..1 << 40), 0..12)),
                0..6,
            ),
            odd in histogram_like(),
        ) {
            let mut items: Vec<Value> = commands
                .iter()
                .flat_map(|(cmd, calls, buckets)| command(cmd, *calls, buckets))
                .collect();
            let mut usual = Vec::new();
            resp(&Value::Array(items.clone()), &mut usual);
            proptest::prop_assert!(read_latency_histogram(&usual).is_some(), "the usual shape is read in place");
            for reply in [Value::Array(items.clone()), {
                items.push(odd.clone());
                Value::Array(items.clone())
            }, odd] {
                let mut bytes = Vec::new();
                resp(&reply, &mut bytes);
                let through_values = parse_latency_histogram(connection::value(&bytes).ok());
                proptest::prop_assert_eq!(latency_histogram_reply(&bytes), through_values);
            }
        }
    }
}
