//! The targets: `[[targets]]` of the file, or `--redis` flags, or the
//! default `redis://127.0.0.1:6379`, each from its URL and its settings.

use std::path::PathBuf;
use std::time::Duration;

use super::file::{
    FileConfig, FileTarget, Locator, byte_size, file_count, file_duration, invalid, labels,
    relabel_rules,
};
use super::sections::check_intervals;
use super::{
    Address, ConfigError, DEFAULT_MAX_REPLY_BYTES, DEFAULT_TARGET, Intervals, KeySettings, Origin,
    Overrides, TargetSettings, TlsSettings,
};
use crate::relabel::Rules;
use crate::secret::Secret;

/// Every target: those of the flags (which replace the file's), else of
/// the file, else the default one. Targets from flags or the default take
/// the global intervals; no instance may be listed twice.
pub(super) fn targets(
    file: &FileConfig,
    overrides: &Overrides,
    loc: &Locator<'_>,
    intervals: Intervals,
    adaptive: bool,
) -> Result<Vec<TargetSettings>, ConfigError> {
    let mut targets = Vec::new();
    if overrides.redis.is_empty() {
        for (i, t) in file.targets.iter().enumerate() {
            targets.push(file_target(
                t,
                &format!("targets[{i}]"),
                intervals,
                adaptive,
                loc,
            )?);
        }
    } else {
        for url in &overrides.redis {
            targets.push(parse_target(url, Origin::Flag("--redis"), "redis")?);
        }
    }
    if targets.is_empty() {
        targets.push(parse_target(DEFAULT_TARGET, Origin::Default, "redis")?);
    }
    if file.targets.is_empty() || !overrides.redis.is_empty() {
        for t in &mut targets {
            t.intervals = intervals;
            t.adaptive = adaptive;
        }
    }
    for (i, t) in targets.iter().enumerate() {
        // The instance tells targets apart on /metrics and in pushes.
        if targets[..i]
            .iter()
            .any(|other| other.instance == t.instance)
        {
            return Err(invalid(
                Origin::Default,
                "targets",
                format!("lists {} twice", t.instance),
            ));
        }
    }
    Ok(targets)
}

/// One `[[targets]]` entry; `key` names it in errors (`targets[2]`).
fn file_target(
    t: &FileTarget,
    key: &str,
    global: Intervals,
    adaptive: bool,
    loc: &Locator<'_>,
) -> Result<TargetSettings, ConfigError> {
    let mut target = parse_target(t.url.get_ref(), loc.origin(&t.url), &format!("{key}.url"))?;
    target.intervals = target_intervals(t, global, loc, key)?;
    target.adaptive = t.adaptive.unwrap_or(adaptive);
    target.labels = labels(&t.labels, loc, &format!("{key}.labels"))?;
    if t.username.is_some() {
        target.username = t.username.clone();
    }
    target.password_file = t.password_file.clone();
    target.password_env = t.password_env.clone();
    let duration =
        |value, name: &str, default| file_duration(value, loc, &format!("{key}.{name}"), default);
    target.connect_timeout = duration(
        t.connect_timeout.as_ref(),
        "connect_timeout",
        target.connect_timeout,
    )?;
    target.command_timeout = duration(
        t.command_timeout.as_ref(),
        "command_timeout",
        target.command_timeout,
    )?;
    if let Some(size) = &t.max_reply_bytes {
        target.max_reply_bytes = byte_size(size, loc, &format!("{key}.max_reply_bytes"), 1024)?;
    }
    target.cluster = t.cluster.unwrap_or(false);
    if target.cluster && matches!(target.address, Address::Unix(_)) {
        return Err(invalid(
            loc.origin(&t.url),
            &format!("{key}.cluster"),
            "needs a redis:// or rediss:// URL: cluster nodes are reached over TCP",
        ));
    }
    target.sentinel_discovery = t.sentinel_discovery.unwrap_or(false);
    target.discovery_interval = duration(
        t.discovery_interval.as_ref(),
        "discovery_interval",
        target.discovery_interval,
    )?;
    target.keys = key_settings(t, loc, key)?;
    target.client_list_detail = t.client_list_detail.unwrap_or(false);
    target.client_list = t.client_list.unwrap_or(false) || target.client_list_detail;
    target.script_file = t.script_file.clone();
    target.metric_relabel = relabel_rules(
        &t.metric_relabel_configs,
        loc,
        &format!("{key}.metric_relabel_configs"),
    )?;
    target_tls(t, &mut target.tls, loc, key)?;
    Ok(target)
}

