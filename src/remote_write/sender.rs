//! The HTTP side of remote write: post a batch, classify the answer, retry.
//!
//! One request is in flight at a time while the sender keeps up; with a
//! backlog, up to `max_shards`, each series in one of them (`shards.rs`).
//! Either way the next batch goes only once every request before it was
//! answered: that is what keeps each series' samples in increasing time
//! order across requests (a receiver rejects an older sample).
//!
//! What an answer does to the batch:
//! - 2xx: delivered, acknowledged.
//! - 5xx, 429, no answer, unreadable credentials: sent again after a
//!   backoff; the queue keeps everything behind it.
//! - 401, 403, 404, 407: the sender is misconfigured (credentials, URL,
//!   proxy), not the batch; the queue is held and the batch retried at
//!   `max_backoff` until the configuration is fixed. `max_age` and the
//!   disk bound still apply to the queue meanwhile.
//! - any other 4xx (400, 409, 413, 422...): the receiver will never take
//!   this batch; it is dropped and counted, and the queue goes on.
//!
//! A failing endpoint is a WARN line at once (an ERROR when misconfigured),
//! then one summary a minute while it lasts; the first success after it is
//! one INFO line (`failure_streak`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::clock::now_ms;
use crate::config::RemoteWriteSettings;
use crate::delivery::DeliveryStatus;
use crate::failure_streak::{Ended, Report};
use crate::http_client::{self, ClientError, Credentials};
use crate::log_throttle::LogThrottle;
use crate::queue::{DropReason, Queue, Queued};
use crate::remote_write::encode;
use crate::remote_write::metadata::{self, Family, MetadataSchedule};
use crate::remote_write::pace::Pace;
use crate::remote_write::shards::{self, shards_for};
use crate::remote_write::write_relabel::WriteRelabel;
use crate::secret::redact_url;
use crate::self_metrics::{EndpointMetrics, SendFailure};
use crate::series::{families, generation};

/// What [`Sender::due`] found.
enum Due {
    /// Send a batch now; `backlog` samples are queued.
    Now { backlog: usize },
    /// Waited for something that may change that: look again.
    Later,
    /// Stopping, and nothing is left.
    Never,
}

/// The longest `Retry-After` honoured; a receiver asking for more is retried
/// sooner rather than holding the backlog for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What the receiver made of one request.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// Any 2xx (202 included: an HA tracker's answer to the non-leader replica).
    Accepted,
    /// A 4xx that says the batch itself is bad (any but 429 and those of
    /// `Misconfigured`), or another status that retrying will not fix: the
    /// batch is dropped.
    Rejected { status: u16, message: String },
    /// 401, 403, 404 or 407: the sender's credentials, URL or proxy are
    /// wrong. The batch is fine and is kept.
    Misconfigured { status: u16, message: String },
    /// 5xx, 429, a network error or unreadable credentials: the same
    /// batch is sent again.
    Retry {
        reason: SendFailure,
        error: String,
        after: Option<Duration>,
    },
}

/// Whether `status` means the request never reached a receiver willing to
/// judge the batch: unauthenticated, forbidden, no such endpoint, proxy
/// authentication; or any redirect (3xx), which is not followed (a POST
/// would turn into a GET): the url is out of date.
fn misconfigured(status: StatusCode) -> bool {
    status.is_redirection()
        || matches!(
            status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::NOT_FOUND
                | StatusCode::PROXY_AUTHENTICATION_REQUIRED
        )
}

/// How delivery of one batch ended.
#[derive(Debug, PartialEq)]
pub enum Delivery {
    Accepted,
    Rejected,
    /// The endpoint answered a status `misconfigured` names; the batch was
    /// held for `max_backoff` and is still to be sent.
    Held {
        status: u16,
    },
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
    credentials: Credentials,
    settings: RemoteWriteSettings,
    /// The endpoint's URL as logs may show it.
    url: String,
    metrics: Arc<EndpointMetrics>,
    status: Arc<DeliveryStatus>,
    /// Rejections are logged at most once a minute, so a receiver that
    /// refuses everything does not flood the log.
    rejections: LogThrottle,
    /// So are metadata requests that failed.
    metadata_failures: LogThrottle,
}

