//! The set of targets at run time: one task per target, started, stopped
//! and restarted to match the configuration as SIGHUP reloads it and as
//! cluster and Sentinel discovery report nodes.
//!
//! A removed target's series get their stale markers (its task ends
//! them); a target whose settings or labels changed restarts; the others
//! run on undisturbed, and the queue, shared by all, keeps what it holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::destinations::Destinations;
use super::signals::{Signal, Signals};
use super::state::AgentState;
use super::target_task::TargetTask;
use crate::clock::now_ms;
use crate::config::{Overrides, Settings, TargetSettings};
use crate::queue::Writer;
use crate::redis::discovery::{self, Discovered};
use crate::target::Target;

/// A running target task and what it was started with.
struct Running {
    settings: TargetSettings,
    base_labels: Vec<(String, String)>,
    removed: watch::Sender<bool>,
    task: JoinHandle<()>,
}

pub(super) struct Supervisor {
    running: BTreeMap<String, Running>,
    state: Arc<AgentState>,
    /// Where targets hand their records, when the agent pushes by remote write.
    writer: Option<Writer>,
    shutdown: watch::Receiver<bool>,
}

impl Supervisor {
    pub(super) fn new(
        state: Arc<AgentState>,
        writer: Option<Writer>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Supervisor {
            running: BTreeMap::new(),
            state,
            writer,
            shutdown,
        }
    }

    /// Runs the targets of `settings` (and the nodes discovery finds) until
    /// SIGINT or SIGTERM; SIGHUP reloads the configuration from `overrides`.
    /// A file that does not load is logged and the running configuration
    /// stays.
    pub(super) async fn run(
        &mut self,
        settings: Settings,
        overrides: &Overrides,
        signals: &mut Signals,
        destinations: &mut Destinations,
    ) {
        // Cluster seeds and Sentinels report their nodes here.
        let (found_tx, mut found_rx) = mpsc::channel::<Discovered>(16);
        let mut discovery = Discovery::start(&settings, &found_tx);
        let mut discovered: BTreeMap<String, Vec<TargetSettings>> = BTreeMap::new();
        self.apply(&with_discovered(&settings, &discovered)).await;
        let mut current = settings;
        loop {
            tokio::select! {
                signal = signals.next() => match signal {
                    Signal::Stop => break,
                    Signal::Reload => {
                        let loaded = Settings::load(overrides).map_err(anyhow::Error::from);
                        let prepared = loaded.and_then(|new| {
                            let prepared = destinations.prepare(&new)?;
                            Ok((new, prepared))
                        });
                        let (new, prepared) = match prepared {
                            Ok(ready) => ready,
                            Err(e) => {
                                self.state.metrics().reloaded(false, now_ms());
                                error!("reload failed, keeping the running configuration: {e:#}");
                                continue;
                            }
                        };
                        info!("reloading the configuration");
                        for key in restart_only_changes(&current, &new) {
                            warn!("`{key}` changed: it takes effect when redpush restarts");
                        }
                        discovery.stop().await;
                        discovered.retain(|seed, _| is_seed_of(&new, seed));
                        discovery = Discovery::start(&new, &found_tx);
                        if Destinations::writer_changes(&prepared) {
                            // The targets let go of the old writer before
                            // its queue closes, and take the new one.
                            self.stop_all().await;
                            self.writer = None;
                            destinations.apply(prepared, &new).await;
                            self.writer = destinations.writer();
                        } else {
                            destinations.apply(prepared, &new).await;
                        }
                        self.apply(&with_discovered(&new, &discovered)).await;
                        self.state.metrics().reloaded(true, now_ms());
                        current = new;
                    }
                },
                Some((seed, nodes)) = found_rx.recv() => {
                    discovered.insert(seed, nodes);
                    self.apply(&with_discovered(&current, &discovered)).await;
                }
            }
        }
        discovery.stop().await;
    }

    /// Makes the running targets those of `settings`: new ones start,
    /// missing ones stop (with stale markers for their series), changed ones
    /// restart. Unchanged ones keep running undisturbed.
    pub(super) async fn apply(&mut self, settings: &Settings) {
        let mut wanted = BTreeMap::new();
        for (position, t) in settings.targets.iter().enumerate() {
            wanted.insert(
                t.instance.clone(),
                (position, Target::new(settings, t.clone())),
            );
        }
        let stale: Vec<String> = self
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
        for instance in stale {
            if let Some(running) = self.running.remove(&instance) {
                if wanted.contains_key(&instance) {
                    info!(instance, "target changed: restarting it");
                } else {
                    info!(instance, "target removed");
                }
                let _ = running.removed.send(true);
                let _ = running.task.await;
            }
        }
        for (instance, (position, target)) in wanted {
            if !self.running.contains_key(&instance) {
                let running = self.start(&instance, position, target);
                self.running.insert(instance, running);
            }
        }
    }

    fn start(&self, instance: &str, position: usize, target: Target) -> Running {
        let t = target.settings();
        info!(
            instance,
            interval = ?t.intervals.interval,
            adaptive = t.adaptive,
            "sampling"
        );
        let (removed, removed_rx) = watch::channel(false);
        Running {
            settings: t.clone(),
            base_labels: target.base_labels().to_vec(),
            removed,
            task: tokio::spawn(
                TargetTask {
                    state: self.state.clone(),
                    slot: self.state.add(instance, position),
                    target,
                    writer: self.writer.clone(),
                    shutdown: self.shutdown.clone(),
                    removed: removed_rx,
                }
                .run(),
            ),
        }
    }

    /// Stops every target (its series ended, as for a removed one), to be
    /// started again by the next `apply`.
    async fn stop_all(&mut self) {
        for (_, running) in std::mem::take(&mut self.running) {
            let _ = running.removed.send(true);
            let _ = running.task.await;
        }
    }

