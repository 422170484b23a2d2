//! Where the agent pushes, over reloads: remote write (the queue, the
//! thread that writes to it, the sender that drains it, the agent's own
//! series) and the Pushgateway pusher.
//!
//! A reload is prepared first and applied after: everything that can fail
//! (a client that cannot be built, a queue that cannot be opened) fails in
//! `prepare`, which changes nothing, so a bad reload keeps the running
//! destinations. Applying then cannot fail:
//! - remote write's endpoint changed: the sender is replaced; the queue and
//!   its writer stay, so nothing queued is lost. The old sender is stopped
//!   between two awaits: a batch it had not had acknowledged is not, and
//!   the new one sends it again (at least once, as after a crash).
//! - remote write added or removed: the queue is opened or closed, and the
//!   targets must be restarted with the new writer (`writer_changed`),
//!   before the old queue is closed, since they hold its writer.
//! - the Pushgateway changed, added or removed: its pusher is restarted.
//!
//! `[queue]` and `state_dir` changes are not applied (the supervisor says
//! so): the queue is open.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::pushgateway_task;
use super::self_metrics_task;
use super::state::{AgentState, Destination};
use crate::config::{PushgatewaySettings, RemoteWriteSettings, Settings};
use crate::delivery::DeliveryStatus;
use crate::pushgateway::Pushgateway;
use crate::queue::{Queue, Writer, WriterThread};
use crate::remote_write::sender::Sender;
use crate::secret::redact_url;
use crate::self_metrics::SelfMetrics;
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
    /// A new sender for the open queue.
    Sender(Box<(RemoteWriteSettings, Sender)>),
    /// A queue opened now (remote write added).
    Open(Box<RemoteWrite>),
    Close,
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
        // sender started) last, when nothing after it can fail.
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
        let remote_write =
            match (&self.remote_write, &new.remote_write) {
                (None, None) => Change::Keep,
                (Some(_), None) => Change::To(RemoteWriteChange::Close),
                (None, Some(rw)) => Change::To(RemoteWriteChange::Open(Box::new(
                    RemoteWrite::open(new, rw, &self.metrics)?,
                ))),
                (Some(running), Some(rw)) if running.settings == *rw => Change::Keep,
                (Some(_), Some(rw)) => {
                    let sender =
                        Sender::new(rw.clone(), self.metrics.clone()).context("remote_write")?;
                    Change::To(RemoteWriteChange::Sender(Box::new((rw.clone(), sender))))
                }
            };
        Ok(Prepared {
            remote_write,
            pushgateway,
        })
    }

    /// Whether applying `prepared` changes the queue's writer: the targets
    /// must then be restarted with [`Destinations::writer`] before
    /// [`Destinations::apply`] closes the old queue.
    pub(super) fn writer_changes(prepared: &Prepared) -> bool {
        matches!(
            prepared.remote_write,
            Change::To(RemoteWriteChange::Open(_) | RemoteWriteChange::Close)
        )
    }

    /// Applies a prepared reload (see the module's rules). When the writer
    /// changes, the new one is in place when this returns.
    pub(super) async fn apply(&mut self, prepared: Prepared, settings: &Settings) {
        let closed = match prepared.remote_write {
            Change::To(RemoteWriteChange::Close) => self.remote_write.take(),
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
            info!("remote write removed: the queue is closed, what it holds stays on disk");
            self.state.set_remote_write(None, None);
            rw.finish().await;
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
            Change::To(RemoteWriteChange::Sender(new)) => {
                let (rw_settings, sender) = *new;
                if let Some(rw) = &mut self.remote_write {
                    info!(
                        "remote write changed: now pushing to {}; the queue is kept",
                        redact_url(&rw_settings.endpoint.url)
                    );
                    rw.replace_sender(rw_settings, sender).await;
                    self.state
                        .set_remote_write(Some(rw.destination()), Some(rw.queue.clone()));
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
        info!(
            "pushing to {} (remote write)",
            redact_url(&rw.settings.endpoint.url)
        );
        rw.start_own_metrics(settings, &self.metrics);
        self.state
            .set_remote_write(Some(rw.destination()), Some(rw.queue.clone()));
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
    /// sender gets `SHUTDOWN_GRACE` to deliver.
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
/// it, the sender that drains it, and the task that queues the agent's own
/// series.
struct RemoteWrite {
    settings: RemoteWriteSettings,
    status: Arc<DeliveryStatus>,
    queue: Arc<dyn Queue>,
    /// The agent's own handle on the writer thread; the targets have theirs.
    writer: Writer,
    writer_thread: WriterThread,
    sender: Task,
    own_metrics: Option<Task>,
}

impl RemoteWrite {
    fn open(
        settings: &Settings,
        rw: &RemoteWriteSettings,
        metrics: &Arc<SelfMetrics>,
    ) -> anyhow::Result<RemoteWrite> {
        let sender = Sender::new(rw.clone(), metrics.clone()).context("remote_write")?;
        let queue = open_queue(settings, rw, metrics.clone())?;
        let (writer, writer_thread) = Writer::start(queue.clone(), metrics.clone())
            .context("cannot start the queue's writer thread")?;
        let status = sender.status();
        let drained = queue.clone();
        Ok(RemoteWrite {
            settings: rw.clone(),
            status,
            queue,
            writer,
            writer_thread,
            sender: Task::spawn(|stop| async move { sender.run(drained, stop).await }),
            own_metrics: None,
        })
    }

    fn start_own_metrics(&mut self, settings: &Settings, metrics: &Arc<SelfMetrics>) {
        let labels = self_labels(settings);
        let interval = settings.intervals.interval;
        let (metrics, queue, writer) = (metrics.clone(), self.queue.clone(), self.writer.clone());
        self.own_metrics = Some(Task::spawn(|stop| {
            self_metrics_task::run(labels, interval, metrics, queue, writer, stop)
        }));
    }

    fn destination(&self) -> Destination {
        Destination {
            url: redact_url(&self.settings.endpoint.url),
            status: self.status.clone(),
        }
    }

    /// Stops the running sender at its next await and starts `sender` on
    /// the same queue.
    async fn replace_sender(&mut self, settings: RemoteWriteSettings, sender: Sender) {
        let drained = self.queue.clone();
        let status = sender.status();
        let new = Task::spawn(|stop| async move { sender.run(drained, stop).await });
        let old = std::mem::replace(&mut self.sender, new);
        // Not `stop`: a stopping sender drains the whole queue first.
        old.handle.abort();
        if tokio::time::timeout(REPLACE_GRACE, old.handle)
            .await
            .is_err()
        {
            warn!("the replaced remote-write sender did not stop within {REPLACE_GRACE:?}");
        }
        self.settings = settings;
        self.status = status;
    }

    /// Once every target has stopped: the writer thread writes what it
    /// holds and ends, then the sender gets `SHUTDOWN_GRACE` to deliver.
    async fn finish(self) {
        if let Some(task) = self.own_metrics {
            task.stop().await;
        }
        drop(self.writer);
        let thread = self.writer_thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        let _ = self.sender.stop.send(true);
        if tokio::time::timeout(SHUTDOWN_GRACE, self.sender.handle)
            .await
            .is_err()
        {
            warn!(
                "the receiver did not take the remaining samples within {SHUTDOWN_GRACE:?}; they stay queued on disk"
            );
        }
    }
}

/// Opens the on-disk queue under `state_dir/wal`. The state directory
/// must be this user's alone (`wal/files.rs` says why).
fn open_queue(
    settings: &Settings,
    rw: &RemoteWriteSettings,
    metrics: Arc<SelfMetrics>,
) -> anyhow::Result<Arc<dyn Queue>> {
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
    // Records are kept decoded ahead of the sender so that in steady state
    // it never reads back and decodes what it just wrote. With many targets
    // the queue holds several requests' worth between two sends, and a
    // cache of only two requests overflowed: every batch was then decoded
    // from disk (a third of the agent's CPU at 1000 targets). A cached
    // sample costs 16 bytes (a shared shape and a value), and a cached
    // record is mostly the very one its target keeps as its latest reading,
    // so 100,000 samples are at most 1.6 MB.
    wal.cache_samples = (rw.max_samples_per_send * 2).max(100_000);
    let (queue, report) =
        DiskQueue::open(wal, metrics).context("queue (state_dir / --state-dir)")?;
    let stats = queue.stats();
    if stats.records > 0 {
        info!(
            records = stats.records,
            samples = stats.samples,
            segments = report.segments,
            "resuming with queued samples from an earlier run; they are sent first"
        );
    }
    Ok(Arc::new(queue))
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
