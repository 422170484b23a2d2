//! The agent's own HTTP endpoint: `GET /metrics` (the latest reading of
//! every target plus `redpush_*`), `GET /api/status` and `GET /` (what the
//! agent is doing, as JSON and as a page), `GET /healthz` (alive) and
//! `GET /readyz` (delivering). Plain hyper: a handful of routes do not need
//! a framework. Optionally HTTPS, and basic auth on everything but the two
//! probes.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use std::io::Write;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::debug;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio_rustls::TlsAcceptor;

use super::connections::{Admitted, Connections, HANDSHAKE_TIMEOUT, HEADER_TIMEOUT};
use super::state::AgentState;
use crate::config::HttpSettings;
use crate::exposition::protobuf::{self, ProtoPage};
use crate::exposition::{CONTENT_TYPE, Page};
use crate::secret::read_secret;
use crate::tls::{certificates, private_key, server_config};

/// Who may read `/metrics`: the expected `Authorization` header value.
#[derive(Clone, Default)]
pub(super) struct Access {
    basic: Option<String>,
}

impl Access {
    /// Reads the password file now: the endpoint's credentials are fixed at start.
    pub(super) fn new(settings: &HttpSettings) -> anyhow::Result<Access> {
        let basic = match &settings.basic_auth {
            None => None,
            Some((user, file)) => {
                let password = read_secret(file).context("http.basic_auth.password_file")?;
                let credentials = format!("{user}:{}", password.expose());
                Some(format!("Basic {}", STANDARD.encode(credentials)))
            }
        };
        Ok(Access { basic })
    }

    fn allows(&self, req: &Request<Incoming>) -> bool {
        let Some(expected) = &self.basic else {
            return true;
        };
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        constant_time_eq(given, expected.as_bytes())
    }
}

/// Compares without stopping at the first difference, so response times do
/// not tell how much of a guessed password was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The TLS acceptor for `http.tls_cert_file` / `http.tls_key_file`.
pub(super) fn tls_acceptor(settings: &HttpSettings) -> anyhow::Result<Option<TlsAcceptor>> {
    let Some((cert, key)) = &settings.tls else {
        return Ok(None);
    };
    let certs = certificates(cert).context("http.tls_cert_file")?;
    let key = private_key(key).context("http.tls_key_file")?;
    let config = server_config(certs, key).context("http TLS")?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// Serves until `shutdown` turns true, with at most `connections`' cap of
/// connections open (`connections.rs`).
pub(super) async fn serve(
    listener: TcpListener,
    state: Arc<AgentState>,
    access: Access,
    tls: Option<TlsAcceptor>,
    connections: Arc<Connections>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    debug!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let admitted = connections.admit();
        let state = state.clone();
        let access = access.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let activity = admitted.activity();
            let service = service_fn(move |req| {
                activity.touch();
                let state = state.clone();
                let access = access.clone();
                async move { Ok::<_, Infallible>(respond(&req, &state, &access)) }
            });
            let served = match tls {
                None => serve_connection(TokioIo::new(stream), service, &admitted).await,
                Some(tls) => {
                    let handshake = tokio::select! {
                        done = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)) => done,
                        () = admitted.closing() => return,
                    };
                    match handshake {
                        Ok(Ok(stream)) => {
                            serve_connection(TokioIo::new(stream), service, &admitted).await
                        }
                        Ok(Err(e)) => {
                            debug!(%peer, "TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            debug!(%peer, "TLS handshake not done within {HANDSHAKE_TIMEOUT:?}");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = served {
                debug!(%peer, "HTTP connection ended: {e}");
            }
        });
    }
}

/// Serves one connection: headers (and the next request on a kept-alive
/// connection) within `HEADER_TIMEOUT`; closed gracefully when the
/// registry needs its room.
async fn serve_connection<I, S>(io: I, service: S, admitted: &Admitted) -> hyper::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = ResponseBody>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => served,
        () = admitted.closing() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

/// The body of a response: a short text, or the `/metrics` page, plain or
/// gzip-compressed.
type ResponseBody = Either<Full<Bytes>, Either<PageBody, GzipBody>>;

