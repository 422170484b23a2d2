//! The on-disk encoding of one queued record, pure.
//!
//! A frame is `len: u32 | crc32: u32 | timestamp_ms: i64 | samples: u32 |
//! payload[len]` (little endian), the CRC taken over everything but itself,
//! so a torn write, a flipped bit or a garbage length is caught. Timestamp
//! and sample count sit outside the payload so that opening the queue can
//! index a segment without decompressing it.
//!
//! The payload is a snappy-compressed encoding of the series (labels repeat
//! heavily within a record: `job`, `instance`, metric-name prefixes), which
//! keeps the disk bytes per sample small. Before compression: version byte,
//! series count (varint), then per series: label count (varint), each label
//! as name and value (varint length + bytes), value (f64 LE).

use std::sync::Arc;

// foldhash, not SipHash: see remote_write/encode.rs.
use foldhash::HashMap;
use prost::encoding::{decode_varint, encode_varint};

use crate::queue::{LabelSet, Record, Series};

pub const HEADER_LEN: usize = 20;
const VERSION: u8 = 1;
/// A record larger than this is refused on write and treated as corruption
/// on read (a garbage length must not make the reader allocate gigabytes).
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the frame needs: a torn write at the tail.
    #[error("frame cut short")]
    Truncated,
    #[error("frame checksum mismatch")]
    Checksum,
    #[error("frame length {0} is out of range")]
    Length(usize),
    #[error("record cannot be decoded: {0}")]
    Decode(&'static str),
}

/// Appends the frame of `record` to `out`.
pub fn encode(record: &Record, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let mut raw = Vec::with_capacity(64 + record.series.len() * 96);
    raw.push(VERSION);
    encode_varint(record.series.len() as u64, &mut raw);
    for series in &record.series {
        encode_varint(series.labels.len() as u64, &mut raw);
        for (name, value) in series.labels.iter() {
            encode_varint(name.len() as u64, &mut raw);
            raw.extend_from_slice(name.as_bytes());
            encode_varint(value.len() as u64, &mut raw);
            raw.extend_from_slice(value.as_bytes());
        }
        raw.extend_from_slice(&series.value.to_le_bytes());
    }
    let payload = snap::raw::Encoder::new()
        .compress_vec(&raw)
        .map_err(|_| FrameError::Length(raw.len()))?;
    if payload.len() > MAX_PAYLOAD {
        return Err(FrameError::Length(payload.len()));
    }
    let len = (payload.len() as u32).to_le_bytes();
    let timestamp = record.timestamp_ms.to_le_bytes();
    let samples = u32::try_from(record.series.len())
        .map_err(|_| FrameError::Length(record.series.len()))?
        .to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(&timestamp);
    crc.update(&samples);
    crc.update(&payload);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&timestamp);
    out.extend_from_slice(&samples);
    out.extend_from_slice(&payload);
    Ok(())
}

/// What the header of a valid frame says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Length of the whole frame, header included.
    pub frame_len: usize,
    pub timestamp_ms: i64,
    pub samples: u32,
}

/// Label sets already decoded, by their encoded bytes: records read back
/// together share one `Arc` per distinct set, as records fresh from the
/// samplers do (their target's label cache shares them). The sender groups
/// a batch by that `Arc`, so a backlog of several readings per target still
/// sends each series' labels once per request, and a set seen before is
/// not decoded again.
pub type LabelSets = HashMap<Box<[u8]>, LabelSet>;

/// Reads the frame at the start of `bytes`: the record and the frame's
/// total length.
pub fn decode(bytes: &[u8]) -> Result<(Record, usize), FrameError> {
    decode_sharing(bytes, &mut LabelSets::default())
}

/// [`decode`], sharing label sets with the records decoded before it
/// through `sets`.
pub fn decode_sharing(bytes: &[u8], sets: &mut LabelSets) -> Result<(Record, usize), FrameError> {
    let (meta, payload) = check(bytes)?;
    let raw = snap::raw::Decoder::new()
        .decompress_vec(payload)
        .map_err(|_| FrameError::Decode("snappy"))?;
    let series = decode_series(&raw, sets)?;
    if series.len() != meta.samples as usize {
        return Err(FrameError::Decode("sample count"));
    }
    Ok((
        Record {
            timestamp_ms: meta.timestamp_ms,
            series,
        },
        meta.frame_len,
    ))
}

