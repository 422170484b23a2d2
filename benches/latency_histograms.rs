//! `[metrics] latency_histograms`: classic against native against both, at
//! the Redis 7.0 reference INFO with a LATENCY HISTOGRAM reply for each of
//! its commands. Per reading: the series, the remote-write bytes (one
//! target's five readings in a request, as a 1 s interval with the 5 s
//! flush deadline sends them; and sixteen targets' one reading each, as
//! many targets send), the queue frame's bytes, and the time from the
//! replies to the encoded request (map, the target's series, the frame,
//! the encoding).
//!
//! Run: cargo bench --bench latency_histograms

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use redpush::testing::{
    CommandHistogram, Encoder, Extras, Families, Info, Kind, LatencyHistograms, MapOptions, Queued,
    Reading, Record, Slowlog, TargetSeries, frame, map_reading, target_labels,
};

const INFO: &str = include_str!("../tests/fixtures/info-redis7.0-primary.txt");

/// A LATENCY HISTOGRAM reply for every command of the reference INFO's
/// commandstats: most calls at 1 µs or below, a tail over a few levels,
/// as a lightly loaded server replies (keys 1, 2, 4, 8 and one slow level).
fn histograms(info: &Info<'_>) -> Vec<CommandHistogram> {
    const KEYS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 33.0, 66.0, 132.0, 264.0, 528.0];
    let mut out = Vec::new();
    for field in info.fields() {
        let Some(cmd) = field.key.strip_prefix("cmdstat_") else {
            continue;
        };
        let calls: f64 = field
            .value
            .split(',')
            .find_map(|p| p.strip_prefix("calls="))
            .and_then(|c| c.parse().ok())
            .unwrap_or(1.0);
        let slow = KEYS[5 + out.len() % 5];
        let shares = [
            (1.0, 0.98),
            (2.0, 0.995),
            (4.0, 0.999),
            (8.0, 0.9999),
            (slow, 1.0),
        ];
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        for (key, share) in shares {
            let cumulative = (calls * share).ceil();
            if buckets.last().is_none_or(|b| b.1 < cumulative) {
                buckets.push((key, cumulative));
            }
        }
        out.push(CommandHistogram {
            cmd: cmd.to_owned(),
            calls,
            buckets,
        });
    }
    out
}

fn families(info: &Info<'_>, histograms: &[CommandHistogram], mode: LatencyHistograms) -> Families {
    let mut families = Families::new();
    families.plain("redis_up", Kind::Gauge, 1.0);
    map_reading(
        &Reading {
            info,
            config: None,
            slowlog: Some(Slowlog::default()),
            extras: Extras {
                histograms: Some(histograms),
                ..Extras::default()
            },
            now_secs: 1.7e9,
        },
        MapOptions {
            latency_histograms: mode,
            ..MapOptions::default()
        },
        &mut families,
    );
    families
}

/// Readings `0..n` of one target, complete, one a second.
fn records(target: &mut TargetSeries, families: &Families, n: usize) -> Vec<Arc<Record>> {
    (0..n)
        .map(|i| target.record(families, 1_700_000_000_000 + i as i64 * 1000, true))
        .collect()
}

fn queued(records: &[Arc<Record>]) -> Vec<Queued> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| Queued {
            seq: i as u64,
            record: r.clone(),
        })
        .collect()
}

fn run(mode: LatencyHistograms) {
    let info = Info::parse(INFO);
    let replies = histograms(&info);
    let families = families(&info, &replies, mode);
    let labels = |i: usize| {
        let instance = format!("10.1.2.{i}:6379");
        target_labels([("job", "redis"), ("instance", instance.as_str())])
    };
    let mut target = TargetSeries::new(labels(0), true);
    let five = records(&mut target, &families, 6).split_off(1);
    let record = &five[0];
    let latency = |r: &Record| {
        r.series
            .iter()
            .filter(|s| s.shape.name() == "redis_commands_latencies_usec")
            .count()
            + r.histograms.len()
    };
    let mut encoder = Encoder::default();
    let one = encoder.encode(&queued(&five)).body.len() as f64 / 5.0;
    let sixteen: Vec<Arc<Record>> = (0..16)
        .map(|i| records(&mut TargetSeries::new(labels(i), true), &families, 1).remove(0))
        .collect();
    let many = encoder.encode(&queued(&sixteen)).body.len() as f64 / 16.0;
    let mut defined = frame::Defined::default();
    let mut scratch = frame::Scratch::default();
    let mut bytes = Vec::new();
    for r in [&five[0], &five[1]] {
        bytes.clear();
        frame::encode(r, &mut defined, &mut Vec::new(), &mut scratch, &mut bytes).expect("frame");
    }
    let frame_len = bytes.len();

    // Replies to request: map, the target's series, the frame, the encoding.
    let n = 2_000;
    let started = Instant::now();
    let mut timed = TargetSeries::new(labels(99), true);
    for i in 0..n {
        let families = families_of(&info, &replies, mode);
        let record = timed.record(&families, 1_700_000_000_000 + i * 1000, true);
        bytes.clear();
        frame::encode(
            &record,
            &mut defined,
            &mut Vec::new(),
            &mut scratch,
            &mut bytes,
        )
        .expect("frame");
        black_box(encoder.encode(&queued(&[record])));
    }
    let ns = started.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "{:<8} {:>7} {:>9} {:>9} {:>12.0} {:>12.0} {:>11} {:>10.0}",
        format!("{mode:?}").to_lowercase(),
        record.series.len() + record.histograms.len(),
        latency(record),
        record.histograms.len(),
        one,
        many,
        frame_len,
        ns / 1000.0
    );
}

fn families_of(info: &Info<'_>, replies: &[CommandHistogram], mode: LatencyHistograms) -> Families {
    families(black_box(info), black_box(replies), mode)
}

fn main() {
    println!(
        "Redis 7.0 reference INFO, {} commands with a LATENCY HISTOGRAM reply; bytes and µs per reading",
        histograms(&Info::parse(INFO)).len()
    );
    println!(
        "{:<8} {:>7} {:>9} {:>9} {:>12} {:>12} {:>11} {:>10}",
        "mode", "series", "latency", "native", "RW 1 target", "RW 16 tgts", "queue frame", "µs"
    );
    for mode in [
        LatencyHistograms::Classic,
        LatencyHistograms::Native,
        LatencyHistograms::Both,
    ] {
        run(mode);
    }
}
