//! Where the agent pushes, over reloads: remote write (the queue, the
//! thread that writes to it, the sender that drains it, the agent's own
//! series) and the Pushgateway pusher.
//!
//! A reload is prepared first and applied after: everything that can fail
//! (a client that cannot be built, a queue that cannot be opened) fails in
//! `prepare`, which changes nothing, so a bad reload keeps the running
//! destinations. Applying then cannot fail:
//! - a remote-write endpoint's settings changed (same name): its sender is
//!   replaced; the queue and its writer stay, so nothing queued is lost.
//!   The old sender is stopped between two awaits: a batch it had not had
//!   acknowledged is not, and the new one sends it again (at least once,
//!   as after a crash).
//! - remote write added or removed: the queue is opened or closed, and the
//!   targets must be restarted with the new writer (`writer_changes`),
//!   before the old queue is closed, since they hold its writer.
//! - the set of endpoints changed (one added, removed or renamed): the
//!   queue is closed and opened again with the new endpoints as its
//!   readers (the targets restarted around it, as above). An endpoint kept
//!   resumes at its own position; a new one starts where the reader
//!   furthest behind was (so renaming the only endpoint carries on where
//!   it was, and an upgrade from the single `ack` file too); a removed
//!   one's position is deleted, so that what only it still needed can go.
//!
//! The queue has one reader per endpoint, named as the endpoint is.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::pushgateway_task;
use super::self_metrics_task;
use super::state::{AgentState, Destination, RemoteWriteView};
use crate::config::{PushgatewaySettings, RemoteWriteSettings, Settings};
use crate::delivery::DeliveryStatus;
use crate::pushgateway::Pushgateway;
use crate::queue::{DropReason, DroppedFor, Queue, QueueEvents, Writer, WriterThread};
use crate::remote_write::sender::Sender;
use crate::secret::redact_url;
use crate::self_metrics::{EndpointMetrics, SelfMetrics};
use crate::series::{TargetLabels, target_labels};
use crate::wal::{DiskQueue, WalSettings};

/// How long a stopping agent keeps trying to hand queued samples over.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long a replaced sender may take to reach an await.
const REPLACE_GRACE: Duration = Duration::from_secs(1);

pub(super) struct Destinations {
    metrics: Arc<SelfMetrics>,
    state: Arc<AgentState>,
    remote_write: Option<RemoteWrite>,
    /// The running pusher and the settings it runs with.
    pushgateway: Option<(PushgatewaySettings, Task)>,
}

/// A reload's new parts, built and checked; applied by [`Destinations::apply`].
pub(super) struct Prepared {
    remote_write: Change<RemoteWriteChange>,
    pushgateway: Change<Option<(PushgatewaySettings, Pushgateway)>>,
}

enum Change<T> {
    Keep,
    To(T),
}

enum RemoteWriteChange {
    /// New senders for some endpoints of the open queue, by position
    /// (`None`: the running one is kept).
    Senders(Vec<Option<EndpointStart>>),
    /// A queue opened now (remote write added).
    Open(Box<RemoteWrite>),
    /// The set of endpoints changed: the queue is opened again with these.
    Reopen(Vec<EndpointStart>),
    Close,
}

/// An endpoint's sender, built and not started yet.
struct EndpointStart {
    settings: RemoteWriteSettings,
    sender: Sender,
    metrics: Arc<EndpointMetrics>,
}

/// The queue readers of `endpoints`, in order: one per endpoint, by its
/// name (names are unique and never empty).
fn reader_names(endpoints: &[RemoteWriteSettings]) -> Vec<&str> {
    endpoints.iter().map(|e| e.name.as_str()).collect()
}

impl Destinations {
    /// Opens the queue and starts the pushers of `settings`.
    pub(super) fn start(
        settings: &Settings,
        metrics: &Arc<SelfMetrics>,
        state: &Arc<AgentState>,
    ) -> anyhow::Result<Destinations> {
        let mut destinations = Destinations {
            metrics: metrics.clone(),
            state: state.clone(),
            remote_write: None,
            pushgateway: None,
        };
        let prepared = destinations.prepare(settings)?;
        destinations.apply_now(prepared, settings);
        Ok(destinations)
    }

    /// The queue's writer, for the targets, when remote write is on.
    pub(super) fn writer(&self) -> Option<Writer> {
        self.remote_write.as_ref().map(|rw| rw.writer.clone())
    }

