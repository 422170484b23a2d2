//! The long-running agent, wired together: the queue and its writer
//! thread, the sender, the Pushgateway pusher, the HTTP endpoint and one
//! task per target under the supervisor; reloaded on SIGHUP, stopped
//! together.
//!
//! ```text
//! target tasks (target_task.rs) ──► slots (state.rs) ──► GET /metrics (http.rs), Pushgateway (pushgateway_task.rs)
//!       │
//!       └──► records ──► queue writer ──► queue (disk) ──► sender ──► remote-write endpoint
//! ```
//!
//! Each target has a task of its own, so a slow or dead target never delays
//! another. Stopping goes from the sources to the sink: targets first, then
//! the writer thread (which writes what it holds), then the sender, which
//! gets a grace period to hand over what is queued.

mod http;
mod pushgateway_task;
mod self_metrics_task;
mod signals;
mod state;
mod supervisor;
mod target_task;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{Overrides, RemoteWriteSettings, Settings};
use crate::delivery::DeliveryStatus;
use crate::pushgateway::Pushgateway;
use crate::queue::{Queue, Writer, WriterThread};
use crate::remote_write::sender::Sender;
use crate::secret::redact_url;
use crate::self_metrics::SelfMetrics;
use crate::series::{TargetLabels, target_labels};
use crate::wal::{DiskQueue, WalSettings};
use signals::Signals;
use state::{AgentState, Destination};
use supervisor::Supervisor;

/// How long a stopping agent keeps trying to hand queued samples over.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs until SIGINT or SIGTERM; SIGHUP reloads the configuration.
pub async fn run(settings: Settings, overrides: Overrides) -> anyhow::Result<()> {
    info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %overrides
            .config
            .as_ref()
            .map_or("none (flags and defaults)".to_owned(), |p| p.display().to_string()),
        state_dir = %settings.state_dir.display(),
        targets = settings.targets.len(),
        "redpush {} starting",
        env!("CARGO_PKG_VERSION")
    );
    if settings.remote_write.is_none() && settings.pushgateway.is_none() {
        info!("no push destination set: serving /metrics only");
    }
    let mut signals = Signals::register()?;
    let metrics = Arc::new(SelfMetrics::default());
    let remote_write = match &settings.remote_write {
        Some(rw) => Some(RemoteWrite::start(&settings, rw, &metrics)?),
        None => None,
    };
    let queue = remote_write.as_ref().map(|rw| rw.queue.clone());
    let pushgateway_status = Arc::new(DeliveryStatus::default());
    let destinations = (
        remote_write.as_ref().map(|rw| Destination {
            url: redact_url(&rw.settings.endpoint.url),
            status: rw.status.clone(),
        }),
        settings.pushgateway.as_ref().map(|pg| Destination {
            url: redact_url(&pg.endpoint.url),
            status: pushgateway_status.clone(),
        }),
    );
    let state = Arc::new(
        AgentState::new(metrics.clone(), queue)
            .with_destinations(destinations.0, destinations.1)
            .with_ready_timeout(settings.http.ready_delivery_timeout),
    );
    let (shutdown_tx, shutdown) = watch::channel(false);
    let http = serve_http(&settings, state.clone(), shutdown.clone()).await?;
    for t in settings
        .targets
        .iter()
        .filter(|t| t.tls.as_ref().is_some_and(|tls| tls.insecure_skip_verify))
    {
        warn!(
            instance = t.instance,
            "insecure_skip_verify: the server's TLS certificate is not checked"
        );
    }

    let mut helpers = Vec::new();
    if let Some(rw) = &remote_write {
        helpers.push(tokio::spawn(self_metrics_task::run(
            self_labels(&settings),
            settings.intervals.interval,
            metrics.clone(),
            rw.queue.clone(),
            rw.writer.clone(),
            shutdown.clone(),
        )));
    }
    if let Some(pg) = &settings.pushgateway {
        let pushgateway = Pushgateway::new(pg.clone()).context("pushgateway")?;
        info!(
            "pushing to {} (Pushgateway) every {:?}",
            redact_url(&pg.endpoint.url),
            pg.interval
        );
        helpers.push(tokio::spawn(pushgateway_task::run(
            pushgateway,
            agent_instance(),
            state.clone(),
            metrics.clone(),
            pushgateway_status,
            shutdown.clone(),
        )));
    }

    let writer = remote_write.as_ref().map(|rw| rw.writer.clone());
    let mut supervisor = Supervisor::new(state, writer, shutdown);
    supervisor.run(settings, &overrides, &mut signals).await;

    info!("stopping");
    let _ = shutdown_tx.send(true);
    supervisor.wait().await;
    for task in helpers {
        let _ = task.await;
    }
    if let Some(rw) = remote_write {
        rw.finish().await;
    }
    let _ = http.await;
    Ok(())
}

/// Binds the agent's endpoint and serves it until shutdown.
async fn serve_http(
    settings: &Settings,
    state: Arc<AgentState>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let access = http::Access::new(&settings.http)?;
    let tls = http::tls_acceptor(&settings.http)?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {} (listen / --listen)", settings.listen))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!("serving {scheme}://{}/metrics", settings.listen);
    Ok(tokio::spawn(http::serve(
        listener, state, access, tls, shutdown,
    )))
}

/// Remote write's side of the agent: the queue, the thread that writes to
/// it, and the sender that drains it.
struct RemoteWrite {
    settings: RemoteWriteSettings,
    status: Arc<DeliveryStatus>,
    queue: Arc<dyn Queue>,
    /// The agent's own handle on the writer thread; the targets have theirs.
    writer: Writer,
    writer_thread: WriterThread,
    sender: JoinHandle<()>,
    /// The sender stops last, once everything the targets read is queued.
    stop_sender: watch::Sender<bool>,
}

impl RemoteWrite {
    fn start(
        settings: &Settings,
        rw: &RemoteWriteSettings,
        metrics: &Arc<SelfMetrics>,
    ) -> anyhow::Result<RemoteWrite> {
        let queue = open_queue(settings, rw, metrics.clone())?;
        let (writer, writer_thread) = Writer::start(queue.clone(), metrics.clone())
            .context("cannot start the queue's writer thread")?;
        let sender = Sender::new(rw.clone(), metrics.clone()).context("remote_write")?;
        let status = sender.status();
        info!("pushing to {} (remote write)", redact_url(&rw.endpoint.url));
        let (stop_sender, stop) = watch::channel(false);
        let drained = queue.clone();
        let sender = tokio::spawn(async move { sender.run(drained, stop).await });
        Ok(RemoteWrite {
            settings: rw.clone(),
            status,
            queue,
            writer,
            writer_thread,
            sender,
            stop_sender,
        })
    }

    /// Once every target has stopped: the writer thread writes what it
    /// holds and ends, then the sender gets `SHUTDOWN_GRACE` to deliver.
    async fn finish(self) {
        drop(self.writer);
        let thread = self.writer_thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        let _ = self.stop_sender.send(true);
        if tokio::time::timeout(SHUTDOWN_GRACE, self.sender)
            .await
            .is_err()
        {
            warn!(
                "the receiver did not take the remaining samples within {SHUTDOWN_GRACE:?}; they stay queued on disk"
            );
        }
    }
}

/// Opens the on-disk queue under `state_dir/wal`.
fn open_queue(
    settings: &Settings,
    rw: &RemoteWriteSettings,
    metrics: Arc<SelfMetrics>,
) -> anyhow::Result<Arc<dyn Queue>> {
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