/// A target's intervals: its own where it sets them, the global ones otherwise.
fn target_intervals(
    t: &FileTarget,
    global: Intervals,
    loc: &Locator<'_>,
    key: &str,
) -> Result<Intervals, ConfigError> {
    let read =
        |spanned: Option<&toml::Spanned<String>>, name: &str, default: Duration| match spanned {
            Some(s) => {
                let origin = loc.origin(s);
                let value = super::file::positive(s.get_ref(), &origin, &format!("{key}.{name}"))?;
                Ok::<_, ConfigError>((value, origin))
            }
            None => Ok((default, Origin::Default)),
        };
    check_intervals(
        read(t.interval.as_ref(), "interval", global.interval)?,
        read(t.min_interval.as_ref(), "min_interval", global.min)?,
        read(t.max_interval.as_ref(), "max_interval", global.max)?,
        &format!("{key}."),
    )
}

/// The key sampler's settings, when the target names any key.
fn key_settings(
    t: &FileTarget,
    loc: &Locator<'_>,
    key: &str,
) -> Result<Option<KeySettings>, ConfigError> {
    if t.check_keys.is_empty()
        && t.check_single_keys.is_empty()
        && t.count_keys.is_empty()
        && t.check_key_groups.is_empty()
    {
        return Ok(None);
    }
    let name = |n: &str| format!("{key}.{n}");
    Ok(Some(KeySettings {
        check_keys: t.check_keys.clone(),
        check_single_keys: t.check_single_keys.clone(),
        count_keys: t.count_keys.clone(),
        check_key_groups: t.check_key_groups.clone(),
        max_distinct_key_groups: file_count(
            t.max_distinct_key_groups.as_ref(),
            loc,
            &name("max_distinct_key_groups"),
            100,
        )?,
        interval: file_duration(
            t.key_interval.as_ref(),
            loc,
            &name("key_interval"),
            Duration::from_secs(60),
        )?,
        budget: file_duration(
            t.key_time_budget.as_ref(),
            loc,
            &name("key_time_budget"),
            Duration::from_millis(500),
        )?,
        scan_count: file_count(t.key_scan_count.as_ref(), loc, &name("key_scan_count"), 100)?,
        max_keys: file_count(t.key_max.as_ref(), loc, &name("key_max"), 1000)?,
    }))
}

/// The `tls_*` keys into the TLS of a `rediss://` target; on any other
/// they are an error.
fn target_tls(
    t: &FileTarget,
    tls: &mut Option<TlsSettings>,
    loc: &Locator<'_>,
    key: &str,
) -> Result<(), ConfigError> {
    let Some(tls) = tls else {
        let any = t.tls_ca_file.is_some()
            || t.tls_cert_file.is_some()
            || t.tls_key_file.is_some()
            || t.tls_server_name.is_some()
            || t.insecure_skip_verify.is_some();
        if any {
            return Err(invalid(
                loc.origin(&t.url),
                &format!("{key}.url"),
                "has tls_* settings but is not a rediss:// URL",
            ));
        }
        return Ok(());
    };
    tls.ca_file = t.tls_ca_file.clone();
    tls.cert_file = t.tls_cert_file.clone();
    tls.key_file = t.tls_key_file.clone();
    tls.server_name = t.tls_server_name.clone();
    tls.insecure_skip_verify = t.insecure_skip_verify.unwrap_or(false);
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        return Err(invalid(
            loc.origin(&t.url),
            &format!("{key}.tls_cert_file"),
            "and tls_key_file go together (mutual TLS needs both)",
        ));
    }
    Ok(())
}

