//! One target's task: samples it on its adaptive interval, turns each
//! reading into its record (`series::TargetSeries`), and hands the record to
//! the queue's writer and to the target's slot for the page. When the
//! target is removed its series are ended; when the agent stops it just
//! stops.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;

use super::state::{AgentState, Slot};
use crate::queue::Writer;
use crate::schedule::{Bounds, Controller, first_gap};
use crate::series::TargetSeries;
use crate::status::seconds;
use crate::target::Target;
use crate::untrusted::one_line;

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
        let mut series = TargetSeries::new(target.labels().clone(), writer.is_some())
            .relabeled(&t.metric_relabel);
        let clock = Instant::now();
        let mut next = Instant::now();
        let mut first = true;
        slot.note(|s| {
            s.interval_seconds = controller.interval().as_secs_f64();
            s.interval_reason = if t.adaptive {
                "configured interval, adaptive".to_owned()
            } else {
                "configured interval, fixed".to_owned()
            };
        });
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
            let change = controller.observe(tick - clock, reading.observation);
            if let Some(change) = &change {
                debug!(
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
            // The record and what the status shows of it, under one lock.
            slot.store(record, reading.complete, |s| {
                s.up = Some(reading.error.is_none());
                s.interval_seconds = controller.interval().as_secs_f64();
                s.last_sample_timestamp = Some(seconds(reading.timestamp_ms));
                match &reading.error {
                    None => s.last_error = None,
                    // Waiting to reconnect: the error that caused it stays.
                    Some(e) if e.is_backoff() && s.last_error.is_some() => {}
                    Some(e) => s.last_error = Some(one_line(&e.to_string())),
                }
                if let Some(change) = change {
                    s.interval_reason = change.reason;
                }
            });
        }
    }
}