    /// Waits for every target task to end; drops the supervisor's writer.
    pub(super) async fn wait(self) {
        for (_, running) in self.running {
            let _ = running.task.await;
        }
    }
}

/// Whether `instance` is a seed of discovery in `settings`.
fn is_seed_of(settings: &Settings, instance: &str) -> bool {
    settings
        .targets
        .iter()
        .any(|t| (t.cluster || t.sentinel_discovery) && t.instance == instance)
}

/// The settings with every discovered cluster seed replaced by its nodes
/// (a seed not discovered yet is sampled as it is) and every Sentinel
/// followed by what it watches. An instance listed twice is sampled once,
/// with the settings it was first listed with.
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

/// The running discovery tasks.
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
                tokio::spawn(discovery::run(
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

/// The settings a reload cannot apply to a running agent that differ
/// between `old` and `new`, by their keys.
fn restart_only_changes(old: &Settings, new: &Settings) -> Vec<&'static str> {
    [
        ("listen", old.listen != new.listen),
        ("state_dir", old.state_dir != new.state_dir),
        ("queue", old.queue != new.queue),
        ("http", old.http != new.http),
        ("log", old.log != new.log),
    ]
    .into_iter()
    .filter_map(|(key, differs)| differs.then_some(key))
    .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::self_metrics::SelfMetrics;

    fn settings(text: &str) -> Settings {
        Settings::from_toml(
            Path::new("supervisor-test.toml"),
            text,
            &Overrides::default(),
        )
        .expect("valid settings")
    }

    fn instances(settings: &Settings) -> Vec<&str> {
        settings
            .targets
            .iter()
            .map(|t| t.instance.as_str())
            .collect()
    }

    fn node(seed: &TargetSettings, port: u16) -> TargetSettings {
        discovery::node_targets(seed, &[("10.0.0.9".to_owned(), port)]).remove(0)
    }

    #[test]
    fn discovered_nodes_replace_a_cluster_seed_and_follow_a_sentinel() {
        let s = settings(
            "[[targets]]\nurl = \"redis://seed:7000\"\ncluster = true\n\
             [[targets]]\nurl = \"redis://sentinel:26379\"\nsentinel_discovery = true\n\
             [[targets]]\nurl = \"redis://10.0.0.9:7001\"\n",
        );
        // Nothing discovered yet: every seed is sampled as it is.
        assert_eq!(
            instances(&with_discovered(&s, &BTreeMap::new())),
            ["seed:7000", "sentinel:26379", "10.0.0.9:7001"]
        );
        let mut found = BTreeMap::new();
        found.insert(
            "seed:7000".to_owned(),
            vec![node(&s.targets[0], 7001), node(&s.targets[0], 7002)],
        );
        found.insert("sentinel:26379".to_owned(), vec![node(&s.targets[1], 6379)]);
        let expanded = with_discovered(&s, &found);
        // The node listed by the cluster and in the file is sampled once, as the cluster's.
        assert_eq!(
            instances(&expanded),
            [
                "10.0.0.9:7001",
                "10.0.0.9:7002",
                "sentinel:26379",
                "10.0.0.9:6379"
            ]
        );
        assert!(!expanded.targets[0].cluster && expanded.targets[0].db == 0);
        assert!(is_seed_of(&s, "seed:7000") && !is_seed_of(&s, "10.0.0.9:7001"));
    }

    #[test]
    fn only_settings_a_reload_cannot_apply_are_named() {
        let old = settings("job = \"a\"\n[queue]\nmax_age = \"1h\"\n");
        let new = settings("job = \"b\"\nlisten = \"127.0.0.1:9999\"\n[queue]\nmax_age = \"2h\"\n");
        assert_eq!(restart_only_changes(&old, &new), ["listen", "queue"]);
        assert!(restart_only_changes(&old, &old).is_empty());
    }

    fn sampled(state: &AgentState) -> Vec<String> {
        state
            .latest()
            .into_iter()
            .map(|(instance, _)| instance)
            .collect()
    }

    /// Targets on sockets that do not exist: each task samples (and fails)
    /// at once, so the tasks run without any server.
    fn targets(paths: &[&str], extra: &str) -> Settings {
        let text: String = paths
            .iter()
            .map(|p| format!("[[targets]]\nurl = \"unix:///nonexistent/{p}.sock\"\n{extra}"))
            .collect();
        settings(&text)
    }

    #[tokio::test]
    async fn apply_starts_stops_and_restarts_targets_to_match() {
        let state = Arc::new(AgentState::new(Arc::new(SelfMetrics::default())));
        let (stop, shutdown) = watch::channel(false);
        let mut supervisor = Supervisor::new(state.clone(), None, shutdown);
        supervisor.apply(&targets(&["a", "b"], "")).await;
        assert_eq!(
            sampled(&state),
            ["/nonexistent/a.sock", "/nonexistent/b.sock"]
        );
        let b_task = supervisor.running["/nonexistent/b.sock"].task.id();
        // `a` removed, `c` added before `b`, `b` unchanged.
        supervisor.apply(&targets(&["c", "b"], "")).await;
        assert_eq!(
            sampled(&state),
            ["/nonexistent/c.sock", "/nonexistent/b.sock"]
        );
        assert_eq!(supervisor.running["/nonexistent/b.sock"].task.id(), b_task);
        // A changed setting restarts the target.
        supervisor
            .apply(&targets(&["c", "b"], "interval = \"2s\"\n"))
            .await;
        assert_ne!(supervisor.running["/nonexistent/b.sock"].task.id(), b_task);
        assert_eq!(sampled(&state).len(), 2);
        let _ = stop.send(true);
        supervisor.wait().await;
    }
}
