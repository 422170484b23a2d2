//! Secrets: passwords and tokens, held so that they cannot be printed by
//! accident, read from their files (or variables) where they are used, and
//! URLs cut down to what may be logged.
//!
//! Files and variables are read at every use (each connect, each request),
//! so a rotated credential is picked up without a restart.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A secret value (password, token). `Debug` and `Display` never show it;
/// [`Secret::expose`] is the one way to the text, at the place it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a secret could not be read. Names where it was looked for, never
/// what was found.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretError {
    #[error("cannot read {}: {source}", path.display())]
    File { path: PathBuf, source: io::Error },
    #[error("environment variable {0} is not set")]
    Unset(String),
}

/// The secret in the file at `path`: its text without the line end an
/// editor or `echo` leaves behind.
pub(crate) fn read_secret(path: &Path) -> Result<Secret, SecretError> {
    std::fs::read_to_string(path)
        .map(|text| Secret(text.trim_end_matches(['\r', '\n']).to_owned()))
        .map_err(|source| SecretError::File {
            path: path.to_owned(),
            source,
        })
}

/// The secret in the environment variable `name`.
pub(crate) fn read_secret_env(name: &str) -> Result<Secret, SecretError> {
    std::env::var(name)
        .map(Secret)
        .map_err(|_| SecretError::Unset(name.to_owned()))
}

/// What stands in for a secret wherever one would have been shown.
pub(crate) const REDACTED: &str = "<redacted>";

/// A URL as it may be logged or printed: user info and the values of its
/// query (either may carry a credential) replaced by [`REDACTED`]; the
/// rest, query keys included, kept so the URL can still be recognised.
/// The one redaction of URLs: logs, `check-config`, the status page.
pub(crate) fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        // As the URL is used: normalised (`http://h` is `http://h/`).
        Ok(url) => redact_urls(url.as_str()).0,
        Err(_) if raw.contains("://") => redact_urls(raw).0,
        // A relative one (a Location header's `/path?query`).
        Err(_) => redact_one(raw, &mut Vec::new()),
    }
}

/// Every URL in `text` (anything after a `scheme://`) redacted as
/// [`redact_url`] does, and the pieces taken out, so that a message that
/// quotes them can be cut the same way. Works on text that does not parse
/// as a URL, such as a config line with a syntax error in it.
pub(crate) fn redact_urls(text: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut secrets = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        out.push_str(&rest[..at + 3]);
        rest = &rest[at + 3..];
        let url_end = rest.find(url_end).unwrap_or(rest.len());
        let (url, after) = rest.split_at(url_end);
        out.push_str(&redact_one(url, &mut secrets));
        rest = after;
    }
    out.push_str(rest);
    (out, secrets)
}

/// Where a URL written in text ends: a quote, a space, a separator.
fn url_end(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ']' | '}' | '`' | '<' | '>')
}

/// One URL after its `scheme://`: `[userinfo@]host[/path][?query][#fragment]`.
fn redact_one(url: &str, secrets: &mut Vec<String>) -> String {
    let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let (authority, tail) = url.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    match authority.rfind('@') {
        Some(at) => {
            secrets.push(authority[..at].to_owned());
            out.push_str(REDACTED);
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let (before_fragment, fragment) = match tail.find('#') {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let pairs = query.split('&').map(|pair| match pair.split_once('=') {
                Some((key, value)) => {
                    if !value.is_empty() {
                        secrets.push(value.to_owned());
                    }
                    format!("{key}={REDACTED}")
                }
                // A bare word may be a token on its own.
                None if pair.is_empty() => String::new(),
                None => {
                    secrets.push(pair.to_owned());
                    REDACTED.to_owned()
                }
            });
            out.push_str(&pairs.collect::<Vec<_>>().join("&"));
        }
        None => out.push_str(before_fragment),
    }
    out.push_str(fragment);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_never_printed() {
        let s = Secret::new("s3cr3t");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "s3cr3t");
    }

    #[test]
    fn a_file_secret_loses_its_line_end_and_an_error_names_the_file() {
        let dir = tempfile::TempDir::new().expect("dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\r\n").expect("write");
        assert_eq!(read_secret(&path).expect("read").expose(), "abc");
        let missing = dir.path().join("missing");
        let e = read_secret(&missing).expect_err("missing").to_string();
        assert!(
            e.starts_with(&format!("cannot read {}: ", missing.display())),
            "{e}"
        );
    }

    #[test]
    fn logged_urls_lose_credentials_and_query_values() {
        assert_eq!(
            redact_url("https://u:p@h:9090/api/v1/write?token=t&x=1#f"),
            "https://<redacted>@h:9090/api/v1/write?token=<redacted>&x=<redacted>#f"
        );
        assert_eq!(redact_url("http://h/metrics"), "http://h/metrics");
        assert_eq!(redact_url("http://h/?abc"), "http://h/?<redacted>");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("/moved?token=t"), "/moved?token=<redacted>");
    }

    #[test]
    fn urls_in_text_are_redacted_and_their_secrets_returned() {
        let (text, secrets) = redact_urls(r#"urls = ["redis://:PW@a:6379/0", "http://t@b?k=V"] x"#);
        assert_eq!(
            text,
            r#"urls = ["redis://<redacted>@a:6379/0", "http://<redacted>@b?k=<redacted>"] x"#
        );
        assert_eq!(secrets, [":PW", "t", "V"]);
    }

    proptest::proptest! {
        /// Whatever surrounds it, a URL's password and query value never
        /// survive redaction.
        #[test]
        fn no_url_secret_survives(
            before in "[ -~]{0,12}[ \"',]",
            user in "[a-z]{0,4}",
            pw in "[A-Z0-9]{6,10}",
            host in "[a-z]{1,6}",
            token in "[A-Z0-9]{6,10}",
            after in r#"[ "',\]}]?[ -~]{0,12}"#,
        ) {
            let text = format!("{before}https://{user}:{pw}@{host}/p?token={token}{after}");
            let (out, secrets) = redact_urls(&text);
            proptest::prop_assert!(!out.contains(&format!(":{pw}@")), "{}", out);
            proptest::prop_assert!(!out.contains(&format!("token={token}")), "{}", out);
            proptest::prop_assert!(secrets.iter().any(|s| s.contains(&pw)));
        }
    }
}
