//! Two remote-write endpoints over the one queue: a Prometheus and a
//! VictoriaMetrics receiver. Prometheus is stopped for 30 s of readings:
//! VictoriaMetrics receives every reading meanwhile, Prometheus gets all of
//! them, in order, once back, and the queue keeps a segment until both have
//! it. A reload down to one endpoint then deletes the removed one's
//! position while delivery to the other goes on.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::exposition::Page;
use common::servers::{Agent, Receiver, Redis, SeriesSamples};
use common::{wait_until, when};

const PROM: &str = "prom";
const VM: &str = "vm";

fn endpoint(name: &str, url: &str) -> String {
    format!(
        "\n[[remote_write]]\nname = \"{name}\"\nurl = \"{url}\"\nflush_deadline = \"1s\"\nmax_backoff = \"1s\"\n"
    )
}

/// Samples every second; a 1 MiB queue bound makes segments of 64 KiB (a
/// reading is about 1.5 KB on disk, so the second begins within a minute).
fn config(redis: &Redis, endpoints: &[String]) -> String {
    format!(
        "interval = \"1s\"\nadaptive = false\n[queue]\nmax_disk_bytes = \"1MiB\"\n[[targets]]\nurl = \"{}\"\n{}",
        redis.url(),
        endpoints.concat()
    )
}

/// Endpoint `name`'s figure of `family` on the agent's page.
fn of(page: &Page, family: &str, name: &str) -> Option<f64> {
    page.total(family, &[("remote_name", name)])
}

/// The queue's segment files, oldest first, by their first record's number.
fn segments(wal: &Path) -> Vec<u64> {
    let mut found: Vec<u64> = std::fs::read_dir(wal)
        .expect("wal dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".wal")?.parse().ok()
        })
        .collect();
    found.sort();
    found
}