    /// Builds what `new` changes against what runs; fails, changing
    /// nothing, when a part cannot be built.
    pub(super) fn prepare(&self, new: &Settings) -> anyhow::Result<Prepared> {
        // The Pushgateway first: a remote write added is opened (and its
        // senders started) last, when nothing after it can fail.
        let running = self.pushgateway.as_ref().map(|(pg, _)| pg);
        let pushgateway = if running == new.pushgateway.as_ref() {
            Change::Keep
        } else {
            Change::To(match &new.pushgateway {
                None => None,
                Some(pg) => Some((
                    pg.clone(),
                    Pushgateway::new(pg.clone()).context("pushgateway")?,
                )),
            })
        };
        Ok(Prepared {
            remote_write: self.prepare_remote_write(new)?,
            pushgateway,
        })
    }

    fn prepare_remote_write(&self, new: &Settings) -> anyhow::Result<Change<RemoteWriteChange>> {
        let readers = reader_names(&new.remote_write);
        let running = self.remote_write.as_ref();
        let start = |rw: &RemoteWriteSettings| EndpointStart::build(rw, running);
        Ok(match running {
            None if new.remote_write.is_empty() => Change::Keep,
            Some(_) if new.remote_write.is_empty() => Change::To(RemoteWriteChange::Close),
            None => {
                let starts = (new.remote_write.iter())
                    .map(start)
                    .collect::<anyhow::Result<_>>()?;
                let rw = RemoteWrite::open(new, starts, &self.metrics)?;
                Change::To(RemoteWriteChange::Open(Box::new(rw)))
            }
            Some(rw) if rw.readers() != readers => {
                let starts = (new.remote_write.iter())
                    .map(start)
                    .collect::<anyhow::Result<_>>()?;
                Change::To(RemoteWriteChange::Reopen(starts))
            }
            Some(rw) => {
                let senders: Vec<Option<EndpointStart>> = (rw.endpoints.iter())
                    .zip(&new.remote_write)
                    .map(|(running, new)| {
                        (running.settings != *new).then(|| start(new)).transpose()
                    })
                    .collect::<anyhow::Result<_>>()?;
                if senders.iter().all(Option::is_none) {
                    Change::Keep
                } else {
                    Change::To(RemoteWriteChange::Senders(senders))
                }
            }
        })
    }

    /// Whether applying `prepared` changes the queue's writer: the targets
    /// must then be restarted with [`Destinations::writer`] before
    /// [`Destinations::apply`] closes the old queue.
    pub(super) fn writer_changes(prepared: &Prepared) -> bool {
        matches!(
            prepared.remote_write,
            Change::To(
                RemoteWriteChange::Open(_)
                    | RemoteWriteChange::Reopen(_)
                    | RemoteWriteChange::Close
            )
        )
    }

    /// Applies a prepared reload (see the module's rules). When the writer
    /// changes, the new one is in place when this returns.
    pub(super) async fn apply(&mut self, prepared: Prepared, settings: &Settings) {
        let closed = match prepared.remote_write {
            Change::To(RemoteWriteChange::Close | RemoteWriteChange::Reopen(_)) => {
                self.remote_write.take()
            }
            _ => None,
        };
        let pushgateway = match prepared.pushgateway {
            Change::To(_) => self.pushgateway.take(),
            Change::Keep => None,
        };
        if let Some((_, task)) = pushgateway {
            task.stop().await;
        }
        if let Some(rw) = closed {
            self.state.set_remote_write(Vec::new());
            if matches!(prepared.remote_write, Change::To(RemoteWriteChange::Close)) {
                info!("remote write removed: the queue is closed, what it holds stays on disk");
                self.metrics.set_endpoints(Vec::new());
                rw.finish().await;
            } else {
                rw.close().await;
            }
        }
        self.apply_rest(prepared.remote_write, prepared.pushgateway, settings)
            .await;
    }

    /// [`Destinations::apply`] at start, where nothing runs yet.
    fn apply_now(&mut self, prepared: Prepared, settings: &Settings) {
        if let Change::To(RemoteWriteChange::Open(rw)) = prepared.remote_write {
            self.open(*rw, settings);
        }
        if let Change::To(Some((pg, client))) = prepared.pushgateway {
            self.start_pushgateway(pg, client);
        }
    }

