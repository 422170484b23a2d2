//! The byte stream under a Redis connection: TCP, a unix socket or TLS,
//! opened by redpush itself so that it controls what the client library
//! does not: TLS roots, client certificates and server name, and a bound on
//! the bytes one sample may read (a hostile or broken server answering with
//! gigabytes must cost an error, not the agent's memory).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::config::{Address, TargetSettings};
use crate::tls::{self, TlsError};

/// Any stream the Redis client can run over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// Bytes a sample may still read; shared by the stream and the sampler,
/// which refills it before every sample.
#[derive(Clone, Debug, Default)]
pub(crate) struct Budget(Arc<AtomicI64>);

impl Budget {
    pub(crate) fn refill(&self, bytes: u64) {
        self.0
            .store(i64::try_from(bytes).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn exceeded(&self) -> bool {
        self.0.load(Ordering::Relaxed) < 0
    }
}

/// A stream that fails its reads once the budget is spent.
pub(crate) struct Metered {
    inner: Box<dyn Io>,
    budget: Budget,
}

impl AsyncRead for Metered {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.budget.exceeded() {
            return Poll::Ready(Err(io::Error::other("reply larger than max_reply_bytes")));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as i64;
        if read > 0 && self.budget.0.fetch_sub(read, Ordering::Relaxed) - read < 0 {
            return Poll::Ready(Err(io::Error::other("reply larger than max_reply_bytes")));
        }
        polled
    }
}

impl AsyncWrite for Metered {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("TLS setup: {0}")]
    Tls(#[from] TlsError),
    #[error("TLS handshake: {0}")]
    Handshake(io::Error),
}

/// Opens the stream to `target` within `timeout` (TCP connect and TLS
/// handshake together).
pub(crate) async fn connect(
    target: &TargetSettings,
    budget: Budget,
    timeout: Duration,
) -> Result<Metered, TransportError> {
    let open = async {
        let inner: Box<dyn Io> = match &target.address {
            Address::Unix(path) => Box::new(UnixStream::connect(path).await?),
            Address::Tcp { host, port } => {
                let tcp = TcpStream::connect((host.as_str(), *port)).await?;
                // Samples are small request/response exchanges: send at once.
                tcp.set_nodelay(true)?;
                match &target.tls {
                    None => Box::new(tcp),
                    Some(tls) => {
                        let config = tls::client_config(tls)?;
                        let name = tls::server_name(
                            tls.server_name.clone().unwrap_or_else(|| host.clone()),
                        )?;
                        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
                            .connect(name, tcp)
                            .await
                            .map_err(TransportError::Handshake)?;
                        Box::new(stream)
                    }
                }
            }
        };
        Ok::<_, TransportError>(inner)
    };
    let inner = tokio::time::timeout(timeout, open).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("not connected within {timeout:?}"),
        )
    })??;
    Ok(Metered { inner, budget })
}
