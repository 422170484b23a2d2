//! The state directory is this user's alone: the agent refuses one another
//! user owns or others can write to (anyone there could plant a symlink),
//! creates its files 0600 (and its directories 0700: `wal/files.rs`'s unit
//! tests), and never writes through a symlink.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use common::servers::{Agent, Receiver, Redis, redpush_run};
use common::{wait_until, when};

/// Runs the agent with remote write (which opens the queue) and `state`:
/// it must refuse before it sends anything, so nothing listens at the url.
fn start_with_state_dir(state: &Path) -> (i32, String) {
    let (code, _, err) = redpush_run(&[
        "--redis",
        "redis://127.0.0.1:1",
        "--remote-write",
        &format!(
            "http://127.0.0.1:{}/api/v1/write",
            common::servers::free_port()
        ),
        "--listen",
        &format!("127.0.0.1:{}", common::servers::free_port()),
        "--state-dir",
        state.to_str().expect("utf-8"),
    ]);
    (code, err)
}

#[test]
fn a_state_dir_others_can_write_to_is_refused() {
    let root = tempfile::TempDir::new().expect("dir");
    let state = root.path().join("shared");
    std::fs::create_dir(&state).expect("mkdir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let (code, err) = start_with_state_dir(&state);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains(&format!("state_dir {}", state.display()))
            && err.contains("writable by group or others (mode 777)"),
        "{err}"
    );
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).expect("chown");
        let (code, err) = start_with_state_dir(&state);
        assert_ne!(code, 0, "{err}");
        assert!(err.contains("is owned by uid 65534"), "{err}");
    } else {
        eprintln!("not root: the other-owner case needs chown, skipped");
    }
    assert!(
        !state.join("wal").exists(),
        "nothing written in a refused dir"
    );
}

#[test]
fn queue_files_are_private_and_never_written_through_a_symlink() {
    let redis = Redis::start(&[]);
    let prometheus = Receiver::prometheus();
    let dir = tempfile::TempDir::new().expect("dir");
    let wal = dir.path().join("state/wal");
    std::fs::create_dir_all(&wal).expect("mkdir");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").expect("write");
    // The position file of the endpoint, named by its host and port.
    let position = wal.join(format!("ack-127.0.0.1:{}", prometheus.port));
    std::os::unix::fs::symlink(&victim, position).expect("symlink");
    let config = format!(
        "interval = \"1s\"\nadaptive = false\n[[targets]]\nurl = \"{}\"\n[remote_write]\nurl = \"{}\"\nflush_deadline = \"1s\"\n",
        redis.url(),
        prometheus.write_url()
    );
    let mut agent = Agent::start_in(dir, &config, &[]);
    // Two readings stored by the receiver: two batches acknowledged.
    let instance = redis.instance();
    wait_until("two readings delivered", Duration::from_secs(30), || {
        let stored = prometheus.query(&format!(
            "count_over_time(redis_up{{instance=\"{instance}\"}}[5m])"
        ));
        let n = stored.first().map_or(0.0, |(_, v)| *v);
        when(n >= 2.0, (), || agent.process.output())
    });
    assert_eq!(agent.process.terminate(), Some(0));
    let log = agent.process.output();
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious\n",
        "written through the symlink:\n{log}"
    );
    assert!(
        log.contains("cannot record the queue's read position"),
        "{log}"
    );
    let state = agent.state_dir();
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").mode() & 0o777;
    let segments: Vec<_> = std::fs::read_dir(state.join("wal"))
        .expect("wal")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wal"))
        .collect();
    assert!(!segments.is_empty());
    for segment in segments {
        assert_eq!(mode(&segment.path()), 0o600, "{}", segment.path().display());
    }
}
