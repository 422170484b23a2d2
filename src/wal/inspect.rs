//! `redpush wal inspect`: a summary of the queue on disk, read without
//! changing it.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::segment::{self, RecordMeta};
use super::{WalError, position};
use crate::clock::now_ms;

/// The segments of the queue in `dir`, what is pending in each (for the
/// reader furthest behind, when there are several), and the age of the
/// oldest pending sample.
pub fn inspect(dir: &Path) -> Result<String, WalError> {
    let bases = segment::bases(dir).map_err(|source| WalError::Dir {
        path: dir.to_owned(),
        source,
    })?;
    let positions = position::recorded(dir);
    // Pending: what the reader furthest behind has not acknowledged.
    let ack = positions.iter().map(|&(_, seq)| seq).min();
    let mut out = String::new();
    let _ = writeln!(out, "queue: {}", dir.display());
    match positions.as_slice() {
        [] => {
            let _ = writeln!(out, "acknowledged up to: nothing yet");
        }
        [(name, seq)] if name.is_empty() => {
            let _ = writeln!(out, "acknowledged up to: record {seq}");
        }
        several => {
            for (name, seq) in several {
                let name = if name.is_empty() { "(unnamed)" } else { name };
                let _ = writeln!(out, "reader {name}: acknowledged up to record {seq}");
            }
        }
    }
    let (mut records, mut samples, mut bytes) = (0usize, 0usize, 0u64);
    let (mut oldest, mut newest) = (None::<i64>, None::<i64>);
    for base in bases {
        let (path, data) = segment::read(dir, base)?;
        let (index, valid) = segment::index(&data);
        let pending: Vec<&RecordMeta> = index
            .iter()
            .enumerate()
            .filter(|(i, _)| base + *i as u64 >= ack.unwrap_or(0))
            .map(|(_, m)| m)
            .collect();
        let seg_samples: usize = pending.iter().map(|m| m.samples as usize).sum();
        let unreadable = if valid < data.len() {
            format!(
                ", {} unreadable bytes at offset {valid}",
                data.len() - valid
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "segment {}: {} bytes, records {}..{}, {} pending ({} samples){unreadable}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
            data.len(),
            base,
            base + index.len() as u64,
            pending.len(),
            seg_samples,
        );
        for m in &pending {
            oldest = Some(oldest.map_or(m.timestamp_ms, |o| o.min(m.timestamp_ms)));
            newest = Some(newest.map_or(m.timestamp_ms, |n| n.max(m.timestamp_ms)));
        }
        records += pending.len();
        samples += seg_samples;
        bytes += data.len() as u64;
    }
    let _ = writeln!(
        out,
        "pending: {records} records, {samples} samples, {bytes} bytes on disk"
    );
    if let (Some(o), Some(n)) = (oldest, newest) {
        let age = Duration::from_millis((now_ms() - o).max(0) as u64);
        let _ = writeln!(
            out,
            "oldest pending sample: {} ms ({} ago); newest: {} ms",
            o,
            humantime::format_duration(Duration::from_secs(age.as_secs())),
            n
        );
    }
    Ok(out)
}