    async fn apply_rest(
        &mut self,
        remote_write: Change<RemoteWriteChange>,
        pushgateway: Change<Option<(PushgatewaySettings, Pushgateway)>>,
        settings: &Settings,
    ) {
        match remote_write {
            Change::To(RemoteWriteChange::Open(rw)) => self.open(*rw, settings),
            Change::To(RemoteWriteChange::Reopen(starts)) => {
                info!("remote-write endpoints changed: the queue is opened again with them");
                match RemoteWrite::open(settings, starts, &self.metrics) {
                    Ok(rw) => self.open(rw, settings),
                    Err(e) => error!(
                        "remote write stopped: the queue could not be opened again: {e:#}; \
                         what it holds stays on disk, a reload tries again"
                    ),
                }
            }
            Change::To(RemoteWriteChange::Senders(senders)) => {
                if let Some(rw) = &mut self.remote_write {
                    rw.replace_senders(senders).await;
                    self.metrics.set_endpoints(rw.metrics());
                    self.state.set_remote_write(rw.views());
                }
            }
            Change::To(RemoteWriteChange::Close) | Change::Keep => {}
        }
        match pushgateway {
            Change::To(Some((pg, client))) => self.start_pushgateway(pg, client),
            Change::To(None) => {
                self.state.set_pushgateway(None);
            }
            Change::Keep => {}
        }
    }

    fn open(&mut self, mut rw: RemoteWrite, settings: &Settings) {
        for endpoint in &rw.endpoints {
            info!(
                "pushing to {} (remote write {})",
                redact_url(&endpoint.settings.endpoint.url),
                endpoint.settings.name
            );
        }
        self.metrics.set_endpoints(rw.metrics());
        self.state.set_remote_write(rw.views());
        rw.start_own_metrics(settings, &self.state);
        self.remote_write = Some(rw);
    }

    fn start_pushgateway(&mut self, pg: PushgatewaySettings, client: Pushgateway) {
        info!(
            "pushing to {} (Pushgateway) every {:?}",
            redact_url(&pg.endpoint.url),
            pg.interval
        );
        let status = Arc::new(DeliveryStatus::default());
        self.state.set_pushgateway(Some(Destination {
            name: None,
            url: redact_url(&pg.endpoint.url),
            status: status.clone(),
        }));
        let (state, metrics) = (self.state.clone(), self.metrics.clone());
        let task = Task::spawn(|stop| {
            pushgateway_task::run(client, agent_instance(), state, metrics, status, stop)
        });
        self.pushgateway = Some((pg, task));
    }

    /// At the agent's end, once every target has stopped: the Pushgateway
    /// pusher stops, the writer thread writes what it holds, and the
    /// senders get `SHUTDOWN_GRACE` to deliver.
    pub(super) async fn finish(self) {
        if let Some((_, task)) = self.pushgateway {
            task.stop().await;
        }
        if let Some(rw) = self.remote_write {
            rw.finish().await;
        }
    }
}

/// A task and the switch that stops it.
struct Task {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Task {
    fn spawn<F, Fut>(start: F) -> Task
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (stop, stop_rx) = watch::channel(false);
        Task {
            stop,
            handle: tokio::spawn(start(stop_rx)),
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}

/// Remote write's side of the agent: the queue, the thread that writes to
/// it, each endpoint's sender draining it through its own reader, and the
/// task that queues the agent's own series.
struct RemoteWrite {
    /// The agent's own handle on the writer thread; the targets have theirs.
    writer: Writer,
    writer_thread: WriterThread,
    /// In the configuration's order.
    endpoints: Vec<RunningEndpoint>,
    own_metrics: Option<Task>,
}

/// One endpoint's sender, running on its reader of the queue.
struct RunningEndpoint {
    settings: RemoteWriteSettings,
    status: Arc<DeliveryStatus>,
    metrics: Arc<EndpointMetrics>,
    queue: Arc<dyn Queue>,
    sender: Task,
}

impl EndpointStart {
    /// The sender of endpoint `rw`, reading the queue as its reader of the
    /// same name; it counts on in the counters of the running endpoint it
    /// replaces, if any.
    fn build(
        rw: &RemoteWriteSettings,
        running: Option<&RemoteWrite>,
    ) -> anyhow::Result<EndpointStart> {
        let metrics = running
            .and_then(|r| {
                (r.endpoints.iter())
                    .map(|e| &e.metrics)
                    .find(|m| m.is_of(&rw.name, &rw.endpoint.url))
                    .cloned()
            })
            .unwrap_or_else(|| Arc::new(EndpointMetrics::new(&rw.name, &rw.endpoint.url)));
        let sender = Sender::new(rw.clone(), metrics.clone()).with_context(|| rw.key.clone())?;
        Ok(EndpointStart {
            settings: rw.clone(),
            sender,
            metrics,
        })
    }

