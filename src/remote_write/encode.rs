//! Pure encoding: families → resolved series → `WriteRequest` → snappy.
//!
//! The rules the receiver enforces live here: labels sorted byte-wise by
//! name with no duplicates and no empty values, and per series strictly
//! increasing timestamps within a request (across requests the sender keeps
//! them increasing by sending the queue in order, one request at a time).

use std::collections::HashMap;

use prost::Message;

use super::proto::{Label, Sample, TimeSeries, WriteRequest};
use crate::metrics::Families;
use crate::queue::{Queued, Series};

/// Flattens families into series with complete label sets. `base` holds the
/// labels every series of this target carries (`job`, `instance`, external
/// labels); a label the series already has wins over a base label, as
/// Prometheus lets a series' own labels win over external labels.
pub fn flatten(families: &Families, base: &[(String, String)], out: &mut Vec<Series>) {
    for family in families {
        for point in &family.points {
            let mut labels: Vec<(String, String)> =
                Vec::with_capacity(1 + point.labels.len() + base.len());
            labels.push((
                "__name__".to_owned(),
                format!("{}{}", family.name, point.suffix),
            ));
            for (name, value) in &point.labels {
                labels.push(((*name).to_owned(), value.clone()));
            }
            for (name, value) in base {
                if !labels.iter().any(|(n, _)| n == name) {
                    labels.push((name.clone(), value.clone()));
                }
            }
            labels.retain(|(_, value)| !value.is_empty());
            // Byte-wise, as Prometheus sorts: upper case before `__name__`.
            labels.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            labels.dedup_by(|a, b| a.0 == b.0);
            out.push(Series {
                labels,
                value: point.value,
            });
        }
    }
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

/// Groups the records' samples by series (several samples per series when
/// the batch spans several readings) and encodes the request.
pub fn build_request(batch: &[Queued]) -> (WriteRequest, usize, usize) {
    let mut index: HashMap<&[(String, String)], usize> = HashMap::new();
    let mut timeseries: Vec<TimeSeries> = Vec::new();
    let (mut samples, mut out_of_order) = (0, 0);
    for queued in batch {
        let timestamp = queued.record.timestamp_ms;
        for series in &queued.record.series {
            let i = *index.entry(series.labels.as_slice()).or_insert_with(|| {
                timeseries.push(TimeSeries {
                    labels: series
                        .labels
                        .iter()
                        .map(|(name, value)| Label {
                            name: name.clone(),
                            value: value.clone(),
                        })
                        .collect(),
                    samples: Vec::new(),
                });
                timeseries.len() - 1
            });
            let ts = &mut timeseries[i];
            if ts
                .samples
                .last()
                .is_some_and(|last| last.timestamp >= timestamp)
            {
                out_of_order += 1;
                continue;
            }
            ts.samples.push(Sample {
                value: series.value,
                timestamp,
            });
            samples += 1;
        }
    }
    (
        WriteRequest {
            timeseries,
            metadata: Vec::new(),
        },
        samples,
        out_of_order,
    )
}

pub fn encode(batch: &[Queued]) -> Encoded {
    let (request, samples, out_of_order) = build_request(batch);
    let raw = request.encode_to_vec();
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
    use std::sync::Arc;

    fn base() -> Vec<(String, String)> {
        vec![
            ("job".into(), "redis".into()),
            ("instance".into(), "h:6379".into()),
            ("Zone".into(), "eu".into()),
            ("empty".into(), String::new()),
        ]
    }

    #[test]
    fn labels_sorted_bytewise_without_empty_values() {
        let mut families = Families::new();
        families.push(
            "redis_commands_total",
            Kind::Counter,
            "",
            vec![("cmd", "get".into())],
            3.0,
        );
        let mut series = Vec::new();
        flatten(&families, &base(), &mut series);
        let names: Vec<&str> = series[0].labels.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Zone", "__name__", "cmd", "instance", "job"]);
        assert_eq!(series[0].labels[1].1, "redis_commands_total");
    }

    #[test]
    fn own_labels_win_over_base_labels() {
        let mut families = Families::new();
        families.push("x", Kind::Gauge, "_sum", vec![("job", "mine".into())], 1.0);
        let mut series = Vec::new();
        flatten(&families, &base(), &mut series);
        let job: Vec<&str> = series[0]
            .labels
            .iter()
            .filter(|(n, _)| n == "job")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(job, ["mine"]);
        assert_eq!(
            series[0]
                .labels
                .iter()
                .find(|(n, _)| n == "__name__")
                .map(|(_, v)| v.as_str()),
            Some("x_sum")
        );
    }

    fn queued(seq: u64, ts: i64, values: &[(&str, f64)]) -> Queued {
        Queued {
            seq,
            record: Arc::new(Record {
                timestamp_ms: ts,
                series: values
                    .iter()
                    .map(|(name, v)| Series {
                        labels: vec![("__name__".into(), (*name).into())],
                        value: *v,
                    })
                    .collect(),
            }),
        }
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
}
