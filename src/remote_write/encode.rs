//! Pure encoding: families → resolved series → `WriteRequest` → snappy.
//!
//! The rules the receiver enforces live here: labels sorted byte-wise by
//! name with no duplicates and no empty values, and per series strictly
//! increasing timestamps within a request (across requests the sender keeps
//! them increasing by sending the queue in order, one request at a time).
//!
//! This is the hot path of every reading, so it avoids the obvious
//! allocations: a series' label set is built once and then shared through
//! the target's [`LabelCache`], and a batch is written straight into one
//! protobuf buffer instead of being copied into the generated message types
//! first.

use std::hash::BuildHasher;
use std::sync::Arc;

// foldhash instead of std's SipHash: these maps are keyed by our own label
// sets, not by input an attacker chooses freely, and SipHash was the largest
// single cost of a reading in profiles with many targets.
use foldhash::HashMap;

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use crate::intern::intern;
use crate::metrics::{Families, Point};
use crate::queue::{Label, LabelSet, Queued, Series};

/// The label sets of one target's series, kept from one reading to the
/// next: the labels of a series that was there before cost a hash and a
/// comparison, not a dozen `String`s. Sets not used for a while (a command
/// never seen again, a replica gone) are forgotten.
#[derive(Debug, Default)]
pub struct LabelCache {
    sets: HashMap<u64, Cached>,
    hasher: foldhash::fast::RandomState,
    /// Readings flattened so far.
    generation: u64,
    /// The key of each series of the last reading, in order: the stale
    /// tracker identifies series by it instead of hashing every set again.
    keys: Vec<u64>,
}

#[derive(Debug)]
struct Cached {
    labels: LabelSet,
    used: u64,
}

/// A set unused for this many readings is dropped. Large enough that the
/// detail series, read once per `detail_interval`, stay cached in between.
const KEEP_GENERATIONS: u64 = 64;

impl LabelCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// One key per series of the last [`flatten`], in its order. Within one
    /// cache (one target, one `base`) equal keys mean equal label sets, up
    /// to a 64-bit hash collision.
    pub fn keys(&self) -> &[u64] {
        &self.keys
    }

    /// The label set of `point` of family `name`, from the cache or built.
    fn get(&mut self, name: &str, point: &Point, base: &[(String, String)]) -> LabelSet {
        let key = self.hasher.hash_one((name, &point.suffix, &point.labels));
        self.keys.push(key);
        let generation = self.generation;
        if let Some(cached) = self.sets.get_mut(&key)
            && matches(&cached.labels, name, point, base)
        {
            cached.used = generation;
            return cached.labels.clone();
        }
        let labels = build(name, point, base);
        // On a hash collision (a different set under the same key) the
        // newer set takes the slot; both stay correct, one is rebuilt.
        self.sets.insert(
            key,
            Cached {
                labels: labels.clone(),
                used: generation,
            },
        );
        labels
    }

    /// Ends a reading: every `KEEP_GENERATIONS` readings, drops what was
    /// not used during the last ones.
    fn end_reading(&mut self) {
        self.generation += 1;
        if self.generation.is_multiple_of(KEEP_GENERATIONS) {
            let oldest = self.generation - KEEP_GENERATIONS;
            self.sets.retain(|_, cached| cached.used >= oldest);
        }
    }
}

/// The complete, sorted label set of one point.
fn build(name: &str, point: &Point, base: &[(String, String)]) -> LabelSet {
    let mut labels: Vec<Label> = Vec::with_capacity(1 + point.labels.len() + base.len());
    let mut metric = String::with_capacity(name.len() + point.suffix.len());
    metric.push_str(name);
    metric.push_str(point.suffix);
    labels.push((intern("__name__"), intern(&metric)));
    // Empty values are left out before interning (a label with an empty
    // value is no label), but still hide a base label of the same name.
    let mut hidden: Vec<&str> = Vec::new();
    for (label, value) in &point.labels {
        if value.is_empty() {
            hidden.push(label);
        } else {
            labels.push((intern(label), intern(value)));
        }
    }
    for (label, value) in base {
        if !value.is_empty()
            && !hidden.contains(&label.as_str())
            && !labels.iter().any(|(n, _)| **n == **label)
        {
            labels.push((intern(label), intern(value)));
        }
    }
    // Byte-wise, as Prometheus sorts: upper case before `__name__`. Stable,
    // so that of a label given twice the first is the one kept.
    labels.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    labels.dedup_by(|a, b| a.0 == b.0);
    labels.into()
}

