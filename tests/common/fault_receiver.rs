//! A remote-write receiver that fails on command: answers with a chosen
//! status (503, 429 with Retry-After, 400 with a hostile body, 3xx with a
//! Location, 202), hangs, or closes the
//! connection. The faults a real Prometheus cannot be made to produce on
//! demand. Everything it accepts (2xx) is decoded and kept for the test;
//! requests of metadata only are always accepted and kept apart.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use redpush::testing::WriteRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Answer with this status (and `Retry-After: 1` for 429).
    Status(u16),
    /// Read the request, never answer.
    Hang,
    /// Read the request, close the connection without answering.
    Close,
    /// Accept (204) after this many milliseconds: a distant receiver.
    Slow(u64),
}

/// One request as the receiver saw it.
#[derive(Debug)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub request: WriteRequest,
    pub answered: Fault,
}

struct Shared {
    script: VecDeque<Fault>,
    mode: Fault,
    received: Vec<Received>,
    /// Metadata-only requests: always accepted, kept apart from `received`
    /// (the faults are for batches of samples).
    metadata: Vec<WriteRequest>,
}

pub struct FaultReceiver {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    /// The receiver runs on a runtime of its own, so sync tests can use it.
    _runtime: tokio::runtime::Runtime,
}

impl FaultReceiver {
    /// A receiver answering the `script` first, then `mode`.
    pub fn start(script: Vec<Fault>, mode: Fault) -> FaultReceiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!(
            "http://{}/api/v1/write",
            listener.local_addr().expect("addr")
        );
        let shared = Arc::new(Mutex::new(Shared {
            script: script.into(),
            mode,
            received: Vec::new(),
            metadata: Vec::new(),
        }));
        let accept = shared.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(stream, accept.clone()));
            }
        });
        FaultReceiver {
            url,
            shared,
            _runtime: runtime,
        }
    }

    pub fn set_mode(&self, mode: Fault) {
        self.shared.lock().expect("lock").mode = mode;
    }

    pub fn requests(&self) -> usize {
        self.shared.lock().expect("lock").received.len()
    }

    /// Calls `f` with everything received so far.
    pub fn with_received<T>(&self, f: impl FnOnce(&[Received]) -> T) -> T {
        f(&self.shared.lock().expect("lock").received)
    }

    /// The metadata-only requests received so far.
    pub fn metadata(&self) -> Vec<WriteRequest> {
        self.shared.lock().expect("lock").metadata.clone()
    }

    /// Timestamps of the accepted samples of the series `name` whose labels
    /// include `labels`, in arrival order.
    pub fn accepted(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(i64, f64)> {
        self.with_received(|received| {
            received
                .iter()
                .filter(|r| {
                    matches!(r.answered, Fault::Status(s) if (200..300).contains(&s))
                        || matches!(r.answered, Fault::Slow(_))
                })
                .flat_map(|r| r.request.timeseries.iter())
                .filter(|ts| {
                    let has =
                        |k: &str, v: &str| ts.labels.iter().any(|l| l.name == k && l.value == v);
                    has("__name__", name) && labels.iter().all(|(k, v)| has(k, v))
                })
                .flat_map(|ts| ts.samples.iter().map(|s| (s.timestamp, s.value)))
                .collect()
        })
    }
}

async fn serve(mut stream: TcpStream, shared: Arc<Mutex<Shared>>) {
    loop {
        let Some((headers, body)) = read_request(&mut stream).await else {
            return;
        };
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&body)
            .expect("snappy block body");
        let request = WriteRequest::decode(raw.as_slice()).expect("protobuf body");
        if request.timeseries.is_empty() && !request.metadata.is_empty() {
            shared.lock().expect("lock").metadata.push(request);
            let answer = b"HTTP/1.1 204 X\r\ncontent-length: 0\r\n\r\n";
            if stream.write_all(answer).await.is_err() {
                return;
            }
            continue;
        }
        let fault = {
            let mut shared = shared.lock().expect("lock");
            let fault = shared.script.pop_front().unwrap_or(shared.mode);
            shared.received.push(Received {
                headers,
                request,
                answered: fault,
            });
            fault
        };
        match fault {
            Fault::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Fault::Close => return,
            Fault::Slow(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let answer = b"HTTP/1.1 204 X\r\ncontent-length: 0\r\n\r\n";
                if stream.write_all(answer).await.is_err() {
                    return;
                }
            }
            Fault::Status(status) => {
                let extra = match status {
                    429 => "retry-after: 1\r\n",
                    300..400 => "location: http://elsewhere/api/v1/write?token=Loc-S3cret\r\n",
                    _ => "",
                };
                // A body that tries to write a log line of its own and to
                // clear the terminal.
                let body = if status == 400 {
                    "out of bounds\nlevel=ERROR msg=forged\u{1b}[2J"
                } else {
                    ""
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n{extra}\r\n{body}",
                    body.len()
                );
                if stream.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<(Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.ok()?;
    Some((headers, body))
}
