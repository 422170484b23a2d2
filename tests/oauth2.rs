//! OAuth2 client credentials against a token endpoint the test starts on
//! 127.0.0.1: the agent fetches a token with its client id and secret,
//! sends it as a bearer token, and fetches a new one before it expires.
//! Neither the secret nor a token reaches the log.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::fault_receiver::{Fault, FaultReceiver};
use common::servers::{Agent, Redis, push_config};
use common::{wait_until, when};

const SECRET: &str = "s3cret-client&=";

/// Token requests as the endpoint saw them: (authorization, form body).
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A token endpoint: every request gets `tok-<n>`, valid for `life` seconds.
fn token_endpoint(life: u64) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/oauth2/token",
        listener.local_addr().expect("addr")
    );
    let seen: Seen = Arc::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let (mut authorization, mut length) = (String::new(), 0);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("authorization:") {
                    authorization = line["authorization:".len()..].trim().to_owned();
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let n = {
                let mut seen = record.lock().expect("lock");
                seen.push((authorization, String::from_utf8_lossy(&body).into_owned()));
                seen.len()
            };
            let answer = format!(
                r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":{life}}}"#
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, seen)
}

/// The agent's config: `redis` pushed to `receiver` with OAuth2 tokens
/// from `token_url`; the secret's file in `dir`.
fn config(
    redis: &Redis,
    receiver: &FaultReceiver,
    token_url: &str,
    dir: &tempfile::TempDir,
) -> String {
    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret");
    format!(
        "{}max_backoff = \"200ms\"\n[remote_write.oauth2]\nclient_id = \"redpush\"\n\
         client_secret_file = \"{}\"\ntoken_url = \"{token_url}\"\n\
         scopes = [\"metrics:write\", \"x\"]\n\
         endpoint_params = {{ audience = \"https://mimir.example\" }}\n",
        push_config(&[redis.url()], &receiver.url, ""),
        secret_file.display()
    )
}

/// The bearer tokens of the batches received, in order.
fn bearers(receiver: &FaultReceiver) -> Vec<String> {
    receiver.with_received(|received| {
        received
            .iter()
            .filter_map(|r| {
                r.headers
                    .iter()
                    .find(|(k, _)| k == "authorization")
                    .map(|(_, v)| v.clone())
            })
            .collect()
    })
}

#[test]
fn a_refused_token_is_replaced_at_once() {
    let redis = Redis::start(&[]);
    let receiver = FaultReceiver::start(vec![Fault::Status(401)], Fault::Status(204));
    let (token_url, seen) = token_endpoint(3600);
    let dir = tempfile::TempDir::new().expect("dir");
    let _agent = Agent::start(&config(&redis, &receiver, &token_url, &dir), &[]);
    let seen_bearers = wait_until("a batch after the refusal", Duration::from_secs(60), || {
        let b = bearers(&receiver);
        when(b.len() >= 3, b.clone(), || format!("{b:?}"))
    });
    assert_eq!(seen_bearers[0], "Bearer tok-1", "refused");
    assert!(
        seen_bearers[1..].iter().all(|b| b == "Bearer tok-2"),
        "{seen_bearers:?}"
    );
    assert_eq!(
        seen.lock().expect("lock").len(),
        2,
        "an hour's token is kept"
    );
}

#[test]
fn tokens_are_fetched_sent_and_refreshed_before_they_expire() {
    let redis = Redis::start(&[]);
    let receiver = FaultReceiver::start(Vec::new(), Fault::Status(204));
    let (token_url, seen) = token_endpoint(2);
    let dir = tempfile::TempDir::new().expect("dir");
    let agent = Agent::start(&config(&redis, &receiver, &token_url, &dir), &[]);
    // Batches every second, tokens valid for two: the third token is in use
    // within a few seconds, and every batch carried a fresh one.
    let bearers = wait_until("a third token in use", Duration::from_secs(60), || {
        let bearers = bearers(&receiver);
        let ok = bearers.iter().any(|b| b == "Bearer tok-3");
        when(ok, bearers.clone(), || format!("{bearers:?}"))
    });
    assert_eq!(bearers[0], "Bearer tok-1");
    assert!(
        bearers.iter().all(|b| b.starts_with("Bearer tok-")),
        "{bearers:?}"
    );
    let requests = seen.lock().expect("lock").clone();
    let basic = base64::engine::general_purpose::STANDARD.encode("redpush:s3cret-client%26%3D");
    for (authorization, form) in &requests {
        assert_eq!(authorization, &format!("Basic {basic}"));
        assert!(form.contains("grant_type=client_credentials"), "{form}");
        assert!(form.contains("scope=metrics%3Awrite+x"), "{form}");
        assert!(
            form.contains("audience=https%3A%2F%2Fmimir.example"),
            "{form}"
        );
    }
    // Refreshed, not fetched per request.
    assert!(
        requests.len() < bearers.len(),
        "{} tokens for {} batches",
        requests.len(),
        bearers.len()
    );
    let log = agent.process.output();
    assert!(!log.contains("s3cret") && !log.contains("tok-"), "{log}");
}