/// Whether `set` is what `build` would make of these inputs, checked
/// without building it: same `__name__`, each own label, each base label
/// the point does not override, and nothing else.
fn matches(set: &[Label], name: &str, point: &Point, base: &[(String, String)]) -> bool {
    let value_of = |label: &str| set.iter().find(|(n, _)| &**n == label).map(|(_, v)| &**v);
    let Some(metric) = value_of("__name__") else {
        return false;
    };
    if metric.len() != name.len() + point.suffix.len()
        || !metric.starts_with(name)
        || !metric.ends_with(point.suffix)
    {
        return false;
    }
    let mut expected = 1;
    for (i, (label, value)) in point.labels.iter().enumerate() {
        // The first occurrence of a label wins, as in `build`.
        if point.labels[..i].iter().any(|(l, _)| l == label) {
            continue;
        }
        if value.is_empty() {
            if value_of(label).is_some() {
                return false;
            }
            continue;
        }
        if value_of(label) != Some(value.as_str()) {
            return false;
        }
        expected += 1;
    }
    for (label, value) in base {
        if point.labels.iter().any(|(l, _)| l == label) || value.is_empty() {
            continue;
        }
        if value_of(label) != Some(value.as_str()) {
            return false;
        }
        expected += 1;
    }
    set.len() == expected
}

