//! The agent-wide settings: its endpoint, state, job, the sampling
//! intervals, `[metrics]`, `[queue]` and `[http]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::file::{
    FileConfig, FileHttp, FileLog, FileMetrics, FileQueue, Locator, byte_size, duration,
    file_count, file_duration, invalid, pick, positive,
};
use super::{
    ConfigError, DEFAULT_LISTEN, DEFAULT_MAX_SERIES_PER_TARGET, Fsync, HttpSettings, Intervals,
    LatencyHistograms, LogFormat, LogLevel, LogSettings, MAX_INTERVAL_LIMIT, MIN_INTERVAL_LIMIT,
    MetricsSettings, Origin, Overrides, QueueSettings,
};

pub(super) fn listen(
    file: &FileConfig,
    overrides: &Overrides,
    loc: &Locator<'_>,
) -> Result<SocketAddr, ConfigError> {
    let (listen, origin) = pick(
        overrides.listen.as_deref(),
        "--listen",
        file.listen.as_ref(),
        loc,
        DEFAULT_LISTEN,
    );
    listen.parse().map_err(|_| {
        invalid(
            origin,
            "listen",
            format!("is not an address:port (\"{listen}\"), e.g. \"127.0.0.1:9121\""),
        )
    })
}

pub(super) fn state_dir(file: &FileConfig, overrides: &Overrides) -> PathBuf {
    overrides
        .state_dir
        .clone()
        .or_else(|| file.state_dir.clone())
        .unwrap_or_else(|| PathBuf::from("/var/lib/redpush"))
}

pub(super) fn job(file: &FileConfig, loc: &Locator<'_>) -> Result<String, ConfigError> {
    match &file.job {
        Some(job) if job.get_ref().is_empty() => {
            Err(invalid(loc.origin(job), "job", "must not be empty"))
        }
        Some(job) => Ok(job.get_ref().clone()),
        None => Ok("redis".to_owned()),
    }
}

/// The global intervals, flags over the file over the defaults.
pub(super) fn intervals(
    file: &FileConfig,
    overrides: &Overrides,
    loc: &Locator<'_>,
) -> Result<Intervals, ConfigError> {
    let read = |flag: Option<&str>,
                flag_name: &'static str,
                spanned: Option<&Spanned<String>>,
                key: &str,
                default: &str| {
        let (value, origin) = pick(flag, flag_name, spanned, loc, default);
        Ok::<_, ConfigError>((positive(value, &origin, key)?, origin))
    };
    check_intervals(
        read(
            overrides.interval.as_deref(),
            "--interval",
            file.interval.as_ref(),
            "interval",
            "10s",
        )?,
        read(
            overrides.min_interval.as_deref(),
            "--min-interval",
            file.min_interval.as_ref(),
            "min_interval",
            "1s",
        )?,
        read(
            overrides.max_interval.as_deref(),
            "--max-interval",
            file.max_interval.as_ref(),
            "max_interval",
            "60s",
        )?,
        "",
    )
}

/// min ≤ interval ≤ max ≤ the staleness limit; `prefix` names the table.
pub(super) fn check_intervals(
    (interval, interval_origin): (Duration, Origin),
    (min, min_origin): (Duration, Origin),
    (max, max_origin): (Duration, Origin),
    prefix: &str,
) -> Result<Intervals, ConfigError> {
    let show = |d: Duration| humantime::format_duration(d).to_string();
    for (value, origin, name) in [
        (interval, &interval_origin, "interval"),
        (min, &min_origin, "min_interval"),
    ] {
        if value < MIN_INTERVAL_LIMIT {
            return Err(invalid(
                origin.clone(),
                &format!("{prefix}{name}"),
                format!(
                    "is {}, below the lower bound of {}: each sample is a round trip to Redis",
                    show(value),
                    show(MIN_INTERVAL_LIMIT)
                ),
            ));
        }
    }
    if max > MAX_INTERVAL_LIMIT {
        return Err(invalid(
            max_origin,
            &format!("{prefix}max_interval"),
            format!(
                "is {}, above the limit of {}: Prometheus marks a series stale after 5 minutes without a sample",
                show(max),
                show(MAX_INTERVAL_LIMIT)
            ),
        ));
    }
    if min > max {
        return Err(invalid(
            min_origin,
            &format!("{prefix}min_interval"),
            format!("is {}, above max_interval {}", show(min), show(max)),
        ));
    }
    if interval < min || interval > max {
        return Err(invalid(
            interval_origin,
            &format!("{prefix}interval"),
            format!(
                "is {}, outside min_interval {} .. max_interval {}",
                show(interval),
                show(min),
                show(max)
            ),
        ));
    }
    Ok(Intervals { interval, min, max })
}