fn respond(req: &Request<Incoming>, state: &AgentState, access: &Access) -> Response<ResponseBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET\n".into(),
        );
    }
    let path = req.uri().path();
    let probe = matches!(path, "/healthz" | "/readyz");
    match path {
        _ if !probe && !access.allows(req) => {
            let mut response = text(
                StatusCode::UNAUTHORIZED,
                "text/plain",
                "unauthorized\n".into(),
            );
            response.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Basic realm=\"redpush\""),
            );
            response
        }
        "/metrics" => {
            let protobuf = req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(protobuf::preferred);
            let (body, content_type) = if protobuf {
                let body = PageBody::Protobuf(state.proto_page());
                (body, protobuf::CONTENT_TYPE)
            } else {
                let (page, own) = state.page();
                let body = PageBody::Text {
                    page,
                    own: Some(own),
                };
                (body, CONTENT_TYPE)
            };
            let gzip = req
                .headers()
                .get(hyper::header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(accepts_gzip);
            let mut response = if gzip {
                let mut response = Response::new(Either::Right(Either::Right(GzipBody::new(body))));
                response.headers_mut().insert(
                    hyper::header::CONTENT_ENCODING,
                    hyper::header::HeaderValue::from_static("gzip"),
                );
                response
            } else {
                Response::new(Either::Right(Either::Left(body)))
            };
            let headers = response.headers_mut();
            headers.insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(content_type),
            );
            headers.insert(
                hyper::header::VARY,
                hyper::header::HeaderValue::from_static("Accept, Accept-Encoding"),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => match state.ready() {
            Ok(()) => text(StatusCode::OK, "text/plain", "ready\n".into()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                format!("not ready: {why}\n"),
            ),
        },
        "/api/status" => match serde_json::to_string_pretty(&state.status()) {
            Ok(json) => text(StatusCode::OK, "application/json", json + "\n"),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("{e}\n"),
            ),
        },
        "/" => text(
            StatusCode::OK,
            "text/html; charset=utf-8",
            state.status().html(),
        ),
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// The `/metrics` page, written a chunk at a time as the connection takes
/// it: the page's memory is a chunk, not the page (with 1000 targets the
/// page is tens of megabytes). The series are those of the moment the page
/// was asked for: the targets' readings are shared, not copied.
pub(super) enum PageBody {
    Text {
        page: Page,
        /// The agent's own metrics, written last.
        own: Option<String>,
    },
    /// The protobuf format (its page holds the agent's own series too).
    Protobuf(ProtoPage),
}

/// About what one chunk holds.
const CHUNK: usize = 64 * 1024;

impl Body for PageBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let chunk = match self.get_mut() {
            PageBody::Text { page, own } => {
                let mut chunk = String::with_capacity(CHUNK + CHUNK / 4);
                page.write_next(&mut chunk, CHUNK);
                if chunk.is_empty() {
                    match own.take() {
                        Some(own) => chunk = own,
                        None => return Poll::Ready(None),
                    }
                }
                chunk.into_bytes()
            }
            PageBody::Protobuf(page) => {
                let mut chunk = Vec::with_capacity(CHUNK + CHUNK / 4);
                page.write_next(&mut chunk, CHUNK);
                if chunk.is_empty() {
                    return Poll::Ready(None);
                }
                chunk
            }
        };
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }
}

/// Whether an `Accept-Encoding` value accepts gzip (listed, and not with
/// `q=0`). `*` is not taken as gzip: a scraper that wants it says so.
fn accepts_gzip(accept: &str) -> bool {
    accept.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        coding.eq_ignore_ascii_case("gzip") && !refused
    })
}

/// The `/metrics` page compressed as it is written, a chunk at a time:
/// memory stays a chunk, not the page. Level 1 (the fastest): a page of one
/// target, 31 kB, goes out as 5 kB.
pub(super) struct GzipBody {
    page: PageBody,
    encoder: Option<GzEncoder<Vec<u8>>>,
}

impl GzipBody {
    fn new(page: PageBody) -> GzipBody {
        GzipBody {
            page,
            encoder: Some(GzEncoder::new(
                Vec::with_capacity(CHUNK / 4),
                Compression::new(1),
            )),
        }
    }
}

impl Body for GzipBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let body = self.get_mut();
        loop {
            let Some(encoder) = body.encoder.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(&mut body.page).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    // Writing to a Vec cannot fail.
                    let _ = encoder.write_all(&data);
                    let out = std::mem::take(encoder.get_mut());
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                Poll::Ready(None) => {
                    let out = body
                        .encoder
                        .take()
                        .and_then(|e| e.finish().ok())
                        .unwrap_or_default();
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// An endpoint with `cap` connections on a free port; its address.
    async fn endpoint(cap: usize) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(AgentState::new(Arc::default()));
        let (keep_serving, shutdown) = watch::channel(false);
        tokio::spawn(async move {
            let _keep_serving = keep_serving;
            serve(
                listener,
                state,
                Access::default(),
                None,
                Connections::new(cap),
                shutdown,
            )
            .await
        });
        addr
    }

    /// Reads until the server closes the connection; what it sent.
    async fn until_closed(stream: &mut TcpStream) -> String {
        let mut all = Vec::new();
        let _ = stream.read_to_end(&mut all).await;
        String::from_utf8_lossy(&all).into_owned()
    }

    /// Sends `request` on a new connection and waits for the server to
    /// close it: what it answered, and after how long.
    async fn closed_after(request: &[u8]) -> (String, std::time::Duration) {
        let mut stream = TcpStream::connect(endpoint(8).await)
            .await
            .expect("connect");
        stream.write_all(request).await.expect("write");
        let started = tokio::time::Instant::now();
        let answered = until_closed(&mut stream).await;
        (answered, started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn headers_not_sent_in_time_close_the_connection() {
        let (answered, after) = closed_after(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
        assert!(!answered.starts_with("HTTP/1.1 200"), "{answered}");
        assert!(after >= HEADER_TIMEOUT, "{after:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_left_idle_is_closed() {
        let (answered, after) = closed_after(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        assert!(after >= HEADER_TIMEOUT, "{after:?}");
    }

    #[tokio::test]
    async fn beyond_the_cap_the_idlest_connection_is_closed_and_the_new_one_served() {
        let addr = endpoint(4).await;
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(TcpStream::connect(addr).await.expect("connect"));
        }
        let mut probe = TcpStream::connect(addr).await.expect("connect");
        probe
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        assert!(until_closed(&mut probe).await.starts_with("HTTP/1.1 200"));
        // The first one opened was the idlest: closed to make room.
        assert_eq!(until_closed(&mut held[0]).await, "");
    }

    #[test]
    fn gzip_when_asked_for_and_not_refused() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, GZIP;q=0.5"));
        assert!(accepts_gzip("gzip;q=1.0,identity;q=0.5,*;q=0.1"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("*"));
        assert!(!accepts_gzip("x-gzip-not"));
    }
}
