//! Key groups (`check_key_groups`), as the exporter gives them: every key
//! of the target's database in the group its first matching Lua pattern
//! names (the pattern's captures joined), else `unclassified`; keys and
//! `MEMORY USAGE` summed per group.
//!
//! The grouping runs in Redis (`key_groups.lua` with EVAL, one SCAN step
//! per call), so the patterns are Lua's own, exactly as the exporter's
//! script has them. Each step is one round trip that blocks the server for
//! `key_scan_count` keys at most; the walk stops at the key sampler's time
//! budget, and a walk that did not see the whole keyspace is left out
//! rather than reported short.

use std::collections::HashMap;
use std::time::Instant;

use redis::Value;

use crate::config::KeySettings;
use crate::reading::{KeyGroup, KeyGroups};
use crate::redis::replies::{bytes_text, int};
use crate::redis::sampler::{RoundTrip, SampleError, Sampler};

const SCRIPT: &str = include_str!("key_groups.lua");

/// Why key groups were not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyGroupsError {
    #[error(transparent)]
    Sample(#[from] SampleError),
    /// The script failed: a bad pattern, scripting disabled.
    #[error("the key groups script failed: {0}")]
    Script(String),
    #[error("the walk over the keys stopped at its time budget (key_time_budget)")]
    Budget,
}

/// Walks the whole keyspace of the connection's database, grouping keys
/// by `settings.check_key_groups`.
pub(crate) async fn read_key_groups(
    sampler: &mut Sampler,
    settings: &KeySettings,
    deadline: Instant,
) -> Result<KeyGroups, KeyGroupsError> {
    let started = Instant::now();
    let mut groups: HashMap<String, (f64, f64)> = HashMap::new();
    let mut cursor = "0".to_owned();
    loop {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        pipe.cmd("EVAL")
            .arg(SCRIPT)
            .arg(0)
            .arg(&cursor)
            .arg(settings.scan_count)
            .arg(&settings.check_key_groups);
        let reply = sampler
            .query(&pipe, RoundTrip::Scan)
            .await?
            .into_iter()
            .next();
        let (next, step) = step(reply)?;
        for (group, keys, memory) in step {
            let entry = groups.entry(group).or_default();
            entry.0 += keys;
            entry.1 += memory;
        }
        if next == "0" {
            break;
        }
        if Instant::now() >= deadline {
            return Err(KeyGroupsError::Budget);
        }
        cursor = next;
    }
    let mut groups: Vec<KeyGroup> = groups.into_iter().map(|(g, (k, m))| (g, k, m)).collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(KeyGroups {
        groups,
        duration_ms: started.elapsed().as_millis() as f64,
    })
}

/// One step's reply: the next cursor and (group, keys, memory) triples.
fn step(reply: Option<Value>) -> Result<(String, Vec<KeyGroup>), KeyGroupsError> {
    let parts = match reply {
        Some(Value::Array(parts)) => parts,
        Some(Value::ServerError(e)) => {
            let text = e
                .details()
                .map_or_else(|| e.code().to_owned(), str::to_owned);
            return Err(KeyGroupsError::Script(text));
        }
        _ => return Err(KeyGroupsError::Script("not [cursor, groups]".to_owned())),
    };
    let cursor = parts
        .first()
        .and_then(bytes_text)
        .unwrap_or_else(|| "0".to_owned());
    let Some(Value::Array(flat)) = parts.get(1) else {
        return Ok((cursor, Vec::new()));
    };
    let triples = flat
        .chunks_exact(3)
        .filter_map(|t| {
            Some((
                bytes_text(&t[0])?,
                int(t.get(1))?,
                int(t.get(2)).unwrap_or(0.0),
            ))
        })
        .collect();
    Ok((cursor, triples))
}
