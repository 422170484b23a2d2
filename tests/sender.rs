//! The remote-write sender against a receiver that answers what the test
//! tells it to (503, 429 with Retry-After, 400, 202, a hang, a closed
//! connection): faults a real Prometheus cannot be made to produce on
//! command. Every request it gets is decoded and checked against the
//! protocol rules.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::exposition::Page;
use common::fault_receiver::{Fault, FaultReceiver};
use common::{wait_until, when};
use redpush::testing::Kind;
use redpush::testing::Sender;
use redpush::testing::{DiskQueue, Fsync, WalSettings};
use redpush::testing::{DropReason, Queue, Record, Series};
use redpush::testing::{Endpoint, RemoteWriteSettings};
use redpush::testing::{EndpointMetrics, SelfMetrics};
use redpush::testing::{shape, target_labels};
use tokio::sync::watch;

fn settings(url: &str) -> RemoteWriteSettings {
    RemoteWriteSettings {
        name: "receiver".to_owned(),
        key: "remote_write".to_owned(),
        endpoint: Endpoint {
            url: url.to_owned(),
            timeout: Duration::from_secs(5),
            basic_auth: None,
            bearer_token_file: None,
            oauth2: None,
            sigv4: None,
            tls: None,
        },
        flush_deadline: Duration::from_millis(200),
        min_backoff: Duration::from_millis(30),
        max_backoff: Duration::from_millis(200),
        max_samples_per_send: 1000,
        max_samples_per_second: None,
        max_shards: 1,
        headers: vec![("X-Scope-OrgID".to_owned(), "tenant-1".to_owned())],
        write_relabel: Default::default(),
        metadata_interval: None,
    }
}

/// The two series of every record, of one target.
fn record(ts: i64, value: f64) -> Record {
    Record {
        timestamp_ms: ts,
        target: target_labels([("instance", "h:6379"), ("job", "redis")]),
        series: vec![
            Series {
                shape: shape("redis_up", Kind::Gauge, "", &[]),
                value: 1.0,
            },
            Series {
                shape: shape("redis_connected_clients", Kind::Gauge, "", &[]),
                value,
            },
        ],
        histograms: Vec::new(),
    }
}

/// Runs the sender over `records` until the queue is empty or 10 s pass.
fn drain(receiver_url: &str, records: Vec<Record>) -> Arc<SelfMetrics> {
    drain_with(settings(receiver_url), records)
}

fn drain_with(settings: RemoteWriteSettings, records: Vec<Record>) -> Arc<SelfMetrics> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let metrics = Arc::new(SelfMetrics::default());
    let dir = tempfile::TempDir::new().expect("dir");
    // Timestamps here are small numbers: no age limit.
    let century = Duration::from_secs(100 * 365 * 24 * 3600);
    let mut wal = WalSettings::new(dir.path().join("wal"), 64 << 20, century, Fsync::Never);
    // Read as the agent reads: by a reader named as its endpoint.
    wal.readers = vec!["receiver".to_owned()];
    let (queue, _) = DiskQueue::open(wal, metrics.clone()).expect("queue");
    let queue: Arc<dyn Queue> = Arc::new(queue);
    for r in records {
        queue.push(Arc::new(r));
    }
    let endpoint = Arc::new(EndpointMetrics::new("receiver", &settings.endpoint.url));
    metrics.set_endpoints(vec![endpoint.clone()]);
    let sender = Sender::new(settings, endpoint).expect("sender");
    let (stop, stop_rx) = watch::channel(false);
    let q = queue.clone();
    let task = runtime.spawn(async move { sender.run(q, stop_rx).await });
    wait_until("the queue drained", Duration::from_secs(10), || {
        let stats = queue.stats();
        when(stats.records == 0, (), || format!("{stats:?}"))
    });
    let _ = stop.send(true);
    let _ = runtime.block_on(task);
    metrics
}

/// All samples the receiver accepted, per series name, in arrival order.
#[test]
fn retries_5xx_and_429_then_delivers_in_order() {
    let receiver = FaultReceiver::start(
        vec![Fault::Status(503), Fault::Status(429), Fault::Status(500)],
        Fault::Status(204),
    );
    let started = std::time::Instant::now();
    let records: Vec<Record> = (0..5).map(|i| record(1_000 + i, i as f64)).collect();
    let metrics = drain(&receiver.url, records);
    // Retry-After: 1 was honoured.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(receiver.requests(), 4, "three refusals and one success");
    // The retried batch is the same batch: every attempt carried all five samples.
    let attempts = receiver.with_received(|r| {
        r.iter()
            .map(|r| r.request.timeseries[0].samples.len())
            .collect::<Vec<_>>()
    });
    assert_eq!(attempts, vec![5, 5, 5, 5]);
    let clients = receiver.accepted("redis_connected_clients", &[]);
    assert_eq!(
        clients,
        vec![
            (1000, 0.0),
            (1001, 1.0),
            (1002, 2.0),
            (1003, 3.0),
            (1004, 4.0)
        ]
    );
    assert_eq!(metrics.samples_sent(), 10);
    let page = render(&metrics);
    assert_eq!(errors(&page, "503"), Some(1.0), "{page}");
    assert_eq!(errors(&page, "429"), Some(1.0), "{page}");
    let retries =
        Page::parse(&page).total("redpush_send_retries_total", &[("remote_name", "receiver")]);
    assert_eq!(retries, Some(3.0), "{page}");
}

