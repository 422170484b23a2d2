//! One target's task: samples it on its adaptive interval, turns each
//! reading into its record (`series::TargetSeries`), and hands the record to
//! the queue's writer and to the target's slot for the page. When the
//! target is removed its series are ended; when the agent stops it just
//! stops.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::info;

use super::state::{AgentState, Slot};
use crate::queue::Writer;
use crate::schedule::{Bounds, Controller, first_gap};
use crate::series::TargetSeries;
use crate::target::Target;

/// What a target's task is handed.
pub(super) struct TargetTask {
    pub target: Target,
    pub state: Arc<AgentState>,
    pub slot: Arc<Slot>,
    /// Where records go, when the agent pushes by remote write.
    pub writer: Option<Writer>,
    pub shutdown: watch::Receiver<bool>,
    pub removed: watch::Receiver<bool>,
}

impl TargetTask {
    pub(super) async fn run(self) {
        let TargetTask {
            mut target,
            state,
            slot,
            writer,
            mut shutdown,
            mut removed,
        } = self;
        let t = target.settings();
        let bounds = Bounds {
            base: t.intervals.interval,
            min: t.intervals.min,
            max: t.intervals.max,
        };
        let mut controller = Controller::new(bounds, t.adaptive);
        let instance = target.instance().to_owned();
        let mut series = TargetSeries::new(target.labels().clone(), writer.is_some());
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
                    if let (Some(writer), Some(ended)) = (&writer, series.end(target.next_timestamp())) {
                        writer.push(ended);
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
            // Start to start: a slow sample does not stretch the interval,
            // and the controller lengthens it itself when samples are slow.
            // The first gap sets the target's phase, spreading many targets'
            // samples over the interval (`schedule::first_gap`).
            next = tick
                + if std::mem::take(&mut first) {
                    first_gap(&instance, controller.interval())
                } else {
                    controller.interval()
                };
            let record = series.record(&reading.families, reading.timestamp_ms, reading.complete);
            drop(reading.families);
            if let Some(writer) = &writer {
                writer.push(record.clone());
            }
            slot.store(record, reading.complete);
        }
    }
}
