//! The durable queue's figures: disk bytes per sample, append rate with and
//! without fsync, and how fast a backlog drains through the sender to a
//! receiver that accepts at once (so the figure is redpush's, not the
//! receiver's). Readings are the real Redis 7.0 INFO of tests/fixtures,
//! mapped as the agent maps them.
//!
//! Run: cargo bench --bench queue

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use redpush::testing::Info;
use redpush::testing::{DiskQueue, Fsync, WalSettings};
use redpush::testing::{Endpoint, RemoteWriteSettings};
use redpush::testing::{EndpointMetrics, SelfMetrics};
use redpush::testing::{Families, Kind};
use redpush::testing::{MapOptions, Reading, ServerConfig, Slowlog, map_reading};
use redpush::testing::{Queue, Record};
use redpush::testing::{Sender, now_ms};
use redpush::testing::{flatten, target_labels};
use tokio::net::TcpListener;
use tokio::sync::watch;

const RECORDS: usize = 600;
/// The drain's backlog, in rounds of `RECORDS` readings.
const DRAIN_ROUNDS: usize = 10;

fn reading(timestamp_ms: i64) -> Arc<Record> {
    let text = include_str!("../tests/fixtures/info-redis7.0-primary.txt");
    let info = Info::parse(text);
    let config = ServerConfig::from_pairs([
        ("maxmemory", "0"),
        ("maxclients", "10000"),
        ("databases", "16"),
    ]);
    let mut families = Families::new();
    families.plain("redis_up", Kind::Gauge, 1.0);
    map_reading(
        &Reading {
            info: &info,
            config: Some(&config),
            slowlog: Some(Slowlog::default()),
            extras: Default::default(),
            now_secs: timestamp_ms as f64 / 1000.0,
        },
        MapOptions::default(),
        &mut families,
    );
    let target = target_labels([
        ("job", "redis"),
        ("instance", "10.1.2.3:6379"),
        ("region", "eu-west-1"),
    ]);
    let mut series = Vec::new();
    flatten(&families, &[], &mut series);
    Arc::new(Record {
        timestamp_ms,
        target,
        series,
        histograms: Vec::new(),
    })
}

fn open(dir: &std::path::Path, fsync: Fsync) -> Arc<DiskQueue> {
    let settings = WalSettings::new(dir.join("wal"), 1 << 30, Duration::from_secs(7200), fsync);
    let (queue, _) = DiskQueue::open(settings, Arc::new(SelfMetrics::default())).expect("queue");
    Arc::new(queue)
}

/// A receiver that reads each request and answers 204 at once.
async fn null_receiver() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!(
        "http://{}/api/v1/write",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    let mut response = hyper::Response::new(Full::new(Bytes::new()));
                    *response.status_mut() = hyper::StatusCode::NO_CONTENT;
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

fn main() {
    let start_ms = now_ms() - RECORDS as i64 * 1000;
    let records: Vec<Arc<Record>> = (0..RECORDS)
        .map(|i| reading(start_ms + i as i64 * 1000))
        .collect();
    let samples: usize = records.iter().map(|r| r.series.len()).sum();
    println!(
        "{RECORDS} readings of the Redis 7.0 reference INFO, {} samples each",
        records[0].series.len()
    );

    for fsync in [Fsync::Always, Fsync::Never] {
        let dir = tempfile::TempDir::new().expect("dir");
        let queue = open(dir.path(), fsync);
        let started = Instant::now();
        for r in &records {
            queue.push(r.clone());
        }
        let elapsed = started.elapsed();
        let bytes = queue.stats().bytes;
        println!(
            "append, fsync {fsync:?}: {:.0} readings/s ({:.0} samples/s); {:.1} disk bytes per sample",
            RECORDS as f64 / elapsed.as_secs_f64(),
            samples as f64 / elapsed.as_secs_f64(),
            bytes as f64 / samples as f64
        );
    }

    // Drain: the whole backlog written first (as after an outage), then sent.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::TempDir::new().expect("dir");
    let queue = open(dir.path(), Fsync::Never);
    // Ten times the readings above: long enough a drain to time.
    let backlog = DRAIN_ROUNDS * samples;
    for round in 0..DRAIN_ROUNDS {
        let offset = (round * RECORDS) as i64 * 1000;
        for r in &records {
            queue.push(Arc::new(Record {
                timestamp_ms: r.timestamp_ms - DRAIN_ROUNDS as i64 * RECORDS as i64 * 1000 + offset,
                ..Record::clone(r)
            }));
        }
    }
    // Reopen, so the backlog is read from disk, not from the in-memory cache.
    drop(queue);
    let queue = open(dir.path(), Fsync::Never);
    runtime.block_on(async {
        let url = null_receiver().await;
        let settings = RemoteWriteSettings {
            name: "null".to_owned(),
            key: "remote_write".to_owned(),
            endpoint: Endpoint {
                url,
                timeout: Duration::from_secs(30),
                basic_auth: None,
                bearer_token_file: None,
                oauth2: None,
                sigv4: None,
                tls: None,
            },
            flush_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            max_samples_per_send: 5000,
            max_samples_per_second: None,
            max_shards: 1,
            headers: Vec::new(),
            write_relabel: Default::default(),
            metadata_interval: None,
        };
        let metrics = Arc::new(EndpointMetrics::new("null", &settings.endpoint.url));
        let sender = Sender::new(settings, metrics.clone()).expect("sender");
        let (stop, stop_rx) = watch::channel(false);
        let q: Arc<dyn Queue> = queue.clone();
        let started = Instant::now();
        let task = tokio::spawn(async move { sender.run(q, stop_rx).await });
        while queue.stats().records > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let elapsed = started.elapsed();
        let _ = stop.send(true);
        let _ = task.await;
        println!(
            "backlog drain (default max_samples_per_send 5000): {backlog} samples in {:.2} s = {:.0} samples/s; \
             at a 1 s interval a target makes {} samples/s",
            elapsed.as_secs_f64(),
            metrics.samples_sent() as f64 / elapsed.as_secs_f64(),
            records[0].series.len()
        );
    });
}
