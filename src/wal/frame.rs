//! The on-disk encoding of one queued record, pure.
//!
//! A frame is `len: u32 | crc32: u32 | timestamp_ms: i64 | samples: u32 |
//! payload[len]` (little endian), the CRC taken over everything but itself,
//! so a torn write, a flipped bit or a garbage length is caught. Timestamp
//! and sample count sit outside the payload so that opening the queue can
//! index a segment without decompressing it.
//!
//! The payload is snappy-compressed. Its first byte is the format version.
//!
//! Version 2 names series by number. A segment's frames define each shape
//! and each target label set once, in the first frame that uses it, and
//! later frames of the same segment refer to it by its id (`series`), so a
//! record costs about ten bytes a sample instead of its label strings, and
//! encoding it copies no string. A segment is read from its first frame on
//! (a reader starting in the middle reads the definitions before it first).
//! Layout: definition count (varint), each a tag byte (0 target, 1 shape),
//! its id (varint) and its content (target: label count, then name, value
//! pairs; shape: name, kind byte, suffix, label count, pairs; strings as
//! varint length + UTF-8); then the record's target id, the series count,
//! and per series its shape id (varint) and value (f64 LE).
//!
//! Version 3 is version 2 followed by the record's native histograms:
//! their count, then each one's shape id, count (varint), sum (f64 LE),
//! span count, each span's offset (zigzag varint) and length, then one
//! delta (zigzag varint) per bucket the spans cover. Their shapes are
//! defined as the series' are. A record without native histograms is
//! written as version 2, byte for byte what it was before they existed.
//!
//! Version 1, written by redpush before the series catalogue, is still read:
//! series count, then per series its complete label set (label count,
//! pairs) and value. Each decodes to a shape holding all the labels, with an
//! empty target set, which encodes to the same request.

use std::sync::Arc;

// foldhash, not SipHash: see remote_write/encode.rs.
use foldhash::{HashMap, HashSet};
use prost::encoding::{decode_varint, encode_varint};

use crate::metrics::Kind;
use crate::metrics::NativeHistogram;
use crate::metrics::native::Span;
use crate::series::{self, HistogramSeries, Record, Series, Shape, TargetLabels};

pub const HEADER_LEN: usize = 20;
const VERSION_LABELS: u8 = 1;
const VERSION_IDS: u8 = 2;
const VERSION_HISTOGRAMS: u8 = 3;
/// A record larger than this is refused on write and treated as corruption
/// on read (a garbage length must not make the reader allocate gigabytes).
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

const TAG_TARGET: u8 = 0;
const TAG_SHAPE: u8 = 1;
/// Kinds by their byte on disk.
const KINDS: [Kind; 4] = [Kind::Counter, Kind::Gauge, Kind::Summary, Kind::Histogram];

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

/// Ids of the shapes and target sets the frames of the segment being
/// written have defined so far.
pub type Defined = HashSet<u64>;

/// What the frames of a segment read so far have defined.
#[derive(Debug, Default)]
pub struct Definitions {
    targets: HashMap<u64, Arc<TargetLabels>>,
    shapes: HashMap<u64, Arc<Shape>>,
}

/// Buffers kept from one frame to the next.
pub struct Scratch {
    raw: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            raw: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }
}