/// Flattens families into series with complete label sets. `base` holds the
/// labels every series of this target carries (`job`, `instance`, external
/// labels); a label the series already has wins over a base label, as
/// Prometheus lets a series' own labels win over external labels. `cache`
/// belongs to the target (its `base` never changes).
pub fn flatten(
    families: &Families,
    base: &[(String, String)],
    cache: &mut LabelCache,
    out: &mut Vec<Series>,
) {
    cache.keys.clear();
    for family in families {
        for point in &family.points {
            out.push(Series {
                labels: cache.get(&family.name, point, base),
                value: point.value,
            });
        }
    }
    cache.end_reading();
}

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
    labels: &'a [Label],
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
/// A series is recognised by its shared label set (the `Arc`), not by the
/// set's contents: hashing every label string of every sample was the
/// largest cost of a request in profiles with many targets. Sets are shared
/// by the target's `LabelCache` while live and by the queue's decoder when
/// read back from disk; two equal sets that happen not to be shared go out
/// as two `TimeSeries` of one request, in time order, which a receiver
/// takes the same way.
fn group(batch: &[Queued]) -> (Vec<Grouped<'_>>, usize, usize) {
    // The address of the set identifies it while the batch holds it.
    let mut index: HashMap<*const Label, usize> = HashMap::default();
    index.reserve(batch.first().map_or(0, |q| q.record.series.len()));
    let mut groups: Vec<Grouped<'_>> = Vec::new();
    let (mut samples, mut out_of_order) = (0, 0);
    for queued in batch {
        let timestamp = queued.record.timestamp_ms;
        for series in &queued.record.series {
            let key = Arc::as_ptr(&series.labels) as *const Label;
            samples += 1;
            let Some(&i) = index.get(&key) else {
                index.insert(key, groups.len());
                groups.push(Grouped {
                    labels: &series.labels,
                    first: (series.value, timestamp),
                    rest: Vec::new(),
                });
                continue;
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

// Field numbers of proto/remote_write.proto.
const WRITE_REQUEST_TIMESERIES: u32 = 1;
const TIMESERIES_LABELS: u32 = 1;
const TIMESERIES_SAMPLES: u32 = 2;
const LABEL_NAME: u32 = 1;
const LABEL_VALUE: u32 = 2;
const SAMPLE_VALUE: u32 = 1;
const SAMPLE_TIMESTAMP: u32 = 2;

fn string_field_len(s: &str) -> usize {
    1 + encoded_len_varint(s.len() as u64) + s.len()
}

fn label_len(name: &str, value: &str) -> usize {
    string_field_len(name) + string_field_len(value)
}

fn sample_len(timestamp: i64) -> usize {
    // The double (tag + 8 bytes), then the timestamp (tag + varint).
    9 + 1 + encoded_len_varint(timestamp as u64)
}

fn message_field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn timeseries_len(group: &Grouped<'_>) -> usize {
    let labels: usize = group
        .labels
        .iter()
        .map(|(n, v)| message_field_len(label_len(n, v)))
        .sum();
    let samples: usize = group
        .samples()
        .map(|&(_, t)| message_field_len(sample_len(t)))
        .sum();
    labels + samples
}

fn put_string(field: u32, s: &str, out: &mut Vec<u8>) {
    encode_key(field, WireType::LengthDelimited, out);
    encode_varint(s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

/// Writes the `WriteRequest` of `groups` (no metadata), the same bytes
/// prost's generated `encode` would write.
fn write_request(groups: &[Grouped<'_>], out: &mut Vec<u8>) {
    // Each length once: it both sizes the buffer and prefixes the message.
    let lens: Vec<usize> = groups.iter().map(timeseries_len).collect();
    out.reserve(lens.iter().map(|&len| message_field_len(len)).sum());
    for (group, &len) in groups.iter().zip(&lens) {
        encode_key(WRITE_REQUEST_TIMESERIES, WireType::LengthDelimited, out);
        encode_varint(len as u64, out);
        for (name, value) in group.labels {
            encode_key(TIMESERIES_LABELS, WireType::LengthDelimited, out);
            encode_varint(label_len(name, value) as u64, out);
            put_string(LABEL_NAME, name, out);
            put_string(LABEL_VALUE, value, out);
        }
        for &(value, timestamp) in group.samples() {
            encode_key(TIMESERIES_SAMPLES, WireType::LengthDelimited, out);
            encode_varint(sample_len(timestamp) as u64, out);
            encode_key(SAMPLE_VALUE, WireType::SixtyFourBit, out);
            out.extend_from_slice(&value.to_le_bytes());
            encode_key(SAMPLE_TIMESTAMP, WireType::Varint, out);
            encode_varint(timestamp as u64, out);
        }
    }
}

/// Encodes a batch as one snappy-compressed `WriteRequest`.
pub fn encode(batch: &[Queued]) -> Encoded {
    let (groups, samples, out_of_order) = group(batch);
    let mut raw = Vec::new();
    write_request(&groups, &mut raw);
    // `compress_vec` only fails for inputs over ~4 GiB, far beyond any batch.
    let body = snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default();
    Encoded {
        body,
        samples,
        out_of_order,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Kind;
    use crate::queue::Record;
    use crate::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
    use prost::Message;
    use std::sync::Arc;

    /// The request as a receiver decodes it, and the counts.
    fn build_request(batch: &[Queued]) -> (WriteRequest, usize, usize) {
        let encoded = encode(batch);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&encoded.body)
            .expect("snappy block");
        let request = WriteRequest::decode(raw.as_slice()).expect("protobuf");
        (request, encoded.samples, encoded.out_of_order)
    }

    fn base() -> Vec<(String, String)> {
        vec![
            ("job".into(), "redis".into()),
            ("instance".into(), "h:6379".into()),
            ("Zone".into(), "eu".into()),
            ("empty".into(), String::new()),
        ]
    }

    /// One labelled series: `redis_commands_total{cmd="get"} 3`.
    fn get_calls() -> Families {
        let mut families = Families::new();
        families.push(
            "redis_commands_total",
            Kind::Counter,
            "",
            vec![("cmd", "get".into())],
            3.0,
        );
        families
    }

    #[test]
    fn labels_sorted_bytewise_without_empty_values() {
        let families = get_calls();
        let mut series = Vec::new();
        flatten(&families, &base(), &mut LabelCache::new(), &mut series);
        let names: Vec<&str> = series[0].labels.iter().map(|(n, _)| &**n).collect();
        assert_eq!(names, ["Zone", "__name__", "cmd", "instance", "job"]);
        assert_eq!(&*series[0].labels[1].1, "redis_commands_total");
    }

    #[test]
    fn an_empty_own_label_removes_the_base_label_of_its_name() {
        let mut families = Families::new();
        families.push("x", Kind::Gauge, "", vec![("Zone", String::new())], 1.0);
        let mut series = Vec::new();
        let mut cache = LabelCache::new();
        flatten(&families, &base(), &mut cache, &mut series);
        flatten(&families, &base(), &mut cache, &mut series);
        for s in &series {
            let names: Vec<&str> = s.labels.iter().map(|(n, _)| &**n).collect();
            assert_eq!(names, ["__name__", "instance", "job"]);
        }
        // The second reading found the set in the cache.
        assert!(Arc::ptr_eq(&series[0].labels, &series[1].labels));
    }

    #[test]
    fn targets_share_one_copy_of_each_label_string() {
        let families = get_calls();
        let other = vec![
            ("job".to_owned(), "redis".to_owned()),
            ("instance".to_owned(), "h:6380".to_owned()),
        ];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        flatten(&families, &base(), &mut LabelCache::new(), &mut a);
        flatten(&families, &other, &mut LabelCache::new(), &mut b);
        let value = |s: &[Series], name: &str| {
            s[0].labels
                .iter()
                .find(|(n, _)| &**n == name)
                .map(|(_, v)| v.clone())
                .expect(name)
        };
        for name in ["__name__", "cmd", "job"] {
            assert!(Arc::ptr_eq(&value(&a, name), &value(&b, name)), "{name}");
        }
        assert_eq!(&*value(&b, "instance"), "h:6380");
    }

    #[test]
    fn own_labels_win_over_base_labels() {
        let mut families = Families::new();
        families.push("x", Kind::Gauge, "_sum", vec![("job", "mine".into())], 1.0);
        let mut series = Vec::new();
        flatten(&families, &base(), &mut LabelCache::new(), &mut series);
        let job: Vec<&str> = series[0]
            .labels
            .iter()
            .filter(|(n, _)| &**n == "job")
            .map(|(_, v)| &**v)
            .collect();
        assert_eq!(job, ["mine"]);
        assert_eq!(
            series[0]
                .labels
                .iter()
                .find(|(n, _)| &**n == "__name__")
                .map(|(_, v)| &**v),
            Some("x_sum")
        );
    }

    /// The shared label set of series `name`, as a target's label cache
    /// hands it out: the same `Arc` every time.
    fn shared(name: &str) -> LabelSet {
        thread_local! {
            static SETS: std::cell::RefCell<HashMap<String, LabelSet>> = Default::default();
        }
        SETS.with_borrow_mut(|sets| {
            sets.entry(name.to_owned())
                .or_insert_with(|| vec![("__name__".into(), name.into())].into())
                .clone()
        })
    }

    fn queued(seq: u64, ts: i64, values: &[(&str, f64)]) -> Queued {
        Queued {
            seq,
            record: Arc::new(Record {
                timestamp_ms: ts,
                series: values
                    .iter()
                    .map(|(name, v)| Series {
                        labels: shared(name),
                        value: *v,
                    })
                    .collect(),
            }),
        }
    }

    #[test]
    fn equal_sets_not_shared_go_out_as_two_series_in_time_order() {
        let unshared = |ts: i64, value: f64| Queued {
            seq: 0,
            record: Arc::new(Record {
                timestamp_ms: ts,
                series: vec![Series {
                    labels: vec![("__name__".into(), "a".into())].into(),
                    value,
                }],
            }),
        };
        let (request, samples, skipped) =
            build_request(&[unshared(1000, 1.0), unshared(2000, 2.0)]);
        assert_eq!((samples, skipped), (2, 0));
        let points: Vec<(&str, i64, f64)> = request
            .timeseries
            .iter()
            .flat_map(|ts| {
                ts.samples
                    .iter()
                    .map(|s| (ts.labels[0].value.as_str(), s.timestamp, s.value))
            })
            .collect();
        assert_eq!(points, [("a", 1000, 1.0), ("a", 2000, 2.0)]);
    }

    #[test]
    fn samples_group_per_series_in_time_order() {
        let batch = [
            queued(0, 1000, &[("a", 1.0), ("b", 2.0)]),
            queued(1, 2000, &[("a", 3.0)]),
        ];
        let (request, samples, skipped) = build_request(&batch);
        assert_eq!((samples, skipped), (3, 0));
        assert_eq!(request.timeseries.len(), 2);
        let a = &request.timeseries[0];
        assert_eq!(
            a.samples
                .iter()
                .map(|s| (s.timestamp, s.value))
                .collect::<Vec<_>>(),
            vec![(1000, 1.0), (2000, 3.0)]
        );
    }

    #[test]
    fn repeated_timestamps_are_left_out() {
        let batch = [
            queued(0, 1000, &[("a", 1.0), ("a", 2.0)]),
            queued(1, 900, &[("a", 3.0)]),
        ];
        let (request, samples, skipped) = build_request(&batch);
        assert_eq!((samples, skipped), (1, 2));
        assert_eq!(request.timeseries[0].samples[0].value, 1.0);
    }

    #[test]
    fn body_is_snappy_block_of_the_protobuf() {
        let batch = [queued(0, 1000, &[("a", 1.5)])];
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
        let labels: LabelSet = vec![
            ("__name__".into(), "redis_commands_total".into()),
            ("cmd".into(), "get".into()),
            ("instance".into(), "h:6379".into()),
        ]
        .into();
        let record = |ts: i64, value: f64| Queued {
            seq: 0,
            record: Arc::new(Record {
                timestamp_ms: ts,
                series: vec![
                    Series {
                        labels: labels.clone(),
                        value,
                    },
                    Series {
                        labels: shared("x"),
                        value: -0.5,
                    },
                ],
            }),
        };
        // A large timestamp and a negative one exercise the varint widths.
        let batch = [record(-5, 1.0), record(1_700_000_000_123, f64::NAN)];
        let (groups, _, _) = group(&batch);
        let mut ours = Vec::new();
        write_request(&groups, &mut ours);
        let theirs = WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: labels
                        .iter()
                        .map(|(n, v)| Label {
                            name: n.to_string(),
                            value: v.to_string(),
                        })
                        .collect(),
                    samples: vec![
                        Sample {
                            value: 1.0,
                            timestamp: -5,
                        },
                        Sample {
                            value: f64::NAN,
                            timestamp: 1_700_000_000_123,
                        },
                    ],
                },
                TimeSeries {
                    labels: vec![Label {
                        name: "__name__".into(),
                        value: "x".into(),
                    }],
                    samples: vec![
                        Sample {
                            value: -0.5,
                            timestamp: -5,
                        },
                        Sample {
                            value: -0.5,
                            timestamp: 1_700_000_000_123,
                        },
                    ],
                },
            ],
            metadata: Vec::new(),
        }
        .encode_to_vec();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn a_series_seen_before_reuses_its_label_set() {
        let reading = |value: &str| {
            let mut families = Families::new();
            families.push(
                "redis_commands_total",
                Kind::Counter,
                "",
                vec![("cmd", value.into())],
                1.0,
            );
            families.plain("redis_up", Kind::Gauge, 1.0);
            families
        };
        let mut cache = LabelCache::new();
        let (mut first, mut second) = (Vec::new(), Vec::new());
        flatten(&reading("get"), &base(), &mut cache, &mut first);
        let first_keys = cache.keys().to_vec();
        flatten(&reading("set"), &base(), &mut cache, &mut second);
        // One key per series; equal for the equal set, not for the changed one.
        assert_eq!(cache.keys().len(), second.len());
        assert_eq!(first_keys[1], cache.keys()[1]);
        assert_ne!(first_keys[0], cache.keys()[0]);
        // redis_up is the same set, shared; the changed label made a new one.
        assert!(Arc::ptr_eq(&first[1].labels, &second[1].labels));
        assert!(!Arc::ptr_eq(&first[0].labels, &second[0].labels));
        assert_eq!(second[0].labels[2], ("cmd".into(), "set".into()));
        assert_eq!(cache.len(), 3);
        // Sets unused for KEEP_GENERATIONS readings are forgotten.
        for _ in 0..KEEP_GENERATIONS * 2 {
            flatten(&reading("set"), &base(), &mut cache, &mut Vec::new());
        }
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_cached_set_is_checked_against_the_point() {
        let point = |labels: Vec<(&'static str, String)>| Point {
            suffix: "_sum",
            labels,
            value: 0.0,
        };
        let p = point(vec![("cmd", "get".into()), ("empty", String::new())]);
        let base = base();
        let set = build("lat", &p, &base);
        assert!(matches(&set, "lat", &p, &base));
        assert!(!matches(&set, "la", &p, &base));
        assert!(!matches(
            &set,
            "lat",
            &point(vec![("cmd", "set".into())]),
            &base
        ));
        assert!(!matches(&set, "lat", &point(vec![]), &base));
        let other_base = vec![("job".to_owned(), "other".to_owned())];
        assert!(!matches(&set, "lat", &p, &other_base));
        // An own label overriding a base one.
        let own = point(vec![("job", "mine".into())]);
        assert!(matches(&build("lat", &own, &base), "lat", &own, &base));
    }
}