    /// Starts the sender on `queue`, its reader.
    fn run(self, queue: Arc<dyn Queue>) -> RunningEndpoint {
        let status = self.sender.status();
        let (sender, drained) = (self.sender, queue.clone());
        RunningEndpoint {
            settings: self.settings,
            status,
            metrics: self.metrics,
            queue,
            sender: Task::spawn(|stop| async move { sender.run(drained, stop).await }),
        }
    }
}

impl RemoteWrite {
    /// Opens the queue with a reader per endpoint of `starts` and starts
    /// their senders.
    fn open(
        settings: &Settings,
        starts: Vec<EndpointStart>,
        metrics: &Arc<SelfMetrics>,
    ) -> anyhow::Result<RemoteWrite> {
        let events = Arc::new(QueueCounters {
            agent: metrics.clone(),
            endpoints: starts.iter().map(|s| s.metrics.clone()).collect(),
        });
        let readers = starts.iter().map(|s| s.settings.name.clone()).collect();
        let most_per_send = starts.iter().map(|s| s.settings.max_samples_per_send).max();
        let queue = open_queue(
            settings,
            readers,
            most_per_send.unwrap_or(0),
            events.clone(),
        )?;
        let endpoints: Vec<RunningEndpoint> = starts
            .into_iter()
            .map(|start| {
                let reader = queue
                    .reader(&start.settings.name)
                    .expect("opened with this reader");
                start.run(Arc::new(reader))
            })
            .collect();
        // Written through any reader's view, a record is there for all.
        let (writer, writer_thread) = Writer::start(Arc::new(queue), events)
            .context("cannot start the queue's writer thread")?;
        Ok(RemoteWrite {
            writer,
            writer_thread,
            endpoints,
            own_metrics: None,
        })
    }

    /// The queue's readers, in the endpoints' order.
    fn readers(&self) -> Vec<&str> {
        self.endpoints
            .iter()
            .map(|e| e.settings.name.as_str())
            .collect()
    }

    fn metrics(&self) -> Vec<Arc<EndpointMetrics>> {
        self.endpoints.iter().map(|e| e.metrics.clone()).collect()
    }

    fn views(&self) -> Vec<RemoteWriteView> {
        (self.endpoints.iter())
            .map(|e| RemoteWriteView {
                destination: Destination {
                    name: Some(e.settings.name.clone()),
                    url: redact_url(&e.settings.endpoint.url),
                    status: e.status.clone(),
                },
                metrics: e.metrics.clone(),
                queue: e.queue.clone(),
            })
            .collect()
    }

    fn start_own_metrics(&mut self, settings: &Settings, state: &Arc<AgentState>) {
        let labels = self_labels(settings);
        let interval = settings.intervals.interval;
        let (state, writer) = (state.clone(), self.writer.clone());
        self.own_metrics = Some(Task::spawn(|stop| {
            self_metrics_task::run(labels, interval, state, writer, stop)
        }));
    }

    /// Stops each running sender that `senders` replaces at its next await
    /// and starts the new one on the same reader.
    async fn replace_senders(&mut self, senders: Vec<Option<EndpointStart>>) {
        for (running, new) in self.endpoints.iter_mut().zip(senders) {
            let Some(new) = new else { continue };
            info!(
                "remote write {} changed: now pushing to {}; the queue is kept",
                new.settings.name,
                redact_url(&new.settings.endpoint.url)
            );
            let old = std::mem::replace(running, new.run(running.queue.clone()));
            old.abort().await;
        }
    }

