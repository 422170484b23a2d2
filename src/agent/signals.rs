//! What asks the agent to stop or reload: SIGINT and SIGTERM stop it;
//! SIGHUP, or an edit of its config file, reloads it.
//!
//! The file is read every `CONFIG_CHECK_EVERY` and compared with what it
//! held at the last check: where nobody can send a signal (a Kubernetes
//! ConfigMap, which the kubelet swaps in place; a config management run),
//! an edit still takes effect. A file that does not load is reported once
//! per edit, not at every check.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio::time::{Interval, MissedTickBehavior};

use crate::config::read_file;

/// How often the config file is looked at.
pub(super) const CONFIG_CHECK_EVERY: Duration = Duration::from_secs(10);

/// What the agent is asked to do.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Signal {
    Reload,
    Stop,
}

/// The signals the agent acts on, registered once at start (an unhandled
/// SIGHUP would end the process), and the config file's last contents.
pub(super) struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
    config: Option<ConfigFile>,
}

/// The config file as last read.
struct ConfigFile {
    path: PathBuf,
    contents: Option<String>,
    ticks: Interval,
}

impl ConfigFile {
    fn new(path: PathBuf) -> ConfigFile {
        let contents = read_file(&path).ok();
        let mut ticks = tokio::time::interval_at(
            tokio::time::Instant::now() + CONFIG_CHECK_EVERY,
            CONFIG_CHECK_EVERY,
        );
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ConfigFile {
            path,
            contents,
            ticks,
        }
    }

    /// Waits until the file's contents differ from the last read (an
    /// unreadable file counts as unchanged: it may be mid-swap).
    async fn changed(&mut self) {
        loop {
            self.ticks.tick().await;
            let path = self.path.clone();
            let now = tokio::task::spawn_blocking(move || read_file(&path).ok())
                .await
                .ok()
                .flatten();
            if now.is_some() && now != self.contents {
                self.contents = now;
                return;
            }
        }
    }

    /// A reload happened for another reason: what it read is current.
    fn seen(&mut self) {
        self.contents = read_file(&self.path).ok();
    }
}

impl Signals {
    /// `config`: the file to watch, if the agent has one.
    pub(super) fn register(config: Option<PathBuf>) -> anyhow::Result<Signals> {
        let config = config.map(ConfigFile::new);
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
                hup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
                config,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals { config })
        }
    }

    pub(super) async fn next(&mut self) -> Signal {
        let file_changed = async {
            match &mut self.config {
                Some(config) => config.changed().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(unix)]
        {
            let signal = tokio::select! {
                _ = tokio::signal::ctrl_c() => Signal::Stop,
                _ = self.term.recv() => Signal::Stop,
                _ = self.hup.recv() => Signal::Reload,
                _ = file_changed => return Signal::Reload,
            };
            if let (Signal::Reload, Some(config)) = (&signal, &mut self.config) {
                config.seen();
            }
            signal
        }
        #[cfg(not(unix))]
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => Signal::Stop,
                _ = file_changed => Signal::Reload,
            }
        }
    }
}
