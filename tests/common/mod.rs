//! Shared test support: a parser of the exposition format and launchers
//! for the real servers the integration tests run against.
#![allow(dead_code)]

pub mod exposition;
pub mod fault_receiver;
pub mod servers;
pub mod tls;

use std::path::PathBuf;

pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Series the community exporter prints about itself rather than about Redis.
pub fn exporter_internal(name: &str) -> bool {
    name.starts_with("go_")
        || name.starts_with("process_")
        || name.starts_with("redis_exporter_")
        // The error count of the exporter's multi-target /scrape endpoint.
        || name == "redis_target_scrape_request_errors_total"
        // Timing of the exporter's key-group feature, printed even when unused.
        || name == "redis_last_key_groups_scrape_duration_milliseconds"
}

/// Types the exporter changed after 1.45; redpush follows the current exporter.
pub const TYPE_CHANGED_SINCE_1_45: &[&str] = &["redis_expired_time_cap_reached_total"];

/// Polls `probe` until it gives `Ok`, and returns what it gave; after
/// `timeout`, panics naming `what` with the last `Err`: the state that was
/// not right yet. The one wait of the tests: they wait for an event (a
/// sample arrived, a server counted calls), never for a span of time.
pub fn wait_until<T>(
    what: &str,
    timeout: std::time::Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(state) if std::time::Instant::now() >= deadline => {
                panic!("{what}: not after {timeout:?}; last seen:\n{state}")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

/// `Ok(value)` when `ok`, else the state `show` describes, for [`wait_until`].
pub fn when<T>(ok: bool, value: T, show: impl FnOnce() -> String) -> Result<T, String> {
    if ok { Ok(value) } else { Err(show()) }
}
