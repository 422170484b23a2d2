//! Where pushes go: `[remote_write]` and `[pushgateway]`. Each is an
//! endpoint (url, timeout, basic auth, bearer token, TLS), read by one
//! reader for both, and settings of its own.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use crate::relabel::Rules;

use super::file::{
    FileBasicAuth, FileHttpTls, FileOAuth2, FilePushgateway, FileRemoteWrite, FileRemoteWrites,
    FileSigV4, Locator, file_count, file_duration, invalid, labels, relabel_rules,
};
use super::{
    ConfigError, Endpoint, MIN_INTERVAL_LIMIT, OAuth2Settings, Origin, Overrides,
    PushgatewaySettings, RemoteWriteSettings, SigV4Settings, TlsSettings,
};

/// The endpoint part of a push table as written.
struct FileEndpoint<'a> {
    url: Option<&'a Spanned<String>>,
    timeout: Option<&'a Spanned<String>>,
    basic_auth: Option<&'a FileBasicAuth>,
    bearer_token_file: Option<&'a PathBuf>,
    oauth2: Option<&'a FileOAuth2>,
    sigv4: Option<&'a FileSigV4>,
    tls: Option<&'a FileHttpTls>,
}

impl<'a> From<&'a FileRemoteWrite> for FileEndpoint<'a> {
    fn from(f: &'a FileRemoteWrite) -> Self {
        FileEndpoint {
            url: f.url.as_ref(),
            timeout: f.timeout.as_ref(),
            basic_auth: f.basic_auth.as_ref(),
            bearer_token_file: f.bearer_token_file.as_ref(),
            oauth2: f.oauth2.as_ref(),
            sigv4: f.sigv4.as_ref(),
            tls: f.tls.as_ref(),
        }
    }
}

impl<'a> From<&'a FilePushgateway> for FileEndpoint<'a> {
    fn from(f: &'a FilePushgateway) -> Self {
        FileEndpoint {
            url: Some(&f.url),
            timeout: f.timeout.as_ref(),
            basic_auth: f.basic_auth.as_ref(),
            bearer_token_file: f.bearer_token_file.as_ref(),
            oauth2: f.oauth2.as_ref(),
            sigv4: None,
            tls: f.tls.as_ref(),
        }
    }
}

