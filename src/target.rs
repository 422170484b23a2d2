//! One monitored Redis: its sampler, its labels, and the step from a sample
//! to metric families (`redis_up`, the mapped replies, its own `redpush_*`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::clock::Timestamps;
use crate::config::{Settings, TargetSettings};
use crate::failure_streak::{Ended, FailureStreak, Report};
use crate::log_throttle::{Budget, LineBudget, LogThrottle};
use crate::metrics::mapper::{Extras, MapOptions, Reading, map_reading};
use crate::metrics::{Families, Kind, smallvec};
use crate::reading::{Replies, ScriptOutcome};
use crate::redis::info::Info;
use crate::redis::plan::ServerFacts;
use crate::redis::replies;
use crate::redis::sampler::{ErrorReason, RoundTrip, SampleError, Sampler};
use crate::schedule::Observation;
use crate::series::{TargetLabels, target_labels};
use crate::untrusted::OneLine;

pub(crate) struct Target {
    sampler: Sampler,
    options: MapOptions,
    /// `job`, `instance` and external labels for pushed series, as
    /// configured (the comparison for a reload) and as the shared set.
    base_labels: Vec<(String, String)>,
    labels: Arc<TargetLabels>,
    /// Whether the target answered once yet, and its failures since it last did.
    was_up: Option<bool>,
    down: FailureStreak,
    stamps: Timestamps,
    /// Failures by `ErrorReason as usize`.
    errors: [u64; ErrorReason::ALL.len()],
    /// The last key and stream metrics, added to every reading until the
    /// next key run (so they do not go stale in between).
    key_families: Families,
    /// When the key sampler runs next.
    keys_due: Option<Instant>,
    /// Points of the largest reading so far (a complete one): each reading
    /// is sized for as many, so it does not grow its vectors as it fills.
    last_points: usize,
    /// `[metrics] max_series_per_target`: most series and INFO fields of a
    /// reading's mapped replies.
    max_series: usize,
    /// Readings cut by `max_series`, and when that was last said.
    limited: u64,
    limited_log: LogThrottle,
}

/// Most lines a minute about targets going down or up, for all targets.
const TARGET_LINES_A_MINUTE: u32 = 30;
static TARGET_LINES: LineBudget = LineBudget::new(TARGET_LINES_A_MINUTE);

/// What a sample changed that the log says.
enum Transition<'a> {
    Down(Report, &'a SampleError),
    UpAgain(Ended),
    Up,
}

/// Why a target is down.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DownError {
    #[error(transparent)]
    Sample(#[from] SampleError),
    #[error("INFO answered no fields")]
    NoFields,
}

impl DownError {
    /// Whether the target was not even tried (waiting to reconnect): the
    /// cause is the failure before.
    pub(crate) fn is_backoff(&self) -> bool {
        matches!(self, DownError::Sample(SampleError::Backoff(_)))
    }
}

/// The outcome of one sample.
pub(crate) struct TargetReading {
    pub families: Families,
    pub timestamp_ms: i64,
    /// False for a reading between complete ones (see `redis::plan`):
    /// series it lacks have not ended, they were not read this time.
    pub complete: bool,
    /// Why the target is down, for `once`.
    pub error: Option<DownError>,
    /// What the interval controller needs from this sample.
    pub observation: Observation,
}

