//! What `check-config` prints: the effective settings as TOML, secrets left
//! out. Each table lists its keys once, as [`Line`]s; one writer renders
//! every kind of value the same way.

use std::fmt::{self, Write};
use std::path::Path;
use std::time::Duration;

use super::{
    Address, Endpoint, Fsync, HttpSettings, LogSettings, MetricsSettings, PushgatewaySettings,
    QueueSettings, RemoteWriteSettings, Settings, TargetSettings,
};
use crate::relabel::Rules;
use crate::secret::redact_url;

/// A setting's value as TOML writes it.
enum Value<'a> {
    Text(&'a str),
    Owned(String),
    Path(&'a Path),
    Duration(Duration),
    Bool(bool),
    Number(u64),
    List(&'a [String]),
    /// Written as it is (already TOML).
    Raw(String),
    /// An inline table.
    Table(Vec<(&'a str, Value<'a>)>),
}

/// One line of a table.
enum Line<'a> {
    /// `key = value`, with a comment after it if there is one.
    Key(&'a str, Value<'a>, Option<String>),
    /// `# text`: a setting told about, not shown (a secret, a header's value).
    Note(String),
}

/// A table: its header and lines.
struct Table<'a> {
    /// `None` for the top level; `[name]`, or `[[name]]` for an array.
    header: Option<(&'static str, bool)>,
    lines: Vec<Line<'a>>,
}

fn key<'a>(name: &'a str, value: Value<'a>) -> Line<'a> {
    Line::Key(name, value, None)
}

fn path_of<'a>(name: &'static str, path: &'a Option<impl AsRef<Path>>) -> Option<Line<'a>> {
    path.as_ref().map(|p| key(name, Value::Path(p.as_ref())))
}

impl fmt::Display for Settings {
    /// The effective settings, as `check-config` prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, table) in tables(self).into_iter().enumerate() {
            if i > 0 {
                f.write_char('\n')?;
            }
            write_table(f, &table)?;
        }
        Ok(())
    }
}

/// Every table of the settings, in the order a config file has them.
fn tables(s: &Settings) -> Vec<Table<'_>> {
    let mut out = vec![top(s)];
    if !s.external_labels.is_empty() {
        out.push(Table {
            header: Some(("external_labels", false)),
            lines: s
                .external_labels
                .iter()
                .map(|(k, v)| key(k, Value::Text(v)))
                .collect(),
        });
    }
    out.extend(s.targets.iter().map(target));
    out.extend(s.remote_write.iter().map(remote_write));
    out.extend(s.pushgateway.as_ref().map(pushgateway));
    out.push(http(&s.http));
    out.push(queue(&s.queue));
    out.push(metrics(&s.metrics));
    out.push(log(&s.log));
    out
}

fn top(s: &Settings) -> Table<'_> {
    Table {
        header: None,
        lines: vec![
            key("listen", Value::Owned(s.listen.to_string())),
            key("state_dir", Value::Path(&s.state_dir)),
            key("job", Value::Text(&s.job)),
            key("interval", Value::Duration(s.intervals.interval)),
            key("min_interval", Value::Duration(s.intervals.min)),
            key("max_interval", Value::Duration(s.intervals.max)),
        ],
    }
}

