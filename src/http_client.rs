//! The HTTP client for pushes (remote write, Pushgateway): one place for
//! what both need. TLS roots, client certificate and `insecure_skip_verify`
//! from the settings; the standard proxy variables (`HTTP_PROXY`,
//! `HTTPS_PROXY`, `NO_PROXY`) honoured; redirects not followed (a redirect
//! would turn a POST into a GET; a moved endpoint is a configuration error to
//! report); response bodies read up to a bound.

use std::path::{Path, PathBuf};

use reqwest::RequestBuilder;
use reqwest::header::HeaderMap;

use crate::config::Endpoint;
use crate::oauth2_token::{TokenError, TokenSource};
use crate::secret::{SecretError, read_secret, redact_url};
#[cfg(feature = "sigv4")]
use crate::sigv4::{SigV4Error, Signer};
use crate::untrusted::one_line;

pub(crate) const USER_AGENT: &str = concat!("redpush/", env!("CARGO_PKG_VERSION"));

/// Most bytes of an error response kept for the log: enough for the
/// receiver's reason, and a huge body costs nothing.
pub(crate) const MAX_ERROR_BODY: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read {}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Pem {
        path: PathBuf,
        source: reqwest::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

fn read(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::File {
        path: path.to_owned(),
        source,
    })
}

/// The client of `endpoint`, sending `headers` with every request. Says so
/// at WARN when its TLS does not verify the server, each time one is built.
pub(crate) fn build(
    endpoint: &Endpoint,
    headers: HeaderMap,
) -> Result<reqwest::Client, ClientError> {
    if endpoint
        .tls
        .as_ref()
        .is_some_and(|t| t.insecure_skip_verify)
    {
        tracing::warn!(
            url = %redact_url(&endpoint.url),
            "insecure_skip_verify: the server's TLS certificate is not checked"
        );
    }
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .default_headers(headers)
        .timeout(endpoint.timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(tls) = &endpoint.tls {
        if let Some(path) = &tls.ca_file {
            let certs = reqwest::Certificate::from_pem_bundle(&read(path)?).map_err(|source| {
                ClientError::Pem {
                    path: path.clone(),
                    source,
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
            let identity =
                reqwest::Identity::from_pem(&pem).map_err(|source| ClientError::Pem {
                    path: cert.clone(),
                    source,
                })?;
            builder = builder.identity(identity);
        }
        if tls.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
    }
    builder.build().map_err(ClientError::Build)
}

/// An endpoint's credentials, added to each request: basic auth (user and
/// password file) and a bearer token (file) read from their files at every
/// request, so that a rotated one is picked up; an OAuth2 token, kept
/// until it nears its expiry (`oauth2_token`); or an AWS signature
/// (`sigv4`).
pub(crate) struct Credentials {
    basic_auth: Option<(String, PathBuf)>,
    bearer_token_file: Option<PathBuf>,
    oauth2: Option<TokenSource>,
    #[cfg(feature = "sigv4")]
    sigv4: Option<Signer>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CredentialsError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[cfg(feature = "sigv4")]
    #[error(transparent)]
    SigV4(#[from] SigV4Error),
    #[cfg(feature = "sigv4")]
    #[error("the request cannot be built: {0}")]
    Build(String),
}

impl Credentials {
    /// The credentials of `endpoint`; a token is fetched with `client`.
    pub(crate) fn new(endpoint: &Endpoint, client: &reqwest::Client) -> Credentials {
        Credentials {
            basic_auth: endpoint.basic_auth.clone(),
            bearer_token_file: endpoint.bearer_token_file.clone(),
            oauth2: endpoint
                .oauth2
                .clone()
                .map(|o| TokenSource::new(o, client.clone())),
            #[cfg(feature = "sigv4")]
            sigv4: endpoint.sigv4.clone().map(Signer::new),
        }
    }

    /// `request` with the credentials added.
    pub(crate) async fn authorize(
        &self,
        mut request: RequestBuilder,
    ) -> Result<RequestBuilder, CredentialsError> {
        if let Some((user, file)) = &self.basic_auth {
            request = request.basic_auth(user, Some(read_secret(file)?.expose()));
        }
        if let Some(file) = &self.bearer_token_file {
            request = request.bearer_auth(read_secret(file)?.expose());
        }
        if let Some(tokens) = &self.oauth2 {
            request = request.bearer_auth(tokens.token().await?.expose());
        }
        #[cfg(feature = "sigv4")]
        if let Some(signer) = &self.sigv4 {
            // Signed last, over the request as it will be sent.
            let (client, built) = request.build_split();
            let mut built =
                built.map_err(|e| CredentialsError::Build(e.without_url().to_string()))?;
            signer.sign(&mut built).await?;
            request = RequestBuilder::from_parts(client, built);
        }
        Ok(request)
    }

    /// The endpoint answered 401: an OAuth2 token it refused is not used
    /// again.
    pub(crate) async fn refused(&self) {
        if let Some(tokens) = &self.oauth2 {
            tokens.refused().await;
        }
    }
}

/// What a failed answer says, as it may be logged (one line, escaped): for
/// a redirect, its status and where it points (not followed; the
/// Location's credentials redacted), else the start of its body, at most
/// `MAX_ERROR_BODY` bytes.
pub(crate) async fn error_body(mut response: reqwest::Response) -> String {
    if response.status().is_redirection() {
        return match response.headers().get(reqwest::header::LOCATION) {
            Some(to) => format!(
                "redirected to {} (redirects are not followed: set the url to where it points)",
                one_line(&redact_url(&String::from_utf8_lossy(to.as_bytes())))
            ),
            None => "a redirect without a Location (not followed)".to_owned(),
        };
    }
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(MAX_ERROR_BODY - body.len())])
            }
            _ => break,
        }
    }
    one_line(String::from_utf8_lossy(&body).trim())
}