/// Validates the frame at the start of `bytes`: its header and payload.
pub fn check(bytes: &[u8]) -> Result<(Meta, &[u8]), FrameError> {
    let header = bytes.get(..HEADER_LEN).ok_or(FrameError::Truncated)?;
    let field = |range: std::ops::Range<usize>| -> [u8; 4] {
        let mut out = [0u8; 4];
        out.copy_from_slice(&header[range]);
        out
    };
    let len_bytes = field(0..4);
    let crc = u32::from_le_bytes(field(4..8));
    let mut timestamp = [0u8; 8];
    timestamp.copy_from_slice(&header[8..16]);
    let samples = field(16..20);
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len == 0 || len > MAX_PAYLOAD {
        return Err(FrameError::Length(len));
    }
    let payload = bytes
        .get(HEADER_LEN..HEADER_LEN + len)
        .ok_or(FrameError::Truncated)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(&timestamp);
    hasher.update(&samples);
    hasher.update(payload);
    if hasher.finalize() != crc {
        return Err(FrameError::Checksum);
    }
    let meta = Meta {
        frame_len: HEADER_LEN + len,
        timestamp_ms: i64::from_le_bytes(timestamp),
        samples: u32::from_le_bytes(samples),
    };
    Ok((meta, payload))
}

/// The encoded labels of one series at the start of `buf`: `count` pairs of
/// length-prefixed strings.
fn label_block(buf: &[u8], count: usize) -> Result<&[u8], FrameError> {
    let mut rest = buf;
    for _ in 0..2 * count {
        let len = varint(&mut rest)?;
        take(&mut rest, len)?;
    }
    Ok(&buf[..buf.len() - rest.len()])
}

fn decode_series(mut buf: &[u8], sets: &mut LabelSets) -> Result<Vec<Series>, FrameError> {
    let version = take(&mut buf, 1)?[0];
    if version != VERSION {
        return Err(FrameError::Decode("unknown version"));
    }
    let count = varint(&mut buf)?;
    // Every series needs at least 9 bytes: a cheap bound against garbage counts.
    if count > buf.len() / 9 + 1 {
        return Err(FrameError::Decode("series count"));
    }
    let mut series = Vec::with_capacity(count);
    // Within a record most strings repeat (`__name__`, `instance`, `job`
    // and their values on every series): one shared copy of each.
    let mut strings: Strings<'_> = HashMap::default();
    for _ in 0..count {
        let labels_len = varint(&mut buf)?;
        if labels_len > buf.len() / 2 + 1 {
            return Err(FrameError::Decode("label count"));
        }
        // The encoded labels identify the set: one seen before in this
        // read is shared without decoding its strings again.
        let block = label_block(buf, labels_len)?;
        buf = &buf[block.len()..];
        let labels = match sets.get(block) {
            Some(set) => set.clone(),
            None => {
                let mut rest = block;
                let mut labels = Vec::with_capacity(labels_len);
                for _ in 0..labels_len {
                    let name = string(&mut rest, &mut strings)?;
                    let value = string(&mut rest, &mut strings)?;
                    labels.push((name, value));
                }
                let set: LabelSet = labels.into();
                sets.insert(block.into(), set.clone());
                set
            }
        };
        let value = f64::from_le_bytes(
            take(&mut buf, 8)?
                .try_into()
                .map_err(|_| FrameError::Decode("value"))?,
        );
        series.push(Series { labels, value });
    }
    Ok(series)
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
    if buf.len() < n {
        return Err(FrameError::Decode("short payload"));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn varint(buf: &mut &[u8]) -> Result<usize, FrameError> {
    let v = decode_varint(buf).map_err(|_| FrameError::Decode("varint"))?;
    usize::try_from(v).map_err(|_| FrameError::Decode("varint"))
}

type Strings<'a> = HashMap<&'a [u8], Arc<str>>;

fn string<'a>(buf: &mut &'a [u8], strings: &mut Strings<'a>) -> Result<Arc<str>, FrameError> {
    let len = varint(buf)?;
    let bytes = take(buf, len)?;
    if let Some(shared) = strings.get(bytes) {
        return Ok(shared.clone());
    }
    let shared: Arc<str> = std::str::from_utf8(bytes)
        .map_err(|_| FrameError::Decode("utf-8"))?
        .into();
    strings.insert(bytes, shared.clone());
    Ok(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            timestamp_ms: 1_700_000_000_123,
            series: vec![
                Series {
                    labels: vec![
                        ("__name__".into(), "redis_up".into()),
                        ("instance".into(), "h:6379".into()),
                    ]
                    .into(),
                    value: 1.0,
                },
                Series {
                    labels: vec![("__name__".into(), "x".into())].into(),
                    value: f64::NAN,
                },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode(&record(), &mut buf).expect("encode");
        let (decoded, len) = decode(&buf).expect("decode");
        assert_eq!(len, buf.len());
        assert_eq!(decoded.timestamp_ms, record().timestamp_ms);
        assert_eq!(decoded.series[0], record().series[0]);
        assert!(decoded.series[1].value.is_nan());
    }

    #[test]
    fn every_cut_is_detected_as_truncated() {
        let mut buf = Vec::new();
        encode(&record(), &mut buf).expect("encode");
        for cut in 0..buf.len() {
            assert_eq!(
                decode(&buf[..cut]).err(),
                Some(FrameError::Truncated),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let mut buf = Vec::new();
        encode(&record(), &mut buf).expect("encode");
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    decode(&bad).is_err(),
                    "flip of bit {bit} in byte {i} went unnoticed"
                );
            }
        }
    }
}
