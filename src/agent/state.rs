//! What the agent's readers see: the latest reading of every target, in
//! configuration order, and the agent's own counters. Target tasks write
//! it (each into a slot of its own); `/metrics` and the Pushgateway pusher
//! read it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::clock::now_ms;
use crate::delivery::DeliveryStatus;
use crate::exposition::protobuf::ProtoPage;
use crate::exposition::{Page, write_families};
use crate::metrics::Families;
use crate::queue::{DropReason, Queue, QueueStats};
use crate::self_metrics::{EndpointMetrics, SelfMetrics};
use crate::series::{Record, Series, flatten, is_stale_marker, target_labels};
use crate::status::{DestinationStatus, QueueStatus, Status, TargetStatus, seconds};

/// A push destination as the status shows it.
pub(super) struct Destination {
    /// The remote-write endpoint's name; `None` for the Pushgateway.
    pub(super) name: Option<String>,
    /// Without credentials or query.
    pub(super) url: String,
    pub(super) status: Arc<DeliveryStatus>,
}

impl Destination {
    fn status(&self) -> DestinationStatus {
        DestinationStatus::new(self.name.clone(), self.url.clone(), self.status.snapshot())
    }
}

/// A remote-write endpoint as the status and the agent's metrics see it:
/// its delivery, its counters and its reader of the queue.
pub(super) struct RemoteWriteView {
    pub(super) destination: Destination,
    pub(super) metrics: Arc<EndpointMetrics>,
    pub(super) queue: Arc<dyn Queue>,
}

pub(super) struct AgentState {
    /// Each target's slot. A target's task holds its own slot and stores
    /// its readings there, so a sample locks one slot, not the list: a
    /// search of the list by instance on every sample was a twentieth of
    /// the agent's CPU at 1000 targets.
    targets: Mutex<Vec<(String, Arc<Slot>)>>,
    metrics: Arc<SelfMetrics>,
    /// Where the agent pushes: set at start and by reloads.
    destinations: Mutex<Pushing>,
    started_ms: i64,
    ready_delivery_timeout: Duration,
}

/// The push side as the page and the status see it.
#[derive(Default)]
struct Pushing {
    remote_write: Vec<RemoteWriteView>,
    pushgateway: Option<Destination>,
}

impl AgentState {
    pub(super) fn new(metrics: Arc<SelfMetrics>) -> Self {
        AgentState {
            targets: Mutex::new(Vec::new()),
            metrics,
            destinations: Mutex::default(),
            started_ms: now_ms(),
            ready_delivery_timeout: crate::config::READY_DELIVERY_TIMEOUT,
        }
    }

    fn pushing(&self) -> MutexGuard<'_, Pushing> {
        self.destinations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The remote-write endpoints, as they are now.
    pub(super) fn set_remote_write(&self, endpoints: Vec<RemoteWriteView>) {
        self.pushing().remote_write = endpoints;
    }

    pub(super) fn set_pushgateway(&self, destination: Option<Destination>) {
        self.pushing().pushgateway = destination;
    }

    pub(super) fn metrics(&self) -> &Arc<SelfMetrics> {
        &self.metrics
    }