/// Appends the frame of `record` to `out`. Shapes and the target set that
/// `defined` lacks are defined in it, added to `defined` and their ids to
/// `added` (for the caller to take back if the frame is not written).
pub fn encode(
    record: &Record,
    defined: &mut Defined,
    added: &mut Vec<u64>,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let raw = &mut scratch.raw;
    raw.clear();
    raw.reserve(16 + record.series.len() * 10);
    raw.push(if record.histograms.is_empty() {
        VERSION_IDS
    } else {
        VERSION_HISTOGRAMS
    });
    let first_added = added.len();
    let new_target = defined.insert(record.target.id());
    if new_target {
        added.push(record.target.id());
    }
    let new_shapes: Vec<&Shape> = record
        .series
        .iter()
        .map(|s| &s.shape)
        .chain(record.histograms.iter().map(|h| &h.shape))
        .filter(|shape| defined.insert(shape.id()))
        .map(|shape| &**shape)
        .collect();
    added.extend(new_shapes.iter().map(|s| s.id()));
    encode_varint((added.len() - first_added) as u64, raw);
    if new_target {
        raw.push(TAG_TARGET);
        encode_varint(record.target.id(), raw);
        put_labels(
            record.target.labels().iter().map(|(n, v)| (&**n, &**v)),
            raw,
        );
    }
    for shape in new_shapes {
        raw.push(TAG_SHAPE);
        encode_varint(shape.id(), raw);
        put_str(shape.name(), raw);
        raw.push(KINDS.iter().position(|k| *k == shape.kind()).unwrap_or(1) as u8);
        put_str(shape.suffix(), raw);
        put_labels(shape.labels(), raw);
    }
    encode_varint(record.target.id(), raw);
    encode_varint(record.series.len() as u64, raw);
    for series in &record.series {
        encode_varint(series.shape.id(), raw);
        raw.extend_from_slice(&series.value.to_le_bytes());
    }
    if !record.histograms.is_empty() {
        put_histograms(&record.histograms, raw);
    }
    let samples = u32::try_from(record.samples())
        .map_err(|_| FrameError::Length(record.samples()))?
        .to_le_bytes();
    let start = out.len();
    out.resize(
        start + HEADER_LEN + snap::raw::max_compress_len(raw.len()),
        0,
    );
    let len = scratch
        .snappy
        .compress(raw, &mut out[start + HEADER_LEN..])
        .map_err(|_| FrameError::Length(raw.len()))?;
    out.truncate(start + HEADER_LEN + len);
    if len > MAX_PAYLOAD {
        out.truncate(start);
        return Err(FrameError::Length(len));
    }
    let len_bytes = (len as u32).to_le_bytes();
    let timestamp = record.timestamp_ms.to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len_bytes);
    crc.update(&timestamp);
    crc.update(&samples);
    crc.update(&out[start + HEADER_LEN..]);
    let header = &mut out[start..start + HEADER_LEN];
    header[0..4].copy_from_slice(&len_bytes);
    header[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
    header[8..16].copy_from_slice(&timestamp);
    header[16..20].copy_from_slice(&samples);
    Ok(())
}

fn put_histograms(histograms: &[HistogramSeries], out: &mut Vec<u8>) {
    encode_varint(histograms.len() as u64, out);
    for series in histograms {
        let h = &series.histogram;
        encode_varint(series.shape.id(), out);
        encode_varint(h.count, out);
        out.extend_from_slice(&h.sum.to_le_bytes());
        encode_varint(h.spans.len() as u64, out);
        for span in &h.spans {
            encode_varint(zigzag(span.offset.into()), out);
            encode_varint(span.length.into(), out);
        }
        for &delta in &h.deltas {
            encode_varint(zigzag(delta), out);
        }
    }
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    (n >> 1) as i64 ^ -((n & 1) as i64)
}

fn put_str(s: &str, out: &mut Vec<u8>) {
    encode_varint(s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

fn put_labels<'a>(labels: impl ExactSizeIterator<Item = (&'a str, &'a str)>, out: &mut Vec<u8>) {
    encode_varint(labels.len() as u64, out);
    for (name, value) in labels {
        put_str(name, out);
        put_str(value, out);
    }
}

/// What the header of a valid frame says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Length of the whole frame, header included.
    pub frame_len: usize,
    pub timestamp_ms: i64,
    pub samples: u32,
}

/// Reads the frame at the start of `bytes`, with the definitions of the
/// frames before it in its segment (and adds its own): the record and the
/// frame's total length.
pub fn decode(bytes: &[u8], defs: &mut Definitions) -> Result<(Record, usize), FrameError> {
    let (meta, payload) = check(bytes)?;
    let raw = decompress(payload)?;
    let mut buf = raw.as_slice();
    let record = match take(&mut buf, 1)?[0] {
        version @ (VERSION_IDS | VERSION_HISTOGRAMS) => {
            read_definitions(&mut buf, defs)?;
            let target = defs
                .targets
                .get(&id(&mut buf)?)
                .ok_or(FrameError::Decode("undefined target"))?
                .clone();
            let count = varint(&mut buf)?;
            // Every series needs at least 9 bytes: a cheap bound against garbage counts.
            if count > buf.len() / 9 + 1 {
                return Err(FrameError::Decode("series count"));
            }
            let mut series = Vec::with_capacity(count);
            for _ in 0..count {
                let shape = defined_shape(&mut buf, defs)?;
                series.push(Series {
                    shape,
                    value: value(&mut buf)?,
                });
            }
            let histograms = if version == VERSION_HISTOGRAMS {
                read_histograms(&mut buf, defs)?
            } else {
                Vec::new()
            };
            Record {
                timestamp_ms: meta.timestamp_ms,
                target,
                series,
                histograms,
            }
        }
        VERSION_LABELS => Record {
            timestamp_ms: meta.timestamp_ms,
            target: series::target_labels([]),
            series: labelled_series(buf)?,
            histograms: Vec::new(),
        },
        _ => return Err(FrameError::Decode("unknown version")),
    };
    if record.samples() != meta.samples as usize {
        return Err(FrameError::Decode("sample count"));
    }
    Ok((record, meta.frame_len))
}

