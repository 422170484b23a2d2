//! The long-running agent, wired together: the push destinations (the
//! queue and its writer thread, the sender, the Pushgateway pusher:
//! `destinations.rs`), the HTTP endpoint and one task per target under the
//! supervisor; reloaded on SIGHUP, stopped together.
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

mod connections;
mod destinations;
mod http;
mod pushgateway_task;
mod self_metrics_task;
mod signals;
mod state;
mod supervisor;
mod target_task;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::clock::now_ms;
use crate::config::{Overrides, Settings};
use crate::self_metrics::SelfMetrics;
use connections::Connections;
use destinations::Destinations;
use signals::Signals;
use state::AgentState;
use supervisor::Supervisor;

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
    for flag in &settings.overridden {
        warn!("{flag}");
    }
    if settings.remote_write.is_empty() && settings.pushgateway.is_none() {
        info!("no push destination set: serving /metrics only");
    }
    let mut signals = Signals::register(overrides.config.clone())?;
    let metrics = Arc::new(SelfMetrics::default());
    metrics.reloaded(true, now_ms());
    let state = Arc::new(
        AgentState::new(metrics.clone()).with_ready_timeout(settings.http.ready_delivery_timeout),
    );
    let mut destinations = Destinations::start(&settings, &metrics, &state)?;
    let (shutdown_tx, shutdown) = watch::channel(false);
    let http = serve_http(&settings, state.clone(), shutdown.clone()).await?;

    // systemd (Type=notify): started once the config is loaded, the queue
    // open and the endpoint listening. Without NOTIFY_SOCKET this does nothing.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        warn!("cannot tell systemd the agent is ready: {e}");
    }
    let mut supervisor = Supervisor::new(state, destinations.writer(), shutdown);
    supervisor
        .run(settings, &overrides, &mut signals, &mut destinations)
        .await;

    info!("stopping");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let _ = shutdown_tx.send(true);
    supervisor.wait().await;
    destinations.finish().await;
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
    let connections = Connections::new(connections::cap_for(connections::file_limit()));
    Ok(tokio::spawn(http::serve(
        listener,
        state,
        access,
        tls,
        connections,
        shutdown,
    )))
}