    /// `/readyz`: fails when a push destination has delivered nothing for
    /// `timeout` (counted from the start until its first delivery).
    pub(super) fn with_ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_delivery_timeout = timeout;
        self
    }

    /// Whether `/readyz` passes; why not when it does not.
    pub(super) fn ready(&self) -> Result<(), String> {
        self.status()
            .ready(now_ms(), self.started_ms, self.ready_delivery_timeout)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(String, Arc<Slot>)>> {
        self.targets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a target (empty until its first sample) at `position` in
    /// the configuration's order; returns the slot its task stores readings
    /// in (the one it has, if it is registered already).
    pub(super) fn add(&self, instance: &str, position: usize) -> Arc<Slot> {
        let mut targets = self.lock();
        if let Some((_, slot)) = targets.iter().find(|(i, _)| i == instance) {
            return slot.clone();
        }
        let slot = Arc::new(Slot::default());
        let at = position.min(targets.len());
        targets.insert(at, (instance.to_owned(), slot.clone()));
        slot
    }

    pub(super) fn remove(&self, instance: &str) {
        self.lock().retain(|(i, _)| i != instance);
    }

    /// The latest reading of every target (none before its first sample):
    /// shared, except after an incomplete reading, which is overlaid on the
    /// last complete one here (when a page is asked for, not on every
    /// sample).
    pub(super) fn latest(&self) -> Vec<(String, Option<Arc<Record>>)> {
        let targets = self.lock().clone();
        targets
            .into_iter()
            .map(|(instance, slot)| (instance, slot.latest()))
            .collect()
    }

    /// What `/api/status` and `/` show, now.
    pub(super) fn status(&self) -> Status {
        let now = now_ms();
        let slots = self.lock().clone();
        let targets = slots
            .into_iter()
            .map(|(instance, slot)| TargetStatus {
                instance,
                ..slot.status()
            })
            .collect();
        let pushing = self.pushing();
        Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            targets,
            remote_write: pushing
                .remote_write
                .iter()
                .map(|view| remote_write_status(view, now))
                .collect(),
            pushgateway: pushing.pushgateway.as_ref().map(Destination::status),
        }
    }

    /// The agent-wide `redpush_*` metrics now.
    pub(super) fn self_families(&self) -> Families {
        self.self_families_at(now_ms())
    }

    /// The agent-wide `redpush_*` metrics, stamped `timestamp_ms`.
    pub(super) fn self_families_at(&self, timestamp_ms: i64) -> Families {
        let queues: Vec<(String, QueueStats)> = (self.pushing().remote_write.iter())
            .map(|view| (view.metrics.name().to_owned(), view.queue.stats()))
            .collect();
        self.metrics.families(&queues, timestamp_ms)
    }

    /// The `/metrics` page, to be written a piece at a time, and the
    /// agent's own metrics that end it. With one target the series carry no
    /// `instance` label, exactly as the exporter prints them (the scraper
    /// adds its own); with several, each series carries its target's
    /// `instance`.
    /// The `/metrics` page in the protobuf format: the text page's series
    /// (the same `instance` rule), then the agent's own, and the native
    /// histograms the text format cannot carry.
    pub(super) fn proto_page(&self) -> ProtoPage {
        let latest = self.latest();
        let labelled = latest.len() != 1;
        let mut records: Vec<(Option<String>, Arc<Record>)> = latest
            .into_iter()
            .filter_map(|(instance, record)| Some((labelled.then_some(instance), record?)))
            .collect();
        let mut own = Vec::new();
        flatten(&self.self_families(), &[], &mut own);
        records.push((
            None,
            Arc::new(Record {
                timestamp_ms: now_ms(),
                target: target_labels([]),
                series: own,
                histograms: Vec::new(),
            }),
        ));
        ProtoPage::new(records)
    }

    pub(super) fn page(&self) -> (Page, String) {
        let mut own = String::new();
        write_families(&mut own, &self.self_families(), &[]);
        let latest = self.latest();
        let labelled = latest.len() != 1;
        let records = latest
            .into_iter()
            .filter_map(|(instance, record)| Some((instance, record?)))
            .collect();
        (Page::new(records, labelled), own)
    }
}

/// A target's latest reading and its latest complete one (the same one
/// unless the latest is incomplete).
#[derive(Clone, Default)]
struct Latest {
    current: Option<Arc<Record>>,
    complete: Option<Arc<Record>>,
    /// What the status shows of the target (its `instance` left empty).
    status: TargetStatus,
}

/// Where one target's task leaves its readings for the page and the
/// Pushgateway.
#[derive(Default)]
pub(super) struct Slot(Mutex<Latest>);

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Latest> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a target's new reading: the record it pushed (stale markers
    /// included, which the page leaves out), and `note`'s change to what
    /// the status shows of the target.
    pub(super) fn store(
        &self,
        record: Arc<Record>,
        complete: bool,
        note: impl FnOnce(&mut TargetStatus),
    ) {
        let mut latest = self.lock();
        note(&mut latest.status);
        if complete {
            latest.complete = Some(record.clone());
        }
        latest.current = Some(record);
    }

    /// Changes what the status shows of the target.
    pub(super) fn note(&self, change: impl FnOnce(&mut TargetStatus)) {
        change(&mut self.lock().status);
    }

    fn status(&self) -> TargetStatus {
        self.lock().status.clone()
    }

    /// The target as the page shows it: its latest record, overlaid on the
    /// last complete one when it is incomplete.
    fn latest(&self) -> Option<Arc<Record>> {
        let latest = self.lock().clone();
        match (latest.current, latest.complete) {
            (Some(current), Some(complete)) if !Arc::ptr_eq(&current, &complete) => {
                Some(Arc::new(Record {
                    series: overlaid(&current.series, &complete.series),
                    histograms: complete
                        .histograms
                        .iter()
                        .filter(|h| !h.histogram.is_stale())
                        .cloned()
                        .collect(),
                    ..Record::clone(&current)
                }))
            }
            (current, _) => current,
        }
    }
}

