//! The agent's own health, `redpush_*`: counters the stages bump, rendered
//! into families for `/metrics` and for the push.
//!
//! Per-target figures (sample duration, interval) travel in the target's own
//! reading instead, so they carry that target's `instance` label.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::metrics::{Families, Kind, smallvec};
use crate::queue::{DropReason, QueueEvents, QueueStats};

/// Why a request to the receiver failed, as `redpush_send_errors_total`'s
/// `status` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SendFailure {
    /// The receiver answered with this HTTP status.
    Status(u16),
    /// No answer: the connection failed or broke.
    Network,
    /// No answer within the request timeout.
    Timeout,
    /// The request was not sent: its credentials could not be read.
    Credentials,
}

impl SendFailure {
    fn label(self) -> String {
        match self {
            SendFailure::Status(status) => status.to_string(),
            SendFailure::Network => "network".to_owned(),
            SendFailure::Timeout => "timeout".to_owned(),
            SendFailure::Credentials => "credentials".to_owned(),
        }
    }
}

#[derive(Default)]
pub struct SelfMetrics {
    samples_sent: AtomicU64,
    requests_sent: AtomicU64,
    retries: AtomicU64,
    queue_write_errors: AtomicU64,
    pushgateway_pushes: AtomicU64,
    pushgateway_errors: AtomicU64,
    send_seconds_sum_micros: AtomicU64,
    last_success_ms: AtomicU64,
    /// Samples dropped, by `DropReason as usize`.
    dropped: [AtomicU64; DropReason::ALL.len()],
    /// Failed requests by why they failed.
    send_errors: Mutex<BTreeMap<SendFailure, u64>>,
    /// Whether the last configuration load (at start or by SIGHUP) took.
    last_reload_ok: AtomicBool,
    last_reload_success_ms: AtomicU64,
}

impl SelfMetrics {
    /// A configuration load at `now_ms` (the start's, or a reload) took or not.
    pub(crate) fn reloaded(&self, ok: bool, now_ms: i64) {
        self.last_reload_ok.store(ok, Ordering::Relaxed);
        if ok {
            self.last_reload_success_ms
                .store(now_ms.max(0) as u64, Ordering::Relaxed);
        }
    }

    pub fn sent(&self, samples: u64, seconds: f64, now_ms: i64) {
        self.samples_sent.fetch_add(samples, Ordering::Relaxed);
        self.requests_sent.fetch_add(1, Ordering::Relaxed);
        self.send_seconds_sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.last_success_ms
            .store(now_ms.max(0) as u64, Ordering::Relaxed);
    }

    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn pushgateway_push(&self, ok: bool) {
        let counter = if ok {
            &self.pushgateway_pushes
        } else {
            &self.pushgateway_errors
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped_count(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }

    pub fn send_error(&self, failure: SendFailure) {
        let mut map = self
            .send_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *map.entry(failure).or_default() += 1;
    }

    /// Samples per second of request time so far: how fast a backlog goes
    /// out when requests follow each other. `None` before the first.
    pub(crate) fn send_rate(&self) -> Option<f64> {
        let seconds = self.send_seconds_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (seconds > 0.0).then(|| self.samples_sent() as f64 / seconds)
    }

    pub fn samples_sent(&self) -> u64 {
        self.samples_sent.load(Ordering::Relaxed)
    }

    /// Renders the agent-wide metrics. `queue` is read by the caller so
    /// that this module needs no handle on the queue.
    pub fn families(&self, queue: QueueStats, now_ms: i64) -> Families {
        let mut out = Families::new();
        out.push(
            "redpush_build_info",
            Kind::Gauge,
            "",
            smallvec![("version", env!("CARGO_PKG_VERSION").into())],
            1.0,
        );
        let age = queue
            .oldest_timestamp_ms
            .map_or(0.0, |ts| (now_ms - ts).max(0) as f64 / 1000.0);
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64;
        let figures = [
            ("redpush_queue_samples", Kind::Gauge, queue.samples as f64),
            ("redpush_queue_records", Kind::Gauge, queue.records as f64),
            ("redpush_queue_bytes", Kind::Gauge, queue.bytes as f64),
            (
                "redpush_queue_write_errors_total",
                Kind::Counter,
                load(&self.queue_write_errors),
            ),
            ("redpush_queue_oldest_sample_age_seconds", Kind::Gauge, age),
            (
                "redpush_samples_sent_total",
                Kind::Counter,
                self.samples_sent() as f64,
            ),
            (
                "redpush_requests_sent_total",
                Kind::Counter,
                load(&self.requests_sent),
            ),
            (
                "redpush_send_retries_total",
                Kind::Counter,
                load(&self.retries),
            ),
            (
                "redpush_send_duration_seconds_total",
                Kind::Counter,
                load(&self.send_seconds_sum_micros) / 1e6,
            ),
            (
                "redpush_last_send_timestamp_seconds",
                Kind::Gauge,
                load(&self.last_success_ms) / 1000.0,
            ),
            (
                "redpush_pushgateway_pushes_total",
                Kind::Counter,
                load(&self.pushgateway_pushes),
            ),
            (
                "redpush_pushgateway_errors_total",
                Kind::Counter,
                load(&self.pushgateway_errors),
            ),
            // Prometheus' own names for the same facts.
            (
                "redpush_config_last_reload_successful",
                Kind::Gauge,
                f64::from(u8::from(self.last_reload_ok.load(Ordering::Relaxed))),
            ),
            (
                "redpush_config_last_reload_success_timestamp_seconds",
                Kind::Gauge,
                load(&self.last_reload_success_ms) / 1000.0,
            ),
        ];
        for (name, kind, value) in figures {
            out.plain(name, kind, value);
        }
        self.labelled(&mut out);
        out
    }

    /// The counters with a label: drops by reason, send errors by status.
    fn labelled(&self, out: &mut Families) {
        // Every reason is always present, so a rate over it starts at 0
        // instead of appearing with the first drop.
        for reason in DropReason::ALL {
            out.push(
                "redpush_samples_dropped_total",
                Kind::Counter,
                "",
                smallvec![("reason", reason.as_str().into())],
                self.dropped_count(reason) as f64,
            );
        }
        let errors = self
            .send_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for (failure, n) in errors {
            out.push(
                "redpush_send_errors_total",
                Kind::Counter,
                "",
                smallvec![("status", failure.label().into())],
                n as f64,
            );
        }
    }
}

impl QueueEvents for SelfMetrics {
    fn dropped(&self, reason: DropReason, samples: u64) {
        self.dropped[reason as usize].fetch_add(samples, Ordering::Relaxed);
    }

    fn write_failed(&self) {
        self.queue_write_errors.fetch_add(1, Ordering::Relaxed);
    }
}
