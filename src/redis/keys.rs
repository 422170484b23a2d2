//! The key sampler: `check_keys` patterns found with SCAN (COUNT bounded,
//! a time budget per run, never KEYS), `check_single_keys` read directly,
//! `count_keys` patterns counted. Per-key commands go out pipelined, one
//! round trip for all keys; a missing key is absent, not 0. It runs on its
//! own, longer interval (`key_interval`), not on every sample.

use std::time::Instant;

use redis::Value;

use crate::config::KeySettings;
use crate::reading::{GroupReading, KeyReading, KeysReading, StreamReading};
use crate::redis::replies::{bytes_text, int, pairs_of};
use crate::redis::sampler::{RoundTrip, SampleError, Sampler};

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

    // Round trip 1: type, memory and expiry of every key.
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for key in &names {
        pipe.cmd("TYPE").arg(key);
        pipe.cmd("MEMORY").arg("USAGE").arg(key);
        pipe.cmd("PTTL").arg(key);
    }
    let replies = if names.is_empty() {
        Vec::new()
    } else {
        sampler.query(&pipe, RoundTrip::Keys).await?
    };
    let mut keys: Vec<(KeyReading, String)> = Vec::new();
    for (key, r) in names.iter().zip(replies.chunks(3)) {
        let kind = r.first().and_then(bytes_text).unwrap_or_default();
        if kind == "none" || kind.is_empty() {
            continue; // absent keys stay absent
        }
        let ttl_ms = int(r.get(2)).filter(|t| *t >= 0.0);
        keys.push((
            KeyReading {
                key: key.clone(),
                memory_bytes: int(r.get(1)),
                ttl_seconds: ttl_ms.map(|ms| ms / 1000.0),
                ..KeyReading::default()
            },
            kind,
        ));
    }

    // Round trip 2: size per type; XINFO for streams.
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for (k, kind) in &keys {
        let size = match kind.as_str() {
            "string" => "STRLEN",
            "list" => "LLEN",
            "set" => "SCARD",
            "zset" => "ZCARD",
            "hash" => "HLEN",
            "stream" => "XLEN",
            _ => "EXISTS",
        };
        pipe.cmd(size).arg(&k.key);
        if kind == "stream" {
            pipe.cmd("XINFO").arg("STREAM").arg(&k.key);
            pipe.cmd("XINFO").arg("GROUPS").arg(&k.key);
        }
    }
    let replies = if keys.is_empty() {
        Vec::new()
    } else {
        sampler.query(&pipe, RoundTrip::Keys).await?
    };
    let mut replies = replies.into_iter();
    let mut out = Vec::with_capacity(keys.len());
    for (mut k, kind) in keys {
        let size = replies.next();
        if !matches!(
            kind.as_str(),
            "string" | "list" | "set" | "zset" | "hash" | "stream"
        ) {
            // Modules' types have no size command the exporter knows.
            out.push(k);
            continue;
        }
        k.size = int(size.as_ref());
        if kind == "stream" {
            let info = replies.next();
            let groups = replies.next();
            k.stream = Some(stream_reading(info.as_ref(), groups.as_ref()));
        }
        out.push(k);
    }
    Ok(KeysReading {
        db: db.to_owned(),
        keys: out,
        counts,
    })
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
