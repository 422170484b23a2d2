//! Which commands a sample sends, and what their replies teach the next
//! sample.
//!
//! A sample is one pipelined round trip: `INFO`, the optional commands
//! the server has (`SLOWLOG LEN`, `SLOWLOG GET 1`, `LATENCY LATEST`, ...)
//! and, at most once per `config_refresh`, one `CONFIG GET` per setting the
//! metrics need.
//!
//! Not every sample is complete. On a busy server `INFO ALL` costs it about
//! 100 µs, `LATENCY HISTOGRAM` about as much again, most of it in the
//! command and latency statistics. So a complete reading (`INFO ALL` and
//! every optional command) is taken at most every `detail_interval`; the
//! samples in between, taken only when the interval is shorter than that,
//! read just the sections that move fast and that the adaptive interval
//! watches ([`FAST_SECTIONS`]) and the cheap commands.
//!
//! Servers that refuse CONFIG or an optional command (managed Redis renames
//! or disables them, ACLs deny them) are probed once per connection: after
//! the first error the command is left out until the next connection, so
//! the server's error counters do not grow on every sample.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;
use tracing::warn;

use crate::config::{MetricsSettings, TargetSettings};
use crate::reading::{CONFIG_PARAMS, CommandHistogram, Replies, ServerConfig};
use crate::redis::info::{Info, pair};
use crate::redis::replies::{self, ReplyError};
use crate::untrusted::OneLine;

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

/// `LATENCY HISTOGRAM` read from its bytes while the reply arrived, or the
/// reason it could not be.
pub(crate) type Histograms = Result<Vec<CommandHistogram>, ReplyError>;

/// What INFO says about the server that decides which commands to send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ServerFacts {
    pub major_version: u32,
    pub cluster: bool,
    /// For a Sentinel: the names of the masters it watches.
    pub sentinel_masters: Option<Vec<String>>,
}

impl ServerFacts {
    pub(crate) fn from_info(info: &Info<'_>) -> Self {
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

    /// Whether the server's version and mode are known (after its first INFO).
    pub(crate) fn known(&self) -> bool {
        self.major_version != 0
    }
}

/// Commands beyond INFO that a server may lack (older versions, Sentinel,
/// managed services) or refuse (ACLs). Each is tried once per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Optional {
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
    /// Those that depend on the server's version and mode: fetched in a
    /// second round trip for the first reading of a server.
    const LATE: [Optional; 3] = [
        Optional::LatencyHistogram,
        Optional::ClusterInfo,
        Optional::Sentinel,
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
            // Asked for per target (see `Planner::wanted`).
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

    /// Takes this command's replies (in the order `queue` sent them) into
    /// `replies`; the LATENCY HISTOGRAM's from `histograms`, where the
    /// round trip read it from its bytes.
    fn read(
        self,
        values: &mut impl Iterator<Item = Value>,
        histograms: &mut Option<Histograms>,
        into: &mut Replies,
        facts: &ServerFacts,
    ) -> Result<(), ReplyError> {
        match self {
            Optional::Slowlog => {
                let (len, last) = (values.next(), values.next());
                into.slowlog = Some(replies::slowlog(len.as_ref(), last.as_ref())?);
            }
            Optional::LatencyLatest => {
                into.latency = Some(replies::latency_latest(values.next())?);
            }
            Optional::LatencyHistogram => {
                // The round trip read this reply from its bytes and left
                // a placeholder among the values.
                values.next();
                into.histograms = Some(
                    histograms
                        .take()
                        .unwrap_or(Err(ReplyError::Unexpected("nothing")))?,
                );
            }
            Optional::ClusterInfo => into.cluster_info = Some(replies::text(values.next())?),
            Optional::Sentinel => {
                let masters = facts.sentinel_masters.as_deref().unwrap_or_default();
                into.sentinel = Some(replies::sentinel(values, masters)?);
            }
            Optional::ClientList => into.clients = Some(replies::text(values.next())?),
        }
        Ok(())
    }
}

/// Which INFO a sample asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InfoRequest {
    All,
    /// `FAST_SECTIONS`, in one INFO (Redis 7.0 and later).
    Fast,
    /// One section per INFO before 7.0; `default` still leaves out the
    /// command statistics, the costliest part.
    Default,
}

/// The commands of one round trip.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    /// When the sample started.
    at: Instant,
    /// None for the second round trip of a server's first reading.
    info: Option<InfoRequest>,
    optional: Vec<Optional>,
    config: bool,
}

impl Plan {
    /// Whether this sample reads everything (see the module's text).
    pub(crate) fn complete(&self) -> bool {
        self.info == Some(InfoRequest::All)
    }

