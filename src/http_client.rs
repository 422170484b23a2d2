//! The HTTP client for pushes (remote write, Pushgateway): one place for
//! what both need. TLS roots, client certificate and `insecure_skip_verify`
//! from the settings; the standard proxy variables (`HTTP_PROXY`,
//! `HTTPS_PROXY`, `NO_PROXY`) honoured; redirects not followed (a redirect
//! would turn a POST into a GET; a moved endpoint is a configuration error to
//! report); response bodies read up to a bound.

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::config::TlsSettings;

pub const USER_AGENT: &str = concat!("redpush/", env!("CARGO_PKG_VERSION"));

/// Most bytes of an error response kept for the log: enough for the
/// receiver's reason, and a huge body costs nothing.
pub const MAX_ERROR_BODY: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read {path}: {error}")]
    File { path: String, error: String },
    #[error("{path}: {error}")]
    Pem { path: String, error: String },
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::File {
        path: path.display().to_string(),
        error: e.to_string(),
    })
}

pub fn build(
    timeout: Duration,
    tls: Option<&TlsSettings>,
    headers: HeaderMap,
) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .default_headers(headers)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(tls) = tls {
        if let Some(path) = &tls.ca_file {
            let certs = reqwest::Certificate::from_pem_bundle(&read(path)?).map_err(|e| {
                ClientError::Pem {
                    path: path.display().to_string(),
                    error: e.to_string(),
                }
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| ClientError::Pem {
                path: cert.display().to_string(),
                error: e.to_string(),
            })?;
            builder = builder.identity(identity);
        }
        if tls.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
    }
    builder
        .build()
        .map_err(|e| ClientError::Build(e.to_string()))
}

/// The start of a response body, at most `MAX_ERROR_BODY` bytes, as text.
pub async fn error_body(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(MAX_ERROR_BODY - body.len())])
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&body).trim().to_owned()
}
