//! The byte stream under a Redis connection: TCP, a unix socket or TLS,
//! opened by redpush itself so that it controls what the client library
//! does not: TLS roots, client certificates and server name, and a bound on
//! the bytes one sample may read (a hostile or broken server answering with
//! gigabytes must cost an error, not the agent's memory).

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::config::{Address, TargetSettings, TlsSettings};

/// Any stream the Redis client can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// Bytes a sample may still read; shared by the stream and the sampler,
/// which refills it before every sample.
#[derive(Clone, Debug, Default)]
pub struct Budget(Arc<AtomicI64>);

impl Budget {
    pub fn refill(&self, bytes: u64) {
        self.0
            .store(i64::try_from(bytes).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    pub fn exceeded(&self) -> bool {
        self.0.load(Ordering::Relaxed) < 0
    }
}

/// A stream that fails its reads once the budget is spent.
pub struct Metered {
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
pub enum TransportError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("TLS handshake: {0}")]
    Handshake(io::Error),
}

/// Opens the stream to `target` within `timeout` (TCP connect and TLS
/// handshake together).
pub async fn connect(
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
                        let config = client_config(tls)?;
                        let name = tls.server_name.clone().unwrap_or_else(|| host.clone());
                        let name = ServerName::try_from(name)
                            .map_err(|e| TransportError::Tls(format!("server name: {e}")))?;
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

/// The TLS client configuration, read from its files at every connect so
/// that renewed certificates are picked up.
pub fn client_config(tls: &TlsSettings) -> Result<ClientConfig, TransportError> {
    let builder = ClientConfig::builder();
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new()))
    } else {
        let mut roots = RootCertStore::empty();
        match &tls.ca_file {
            Some(path) => {
                for cert in certificates(path)? {
                    roots
                        .add(cert)
                        .map_err(|e| TransportError::Tls(format!("{}: {e}", path.display())))?;
                }
            }
            None => {
                // The system's trust store, as other TLS clients on the host use.
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
            }
        }
        builder.with_root_certificates(roots)
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let key = private_key(key)?;
            builder
                .with_client_auth_cert(certificates(cert)?, key)
                .map_err(|e| TransportError::Tls(format!("client certificate: {e}")))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// The private key in a PEM file.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TransportError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TransportError::Tls(format!("{}: {e}", path.display())))
}

/// The certificates in a PEM file; none is an error.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TransportError::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TransportError::Tls(format!(
            "{}: no certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// `insecure_skip_verify`: accepts any server certificate. The agent logs a
/// warning at start when a target uses it.
#[derive(Debug)]
struct AcceptAnyCertificate {
    schemes: Vec<SignatureScheme>,
}

impl AcceptAnyCertificate {
    fn new() -> Self {
        let schemes = rustls::crypto::CryptoProvider::get_default()
            .map(|p| p.signature_verification_algorithms.supported_schemes())
            .unwrap_or_else(|| {
                rustls::crypto::aws_lc_rs::default_provider()
                    .signature_verification_algorithms
                    .supported_schemes()
            });
        AcceptAnyCertificate { schemes }
    }
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}