    /// Once every target has stopped: the writer thread writes what it
    /// holds and ends, then the senders get `SHUTDOWN_GRACE` to deliver.
    async fn finish(self) {
        let endpoints = self.stop_writing().await;
        for e in &endpoints {
            let _ = e.sender.stop.send(true);
        }
        // One grace for all: the senders drain at the same time.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for e in endpoints {
            if tokio::time::timeout_at(deadline, e.sender.handle)
                .await
                .is_err()
            {
                warn!(
                    "remote write {}: the receiver did not take the remaining samples within {SHUTDOWN_GRACE:?}; they stay queued on disk",
                    e.settings.name
                );
            }
        }
    }

    /// Closes the queue to open it again: the writer thread writes what it
    /// holds, the senders stop at their next await (what they had not had
    /// acknowledged is sent again after).
    async fn close(self) {
        for endpoint in self.stop_writing().await {
            endpoint.abort().await;
        }
    }

    /// Stops the agent's own series and the writer thread, once it has
    /// written everything handed to it; gives back the senders.
    async fn stop_writing(self) -> Vec<RunningEndpoint> {
        if let Some(task) = self.own_metrics {
            task.stop().await;
        }
        drop(self.writer);
        let thread = self.writer_thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        self.endpoints
    }
}

impl RunningEndpoint {
    /// Stops the sender at its next await. Not `Task::stop`: a stopping
    /// sender drains the whole queue first.
    async fn abort(self) {
        self.sender.handle.abort();
        if tokio::time::timeout(REPLACE_GRACE, self.sender.handle)
            .await
            .is_err()
        {
            warn!(
                "the remote-write sender of {} did not stop within {REPLACE_GRACE:?}",
                self.settings.name
            );
        }
    }
}

/// Opens the on-disk queue under `state_dir/wal` with `readers`, and the
/// events that count its drops (the agent's counters, whose endpoints are
/// `starts`' from now on). The state directory must be this user's alone
/// (`wal/files.rs` says why).
fn open_queue(
    settings: &Settings,
    readers: Vec<String>,
    most_per_send: usize,
    events: Arc<QueueCounters>,
) -> anyhow::Result<DiskQueue> {
    crate::wal::private_dir(&settings.state_dir, true).with_context(|| {
        format!(
            "state_dir {} (state_dir / --state-dir)",
            settings.state_dir.display()
        )
    })?;
    let mut wal = WalSettings::new(
        settings.state_dir.join("wal"),
        settings.queue.max_disk_bytes,
        settings.queue.max_age,
        settings.queue.fsync,
    );
    // Records are kept decoded ahead of each sender so that in steady state
    // it never reads back and decodes what it just wrote. With many targets
    // the queue holds several requests' worth between two sends, and a
    // cache of only two requests overflowed: every batch was then decoded
    // from disk (a third of the agent's CPU at 1000 targets). A cached
    // sample costs 16 bytes (a shared shape and a value), and a cached
    // record is mostly the very one its target keeps as its latest reading
    // (and the other readers' caches), so 100,000 samples are at most 1.6 MB.
    wal.cache_samples = (most_per_send * 2).max(100_000);
    wal.readers = readers;
    let (queue, report) =
        DiskQueue::open(wal, events).context("queue (state_dir / --state-dir)")?;
    let stats = queue.stats();
    if stats.records > 0 {
        info!(
            records = stats.records,
            samples = stats.samples,
            segments = report.segments,
            "resuming with queued samples from an earlier run; they are sent first"
        );
    }
    Ok(queue)
}

/// Where the queue's troubles are counted: a reader's drops as its
/// endpoint's, a failed write as the agent's.
struct QueueCounters {
    agent: Arc<SelfMetrics>,
    endpoints: Vec<Arc<EndpointMetrics>>,
}

impl QueueEvents for QueueCounters {
    fn dropped(&self, by: DroppedFor<'_>, reason: DropReason, samples: u64) {
        for endpoint in &self.endpoints {
            endpoint.dropped_for(by, reason, samples);
        }
    }

    fn write_failed(&self) {
        self.agent.write_failed();
    }
}

/// The labels of the agent's own pushed series.
fn self_labels(settings: &Settings) -> Arc<TargetLabels> {
    let instance = agent_instance();
    let base = [
        ("job", settings.job.as_str()),
        ("instance", instance.as_str()),
    ];
    target_labels(
        base.into_iter().chain(
            settings
                .external_labels
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        ),
    )
}

/// The agent's own `instance` label: the host name, which tells agents apart.
fn agent_instance() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "redpush".to_owned())
}
