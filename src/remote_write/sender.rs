//! The HTTP side of remote write: post a batch, classify the answer, retry.
//!
//! One request is in flight at a time. That is what keeps each series'
//! samples in increasing time order across requests (a receiver rejects an
//! older sample), and a backlog still drains fast because a batch holds up
//! to `max_samples_per_send` samples.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::clock::now_ms;
use crate::config::RemoteWriteSettings;
use crate::http_client::{self, ClientError};
use crate::log_throttle::LogThrottle;
use crate::queue::{DropReason, Queue, QueueEvents, Queued};
use crate::remote_write::encode;
use crate::self_metrics::{SelfMetrics, SendFailure};

/// The longest `Retry-After` honoured; a receiver asking for more is retried
/// sooner rather than holding the backlog for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What the receiver made of one request.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// Any 2xx (202 included: an HA tracker's answer to the non-leader replica).
    Accepted,
    /// A 4xx other than 429 (or another status that retrying will not fix):
    /// the batch is dropped.
    Rejected { status: u16, message: String },
    /// 5xx, 429, a network error or unreadable credentials: the same
    /// batch is sent again.
    Retry {
        reason: SendFailure,
        after: Option<Duration>,
    },
}

/// How delivery of one batch ended.
#[derive(Debug, PartialEq)]
pub enum Delivery {
    Accepted,
    Rejected,
    /// Shutdown came before the receiver accepted the batch.
    Abandoned,
}

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("remote_write.headers: invalid header {0}")]
    Header(String),
    #[error(transparent)]
    Client(#[from] ClientError),
}

pub struct Sender {
    client: reqwest::Client,
    settings: RemoteWriteSettings,
    metrics: Arc<SelfMetrics>,
    /// Rejections are logged at most once a minute, so a receiver that
    /// refuses everything does not flood the log.
    rejections: LogThrottle,
}

