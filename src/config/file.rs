//! The configuration file as written, and the readers of its values.
//!
//! Durations and sizes stay as written until validation, so that a bad one
//! is reported with its file and line like any other bad value. Every
//! error names where the value came from ([`Origin`]): the file and line,
//! the flag, or the default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Origin};
use crate::relabel::{Rule, RuleText, Rules};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) state_dir: Option<PathBuf>,
    pub(super) job: Option<Spanned<String>>,
    pub(super) interval: Option<Spanned<String>>,
    pub(super) min_interval: Option<Spanned<String>>,
    pub(super) max_interval: Option<Spanned<String>>,
    pub(super) adaptive: Option<bool>,
    #[serde(default)]
    pub(super) external_labels: BTreeMap<Spanned<String>, String>,
    #[serde(default)]
    pub(super) targets: Vec<FileTarget>,
    #[serde(default)]
    pub(super) remote_write: FileRemoteWrites,
    pub(super) pushgateway: Option<FilePushgateway>,
    #[serde(default)]
    pub(super) metrics: FileMetrics,
    #[serde(default)]
    pub(super) queue: FileQueue,
    #[serde(default)]
    pub(super) http: FileHttp,
    #[serde(default)]
    pub(super) log: FileLog,
}

/// How the agent logs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLog {
    pub(super) level: Option<Spanned<String>>,
    pub(super) format: Option<Spanned<String>>,
}

/// The agent's own endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHttp {
    pub(super) basic_auth: Option<FileBasicAuth>,
    pub(super) tls_cert_file: Option<PathBuf>,
    pub(super) tls_key_file: Option<PathBuf>,
    pub(super) ready_delivery_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTarget {
    pub(super) url: Spanned<String>,
    pub(super) username: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) connect_timeout: Option<Spanned<String>>,
    pub(super) command_timeout: Option<Spanned<String>>,
    pub(super) interval: Option<Spanned<String>>,
    pub(super) min_interval: Option<Spanned<String>>,
    pub(super) max_interval: Option<Spanned<String>>,
    pub(super) adaptive: Option<bool>,
    #[serde(default)]
    pub(super) labels: BTreeMap<Spanned<String>, String>,
    pub(super) password_env: Option<String>,
    pub(super) max_reply_bytes: Option<Spanned<ByteSize>>,
    pub(super) tls_ca_file: Option<PathBuf>,
    pub(super) tls_cert_file: Option<PathBuf>,
    pub(super) tls_key_file: Option<PathBuf>,
    pub(super) tls_server_name: Option<String>,
    pub(super) insecure_skip_verify: Option<bool>,
    pub(super) cluster: Option<bool>,
    pub(super) sentinel_discovery: Option<bool>,
    pub(super) discovery_interval: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) check_keys: Vec<String>,
    #[serde(default)]
    pub(super) check_single_keys: Vec<String>,
    #[serde(default)]
    pub(super) count_keys: Vec<String>,
    #[serde(default)]
    pub(super) check_key_groups: Vec<String>,
    pub(super) max_distinct_key_groups: Option<Spanned<usize>>,
    pub(super) key_interval: Option<Spanned<String>>,
    pub(super) key_time_budget: Option<Spanned<String>>,
    pub(super) key_scan_count: Option<Spanned<u32>>,
    pub(super) key_max: Option<Spanned<usize>>,
    pub(super) client_list: Option<bool>,
    pub(super) client_list_detail: Option<bool>,
    pub(super) script_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) metric_relabel_configs: Vec<Spanned<RuleText>>,
}

/// `remote_write` as written: one `[remote_write]` table or an array of
/// `[[remote_write]]` tables (several endpoints). Either way each table is
/// read by `FileRemoteWrite`'s own rules, so an unknown key or a bad value
/// is reported as in any other table, with its line.
#[derive(Debug, Default)]
pub(super) struct FileRemoteWrites {
    pub(super) tables: Vec<FileRemoteWrite>,
    /// Written as `[[remote_write]]`: messages then name a table by its
    /// index (`remote_write[1].url`).
    pub(super) array: bool,
}

impl FileRemoteWrites {
    /// How messages name table `index`: `remote_write`, or
    /// `remote_write[index]` in the array form.
    pub(super) fn key(&self, index: usize) -> String {
        if self.array {
            format!("remote_write[{index}]")
        } else {
            "remote_write".to_owned()
        }
    }
}

