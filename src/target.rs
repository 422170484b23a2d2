//! One monitored Redis: its sampler, its labels, and the step from a sample
//! to metric families (`redis_up`, the mapped INFO, its own `redpush_*`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Settings, TargetSettings};
use crate::metrics::keys::ScriptOutcome;
use crate::metrics::mapper::{Extras, MapOptions, Reading, map_reading};
use crate::metrics::{Families, Kind, smallvec};
use crate::redis::info::Info;
use crate::redis::sampler::{Sampler, ServerFacts, log_transition};
use crate::remote_write::sender::now_ms;
use crate::schedule::Observation;
use crate::series::{TargetLabels, target_labels};

/// Reasons counted in `redpush_target_errors_total`, always all present.
const ERROR_REASONS: &[&str] = &["connect", "auth", "tls", "timeout", "command", "reply"];

pub struct Target {
    sampler: Sampler,
    options: MapOptions,
    /// `job`, `instance` and external labels for pushed series, as
    /// configured (the comparison for a reload) and as the shared set.
    base_labels: Vec<(String, String)>,
    labels: Arc<TargetLabels>,
    was_up: Option<bool>,
    last_timestamp_ms: i64,
    errors: [u64; ERROR_REASONS.len()],
    /// The last key and stream metrics, added to every reading until the
    /// next key run (so they do not go stale in between).
    key_families: Families,
    /// When the key sampler runs next.
    keys_due: Option<Instant>,
    /// Points of the largest reading so far (a complete one): each reading
    /// is sized for as many, so it does not grow its vectors as it fills.
    last_points: usize,
}

/// The outcome of one sample.
pub struct TargetReading {
    pub families: Families,
    pub timestamp_ms: i64,
    pub up: bool,
    /// False for a reading between complete ones (see `Sampler`): series it
    /// lacks have not ended, they were not read this time.
    pub complete: bool,
    /// Why the target is down, for `once`.
    pub error: Option<String>,
    /// What the interval controller needs from this sample.
    pub observation: Observation,
}

