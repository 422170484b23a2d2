//! The signals the agent acts on: SIGINT and SIGTERM stop it, SIGHUP
//! reloads its configuration.

use anyhow::Context;

/// What a signal asks of the agent.
pub(super) enum Signal {
    Reload,
    Stop,
}

/// The signals the agent acts on, registered once at start (an unhandled
/// SIGHUP would end the process).
pub(super) struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn register() -> anyhow::Result<Signals> {
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

    pub(super) async fn next(&mut self) -> Signal {
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