    /// The pipeline of this plan (errors of single commands come back as
    /// their replies), and where in it the LATENCY HISTOGRAM went, whose
    /// reply the round trip reads from its bytes.
    pub(crate) fn pipeline(&self, facts: &ServerFacts) -> (redis::Pipeline, Option<usize>) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        match self.info {
            Some(InfoRequest::All) => {
                pipe.cmd("INFO").arg("ALL");
            }
            Some(InfoRequest::Fast) => {
                pipe.cmd("INFO").arg(&FAST_SECTIONS[..]);
            }
            Some(InfoRequest::Default) => {
                pipe.cmd("INFO").arg("default");
            }
            None => {}
        }
        let mut histogram_at = None;
        for o in &self.optional {
            if *o == Optional::LatencyHistogram {
                histogram_at = Some(pipe.len());
            }
            o.queue(&mut pipe, facts);
        }
        if self.config {
            for param in CONFIG_PARAMS {
                pipe.cmd("CONFIG").arg("GET").arg(*param);
            }
        }
        (pipe, histogram_at)
    }
}

/// What decides a target's commands: what its server is known to have and
/// to refuse, when the last complete reading and `CONFIG GET` were.
pub(crate) struct Planner {
    /// For log lines.
    instance: String,
    client_list: bool,
    config_refresh: Duration,
    /// Longest time between complete readings (zero: every one is).
    detail_interval: Duration,
    /// What the last INFO said about the server.
    facts: ServerFacts,
    /// Optional commands refused on this connection, by `Optional as usize`.
    refused: [bool; Optional::ALL.len()],
    /// CONFIG GET failed on this connection.
    config_refused: bool,
    config: Option<(Instant, Arc<ServerConfig>)>,
    /// When the last complete reading started; None after a reconnect.
    last_complete: Option<Instant>,
}

impl Planner {
    pub(crate) fn new(target: &TargetSettings, metrics: MetricsSettings) -> Self {
        Planner {
            instance: target.instance.clone(),
            client_list: target.client_list,
            config_refresh: metrics.config_refresh,
            detail_interval: metrics.detail_interval,
            facts: ServerFacts::default(),
            refused: [false; Optional::ALL.len()],
            config_refused: false,
            config: None,
            last_complete: None,
        }
    }

    pub(crate) fn facts(&self) -> &ServerFacts {
        &self.facts
    }

    /// Takes what a reading's INFO says about the server.
    pub(crate) fn learn(&mut self, facts: ServerFacts) {
        self.facts = facts;
    }

    /// A new connection: every command is tried again, and a server back
    /// from an outage gets a complete reading at once.
    pub(crate) fn reconnected(&mut self) {
        self.refused = [false; Optional::ALL.len()];
        self.config_refused = false;
        self.last_complete = None;
    }

    /// The commands of the sample starting at `now`.
    pub(crate) fn plan(&self, now: Instant) -> Plan {
        let complete = self.complete_due(now);
        let info = if complete {
            InfoRequest::All
        } else if self.facts.major_version >= 7 {
            InfoRequest::Fast
        } else {
            InfoRequest::Default
        };
        let candidates: &[Optional] = if complete {
            &Optional::ALL
        } else {
            &Optional::CHEAP
        };
        Plan {
            at: now,
            info: Some(info),
            optional: self.wanted(candidates),
            config: !self.config_refused
                && self.facts.sentinel_masters.is_none()
                && self
                    .config
                    .as_ref()
                    .is_none_or(|(at, _)| at.elapsed() >= self.config_refresh),
        }
    }

    /// For the first reading of a server, whose version and mode its INFO
    /// has just told: the commands that depend on them, if any.
    pub(crate) fn late(&self, first: &Plan) -> Option<Plan> {
        let optional = self.wanted(&Optional::LATE);
        (!optional.is_empty()).then_some(Plan {
            at: first.at,
            info: None,
            optional,
            config: false,
        })
    }

    /// Whether the sample starting at `now` must be complete: the first one
    /// (the server's version and mode are not known yet), one on a Sentinel
    /// (small replies, nothing to save), and one once `detail_interval` has
    /// passed. A twentieth of it is forgiven, so that a sample a few
    /// milliseconds early does not push the complete reading a whole
    /// interval later.
    fn complete_due(&self, now: Instant) -> bool {
        !self.facts.known()
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
            .filter(|o| *o != Optional::ClientList || self.client_list)
            .collect()
    }

    /// Reads the replies of `plan` (in the order its pipeline sent them)
    /// into `into`. A command the server refuses is left out until the
    /// next connection, with one log line; only an unusable INFO fails the
    /// reading (the error is INFO's).
    pub(crate) fn read(
        &mut self,
        plan: &Plan,
        values: Vec<Value>,
        mut histograms: Option<Histograms>,
        into: &mut Replies,
    ) -> Result<(), ReplyError> {
        let mut values = values.into_iter();
        if plan.info.is_some() {
            into.info = replies::text(values.next())?;
            into.complete = plan.complete();
            if into.complete {
                self.last_complete = Some(plan.at);
            }
        }
        for o in &plan.optional {
            if let Err(e) = o.read(&mut values, &mut histograms, into, &self.facts) {
                self.refused[*o as usize] = true;
                warn!(
                    instance = %self.instance,
                    "{} is not available ({}); {} are left out until reconnect",
                    o.command(),
                    OneLine(e),
                    o.what()
                );
            }
        }
        if plan.config {
            self.read_config(&mut values);
        }
        if plan.info.is_some() {
            into.config = self.config.as_ref().map(|(_, c)| c.clone());
        }
        Ok(())
    }

