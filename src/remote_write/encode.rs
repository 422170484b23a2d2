//! Pure encoding: a batch of queued records → `WriteRequest` → snappy.
//!
//! The rules the receiver enforces live here: labels sorted byte-wise by
//! name with no duplicates and no empty values (`labels.rs`), and per
//! series strictly increasing timestamps within a request (across requests
//! the sender keeps them increasing by sending the queue in order, one
//! request at a time).
//!
//! This is the hot path of every request, so a batch is written straight
//! into one protobuf buffer instead of being copied into the generated
//! message types first, and series are recognised by their shared shape
//! and target set (two pointers), not by their label strings.

use std::sync::Arc;

// foldhash instead of std's SipHash: these maps are keyed by our own
// pointers, not by input an attacker chooses freely, and SipHash was the
// largest single cost of a reading in profiles with many targets.
use foldhash::HashMap;
use std::collections::hash_map::Entry;

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use super::labels::SeriesLabels;
use super::{field, histogram};
use crate::metrics::NativeHistogram;
use crate::queue::Queued;

/// A batch ready to post.
#[derive(Debug)]
pub struct Encoded {
    /// Snappy block-compressed protobuf `WriteRequest`.
    pub body: Vec<u8>,
    pub samples: usize,
    /// Samples left out because their series already had a sample at the
    /// same or a later time in this batch (a receiver would reject them).
    pub out_of_order: usize,
}

/// One series of a request and its samples, in time order.
struct Grouped<'a> {
    labels: SeriesLabels<'a>,
    /// The first sample, and the others: with many targets most series
    /// have one sample per request, and then no allocation.
    first: (f64, i64),
    rest: Vec<(f64, i64)>,
}

impl Grouped<'_> {
    fn samples(&self) -> impl Iterator<Item = &(f64, i64)> {
        std::iter::once(&self.first).chain(&self.rest)
    }

    fn last_timestamp(&self) -> i64 {
        self.rest.last().unwrap_or(&self.first).1
    }
}

/// Groups the records' samples by series: several samples per series when
/// the batch spans several readings, so its labels go out once.
///
/// A series is its shape and its target's label set, both shared: live
/// records share them through the catalogue (`series`), and records read
/// back from disk are resolved through the same catalogue.
fn group(batch: &[Queued]) -> (Vec<Grouped<'_>>, usize, usize) {
    // The addresses identify the shared values while the batch holds them.
    let mut index: HashMap<(usize, usize), usize> = HashMap::default();
    let samples_in = batch.iter().map(|q| q.record.series.len()).sum();
    index.reserve(samples_in);
    let mut groups: Vec<Grouped<'_>> = Vec::with_capacity(samples_in);
    let (mut samples, mut out_of_order) = (0, 0);
    for queued in batch {
        let record = &queued.record;
        let timestamp = record.timestamp_ms;
        let target = Arc::as_ptr(&record.target) as usize;
        for series in &record.series {
            let key = (target, Arc::as_ptr(&series.shape) as usize);
            samples += 1;
            let i = match index.entry(key) {
                Entry::Occupied(at) => *at.get(),
                Entry::Vacant(at) => {
                    at.insert(groups.len());
                    groups.push(Grouped {
                        labels: SeriesLabels::new(&series.shape, &record.target),
                        first: (series.value, timestamp),
                        rest: Vec::new(),
                    });
                    continue;
                }
            };
            let group = &mut groups[i];
            if group.last_timestamp() >= timestamp {
                samples -= 1;
                out_of_order += 1;
                continue;
            }
            group.rest.push((series.value, timestamp));
        }
    }
    (groups, samples, out_of_order)
}

/// One native histogram series of a request and its samples, in time order.
struct HistogramGroup<'a> {
    labels: SeriesLabels<'a>,
    samples: Vec<(&'a NativeHistogram, i64)>,
}

/// The records' native histograms grouped by series, as [`group`] groups
/// samples: later samples of a series not after its last are left out.
fn group_histograms(batch: &[Queued]) -> (Vec<HistogramGroup<'_>>, usize, usize) {
    let mut index: HashMap<(usize, usize), usize> = HashMap::default();
    let mut groups: Vec<HistogramGroup<'_>> = Vec::new();
    let (mut samples, mut out_of_order) = (0, 0);
    for queued in batch {
        let record = &queued.record;
        let target = Arc::as_ptr(&record.target) as usize;
        for series in &record.histograms {
            let key = (target, Arc::as_ptr(&series.shape) as usize);
            let i = *index.entry(key).or_insert_with(|| {
                groups.push(HistogramGroup {
                    labels: SeriesLabels::new(&series.shape, &record.target),
                    samples: Vec::new(),
                });
                groups.len() - 1
            });
            let group = &mut groups[i];
            if group
                .samples
                .last()
                .is_some_and(|&(_, t)| t >= record.timestamp_ms)
            {
                out_of_order += 1;
                continue;
            }
            samples += 1;
            group.samples.push((&series.histogram, record.timestamp_ms));
        }
    }
    (groups, samples, out_of_order)
}

