//! AWS Signature Version 4, checked by a receiver that recomputes each
//! signature with botocore (tests/common/sigv4_receiver.py), independently
//! of the agent's signing code. Credentials from the config (an access key
//! and a secret file), from the environment, and from a shared credentials
//! file's profile; nothing reaches a cloud address (the instance metadata
//! service is turned off for the agent).

#![cfg(feature = "sigv4")]

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::servers::{Agent, Process, Redis, free_port, push_config, wait_for};
use common::{wait_until, when};

const ACCESS: &str = "AKIDREDPUSHTEST";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// Debian's Python, with Debian's botocore (`python3-botocore`).
const PYTHON: &str = "/usr/bin/python3";

/// The verifying receiver for `secret` (and a session `token`).
struct Verifier {
    process: Process,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Verifier {
    fn start(secret: &str, token: Option<&str>) -> Verifier {
        Verifier::start_for(ACCESS, secret, token)
    }

    /// A receiver expecting `access`'s signature.
    fn start_for(access: &str, secret: &str, token: Option<&str>) -> Verifier {
        let dir = tempfile::TempDir::new().expect("dir");
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/sigv4_receiver.py");
        let mut args = vec![
            script.display().to_string(),
            port.to_string(),
            access.to_owned(),
            secret.to_owned(),
            "eu-west-1".to_owned(),
        ];
        args.extend(token.map(str::to_owned));
        let process = Process::spawn(
            "sigv4-receiver",
            Path::new("/usr/bin/python3"),
            &args,
            dir.path(),
        );
        wait_for(&process, "listening", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Verifier {
            process,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/workspaces/ws-1/api/v1/remote_write",
            self.port
        )
    }

    /// Waits for `n` verdicts; returns them.
    fn verdicts(&self, n: usize) -> Vec<String> {
        wait_until("verdicts of the receiver", Duration::from_secs(60), || {
            let out = self.process.output();
            let lines: Vec<String> = out
                .lines()
                .filter(|l| l.starts_with("ok") || l.starts_with("bad"))
                .map(str::to_owned)
                .collect();
            when(lines.len() >= n, lines.clone(), || out.clone())
        })
    }
}

/// The agent under `env` (no instance metadata, no config file of the
/// user's), pushing `redis` to `verifier` with `sigv4` as its table.
fn start_agent(redis: &Redis, verifier: &Verifier, sigv4: &str, env: &[String]) -> Agent {
    let config = format!(
        "{}[remote_write.sigv4]\n{sigv4}",
        push_config(&[redis.url()], &verifier.url(), "")
    );
    let mut wrapper = vec![
        "env".to_owned(),
        "AWS_EC2_METADATA_DISABLED=true".to_owned(),
        "AWS_CONFIG_FILE=/nonexistent".to_owned(),
        "AWS_SHARED_CREDENTIALS_FILE=/nonexistent".to_owned(),
    ];
    wrapper.extend(env.iter().cloned());
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    Agent::start_under(
        &wrapper,
        tempfile::TempDir::new().expect("dir"),
        &config,
        &[],
    )
}

#[test]
fn requests_signed_with_configured_keys_verify_and_a_wrong_secret_does_not() {
    let redis = Redis::start(&[]);
    let dir = tempfile::TempDir::new().expect("dir");
    let secret_file = dir.path().join("aws-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret");
    let sigv4 = format!(
        "region = \"eu-west-1\"\naccess_key = \"{ACCESS}\"\nsecret_key_file = \"{}\"\n",
        secret_file.display()
    );
    let verifier = Verifier::start(SECRET, None);
    let agent = start_agent(&redis, &verifier, &sigv4, &[]);
    let verdicts = verifier.verdicts(3);
    assert!(verdicts.iter().all(|v| v == "ok"), "{verdicts:?}");
    assert!(!agent.process.output().contains(SECRET));
    drop(agent);

    // The same agent against a receiver that expects another secret.
    let other = Verifier::start("another-secret", None);
    let _agent = start_agent(&redis, &other, &sigv4, &[]);
    let verdicts = other.verdicts(1);
    assert_eq!(verdicts[0], "bad signature differs");
}

#[test]
fn credentials_from_the_environment_and_a_profile_verify() {
    let redis = Redis::start(&[]);
    let token = "session-token-xyz";
    let verifier = Verifier::start(SECRET, Some(token));
    let env = [
        format!("AWS_ACCESS_KEY_ID={ACCESS}"),
        format!("AWS_SECRET_ACCESS_KEY={SECRET}"),
        format!("AWS_SESSION_TOKEN={token}"),
    ];
    let agent = start_agent(&redis, &verifier, "region = \"eu-west-1\"\n", &env);
    let verdicts = verifier.verdicts(2);
    assert!(verdicts.iter().all(|v| v == "ok"), "{verdicts:?}");
    drop(agent);

    let dir = tempfile::TempDir::new().expect("dir");
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        format!("[metrics]\naws_access_key_id = {ACCESS}\naws_secret_access_key = {SECRET}\n"),
    )
    .expect("credentials");
    let verifier = Verifier::start(SECRET, None);
    let env = [format!(
        "AWS_SHARED_CREDENTIALS_FILE={}",
        credentials.display()
    )];
    let sigv4 = "region = \"eu-west-1\"\nprofile = \"metrics\"\n";
    let _agent = start_agent(&redis, &verifier, sigv4, &env);
    let verdicts = verifier.verdicts(2);
    assert!(verdicts.iter().all(|v| v == "ok"), "{verdicts:?}");
}

#[test]
fn a_role_is_assumed_through_sts_and_its_credentials_sign() {
    let redis = Redis::start(&[]);
    let (role_access, role_secret, role_token) = ("ASIAROLETEST", "role-secret/xyz", "role-token");
    let role = "arn:aws:iam::123456789012:role/writer";
    let dir = tempfile::TempDir::new().expect("dir");
    let sts_port = free_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/fake_sts.py");
    let args: Vec<String> = [
        &script.display().to_string(),
        &sts_port.to_string(),
        ACCESS,
        SECRET,
        "eu-west-1",
        role_access,
        role_secret,
        role_token,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let sts = Process::spawn("fake-sts", Path::new(PYTHON), &args, dir.path());
    wait_for(&sts, "listening", || {
        TcpStream::connect(("127.0.0.1", sts_port)).is_ok()
    });
    let verifier = Verifier::start_for(role_access, role_secret, Some(role_token));
    let env = [
        format!("AWS_ACCESS_KEY_ID={ACCESS}"),
        format!("AWS_SECRET_ACCESS_KEY={SECRET}"),
        format!("AWS_ENDPOINT_URL_STS=http://127.0.0.1:{sts_port}"),
    ];
    let sigv4 = format!("region = \"eu-west-1\"\nrole_arn = \"{role}\"\n");
    let _agent = start_agent(&redis, &verifier, &sigv4, &env);
    let verdicts = verifier.verdicts(3);
    assert!(verdicts.iter().all(|v| v == "ok"), "{verdicts:?}");
    let assumed: Vec<String> = sts.output().lines().map(str::to_owned).collect();
    assert_eq!(
        assumed,
        [format!("assumed {role}")],
        "assumed once, kept until it expires"
    );
}