pub(super) fn metrics(
    file: &FileMetrics,
    loc: &Locator<'_>,
) -> Result<MetricsSettings, ConfigError> {
    Ok(MetricsSettings {
        unmapped_info_fields: file.unmapped_info_fields.unwrap_or(true),
        config_refresh: file_duration(
            file.config_refresh.as_ref(),
            loc,
            "metrics.config_refresh",
            Duration::from_secs(60),
        )?,
        detail_interval: detail_interval(file.detail_interval.as_ref(), loc)?,
        max_series_per_target: file_count(
            file.max_series_per_target.as_ref(),
            loc,
            "metrics.max_series_per_target",
            DEFAULT_MAX_SERIES_PER_TARGET,
        )?,
        latency_histograms: latency_histograms(file.latency_histograms.as_ref(), loc)?,
    })
}

/// `[metrics] latency_histograms`: one of `LatencyHistograms::NAMES`.
fn latency_histograms(
    file: Option<&Spanned<String>>,
    loc: &Locator<'_>,
) -> Result<LatencyHistograms, ConfigError> {
    let Some(s) = file else {
        return Ok(LatencyHistograms::default());
    };
    LatencyHistograms::NAMES
        .iter()
        .find(|(name, _)| name == s.get_ref())
        .map(|&(_, mode)| mode)
        .ok_or_else(|| {
            invalid(
                loc.origin(s),
                "metrics.latency_histograms",
                format!(
                    "is \"{}\"; write \"classic\", \"native\" or \"both\"",
                    crate::untrusted::one_line(s.get_ref())
                ),
            )
        })
}

/// `[metrics] detail_interval`: zero is allowed (every sample complete),
/// above the staleness window it is not (the detail series would go stale
/// between complete readings).
fn detail_interval(
    file: Option<&Spanned<String>>,
    loc: &Locator<'_>,
) -> Result<Duration, ConfigError> {
    const KEY: &str = "metrics.detail_interval";
    let Some(s) = file else {
        return Ok(Duration::from_secs(10));
    };
    let origin = loc.origin(s);
    let d = duration(s.get_ref(), &origin, KEY)?;
    if d > MAX_INTERVAL_LIMIT {
        return Err(invalid(
            origin,
            KEY,
            "may not exceed 4m50s: Prometheus ends a series after 5 minutes without a sample",
        ));
    }
    Ok(d)
}

pub(super) fn queue(file: &FileQueue, loc: &Locator<'_>) -> Result<QueueSettings, ConfigError> {
    let max_disk_bytes = match &file.max_disk_bytes {
        None => 256 * 1024 * 1024,
        Some(size) => {
            let bytes = byte_size(size, loc, "queue.max_disk_bytes", 0)?;
            if bytes < 1024 * 1024 {
                return Err(invalid(
                    loc.origin(size),
                    "queue.max_disk_bytes",
                    "must be at least 1MiB",
                ));
            }
            bytes
        }
    };
    let fsync = match &file.fsync {
        None => Fsync::Always,
        Some(s) => match s.get_ref().as_str() {
            "always" => Fsync::Always,
            "never" => Fsync::Never,
            other => {
                return Err(invalid(
                    loc.origin(s),
                    "queue.fsync",
                    format!("is \"{other}\"; write \"always\" or \"never\""),
                ));
            }
        },
    };
    Ok(QueueSettings {
        max_disk_bytes,
        max_age: file_duration(
            file.max_age.as_ref(),
            loc,
            "queue.max_age",
            Duration::from_secs(2 * 3600),
        )?,
        fsync,
    })
}

