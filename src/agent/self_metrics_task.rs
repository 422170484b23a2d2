//! The agent's own `redpush_*` metrics pushed by remote write, at the base
//! interval, labelled with the agent's host name as `instance`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::state::AgentState;
use crate::clock::Timestamps;
use crate::queue::Writer;
use crate::series::{TargetLabels, TargetSeries};

pub(super) async fn run(
    labels: Arc<TargetLabels>,
    interval: Duration,
    state: Arc<AgentState>,
    writer: Writer,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stamps = Timestamps::default();
    // No stale markers: the agent's own series end only with the agent.
    let mut series = TargetSeries::new(labels, false);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let timestamp_ms = stamps.next();
        let families = state.self_families_at(timestamp_ms);
        writer.push(series.record(&families, timestamp_ms, true));
    }
}
