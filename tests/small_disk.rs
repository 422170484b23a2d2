//! The queue on a real small file system (a tmpfs of 256 KiB, far smaller
//! than the default 16 MiB segments): with a healthy receiver it keeps
//! delivering after writing several times what the volume holds, and
//! leaves no delivered segment behind. Needs the right to mount a tmpfs
//! (root); skipped with a message elsewhere.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::exposition::Page;
use common::servers::{Agent, Receiver, Redis};
use common::{wait_until, when};

/// A mounted tmpfs, unmounted when dropped.
struct Volume {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Volume {
    fn mount(size: &str) -> Option<Volume> {
        let dir = tempfile::TempDir::new().expect("dir");
        let path = dir.path().join("vol");
        std::fs::create_dir(&path).expect("mkdir");
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .is_ok_and(|o| o.status.success());
        mounted.then_some(Volume { path, _dir: dir })
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn wal_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "wal"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn counter(page: &Page, name: &str, reason: &str) -> f64 {
    page.total(name, &[("reason", reason)]).unwrap_or(-1.0)
}

#[test]
fn a_volume_smaller_than_a_segment_keeps_delivering() {
    let Some(volume) = Volume::mount("256k") else {
        eprintln!("cannot mount a tmpfs here (not root?): the small-disk test is skipped");
        return;
    };
    let redis = Redis::start(&[]);
    let prometheus = Receiver::prometheus();
    // Complete readings ten times a second: about 20 KB of queue a second.
    let config = format!(
        "interval = \"100ms\"\nmin_interval = \"100ms\"\nadaptive = false\n\
         [metrics]\ndetail_interval = \"0s\"\n[[targets]]\nurl = \"{}\"\n\
         [remote_write]\nurl = \"{}\"\nflush_deadline = \"1s\"\n",
        redis.url(),
        prometheus.write_url()
    );
    let state = volume.path.join("state");
    let dir = tempfile::TempDir::new().expect("dir");
    let mut agent = Agent::start_in(
        dir,
        &config,
        &["--state-dir", state.to_str().expect("utf-8")],
    );
    // About 6 bytes a sample on disk: 150,000 samples are more than three
    // times what the volume holds.
    let page = agent.wait_page_within("many volumes delivered", Duration::from_secs(180), |p| {
        p.total("redpush_samples_sent_total", &[])
            .is_some_and(|n| n >= 150_000.0)
    });
    // The readings reached a real receiver (and the counters below say
    // none was lost on the way).
    let instance = redis.instance();
    let stored = prometheus.query(&format!(
        "count_over_time(redis_up{{instance=\"{instance}\"}}[10m])"
    ));
    let sent_readings = page.total("redpush_samples_sent_total", &[]).unwrap_or(0.0);
    assert!(
        stored.first().is_some_and(|(_, n)| *n >= 100.0),
        "{stored:?} after {sent_readings} samples"
    );
    for reason in ["write_error", "queue_full"] {
        assert_eq!(
            counter(&page, "redpush_samples_dropped_total", reason),
            0.0,
            "{reason}\n{}",
            agent.process.output()
        );
    }

    // What is on disk is what the queue counts: no delivered segment left.
    let wal = state.join("wal");
    wait_until(
        "the files on disk are the queue's own",
        Duration::from_secs(60),
        || {
            let page = Page::parse(&agent.metrics());
            let counted = page.total("redpush_queue_bytes", &[]).unwrap_or(-1.0) as u64;
            let on_disk = wal_bytes(&wal);
            when(on_disk == counted && on_disk < 256 * 1024, (), || {
                format!("{on_disk} on disk, {counted} counted")
            })
        },
    );
    assert_eq!(agent.process.terminate(), Some(0));
}
