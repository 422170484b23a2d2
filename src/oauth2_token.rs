//! OAuth2 client credentials for a push endpoint (RFC 6749 4.4): a token
//! fetched from `token_url`, kept, and fetched again before it expires.
//!
//! Invariants:
//! - at most one token request at a time per endpoint: requests that find
//!   the token stale wait for the one fetch instead of each making one;
//! - a token is used until `REFRESH_BEFORE` its expiry (a fifth of its life
//!   when that is shorter), so a request never carries one that expires in
//!   flight; a token without an expiry is used until the receiver refuses
//!   it ([`TokenSource::refused`]);
//! - the client secret is read from its file at every token request (a
//!   rotated one is picked up) and, like the token, never logged.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::config::OAuth2Settings;
use crate::secret::{Secret, SecretError, read_secret};
use crate::untrusted::one_line;

/// How long before its expiry a token is replaced, at most.
const REFRESH_BEFORE: Duration = Duration::from_secs(60);

/// Most bytes of a token endpoint's answer read.
const MAX_ANSWER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("oauth2.client_secret_file: {0}")]
    Secret(#[from] SecretError),
    #[error("the OAuth2 token request failed: {0}")]
    Request(String),
}

/// A token and when to replace it.
#[derive(Clone)]
struct Token {
    secret: Secret,
    /// `None`: no expiry was given.
    refresh_at: Option<Instant>,
}

/// When a token obtained at `obtained`, valid for `expires_in`, is replaced.
fn refresh_at(obtained: Instant, expires_in: Option<Duration>) -> Option<Instant> {
    expires_in.map(|life| obtained + life - (life / 5).min(REFRESH_BEFORE))
}

/// An endpoint's OAuth2 tokens.
pub(crate) struct TokenSource {
    settings: OAuth2Settings,
    client: reqwest::Client,
    token: Mutex<Option<Token>>,
}

impl TokenSource {
    /// Tokens for `settings`, fetched with `client` (the endpoint's: its
    /// TLS and proxy settings apply to the token endpoint too).
    pub(crate) fn new(settings: OAuth2Settings, client: reqwest::Client) -> TokenSource {
        TokenSource {
            settings,
            client,
            token: Mutex::new(None),
        }
    }

    /// A token valid for a while yet: the kept one, or a new one.
    pub(crate) async fn token(&self) -> Result<Secret, TokenError> {
        let mut kept = self.token.lock().await;
        let now = Instant::now();
        if let Some(token) = kept.as_ref()
            && token.refresh_at.is_none_or(|at| now < at)
        {
            return Ok(token.secret.clone());
        }
        let token = self.fetch().await?;
        let secret = token.secret.clone();
        *kept = Some(token);
        Ok(secret)
    }

    /// The receiver refused the credentials: the kept token is dropped, so
    /// the next request fetches another.
    pub(crate) async fn refused(&self) {
        *self.token.lock().await = None;
    }

    async fn fetch(&self) -> Result<Token, TokenError> {
        let s = &self.settings;
        let secret = read_secret(&s.client_secret_file)?;
        let form = token_request(s);
        // RFC 6749 2.3.1: the client's id and secret, form-encoded, as
        // HTTP Basic credentials.
        let encode =
            |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        let obtained = Instant::now();
        let response = self
            .client
            .post(&s.token_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .basic_auth(encode(&s.client_id), Some(encode(secret.expose())))
            .body(form)
            .send()
            .await
            .map_err(|e| TokenError::Request(without_url(&e)))?;
        let status = response.status();
        let body = read_answer(response).await?;
        if !status.is_success() {
            return Err(TokenError::Request(refusal(status, &body)));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            TokenError::Request(format!(
                "the answer is not a token: {}",
                one_line(&e.to_string())
            ))
        })?;
        if !answer.token_type.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::Request(format!(
                "token_type {} is not bearer",
                one_line(&answer.token_type)
            )));
        }
        Ok(Token {
            secret: Secret::new(answer.access_token),
            refresh_at: refresh_at(obtained, answer.expires_in.map(Duration::from_secs)),
        })
    }
}

/// The token request's form: the grant, the scopes, the extra parameters.
fn token_request(s: &OAuth2Settings) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if !s.scopes.is_empty() {
        form.append_pair("scope", &s.scopes.join(" "));
    }
    for (name, value) in &s.endpoint_params {
        form.append_pair(name, value);
    }
    form.finish()
}

/// A successful token answer (RFC 6749 5.1); other fields are ignored.
#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
    token_type: String,
    expires_in: Option<u64>,
}

/// An error answer (RFC 6749 5.2), as far as it says why.
#[derive(serde::Deserialize)]
struct ErrorAnswer {
    error: String,
    error_description: Option<String>,
}

/// At most `MAX_ANSWER` bytes of a token endpoint's answer.
async fn read_answer(mut response: reqwest::Response) -> Result<Vec<u8>, TokenError> {
    let mut body = Vec::new();
    while body.len() < MAX_ANSWER {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(MAX_ANSWER - body.len())])
            }
            Ok(None) => break,
            Err(e) => return Err(TokenError::Request(without_url(&e))),
        }
    }
    Ok(body)
}

fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "the token url");
    }
    one_line(&text)
}

/// A refused token request as it may be logged: its status and the
/// endpoint's error code and description (escaped: they come from
/// outside), or the start of its body; never the secret.
fn refusal(status: reqwest::StatusCode, body: &[u8]) -> String {
    let why = match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(e) => match e.error_description {
            Some(d) => format!("{}: {}", e.error, d),
            None => e.error,
        },
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned(),
    };
    format!("the token endpoint answered {status}: {}", one_line(&why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_replaced_before_it_expires() {
        let t = Instant::now();
        // An hour: a minute before its end.
        assert_eq!(
            refresh_at(t, Some(Duration::from_secs(3600))),
            Some(t + Duration::from_secs(3540))
        );
        // Ten seconds: at four fifths of its life.
        assert_eq!(
            refresh_at(t, Some(Duration::from_secs(10))),
            Some(t + Duration::from_secs(8))
        );
        assert_eq!(refresh_at(t, None), None);
    }

    #[test]
    fn the_request_form_and_a_refusal_as_logged() {
        let settings = OAuth2Settings {
            client_id: "c".into(),
            client_secret_file: "/s".into(),
            token_url: "https://auth/token".into(),
            scopes: vec!["a:b".into(), "c".into()],
            endpoint_params: vec![("audience".into(), "x y".into())],
        };
        assert_eq!(
            token_request(&settings),
            "grant_type=client_credentials&scope=a%3Ab+c&audience=x+y"
        );
        let body = br#"{"error":"invalid_client","error_description":"bad\nsecret\u001b[2J"}"#;
        let said = refusal(reqwest::StatusCode::UNAUTHORIZED, body);
        assert!(
            said.starts_with("the token endpoint answered 401 Unauthorized: invalid_client: bad"),
            "{said}"
        );
        assert!(!said.contains('\n') && !said.contains('\u{1b}'), "{said}");
    }
}