impl<'de> Deserialize<'de> for FileRemoteWrites {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Tables;
        impl<'de> serde::de::Visitor<'de> for Tables {
            type Value = FileRemoteWrites;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a [remote_write] table or [[remote_write]] tables")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let table = FileRemoteWrite::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(FileRemoteWrites {
                    tables: vec![table],
                    array: false,
                })
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                let tables = Vec::<FileRemoteWrite>::deserialize(
                    serde::de::value::SeqAccessDeserializer::new(seq),
                )?;
                Ok(FileRemoteWrites {
                    tables,
                    array: true,
                })
            }
        }
        deserializer.deserialize_any(Tables)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRemoteWrite {
    /// The endpoint's name in counters, logs and its queue position.
    pub(super) name: Option<Spanned<String>>,
    pub(super) url: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) flush_deadline: Option<Spanned<String>>,
    pub(super) min_backoff: Option<Spanned<String>>,
    pub(super) max_backoff: Option<Spanned<String>>,
    pub(super) max_samples_per_send: Option<Spanned<usize>>,
    pub(super) max_shards: Option<Spanned<usize>>,
    pub(super) max_samples_per_second: Option<Spanned<u64>>,
    pub(super) send_metadata: Option<bool>,
    pub(super) metadata_interval: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, Spanned<String>>,
    pub(super) basic_auth: Option<FileBasicAuth>,
    pub(super) bearer_token_file: Option<PathBuf>,
    pub(super) oauth2: Option<FileOAuth2>,
    pub(super) sigv4: Option<FileSigV4>,
    pub(super) tls: Option<FileHttpTls>,
    #[serde(default)]
    pub(super) write_relabel_configs: Vec<Spanned<RuleText>>,
}

/// TLS of an HTTP client (remote write, Pushgateway).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHttpTls {
    pub(super) ca_file: Option<PathBuf>,
    pub(super) cert_file: Option<PathBuf>,
    pub(super) key_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) insecure_skip_verify: bool,
}

/// OAuth2 client credentials (`[remote_write.oauth2]`, `[pushgateway.oauth2]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileOAuth2 {
    pub(super) client_id: String,
    pub(super) client_secret_file: PathBuf,
    pub(super) token_url: Spanned<String>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    #[serde(default)]
    pub(super) endpoint_params: BTreeMap<String, String>,
}

/// AWS Signature Version 4 (`[remote_write.sigv4]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSigV4 {
    pub(super) region: Option<String>,
    pub(super) access_key: Option<String>,
    pub(super) secret_key_file: Option<PathBuf>,
    pub(super) profile: Option<String>,
    pub(super) role_arn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileBasicAuth {
    pub(super) username: String,
    pub(super) password_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FilePushgateway {
    pub(super) url: Spanned<String>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) job: Option<Spanned<String>>,
    pub(super) interval: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) grouping: BTreeMap<Spanned<String>, String>,
    pub(super) basic_auth: Option<FileBasicAuth>,
    pub(super) bearer_token_file: Option<PathBuf>,
    pub(super) oauth2: Option<FileOAuth2>,
    #[serde(default)]
    pub(super) delete_on_shutdown: bool,
    pub(super) tls: Option<FileHttpTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileQueue {
    pub(super) max_disk_bytes: Option<Spanned<ByteSize>>,
    pub(super) max_age: Option<Spanned<String>>,
    pub(super) fsync: Option<Spanned<String>>,
}

/// A size written as a number of bytes or as a string with a unit.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum ByteSize {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileMetrics {
    pub(super) unmapped_info_fields: Option<bool>,
    pub(super) config_refresh: Option<Spanned<String>>,
    pub(super) detail_interval: Option<Spanned<String>>,
    pub(super) max_series_per_target: Option<Spanned<usize>>,
    pub(super) latency_histograms: Option<Spanned<String>>,
}

/// Resolves spans to lines for error messages.
pub(super) struct Locator<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

impl Locator<'_> {
    pub(super) fn origin<T>(&self, spanned: &Spanned<T>) -> Origin {
        let start = spanned.span().start.min(self.text.len());
        Origin::File {
            path: self.path.to_owned(),
            line: self.text[..start].bytes().filter(|&b| b == b'\n').count() + 1,
        }
    }
}

pub(super) fn invalid(origin: Origin, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin,
        key: key.to_owned(),
        message: message.into(),
    }
}

