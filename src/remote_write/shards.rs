//! Parallel requests when one in flight cannot keep up (`max_shards`).
//!
//! One request at a time sends `max_samples_per_send` samples per round
//! trip; over a slow link to a distant receiver that is less than many
//! targets produce. When the backlog holds more than one batch, the
//! sender takes up to `max_shards` batches at once and sends them as that
//! many requests together, each series in exactly one of them, so each
//! series' samples still go in time order: within a request by the
//! encoder's rule, and across requests because the next batches are only
//! taken once every request of these was answered (the queue is
//! acknowledged past all of them at once). While the sender keeps up the
//! backlog is under one batch and one request goes at a time, as before.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use crate::queue::Queued;
use crate::series::{Record, Shape};

/// Requests to send at once for a backlog of `samples`: one per whole
/// batch queued (a sender that keeps up finds a batch and a little more
/// when it sends, and must not split it in two), at least one, at most
/// `max`.
pub(crate) fn shards_for(samples: usize, per_send: usize, max: usize) -> usize {
    (samples / per_send.max(1)).clamp(1, max.max(1))
}

/// `batch` split into `shards` parts by series: a series (its shape and
/// target set) always in the same part; each part's records in the
/// batch's order with their numbers and times, records left empty left
/// out.
pub(crate) fn split(batch: &[Queued], shards: usize) -> Vec<Vec<Queued>> {
    let mut parts: Vec<Vec<Queued>> = vec![Vec::new(); shards];
    let seed = foldhash::fast::FixedState::with_seed(0x5eed);
    for queued in batch {
        let record = &queued.record;
        let shard_of = |shape: &Shape| {
            let mut h = seed.build_hasher();
            h.write_u64(record.target.id());
            h.write_u64(shape.id());
            (h.finish() % shards as u64) as usize
        };
        let mut series: Vec<Vec<_>> = vec![Vec::new(); shards];
        for s in &record.series {
            series[shard_of(&s.shape)].push(s.clone());
        }
        let mut histograms: Vec<Vec<_>> = vec![Vec::new(); shards];
        for h in &record.histograms {
            histograms[shard_of(&h.shape)].push(h.clone());
        }
        for ((part, series), histograms) in parts.iter_mut().zip(series).zip(histograms) {
            if !series.is_empty() || !histograms.is_empty() {
                part.push(Queued {
                    seq: queued.seq,
                    record: Arc::new(Record {
                        timestamp_ms: record.timestamp_ms,
                        target: record.target.clone(),
                        series,
                        histograms,
                    }),
                });
            }
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;
    use crate::metrics::Kind;
    use crate::series::{Series, shape, target_labels};

    #[test]
    fn one_request_while_keeping_up_more_with_a_backlog() {
        assert_eq!(shards_for(0, 5000, 10), 1);
        assert_eq!(shards_for(4999, 5000, 10), 1);
        assert_eq!(
            shards_for(9999, 5000, 10),
            1,
            "a batch and a bit: one request"
        );
        assert_eq!(shards_for(10_000, 5000, 10), 2);
        assert_eq!(shards_for(1_000_000, 5000, 10), 10);
        assert_eq!(shards_for(1_000_000, 5000, 1), 1);
    }

    proptest! {
        /// Every sample is in exactly one part; a series' samples all in
        /// one part, in the batch's order.
        #[test]
        fn parts_hold_each_series_whole_and_in_order(
            records in prop::collection::vec((0usize..3, prop::collection::vec(0usize..6, 0..6)), 1..12),
            shards in 1usize..5,
        ) {
            let targets: Vec<_> = (0..3).map(|t| target_labels([("instance", format!("shards-test:{t}").as_str())])).collect();
            let batch: Vec<Queued> = records
                .iter()
                .enumerate()
                .map(|(i, (t, names))| {
                    let mut seen = BTreeSet::new();
                    let series = names
                        .iter()
                        .filter(|n| seen.insert(**n))
                        .map(|n| Series {
                            shape: shape(&format!("shards_test_{n}"), Kind::Gauge, "", &[]),
                            value: i as f64,
                        })
                        .collect();
                    Queued {
                        seq: i as u64,
                        record: Arc::new(Record { timestamp_ms: i as i64, target: targets[*t].clone(), series, histograms: Vec::new() }),
                    }
                })
                .collect();
            let parts = split(&batch, shards);
            prop_assert_eq!(parts.len(), shards);
            // (target, shape) → (part, [seq...]) as the parts hold them.
            let mut placed: BTreeMap<(u64, u64), (usize, Vec<u64>)> = BTreeMap::new();
            for (p, part) in parts.iter().enumerate() {
                for q in part {
                    prop_assert!(!q.record.series.is_empty());
                    prop_assert_eq!(q.record.timestamp_ms, q.seq as i64);
                    for s in &q.record.series {
                        let entry = placed.entry((q.record.target.id(), s.shape.id())).or_insert((p, Vec::new()));
                        prop_assert_eq!(entry.0, p, "a series in two parts");
                        entry.1.push(q.seq);
                    }
                }
            }
            let mut want: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
            for q in &batch {
                for s in &q.record.series {
                    want.entry((q.record.target.id(), s.shape.id())).or_default().push(q.seq);
                }
            }
            let got: BTreeMap<(u64, u64), Vec<u64>> = placed.into_iter().map(|(k, (_, seqs))| (k, seqs)).collect();
            prop_assert_eq!(got, want);
        }
    }
}