#[test]
fn a_400_drops_the_batch_counts_it_and_goes_on() {
    let receiver = FaultReceiver::start(vec![Fault::Status(400)], Fault::Status(204));
    let metrics = drain(&receiver.url, vec![record(1_000, 1.0)]);
    assert_eq!(metrics.dropped_count(DropReason::Rejected), 2);
    assert_eq!(metrics.samples_sent(), 0);
    // The next batch goes through.
    let metrics = drain(&receiver.url, vec![record(2_000, 2.0)]);
    assert_eq!(metrics.samples_sent(), 2);
    assert_eq!(receiver.accepted("redis_up", &[]), vec![(2000, 1.0)]);
}

#[test]
fn statuses_of_a_misconfigured_sender_hold_the_batch_other_4xx_drop_it() {
    for status in [401, 403, 404, 407, 301, 302, 307, 308] {
        let receiver = FaultReceiver::start(vec![Fault::Status(status)], Fault::Status(204));
        let metrics = drain(&receiver.url, vec![record(1_000, 1.0), record(2_000, 2.0)]);
        assert_eq!(
            receiver.requests(),
            2,
            "{status}: refused, then the same batch"
        );
        assert_eq!(
            receiver.accepted("redis_connected_clients", &[]),
            vec![(1000, 1.0), (2000, 2.0)],
            "{status}"
        );
        assert_eq!(metrics.dropped_count(DropReason::Rejected), 0, "{status}");
        let page = render(&metrics);
        assert_eq!(errors(&page, &status.to_string()), Some(1.0), "{page}");
    }
    for status in [409, 413, 422] {
        let receiver = FaultReceiver::start(vec![Fault::Status(status)], Fault::Status(204));
        let metrics = drain(&receiver.url, vec![record(1_000, 1.0)]);
        assert_eq!(receiver.requests(), 1, "{status}: never sent again");
        assert_eq!(metrics.dropped_count(DropReason::Rejected), 2, "{status}");
    }
}

#[test]
fn a_202_counts_as_accepted() {
    let receiver = FaultReceiver::start(vec![Fault::Status(202)], Fault::Status(204));
    let metrics = drain(&receiver.url, vec![record(1_000, 1.0)]);
    assert_eq!(receiver.requests(), 1);
    assert_eq!(metrics.samples_sent(), 2);
}

#[test]
fn a_hung_or_closed_connection_is_retried() {
    let receiver = FaultReceiver::start(vec![Fault::Hang, Fault::Close], Fault::Status(204));
    let mut s = settings(&receiver.url);
    s.endpoint.timeout = Duration::from_millis(500);
    let metrics = drain_with(s, vec![record(1_000, 1.0)]);
    assert_eq!(receiver.requests(), 3);
    assert_eq!(receiver.accepted("redis_up", &[]), vec![(1000, 1.0)]);
    let page = render(&metrics);
    assert_eq!(errors(&page, "timeout"), Some(1.0), "{page}");
    assert_eq!(errors(&page, "network"), Some(1.0), "{page}");
}

#[test]
fn requests_follow_the_protocol() {
    let receiver = FaultReceiver::start(vec![], Fault::Status(204));
    drain(
        &receiver.url,
        (0..3).map(|i| record(5_000 + i, 7.0)).collect(),
    );
    receiver.with_received(|received| {
        let first = &received[0];
        let header = |name: &str| {
            first
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("content-encoding"), Some("snappy"));
        assert_eq!(header("content-type"), Some("application/x-protobuf"));
        assert_eq!(header("x-prometheus-remote-write-version"), Some("0.1.0"));
        assert_eq!(header("x-scope-orgid"), Some("tenant-1"));
        assert!(header("user-agent").is_some_and(|ua| ua.starts_with("redpush/")));
        // Several samples per series in one request, within the flush deadline.
        assert_eq!(received.len(), 1);
        for ts in &first.request.timeseries {
            assert_eq!(ts.samples.len(), 3);
            assert!(
                ts.samples
                    .windows(2)
                    .all(|w| w[0].timestamp < w[1].timestamp)
            );
            let names: Vec<&[u8]> = ts.labels.iter().map(|l| l.name.as_bytes()).collect();
            assert!(
                names.windows(2).all(|w| w[0] < w[1]),
                "labels sorted: {names:?}"
            );
        }
    });
}

/// The endpoint's failed requests for `status` on a rendered page.
fn errors(page: &str, status: &str) -> Option<f64> {
    let labels = [("remote_name", "receiver"), ("status", status)];
    Page::parse(page).total("redpush_send_errors_total", &labels)
}

fn render(metrics: &SelfMetrics) -> String {
    let mut out = String::new();
    redpush::testing::write_families(&mut out, &metrics.families(&[], 0), &[]);
    out
}

#[test]
fn a_backlog_is_sent_no_faster_than_max_samples_per_second() {
    let receiver = FaultReceiver::start(vec![], Fault::Status(204));
    let mut s = settings(&receiver.url);
    // 400 samples (200 records of 2) in batches of 100 at 200 a second:
    // the four batches go out over at least 1.5 s, in order, all of them.
    s.max_samples_per_send = 100;
    s.max_samples_per_second = Some(200);
    let records: Vec<Record> = (0..200).map(|i| record(1_000 + i, i as f64)).collect();
    let started = std::time::Instant::now();
    drain_with(s, records);
    let took = started.elapsed();
    assert_eq!(receiver.requests(), 4);
    assert!(took >= Duration::from_millis(1500), "sent within {took:?}");
    let clients = receiver.accepted("redis_connected_clients", &[]);
    assert_eq!(clients.len(), 200);
    assert!(clients.windows(2).all(|w| w[0].0 < w[1].0));
}