/// A value with its origin: from a flag, from the file, or the default.
pub(super) fn pick<'a>(
    flag: Option<&'a str>,
    flag_name: &'static str,
    file: Option<&'a Spanned<String>>,
    loc: &Locator<'_>,
    default: &'a str,
) -> (&'a str, Origin) {
    match (flag, file) {
        (Some(v), _) => (v, Origin::Flag(flag_name)),
        (None, Some(s)) => (s.get_ref().as_str(), loc.origin(s)),
        (None, None) => (default, Origin::Default),
    }
}

pub(super) fn duration(value: &str, origin: &Origin, key: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        invalid(
            origin.clone(),
            key,
            format!("is not a duration (\"{value}\": {e}); write e.g. \"10s\", \"1m\", \"500ms\""),
        )
    })
}

/// A duration above zero.
pub(super) fn positive(value: &str, origin: &Origin, key: &str) -> Result<Duration, ConfigError> {
    let d = duration(value, origin, key)?;
    if d.is_zero() {
        return Err(invalid(origin.clone(), key, "must be greater than 0"));
    }
    Ok(d)
}

/// A duration above zero from the file, or `default`.
pub(super) fn file_duration(
    file: Option<&Spanned<String>>,
    loc: &Locator<'_>,
    key: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match file {
        Some(s) => positive(s.get_ref(), &loc.origin(s), key),
        None => Ok(default),
    }
}

/// A count above zero from the file, or `default`.
pub(super) fn file_count<T: Copy + Default + PartialEq>(
    file: Option<&Spanned<T>>,
    loc: &Locator<'_>,
    key: &str,
    default: T,
) -> Result<T, ConfigError> {
    match file {
        Some(n) if *n.get_ref() == T::default() => {
            Err(invalid(loc.origin(n), key, "must be greater than 0"))
        }
        Some(n) => Ok(*n.get_ref()),
        None => Ok(default),
    }
}

/// A size from the file, at least `min` bytes.
pub(super) fn byte_size(
    size: &Spanned<ByteSize>,
    loc: &Locator<'_>,
    key: &str,
    min: u64,
) -> Result<u64, ConfigError> {
    let origin = loc.origin(size);
    let bytes = match size.get_ref() {
        ByteSize::Bytes(n) => Some(*n),
        ByteSize::Text(text) => parse_bytes(text),
    }
    .ok_or_else(|| {
        invalid(
            origin.clone(),
            key,
            "is not a size; write e.g. 268435456 or \"256MiB\"",
        )
    })?;
    if bytes < min {
        return Err(invalid(
            origin,
            key,
            format!("must be at least {min} bytes"),
        ));
    }
    Ok(bytes)
}

/// `"256MiB"`, `"1 GiB"`, `"512KiB"`, `"100MB"`, `"4096"`.
fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// Relabeling rules of the file, each checked; an error names the rule by
/// `key[index]` and its line.
pub(super) fn relabel_rules(
    rules: &[Spanned<RuleText>],
    loc: &Locator<'_>,
    key: &str,
) -> Result<Rules, ConfigError> {
    rules
        .iter()
        .enumerate()
        .map(|(i, spanned)| {
            Rule::new(spanned.get_ref())
                .map_err(|m| invalid(loc.origin(spanned), &format!("{key}[{i}]"), m))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Rules::new)
}

/// Labels from a table of the file (`external_labels`, a target's
/// `labels`, the Pushgateway's `grouping`), each name checked; `key` names
/// the table in errors.
pub(super) fn labels(
    table: &BTreeMap<Spanned<String>, String>,
    loc: &Locator<'_>,
    key: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    table
        .iter()
        .map(|(name, value)| {
            check_label_name(name.get_ref())
                .map_err(|m| invalid(loc.origin(name), &format!("{key}.{}", name.get_ref()), m))?;
            Ok((name.get_ref().clone(), value.clone()))
        })
        .collect()
}

fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !valid_start || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)".to_owned());
    }
    if name.starts_with("__") {
        return Err("must not start with __ (reserved by Prometheus)".to_owned());
    }
    if name == "job" || name == "instance" {
        return Err("is set by redpush itself; use `job` for the job name".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_and_without_units() {
        assert_eq!(parse_bytes("256MiB"), Some(256 << 20));
        assert_eq!(parse_bytes("1 GiB"), Some(1 << 30));
        assert_eq!(parse_bytes("100MB"), Some(100_000_000));
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("99999999999999GiB"), None);
    }

    #[test]
    fn label_names_follow_prometheus_and_leave_job_and_instance_alone() {
        assert!(check_label_name("region_2").is_ok());
        for bad in ["2x", "a-b", "", "__x", "job", "instance"] {
            assert!(check_label_name(bad).is_err(), "{bad}");
        }
    }
}
