//! Config files written by mistake or by an attacker: errors that never
//! quote a secret (in `check-config`, at start, on SIGHUP), headers HTTP
//! does not allow, files that are not files or are too big, intervals that
//! would hammer Redis.

mod common;

use std::path::Path;
use std::process::Command;

use common::servers::{Agent, Redis, redpush_run};

const PW: &str = "Pw-S3cret-9";
const TOKEN: &str = "Tk-S3cret-7";

fn check(path: &Path) -> (i32, String, String) {
    redpush_run(&["check-config", "--config", path.to_str().expect("utf-8")])
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [PW, TOKEN] {
        assert!(!text.contains(secret), "{secret} in the {what}:\n{text}");
    }
}

/// Lines with a syntax or type error that hold a credential, each with the
/// line number the error must name.
fn broken_lines() -> Vec<(String, usize)> {
    vec![
        (
            format!("[[targets]]\nurl = \"redis://:{PW}@127.0.0.1:6379\" x\n"),
            2,
        ),
        (
            format!("[remote_write]\nurl = \"http://127.0.0.1:1/api/v1/write?token={TOKEN}\" 5\n"),
            2,
        ),
        (
            format!(
                "[remote_write]\nurl = \"http://127.0.0.1:1/w\"\n[remote_write.headers]\nAuthorization = \"Bearer {TOKEN}\" +\n"
            ),
            4,
        ),
        (
            format!(
                "[remote_write]\nurl = \"http://127.0.0.1:1/w\"\nheaders = {{ Authorization = \"Bearer {TOKEN}\", X = 1 }}\n"
            ),
            3,
        ),
        (
            format!("[remote_write.basic_auth]\npassword = \"{PW}\"\n"),
            2,
        ),
        (format!("[[targets]]\npassword_file = {PW}\n"), 2),
    ]
}

#[test]
fn check_config_and_start_never_quote_a_secret_of_a_broken_line() {
    let dir = tempfile::TempDir::new().expect("dir");
    let path = dir.path().join("redpush.toml");
    for (text, line) in broken_lines() {
        std::fs::write(&path, &text).expect("write");
        let (code, out, err) = check(&path);
        assert_eq!(code, 2, "{text} loads: {out}{err}");
        assert!(err.contains(&format!("line {line}")), "{text}\n{err}");
        assert!(err.contains("<redacted>"), "{text}\n{err}");
        assert_no_secret("check-config error", &format!("{out}{err}"));
        // The agent refuses the same file at start with the same care.
        let (code, out, err) = redpush_run(&[
            "--config",
            path.to_str().expect("utf-8"),
            "--state-dir",
            dir.path().join("state").to_str().expect("utf-8"),
        ]);
        assert_eq!(code, 2, "{out}{err}");
        assert!(err.contains(&format!("line {line}")), "{err}");
        assert_no_secret("start-up error", &format!("{out}{err}"));
    }
}

#[test]
fn a_reload_of_a_broken_file_logs_no_secret() {
    let redis = Redis::start(&[]);
    let good = format!(
        "interval = \"1s\"\nadaptive = false\n[[targets]]\nurl = \"{}\"\n",
        redis.url()
    );
    let agent = Agent::start(&good, &[]);
    agent.wait_page("a reading", |p| p.get("redis_up", &[]) == Some(1.0));
    for (text, _) in broken_lines() {
        agent.reload(&format!("{good}{text}"));
        agent.wait_page("the failed reload", |p| {
            p.get("redpush_config_last_reload_successful", &[]) == Some(0.0)
        });
        agent.reload(&good);
        agent.wait_page("the good file again", |p| {
            p.get("redpush_config_last_reload_successful", &[]) == Some(1.0)
        });
    }
    let log = agent.process.output();
    assert!(
        log.matches("<redacted>").count() >= broken_lines().len(),
        "each failed reload is logged:\n{log}"
    );
    assert_no_secret("log", &log);
}

