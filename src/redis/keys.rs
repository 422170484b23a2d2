//! The key sampler: `check_keys` patterns found with SCAN (COUNT bounded,
//! a time budget per run, never KEYS), `check_single_keys` read directly,
//! `count_keys` patterns counted. Per-key commands go out pipelined, one
//! round trip for all keys; a missing key is absent, not 0. It runs on its
//! own, longer interval (`key_interval`), not on every sample.

use std::time::Instant;

use redis::Value;

use crate::config::KeySettings;
use crate::reading::{
    GroupReading, KeyReading, KeyValue, KeysReading, MAX_KEY_VALUE_BYTES, StreamReading,
};
use crate::redis::key_groups::{KeyGroupsError, read_key_groups};
use crate::redis::replies::{bytes_text, int, pairs_of};
use crate::redis::sampler::{RoundTrip, SampleError, Sampler};
use crate::untrusted::OneLine;

/// What one SCAN pass found: the keys, and whether it saw the whole keyspace.
struct Scan {
    keys: Vec<String>,
    complete: bool,
}

async fn scan(
    sampler: &mut Sampler,
    pattern: &str,
    settings: &KeySettings,
    deadline: Instant,
) -> Result<Scan, SampleError> {
    let mut keys = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let mut pipe = redis::pipe();
        pipe.cmd("SCAN")
            .arg(&cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(settings.scan_count);
        let reply = sampler
            .query(&pipe, RoundTrip::Scan)
            .await?
            .into_iter()
            .next();
        let Some(Value::Array(parts)) = reply else {
            return Err(SampleError::Unexpected {
                command: "SCAN",
                what: "something else than [cursor, keys]",
            });
        };
        cursor = parts
            .first()
            .and_then(bytes_text)
            .unwrap_or_else(|| "0".to_owned());
        if let Some(Value::Array(found)) = parts.get(1) {
            keys.extend(found.iter().filter_map(bytes_text));
        }
        if cursor == "0" {
            return Ok(Scan {
                keys,
                complete: true,
            });
        }
        if Instant::now() >= deadline || keys.len() >= settings.max_keys {
            return Ok(Scan {
                keys,
                complete: false,
            });
        }
    }
}

/// One run of the key sampler on `db` (`db0`, ...).
pub(crate) async fn read_keys(
    sampler: &mut Sampler,
    settings: &KeySettings,
    db: &str,
) -> Result<KeysReading, SampleError> {
    let deadline = Instant::now() + settings.budget;
    let (names, counts) = find(sampler, settings, deadline).await?;
    let typed = types(sampler, &names).await?;
    let keys = sizes(sampler, typed).await?;
    let groups = match settings.check_key_groups.is_empty() {
        true => None,
        false => match read_key_groups(sampler, settings, deadline).await {
            Ok(groups) => Some(groups),
            Err(KeyGroupsError::Sample(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(
                    instance = sampler.target().instance,
                    "key groups left out: {}",
                    OneLine(e)
                );
                None
            }
        },
    };
    Ok(KeysReading {
        db: db.to_owned(),
        keys,
        counts,
        groups,
    })
}

/// The keys to read (`check_single_keys`, then what the `check_keys`
/// patterns find, at most `key_max`) and the `count_keys` counts, within
/// the run's time budget.
async fn find(
    sampler: &mut Sampler,
    settings: &KeySettings,
    deadline: Instant,
) -> Result<(Vec<String>, Vec<(String, f64)>), SampleError> {
    let mut names: Vec<String> = settings.check_single_keys.clone();
    let mut incomplete = Vec::new();
    for pattern in &settings.check_keys {
        let found = scan(sampler, pattern, settings, deadline).await?;
        if !found.complete {
            incomplete.push(pattern.clone());
        }
        for key in found.keys {
            if !names.contains(&key) && names.len() < settings.max_keys {
                names.push(key);
            }
        }
    }
    let mut counts = Vec::new();
    for pattern in &settings.count_keys {
        let found = scan(sampler, pattern, settings, deadline).await?;
        if found.complete {
            counts.push((pattern.clone(), found.keys.len() as f64));
        } else {
            // A partial count would look like keys disappearing: leave it out.
            incomplete.push(pattern.clone());
        }
    }
    if !incomplete.is_empty() {
        tracing::warn!(
            instance = sampler.target().instance,
            patterns = ?incomplete,
            "key scan stopped at its time budget or key limit; raise key_time_budget or narrow the patterns"
        );
    }
    Ok((names, counts))
}

/// What `TYPE` answers, for the types whose size the exporter reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyType {
    String,
    List,
    Set,
    Zset,
    Hash,
    Stream,
    /// A module's type: no size command the exporter knows.
    Other,
}

impl KeyType {
    /// The type `TYPE` named; `None` for a key that does not exist.
    fn of(reply: &str) -> Option<KeyType> {
        Some(match reply {
            "" | "none" => return None,
            "string" => KeyType::String,
            "list" => KeyType::List,
            "set" => KeyType::Set,
            "zset" => KeyType::Zset,
            "hash" => KeyType::Hash,
            "stream" => KeyType::Stream,
            _ => KeyType::Other,
        })
    }