/// Reads only the definitions of the frame at the start of `bytes` (a
/// reader that starts in the middle of a segment reads those before it);
/// returns the frame's length.
pub fn scan_definitions(bytes: &[u8], defs: &mut Definitions) -> Result<usize, FrameError> {
    let (meta, payload) = check(bytes)?;
    let raw = decompress(payload)?;
    let mut buf = raw.as_slice();
    if matches!(take(&mut buf, 1)?[0], VERSION_IDS | VERSION_HISTOGRAMS) {
        read_definitions(&mut buf, defs)?;
    }
    Ok(meta.frame_len)
}

fn decompress(payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    snap::raw::Decoder::new()
        .decompress_vec(payload)
        .map_err(|_| FrameError::Decode("snappy"))
}

fn read_definitions(buf: &mut &[u8], defs: &mut Definitions) -> Result<(), FrameError> {
    let count = varint(buf)?;
    if count > buf.len() / 3 + 1 {
        return Err(FrameError::Decode("definition count"));
    }
    for _ in 0..count {
        let tag = take(buf, 1)?[0];
        let id = id(buf)?;
        match tag {
            TAG_TARGET => {
                let labels = labels(buf)?;
                defs.targets.insert(id, series::target_labels(labels));
            }
            TAG_SHAPE => {
                let name = string(buf)?;
                let kind = *KINDS
                    .get(take(buf, 1)?[0] as usize)
                    .ok_or(FrameError::Decode("kind"))?;
                let suffix = string(buf)?;
                let labels = labels(buf)?;
                defs.shapes
                    .insert(id, series::shape(name, kind, suffix, &labels));
            }
            _ => return Err(FrameError::Decode("definition tag")),
        }
    }
    Ok(())
}

/// The shape whose id comes next in `buf`, as the segment defined it.
fn defined_shape(buf: &mut &[u8], defs: &Definitions) -> Result<Arc<Shape>, FrameError> {
    defs.shapes
        .get(&id(buf)?)
        .cloned()
        .ok_or(FrameError::Decode("undefined shape"))
}

/// The native histograms of a version 3 payload, after its series.
fn read_histograms(
    buf: &mut &[u8],
    defs: &Definitions,
) -> Result<Vec<HistogramSeries>, FrameError> {
    let count = varint(buf)?;
    // Every histogram needs at least 11 bytes: a cheap bound against garbage counts.
    if count > buf.len() / 11 + 1 {
        return Err(FrameError::Decode("histogram count"));
    }
    let mut histograms = Vec::with_capacity(count);
    for _ in 0..count {
        let shape = defined_shape(buf, defs)?;
        let total = id(buf)?;
        let sum = value(buf)?;
        let span_count = varint(buf)?;
        if span_count > buf.len() / 2 + 1 {
            return Err(FrameError::Decode("span count"));
        }
        let mut spans = Vec::with_capacity(span_count);
        let mut buckets = 0usize;
        for _ in 0..span_count {
            let offset =
                i32::try_from(unzigzag(id(buf)?)).map_err(|_| FrameError::Decode("span offset"))?;
            let length = u32::try_from(id(buf)?).map_err(|_| FrameError::Decode("span length"))?;
            buckets = buckets.saturating_add(length as usize);
            spans.push(Span { offset, length });
        }
        if buckets > buf.len() {
            return Err(FrameError::Decode("bucket count"));
        }
        let deltas = (0..buckets)
            .map(|_| id(buf).map(unzigzag))
            .collect::<Result<_, _>>()?;
        histograms.push(HistogramSeries {
            shape,
            histogram: NativeHistogram {
                count: total,
                sum,
                spans,
                deltas,
            },
        });
    }
    Ok(histograms)
}