#[test]
fn check_config_shows_query_keys_but_not_their_values() {
    let dir = tempfile::TempDir::new().expect("dir");
    let path = dir.path().join("redpush.toml");
    std::fs::write(
        &path,
        format!(
            "[remote_write]\nurl = \"https://rw.example/api/v1/write?token={TOKEN}\"\n\
             [pushgateway]\nurl = \"https://pg.example/?access_token={TOKEN}\"\n"
        ),
    )
    .expect("write");
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("url = \"https://rw.example/api/v1/write?token=<redacted>\""),
        "{out}"
    );
    assert!(
        out.contains("url = \"https://pg.example/?access_token=<redacted>\""),
        "{out}"
    );
    assert_no_secret("check-config", &format!("{out}{err}"));
}

#[test]
fn headers_http_does_not_allow_are_refused_by_check_config() {
    let dir = tempfile::TempDir::new().expect("dir");
    let path = dir.path().join("redpush.toml");
    let base = "[remote_write]\nurl = \"http://127.0.0.1:1/w\"\n[remote_write.headers]\n";
    std::fs::write(&path, format!("{base}\"Bad Name\" = \"v\"\n")).expect("write");
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(":4: `remote_write.headers` has a header name \"Bad Name\""),
        "{err}"
    );
    std::fs::write(
        &path,
        format!("{base}Authorization = \"Bearer {TOKEN}\\nX-Forged: 1\"\n"),
    )
    .expect("write");
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(":4: `remote_write.headers.Authorization` has a value HTTP does not allow"),
        "{err}"
    );
    assert_no_secret("header error", &err);
}

#[test]
fn the_loader_refuses_fifos_big_files_and_tiny_intervals() {
    let dir = tempfile::TempDir::new().expect("dir");
    let fifo = dir.path().join("fifo.toml");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    // Opening a FIFO with no writer would block: the loader must not open it.
    let (code, _, err) = check(&fifo);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a regular file"), "{err}");

    let big = dir.path().join("big.toml");
    let mut text = "interval = \"2s\"\n".to_owned();
    while text.len() <= 1024 * 1024 {
        text.push_str("# a comment line that makes the file longer than any real config\n");
    }
    std::fs::write(&big, &text).expect("write");
    let (code, _, err) = check(&big);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("larger than 1048576 bytes"), "{err}");
    // Just under the cap loads.
    text.truncate(1024 * 1024 - 100);
    let cut = text.rfind('\n').expect("a line") + 1;
    std::fs::write(&big, &text[..cut]).expect("write");
    let (code, _, err) = check(&big);
    assert_eq!(code, 0, "{err}");

    let tiny = dir.path().join("tiny.toml");
    for (text, key) in [
        ("interval = \"1ns\"\nmin_interval = \"1ns\"\n", "`interval`"),
        ("min_interval = \"10ms\"\n", "`min_interval`"),
        ("interval = \"50ms\"\n", "`interval`"),
        (
            "[[targets]]\nurl = \"redis://h\"\ninterval = \"1s\"\nmin_interval = \"10ms\"\n",
            "targets[0].min_interval",
        ),
        (
            "[pushgateway]\nurl = \"http://h:9091\"\ninterval = \"1ms\"\n",
            "`pushgateway.interval`",
        ),
    ] {
        std::fs::write(&tiny, text).expect("write");
        let (code, _, err) = check(&tiny);
        assert_eq!(code, 2, "{text} loads:\n{err}");
        assert!(
            err.contains(key) && err.contains("below the lower bound of 100ms"),
            "{text}\n{err}"
        );
    }
    let (code, _, err) = redpush_run(&["check-config", "--interval", "99ms"]);
    assert_eq!(code, 2);
    assert!(err.contains("flag --interval"), "{err}");
    // 100 ms itself is allowed.
    std::fs::write(&tiny, "interval = \"100ms\"\nmin_interval = \"100ms\"\n").expect("write");
    assert_eq!(check(&tiny).0, 0);
}