    fn size_command(self) -> &'static str {
        match self {
            KeyType::String => "STRLEN",
            KeyType::List => "LLEN",
            KeyType::Set => "SCARD",
            KeyType::Zset => "ZCARD",
            KeyType::Hash => "HLEN",
            KeyType::Stream => "XLEN",
            KeyType::Other => "EXISTS",
        }
    }
}

/// Round trip 1: type, memory and expiry of every key; absent keys stay
/// absent.
async fn types(
    sampler: &mut Sampler,
    names: &[String],
) -> Result<Vec<(KeyReading, KeyType)>, SampleError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for key in names {
        pipe.cmd("TYPE").arg(key);
        pipe.cmd("MEMORY").arg("USAGE").arg(key);
        pipe.cmd("PTTL").arg(key);
    }
    let replies = sampler.query(&pipe, RoundTrip::Keys).await?;
    Ok(names
        .iter()
        .zip(replies.chunks(3))
        .filter_map(|(key, r)| {
            let kind = KeyType::of(&r.first().and_then(bytes_text).unwrap_or_default())?;
            let ttl_ms = int(r.get(2)).filter(|t| *t >= 0.0);
            let reading = KeyReading {
                key: key.clone(),
                memory_bytes: int(r.get(1)),
                ttl_seconds: ttl_ms.map(|ms| ms / 1000.0),
                ..KeyReading::default()
            };
            Some((reading, kind))
        })
        .collect())
}

/// Round trip 2: each key's size for its type, and XINFO for streams.
async fn sizes(
    sampler: &mut Sampler,
    keys: Vec<(KeyReading, KeyType)>,
) -> Result<Vec<KeyReading>, SampleError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for (k, kind) in &keys {
        pipe.cmd(kind.size_command()).arg(&k.key);
        if *kind == KeyType::String {
            // One byte more than is kept: a longer value is seen as such.
            pipe.cmd("GETRANGE")
                .arg(&k.key)
                .arg(0)
                .arg(MAX_KEY_VALUE_BYTES);
        }
        if *kind == KeyType::Stream {
            pipe.cmd("XINFO").arg("STREAM").arg(&k.key);
            pipe.cmd("XINFO").arg("GROUPS").arg(&k.key);
        }
    }
    let mut replies = sampler.query(&pipe, RoundTrip::Keys).await?.into_iter();
    let mut out = Vec::with_capacity(keys.len());
    for (mut k, kind) in keys {
        let size = replies.next();
        if kind != KeyType::Other {
            k.size = int(size.as_ref());
        }
        if kind == KeyType::String {
            k.value = match replies.next() {
                Some(Value::BulkString(b)) if b.len() <= MAX_KEY_VALUE_BYTES => {
                    Some(KeyValue::of(&b))
                }
                _ => None,
            };
        }
        if kind == KeyType::Stream {
            let info = replies.next();
            let groups = replies.next();
            k.stream = Some(stream_reading(info.as_ref(), groups.as_ref()));
        }
        out.push(k);
    }
    Ok(out)
}

/// A number, or the ms part of a stream id, or of the id of an entry.
fn figure(value: &Value) -> Option<f64> {
    if let Some(n) = int(Some(value)) {
        return Some(n);
    }
    match value {
        Value::Array(entry) => entry
            .first()
            .and_then(bytes_text)
            .and_then(|id| stream_id_ms(&id)),
        v => bytes_text(v).and_then(|id| stream_id_ms(&id)),
    }
}

fn stream_reading(info: Option<&Value>, groups: Option<&Value>) -> StreamReading {
    let fields = info
        .map(|v| {
            pairs_of(v)
                .into_iter()
                .filter_map(|(k, v)| Some((bytes_text(k)?, figure(v)?)))
                .collect()
        })
        .unwrap_or_default();
    let groups = match groups {
        Some(Value::Array(items)) => items
            .iter()
            .map(|g| {
                let pairs = pairs_of(g);
                let name = pairs
                    .iter()
                    .find(|(k, _)| bytes_text(k).as_deref() == Some("name"))
                    .and_then(|(_, v)| bytes_text(v))
                    .unwrap_or_default();
                let fields = pairs
                    .into_iter()
                    .filter_map(|(k, v)| Some((bytes_text(k)?, figure(v)?)))
                    .collect();
                GroupReading { name, fields }
            })
            .collect(),
        _ => Vec::new(),
    };
    StreamReading { fields, groups }
}

/// The millisecond part of a stream id (`1795576414841-0`), as the exporter reports ids.
fn stream_id_ms(id: &str) -> Option<f64> {
    id.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_are_their_milliseconds() {
        assert_eq!(stream_id_ms("1795576414841-0"), Some(1795576414841.0));
        assert_eq!(
            figure(&Value::BulkString(b"1795576414841-7".to_vec())),
            Some(1795576414841.0)
        );
        assert_eq!(figure(&Value::Int(3)), Some(3.0));
    }
}
