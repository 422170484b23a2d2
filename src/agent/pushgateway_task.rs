//! The Pushgateway pusher: every `pushgateway.interval`, each target's
//! latest reading PUT to its group and the agent's own metrics to a group
//! of their own; on stop, the groups deleted if `delete_on_shutdown`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tracing::{info, warn};

use super::state::AgentState;
use crate::delivery::DeliveryStatus;
use crate::exposition::{write_families, write_series};
use crate::failure_streak::Report;
use crate::pushgateway::Pushgateway;
use crate::secret::redact_url;
use crate::self_metrics::SelfMetrics;
use crate::untrusted::one_line;

/// A round of pushes fails when any of its groups does: the first failing
/// round is a WARN, then a summary a minute; the first good round after
/// them an INFO.
pub(super) async fn run(
    pushgateway: Pushgateway,
    agent_instance: String,
    state: Arc<AgentState>,
    metrics: Arc<SelfMetrics>,
    status: Arc<DeliveryStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(pushgateway.settings().interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Groups pushed so far, for delete_on_shutdown.
    let mut pushed: Vec<String> = Vec::new();
    let url = redact_url(&pushgateway.settings().endpoint.url);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        let mut failed: Option<(String, String)> = None;
        for (instance, body) in groups(&state, &agent_instance) {
            match pushgateway.put(&instance, body).await {
                Ok(()) => {
                    metrics.pushgateway_push(true);
                    if !pushed.contains(&instance) {
                        pushed.push(instance);
                    }
                }
                Err(e) => {
                    metrics.pushgateway_push(false);
                    failed.get_or_insert((instance, one_line(&e.to_string())));
                }
            }
        }
        match failed {
            None => {
                if let Some(ended) = status.delivered() {
                    info!(
                        url,
                        "Pushgateway pushes succeed again after {} of failures ({} failed rounds)",
                        humantime::format_duration(Duration::from_secs(ended.lasted.as_secs())),
                        ended.failures,
                    );
                }
            }
            Some((instance, error)) => match status.failed(&error) {
                Report::Started => warn!(url, instance, "Pushgateway push failed: {error}"),
                Report::Continuing { lasted, failures } => warn!(
                    url,
                    instance,
                    "Pushgateway pushes still failing after {}: {failures} failed rounds; last error: {error}",
                    humantime::format_duration(Duration::from_secs(lasted.as_secs())),
                ),
                Report::Quiet => {}
            },
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

/// Each target's group body (targets not read yet left out), then the
/// agent's own under `agent_instance`.
fn groups(state: &AgentState, agent_instance: &str) -> Vec<(String, String)> {
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
    groups.push((agent_instance.to_owned(), body));
    groups
}