/// The endpoint of table `section`: its url from `flag` (which replaces
/// the file's url only) or the file; none without either.
fn endpoint(
    section: &str,
    file: Option<FileEndpoint<'_>>,
    flag: (Option<&str>, &'static str),
    default_timeout: Duration,
    loc: &Locator<'_>,
) -> Result<Option<Endpoint>, ConfigError> {
    let url = match (flag.0, file.as_ref().and_then(|f| f.url)) {
        (Some(url), _) => http_url(url, Origin::Flag(flag.1), section, section)?,
        (None, Some(url)) => {
            let key = format!("{section}.url");
            http_url(url.get_ref(), loc.origin(url), &key, section)?
        }
        (None, None) => return Ok(None),
    };
    let file = file.as_ref();
    if let Some(f) = file {
        let ways = [
            f.basic_auth.is_some(),
            f.bearer_token_file.is_some(),
            f.oauth2.is_some(),
        ];
        if ways.iter().filter(|&&set| set).count() > 1 {
            return Err(invalid(
                Origin::Default,
                section,
                "takes one of basic_auth, bearer_token_file, oauth2 and sigv4, not several",
            ));
        }
    }
    Ok(Some(Endpoint {
        url,
        timeout: file_duration(
            file.and_then(|f| f.timeout),
            loc,
            &format!("{section}.timeout"),
            default_timeout,
        )?,
        basic_auth: file
            .and_then(|f| f.basic_auth)
            .map(|b| (b.username.clone(), b.password_file.clone())),
        bearer_token_file: file.and_then(|f| f.bearer_token_file.cloned()),
        oauth2: file
            .and_then(|f| f.oauth2)
            .map(|o| oauth2(o, section, loc))
            .transpose()?,
        sigv4: file
            .and_then(|f| f.sigv4)
            .map(|v| sigv4(v, section))
            .transpose()?,
        tls: file
            .and_then(|f| f.tls)
            .map(|t| tls(t, &format!("{section}.tls")))
            .transpose()?,
    }))
}

/// The `oauth2` table of `section`: its token url checked like an
/// endpoint's.
fn oauth2(
    file: &FileOAuth2,
    section: &str,
    loc: &Locator<'_>,
) -> Result<OAuth2Settings, ConfigError> {
    let key = format!("{section}.oauth2.token_url");
    let token_url = http_url(
        file.token_url.get_ref(),
        loc.origin(&file.token_url),
        &key,
        section,
    )?;
    Ok(OAuth2Settings {
        client_id: file.client_id.clone(),
        client_secret_file: file.client_secret_file.clone(),
        token_url,
        scopes: file.scopes.clone(),
        endpoint_params: file
            .endpoint_params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

/// The `sigv4` table of `section`: an access key goes with its secret's
/// file.
fn sigv4(file: &FileSigV4, section: &str) -> Result<SigV4Settings, ConfigError> {
    if !cfg!(feature = "sigv4") {
        return Err(invalid(
            Origin::Default,
            &format!("{section}.sigv4"),
            "needs a build with SigV4 (cargo build --release --features sigv4); this one has none",
        ));
    }
    if file.access_key.is_some() != file.secret_key_file.is_some() {
        return Err(invalid(
            Origin::Default,
            &format!("{section}.sigv4.access_key"),
            "and secret_key_file go together (without both, AWS' credential chain is used)",
        ));
    }
    if file.access_key.is_some() && file.region.is_none() {
        return Err(invalid(
            Origin::Default,
            &format!("{section}.sigv4.region"),
            "is needed with access_key",
        ));
    }
    Ok(SigV4Settings {
        region: file.region.clone(),
        access_key: file.access_key.clone(),
        secret_key_file: file.secret_key_file.clone(),
        profile: file.profile.clone(),
        role_arn: file.role_arn.clone(),
    })
}

/// An http:// or https:// URL without a password in it.
fn http_url(value: &str, origin: Origin, key: &str, section: &str) -> Result<String, ConfigError> {
    match url::Url::parse(value) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
            if u.password().is_some() {
                return Err(invalid(
                    origin,
                    key,
                    format!(
                        "must not carry a password; use {section}.basic_auth with password_file"
                    ),
                ));
            }
            Ok(value.to_owned())
        }
        Ok(u) => Err(invalid(
            origin,
            key,
            format!("must be an http:// or https:// URL, not {}://", u.scheme()),
        )),
        Err(e) => Err(invalid(origin, key, format!("is not a URL ({e})"))),
    }
}

/// TLS towards a push endpoint.
fn tls(file: &FileHttpTls, key: &str) -> Result<TlsSettings, ConfigError> {
    if file.cert_file.is_some() != file.key_file.is_some() {
        return Err(invalid(
            Origin::Default,
            &format!("{key}.cert_file"),
            "and key_file go together (mutual TLS needs both)",
        ));
    }
    Ok(TlsSettings {
        ca_file: file.ca_file.clone(),
        cert_file: file.cert_file.clone(),
        key_file: file.key_file.clone(),
        server_name: None,
        insecure_skip_verify: file.insecure_skip_verify,
    })
}

/// `[remote_write] max_shards` unless set.
const DEFAULT_MAX_SHARDS: usize = 10;

/// The remote-write endpoints: the file's tables, in order, or the one
/// `--remote-write` gives. The flag replaces the url of the file's one
/// endpoint (its other settings stay); with several it is refused, since
/// which one it means cannot be told.
pub(super) fn remote_writes(
    file: &FileRemoteWrites,
    overrides: &Overrides,
    loc: &Locator<'_>,
) -> Result<Vec<RemoteWriteSettings>, ConfigError> {
    let flag = overrides.remote_write.as_deref();
    if flag.is_some() && file.tables.len() > 1 {
        return Err(invalid(
            Origin::Flag("--remote-write"),
            "remote_write",
            format!(
                "replaces the url of one endpoint, and the file has {} [[remote_write]] tables; \
                 drop the flag or set the urls in the file",
                file.tables.len()
            ),
        ));
    }
    let mut endpoints: Vec<RemoteWriteSettings> = Vec::new();
    if file.tables.is_empty() {
        endpoints.extend(remote_write(None, "remote_write", flag, loc)?);
    }
    for (index, table) in file.tables.iter().enumerate() {
        let key = file.key(index);
        let Some(rw) = remote_write(Some(table), &key, flag, loc)? else {
            if file.array {
                return Err(invalid(
                    Origin::Default,
                    &format!("{key}.url"),
                    "is missing",
                ));
            }
            continue;
        };
        if let Some(same) = endpoints.iter().find(|e| e.name == rw.name) {
            let origin = table
                .name
                .as_ref()
                .map_or(Origin::Default, |n| loc.origin(n));
            return Err(invalid(
                origin,
                &format!("{key}.name"),
                format!(
                    "{:?} is also {}'s name; each endpoint needs a name of its own \
                     (set `name` where two share a host and port)",
                    rw.name, same.key
                ),
            ));
        }
        endpoints.push(rw);
    }
    Ok(endpoints)
}

/// Most characters of an endpoint's name.
const MAX_NAME_LEN: usize = 64;

/// Whether `name` may name an endpoint: it becomes a label value and part
/// of a file name, so letters, digits and `_ . : - [ ]` only.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-[]".contains(&b))
}

/// An endpoint's default name: its url's `host:port` (the scheme's port
/// when none is written), in the characters a name allows.
fn default_name(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return "remote_write".to_owned();
    };
    let host = parsed.host_str().unwrap_or("remote_write");
    let mut name = match parsed.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    name = name
        .chars()
        .map(|c| {
            if c.is_ascii() && valid_name(c.encode_utf8(&mut [0; 4])) {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(MAX_NAME_LEN);
    name
}

/// The endpoint's `name`, checked, or its default.
fn endpoint_name(
    file: Option<&FileRemoteWrite>,
    url: &str,
    section: &str,
    loc: &Locator<'_>,
) -> Result<String, ConfigError> {
    let Some(name) = file.and_then(|f| f.name.as_ref()) else {
        return Ok(default_name(url));
    };
    if !valid_name(name.get_ref()) {
        return Err(invalid(
            loc.origin(name),
            &format!("{section}.name"),
            format!(
                "{:?} is not a name: 1 to {MAX_NAME_LEN} letters, digits and `_ . : - [ ]` \
                 (it becomes a label value and names a file)",
                name.get_ref()
            ),
        ));
    }
    Ok(name.get_ref().clone())
}

/// One remote-write table (`section` is how messages name it), when a url
/// is set (there or by `--remote-write`).
fn remote_write(
    file: Option<&FileRemoteWrite>,
    section: &str,
    flag: Option<&str>,
    loc: &Locator<'_>,
) -> Result<Option<RemoteWriteSettings>, ConfigError> {
    let Some(endpoint) = endpoint(
        section,
        file.map(FileEndpoint::from),
        (flag, "--remote-write"),
        Duration::from_secs(30),
        loc,
    )?
    else {
        return Ok(None);
    };
    let d = |s: Option<&Spanned<String>>, key: &str, default: Duration| {
        file_duration(s, loc, &format!("{section}.{key}"), default)
    };
    let count = |s: Option<&Spanned<usize>>, key: &str, default: usize| {
        file_count(s, loc, &format!("{section}.{key}"), default)
    };
    let settings = RemoteWriteSettings {
        name: endpoint_name(file, &endpoint.url, section, loc)?,
        key: section.to_owned(),
        flush_deadline: d(
            file.and_then(|f| f.flush_deadline.as_ref()),
            "flush_deadline",
            Duration::from_secs(5),
        )?,
        min_backoff: d(
            file.and_then(|f| f.min_backoff.as_ref()),
            "min_backoff",
            Duration::from_millis(30),
        )?,
        max_backoff: d(
            file.and_then(|f| f.max_backoff.as_ref()),
            "max_backoff",
            Duration::from_secs(5),
        )?,
        max_samples_per_send: count(
            file.and_then(|f| f.max_samples_per_send.as_ref()),
            "max_samples_per_send",
            5000,
        )?,
        max_shards: count(
            file.and_then(|f| f.max_shards.as_ref()),
            "max_shards",
            DEFAULT_MAX_SHARDS,
        )?,
        max_samples_per_second: file
            .and_then(|f| f.max_samples_per_second.as_ref())
            .map(|n| {
                file_count(
                    Some(n),
                    loc,
                    &format!("{section}.max_samples_per_second"),
                    1,
                )
            })
            .transpose()?,
        headers: file
            .map(|f| headers(f, section, loc))
            .transpose()?
            .unwrap_or_default(),
        metadata_interval: match file.and_then(|f| f.send_metadata) {
            Some(false) => None,
            _ => Some(d(
                file.and_then(|f| f.metadata_interval.as_ref()),
                "metadata_interval",
                Duration::from_secs(60),
            )?),
        },
        write_relabel: match file {
            Some(f) => relabel_rules(
                &f.write_relabel_configs,
                loc,
                &format!("{section}.write_relabel_configs"),
            )?,
            None => Rules::default(),
        },
        endpoint,
    };
    if settings.min_backoff > settings.max_backoff {
        return Err(invalid(
            Origin::Default,
            &format!("{section}.min_backoff"),
            format!("must not be above {section}.max_backoff"),
        ));
    }
    Ok(Some(settings))
}

/// `[pushgateway]`, when a url is set (there or by `--pushgateway`); `job`
/// and `interval` default to the top-level ones.
pub(super) fn pushgateway(
    file: Option<&FilePushgateway>,
    overrides: &Overrides,
    loc: &Locator<'_>,
    job: &str,
    interval: Duration,
) -> Result<Option<PushgatewaySettings>, ConfigError> {
    let flag = (overrides.pushgateway.as_deref(), "--pushgateway");
    let Some(endpoint) = endpoint(
        "pushgateway",
        file.map(FileEndpoint::from),
        flag,
        Duration::from_secs(10),
        loc,
    )?
    else {
        return Ok(None);
    };
    let job = match file.and_then(|p| p.job.as_ref()) {
        Some(j) if j.get_ref().is_empty() => {
            return Err(invalid(
                loc.origin(j),
                "pushgateway.job",
                "must not be empty",
            ));
        }
        Some(j) => j.get_ref().clone(),
        None => job.to_owned(),
    };
    let spanned_interval = file.and_then(|p| p.interval.as_ref());
    let interval = file_duration(spanned_interval, loc, "pushgateway.interval", interval)?;
    if interval < MIN_INTERVAL_LIMIT {
        return Err(invalid(
            spanned_interval.map_or(Origin::Default, |s| loc.origin(s)),
            "pushgateway.interval",
            format!(
                "is {}, below the lower bound of {}",
                humantime::format_duration(interval),
                humantime::format_duration(MIN_INTERVAL_LIMIT)
            ),
        ));
    }
    Ok(Some(PushgatewaySettings {
        endpoint,
        job,
        interval,
        grouping: match file {
            Some(p) => labels(&p.grouping, loc, "pushgateway.grouping")?,
            None => Vec::new(),
        },
        delete_on_shutdown: file.is_some_and(|p| p.delete_on_shutdown),
    }))
}

/// `[remote_write.headers]`: names and values HTTP allows (a bad one would
/// stop the sender at start). A value is never quoted: it may be a token.
fn headers(
    file: &FileRemoteWrite,
    section: &str,
    loc: &Locator<'_>,
) -> Result<Vec<(String, String)>, ConfigError> {
    file.headers
        .iter()
        .map(|(name, value)| {
            let origin = loc.origin(value);
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(
                    origin,
                    &format!("{section}.headers"),
                    format!("has a header name {name:?} that HTTP does not allow"),
                ));
            }
            if http::HeaderValue::from_str(value.get_ref()).is_err() {
                return Err(invalid(
                    origin,
                    &format!("{section}.headers.{name}"),
                    "has a value HTTP does not allow (a line break or another control character); \
                     the value is not shown",
                ));
            }
            Ok((name.clone(), value.get_ref().clone()))
        })
        .collect()
}