fn position(wal: &Path, file: &str) -> Option<u64> {
    std::fs::read_to_string(wal.join(file))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `redis_up` as stored by `receiver` over the last `seconds`: one series,
/// its sample times in ms.
fn stored(receiver: &Receiver, instance: &str, seconds: u64) -> Vec<i64> {
    let now = redpush::testing::now_ms() as f64 / 1000.0;
    let selector = format!("redis_up{{instance=\"{instance}\"}}[{seconds}s]");
    let series: Vec<SeriesSamples> = receiver.raw_samples(&selector, now);
    assert_eq!(series.len(), 1, "{series:?}");
    (series[0].1.iter())
        .map(|(t, _)| (t * 1000.0).round() as i64)
        .collect()
}

/// Strictly increasing (in order, no duplicates) and no gap over 2.5 s:
/// nothing of a reading every second is missing.
fn assert_continuous(agent: &Agent, what: &str, times: &[i64], at_least: usize) {
    let log = || agent.process.output();
    assert!(
        times.len() >= at_least,
        "{what}: {} samples: {times:?}\n{}",
        times.len(),
        log()
    );
    for pair in times.windows(2) {
        assert!(
            pair[0] < pair[1],
            "{what}: out of order: {pair:?}\n{}",
            log()
        );
        assert!(
            pair[1] - pair[0] <= 2_500,
            "{what}: gap {pair:?}\n{}",
            log()
        );
    }
}

#[test]
fn a_stopped_endpoint_delays_neither_the_other_nor_its_own_backlog() {
    let redis = Redis::start(&[]);
    let mut prometheus = Receiver::prometheus();
    let vm = Receiver::victoria_metrics();
    let endpoints = [
        endpoint(PROM, &prometheus.write_url()),
        endpoint(VM, &vm.write_url()),
    ];
    let agent = Agent::start(&config(&redis, &endpoints), &[]);
    let started = std::time::Instant::now();
    let wal: PathBuf = agent.state_dir().join("wal");
    agent.wait_page("both endpoints delivering", |page| {
        [PROM, VM]
            .iter()
            .all(|n| of(page, "redpush_samples_sent_total", n).is_some_and(|s| s > 0.0))
    });
    assert!(wal.join("ack-prom").exists() && wal.join("ack-vm").exists());
    assert!(!wal.join("ack").exists(), "one position file per endpoint");

    // Prometheus stops: its backlog grows to 30 s and more, until a second
    // segment begins; VictoriaMetrics has the first one whole, which stays
    // until Prometheus has it too.
    prometheus.process.terminate();
    let page = agent.wait_page_within(
        "a 30 s backlog for prom",
        Duration::from_secs(120),
        |page| {
            let held = segments(&wal);
            of(page, "redpush_queue_oldest_sample_age_seconds", PROM).is_some_and(|age| age >= 30.0)
                && held.len() >= 2
                && position(&wal, "ack-vm").is_some_and(|at| at >= held[1])
        },
    );
    let vm_age = of(&page, "redpush_queue_oldest_sample_age_seconds", VM);
    assert!(
        vm_age.is_some_and(|age| age < 5.0),
        "vm keeps up: {vm_age:?}\n{}\n{}",
        agent.metrics(),
        agent.process.output()
    );
    let held = segments(&wal);
    let (prom_at, vm_at) = (position(&wal, "ack-prom"), position(&wal, "ack-vm"));
    let (prom_at, vm_at) = (prom_at.expect("ack-prom"), vm_at.expect("ack-vm"));
    assert!(
        held[0] <= prom_at,
        "prom's next record is on disk: {held:?} {prom_at}"
    );
    assert!(
        vm_at >= held[1],
        "vm is past the first segment: {held:?} {vm_at}"
    );

    // Back on the same port and data: the backlog drains, oldest first.
    prometheus = prometheus.restart();
    agent.wait_page("prom's backlog drained", |page| {
        of(page, "redpush_queue_oldest_sample_age_seconds", PROM).is_some_and(|age| age < 5.0)
    });
    wait_until(
        "the first held segment freed",
        Duration::from_secs(30),
        || {
            let now = segments(&wal);
            when(now.first() > held.first(), (), || {
                format!("{now:?} vs {held:?}")
            })
        },
    );
    let instance = redis.instance();
    let window = started.elapsed().as_secs() - 2;
    wait_until("a recent sample at prom", Duration::from_secs(30), || {
        let times = stored(&prometheus, &instance, window);
        let recent = times
            .last()
            .is_some_and(|t| redpush::testing::now_ms() - t < 3_000);
        when(recent, (), || format!("{:?}", times.last()))
    });
    let expected = window as usize - 4;
    assert_continuous(
        &agent,
        "prom",
        &stored(&prometheus, &instance, window),
        expected,
    );
    assert_continuous(&agent, "vm", &stored(&vm, &instance, window), expected);
    let page = Page::parse(&agent.metrics());
    for name in [PROM, VM] {
        let rejected = page.get(
            "redpush_samples_dropped_total",
            &[
                ("remote_name", name),
                ("reason", "rejected"),
                (
                    "url",
                    &if name == PROM {
                        prometheus.write_url()
                    } else {
                        vm.write_url()
                    },
                ),
            ],
        );
        assert_eq!(rejected, Some(0.0), "{name}");
    }
    let log = prometheus.process.output().to_lowercase();
    assert!(!log.contains("out of order"), "{log}");

    // Down to VictoriaMetrics alone: the queue reopens with vm's reader
    // alone, at its own place (nothing sent twice); prom's position is
    // deleted.
    let before = redpush::testing::now_ms();
    agent.reload(&config(&redis, &[endpoint(VM, &vm.write_url())]));
    agent.wait_page("prom gone from the page", |page| {
        of(page, "redpush_samples_sent_total", PROM).is_none()
            && of(page, "redpush_samples_sent_total", VM).is_some()
    });
    wait_until(
        "a sample after the reload at vm",
        Duration::from_secs(30),
        || {
            let times = stored(&vm, &instance, 30);
            when(
                times.last().is_some_and(|t| *t > before + 2_000),
                (),
                || format!("{:?}", times.last()),
            )
        },
    );
    assert!(wal.join("ack-vm").exists());
    assert!(
        !wal.join("ack-prom").exists(),
        "the removed endpoint's position is deleted"
    );
    let window = started.elapsed().as_secs() - 2;
    assert_continuous(
        &agent,
        "vm across the reload",
        &stored(&vm, &instance, window),
        window as usize - 4,
    );
}
