//! Pushgateway client: `PUT /metrics/job/<job>/instance/<instance>` with the
//! text exposition format (no timestamps: the Pushgateway refuses them).
//! PUT replaces the whole group, so a push never leaves stale series behind.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::config::PushgatewaySettings;
use crate::http_client::{self, ClientError, Credentials, CredentialsError};

#[derive(Debug, thiserror::Error)]
pub(crate) enum PushError {
    #[error("Pushgateway client: {0}")]
    Client(#[from] ClientError),
    #[error("Pushgateway request failed: {0}")]
    Credentials(#[from] CredentialsError),
    #[error("Pushgateway request failed: {0}")]
    Request(#[source] reqwest::Error),
    #[error("Pushgateway answered {status}: {message}")]
    Status { status: u16, message: String },
}

/// One path segment pair. A value that is empty or holds characters that
/// do not belong in a URL path is written base64url-encoded with the
/// Pushgateway's `@base64` suffix (an empty value as `=`).
pub(crate) fn segment(name: &str, value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if plain {
        format!("{name}/{value}")
    } else if value.is_empty() {
        format!("{name}@base64/=")
    } else {
        format!("{name}@base64/{}", URL_SAFE_NO_PAD.encode(value))
    }
}

/// The group URL for `job`, `instance` and extra grouping labels under the
/// Pushgateway at `base`. A query in `base` (a token a proxy in front of the
/// Pushgateway wants) stays after the path.
pub(crate) fn group_url(
    base: &str,
    job: &str,
    instance: &str,
    grouping: &[(String, String)],
) -> String {
    let (base, query) = match base.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (base, None),
    };
    let mut url = format!(
        "{}/metrics/{}/{}",
        base.trim_end_matches('/'),
        segment("job", job),
        segment("instance", instance)
    );
    for (name, value) in grouping {
        url.push('/');
        url.push_str(&segment(name, value));
    }
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// A Pushgateway client for one configuration: groups, auth, timeouts.
pub(crate) struct Pushgateway {
    client: reqwest::Client,
    credentials: Credentials,
    settings: PushgatewaySettings,
}

impl Pushgateway {
    pub(crate) fn new(settings: PushgatewaySettings) -> Result<Self, PushError> {
        let client = http_client::build(&settings.endpoint, Default::default())?;
        let credentials = Credentials::new(&settings.endpoint, &client);
        Ok(Pushgateway {
            client,
            credentials,
            settings,
        })
    }

    pub(crate) fn settings(&self) -> &PushgatewaySettings {
        &self.settings
    }

    fn url(&self, instance: &str) -> String {
        group_url(
            &self.settings.endpoint.url,
            &self.settings.job,
            instance,
            &self.settings.grouping,
        )
    }

    async fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, PushError> {
        Ok(self.credentials.authorize(request).await?)
    }

    /// Replaces the group of `instance` with `body` (text exposition format).
    pub(crate) async fn put(&self, instance: &str, body: String) -> Result<(), PushError> {
        let request = self
            .client
            .put(self.url(instance))
            .header("Content-Type", crate::exposition::CONTENT_TYPE)
            .body(body);
        self.check(self.authorize(request).await?.send().await)
            .await
    }

    /// Deletes the group of `instance`.
    pub(crate) async fn delete(&self, instance: &str) -> Result<(), PushError> {
        let request = self.client.delete(self.url(instance));
        self.check(self.authorize(request).await?.send().await)
            .await
    }
}

impl Pushgateway {
    /// The outcome of a request; a 401 drops a refused OAuth2 token.
    async fn check(
        &self,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<(), PushError> {
        let response = sent.map_err(|e| PushError::Request(e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            self.credentials.refused().await;
        }
        Err(PushError::Status {
            status: status.as_u16(),
            message: crate::http_client::error_body(response).await,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_encoded_segments() {
        assert_eq!(
            segment("instance", "10.0.0.1:6379"),
            "instance/10.0.0.1:6379"
        );
        assert_eq!(segment("instance", ""), "instance@base64/=");
        assert_eq!(
            segment("instance", "/run/redis.sock"),
            "instance@base64/L3J1bi9yZWRpcy5zb2Nr"
        );
        assert_eq!(
            group_url("http://pg:9091/", "redis", "[::1]:6379", &[]),
            "http://pg:9091/metrics/job/redis/instance@base64/Wzo6MV06NjM3OQ"
        );
        assert_eq!(
            group_url(
                "http://pg:9091",
                "redis",
                "h:1",
                &[("dc".into(), "eu west".into())]
            ),
            "http://pg:9091/metrics/job/redis/instance/h:1/dc@base64/ZXUgd2VzdA"
        );
        assert_eq!(
            group_url("https://pg/base/?token=t&a=b", "redis", "h:1", &[]),
            "https://pg/base/metrics/job/redis/instance/h:1?token=t&a=b"
        );
    }
}