fn target(t: &TargetSettings) -> Table<'_> {
    let scheme = match (&t.address, &t.tls) {
        (Address::Tcp { .. }, None) => "redis://",
        (Address::Tcp { .. }, Some(_)) => "rediss://",
        (Address::Unix(_), _) => "unix://",
    };
    let mut lines = vec![Line::Key(
        "url",
        Value::Owned(format!("{scheme}{}", t.instance)),
        Some(format!("db {}", t.db)),
    )];
    lines.extend(
        t.username
            .as_deref()
            .map(|u| key("username", Value::Text(u))),
    );
    if t.password.is_some() {
        lines.push(Line::Note("password: set (from the URL)".to_owned()));
    }
    lines.extend(path_of("password_file", &t.password_file));
    lines.extend(
        t.password_env
            .as_deref()
            .map(|v| key("password_env", Value::Text(v))),
    );
    lines.push(key("max_reply_bytes", Value::Number(t.max_reply_bytes)));
    if let Some(tls) = &t.tls {
        let path = |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .map_or("none".to_owned(), |p| p.display().to_string())
        };
        lines.push(Line::Note(format!(
            "TLS: ca_file {}, cert_file {}, key_file {}, server_name {}, insecure_skip_verify {}",
            path(&tls.ca_file),
            path(&tls.cert_file),
            path(&tls.key_file),
            tls.server_name.as_deref().unwrap_or("the host"),
            tls.insecure_skip_verify
        )));
    }
    lines.extend([
        key("connect_timeout", Value::Duration(t.connect_timeout)),
        key("command_timeout", Value::Duration(t.command_timeout)),
        key("interval", Value::Duration(t.intervals.interval)),
        key("min_interval", Value::Duration(t.intervals.min)),
        key("max_interval", Value::Duration(t.intervals.max)),
        key("adaptive", Value::Bool(t.adaptive)),
    ]);
    if let Some(k) = &t.keys {
        lines.extend([
            key("check_keys", Value::List(&k.check_keys)),
            key("check_single_keys", Value::List(&k.check_single_keys)),
            key("count_keys", Value::List(&k.count_keys)),
            key("check_key_groups", Value::List(&k.check_key_groups)),
            key(
                "max_distinct_key_groups",
                Value::Number(k.max_distinct_key_groups as u64),
            ),
            key("key_interval", Value::Duration(k.interval)),
            key("key_time_budget", Value::Duration(k.budget)),
            key("key_scan_count", Value::Number(u64::from(k.scan_count))),
            key("key_max", Value::Number(k.max_keys as u64)),
        ]);
    }
    let flags = [
        ("client_list", t.client_list),
        ("client_list_detail", t.client_list_detail),
    ];
    lines.extend(
        flags
            .iter()
            .filter(|(_, on)| *on)
            .map(|(name, _)| key(name, Value::Bool(true))),
    );
    lines.extend(path_of("script_file", &t.script_file));
    if t.sentinel_discovery {
        lines.push(key("sentinel_discovery", Value::Bool(true)));
    }
    if t.cluster {
        lines.push(key("cluster", Value::Bool(true)));
        lines.push(key(
            "discovery_interval",
            Value::Duration(t.discovery_interval),
        ));
    }
    if !t.labels.is_empty() {
        let labels = t.labels.iter().map(|(k, v)| (k.as_str(), Value::Text(v)));
        lines.push(key("labels", Value::Table(labels.collect())));
    }
    lines.extend(rules("metric_relabel_configs", &t.metric_relabel));
    Table {
        header: Some(("targets", true)),
        lines,
    }
}