    /// The replies of the CONFIG GETs: the settings, or CONFIG left out
    /// until the next connection.
    fn read_config(&mut self, values: &mut impl Iterator<Item = Value>) {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut refused = None;
        for param in CONFIG_PARAMS {
            match values.next() {
                Some(Value::ServerError(e)) => refused = Some(format!("CONFIG GET {param}: {e}")),
                Some(value) => pairs.extend(replies::config_pairs(value)),
                None => refused = Some("missing reply".to_owned()),
            }
        }
        if let Some(e) = refused {
            self.config_refused = true;
            self.config = None;
            warn!(
                instance = %self.instance,
                "CONFIG GET is not available ({}); config metrics are left out and 16 databases assumed until reconnect",
                OneLine(e)
            );
        } else {
            let config =
                ServerConfig::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            self.config = Some((Instant::now(), Arc::new(config)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planner(detail: Duration) -> Planner {
        let target =
            crate::config::parse_target("redis://h:6379", crate::config::Origin::Default, "redis")
                .expect("target");
        let metrics = MetricsSettings {
            unmapped_info_fields: true,
            config_refresh: Duration::from_secs(60),
            detail_interval: detail,
            max_series_per_target: 10_000,
            latency_histograms: Default::default(),
        };
        Planner::new(&target, metrics)
    }

    fn redis_7() -> ServerFacts {
        ServerFacts {
            major_version: 7,
            cluster: false,
            sentinel_masters: None,
        }
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    /// A server's error reply.
    fn error(text: &str) -> Value {
        crate::redis::connection::value(format!("-{text}\r\n").as_bytes()).expect("an error reply")
    }

    #[test]
    fn the_first_sample_is_complete_and_learns_what_depends_on_the_version() {
        let p = planner(Duration::from_secs(10));
        let first = p.plan(Instant::now());
        assert!(first.complete());
        assert!(!first.optional.contains(&Optional::LatencyHistogram));
        assert!(first.config);
        let mut p = p;
        p.learn(redis_7());
        let late = p.late(&first).expect("LATENCY HISTOGRAM is due");
        assert_eq!(late.optional, [Optional::LatencyHistogram]);
        assert_eq!(late.info, None);
    }

    #[test]
    fn complete_readings_come_every_detail_interval() {
        let mut p = planner(Duration::from_secs(10));
        p.learn(redis_7());
        let start = Instant::now();
        let first = p.plan(start);
        let mut into = Replies::default();
        let values = vec![
            bulk("redis_version:7.0.0\r\n"),
            Value::Int(0),
            Value::Array(vec![]),
        ];
        let (_, _) = first.pipeline(p.facts());
        p.read(&first, values, None, &mut into).expect("read");
        assert!(into.complete);
        // Between complete readings: the fast sections, cheap commands only.
        let between = p.plan(start + Duration::from_secs(3));
        assert!(!between.complete());
        assert_eq!(between.info, Some(InfoRequest::Fast));
        assert!(between.optional.iter().all(|o| Optional::CHEAP.contains(o)));
        // A twentieth early still counts as due.
        assert!(p.plan(start + Duration::from_millis(9_600)).complete());
        p.reconnected();
        assert!(p.plan(start + Duration::from_secs(1)).complete());
    }

    #[test]
    fn a_refused_command_is_left_out_until_reconnect() {
        let mut p = planner(Duration::ZERO);
        p.learn(redis_7());
        let plan = p.plan(Instant::now());
        let mut values = vec![bulk("x:1\r\n")];
        for o in &plan.optional {
            match o {
                Optional::Slowlog => {
                    values.push(error("ERR unknown command 'SLOWLOG'"));
                    values.push(Value::Nil);
                }
                Optional::LatencyLatest => values.push(Value::Array(vec![])),
                Optional::LatencyHistogram => values.push(Value::Nil),
                other => panic!("not planned for this server: {other:?}"),
            }
        }
        let histograms = Some(Ok(Vec::new()));
        let mut into = Replies::default();
        p.read(&plan, values, histograms, &mut into).expect("read");
        assert!(into.slowlog.is_none());
        assert_eq!(into.latency, Some(Vec::new()));
        assert_eq!(into.histograms, Some(Vec::new()));
        assert!(!p.plan(Instant::now()).optional.contains(&Optional::Slowlog));
        p.reconnected();
        assert!(p.plan(Instant::now()).optional.contains(&Optional::Slowlog));
    }

    #[test]
    fn a_refused_info_fails_the_reading() {
        let mut p = planner(Duration::ZERO);
        let plan = p.plan(Instant::now());
        let refused = error("NOPERM this user has no permissions to run the 'info' command");
        let mut into = Replies::default();
        assert!(matches!(
            p.read(&plan, vec![refused], None, &mut into),
            Err(ReplyError::Refused(_))
        ));
        assert_eq!(
            p.read(&plan, vec![Value::Int(1)], None, &mut into),
            Err(ReplyError::Unexpected("an integer"))
        );
    }
}