/// Parses `redis://[user[:password]@]host[:port][/db]`, `rediss://...`,
/// `valkey://` and `valkeys://` (the same for Valkey), a bare
/// `host[:port]` (as the exporter takes it: `redis://` implied) or
/// `unix:///path/to/redis.sock[?db=N]` into a target with the default
/// settings. The password never appears in an error.
pub(crate) fn parse_target(
    value: &str,
    origin: Origin,
    key: &str,
) -> Result<TargetSettings, ConfigError> {
    if !value.contains("://") {
        // `localhost:6379` would parse as a URL of scheme `localhost`.
        return parse_target(&format!("redis://{value}"), origin, key);
    }
    let url = url::Url::parse(value)
        .map_err(|e| invalid(origin.clone(), key, format!("is not a Redis URL ({e})")))?;
    let username = Some(url.username()).filter(|u| !u.is_empty()).map(decode);
    let password = url.password().map(|p| Secret::new(decode(p)));
    let (address, instance, db) = match url.scheme() {
        "redis" | "valkey" => tcp_address(&url, &origin, key)?,
        "unix" | "redis+unix" => unix_address(&url, &origin, key)?,
        "rediss" | "valkeys" => {
            let mut redis = url.clone();
            let _ = redis.set_scheme("redis");
            let mut target = parse_target(redis.as_str(), origin, key)?;
            target.tls = Some(TlsSettings::default());
            return Ok(target);
        }
        other => {
            return Err(invalid(
                origin,
                key,
                format!(
                    "has scheme {other}://; use redis://host:port (rediss://, valkey://, \
                     valkeys://) or unix:///path/to/socket"
                ),
            ));
        }
    };
    Ok(TargetSettings {
        address,
        labels: Vec::new(),
        intervals: Intervals {
            interval: Duration::from_secs(10),
            min: Duration::from_secs(1),
            max: Duration::from_secs(60),
        },
        adaptive: true,
        instance,
        db,
        username,
        password,
        password_file: None,
        password_env: None,
        tls: None,
        max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
        cluster: false,
        sentinel_discovery: false,
        discovery_interval: Duration::from_secs(30),
        keys: None,
        client_list: false,
        client_list_detail: false,
        script_file: None,
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(5),
        metric_relabel: Rules::default(),
    })
}

/// `redis://host[:port][/db]`: the address, its `instance` (`host:port`,
/// an IPv6 host in brackets) and the database.
fn tcp_address(
    url: &url::Url,
    origin: &Origin,
    key: &str,
) -> Result<(Address, String, i64), ConfigError> {
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid(origin.clone(), key, "has no host"))?
        .to_owned();
    let port = url.port().unwrap_or(6379);
    let db = match url.path().trim_start_matches('/') {
        "" => 0,
        db => db.parse().map_err(|_| {
            invalid(
                origin.clone(),
                key,
                format!("has a database \"{db}\" that is not a number"),
            )
        })?,
    };
    // `host_str` keeps the brackets of an IPv6 address, as `host:port` needs.
    let instance = format!("{host}:{port}");
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok((Address::Tcp { host, port }, instance, db))
}

/// `unix:///path[?db=N]`: the socket, its path as `instance`, the database.
fn unix_address(
    url: &url::Url,
    origin: &Origin,
    key: &str,
) -> Result<(Address, String, i64), ConfigError> {
    if url.path().is_empty() {
        return Err(invalid(origin.clone(), key, "has no socket path"));
    }
    let path = PathBuf::from(url.path());
    let db = url
        .query_pairs()
        .find(|(k, _)| k == "db")
        .map(|(_, v)| v.parse::<i64>())
        .transpose()
        .map_err(|_| invalid(origin.clone(), key, "has a db= that is not a number"))?
        .unwrap_or(0);
    let instance = path.display().to_string();
    Ok((Address::Unix(path), instance, db))
}

/// A URL's user or password, percent-decoded.
fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(value: &str) -> TargetSettings {
        parse_target(value, Origin::Default, "redis").expect(value)
    }

    #[test]
    fn valkey_schemes_and_bare_addresses_are_redis_targets() {
        let plain = target("redis://u:pw@10.0.0.1:7000/2");
        let valkey = target("valkey://u:pw@10.0.0.1:7000/2");
        assert_eq!(valkey, plain);
        assert_eq!(target("valkeys://h:6380"), target("rediss://h:6380"));
        assert!(target("valkeys://h:6380").tls.is_some());
        assert_eq!(target("10.0.0.1:7000"), target("redis://10.0.0.1:7000"));
        assert_eq!(target("localhost").instance, "localhost:6379");
        assert_eq!(target("[::1]:6380").instance, "[::1]:6380");
        assert_eq!(target("u:pw@h:1/3"), target("redis://u:pw@h:1/3"));
        let e = parse_target("http://h:1", Origin::Default, "redis")
            .expect_err("not redis")
            .to_string();
        assert!(e.contains("valkey://"), "{e}");
    }
}