/// The endpoint's url and timeout, then what comes between, then its auth.
fn endpoint<'a>(e: &'a Endpoint, between: Vec<Line<'a>>) -> Vec<Line<'a>> {
    let mut lines = vec![
        key("url", Value::Owned(redact_url(&e.url))),
        key("timeout", Value::Duration(e.timeout)),
    ];
    lines.extend(between);
    if let Some((user, file)) = &e.basic_auth {
        lines.push(basic_auth(user, file));
    }
    lines.extend(path_of("bearer_token_file", &e.bearer_token_file));
    if let Some(o) = &e.oauth2 {
        lines.push(key(
            "oauth2",
            Value::Table(vec![
                ("client_id", Value::Text(&o.client_id)),
                ("client_secret_file", Value::Path(&o.client_secret_file)),
                ("token_url", Value::Owned(redact_url(&o.token_url))),
                ("scopes", Value::List(&o.scopes)),
            ]),
        ));
        // Parameters may carry tokens of their own: names only.
        lines.extend(
            o.endpoint_params
                .iter()
                .map(|(name, _)| Line::Note(format!("oauth2 endpoint_params {name}: set"))),
        );
    }
    if let Some(v) = &e.sigv4 {
        let text =
            |name, value: &'a Option<String>| value.as_deref().map(|v| (name, Value::Text(v)));
        let mut fields: Vec<(&str, Value<'a>)> =
            [text("region", &v.region), text("access_key", &v.access_key)]
                .into_iter()
                .flatten()
                .collect();
        if let Some(file) = &v.secret_key_file {
            fields.push(("secret_key_file", Value::Path(file)));
        }
        fields.extend(
            [text("profile", &v.profile), text("role_arn", &v.role_arn)]
                .into_iter()
                .flatten(),
        );
        lines.push(key("sigv4", Value::Table(fields)));
    }
    lines
}

/// Relabeling rules as an array of inline tables, when there are any.
fn rules(name: &'static str, rules: &Rules) -> Option<Line<'static>> {
    (!rules.is_empty()).then(|| key(name, Value::Raw(rules.to_string())))
}

fn basic_auth<'a>(user: &'a str, file: &'a Path) -> Line<'a> {
    key(
        "basic_auth",
        Value::Table(vec![
            ("username", Value::Text(user)),
            ("password_file", Value::Path(file)),
        ]),
    )
}

fn remote_write(rw: &RemoteWriteSettings) -> Table<'_> {
    let mut between = vec![
        key("flush_deadline", Value::Duration(rw.flush_deadline)),
        key("min_backoff", Value::Duration(rw.min_backoff)),
        key("max_backoff", Value::Duration(rw.max_backoff)),
        key(
            "max_samples_per_send",
            Value::Number(rw.max_samples_per_send as u64),
        ),
        key("max_shards", Value::Number(rw.max_shards as u64)),
    ];
    between.push(match rw.max_samples_per_second {
        Some(n) => key("max_samples_per_second", Value::Number(n)),
        None => Line::Note("max_samples_per_second: unlimited".to_owned()),
    });
    between.push(match rw.metadata_interval {
        Some(interval) => key("metadata_interval", Value::Duration(interval)),
        None => key("send_metadata", Value::Bool(false)),
    });
    // Header values often carry tokens: names only.
    between.extend(
        rw.headers
            .iter()
            .map(|(name, _)| Line::Note(format!("header {name}: set"))),
    );
    between.extend(rules("write_relabel_configs", &rw.write_relabel));
    let mut lines = endpoint(&rw.endpoint, between);
    lines.insert(0, key("name", Value::Text(&rw.name)));
    Table {
        header: Some(("remote_write", rw.key != "remote_write")),
        lines,
    }
}

fn pushgateway(pg: &PushgatewaySettings) -> Table<'_> {
    let mut between = vec![
        key("job", Value::Text(&pg.job)),
        key("interval", Value::Duration(pg.interval)),
        key("delete_on_shutdown", Value::Bool(pg.delete_on_shutdown)),
    ];
    between.extend(
        pg.grouping
            .iter()
            .map(|(k, v)| Line::Note(format!("grouping {k} = \"{v}\""))),
    );
    Table {
        header: Some(("pushgateway", false)),
        lines: endpoint(&pg.endpoint, between),
    }
}

fn http(h: &HttpSettings) -> Table<'_> {
    let mut lines = Vec::new();
    if let Some((user, file)) = &h.basic_auth {
        lines.push(basic_auth(user, file));
    }
    if let Some((cert, key_file)) = &h.tls {
        lines.push(key("tls_cert_file", Value::Path(cert)));
        lines.push(key("tls_key_file", Value::Path(key_file)));
    }
    lines.push(key(
        "ready_delivery_timeout",
        Value::Duration(h.ready_delivery_timeout),
    ));
    Table {
        header: Some(("http", false)),
        lines,
    }
}

fn queue(q: &QueueSettings) -> Table<'_> {
    let fsync = match q.fsync {
        Fsync::Always => "always",
        Fsync::Never => "never",
    };
    Table {
        header: Some(("queue", false)),
        lines: vec![
            key("max_disk_bytes", Value::Number(q.max_disk_bytes)),
            key("max_age", Value::Duration(q.max_age)),
            key("fsync", Value::Text(fsync)),
        ],
    }
}

fn metrics(m: &MetricsSettings) -> Table<'_> {
    Table {
        header: Some(("metrics", false)),
        lines: vec![
            key("unmapped_info_fields", Value::Bool(m.unmapped_info_fields)),
            key("config_refresh", Value::Duration(m.config_refresh)),
            key("detail_interval", Value::Duration(m.detail_interval)),
            key(
                "max_series_per_target",
                Value::Number(m.max_series_per_target as u64),
            ),
            key(
                "latency_histograms",
                Value::Text(m.latency_histograms.as_str()),
            ),
        ],
    }
}

fn log(l: &LogSettings) -> Table<'_> {
    let mut lines = Vec::new();
    match l.level {
        Some(level) => lines.push(key("level", Value::Text(level.as_str()))),
        None => lines.push(Line::Note(
            "level: RUST_LOG if set, else info (warn for once)".to_owned(),
        )),
    }
    lines.push(key("format", Value::Text(l.format.as_str())));
    Table {
        header: Some(("log", false)),
        lines,
    }
}