/// What a target looks like after an incomplete reading: its series, then
/// those of the last complete reading whose families it lacks (the detail
/// families stay standing). Stale markers left out.
fn overlaid(current: &[Series], complete: &[Series]) -> Vec<Series> {
    let live = |s: &&Series| !is_stale_marker(s.value);
    let names: HashSet<&str> = current
        .iter()
        .filter(live)
        .map(|s| s.shape.name())
        .collect();
    current
        .iter()
        .filter(live)
        .chain(
            complete
                .iter()
                .filter(live)
                .filter(|s| !names.contains(s.shape.name())),
        )
        .cloned()
        .collect()
}

/// A remote-write endpoint's status: its delivery and its backlog.
fn remote_write_status(view: &RemoteWriteView, now: i64) -> DestinationStatus {
    let stats = view.queue.stats();
    let mut status = view.destination.status();
    if status.consecutive_failures == 0 {
        let queued = stats.samples as f64;
        status.backlog_drain_eta_seconds = view.metrics.send_rate().map(|rate| queued / rate);
    }
    status.queue = Some(QueueStatus {
        samples: stats.samples as u64,
        bytes: stats.bytes,
        oldest_sample_age_seconds: stats
            .oldest_timestamp_ms
            .map_or(0.0, |ts| seconds((now - ts).max(0))),
        dropped: DropReason::ALL
            .iter()
            .map(|&r| (r.as_str().to_owned(), view.metrics.dropped_count(r)))
            .collect(),
    });
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Kind;
    use crate::series::{shape, stale_nan, target_labels};

    fn series(name: &str, cmd: &str, value: f64) -> Series {
        Series {
            shape: shape(name, Kind::Gauge, "", &[("cmd", cmd)]),
            value,
        }
    }

    fn record(series: Vec<Series>) -> Arc<Record> {
        Arc::new(Record {
            timestamp_ms: 1,
            target: target_labels([("instance", "state-test:1")]),
            series,
            histograms: Vec::new(),
        })
    }

    fn names(series: &[Series]) -> Vec<(String, f64)> {
        series
            .iter()
            .map(|s| {
                (
                    format!("{}{:?}", s.shape.name(), s.shape.labels().next()),
                    s.value,
                )
            })
            .collect()
    }

    #[test]
    fn a_fast_reading_is_overlaid_on_the_last_complete_one() {
        let complete = vec![
            series("fast", "a", 1.0),
            series("detail", "a", 2.0),
            series("detail", "b", 3.0),
            series("gone", "a", stale_nan()),
        ];
        let current = vec![series("fast", "a", 5.0), series("fast", "c", 6.0)];
        let shown = overlaid(&current, &complete);
        assert_eq!(
            names(&shown),
            names(&[
                series("fast", "a", 5.0),
                series("fast", "c", 6.0),
                series("detail", "a", 2.0),
                series("detail", "b", 3.0),
            ])
        );
    }

    #[test]
    fn a_slot_shows_its_latest_reading_and_the_list_keeps_configuration_order() {
        let state = AgentState::new(Arc::new(SelfMetrics::default()));
        let b = state.add("b:1", 1);
        let a = state.add("a:1", 0);
        assert!(Arc::ptr_eq(&a, &state.add("a:1", 5)), "one slot per target");
        let full = record(vec![series("fast", "a", 1.0), series("detail", "a", 2.0)]);
        a.store(full.clone(), true, |_| {});
        let latest = state.latest();
        assert_eq!(latest.len(), 2);
        assert_eq!(latest[0].0, "a:1");
        assert!(Arc::ptr_eq(latest[0].1.as_ref().expect("a reading"), &full));
        assert!(latest[1].1.is_none(), "b has not been sampled");
        a.store(record(vec![series("fast", "a", 7.0)]), false, |_| {});
        let shown = state.latest()[0].1.clone().expect("a reading");
        assert_eq!(shown.series.len(), 2);
        assert_eq!(shown.series[0].value, 7.0);
        drop(b);
        state.remove("b:1");
        assert_eq!(state.latest().len(), 1);
    }
}