pub(super) fn http(file: &FileHttp, loc: &Locator<'_>) -> Result<HttpSettings, ConfigError> {
    Ok(HttpSettings {
        ready_delivery_timeout: file_duration(
            file.ready_delivery_timeout.as_ref(),
            loc,
            "http.ready_delivery_timeout",
            super::READY_DELIVERY_TIMEOUT,
        )?,
        basic_auth: file
            .basic_auth
            .as_ref()
            .map(|b| (b.username.clone(), b.password_file.clone())),
        tls: match (&file.tls_cert_file, &file.tls_key_file) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    Origin::Default,
                    "http.tls_cert_file",
                    "and http.tls_key_file go together",
                ));
            }
        },
    })
}

/// `[log]`, `--log-level` and `--log-format` (flags over the file).
pub(super) fn log(
    file: &FileLog,
    overrides: &Overrides,
    loc: &Locator<'_>,
) -> Result<LogSettings, ConfigError> {
    let level = match (overrides.log_level.as_deref(), file.level.as_ref()) {
        (None, None) => None,
        (flag, in_file) => {
            let (text, origin) = pick(flag, "--log-level", in_file, loc, "");
            let level = LogLevel::ALL
                .into_iter()
                .find(|l| l.as_str() == text.trim().to_ascii_lowercase())
                .ok_or_else(|| {
                    invalid(
                        origin,
                        "log.level",
                        format!(
                            "is \"{text}\"; write \"error\", \"warn\", \"info\", \"debug\" or \"trace\""
                        ),
                    )
                })?;
            Some(level)
        }
    };
    let (text, origin) = pick(
        overrides.log_format.as_deref(),
        "--log-format",
        file.format.as_ref(),
        loc,
        "text",
    );
    let format = match text {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(invalid(
                origin,
                "log.format",
                format!("is \"{other}\"; write \"text\" or \"json\""),
            ));
        }
    };
    Ok(LogSettings {
        level,
        level_from_flag: overrides.log_level.is_some(),
        format,
    })
}

/// Each flag that replaces a value the file sets, said as a warning: a
/// packaging flag silently winning over the file confuses whoever edits it.
pub(super) fn overridden(
    file: &FileConfig,
    overrides: &Overrides,
    loc: &Locator<'_>,
) -> Vec<String> {
    let at = |s: Option<&Spanned<String>>| s.map(|s| loc.origin(s).to_string());
    let file_path = || loc.path.display().to_string();
    let pairs: [(&str, bool, &str, Option<String>); 9] = [
        (
            "--listen",
            overrides.listen.is_some(),
            "listen",
            at(file.listen.as_ref()),
        ),
        (
            "--state-dir",
            overrides.state_dir.is_some(),
            "state_dir",
            file.state_dir.as_ref().map(|_| file_path()),
        ),
        (
            "--interval",
            overrides.interval.is_some(),
            "interval",
            at(file.interval.as_ref()),
        ),
        (
            "--min-interval",
            overrides.min_interval.is_some(),
            "min_interval",
            at(file.min_interval.as_ref()),
        ),
        (
            "--max-interval",
            overrides.max_interval.is_some(),
            "max_interval",
            at(file.max_interval.as_ref()),
        ),
        (
            "--redis",
            !overrides.redis.is_empty(),
            "[[targets]]",
            (!file.targets.is_empty()).then(file_path),
        ),
        (
            "--remote-write",
            overrides.remote_write.is_some(),
            "remote_write.url",
            at(file
                .remote_write
                .tables
                .first()
                .and_then(|r| r.url.as_ref())),
        ),
        (
            "--pushgateway",
            overrides.pushgateway.is_some(),
            "pushgateway.url",
            at(file.pushgateway.as_ref().map(|p| &p.url)),
        ),
        (
            "--log-level",
            overrides.log_level.is_some(),
            "log.level",
            at(file.log.level.as_ref()),
        ),
    ];
    pairs
        .into_iter()
        .filter_map(|(flag, given, key, in_file)| {
            let where_ = in_file.filter(|_| given)?;
            Some(format!("{flag} overrides `{key}` set in {where_}"))
        })
        .collect()
}