fn write_table(f: &mut impl Write, table: &Table<'_>) -> fmt::Result {
    match table.header {
        Some((name, true)) => writeln!(f, "[[{name}]]")?,
        Some((name, false)) => writeln!(f, "[{name}]")?,
        None => {}
    }
    for line in &table.lines {
        match line {
            Line::Key(name, value, note) => {
                write!(f, "{name} = ")?;
                write_value(f, value)?;
                if let Some(note) = note {
                    write!(f, "  # {note}")?;
                }
                f.write_char('\n')?;
            }
            Line::Note(text) => writeln!(f, "# {text}")?,
        }
    }
    Ok(())
}

fn write_value(f: &mut impl Write, value: &Value<'_>) -> fmt::Result {
    match value {
        Value::Text(text) => write!(f, "\"{text}\""),
        Value::Owned(text) => write!(f, "\"{text}\""),
        Value::Path(path) => write!(f, "\"{}\"", path.display()),
        Value::Duration(d) => write!(f, "\"{}\"", humantime::format_duration(*d)),
        Value::Bool(b) => write!(f, "{b}"),
        Value::Number(n) => write!(f, "{n}"),
        Value::List(items) => write!(f, "{items:?}"),
        Value::Raw(text) => f.write_str(text),
        Value::Table(entries) => {
            f.write_str("{ ")?;
            for (i, (name, value)) in entries.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{name} = ")?;
                write_value(f, value)?;
            }
            f.write_str(" }")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Overrides;
    use super::*;

    /// Every key a file can set, as check-config printed it before its
    /// output was made from the table descriptions above.
    const FULL: &str = r#"listen = "127.0.0.1:9999"
state_dir = "/tmp/state"
job = "cache"
interval = "5s"
min_interval = "2s"
max_interval = "30s"
adaptive = false

[external_labels]
region = "eu"
zone = "b"

[[targets]]
url = "redis://user:pw@10.0.0.1:7000/3"
username = "acl"
password_file = "/tmp/cfg/pw"
connect_timeout = "2s"
command_timeout = "3s"
interval = "10s"
min_interval = "1s"
max_interval = "60s"
adaptive = true
labels = { role = "cache", tier = "a" }
max_reply_bytes = "1MiB"
check_keys = ["user:*"]
check_single_keys = ["k1"]
count_keys = ["session:*"]
check_key_groups = ["^(user):", "^(session):"]
max_distinct_key_groups = 20
key_interval = "2m"
key_time_budget = "1s"
key_scan_count = 50
key_max = 10
client_list = true
client_list_detail = true
script_file = "/tmp/cfg/s.lua"
[[targets.metric_relabel_configs]]
source_labels = ["__name__", "cmd"]
regex = 'redis_commands_.*;(config|debug)\d?'
action = "drop"

[[targets]]
url = "rediss://[::1]:6380"
password_env = "REDIS_PW"
tls_ca_file = "/tmp/cfg/ca.pem"
tls_cert_file = "/tmp/cfg/c.pem"
tls_key_file = "/tmp/cfg/k.pem"
tls_server_name = "redis.local"
insecure_skip_verify = true
cluster = true
discovery_interval = "45s"

[[targets]]
url = "unix:///run/redis.sock?db=2"
sentinel_discovery = true

[[targets]]
url = "rediss://h:6381"

[remote_write]
url = "https://rw.example/api/v1/write?token=t"
timeout = "10s"
flush_deadline = "2s"
min_backoff = "50ms"
max_backoff = "3s"
max_samples_per_send = 1000
max_shards = 4
max_samples_per_second = 50000
metadata_interval = "30s"
headers = { "X-Scope-OrgID" = "tenant1", "X-Other" = "v" }
[remote_write.oauth2]
client_id = "rw"
client_secret_file = "/tmp/cfg/pw"
token_url = "https://auth.example/token"
scopes = ["metrics:write"]
endpoint_params = { audience = "mimir" }
[remote_write.tls]
ca_file = "/tmp/cfg/ca.pem"
cert_file = "/tmp/cfg/c.pem"
key_file = "/tmp/cfg/k.pem"
insecure_skip_verify = true
[[remote_write.write_relabel_configs]]
source_labels = ["instance"]
regex = "(.*):.*"
target_label = "host"

[pushgateway]
url = "http://pg:9091"
timeout = "4s"
job = "pgjob"
interval = "20s"
grouping = { dc = "eu", rack = "r1" }
delete_on_shutdown = true
bearer_token_file = "/tmp/cfg/token"
[pushgateway.tls]
ca_file = "/tmp/cfg/ca.pem"

[http]
tls_cert_file = "/tmp/cfg/c.pem"
tls_key_file = "/tmp/cfg/k.pem"
[http.basic_auth]
username = "scraper"
password_file = "/tmp/cfg/pw"

[queue]
max_disk_bytes = "64MiB"
max_age = "30m"
fsync = "never"

[metrics]
unmapped_info_fields = false
config_refresh = "2m"
detail_interval = "0s"
max_series_per_target = 2000
latency_histograms = "classic"

[log]
# level: RUST_LOG if set, else info (warn for once)
format = "text"
"#;

    const FULL_PRINTED: &str = r#"listen = "127.0.0.1:9999"
state_dir = "/tmp/state"
job = "cache"
interval = "5s"
min_interval = "2s"
max_interval = "30s"

[external_labels]
region = "eu"
zone = "b"

[[targets]]
url = "redis://10.0.0.1:7000"  # db 3
username = "acl"
# password: set (from the URL)
password_file = "/tmp/cfg/pw"
max_reply_bytes = 1048576
connect_timeout = "2s"
command_timeout = "3s"
interval = "10s"
min_interval = "1s"
max_interval = "1m"
adaptive = true
check_keys = ["user:*"]
check_single_keys = ["k1"]
count_keys = ["session:*"]
check_key_groups = ["^(user):", "^(session):"]
max_distinct_key_groups = 20
key_interval = "2m"
key_time_budget = "1s"
key_scan_count = 50
key_max = 10
client_list = true
client_list_detail = true
script_file = "/tmp/cfg/s.lua"
labels = { role = "cache", tier = "a" }
metric_relabel_configs = [{ action = "drop", source_labels = ["__name__", "cmd"], regex = "redis_commands_.*;(config|debug)\\d?" }]

[[targets]]
url = "rediss://[::1]:6380"  # db 0
password_env = "REDIS_PW"
max_reply_bytes = 8388608
# TLS: ca_file /tmp/cfg/ca.pem, cert_file /tmp/cfg/c.pem, key_file /tmp/cfg/k.pem, server_name redis.local, insecure_skip_verify true
connect_timeout = "5s"
command_timeout = "5s"
interval = "5s"
min_interval = "2s"
max_interval = "30s"
adaptive = false
cluster = true
discovery_interval = "45s"

[[targets]]
url = "unix:///run/redis.sock"  # db 2
max_reply_bytes = 8388608
connect_timeout = "5s"
command_timeout = "5s"
interval = "5s"
min_interval = "2s"
max_interval = "30s"
adaptive = false
sentinel_discovery = true

[[targets]]
url = "rediss://h:6381"  # db 0
max_reply_bytes = 8388608
# TLS: ca_file none, cert_file none, key_file none, server_name the host, insecure_skip_verify false
connect_timeout = "5s"
command_timeout = "5s"
interval = "5s"
min_interval = "2s"
max_interval = "30s"
adaptive = false

[remote_write]
name = "rw.example:443"
url = "https://rw.example/api/v1/write?token=<redacted>"
timeout = "10s"
flush_deadline = "2s"
min_backoff = "50ms"
max_backoff = "3s"
max_samples_per_send = 1000
max_shards = 4
max_samples_per_second = 50000
metadata_interval = "30s"
# header X-Other: set
# header X-Scope-OrgID: set
write_relabel_configs = [{ action = "replace", source_labels = ["instance"], regex = "(.*):.*", target_label = "host" }]
oauth2 = { client_id = "rw", client_secret_file = "/tmp/cfg/pw", token_url = "https://auth.example/token", scopes = ["metrics:write"] }
# oauth2 endpoint_params audience: set

[pushgateway]
url = "http://pg:9091/"
timeout = "4s"
job = "pgjob"
interval = "20s"
delete_on_shutdown = true
# grouping dc = "eu"
# grouping rack = "r1"
bearer_token_file = "/tmp/cfg/token"

[http]
basic_auth = { username = "scraper", password_file = "/tmp/cfg/pw" }
tls_cert_file = "/tmp/cfg/c.pem"
tls_key_file = "/tmp/cfg/k.pem"
ready_delivery_timeout = "10m"

[queue]
max_disk_bytes = 67108864
max_age = "30m"
fsync = "never"

[metrics]
unmapped_info_fields = false
config_refresh = "2m"
detail_interval = "0s"
max_series_per_target = 2000
latency_histograms = "classic"

[log]
# level: RUST_LOG if set, else info (warn for once)
format = "text"
"#;

    const DEFAULT_PRINTED: &str = r#"listen = "127.0.0.1:9121"
state_dir = "/var/lib/redpush"
job = "redis"
interval = "10s"
min_interval = "1s"
max_interval = "1m"

[[targets]]
url = "redis://127.0.0.1:6379"  # db 0
max_reply_bytes = 8388608
connect_timeout = "5s"
command_timeout = "5s"
interval = "10s"
min_interval = "1s"
max_interval = "1m"
adaptive = true

[http]
ready_delivery_timeout = "10m"

[queue]
max_disk_bytes = 268435456
max_age = "2h"
fsync = "always"

[metrics]
unmapped_info_fields = true
config_refresh = "1m"
detail_interval = "10s"
max_series_per_target = 10000
latency_histograms = "classic"

[log]
# level: RUST_LOG if set, else info (warn for once)
format = "text"
"#;

    fn printed(text: &str) -> String {
        Settings::from_toml(Path::new("full.toml"), text, &Overrides::default())
            .expect("valid")
            .to_string()
    }

    #[test]
    fn every_setting_is_printed_as_before() {
        assert_eq!(printed(FULL), FULL_PRINTED);
        assert_eq!(printed(""), DEFAULT_PRINTED);
    }

    /// Each way of authenticating an endpoint is printed (FULL can hold
    /// only one per endpoint).
    #[test]
    fn basic_auth_of_an_endpoint_is_printed() {
        let rw = printed(
            "[remote_write]\nurl = \"http://rw/\"\n[remote_write.basic_auth]\n\
             username = \"rw\"\npassword_file = \"/tmp/cfg/pw\"\n",
        );
        assert!(
            rw.contains("basic_auth = { username = \"rw\", password_file = \"/tmp/cfg/pw\" }\n"),
            "{rw}"
        );
        let pg = printed(
            "[pushgateway]\nurl = \"http://pg:9091\"\n[pushgateway.basic_auth]\n\
             username = \"pg\"\npassword_file = \"/tmp/cfg/pw\"\n",
        );
        assert!(
            pg.contains("basic_auth = { username = \"pg\", password_file = \"/tmp/cfg/pw\" }\n"),
            "{pg}"
        );
    }

    #[test]
    fn printed_rules_read_back_as_the_same_rules() {
        let full = Settings::from_toml(Path::new("full.toml"), FULL, &Overrides::default())
            .expect("valid");
        let line = |name: &str| {
            let printed = full.to_string();
            printed
                .lines()
                .find(|l| l.starts_with(name))
                .expect("printed")
                .to_owned()
        };
        let target = format!(
            "[[targets]]\nurl = \"redis://h:1\"\n{}\n",
            line("metric_relabel_configs")
        );
        let again = Settings::from_toml(Path::new("again.toml"), &target, &Overrides::default())
            .expect("valid");
        assert_eq!(
            again.targets[0].metric_relabel,
            full.targets[0].metric_relabel
        );
        let rw = format!(
            "[remote_write]\nurl = \"http://h/\"\n{}\n",
            line("write_relabel_configs")
        );
        let again = Settings::from_toml(Path::new("again.toml"), &rw, &Overrides::default())
            .expect("valid");
        assert_eq!(
            again.remote_write[0].write_relabel,
            full.remote_write[0].write_relabel
        );
    }

    #[test]
    fn secrets_are_never_printed() {
        let text = FULL.replace("redis://user:pw@", "redis://user:s3cr3t-url@");
        let shown = printed(&text);
        assert!(!shown.contains("s3cr3t-url"), "{shown}");
        assert!(
            !shown.contains("tenant1"),
            "header values are not shown: {shown}"
        );
    }
}
