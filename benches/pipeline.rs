//! The hot path per reading, timed and with its heap allocations counted:
//! INFO parse, mapping, flatten to shared series, the stale check, the
//! queue's disk frame, the remote-write request (protobuf + snappy) and the
//! text exposition, for the real Redis 7.0 INFO of tests/fixtures and for a
//! large one (200 commands in commandstats, 16 databases, 10 replicas).
//!
//! Run: cargo bench --bench pipeline

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use redpush::testing::Info;
use redpush::testing::StaleTracker;
use redpush::testing::frame;
use redpush::testing::write_series;
use redpush::testing::{Encoder, encode};
use redpush::testing::{Families, Kind};
use redpush::testing::{Flattener, Matched, flatten, target_labels};
use redpush::testing::{MapOptions, Reading, ServerConfig, Slowlog, map_reading};
use redpush::testing::{Queued, Record};

/// Counts allocations so the figures include allocations per reading.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` `n` times; prints ns and allocations per run.
fn measure(name: &str, n: u32, mut f: impl FnMut()) {
    for _ in 0..n / 10 {
        f();
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    let ns = started.elapsed().as_nanos() as f64 / n as f64;
    let per = (ALLOCATIONS.load(Ordering::Relaxed) - allocations) as f64 / n as f64;
    println!("  {name:<34} {:>10.0} ns   {:>8.0} allocations", ns, per);
}

fn large_info() -> String {
    let mut text =
        include_str!("../tests/fixtures/info-redis7.0-primary.txt").replace("\r\n", "\n");
    let cut = text.find("# Commandstats").expect("section");
    text.truncate(cut);
    text.push_str("# Commandstats\n");
    for i in 0..200 {
        text.push_str(&format!("cmdstat_command{i}:calls={},usec={},usec_per_call=1.00,rejected_calls=0,failed_calls=0\n", i * 7, i * 11));
    }
    text.push_str("# Errorstats\nerrorstat_ERR:count=3\n# Latencystats\n");
    for i in 0..200 {
        text.push_str(&format!(
            "latency_percentiles_usec_command{i}:p50=1.003,p99=2.007,p99.9=4.015\n"
        ));
    }
    text.push_str("# Replication\nrole:master\nconnected_slaves:10\n");
    for i in 0..10 {
        text.push_str(&format!(
            "slave{i}:ip=10.0.0.{i},port=6379,state=online,offset=100,lag=0\n"
        ));
    }
    text.push_str("# Keyspace\n");
    for db in 0..16 {
        text.push_str(&format!(
            "db{db}:keys={},expires=1,avg_ttl=1000\n",
            db * 100 + 1
        ));
    }
    text
}

fn run(label: &str, text: &str) {
    let config = ServerConfig::from_pairs([
        ("maxmemory", "0"),
        ("maxclients", "10000"),
        ("databases", "16"),
    ]);
    let target = target_labels([("job", "redis"), ("instance", "10.1.2.3:6379")]);
    let map = |info: &Info<'_>| {
        let mut families = Families::new();
        families.plain("redis_up", Kind::Gauge, 1.0);
        map_reading(
            &Reading {
                info,
                config: Some(&config),
                slowlog: Some(Slowlog::default()),
                extras: Default::default(),
                now_secs: 1.7e9,
            },
            MapOptions::default(),
            &mut families,
        );
        families
    };
    let info = Info::parse(text);
    let families = map(&info);
    println!(
        "{label}: {} bytes of INFO, {} fields, {} samples",
        text.len(),
        info.fields().len(),
        families.sample_count()
    );
    measure("parse INFO", 20_000, || {
        black_box(Info::parse(black_box(text)));
    });
    measure("map to families", 5_000, || {
        black_box(map(black_box(&info)));
    });
    // A target's first reading: every point looked up in the catalogue
    // (whose shapes exist already: only the process' first target creates them).
    let mut previous = Vec::new();
    flatten(&families, &[], &mut previous);
    measure("flatten, first reading of a target", 2_000, || {
        let mut series = Vec::with_capacity(families.sample_count());
        flatten(black_box(&families), &[], &mut series);
        black_box(series);
    });
    // The steady state: each point where it was in the reading before.
    measure("flatten, later readings", 5_000, || {
        let mut series = Vec::with_capacity(previous.len());
        flatten(black_box(&families), &previous, &mut series);
        black_box(series);
    });
    // The agent's way: a fingerprint of the reading tells it is like the
    // one before, and no shape is compared (here the shapes are all in
    // cache, as they are not at 1000 targets: see bench/scale.sh).
    let mut flattener = Flattener::default();
    flattener.flatten(&families, &previous, &mut Vec::new());
    measure("flatten, reading like the last", 5_000, || {
        let mut series = Vec::with_capacity(previous.len());
        flattener.flatten(black_box(&families), &previous, &mut series);
        black_box(series);
    });
    let mut stale = StaleTracker::default();
    // A reading whose series differ from the last (sort and merge); with
    // the same series as the last complete reading the check is free.
    measure("stale check, series changed", 5_000, || {
        black_box(stale.markers(
            black_box(&previous),
            black_box(&previous),
            &Matched::unknown(previous.len()),
        ));
    });
    let record = Record {
        timestamp_ms: 1_700_000_000_000,
        target: target.clone(),
        series: previous.clone(),
        histograms: Vec::new(),
    };
    // Within a segment, after its first frame defined the shapes.
    let mut defined = frame::Defined::default();
    let mut scratch = frame::Scratch::default();
    let mut frame_bytes = Vec::new();
    frame::encode(
        &record,
        &mut defined,
        &mut Vec::new(),
        &mut scratch,
        &mut frame_bytes,
    )
    .expect("frame");
    let mut added = Vec::new();
    measure("queue frame (ids, snappy, crc)", 5_000, || {
        frame_bytes.clear();
        added.clear();
        frame::encode(
            black_box(&record),
            &mut defined,
            &mut added,
            &mut scratch,
            &mut frame_bytes,
        )
        .expect("frame");
    });
    println!(
        "  queue frame: {} bytes = {:.2} bytes per sample",
        frame_bytes.len(),
        frame_bytes.len() as f64 / record.series.len() as f64
    );
    // One request of 5 readings of the same target, as a 1 s interval with
    // the 5 s flush deadline sends it; figures per reading.
    let batch: Vec<Queued> = (0..5)
        .map(|i| {
            let mut series = Vec::new();
            flatten(&families, &previous, &mut series);
            Queued {
                seq: i,
                record: Arc::new(Record {
                    timestamp_ms: 1_700_000_000_000 + i as i64 * 1000,
                    target: target.clone(),
                    series,
                    histograms: Vec::new(),
                }),
            }
        })
        .collect();
    let encoded = encode(&batch);
    println!(
        "  remote-write body: {} bytes for {} samples = {:.2} bytes per sample",
        encoded.body.len(),
        encoded.samples,
        encoded.body.len() as f64 / encoded.samples as f64
    );
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let started = Instant::now();
    let n = 500;
    // The sender's encoder, which keeps its buffers from batch to batch.
    let mut encoder = Encoder::default();
    for _ in 0..n {
        black_box(encoder.encode(black_box(&batch)));
    }
    println!(
        "  {:<34} {:>10.0} ns   {:>8.0} allocations",
        "encode (protobuf + snappy), /reading",
        started.elapsed().as_nanos() as f64 / (n * 5) as f64,
        (ALLOCATIONS.load(Ordering::Relaxed) - allocations) as f64 / (n * 5) as f64
    );
    // With many targets a request holds one reading each of many targets
    // (bench/scale.sh): every series carries its labels for one sample.
    let many: Vec<Queued> = (0..16)
        .map(|i| {
            let instance = format!("10.1.2.{i}:6379");
            Queued {
                seq: i,
                record: Arc::new(Record {
                    timestamp_ms: 1_700_000_000_000,
                    target: target_labels([("job", "redis"), ("instance", instance.as_str())]),
                    series: previous.clone(),
                    histograms: Vec::new(),
                }),
            }
        })
        .collect();
    let encoded = encode(&many);
    println!(
        "  remote-write body, 16 targets: {:.2} bytes per sample",
        encoded.body.len() as f64 / encoded.samples as f64
    );
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let started = Instant::now();
    for _ in 0..n {
        black_box(encoder.encode(black_box(&many)));
    }
    println!(
        "  {:<34} {:>10.0} ns   {:>8.0} allocations",
        "encode, 16 targets, /reading",
        started.elapsed().as_nanos() as f64 / (n * 16) as f64,
        (ALLOCATIONS.load(Ordering::Relaxed) - allocations) as f64 / (n * 16) as f64
    );
    measure("text exposition (/metrics)", 5_000, || {
        let mut out = String::with_capacity(64 * 1024);
        write_series(&mut out, black_box(&previous), &[]);
        black_box(out);
    });
}

fn main() {
    run(
        "Redis 7.0 reference INFO",
        include_str!("../tests/fixtures/info-redis7.0-primary.txt"),
    );
    run(
        "large INFO (200 commands, 16 dbs, 10 replicas)",
        &large_info(),
    );
}