/// The series of a version 1 payload (after its version byte).
fn labelled_series(mut buf: &[u8]) -> Result<Vec<Series>, FrameError> {
    let count = varint(&mut buf)?;
    if count > buf.len() / 9 + 1 {
        return Err(FrameError::Decode("series count"));
    }
    let mut series = Vec::with_capacity(count);
    for _ in 0..count {
        let mut labels = labels(&mut buf)?;
        let at = labels
            .iter()
            .position(|(n, _)| *n == "__name__")
            .ok_or(FrameError::Decode("series without __name__"))?;
        let (_, name) = labels.remove(at);
        let shape = series::shape(name, Kind::Gauge, "", &labels);
        series.push(Series {
            shape,
            value: value(&mut buf)?,
        });
    }
    Ok(series)
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

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
    if buf.len() < n {
        return Err(FrameError::Decode("short payload"));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn id(buf: &mut &[u8]) -> Result<u64, FrameError> {
    decode_varint(buf).map_err(|_| FrameError::Decode("varint"))
}

fn varint(buf: &mut &[u8]) -> Result<usize, FrameError> {
    let v = decode_varint(buf).map_err(|_| FrameError::Decode("varint"))?;
    usize::try_from(v).map_err(|_| FrameError::Decode("varint"))
}

fn value(buf: &mut &[u8]) -> Result<f64, FrameError> {
    let bytes: [u8; 8] = take(buf, 8)?
        .try_into()
        .map_err(|_| FrameError::Decode("value"))?;
    Ok(f64::from_le_bytes(bytes))
}

fn string<'a>(buf: &mut &'a [u8]) -> Result<&'a str, FrameError> {
    let len = varint(buf)?;
    std::str::from_utf8(take(buf, len)?).map_err(|_| FrameError::Decode("utf-8"))
}