impl Target {
    pub fn new(settings: &Settings, target: TargetSettings) -> Self {
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
            },
            base_labels,
            labels,
            was_up: None,
            last_timestamp_ms: 0,
            errors: [0; ERROR_REASONS.len()],
            key_families: Families::new(),
            keys_due: None,
            last_points: 0,
        }
    }

    pub fn settings(&self) -> &TargetSettings {
        self.sampler.target()
    }

    pub fn instance(&self) -> &str {
        &self.sampler.target().instance
    }

    pub fn base_labels(&self) -> &[(String, String)] {
        &self.base_labels
    }

    /// The labels every pushed series of this target carries.
    pub fn labels(&self) -> &Arc<TargetLabels> {
        &self.labels
    }

    /// Samples the target once. Never fails: a target that cannot be read
    /// yields `redis_up 0` (and the agent's own metrics for it).
    pub async fn read(&mut self, interval: Duration) -> TargetReading {
        let started = Instant::now();
        let timestamp_ms = self.next_timestamp();

        let result = self.sampler.sample().await;
        log_transition(self.instance(), self.was_up, &result);
        let mut families = Families::with_capacity(self.last_points);
        let mut error = None;
        let mut observation = Observation::failed(started.elapsed());
        let mut learned = None;
        let mut complete = true;
        let up = match &result {
            Ok(raw) => {
                let info = Info::parse(&raw.info);
                if info.is_empty() {
                    error = Some("INFO answered no fields".to_owned());
                    self.count_error("reply");
                    families.plain("redis_up", Kind::Gauge, 0.0);
                    false
                } else {
                    families.plain("redis_up", Kind::Gauge, 1.0);
                    let cluster_info = raw.cluster_info.as_deref().map(Info::parse);
                    let reading = Reading {
                        info: &info,
                        config: raw.config.as_deref(),
                        slowlog: raw.slowlog,
                        extras: Extras {
                            latency: raw.latency.as_deref(),
                            histograms: raw.histograms.as_deref(),
                            cluster_info: cluster_info.as_ref(),
                            sentinel: raw.sentinel.as_deref(),
                            clients: raw.clients.as_deref(),
                        },
                        now_secs: timestamp_ms as f64 / 1000.0,
                    };
                    map_reading(&reading, self.options, &mut families);
                    observation = Observation::from_info(&info, started.elapsed());
                    complete = raw.complete;
                    // Version and mode are in the `server` section, which
                    // only a complete reading has.
                    if complete {
                        learned = Some(ServerFacts::from_info(&info));
                    }
                    true
                }
            }
            Err(e) => {
                self.count_error(e.reason());
                error = Some(e.to_string());
                families.plain("redis_up", Kind::Gauge, 0.0);
                false
            }
        };
        self.was_up = Some(up);
        if up {
            self.read_keys().await;
            families.extend_from(&self.key_families);
            self.run_script(&mut families).await;
        } else {
            self.key_families = Families::new();
        }
        if let Some(facts) = learned {
            self.sampler.learn(facts);
        }

        families.plain(
            "redpush_sample_duration_seconds",
            Kind::Gauge,
            started.elapsed().as_secs_f64(),
        );
        families.plain(
            "redpush_sample_interval_seconds",
            Kind::Gauge,
            interval.as_secs_f64(),
        );
        for (cmd, seconds) in self.sampler.timings() {
            families.push(
                "redpush_redis_command_duration_seconds",
                Kind::Gauge,
                "",
                smallvec![("cmd", (*cmd).into())],
                *seconds,
            );
        }
        for (reason, n) in ERROR_REASONS.iter().zip(self.errors) {
            families.push(
                "redpush_target_errors_total",
                Kind::Counter,
                "",
                smallvec![("reason", (*reason).into())],
                n as f64,
            );
        }
        self.last_points = self.last_points.max(families.sample_count());
        TargetReading {
            families,
            timestamp_ms,
            up,
            complete,
            error,
            observation,
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
        match crate::redis::keys::read_keys(&mut self.sampler, &settings, &db).await {
            Ok(reading) => {
                let mut families = Families::new();
                crate::metrics::keys::map_keys(&reading, &mut families);
                self.key_families = families;
            }
            Err(e) => {
                tracing::warn!(
                    instance = self.instance(),
                    "reading the configured keys failed: {e}"
                );
                self.key_families = Families::new();
            }
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
                tracing::warn!(
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
                match self.sampler.query(&pipe, "script").await {
                    Ok(replies) => {
                        script_outcome(replies.into_iter().next(), self.instance(), &filename)
                    }
                    Err(e) => {
                        tracing::warn!(instance = self.instance(), "script {filename} failed: {e}");
                        ScriptOutcome::Failed
                    }
                }
            }
        };
        crate::metrics::keys::map_script(&filename, &outcome, families);
    }

    /// A timestamp for this target's next record. Samples of one series must
    /// have strictly increasing timestamps, even if the wall clock steps back
    /// or two samples share a millisecond.
    pub fn next_timestamp(&mut self) -> i64 {
        let timestamp_ms = now_ms().max(self.last_timestamp_ms + 1);
        self.last_timestamp_ms = timestamp_ms;
        timestamp_ms
    }

    fn count_error(&mut self, reason: &str) {
        if let Some(i) = ERROR_REASONS.iter().position(|r| *r == reason) {
            self.errors[i] += 1;
        }
    }
}

/// The reply of a user's script: a flat array of key, value, key, value...
fn script_outcome(reply: Option<redis::Value>, instance: &str, filename: &str) -> ScriptOutcome {
    use crate::redis::sampler::{bytes_text, int};
    match reply {
        Some(redis::Value::Array(items)) if items.is_empty() => ScriptOutcome::Empty,
        Some(redis::Value::Array(items)) => ScriptOutcome::Values(
            items
                .chunks_exact(2)
                .filter_map(|kv| {
                    let key = bytes_text(&kv[0])?;
                    let value = int(Some(&kv[1])).or_else(|| bytes_text(&kv[1])?.parse().ok())?;
                    Some((key, value))
                })
                .collect(),
        ),
        Some(redis::Value::Nil) | None => ScriptOutcome::Empty,
        Some(redis::Value::ServerError(e)) => {
            tracing::warn!(instance, "script {filename} failed: {e}");
            ScriptOutcome::Failed
        }
        Some(_) => {
            tracing::warn!(
                instance,
                "script {filename} must return a flat array of key, value pairs"
            );
            ScriptOutcome::Failed
        }
    }
}
