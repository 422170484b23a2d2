//! The agent's own health, `redpush_*`: counters the stages bump, rendered
//! into families for `/metrics` and for the push.
//!
//! Per-target figures (sample duration, interval) travel in the target's own
//! reading instead, so they carry that target's `instance` label.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::metrics::{Families, Kind, smallvec};
use crate::queue::{DropReason, DroppedFor, QueueEvents, QueueStats};
use crate::secret::redact_url;

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

/// The agent-wide counters, and each remote-write endpoint's.
#[derive(Default)]
pub struct SelfMetrics {
    queue_write_errors: AtomicU64,
    pushgateway_pushes: AtomicU64,
    pushgateway_errors: AtomicU64,
    /// The remote-write endpoints, in the configuration's order.
    endpoints: Mutex<Vec<Arc<EndpointMetrics>>>,
    /// Drops a queue reported for a reader no endpoint reads through (a
    /// queue opened without the agent, as tests and benchmarks do).
    unrouted: [AtomicU64; DropReason::ALL.len()],
    /// Whether the last configuration load (at start or by SIGHUP) took.
    last_reload_ok: AtomicBool,
    last_reload_success_ms: AtomicU64,
}

/// One remote-write endpoint's counters, rendered with its `remote_name`
/// and `url` labels (as Prometheus' `prometheus_remote_storage_*` have
/// them). Its sender bumps them; the queue reports the drops of its
/// reader, which is named as the endpoint is.
pub struct EndpointMetrics {
    name: String,
    /// Without credentials or query.
    url: String,
    samples_sent: AtomicU64,
    requests_sent: AtomicU64,
    retries: AtomicU64,
    send_seconds_sum_micros: AtomicU64,
    last_success_ms: AtomicU64,
    /// Samples dropped, by `DropReason as usize`.
    dropped: [AtomicU64; DropReason::ALL.len()],
    /// Failed requests by why they failed.
    send_errors: Mutex<BTreeMap<SendFailure, u64>>,
}

/// The families of each endpoint, in the order of the page.
const ENDPOINT_FAMILIES: [(&str, Kind); 11] = [
    ("redpush_queue_samples", Kind::Gauge),
    ("redpush_queue_records", Kind::Gauge),
    ("redpush_queue_bytes", Kind::Gauge),
    ("redpush_queue_oldest_sample_age_seconds", Kind::Gauge),
    ("redpush_samples_sent_total", Kind::Counter),
    ("redpush_requests_sent_total", Kind::Counter),
    ("redpush_send_retries_total", Kind::Counter),
    ("redpush_send_duration_seconds_total", Kind::Counter),
    ("redpush_last_send_timestamp_seconds", Kind::Gauge),
    ("redpush_samples_dropped_total", Kind::Counter),
    ("redpush_send_errors_total", Kind::Counter),
];
const DROPPED: usize = 9;
const SEND_ERRORS: usize = 10;