impl Sender {
    pub fn new(
        settings: RemoteWriteSettings,
        metrics: Arc<EndpointMetrics>,
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
            credentials: Credentials::new(&settings.endpoint, &client),
            client,
            url: redact_url(&settings.endpoint.url),
            settings,
            metrics,
            status: Arc::default(),
            rejections: LogThrottle::default(),
            metadata_failures: LogThrottle::default(),
        })
    }

    /// How delivery is going, for the status page.
    pub(crate) fn status(&self) -> Arc<DeliveryStatus> {
        self.status.clone()
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
        let credentials = self.credentials.authorize(request).await;
        let request = match credentials {
            Ok(request) => request,
            Err(e) => {
                return Answer::Retry {
                    reason: SendFailure::Credentials,
                    error: format!("request not sent: {e}"),
                    after: None,
                };
            }
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Answer::Retry {
                    reason: if e.is_timeout() {
                        SendFailure::Timeout
                    } else {
                        SendFailure::Network
                    },
                    error: without_url(&e),
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
        let message = http_client::error_body(response).await;
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Answer::Retry {
                reason: SendFailure::Status(status.as_u16()),
                error: http_error(status, &message),
                after,
            };
        }
        if status == StatusCode::UNAUTHORIZED {
            self.credentials.refused().await;
        }
        if misconfigured(status) {
            return Answer::Misconfigured {
                status: status.as_u16(),
                message,
            };
        }
        Answer::Rejected {
            status: status.as_u16(),
            message,
        }
    }

    /// Sends one batch until the receiver accepts or rejects it, backing off
    /// between attempts, or until it answers that the sender is
    /// misconfigured (`Held`, at once: the caller decides how long to
    /// hold). Gives up only when `shutdown` turns true. `backlog` is the queue behind the batch,
    /// for the log's summaries.
    pub async fn deliver(
        &self,
        body: Vec<u8>,
        samples: usize,
        backlog: Option<&dyn Queue>,
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
            let delay = match self.post(body.clone()).await {
                Answer::Accepted => {
                    self.metrics
                        .sent(samples as u64, started.elapsed().as_secs_f64(), now_ms());
                    if let Some(ended) = self.status.delivered() {
                        self.log_recovery(ended, samples, backlog);
                    }
                    return Delivery::Accepted;
                }
                Answer::Rejected { status, message } => {
                    self.reject(status, &message, samples);
                    return Delivery::Rejected;
                }
                Answer::Misconfigured { status, message } => {
                    self.metrics.send_error(SendFailure::Status(status));
                    let error =
                        http_error(StatusCode::from_u16(status).unwrap_or_default(), &message);
                    if self.status.failed(&error) != Report::Quiet {
                        error!(
                            remote_name = %self.settings.name,
                            url = %self.url,
                            status,
                            "remote write refused: {}; check the endpoint's url and credentials. \
                             The queue is kept and the batch retried every {:?} (said again once a minute)",
                            error,
                            self.settings.max_backoff,
                        );
                    }
                    self.metrics.retried();
                    return Delivery::Held { status };
                }
                Answer::Retry {
                    reason,
                    error,
                    after,
                } => {
                    self.metrics.send_error(reason);
                    self.log_failure(&error, backlog);
                    if *shutdown.borrow() {
                        return Delivery::Abandoned;
                    }
                    self.metrics.retried();
                    let delay = backoff.next().unwrap_or(self.settings.max_backoff);
                    let delay = after.map_or(delay, |after| after.max(delay));
                    debug!(?reason, ?delay, "remote write will retry");
                    delay
                }
            };
            // A shutdown during the wait still tries once more: the batch
            // may go through, and if not, the next failure ends it.
            wait(delay, shutdown).await;
        }
    }

    /// Sends every family's metadata when `schedule` says it is due. A
    /// failure is logged (at most once a minute) and the send tried again
    /// at the schedule's next check.
    async fn send_metadata(
        &self,
        schedule: &mut MetadataSchedule,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let Some(families) = schedule.due(Instant::now(), generation(), families) else {
            return;
        };
        let posted = tokio::select! {
            posted = self.post_metadata(&families) => posted,
            _ = shutdown.changed() => return,
        };
        match posted {
            Ok(()) => {
                debug!(families = families.len(), "remote write: metadata sent");
                schedule.sent(families, Instant::now());
            }
            Err(error) => {
                if self.metadata_failures.ready() {
                    warn!(
                        remote_name = %self.settings.name,
                        url = %self.url,
                        "remote write: metadata not accepted ({error}); tried again in {:?} (said again once a minute)",
                        metadata::CHECK_EVERY
                    );
                }
            }
        }
    }

    /// Posts the metadata of `families` once, in as many requests as it
    /// takes; the error of the first that was not accepted.
    pub(crate) async fn post_metadata(&self, families: &[Family]) -> Result<(), String> {
        for body in metadata::requests(families) {
            match self.post(body.into()).await {
                Answer::Accepted => {}
                Answer::Rejected { status, message }
                | Answer::Misconfigured { status, message } => {
                    let status = StatusCode::from_u16(status).unwrap_or_default();
                    return Err(http_error(status, &message));
                }
                Answer::Retry { error, .. } => return Err(error),
            }
        }
        Ok(())
    }

    fn reject(&self, status: u16, message: &str, samples: usize) {
        self.metrics.send_error(SendFailure::Status(status));
        self.metrics.dropped(DropReason::Rejected, samples as u64);
        // `message` is `http_client::error_body`'s: escaped already.
        self.status
            .rejected(&format!("HTTP {status} (batch dropped): {message}"));
        if self.rejections.ready() {
            warn!(
                remote_name = %self.settings.name,
                url = %self.url,
                status,
                samples,
                "remote write rejected a batch; dropping it (more rejections within a minute are only counted): {message}"
            );
        }
    }

    /// A failure that will be retried: the first at once, then a summary a minute.
    fn log_failure(&self, error: &str, backlog: Option<&dyn Queue>) {
        let error = crate::untrusted::one_line(error);
        match self.status.failed(&error) {
            Report::Quiet => {}
            Report::Started => warn!(
                remote_name = %self.settings.name,
                url = %self.url,
                "remote write failing, retrying with backoff; the queue keeps the samples: {error}"
            ),
            Report::Continuing { lasted, failures } => {
                let (queued, oldest_s) = backlog_now(backlog);
                warn!(
                    remote_name = %self.settings.name,
                    url = %self.url,
                    failures,
                    queued_samples = queued,
                    oldest_sample_age_seconds = oldest_s,
                    "remote write still failing after {}: {failures} failed attempts, {queued} samples queued, the oldest {oldest_s} s old; last error: {error}",
                    humantime::format_duration(whole_seconds(lasted)),
                );
            }
        }
    }

    fn log_recovery(&self, ended: Ended, samples: usize, backlog: Option<&dyn Queue>) {
        let (queued, _) = backlog_now(backlog);
        info!(
            remote_name = %self.settings.name,
            url = %self.url,
            failed_attempts = ended.failures,
            "remote write delivering again after {} of failures ({} failed attempts); this request sent {samples} samples, {queued} samples queued",
            humantime::format_duration(whole_seconds(ended.lasted)),
            ended.failures,
        );
    }

    /// Whether a batch is due: when the queue holds a full batch or its
    /// oldest sample has waited `flush_deadline`, and `pace` allows (not
    /// when stopping, which flushes at once). Otherwise it waits for what
    /// could change that (a push, the deadline, the pace, `shutdown`) and
    /// says to look again; `Never` once stopping finds the queue empty.
    async fn due(
        &self,
        queue: &dyn Queue,
        pace: &Pace,
        stopping: bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Due {
        // The counters decide whether to send yet: woken by every push,
        // the sender must not read a batch only to wait again.
        let stats = queue.stats();
        let Some(oldest_ms) = stats.oldest_timestamp_ms else {
            if stopping {
                return Due::Never;
            }
            tokio::select! {
                _ = queue.pushed().notified() => {}
                _ = shutdown.changed() => {}
            }
            return Due::Later;
        };
        let wait_ms = oldest_ms + self.settings.flush_deadline.as_millis() as i64 - now_ms();
        let full = stats.samples >= self.settings.max_samples_per_send;
        if !stopping && !full && wait_ms > 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
                _ = queue.pushed().notified() => {}
                _ = shutdown.changed() => {}
            }
            return Due::Later;
        }
        let paced = pace.wait(Instant::now());
        if !stopping && !paced.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(paced) => {}
                _ = shutdown.changed() => {}
            }
            return Due::Later;
        }
        Due::Now {
            backlog: stats.samples,
        }
    }

    /// Drains `queue` until `shutdown`: waits for a full batch or for the
    /// oldest sample to reach `flush_deadline`, and for `Pace` to allow
    /// it, sends, acknowledges. Stopping flushes without pacing.
    pub async fn run(&self, queue: Arc<dyn Queue>, mut shutdown: watch::Receiver<bool>) {
        let mut encoder = encode::Encoder::default();
        let mut pace = Pace::new(self.settings.max_samples_per_second);
        let mut relabel = WriteRelabel::new(&self.settings.write_relabel);
        let mut metadata = self.settings.metadata_interval.map(MetadataSchedule::new);
        // Woken when the queue fills from empty, or holds a full batch;
        // otherwise the deadline's timer wakes it.
        queue.notify_from(self.settings.max_samples_per_send);
        loop {
            let stopping = *shutdown.borrow();
            if let (Some(schedule), false) = (&mut metadata, stopping) {
                self.send_metadata(schedule, &mut shutdown).await;
            }
            let backlog = match self.due(&*queue, &pace, stopping, &mut shutdown).await {
                Due::Now { backlog } => backlog,
                Due::Later => continue,
                Due::Never => return,
            };
            let per_send = self.settings.max_samples_per_send;
            let shards = shards_for(backlog, per_send, self.settings.max_shards);
            let batch = peek(&queue, per_send * shards).await;
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
            let last_seq = batch.last().map_or(first.seq, |q| q.seq);
            let batch = relabel.batch(batch);
            let sent = self
                .send(&mut encoder, batch, shards, &*queue, &mut pace, &shutdown)
                .await;
            match sent {
                // The rules dropped every series: nothing to send.
                None => queue.ack(last_seq),
                // A write of the position in place (and, once a segment is
                // done, its deletion): short enough for this worker.
                Some(Delivery::Accepted | Delivery::Rejected) => queue.ack(last_seq),
                // Held for `max_backoff`, then taken again from the queue,
                // so that `max_age` and the disk bound apply to what is held.
                Some(Delivery::Held { .. }) => {
                    if !stopping && wait(self.settings.max_backoff, &mut shutdown).await {
                        continue;
                    }
                    warn_unsent(&*queue);
                    return;
                }
                Some(Delivery::Abandoned) => {
                    warn_unsent(&*queue);
                    return;
                }
            }
        }
    }

    /// Sends `batch` as `shards` requests at once (`shards.rs`), each
    /// until it is taken or refused; what they came to together, `None`
    /// when there was no sample to send. The queue may be acknowledged
    /// past the batch only when every request was accepted or rejected.
    async fn send(
        &self,
        encoder: &mut encode::Encoder,
        batch: Vec<Queued>,
        shards: usize,
        queue: &dyn Queue,
        pace: &mut Pace,
        shutdown: &watch::Receiver<bool>,
    ) -> Option<Delivery> {
        let requests = self.encode(encoder, batch, shards);
        if requests.is_empty() {
            return None;
        }
        pace.sent(requests.iter().map(|e| e.samples).sum(), Instant::now());
        let deliveries = requests.into_iter().map(|encoded| {
            let mut shutdown = shutdown.clone();
            async move {
                self.deliver(encoded.body, encoded.samples, Some(queue), &mut shutdown)
                    .await
            }
        });
        let outcomes = futures_util::future::join_all(deliveries).await;
        let held = outcomes.iter().find_map(|d| match d {
            Delivery::Held { status } => Some(*status),
            _ => None,
        });
        Some(if outcomes.contains(&Delivery::Abandoned) {
            Delivery::Abandoned
        } else if let Some(status) = held {
            Delivery::Held { status }
        } else {
            Delivery::Accepted
        })
    }

    /// `batch` split into `shards` parts (by series), each encoded in turn
    /// through the one `encoder`; the requests that hold samples. The
    /// batch and its parts end here and the encoder keeps its buffers:
    /// what is in flight while the requests are answered is their
    /// compressed bodies alone.
    fn encode(
        &self,
        encoder: &mut encode::Encoder,
        batch: Vec<Queued>,
        shards: usize,
    ) -> Vec<encode::Encoded> {
        let parts = if shards == 1 {
            vec![batch]
        } else {
            shards::split(&batch, shards)
        };
        let mut requests = Vec::with_capacity(parts.len());
        for part in &parts {
            let encoded = encoder.encode(part);
            if encoded.out_of_order > 0 {
                self.metrics
                    .dropped(DropReason::OutOfOrder, encoded.out_of_order as u64);
            }
            if encoded.samples > 0 {
                requests.push(encoded);
            }
        }
        requests
    }
}

/// A status and the start of the body the receiver sent with it.
fn http_error(status: StatusCode, message: &str) -> String {
    if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {message}")
    }
}

fn warn_unsent(queue: &dyn Queue) {
    warn!(
        samples = queue.stats().samples,
        "shutting down with samples the receiver has not accepted; they stay queued on disk"
    );
}

/// Sleeps `delay` or until shutdown; whether the whole delay passed.
async fn wait(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = shutdown.changed() => false,
    }
}

/// Samples queued and the age of the oldest, in seconds.
fn backlog_now(backlog: Option<&dyn Queue>) -> (usize, i64) {
    let stats = backlog.map(|q| q.stats()).unwrap_or_default();
    let age_ms = stats
        .oldest_timestamp_ms
        .map_or(0, |oldest| (now_ms() - oldest).max(0));
    (stats.samples, age_ms / 1000)
}

fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
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

/// A reqwest error's text with its causes ("error sending request" alone
/// says nothing), without the URL, which may carry a token in its query.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(i) = text.find(" for url (") {
        text.truncate(i);
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
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
