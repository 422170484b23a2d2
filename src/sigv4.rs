//! AWS Signature Version 4 for remote write (`[remote_write.sigv4]`), as
//! Amazon Managed Service for Prometheus requires: every request signed
//! for the service `aps` in the endpoint's region (`aws-sigv4`, AWS' own
//! signing code).
//!
//! Credentials: an access key with its secret read from a file (at every
//! request, so a rotated one is picked up), or AWS' usual chain
//! (`aws-config`: the environment, the shared credentials file and
//! profile, a web identity token, the instance's metadata service), and
//! from either a role assumed with `role_arn`. The chain is built at the
//! first request (it reaches nothing before) and its credentials kept
//! until five minutes before they expire.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use reqwest::header::{HeaderName, HeaderValue};
use tokio::sync::{Mutex, OnceCell};

use crate::config::SigV4Settings;
use crate::secret::{SecretError, read_secret};
use crate::untrusted::one_line;

/// The service Amazon Managed Service for Prometheus signs for.
const SERVICE: &str = "aps";

/// Credentials are replaced this long before they expire.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub(crate) enum SigV4Error {
    #[error("sigv4.secret_key_file: {0}")]
    Secret(#[from] SecretError),
    #[error("sigv4: no AWS credentials: {0}")]
    Credentials(String),
    #[error("sigv4: no region (set sigv4.region, AWS_REGION or the profile's region)")]
    Region,
    #[error("sigv4: cannot sign the request: {0}")]
    Sign(String),
}

/// Where credentials come from, once resolved.
struct Source {
    region: String,
    provider: SharedCredentialsProvider,
}

/// Signs an endpoint's requests.
pub(crate) struct Signer {
    settings: SigV4Settings,
    source: OnceCell<Source>,
    /// Credentials from the provider, kept until near their expiry.
    kept: Mutex<Option<Credentials>>,
}

impl Signer {
    pub(crate) fn new(settings: SigV4Settings) -> Signer {
        Signer {
            settings,
            source: OnceCell::new(),
            kept: Mutex::new(None),
        }
    }

    /// Adds the signature's headers (`Authorization`, `X-Amz-Date`, and
    /// `X-Amz-Security-Token` for temporary credentials) to `request`.
    pub(crate) async fn sign(&self, request: &mut reqwest::Request) -> Result<(), SigV4Error> {
        let (region, credentials) = self.credentials().await?;
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SigV4Error::Sign(e.to_string()))?
            .into();
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let body = request
            .body()
            .and_then(|b| b.as_bytes())
            .unwrap_or_default();
        let signable = SignableRequest::new(
            request.method().as_str(),
            request.url().as_str(),
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| SigV4Error::Sign(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| SigV4Error::Sign(e.to_string()))?
            .into_parts();
        let mut add = Vec::new();
        for (name, value) in instructions.headers() {
            let name = HeaderName::from_str(name).map_err(|e| SigV4Error::Sign(e.to_string()))?;
            let mut value =
                HeaderValue::from_str(value).map_err(|e| SigV4Error::Sign(e.to_string()))?;
            value.set_sensitive(true);
            add.push((name, value));
        }
        for (name, value) in add {
            request.headers_mut().insert(name, value);
        }
        Ok(())
    }

    /// The region and credentials to sign with now.
    async fn credentials(&self) -> Result<(String, Credentials), SigV4Error> {
        if let (Some(key), Some(file)) = (&self.settings.access_key, &self.settings.secret_key_file)
        {
            let region = self.settings.region.clone().ok_or(SigV4Error::Region)?;
            let secret = read_secret(file)?;
            let credentials = Credentials::new(key, secret.expose(), None, None, "redpush");
            return Ok((region, credentials));
        }
        let source = self.source.get_or_try_init(|| self.resolve()).await?;
        let mut kept = self.kept.lock().await;
        let fresh = kept.as_ref().is_some_and(|c| {
            c.expiry()
                .is_none_or(|at| SystemTime::now() + REFRESH_BEFORE < at)
        });
        if !fresh {
            let credentials = source
                .provider
                .provide_credentials()
                .await
                .map_err(|e| SigV4Error::Credentials(one_line(&error_chain(&e))))?;
            *kept = Some(credentials);
        }
        let credentials = kept
            .clone()
            .ok_or_else(|| SigV4Error::Credentials("none".into()))?;
        Ok((source.region.clone(), credentials))
    }

    /// AWS' default chain (with `profile`), then `role_arn` assumed from it.
    async fn resolve(&self) -> Result<Source, SigV4Error> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &self.settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(profile) = &self.settings.profile {
            loader = loader.profile_name(profile);
        }
        let config = loader.load().await;
        let region = config.region().ok_or(SigV4Error::Region)?.to_string();
        let chain = config
            .credentials_provider()
            .ok_or_else(|| SigV4Error::Credentials("no credentials provider".into()))?;
        let provider = match &self.settings.role_arn {
            None => chain,
            Some(role) => SharedCredentialsProvider::new(
                aws_config::sts::AssumeRoleProvider::builder(role)
                    .session_name("redpush")
                    .configure(&config)
                    .build()
                    .await,
            ),
        };
        Ok(Source { region, provider })
    }
}

/// An error and its sources, on one line: the chain's errors say which
/// providers were tried in their sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
