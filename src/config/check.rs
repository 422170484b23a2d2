//! What `check-config` checks beyond the file itself: that every file the
//! settings name can be read by this user now (the agent reads them later,
//! at connect or per request, and would find out only then), and settings
//! that load but are likely not what was meant.

use std::path::Path;
use std::time::Duration;

use super::{Endpoint, Settings, TlsSettings};

/// Samples older than this are refused by a Prometheus receiver without an
/// out-of-order window.
const PROMETHEUS_MAX_SAMPLE_AGE: Duration = Duration::from_secs(3600);

/// What `check-config` reports after the settings.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Files that cannot be read: the configuration is refused.
    pub errors: Vec<String>,
    /// Likely mistakes: said, and the configuration accepted.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Checks the named files and the settings' sense (see the module).
    pub fn check(&self) -> Findings {
        let mut findings = Findings::default();
        for (key, path) in self.files() {
            if let Err(e) = std::fs::File::open(path) {
                findings
                    .errors
                    .push(format!("{key}: cannot read {}: {e}", path.display()));
            }
        }
        if self.remote_write.is_empty() && self.pushgateway.is_none() {
            findings.warnings.push(
                "no push destination: set [remote_write] url or [pushgateway] url (or --remote-write, --pushgateway) to push; until then /metrics is only served".to_owned(),
            );
        }
        if !self.remote_write.is_empty() && self.queue.max_age > PROMETHEUS_MAX_SAMPLE_AGE {
            findings.warnings.push(format!(
                "queue.max_age is {}: a Prometheus receiver without an out-of-order window refuses samples older than about 1h, so the older part of a backlog would be dropped as rejected (VictoriaMetrics and Mimir accept them)",
                humantime::format_duration(self.queue.max_age)
            ));
        }
        findings
    }

    /// Every file the settings name, with the key that names it (and the
    /// target, for a target's).
    fn files(&self) -> Vec<(String, &Path)> {
        let mut files = Vec::new();
        for t in &self.targets {
            let key = |k: &str| format!("targets ({}).{k}", t.instance);
            if let Some(p) = &t.password_file {
                files.push((key("password_file"), p.as_path()));
            }
            if let Some(p) = &t.script_file {
                files.push((key("script_file"), p.as_path()));
            }
            tls_files(&mut files, t.tls.as_ref(), &key("tls_"));
        }
        for rw in &self.remote_write {
            endpoint_files(&mut files, &rw.endpoint, &rw.key);
        }
        if let Some(pg) = &self.pushgateway {
            endpoint_files(&mut files, &pg.endpoint, "pushgateway");
        }
        if let Some((_, p)) = &self.http.basic_auth {
            files.push(("http.basic_auth.password_file".to_owned(), p.as_path()));
        }
        if let Some((cert, key)) = &self.http.tls {
            files.push(("http.tls_cert_file".to_owned(), cert.as_path()));
            files.push(("http.tls_key_file".to_owned(), key.as_path()));
        }
        files
    }
}

fn endpoint_files<'a>(files: &mut Vec<(String, &'a Path)>, e: &'a Endpoint, section: &str) {
    if let Some((_, p)) = &e.basic_auth {
        files.push((format!("{section}.basic_auth.password_file"), p.as_path()));
    }
    if let Some(p) = &e.bearer_token_file {
        files.push((format!("{section}.bearer_token_file"), p.as_path()));
    }
    if let Some(file) = e.sigv4.as_ref().and_then(|v| v.secret_key_file.as_ref()) {
        files.push((format!("{section}.sigv4.secret_key_file"), file.as_path()));
    }
    if let Some(o) = &e.oauth2 {
        let key = format!("{section}.oauth2.client_secret_file");
        files.push((key, o.client_secret_file.as_path()));
    }
    tls_files(files, e.tls.as_ref(), &format!("{section}.tls."));
}

/// A TLS table's files; `prefix` ends where the key's name starts.
fn tls_files<'a>(files: &mut Vec<(String, &'a Path)>, tls: Option<&'a TlsSettings>, prefix: &str) {
    let Some(tls) = tls else { return };
    for (name, path) in [
        ("ca_file", &tls.ca_file),
        ("cert_file", &tls.cert_file),
        ("key_file", &tls.key_file),
    ] {
        if let Some(p) = path {
            files.push((format!("{prefix}{name}"), p.as_path()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Overrides;

    fn settings(text: &str) -> Settings {
        Settings::from_toml(Path::new("check-test.toml"), text, &Overrides::default())
            .expect("valid settings")
    }

    #[test]
    fn unreadable_files_are_errors_named_by_key() {
        let dir = tempfile::TempDir::new().expect("dir");
        let there = dir.path().join("pw");
        std::fs::write(&there, "secret").expect("write");
        let missing = dir.path().join("missing");
        let s = settings(&format!(
            "[[targets]]\nurl = \"redis://h:1\"\npassword_file = \"{}\"\n[remote_write]\nurl = \"http://rw/api/v1/write\"\nbearer_token_file = \"{}\"\n[remote_write.tls]\nca_file = \"{}\"\n",
            there.display(),
            missing.display(),
            missing.display(),
        ));
        let findings = s.check();
        assert_eq!(findings.errors.len(), 2, "{findings:?}");
        assert!(
            findings.errors[0].starts_with(&format!(
                "remote_write.bearer_token_file: cannot read {}: No such file",
                missing.display()
            )),
            "{findings:?}"
        );
        assert!(findings.errors[1].starts_with("remote_write.tls.ca_file: "));
    }

    #[test]
    fn no_destination_and_a_long_max_age_are_warnings() {
        let s = settings("[[targets]]\nurl = \"redis://h:1\"\n");
        let findings = s.check();
        assert!(findings.errors.is_empty());
        assert_eq!(findings.warnings.len(), 1);
        assert!(findings.warnings[0].starts_with("no push destination"));

        let s = settings(
            "[remote_write]\nurl = \"http://rw/api/v1/write\"\n[queue]\nmax_age = \"3h\"\n",
        );
        let findings = s.check();
        assert_eq!(findings.warnings.len(), 1, "{findings:?}");
        assert!(findings.warnings[0].starts_with("queue.max_age is 3h"));

        let s = settings(
            "[remote_write]\nurl = \"http://rw/api/v1/write\"\n[queue]\nmax_age = \"1h\"\n",
        );
        assert_eq!(s.check(), Findings::default());
    }
}
