//! The long-running agent: one sampling task per target, the sender, the
//! Pushgateway pusher and the HTTP endpoint, wired together, reloaded on
//! SIGHUP and stopped together.
//!
//! ```text
//! target tasks (adaptive interval each) ──► latest readings ──► GET /metrics, Pushgateway
//!       │
//!       └──► stale markers + series ──► queue (disk) ──► sender ──► remote-write endpoint
//! ```
//!
//! Each target has a task of its own, so a slow or dead target never delays
//! another. The set of targets can change at run time (`Supervisor::apply`):
//! a removed target's series get their stale markers, and the queue, shared
//! by all targets, keeps whatever it holds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{error, info, warn};

use crate::config::{Overrides, RemoteWriteSettings, Settings, TargetSettings};
use crate::discovery::Discovered;
use crate::metrics::Families;
use crate::metrics::exposition::{Page, write_families, write_series};
use crate::pushgateway::Pushgateway;
use crate::queue::{Queue, QueueStats, Record, Writer};
use crate::remote_write::sender::{Sender, now_ms};
use crate::schedule::{Bounds, Controller, first_gap};
use crate::self_metrics::SelfMetrics;
use crate::series::{Flattener, Series, TargetLabels, flatten, target_labels};
use crate::stale::{StaleTracker, is_stale_marker};
use crate::target::Target;
use crate::wal::{DiskQueue, WalSettings};

/// How long a stopping agent keeps trying to hand queued samples over.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the HTTP endpoint and the Pushgateway pusher read: the latest
/// reading of every target (in configuration order) and the agent's own
/// counters.
pub struct AgentState {
    /// Each target's slot. A target's task holds its own slot and stores
    /// its readings there, so a sample locks one slot, not the list: a
    /// search of the list by instance on every sample was a twentieth of
    /// the agent's CPU at 1000 targets.
    targets: Mutex<Vec<(String, Arc<Slot>)>>,
    metrics: Arc<SelfMetrics>,
    queue: Option<Arc<dyn Queue>>,
}