fn labels<'a>(buf: &mut &'a [u8]) -> Result<Vec<(&'a str, &'a str)>, FrameError> {
    let count = varint(buf)?;
    // Every label needs at least two bytes.
    if count > buf.len() / 2 + 1 {
        return Err(FrameError::Decode("label count"));
    }
    (0..count)
        .map(|_| Ok((string(buf)?, string(buf)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::{shape, target_labels};

    fn record() -> Record {
        Record {
            timestamp_ms: 1_700_000_000_123,
            target: target_labels([("instance", "h:6379"), ("job", "redis")]),
            series: vec![
                Series {
                    shape: shape("redis_up", Kind::Gauge, "", &[]),
                    value: 1.0,
                },
                Series {
                    shape: shape("x", Kind::Summary, "_sum", &[("cmd", "get"), ("empty", "")]),
                    value: -0.25,
                },
            ],
            histograms: Vec::new(),
        }
    }

    fn frame(record: &Record, defined: &mut Defined) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(
            record,
            defined,
            &mut Vec::new(),
            &mut Scratch::default(),
            &mut buf,
        )
        .expect("encode");
        buf
    }

    #[test]
    fn round_trip() {
        let buf = frame(&record(), &mut Defined::default());
        let (decoded, len) = decode(&buf, &mut Definitions::default()).expect("decode");
        assert_eq!(len, buf.len());
        assert_eq!(decoded.timestamp_ms, record().timestamp_ms);
        assert!(Arc::ptr_eq(&decoded.target, &record().target));
        assert_eq!(decoded.series[0], record().series[0]);
        // Decoded shapes are the catalogue's, shared with the live ones.
        assert!(Arc::ptr_eq(
            &decoded.series[1].shape,
            &record().series[1].shape
        ));
        assert_eq!(decoded.series[1].value, -0.25);
    }

    fn with_histograms() -> Record {
        let native = |cmd| {
            shape(
                "redis_commands_latencies_usec",
                Kind::Histogram,
                "",
                &[("cmd", cmd)],
            )
        };
        let levels = [(1.0, 10.0), (2.0, 12.0), (33.0, 15.0), (67633.0, 16.0)];
        Record {
            histograms: vec![
                HistogramSeries {
                    shape: native("get"),
                    histogram: NativeHistogram::from_cumulative(16.0, 1234.5, &levels),
                },
                HistogramSeries {
                    shape: native("set"),
                    histogram: NativeHistogram::stale(),
                },
            ],
            ..record()
        }
    }

    #[test]
    fn native_histograms_round_trip_in_version_3_and_others_stay_version_2() {
        let version = |buf: &[u8]| {
            let (_, payload) = check(buf).expect("valid");
            decompress(payload).expect("snappy")[0]
        };
        let plain = frame(&record(), &mut Defined::default());
        assert_eq!(version(&plain), VERSION_IDS);
        let buf = frame(&with_histograms(), &mut Defined::default());
        assert_eq!(version(&buf), VERSION_HISTOGRAMS);
        assert_eq!(check(&buf).expect("valid").0.samples, 4);
        let (decoded, _) = decode(&buf, &mut Definitions::default()).expect("decode");
        assert_eq!(decoded.series, record().series);
        let want = with_histograms().histograms;
        assert_eq!(decoded.histograms[0], want[0]);
        assert!(Arc::ptr_eq(&decoded.histograms[1].shape, &want[1].shape));
        assert!(decoded.histograms[1].histogram.is_stale());
        assert_eq!(
            decoded.histograms[0]
                .histogram
                .buckets()
                .collect::<Vec<_>>(),
            [(0, 10), (1, 2), (5, 3), (16, 1)]
        );
    }

    #[test]
    fn every_cut_of_a_histogram_frame_is_detected() {
        let buf = frame(&with_histograms(), &mut Defined::default());
        for cut in 0..buf.len() {
            assert!(
                decode(&buf[..cut], &mut Definitions::default()).is_err(),
                "{cut}"
            );
        }
    }

    #[test]
    fn later_frames_refer_to_earlier_definitions() {
        let mut defined = Defined::default();
        let first = frame(&record(), &mut defined);
        let second = frame(&record(), &mut defined);
        assert!(
            second.len() < first.len() / 2,
            "{} vs {}",
            second.len(),
            first.len()
        );
        // Alone, the second frame names what it does not define.
        assert_eq!(
            decode(&second, &mut Definitions::default()).err(),
            Some(FrameError::Decode("undefined target"))
        );
        let mut defs = Definitions::default();
        assert_eq!(scan_definitions(&first, &mut defs), Ok(first.len()));
        let (decoded, _) = decode(&second, &mut defs).expect("decode");
        assert_eq!(decoded, record());
    }

    #[test]
    fn version_1_frames_are_still_read() {
        // A frame as the version before the catalogue wrote it.
        let mut raw = vec![VERSION_LABELS, 1];
        let labels = [
            ("__name__", "redis_up"),
            ("instance", "h:6379"),
            ("job", "redis"),
        ];
        encode_varint(labels.len() as u64, &mut raw);
        for (n, v) in labels {
            put_str(n, &mut raw);
            put_str(v, &mut raw);
        }
        raw.extend_from_slice(&1.0f64.to_le_bytes());
        let payload = snap::raw::Encoder::new()
            .compress_vec(&raw)
            .expect("snappy");
        let mut frame = Vec::new();
        let len = (payload.len() as u32).to_le_bytes();
        let ts = 5i64.to_le_bytes();
        let samples = 1u32.to_le_bytes();
        let mut crc = crc32fast::Hasher::new();
        for part in [&len[..], &ts, &samples, &payload] {
            crc.update(part);
        }
        for part in [
            &len[..],
            &crc.finalize().to_le_bytes(),
            &ts,
            &samples,
            &payload,
        ] {
            frame.extend_from_slice(part);
        }
        let (decoded, _) = decode(&frame, &mut Definitions::default()).expect("decode");
        let got: Vec<(String, String)> =
            crate::remote_write::labels::merged(&decoded.series[0].shape, &decoded.target)
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
        assert_eq!(got, labels.map(|(n, v)| (n.to_owned(), v.to_owned())));
        assert_eq!((decoded.timestamp_ms, decoded.series[0].value), (5, 1.0));
    }

    #[test]
    fn every_cut_is_detected_as_truncated() {
        let buf = frame(&record(), &mut Defined::default());
        for cut in 0..buf.len() {
            assert_eq!(
                decode(&buf[..cut], &mut Definitions::default()).err(),
                Some(FrameError::Truncated),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let buf = frame(&record(), &mut Defined::default());
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    decode(&bad, &mut Definitions::default()).is_err(),
                    "flip of bit {bit} in byte {i} went unnoticed"
                );
            }
        }
    }
}