impl Target {
    pub(crate) fn new(settings: &Settings, target: TargetSettings) -> Self {
        let client_detail = target.client_list_detail;
        // Earlier labels win (`series::target_labels`): a target's own labels over external ones.
        let mut base_labels = vec![
            ("job".to_owned(), settings.job.clone()),
            ("instance".to_owned(), target.instance.clone()),
        ];
        base_labels.extend(target.labels.iter().cloned());
        base_labels.extend(settings.external_labels.iter().cloned());
        let labels = target_labels(base_labels.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        Target {
            sampler: Sampler::new(target, settings.metrics),
            options: MapOptions {
                unmapped_fields: settings.metrics.unmapped_info_fields,
                client_detail,
                latency_histograms: settings.metrics.latency_histograms,
            },
            base_labels,
            labels,
            was_up: None,
            down: FailureStreak::default(),
            stamps: Timestamps::default(),
            errors: [0; ErrorReason::ALL.len()],
            key_families: Families::new(),
            keys_due: None,
            last_points: 0,
            max_series: settings.metrics.max_series_per_target,
            limited: 0,
            limited_log: LogThrottle::default(),
        }
    }

    pub(crate) fn settings(&self) -> &TargetSettings {
        self.sampler.target()
    }

    pub(crate) fn instance(&self) -> &str {
        &self.sampler.target().instance
    }

    pub(crate) fn base_labels(&self) -> &[(String, String)] {
        &self.base_labels
    }

    /// The labels every pushed series of this target carries.
    pub(crate) fn labels(&self) -> &Arc<TargetLabels> {
        &self.labels
    }

    /// A stamp for this target's next record (see `clock::Timestamps`).
    pub(crate) fn next_timestamp(&mut self) -> i64 {
        self.stamps.next()
    }

    /// Samples the target once. Never fails: a target that cannot be read
    /// yields `redis_up 0` (and the agent's own metrics for it).
    pub(crate) async fn read(&mut self, interval: Duration) -> TargetReading {
        let started = Instant::now();
        let timestamp_ms = self.stamps.next();
        let result = self.sampler.sample().await;
        self.log_transition(&result);
        let mut families = Families::with_capacity(self.last_points);
        let mapped = match result {
            Ok(replies) => self.map(&replies, timestamp_ms, started, &mut families),
            Err(e) => Err(DownError::Sample(e)),
        };
        let up = mapped.is_ok();
        self.was_up = Some(up);
        if up {
            self.read_keys().await;
            families.extend_from(&self.key_families);
            self.run_script(&mut families).await;
        } else {
            self.key_families = Families::new();
        }
        let (complete, observation, error) = match mapped {
            Ok((complete, observation)) => (complete, observation, None),
            Err(e) => {
                if let Some(reason) = match &e {
                    DownError::Sample(e) => e.reason(),
                    DownError::NoFields => Some(ErrorReason::Reply),
                } {
                    self.errors[reason as usize] += 1;
                }
                families.plain("redis_up", Kind::Gauge, 0.0);
                (true, Observation::failed(started.elapsed()), Some(e))
            }
        };
        self.own_metrics(started, interval, &mut families);
        self.last_points = self.last_points.max(families.sample_count());
        TargetReading {
            families,
            timestamp_ms,
            complete,
            error,
            observation,
        }
    }

    /// Down at the first failure, then a summary a minute while it lasts;
    /// up at the first answer, and again with how long it was down. All
    /// targets share [`TARGET_LINES`]: thousands failing at once give a
    /// few lines and a count, not thousands of lines.
    fn log_transition(&mut self, result: &Result<Replies, SampleError>) {
        let now = Instant::now();
        let line = match result {
            Err(e) => match self.down.failed(now) {
                Report::Quiet => return,
                report => Transition::Down(report, e),
            },
            Ok(_) => match (self.down.succeeded(now), self.was_up) {
                (Some(ended), _) => Transition::UpAgain(ended),
                (None, None) => Transition::Up,
                (None, Some(_)) => return,
            },
        };
        match TARGET_LINES.take() {
            Budget::Quiet => return,
            Budget::Say { left_out } if left_out > 0 => warn!(
                left_out,
                "{left_out} log lines about targets going down or up were left out since the \
                 last one: many targets changed at once (at most {TARGET_LINES_A_MINUTE} such \
                 lines a minute); /api/status and redpush_target_errors_total show every target"
            ),
            Budget::Say { .. } => {}
        }
        let instance = &self.sampler.target().instance;
        match line {
            Transition::Down(Report::Continuing { lasted, failures }, e) => warn!(
                instance,
                reason = e.reason().map_or("backoff", ErrorReason::as_str),
                failures,
                "target still down after {}: {failures} failed samples; last error: {}",
                humantime::format_duration(Duration::from_secs(lasted.as_secs())),
                OneLine(e),
            ),
            Transition::Down(_, e) => warn!(
                instance,
                reason = e.reason().map_or("backoff", ErrorReason::as_str),
                "target down: {}",
                OneLine(e)
            ),
            Transition::UpAgain(ended) => info!(
                instance,
                failures = ended.failures,
                "target up again after {} down ({} failed samples)",
                humantime::format_duration(Duration::from_secs(ended.lasted.as_secs())),
                ended.failures,
            ),
            Transition::Up => info!(instance, "target up"),
        }
    }

    /// `redis_up 1` and the mapped replies into `out`; whether the reading
    /// is complete and what the interval controller needs of the sample
    /// that began at `started`. Learns what the server is from a complete
    /// reading.
    fn map(
        &mut self,
        replies: &Replies,
        timestamp_ms: i64,
        started: Instant,
        out: &mut Families,
    ) -> Result<(bool, Observation), DownError> {
        let info = Info::parse_at_most(&replies.info, self.max_series);
        if info.is_empty() {
            return Err(DownError::NoFields);
        }
        out.plain("redis_up", Kind::Gauge, 1.0);
        let cluster_info = replies.cluster_info.as_deref().map(Info::parse);
        let reading = Reading {
            info: &info,
            config: replies.config.as_deref(),
            slowlog: replies.slowlog,
            extras: Extras {
                latency: replies.latency.as_deref(),
                histograms: replies.histograms.as_deref(),
                cluster_info: cluster_info.as_ref(),
                sentinel: replies.sentinel.as_deref(),
                clients: replies.clients.as_deref(),
            },
            now_secs: timestamp_ms as f64 / 1000.0,
        };
        map_reading(&reading, self.options, out);
        let dropped = out.keep_at_most(self.max_series);
        if dropped > 0 || info.is_cut() {
            self.limited(dropped, info.is_cut());
        }
        // Version and mode are in the `server` section, which only a
        // complete reading has.
        if replies.complete {
            self.sampler.learn(ServerFacts::from_info(&info));
        }
        Ok((
            replies.complete,
            Observation::from_info(&info, started.elapsed()),
        ))
    }

    /// A reading cut by `max_series`: counted, and said once a minute.
    fn limited(&mut self, dropped: usize, info_cut: bool) {
        self.limited += 1;
        if self.limited_log.ready() {
            let max = self.max_series;
            let info = if info_cut {
                format!("; INFO had more than {max} fields, the rest were not read")
            } else {
                String::new()
            };
            warn!(
                instance = self.instance(),
                dropped,
                "reading cut to {max} series (metrics.max_series_per_target): {dropped} series \
                 left out{info}. A server with this many is broken or hostile, or the limit is \
                 too low for it (said again once a minute while it lasts)"
            );
        }
    }

    /// The target's own `redpush_*` series: how long the sample and each
    /// kind of round trip took, the interval, failures by reason.
    fn own_metrics(&self, started: Instant, interval: Duration, out: &mut Families) {
        out.plain(
            "redpush_sample_duration_seconds",
            Kind::Gauge,
            started.elapsed().as_secs_f64(),
        );
        out.plain(
            "redpush_sample_interval_seconds",
            Kind::Gauge,
            interval.as_secs_f64(),
        );
        for (kind, seconds) in self.sampler.timings() {
            out.push(
                "redpush_redis_command_duration_seconds",
                Kind::Gauge,
                "",
                smallvec![("cmd", kind.as_str().into())],
                seconds,
            );
        }
        out.plain(
            "redpush_series_limited_total",
            Kind::Counter,
            self.limited as f64,
        );
        for (reason, n) in ErrorReason::ALL.iter().zip(self.errors) {
            out.push(
                "redpush_target_errors_total",
                Kind::Counter,
                "",
                smallvec![("reason", reason.as_str().into())],
                n as f64,
            );
        }
    }

    /// Runs the key sampler when it is due (and configured).
    async fn read_keys(&mut self) {
        let Some(settings) = self.sampler.target().keys.clone() else {
            return;
        };
        if self.keys_due.is_some_and(|due| Instant::now() < due) {
            return;
        }
        self.keys_due = Some(Instant::now() + settings.interval);
        let db = format!("db{}", self.sampler.target().db);
        self.key_families = Families::new();
        match crate::redis::keys::read_keys(&mut self.sampler, &settings, &db).await {
            Ok(reading) => {
                crate::metrics::keys::map_keys(&reading, &mut self.key_families);
                if let Some(groups) = &reading.groups {
                    let max = settings.max_distinct_key_groups;
                    let families = &mut self.key_families;
                    crate::metrics::keys::map_key_groups(&reading.db, groups, max, families);
                }
            }
            Err(e) => warn!(
                instance = self.instance(),
                "reading the configured keys failed: {}",
                OneLine(e)
            ),
        }
    }

    /// Runs the target's Lua script, if it has one. A failing script is
    /// `redis_script_result 0` with a log line; unlike the exporter, it does
    /// not turn the whole reading into `redis_up 0`.
    async fn run_script(&mut self, families: &mut Families) {
        let Some(path) = self.sampler.target().script_file.clone() else {
            return;
        };
        let filename = path.file_name().map_or_else(
            || path.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
        let outcome = match std::fs::read_to_string(&path) {
            Err(e) => {
                warn!(
                    instance = self.instance(),
                    "cannot read script_file {}: {e}",
                    path.display()
                );
                ScriptOutcome::Failed
            }
            Ok(script) => {
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                pipe.cmd("EVAL").arg(script).arg(0);
                let outcome = match self.sampler.query(&pipe, RoundTrip::Script).await {
                    Ok(replies) => {
                        replies::script(replies.into_iter().next()).map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                };
                outcome.unwrap_or_else(|e| {
                    warn!(
                        instance = self.instance(),
                        "script {filename} failed: {}",
                        OneLine(&e)
                    );
                    ScriptOutcome::Failed
                })
            }
        };
        crate::metrics::keys::map_script(&filename, &outcome, families);
    }
}
