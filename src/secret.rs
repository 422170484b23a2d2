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

/// A URL without user info and query (which may carry a token), safe to log.
pub(crate) fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "<invalid url>".to_owned(),
    }
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
    fn logged_urls_lose_credentials_and_query() {
        assert_eq!(
            redact_url("https://u:p@h:9090/api/v1/write?token=t"),
            "https://h:9090/api/v1/write"
        );
        assert_eq!(redact_url("not a url"), "<invalid url>");
    }
}