/// A point of an endpoint's: its family (an index of
/// [`ENDPOINT_FAMILIES`]), labels and value.
type EndpointPoint = (usize, crate::metrics::Labels, f64);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EndpointMetrics {
    /// Counters of endpoint `name` at `url` (any credentials in it are
    /// cut out here).
    pub fn new(name: &str, url: &str) -> EndpointMetrics {
        EndpointMetrics {
            name: name.to_owned(),
            url: redact_url(url),
            samples_sent: AtomicU64::default(),
            requests_sent: AtomicU64::default(),
            retries: AtomicU64::default(),
            send_seconds_sum_micros: AtomicU64::default(),
            last_success_ms: AtomicU64::default(),
            dropped: Default::default(),
            send_errors: Mutex::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether these are the counters of endpoint `name` at `url`: a
    /// sender replaced by a reload counts on in them.
    pub(crate) fn is_of(&self, name: &str, url: &str) -> bool {
        self.name == name && self.url == redact_url(url)
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

    pub fn dropped(&self, reason: DropReason, samples: u64) {
        self.dropped[reason as usize].fetch_add(samples, Ordering::Relaxed);
    }

    pub fn dropped_count(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }

    /// Counts samples the queue dropped for `by`, when that includes this
    /// endpoint's reader; whether it did.
    pub(crate) fn dropped_for(&self, by: DroppedFor<'_>, reason: DropReason, samples: u64) -> bool {
        let mine = by.includes(&self.name);
        if mine {
            self.dropped(reason, samples);
        }
        mine
    }

    pub fn send_error(&self, failure: SendFailure) {
        *lock(&self.send_errors).entry(failure).or_default() += 1;
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

    /// This endpoint's points, each with its family's place in the page
    /// (so that the caller can keep every family's points together);
    /// `queue` is what its reader holds.
    fn points(&self, out: &mut Vec<EndpointPoint>, queue: QueueStats, now_ms: i64) {
        let age = queue
            .oldest_timestamp_ms
            .map_or(0.0, |ts| (now_ms - ts).max(0) as f64 / 1000.0);
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64;
        let figures = [
            queue.samples as f64,
            queue.records as f64,
            queue.bytes as f64,
            age,
            load(&self.samples_sent),
            load(&self.requests_sent),
            load(&self.retries),
            load(&self.send_seconds_sum_micros) / 1e6,
            load(&self.last_success_ms) / 1000.0,
        ];
        for (family, value) in figures.into_iter().enumerate() {
            out.push((family, self.labels(None), value));
        }
        // Every reason is always present, so a rate over it starts at 0
        // instead of appearing with the first drop.
        for reason in DropReason::ALL {
            let labels = self.labels(Some(("reason", reason.as_str().into())));
            out.push((DROPPED, labels, self.dropped_count(reason) as f64));
        }
        let errors = lock(&self.send_errors).clone();
        for (failure, n) in errors {
            let labels = self.labels(Some(("status", failure.label())));
            out.push((SEND_ERRORS, labels, n as f64));
        }
    }

    fn labels(&self, extra: Option<(&'static str, String)>) -> crate::metrics::Labels {
        let mut labels = smallvec![
            ("remote_name", self.name.as_str().into()),
            ("url", self.url.as_str().into()),
        ];
        labels.extend(extra.map(|(name, value)| (name, value.into())));
        labels
    }
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

    /// The remote-write endpoints' counters, in the configuration's
    /// order: rendered from now on, and given their readers' drops.
    pub fn set_endpoints(&self, endpoints: Vec<Arc<EndpointMetrics>>) {
        *lock(&self.endpoints) = endpoints;
    }

    pub fn pushgateway_push(&self, ok: bool) {
        let counter = if ok {
            &self.pushgateway_pushes
        } else {
            &self.pushgateway_errors
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Samples dropped for `reason`, summed over the endpoints (and drops
    /// no endpoint took).
    pub fn dropped_count(&self, reason: DropReason) -> u64 {
        let endpoints: u64 = lock(&self.endpoints)
            .iter()
            .map(|e| e.dropped_count(reason))
            .sum();
        endpoints + self.unrouted[reason as usize].load(Ordering::Relaxed)
    }

    /// Samples sent, summed over the endpoints.
    pub fn samples_sent(&self) -> u64 {
        lock(&self.endpoints).iter().map(|e| e.samples_sent()).sum()
    }

    /// Renders the agent's metrics: the agent-wide ones, then each
    /// endpoint's with `queues`' figure of its reader (looked up by the
    /// endpoint's name; the caller reads them, so that this module needs
    /// no handle on the queue).
    pub fn families(&self, queues: &[(String, QueueStats)], now_ms: i64) -> Families {
        let mut out = Families::new();
        out.push(
            "redpush_build_info",
            Kind::Gauge,
            "",
            smallvec![("version", env!("CARGO_PKG_VERSION").into())],
            1.0,
        );
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64;
        let figures = [
            (
                "redpush_queue_write_errors_total",
                Kind::Counter,
                load(&self.queue_write_errors),
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
        let endpoints = lock(&self.endpoints).clone();
        let mut points = Vec::new();
        for endpoint in endpoints {
            let queue = queues
                .iter()
                .find(|(name, _)| *name == endpoint.name)
                .map(|(_, stats)| *stats)
                .unwrap_or_default();
            endpoint.points(&mut points, queue, now_ms);
        }
        // A family's points together, each endpoint's in the endpoints' order.
        points.sort_by_key(|(family, _, _)| *family);
        for (family, labels, value) in points {
            let (name, kind) = ENDPOINT_FAMILIES[family];
            out.push(name, kind, "", labels, value);
        }
        out
    }
}

impl QueueEvents for SelfMetrics {
    fn dropped(&self, by: DroppedFor<'_>, reason: DropReason, samples: u64) {
        let endpoints = lock(&self.endpoints);
        let mut taken = false;
        for endpoint in endpoints.iter() {
            taken |= endpoint.dropped_for(by, reason, samples);
        }
        if !taken {
            self.unrouted[reason as usize].fetch_add(samples, Ordering::Relaxed);
        }
    }

    fn write_failed(&self) {
        self.queue_write_errors.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> (SelfMetrics, Arc<EndpointMetrics>, Arc<EndpointMetrics>) {
        let metrics = SelfMetrics::default();
        let vm = Arc::new(EndpointMetrics::new("vm", "http://vm:8428/api/v1/write"));
        let cloud = Arc::new(EndpointMetrics::new(
            "cloud",
            "https://u:secret@cloud/push?token=t",
        ));
        metrics.set_endpoints(vec![vm.clone(), cloud.clone()]);
        (metrics, vm, cloud)
    }

    #[test]
    fn each_family_appears_once_with_every_endpoint_in_it() {
        let (metrics, vm, _) = two();
        vm.sent(10, 0.5, 1_000);
        let families = metrics.families(&[], 2_000);
        let names: Vec<&str> = families.iter().map(|f| f.name).collect();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names, unique, "a family split in two");
        let sent = families.get("redpush_samples_sent_total").expect("sent");
        let points: Vec<(String, f64)> = (sent.points.iter())
            .map(|p| (p.labels[0].1.to_string(), p.value))
            .collect();
        assert_eq!(points, [("vm".to_owned(), 10.0), ("cloud".to_owned(), 0.0)]);
        let mut text = String::new();
        crate::exposition::write_families(&mut text, &families, &[]);
        assert!(
            !text.contains("secret") && !text.contains("token=t"),
            "{text}"
        );
        assert!(
            text.contains("url=\"https://<redacted>@cloud/push?token=<redacted>\""),
            "{text}"
        );
    }

    #[test]
    fn a_reader_s_drops_are_its_endpoint_s_and_a_lost_write_everyone_s() {
        let (metrics, vm, cloud) = two();
        metrics.dropped(DroppedFor::Reader("cloud"), DropReason::TooOld, 5);
        metrics.dropped(DroppedFor::Every, DropReason::WriteError, 3);
        metrics.dropped(DroppedFor::Reader("gone"), DropReason::QueueFull, 7);
        assert_eq!(vm.dropped_count(DropReason::TooOld), 0);
        assert_eq!(cloud.dropped_count(DropReason::TooOld), 5);
        assert_eq!(vm.dropped_count(DropReason::WriteError), 3);
        assert_eq!(cloud.dropped_count(DropReason::WriteError), 3);
        // No endpoint reads as "gone": counted in the total only.
        assert_eq!(metrics.dropped_count(DropReason::QueueFull), 7);
        assert_eq!(metrics.dropped_count(DropReason::WriteError), 6);
    }
}