impl Sender {
    pub fn new(
        settings: RemoteWriteSettings,
        metrics: Arc<SelfMetrics>,
    ) -> Result<Self, SenderError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &settings.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SenderError::Header(name.clone()))?;
            let mut value =
                HeaderValue::from_str(value).map_err(|_| SenderError::Header(name.to_string()))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = http_client::build(&settings.endpoint, headers)?;
        Ok(Sender {
            client,
            settings,
            metrics,
            rejections: LogThrottle::default(),
        })
    }

    /// Posts one encoded batch once.
    pub async fn post(&self, body: bytes::Bytes) -> Answer {
        let request = self
            .client
            .post(&self.settings.endpoint.url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body);
        // Credentials are read per request so that a rotated file is picked up.
        let credentials = http_client::authorize(request, &self.settings.endpoint);
        let request = match credentials {
            Ok(request) => request,
            Err(e) => {
                debug!("remote write request not sent: {e}");
                return Answer::Retry {
                    reason: SendFailure::Credentials,
                    after: None,
                };
            }
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                debug!("remote write request failed: {}", without_url(&e));
                return Answer::Retry {
                    reason: if e.is_timeout() {
                        SendFailure::Timeout
                    } else {
                        SendFailure::Network
                    },
                    after: None,
                };
            }
        };
        let status = response.status();
        if status.is_success() {
            return Answer::Accepted;
        }
        let after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after)
            .map(|d| d.min(MAX_RETRY_AFTER));
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Answer::Retry {
                reason: SendFailure::Status(status.as_u16()),
                after,
            };
        }
        Answer::Rejected {
            status: status.as_u16(),
            message: http_client::error_body(response).await,
        }
    }

    /// Sends one batch until the receiver accepts or rejects it, backing off
    /// between attempts. Gives up only when `shutdown` turns true.
    pub async fn deliver(
        &self,
        body: Vec<u8>,
        samples: usize,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Delivery {
        let body = bytes::Bytes::from(body);
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.settings.min_backoff)
            .with_max_delay(self.settings.max_backoff)
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            let started = Instant::now();
            match self.post(body.clone()).await {
                Answer::Accepted => {
                    self.metrics
                        .sent(samples as u64, started.elapsed().as_secs_f64(), now_ms());
                    return Delivery::Accepted;
                }
                Answer::Rejected { status, message } => {
                    self.metrics.send_error(SendFailure::Status(status));
                    self.metrics.dropped(DropReason::Rejected, samples as u64);
                    if self.rejections.ready() {
                        warn!(
                            status,
                            samples,
                            "remote write rejected a batch; dropping it (more rejections within a minute are only counted): {message}"
                        );
                    }
                    return Delivery::Rejected;
                }
                Answer::Retry { reason, after } => {
                    self.metrics.send_error(reason);
                    if *shutdown.borrow() {
                        return Delivery::Abandoned;
                    }
                    self.metrics.retried();
                    let delay = backoff.next().unwrap_or(self.settings.max_backoff);
                    let delay = after.map_or(delay, |after| after.max(delay));
                    debug!(?reason, ?delay, "remote write will retry");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    /// Drains `queue` until `shutdown`: waits for a full batch or for the
    /// oldest sample to reach `flush_deadline`, sends, acknowledges.
    pub async fn run(&self, queue: Arc<dyn Queue>, mut shutdown: watch::Receiver<bool>) {
        let deadline_ms = self.settings.flush_deadline.as_millis() as i64;
        let mut encoder = encode::Encoder::default();
        // Woken when the queue fills from empty, or holds a full batch;
        // otherwise the deadline's timer wakes it.
        queue.notify_from(self.settings.max_samples_per_send);
        loop {
            let stopping = *shutdown.borrow();
            // The counters decide whether to send yet: woken by every push,
            // the sender must not read a batch only to wait again.
            let stats = queue.stats();
            let Some(oldest_ms) = stats.oldest_timestamp_ms else {
                if stopping {
                    return;
                }
                tokio::select! {
                    _ = queue.pushed().notified() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            };
            let wait_ms = oldest_ms + deadline_ms - now_ms();
            let full = stats.samples >= self.settings.max_samples_per_send;
            if !stopping && !full && wait_ms > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
                    _ = queue.pushed().notified() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let batch = peek(&queue, self.settings.max_samples_per_send).await;
            let Some(first) = batch.first() else {
                // Expired at the head meanwhile, or unreadable (logged by the
                // queue): do not spin on it.
                if stopping {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = queue.pushed().notified() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            };
            let encoded = encoder.encode(&batch);
            if encoded.out_of_order > 0 {
                self.metrics
                    .dropped(DropReason::OutOfOrder, encoded.out_of_order as u64);
            }
            let last_seq = batch.last().map_or(first.seq, |q| q.seq);
            match self
                .deliver(encoded.body, encoded.samples, &mut shutdown)
                .await
            {
                // A write of the position in place (and, once a segment is
                // done, its deletion): short enough for this worker.
                Delivery::Accepted | Delivery::Rejected => queue.ack(last_seq),
                Delivery::Abandoned => {
                    let left = queue.stats().samples;
                    warn!(
                        samples = left,
                        "shutting down with samples the receiver has not accepted"
                    );
                    return;
                }
            }
        }
    }
}

/// `Retry-After` is either seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A batch from the queue's head: from the records kept decoded when they
/// cover it, else read on the blocking pool (a sender that is behind reads
/// its backlog from disk).
async fn peek(queue: &Arc<dyn Queue>, max_samples: usize) -> Vec<Queued> {
    if let Some(batch) = queue.try_peek(max_samples) {
        return batch;
    }
    let queue = queue.clone();
    tokio::task::spawn_blocking(move || queue.peek(max_samples))
        .await
        .unwrap_or_default()
}

/// A reqwest error's text without the URL, which may carry a token in its query.
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url (") {
        e.truncate(i);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