fn sample_len(timestamp: i64) -> usize {
    // The double (tag + 8 bytes), then the timestamp (tag + varint).
    9 + 1 + encoded_len_varint(timestamp as u64)
}

fn message_field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn timeseries_len(group: &Grouped<'_>) -> usize {
    let labels = group.labels.wire_len();
    let samples: usize = group
        .samples()
        .map(|&(_, t)| message_field_len(sample_len(t)))
        .sum();
    labels + samples
}

/// Writes the start of a `WriteRequest.timeseries` field of `len` bytes:
/// its key, its length and the series' labels (its samples follow).
fn write_timeseries_start(labels: &SeriesLabels<'_>, len: usize, out: &mut Vec<u8>) {
    encode_key(
        field::WRITE_REQUEST_TIMESERIES,
        WireType::LengthDelimited,
        out,
    );
    encode_varint(len as u64, out);
    for label in labels.wire() {
        out.extend_from_slice(label);
    }
}

/// Writes the native histogram series after [`write_request`]'s: further
/// `WriteRequest.timeseries` fields.
fn write_histogram_series(groups: &[HistogramGroup<'_>], out: &mut Vec<u8>) {
    for group in groups {
        let len = group.labels.wire_len()
            + group
                .samples
                .iter()
                .map(|&(h, t)| histogram::field_len(h, t))
                .sum::<usize>();
        write_timeseries_start(&group.labels, len, out);
        for &(h, timestamp) in &group.samples {
            histogram::write(h, timestamp, out);
        }
    }
}

/// Writes the `WriteRequest` of `groups` (no metadata), the same bytes
/// prost's generated `encode` would write.
fn write_request(groups: &[Grouped<'_>], out: &mut Vec<u8>) {
    // Each length once: it both sizes the buffer and prefixes the message.
    let lens: Vec<usize> = groups.iter().map(timeseries_len).collect();
    out.reserve(lens.iter().map(|&len| message_field_len(len)).sum());
    for (group, &len) in groups.iter().zip(&lens) {
        write_timeseries_start(&group.labels, len, out);
        for &(value, timestamp) in group.samples() {
            write_sample(value, timestamp, out);
        }
    }
}

/// The first byte of a field: its number and wire type.
const fn key(field: u32, wire_type: WireType) -> u8 {
    (field << 3) as u8 | wire_type as u8
}

/// Writes one `Sample` field of a `TimeSeries`, assembled on the stack and
/// copied once: every sample of every request passes here, and writing it
/// a key and a varint at a time into the vector was a tenth of encoding.
fn write_sample(value: f64, timestamp: i64, out: &mut Vec<u8>) {
    let mut sample = [0u8; 22];
    sample[0] = key(field::TIMESERIES_SAMPLES, WireType::LengthDelimited);
    // At most 9 + 1 + 10 bytes: its length is one byte.
    sample[1] = sample_len(timestamp) as u8;
    sample[2] = key(field::SAMPLE_VALUE, WireType::SixtyFourBit);
    sample[3..11].copy_from_slice(&value.to_le_bytes());
    sample[11] = key(field::SAMPLE_TIMESTAMP, WireType::Varint);
    let mut at = 12;
    let mut rest = timestamp as u64;
    while rest >= 0x80 {
        sample[at] = (rest as u8) | 0x80;
        rest >>= 7;
        at += 1;
    }
    sample[at] = rest as u8;
    out.extend_from_slice(&sample[..=at]);
}

/// Encodes a batch as one snappy-compressed `WriteRequest`.
pub fn encode(batch: &[Queued]) -> Encoded {
    Encoder::default().encode(batch)
}

/// Encodes batch after batch into buffers it keeps: a request of 5,000
/// samples is about half a megabyte of protobuf, and new buffers for each
/// (zeroed by snappy's `compress_vec`, faulted in by the kernel) cost a
/// fifth of the encoding.
pub struct Encoder {
    raw: Vec<u8>,
    compressed: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            raw: Vec::new(),
            compressed: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }
}

impl Encoder {
    pub fn encode(&mut self, batch: &[Queued]) -> Encoded {
        let (groups, mut samples, mut out_of_order) = group(batch);
        self.raw.clear();
        write_request(&groups, &mut self.raw);
        if batch.iter().any(|q| !q.record.histograms.is_empty()) {
            let (groups, more, later) = group_histograms(batch);
            write_histogram_series(&groups, &mut self.raw);
            samples += more;
            out_of_order += later;
        }
        let max = snap::raw::max_compress_len(self.raw.len());
        if self.compressed.len() < max {
            self.compressed.resize(max, 0);
        }
        // Fails only for inputs over ~4 GiB, far beyond any batch.
        let len = self
            .snappy
            .compress(&self.raw, &mut self.compressed)
            .unwrap_or(0);
        Encoded {
            body: self.compressed[..len].to_vec(),
            samples,
            out_of_order,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Kind;
    use crate::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
    use crate::series::{Record, Series};
    use crate::series::{shape, target_labels};
    use prost::Message;

    /// The request as a receiver decodes it, and the counts.
    fn build_request(batch: &[Queued]) -> (WriteRequest, usize, usize) {
        let encoded = encode(batch);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&encoded.body)
            .expect("snappy block");
        let request = WriteRequest::decode(raw.as_slice()).expect("protobuf");
        (request, encoded.samples, encoded.out_of_order)
    }

    #[test]
    fn native_histograms_go_as_histogram_series_in_time_order() {
        use crate::metrics::NativeHistogram;
        use crate::series::HistogramSeries;
        let target = target_labels([("job", "redis"), ("instance", "h:1")]);
        let native = shape(
            "redis_commands_latencies_usec",
            Kind::Histogram,
            "",
            &[("cmd", "get")],
        );
        let record = |ts: i64, histogram: NativeHistogram| Queued {
            seq: 0,
            record: Arc::new(Record {
                timestamp_ms: ts,
                target: target.clone(),
                series: vec![Series {
                    shape: shape("redis_up", Kind::Gauge, "", &[]),
                    value: 1.0,
                }],
                histograms: vec![HistogramSeries {
                    shape: native.clone(),
                    histogram,
                }],
            }),
        };
        let h = NativeHistogram::from_cumulative(5.0, 9.5, &[(1.0, 2.0), (4.0, 5.0)]);
        let batch = [
            record(1000, h.clone()),
            record(2000, NativeHistogram::stale()),
            record(2000, h.clone()),
        ];
        let (request, samples, out_of_order) = build_request(&batch);
        assert_eq!((samples, out_of_order), (4, 2));
        let [up, latency] = &request.timeseries[..] else {
            panic!("two series: {:?}", request.timeseries);
        };
        assert_eq!(up.samples.len(), 2);
        assert!(up.histograms.is_empty() && latency.samples.is_empty());
        let names: Vec<(&str, &str)> = latency
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("__name__", "redis_commands_latencies_usec"),
                ("cmd", "get"),
                ("instance", "h:1"),
                ("job", "redis")
            ]
        );
        let times: Vec<i64> = latency.histograms.iter().map(|h| h.timestamp).collect();
        assert_eq!(times, [1000, 2000]);
        assert_eq!(latency.histograms[0].positive_deltas, [2, 1]);
        assert_eq!(
            latency.histograms[1].sum.to_bits(),
            crate::metrics::STALE_NAN_BITS
        );
    }

    fn record_of(instance: &str, ts: i64, values: &[(&str, f64)]) -> Queued {
        Queued {
            seq: 0,
            record: Arc::new(Record {
                timestamp_ms: ts,
                target: target_labels([("job", "redis"), ("instance", instance)]),
                series: values
                    .iter()
                    .map(|(name, v)| Series {
                        shape: shape(name, Kind::Gauge, "", &[]),
                        value: *v,
                    })
                    .collect(),
                histograms: Vec::new(),
            }),
        }
    }

    fn queued(ts: i64, values: &[(&str, f64)]) -> Queued {
        record_of("h:6379", ts, values)
    }

    /// Each series of a request: `__name__`, `instance` and its samples.
    type Points = Vec<(String, String, Vec<(i64, f64)>)>;

    fn points(request: &WriteRequest) -> Points {
        let value = |ts: &TimeSeries, name: &str| {
            ts.labels
                .iter()
                .find(|l| l.name == name)
                .map(|l| l.value.clone())
                .unwrap_or_default()
        };
        request
            .timeseries
            .iter()
            .map(|ts| {
                (
                    value(ts, "__name__"),
                    value(ts, "instance"),
                    ts.samples.iter().map(|s| (s.timestamp, s.value)).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn samples_group_per_series_in_time_order() {
        let batch = [
            queued(1000, &[("a", 1.0), ("b", 2.0)]),
            queued(2000, &[("a", 3.0)]),
        ];
        let (request, samples, skipped) = build_request(&batch);
        assert_eq!((samples, skipped), (3, 0));
        assert_eq!(
            points(&request),
            [
                ("a".into(), "h:6379".into(), vec![(1000, 1.0), (2000, 3.0)]),
                ("b".into(), "h:6379".into(), vec![(1000, 2.0)]),
            ]
        );
    }

    #[test]
    fn one_shape_on_two_targets_is_two_series() {
        let batch = [
            record_of("h:1", 1000, &[("a", 1.0)]),
            record_of("h:2", 1000, &[("a", 2.0)]),
            record_of("h:1", 2000, &[("a", 3.0)]),
        ];
        let (request, samples, _) = build_request(&batch);
        assert_eq!(samples, 3);
        assert_eq!(
            points(&request),
            [
                ("a".into(), "h:1".into(), vec![(1000, 1.0), (2000, 3.0)]),
                ("a".into(), "h:2".into(), vec![(1000, 2.0)]),
            ]
        );
    }

    #[test]
    fn repeated_timestamps_are_left_out() {
        let batch = [
            queued(1000, &[("a", 1.0), ("a", 2.0)]),
            queued(900, &[("a", 3.0)]),
        ];
        let (request, samples, skipped) = build_request(&batch);
        assert_eq!((samples, skipped), (1, 2));
        assert_eq!(request.timeseries[0].samples[0].value, 1.0);
    }

    #[test]
    fn body_is_snappy_block_of_the_protobuf() {
        let batch = [queued(1000, &[("a", 1.5)])];
        let encoded = encode(&batch);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&encoded.body)
            .expect("snappy block");
        let decoded = WriteRequest::decode(raw.as_slice()).expect("protobuf");
        assert_eq!(decoded.timeseries[0].samples[0].value, 1.5);
        assert_eq!(decoded.timeseries[0].labels[0].value, "a");
    }

    #[test]
    fn bytes_equal_what_prost_writes_for_the_same_request() {
        let target = target_labels([("instance", "h:6379"), ("Zone", "eu")]);
        let commands = shape("redis_commands_total", Kind::Counter, "", &[("cmd", "get")]);
        let x = shape("x", Kind::Gauge, "_sum", &[]);
        let record = |ts: i64, value: f64| Queued {
            seq: 0,
            record: Arc::new(Record {
                timestamp_ms: ts,
                target: target.clone(),
                series: vec![
                    Series {
                        shape: commands.clone(),
                        value,
                    },
                    Series {
                        shape: x.clone(),
                        value: -0.5,
                    },
                ],
                histograms: Vec::new(),
            }),
        };
        // A large timestamp and a negative one exercise the varint widths.
        let batch = [record(-5, 1.0), record(1_700_000_000_123, f64::NAN)];
        let (groups, _, _) = group(&batch);
        let mut ours = Vec::new();
        write_request(&groups, &mut ours);
        let labels = |pairs: &[(&str, &str)]| -> Vec<Label> {
            pairs
                .iter()
                .map(|(n, v)| Label {
                    name: (*n).to_owned(),
                    value: (*v).to_owned(),
                })
                .collect()
        };
        let samples = |first: f64, second: f64| {
            vec![
                Sample {
                    value: first,
                    timestamp: -5,
                },
                Sample {
                    value: second,
                    timestamp: 1_700_000_000_123,
                },
            ]
        };
        let theirs = WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: labels(&[
                        ("Zone", "eu"),
                        ("__name__", "redis_commands_total"),
                        ("cmd", "get"),
                        ("instance", "h:6379"),
                    ]),
                    samples: samples(1.0, f64::NAN),
                    histograms: Vec::new(),
                },
                TimeSeries {
                    labels: labels(&[
                        ("Zone", "eu"),
                        ("__name__", "x_sum"),
                        ("instance", "h:6379"),
                    ]),
                    samples: samples(-0.5, -0.5),
                    histograms: Vec::new(),
                },
            ],
            metadata: Vec::new(),
        }
        .encode_to_vec();
        assert_eq!(ours, theirs);
    }
}
