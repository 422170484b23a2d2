//! One persistent connection per target, and the round trips over it.
//!
//! The connection is opened once and reused. Any failure drops it (its
//! stream may be out of step) and the next round trip reconnects, after an
//! exponential backoff: until then every sample reports the target down
//! without touching it. Each round trip reads at most `max_reply_bytes`
//! (the stream's [`Budget`], refilled before each) within
//! `command_timeout`, and is timed per [`RoundTrip`] for
//! `redpush_redis_command_duration_seconds`.
//!
//! Which commands a sample sends is [`Planner`]'s; what their replies mean
//! is `replies.rs`'s.

use std::io;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use redis::Value;

use crate::config::{MetricsSettings, TargetSettings};
use crate::reading::Replies;
use crate::redis::connection::{self, Connection};
use crate::redis::info::Info;
use crate::redis::plan::{Histograms, Plan, Planner, ServerFacts};
use crate::redis::replies::{self, ReplyError};
use crate::redis::transport::{self, Budget, TransportError};
use crate::secret::{Secret, SecretError, read_secret, read_secret_env};
use crate::tls::TlsError;

/// Why a sample failed. Messages never hold a password: the server's own
/// words and the client's, which never include it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SampleError {
    #[error("connection failed: {0}")]
    Connect(#[source] io::Error),
    #[error("connection failed: {0}")]
    Connection(#[source] redis::RedisError),
    #[error("authentication failed: {0}")]
    Auth(#[source] redis::RedisError),
    #[error("cannot read the password: {0}")]
    Password(#[from] SecretError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("command failed: {0}")]
    Command(#[source] redis::RedisError),
    #[error("command failed: {command}: {message}")]
    Refused {
        command: &'static str,
        message: String,
    },
    #[error("unexpected reply: {command} answered {what}")]
    Unexpected {
        command: &'static str,
        what: &'static str,
    },
    #[error("waiting {0:?} before reconnecting")]
    Backoff(Duration),
    #[error("TLS: {0}")]
    Tls(#[source] TlsError),
    #[error("TLS: handshake failed: {0}")]
    Handshake(#[source] io::Error),
    #[error("reply larger than max_reply_bytes ({0} bytes); connection dropped")]
    TooLarge(u64),
}

/// The kinds of failure `redpush_target_errors_total` counts, by its
/// `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorReason {
    Connect,
    Auth,
    Tls,
    Timeout,
    Command,
    Reply,
}

impl ErrorReason {
    /// Every reason, in the order the counters are reported.
    pub(crate) const ALL: [ErrorReason; 6] = [
        ErrorReason::Connect,
        ErrorReason::Auth,
        ErrorReason::Tls,
        ErrorReason::Timeout,
        ErrorReason::Command,
        ErrorReason::Reply,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ErrorReason::Connect => "connect",
            ErrorReason::Auth => "auth",
            ErrorReason::Tls => "tls",
            ErrorReason::Timeout => "timeout",
            ErrorReason::Command => "command",
            ErrorReason::Reply => "reply",
        }
    }
}

impl SampleError {
    /// What the failure counts as; `None` for the wait before a reconnect,
    /// which is no new failure.
    pub(crate) fn reason(&self) -> Option<ErrorReason> {
        Some(match self {
            SampleError::Connect(_) | SampleError::Connection(_) => ErrorReason::Connect,
            SampleError::Auth(_) | SampleError::Password(_) => ErrorReason::Auth,
            SampleError::Timeout(_) => ErrorReason::Timeout,
            SampleError::Command(_) | SampleError::Refused { .. } => ErrorReason::Command,
            SampleError::Unexpected { .. } | SampleError::TooLarge(_) => ErrorReason::Reply,
            SampleError::Tls(_) | SampleError::Handshake(_) => ErrorReason::Tls,
            SampleError::Backoff(_) => return None,
        })
    }

    /// A reply of `command` that could not be used.
    pub(crate) fn reply(command: &'static str, e: ReplyError) -> SampleError {
        match e {
            ReplyError::Refused(message) => SampleError::Refused { command, message },
            ReplyError::Unexpected(what) | ReplyError::Malformed(what) => {
                SampleError::Unexpected { command, what }
            }
        }
    }
}

/// The kinds of round trip, each timed on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoundTrip {
    /// INFO and the commands that go with it.
    Sample,
    /// The second round trip of a server's first reading.
    SampleExtras,
    Scan,
    Keys,
    Script,
    ClusterNodes,
    SentinelDiscovery,
}

impl RoundTrip {
    const ALL: [RoundTrip; 7] = [
        RoundTrip::Sample,
        RoundTrip::SampleExtras,
        RoundTrip::Scan,
        RoundTrip::Keys,
        RoundTrip::Script,
        RoundTrip::ClusterNodes,
        RoundTrip::SentinelDiscovery,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RoundTrip::Sample => "sample",
            RoundTrip::SampleExtras => "sample_extras",
            RoundTrip::Scan => "scan",
            RoundTrip::Keys => "keys",
            RoundTrip::Script => "script",
            RoundTrip::ClusterNodes => "cluster_nodes",
            RoundTrip::SentinelDiscovery => "sentinel_discovery",
        }
    }
}

pub(crate) struct Sampler {
    target: TargetSettings,
    planner: Planner,
    /// The open connection, between round trips. Taken out for a round
    /// trip and put back only if it succeeded.
    conn: Option<Connection>,
    backoff: ExponentialBackoff,
    /// No connection attempt before this instant.
    retry_at: Option<Instant>,
    /// Bytes the current round trip may still read.
    budget: Budget,
    /// The last round trip's duration per kind, by `RoundTrip as usize`.
    timings: [Option<f64>; RoundTrip::ALL.len()],
}

impl Sampler {
    /// The sampler of `target`. Says so at WARN when the target's TLS
    /// does not verify the server: every sampler built (at start, by a
    /// reload, by discovery, by `redpush once`) says it again.
    pub(crate) fn new(target: TargetSettings, metrics: MetricsSettings) -> Self {
        if target.tls.as_ref().is_some_and(|t| t.insecure_skip_verify) {
            tracing::warn!(
                instance = target.instance,
                "insecure_skip_verify: the server's TLS certificate is not checked"
            );
        }
        Sampler {
            planner: Planner::new(&target, metrics),
            target,
            conn: None,
            backoff: reconnect_backoff(),
            retry_at: None,
            budget: Budget::default(),
            timings: [None; RoundTrip::ALL.len()],
        }
    }

    pub(crate) fn target(&self) -> &TargetSettings {
        &self.target
    }

    /// Takes what a complete reading's INFO says about the server, to
    /// choose the commands of the next samples.
    pub(crate) fn learn(&mut self, facts: ServerFacts) {
        self.planner.learn(facts);
    }

    /// How long the last round trip of each kind took.
    pub(crate) fn timings(&self) -> impl Iterator<Item = (RoundTrip, f64)> + '_ {
        RoundTrip::ALL
            .iter()
            .zip(&self.timings)
            .filter_map(|(kind, seconds)| Some((*kind, (*seconds)?)))
    }

    /// Takes one sample.
    pub(crate) async fn sample(&mut self) -> Result<Replies, SampleError> {
        let mut conn = self.connection().await?;
        let result = self.sample_on(&mut conn).await;
        self.done(conn, &result);
        result
    }

    /// Runs `pipe` (errors of single commands come back as
    /// `Value::ServerError`) on the sampling connection, timed as `kind`.
    pub(crate) async fn query(
        &mut self,
        pipe: &redis::Pipeline,
        kind: RoundTrip,
    ) -> Result<Vec<Value>, SampleError> {
        let mut conn = self.connection().await?;
        let result = self.timed(kind, pipe.query_async(&mut conn)).await;
        self.done(conn, &result);
        result
    }

    /// `CLUSTER NODES`, for discovering a cluster's nodes.
    pub(crate) async fn cluster_nodes(&mut self) -> Result<String, SampleError> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        pipe.cmd("CLUSTER").arg("NODES");
        let replies = self.query(&pipe, RoundTrip::ClusterNodes).await?;
        replies::text(replies.into_iter().next())
            .map_err(|e| SampleError::reply("CLUSTER NODES", e))
    }

    /// After a round trip: the connection kept, or after a failure dropped
    /// and the next attempt scheduled.
    fn done<T>(&mut self, conn: Connection, result: &Result<T, SampleError>) {
        match result {
            Ok(_) => self.conn = Some(conn),
            Err(_) => self.schedule_reconnect(),
        }
    }

    /// A sample's round trip, and for a server's first reading a second one
    /// for the commands its version and mode decide, so that this reading
    /// is complete too.
    async fn sample_on(&mut self, conn: &mut Connection) -> Result<Replies, SampleError> {
        let plan = self.planner.plan(Instant::now());
        let mut replies = Replies::default();
        self.run_plan(conn, &plan, RoundTrip::Sample, &mut replies)
            .await?;
        if !self.planner.facts().known() {
            self.planner
                .learn(ServerFacts::from_info(&Info::parse(&replies.info)));
            if let Some(late) = self.planner.late(&plan) {
                self.run_plan(conn, &late, RoundTrip::SampleExtras, &mut replies)
                    .await?;
            }
        }
        Ok(replies)
    }

    /// Sends `plan`'s pipeline and reads its replies into `into`, the
    /// LATENCY HISTOGRAM straight from its bytes: of a few hundred values,
    /// made and dropped again only to be read once, they were the largest
    /// part of reading a complete sample's replies.
    async fn run_plan(
        &mut self,
        conn: &mut Connection,
        plan: &Plan,
        kind: RoundTrip,
        into: &mut Replies,
    ) -> Result<(), SampleError> {
        let (pipe, histogram_at) = plan.pipeline(self.planner.facts());
        let mut histograms: Option<Histograms> = None;
        let round_trip = conn.round_trip(&pipe, |i, reply| {
            if Some(i) == histogram_at {
                histograms = Some(replies::latency_histogram(reply));
                return Ok(Value::Nil);
            }
            connection::value(reply)
        });
        let values = self.timed(kind, round_trip).await?;
        self.planner
            .read(plan, values, histograms, into)
            .map_err(|e| SampleError::reply("INFO", e))
    }

    /// The open connection, or a new one once the reconnect backoff has
    /// passed; the caller hands it back with `done`.
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
                self.planner.reconnected();
                Ok(conn)
            }
            Err(e) => {
                self.schedule_reconnect();
                Err(e)
            }
        }
    }

    fn schedule_reconnect(&mut self) {
        let delay = self.backoff.next().unwrap_or(Duration::from_secs(30));
        self.retry_at = Some(Instant::now() + delay);
    }

    /// Opens the stream and logs in: AUTH and SELECT run here, under the
    /// connect timeout. Nothing else: no CLIENT SETINFO, which Redis before
    /// 7.2 answers with an error that would raise the server's error
    /// counters on every connect.
    async fn connect(&self) -> Result<Connection, SampleError> {
        let t = &self.target;
        let password = self.password()?;
        self.budget.refill(t.max_reply_bytes);
        let stream = transport::connect(t, self.budget.clone(), t.connect_timeout)
            .await
            .map_err(|e| match e {
                TransportError::Tls(e) => SampleError::Tls(e),
                TransportError::Handshake(e) => SampleError::Handshake(e),
                TransportError::Io(e) if e.kind() == io::ErrorKind::TimedOut => {
                    SampleError::Timeout(t.connect_timeout)
                }
                TransportError::Io(e) => SampleError::Connect(e),
            })?;
        let login = Connection::open(
            stream,
            t.username.as_deref(),
            password.as_ref().map(Secret::expose),
            t.db,
            t.command_timeout,
        );
        tokio::time::timeout(t.connect_timeout, login)
            .await
            .map_err(|_| SampleError::Timeout(t.connect_timeout))?
            .map_err(|e| self.classify(e, t.connect_timeout, true))
    }

    /// The password from its file or environment variable (read now, so a
    /// rotated one is used on reconnect), or from the URL.
    fn password(&self) -> Result<Option<Secret>, SampleError> {
        let t = &self.target;
        if let Some(path) = &t.password_file {
            return Ok(Some(read_secret(path)?));
        }
        if let Some(var) = &t.password_env {
            return Ok(Some(read_secret_env(var)?));
        }
        Ok(t.password.clone())
    }

    /// Runs a round trip (which starts when awaited) within a fresh reply
    /// budget, timing it as `kind`.
    async fn timed<T>(
        &mut self,
        kind: RoundTrip,
        round_trip: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, SampleError> {
        let timeout = self.target.command_timeout;
        self.budget.refill(self.target.max_reply_bytes);
        let started = Instant::now();
        let result = round_trip
            .await
            .map_err(|e| self.classify(e, timeout, false));
        self.timings[kind as usize] = Some(started.elapsed().as_secs_f64());
        result
    }

    /// What a client error means: a reply over the byte budget, a refused
    /// login, a timeout, a lost connection or a failed command.
    fn classify(&self, e: redis::RedisError, timeout: Duration, connecting: bool) -> SampleError {
        if self.budget.exceeded() {
            return SampleError::TooLarge(self.target.max_reply_bytes);
        }
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
            SampleError::Auth(e)
        } else if e.is_timeout() {
            SampleError::Timeout(timeout)
        } else if connecting || e.is_io_error() || e.is_connection_dropped() {
            SampleError::Connection(e)
        } else {
            SampleError::Command(e)
        }
    }
}

fn reconnect_backoff() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}