impl AgentState {
    pub fn new(metrics: Arc<SelfMetrics>, queue: Option<Arc<dyn Queue>>) -> Self {
        AgentState {
            targets: Mutex::new(Vec::new()),
            metrics,
            queue,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Arc<Slot>)>> {
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a target (empty until its first sample), keeping the order
    /// of the configuration; returns the slot its task stores readings in.
    fn add(&self, instance: &str, position: usize) -> Arc<Slot> {
        let mut targets = self.lock();
        if let Some((_, slot)) = targets.iter().find(|(i, _)| i == instance) {
            return slot.clone();
        }
        let slot = Arc::new(Slot::default());
        let at = position.min(targets.len());
        targets.insert(at, (instance.to_owned(), slot.clone()));
        slot
    }

    fn remove(&self, instance: &str) {
        self.lock().retain(|(i, _)| i != instance);
    }

    /// The latest reading of every target (none before its first sample):
    /// shared, except after an incomplete reading, which is overlaid on the
    /// last complete one here (when a page is asked for, not on every
    /// sample).
    pub fn latest(&self) -> Vec<(String, Option<Arc<Record>>)> {
        let targets = self.lock().clone();
        targets
            .into_iter()
            .map(|(instance, slot)| {
                let latest = slot.lock().clone();
                let record = match (latest.current, latest.complete) {
                    (Some(current), Some(complete)) if !Arc::ptr_eq(&current, &complete) => {
                        Some(Arc::new(Record {
                            series: overlaid(&current.series, &complete.series),
                            ..Record::clone(&current)
                        }))
                    }
                    (current, _) => current,
                };
                (instance, record)
            })
            .collect()
    }

    fn queue_stats(&self) -> QueueStats {
        self.queue.as_ref().map(|q| q.stats()).unwrap_or_default()
    }

    pub fn self_families(&self) -> Families {
        self.metrics.families(self.queue_stats(), now_ms())
    }

    /// The `/metrics` page, to be written a piece at a time, and the
    /// agent's own metrics that end it. With one target the series carry no
    /// `instance` label, exactly as the exporter prints them (the scraper
    /// adds its own); with several, each series carries its target's
    /// `instance`.
    pub fn page(&self) -> (Page, String) {
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

    /// The whole `/metrics` page at once.
    pub fn render(&self) -> String {
        let (mut page, own) = self.page();
        let mut out = String::new();
        while page.write_next(&mut out, usize::MAX) {}
        out.push_str(&own);
        out
    }
}

/// A target's latest reading and its latest complete one (the same one
/// unless the latest is incomplete).
#[derive(Clone, Default)]
struct Latest {
    current: Option<Arc<Record>>,
    complete: Option<Arc<Record>>,
}

/// Where one target's task leaves its readings for the page and the
/// Pushgateway.
#[derive(Default)]
struct Slot(Mutex<Latest>);

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Latest> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a target's new reading: the record it pushed (stale markers
    /// included, which the page leaves out).
    fn store(&self, record: Arc<Record>, complete: bool) {
        let mut latest = self.lock();
        if complete {
            latest.complete = Some(record.clone());
        }
        latest.current = Some(record);
    }
}

/// What a target looks like after an incomplete reading (see `Sampler`):
/// its series, then those of the last complete reading whose families it
/// lacks (the detail families stay standing). Stale markers left out.
fn overlaid(current: &[Series], complete: &[Series]) -> Vec<Series> {
    let live = |s: &&Series| !is_stale_marker(s.value);
    let names: std::collections::HashSet<&str> = current
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

/// A running target task and what it was started with.
struct Running {
    settings: TargetSettings,
    base_labels: Vec<(String, String)>,
    removed: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Starts, stops and restarts target tasks to match the configuration.
struct Supervisor {
    running: BTreeMap<String, Running>,
    state: Arc<AgentState>,
    /// Where targets hand their records, when the agent pushes by remote write.
    writer: Option<Writer>,
    shutdown: watch::Receiver<bool>,
}

impl Supervisor {
    /// Makes the running targets those of `settings`: new ones start,
    /// missing ones stop (with stale markers for their series), changed ones
    /// restart. Unchanged ones keep running undisturbed.
    async fn apply(&mut self, settings: &Settings) {
        let mut wanted = BTreeMap::new();
        for (position, t) in settings.targets.iter().enumerate() {
            let target = Target::new(settings, t.clone());
            wanted.insert(t.instance.clone(), (position, target));
        }
        let gone: Vec<String> = self
            .running
            .iter()
            .filter(|(instance, running)| {
                wanted.get(*instance).is_none_or(|(_, target)| {
                    running.settings != *target.settings()
                        || running.base_labels != target.base_labels()
                })
            })
            .map(|(instance, _)| instance.clone())
            .collect();
        for instance in gone {
            if let Some(running) = self.running.remove(&instance) {
                let restarting = wanted.contains_key(&instance);
                info!(
                    instance,
                    "{}",
                    if restarting {
                        "target changed: restarting it"
                    } else {
                        "target removed"
                    }
                );
                let _ = running.removed.send(true);
                let _ = running.task.await;
            }
        }
        for (instance, (position, target)) in wanted {
            if self.running.contains_key(&instance) {
                continue;
            }
            let t = target.settings();
            info!(
                instance,
                interval = ?t.intervals.interval,
                adaptive = t.adaptive,
                "sampling"
            );
            let slot = self.state.add(&instance, position);
            let (removed, removed_rx) = watch::channel(false);
            let running = Running {
                settings: t.clone(),
                base_labels: target.base_labels().to_vec(),
                removed,
                task: tokio::spawn(run_target(
                    target,
                    self.state.clone(),
                    slot,
                    self.writer.clone(),
                    self.shutdown.clone(),
                    removed_rx,
                )),
            };
            self.running.insert(instance, running);
        }
    }

    /// Waits for every target task to end; drops the supervisor's writer.
    async fn wait(self) {
        for (_, running) in self.running {
            let _ = running.task.await;
        }
    }
}

/// Runs until SIGINT or SIGTERM; SIGHUP reloads the configuration.
pub async fn run(settings: Settings, overrides: Overrides) -> anyhow::Result<()> {
    let mut signals = Signals::register()?;
    let metrics = Arc::new(SelfMetrics::default());
    let queue: Option<Arc<dyn Queue>> = match &settings.remote_write {
        Some(rw) => Some(open_queue(&settings, rw, metrics.clone())?),
        None => None,
    };
    let state = Arc::new(AgentState::new(metrics.clone(), queue.clone()));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // The sender stops last, once everything the targets read is queued.
    let (sender_stop_tx, sender_stop_rx) = watch::channel(false);
    let (writer, writer_thread) = match &queue {
        Some(queue) => {
            let (writer, thread) = Writer::start(queue.clone(), metrics.clone())
                .context("cannot start the queue's writer thread")?;
            (Some(writer), Some(thread))
        }
        None => (None, None),
    };

    let access = crate::http::Access::new(&settings.http)?;
    let tls = crate::http::tls_acceptor(&settings.http)?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {} (listen / --listen)", settings.listen))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!("serving {scheme}://{}/metrics", settings.listen);
    let http = tokio::spawn(crate::http::serve(
        listener,
        state.clone(),
        access,
        tls,
        shutdown_rx.clone(),
    ));
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
    let sender = match (&settings.remote_write, &queue, &writer) {
        (Some(rw), Some(queue), Some(writer)) => {
            let sender = Sender::new(rw.clone(), metrics.clone()).context("remote_write")?;
            info!("pushing to {} (remote write)", redact_url(&rw.url));
            helpers.push(tokio::spawn(run_self_metrics(
                self_labels(&settings),
                settings.intervals.interval,
                metrics.clone(),
                queue.clone(),
                writer.clone(),
                shutdown_rx.clone(),
            )));
            let queue = queue.clone();
            Some(tokio::spawn(async move {
                sender.run(queue, sender_stop_rx).await
            }))
        }
        _ => None,
    };
    if let Some(pg) = &settings.pushgateway {
        let pushgateway = Pushgateway::new(pg.clone()).context("pushgateway")?;
        info!(
            "pushing to {} (Pushgateway) every {:?}",
            redact_url(&pg.url),
            pg.interval
        );
        helpers.push(tokio::spawn(run_pushgateway(
            pushgateway,
            state.clone(),
            metrics.clone(),
            shutdown_rx.clone(),
        )));
    }

    let mut supervisor = Supervisor {
        running: BTreeMap::new(),
        state: state.clone(),
        writer,
        shutdown: shutdown_rx.clone(),
    };
    // Cluster seeds report their nodes here; the supervisor then samples the
    // nodes in place of the seed.
    let (found_tx, mut found_rx) = mpsc::channel::<Discovered>(16);
    let mut discovery = Discovery::start(&settings, &found_tx);
    let mut discovered: BTreeMap<String, Vec<TargetSettings>> = BTreeMap::new();
    supervisor
        .apply(&with_discovered(&settings, &discovered))
        .await;

    let mut current = settings;
    loop {
        tokio::select! {
            signal = signals.next() => match signal {
                Signal::Stop => break,
                Signal::Reload => match Settings::load(&overrides) {
                    Ok(new) => {
                        info!("reloading the configuration");
                        warn_about_restart_only_changes(&current, &new);
                        discovery.stop().await;
                        discovered.retain(|seed, _| {
                            new.targets.iter().any(|t| (t.cluster || t.sentinel_discovery) && t.instance == *seed)
                        });
                        discovery = Discovery::start(&new, &found_tx);
                        supervisor.apply(&with_discovered(&new, &discovered)).await;
                        current = new;
                    }
                    Err(e) => error!("reload failed, keeping the running configuration: {e}"),
                },
            },
            Some((seed, nodes)) = found_rx.recv() => {
                discovered.insert(seed, nodes);
                supervisor.apply(&with_discovered(&current, &discovered)).await;
            }
        }
    }
    discovery.stop().await;

    info!("stopping");
    let _ = shutdown_tx.send(true);
    supervisor.wait().await;
    for task in helpers {
        let _ = task.await;
    }
    // Every writer is gone with its task: the thread writes what it holds and ends.
    if let Some(thread) = writer_thread {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    let _ = sender_stop_tx.send(true);
    if let Some(sender) = sender
        && tokio::time::timeout(SHUTDOWN_GRACE, sender).await.is_err()
    {
        warn!(
            "the receiver did not take the remaining samples within {SHUTDOWN_GRACE:?}; they stay queued on disk"
        );
    }
    let _ = http.await;
    Ok(())
}

/// The settings with every discovered cluster seed replaced by its nodes
/// (a seed not discovered yet is sampled as it is). An instance listed twice
/// is sampled once.
fn with_discovered(
    settings: &Settings,
    discovered: &BTreeMap<String, Vec<TargetSettings>>,
) -> Settings {
    let mut targets: Vec<TargetSettings> = Vec::new();
    for t in &settings.targets {
        let expanded = match discovered.get(&t.instance) {
            Some(nodes) if t.cluster => nodes.clone(),
            // A Sentinel stays a target next to what it watches.
            Some(nodes) if t.sentinel_discovery => std::iter::once(t.clone())
                .chain(nodes.iter().cloned())
                .collect(),
            _ => vec![t.clone()],
        };
        for node in expanded {
            if !targets.iter().any(|known| known.instance == node.instance) {
                targets.push(node);
            }
        }
    }
    Settings {
        targets,
        ..settings.clone()
    }
}

/// The running cluster discovery tasks.
struct Discovery {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Discovery {
    fn start(settings: &Settings, found: &mpsc::Sender<Discovered>) -> Discovery {
        let (stop, stop_rx) = watch::channel(false);
        let tasks = settings
            .targets
            .iter()
            .filter(|t| t.cluster || t.sentinel_discovery)
            .map(|seed| {
                tokio::spawn(crate::discovery::run(
                    seed.clone(),
                    settings.metrics,
                    found.clone(),
                    stop_rx.clone(),
                ))
            })
            .collect();
        Discovery { stop, tasks }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Settings a reload cannot apply to a running agent.
fn warn_about_restart_only_changes(old: &Settings, new: &Settings) {
    let changed = [
        ("listen", old.listen != new.listen),
        ("state_dir", old.state_dir != new.state_dir),
        ("remote_write", old.remote_write != new.remote_write),
        ("pushgateway", old.pushgateway != new.pushgateway),
        ("queue", old.queue != new.queue),
        ("http", old.http != new.http),
    ];
    for (key, differs) in changed {
        if differs {
            warn!("`{key}` changed: it takes effect when redpush restarts");
        }
    }
}

async fn run_target(
    mut target: Target,
    state: Arc<AgentState>,
    slot: Arc<Slot>,
    writer: Option<Writer>,
    mut shutdown: watch::Receiver<bool>,
    mut removed: watch::Receiver<bool>,
) {
    let t = target.settings();
    let bounds = Bounds {
        base: t.intervals.interval,
        min: t.intervals.min,
        max: t.intervals.max,
    };
    let mut controller = Controller::new(bounds, t.adaptive);
    let instance = target.instance().to_owned();
    let mut stale = StaleTracker::default();
    // The last complete and the last fast reading: each reading is
    // flattened against the last one of its kind, where its series sit in
    // the same places.
    let mut last_complete: Option<Arc<Record>> = None;
    let mut last_fast: Option<Arc<Record>> = None;
    let (mut flatten_complete, mut flatten_fast) = (Flattener::default(), Flattener::default());
    let clock = Instant::now();
    let mut next = Instant::now();
    let mut first = true;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = shutdown.changed() => return,
            _ = removed.changed() => {
                // End every series of this target in the receiver now,
                // rather than five minutes from now.
                if let Some(writer) = &writer {
                    let complete = last_complete.as_ref().map_or(&[][..], |r| r.series.as_slice());
                    let series = stale.all(complete);
                    if !series.is_empty() {
                        writer.push(Arc::new(Record {
                            timestamp_ms: target.next_timestamp(),
                            target: target.labels().clone(),
                            series,
                        }));
                    }
                }
                state.remove(&instance);
                return;
            }
        }
        let tick = Instant::now();
        let reading = target.read(controller.interval()).await;
        if let Some(change) = controller.observe(tick - clock, reading.observation) {
            info!(
                instance,
                from = ?change.from,
                to = ?change.to,
                reason = %change.reason,
                "sampling interval changed"
            );
        }
        // Start to start: a slow sample does not stretch the interval, and
        // the controller lengthens it itself when samples are slow. The
        // first gap sets the target's phase, spreading many targets'
        // samples over the interval (`schedule::first_gap`).
        next = if first {
            first = false;
            tick + first_gap(&instance, controller.interval())
        } else {
            tick + controller.interval()
        };
        let complete = last_complete
            .as_ref()
            .map_or(&[][..], |r| r.series.as_slice());
        let previous = if reading.complete {
            complete
        } else {
            last_fast.as_ref().map_or(&[][..], |r| r.series.as_slice())
        };
        let mut series = Vec::with_capacity(reading.families.sample_count());
        let flattener = if reading.complete {
            &mut flatten_complete
        } else {
            &mut flatten_fast
        };
        let matched = flattener.flatten(&reading.families, previous, &mut series);
        drop(reading.families);
        if writer.is_some() {
            if reading.complete {
                let markers = stale.markers(complete, &series, &matched);
                series.extend(markers);
            } else {
                stale.remember(complete, &series, matched.unchanged);
            }
        }
        let record = Arc::new(Record {
            timestamp_ms: reading.timestamp_ms,
            target: target.labels().clone(),
            series,
        });
        let last = if reading.complete {
            &mut last_complete
        } else {
            &mut last_fast
        };
        *last = Some(record.clone());
        if let Some(writer) = &writer {
            writer.push(record.clone());
        }
        slot.store(record, reading.complete);
    }
}

/// Pushes the agent-wide `redpush_*` metrics at the base interval, labelled
/// with the agent's host name as `instance`.
async fn run_self_metrics(
    base: Arc<TargetLabels>,
    interval: Duration,
    metrics: Arc<SelfMetrics>,
    queue: Arc<dyn Queue>,
    writer: Writer,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_ms = 0;
    let mut last: Option<Arc<Record>> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let timestamp_ms = now_ms().max(last_ms + 1);
        last_ms = timestamp_ms;
        let families = metrics.families(queue.stats(), timestamp_ms);
        let previous = last.as_ref().map_or(&[][..], |r| r.series.as_slice());
        let mut series = Vec::new();
        flatten(&families, previous, &mut series);
        let record = Arc::new(Record {
            timestamp_ms,
            target: base.clone(),
            series,
        });
        last = Some(record.clone());
        writer.push(record);
    }
}

/// PUTs every target's latest reading to its Pushgateway group, and the
/// agent's own metrics to a group of their own, every `pushgateway.interval`.
async fn run_pushgateway(
    pushgateway: Pushgateway,
    state: Arc<AgentState>,
    metrics: Arc<SelfMetrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let agent = agent_instance();
    let mut ticker = tokio::time::interval(pushgateway.settings().interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Groups pushed so far, for delete_on_shutdown.
    let mut pushed: Vec<String> = Vec::new();
    let mut last_error_log: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        let mut groups: Vec<(String, String)> = Vec::new();
        for (instance, record) in state.latest() {
            let Some(record) = record.filter(|r| !r.series.is_empty()) else {
                continue;
            };
            let mut body = String::new();
            write_series(&mut body, &record.series, &[]);
            groups.push((instance, body));
        }
        let mut body = String::new();
        write_families(&mut body, &state.self_families(), &[]);
        groups.push((agent.clone(), body));
        for (instance, body) in groups {
            match pushgateway.put(&instance, body).await {
                Ok(()) => {
                    metrics.pushgateway_push(true);
                    if !pushed.contains(&instance) {
                        pushed.push(instance);
                    }
                }
                Err(e) => {
                    metrics.pushgateway_push(false);
                    if last_error_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                        warn!(
                            instance,
                            "Pushgateway push failed (more failures within a minute are only counted): {e}"
                        );
                        last_error_log = Some(std::time::Instant::now());
                    }
                }
            }
        }
    }
    if pushgateway.settings().delete_on_shutdown {
        for instance in pushed {
            if let Err(e) = pushgateway.delete(&instance).await {
                warn!(instance, "cannot delete the Pushgateway group: {e}");
            }
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

/// A URL without user info and query, safe to log.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "<invalid url>".to_owned(),
    }
}

enum Signal {
    Reload,
    Stop,
}

/// The signals the agent acts on, registered once at start (an unhandled
/// SIGHUP would end the process).
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
                hup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => Signal::Stop,
                _ = self.term.recv() => Signal::Stop,
                _ = self.hup.recv() => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}
