//! A command's `LATENCY HISTOGRAM` as a Prometheus native histogram, pure.
//!
//! Redis keeps each command's latencies in nanoseconds in an HdrHistogram
//! (two significant digits) and replies, per power-of-two level k, the
//! number of calls at or below `K_k` µs, where `K_k` is the level's highest
//! equivalent value in whole µs: `floor((2^(10+k) + 2^(3+k) − 1) / 1000)`,
//! so 1, 2, 4, 8, 16, 33, 66, 132, … Levels whose count did not grow are
//! left out of the reply.
//!
//! A native histogram of schema 0 has bucket i = (2^(i−1), 2^i], upper
//! bound included. Redis' level k becomes bucket k: every count is exact
//! (each call is in exactly the bucket of its level), the bounds are Redis'
//! for k ≤ 4 and 3.1–3.2% below Redis' above 16 µs, which no schema can
//! match (Redis' bounds are not powers of any base). The zero bucket is
//! empty and has threshold 0.
//!
//! Invariants of a [`NativeHistogram`]: `spans` cover exactly the buckets
//! with a count above zero, in ascending order, one delta each; the counts
//! they encode are never negative; `count` is at least their sum.

use super::STALE_NAN_BITS;

/// A run of consecutive buckets: `offset` is the first one's index for the
/// first span, else the number of empty buckets since the span before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// An integer native histogram of schema 0 and zero threshold 0, as remote
/// write and the protobuf exposition carry it.
#[derive(Clone, Debug, PartialEq)]
pub struct NativeHistogram {
    pub count: u64,
    /// µs; Prometheus' stale NaN for the marker that ends the series.
    pub sum: f64,
    pub spans: Vec<Span>,
    /// Each bucket's count minus the bucket's before (the first: minus 0),
    /// over all spans in order.
    pub deltas: Vec<i64>,
}

/// The highest Redis level a reply can name: 2^62 ns is 146 years.
const LEVELS: u32 = 52;

/// Redis' key of level `k`: the largest whole µs counted in it.
pub(crate) fn redis_key(k: u32) -> u64 {
    ((1u64 << (10 + k)) + (1u64 << (3 + k)) - 1) / 1000
}

/// The schema-0 bucket of a Redis key: the level whose key it is, or for a
/// key no level has (not a server's reply), the first level above it.
fn bucket_of(key: f64) -> i32 {
    (0..LEVELS)
        .find(|&k| redis_key(k) as f64 >= key)
        .unwrap_or(LEVELS) as i32
}

impl NativeHistogram {
    /// From a reply: `calls` and `sum` (µs) of the command and its levels
    /// as `(key µs, calls at or below it)`, keys ascending. A count that
    /// shrinks (not a server's reply) adds nothing to its bucket.
    pub fn from_cumulative(calls: f64, sum: f64, levels: &[(f64, f64)]) -> NativeHistogram {
        let mut h = NativeHistogram {
            count: 0,
            sum,
            spans: Vec::new(),
            deltas: Vec::new(),
        };
        let (mut below, mut last_count, mut next) = (0u64, 0u64, None::<i32>);
        for &(key, cumulative) in levels {
            let cumulative = as_count(cumulative);
            let Some(count) = cumulative.checked_sub(below).filter(|&c| c > 0) else {
                continue;
            };
            below = cumulative;
            let bucket = bucket_of(key).max(next.unwrap_or(i32::MIN));
            match (next, h.spans.last_mut()) {
                (Some(n), Some(span)) if bucket == n => span.length += 1,
                (Some(n), _) => h.spans.push(Span {
                    offset: bucket - n,
                    length: 1,
                }),
                (None, _) => h.spans.push(Span {
                    offset: bucket,
                    length: 1,
                }),
            }
            h.deltas.push(count as i64 - last_count as i64);
            last_count = count;
            next = Some(bucket + 1);
        }
        h.count = as_count(calls).max(below);
        h
    }

    /// The marker that ends a native histogram series: the stale NaN as its
    /// sum, no buckets (as Prometheus writes it).
    pub fn stale() -> NativeHistogram {
        NativeHistogram {
            count: 0,
            sum: f64::from_bits(STALE_NAN_BITS),
            spans: Vec::new(),
            deltas: Vec::new(),
        }
    }

    pub fn is_stale(&self) -> bool {
        self.sum.to_bits() == STALE_NAN_BITS
    }

    /// `(bucket index, count)` of every bucket with a count, ascending: the
    /// plain decoding the tests check spans and deltas by.
    #[cfg(test)]
    pub fn buckets(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        let mut index = 0i32;
        let mut count = 0i64;
        let mut deltas = self.deltas.iter();
        self.spans.iter().enumerate().flat_map(move |(i, span)| {
            index = if i == 0 {
                span.offset
            } else {
                index + span.offset
            };
            let start = index;
            index += span.length as i32;
            let counts: Vec<(i32, u64)> = (0..span.length as i32)
                .map(|j| {
                    count += deltas.next().copied().unwrap_or(0);
                    (start + j, count.max(0) as u64)
                })
                .collect();
            counts
        })
    }
}

/// A reply's count as an integer: negative, NaN, fractional or huge input
/// (not a server's reply) rounds into 0..=2^53, where deltas cannot overflow.
fn as_count(value: f64) -> u64 {
    const MAX: f64 = (1u64 << 53) as f64;
    if value > 0.0 {
        value.min(MAX) as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn keys_are_the_ones_redis_replies() {
        // Read off redis-server 7.0 (`DEBUG SLEEP` from 10 µs to 50 ms).
        let seen = [
            1, 2, 4, 8, 16, 33, 66, 132, 264, 528, 1056, 2113, 4227, 8454, 16908, 33816, 67633,
        ];
        let keys: Vec<u64> = (0..seen.len() as u32).map(redis_key).collect();
        assert_eq!(keys, seen);
        for (k, key) in seen.iter().enumerate() {
            assert_eq!(bucket_of(*key as f64), k as i32);
        }
    }

    #[test]
    fn redis_documented_reply_becomes_spans_and_deltas() {
        // The `set` entry of LATENCY HISTOGRAM's documentation.
        let levels = [
            (1.0, 100_000.0),
            (2.0, 100_001.0),
            (4.0, 100_004.0),
            (8.0, 100_010.0),
            (33.0, 100_011.0),
        ];
        let h = NativeHistogram::from_cumulative(100_011.0, 150_000.0, &levels);
        assert_eq!(h.count, 100_011);
        assert_eq!(
            h.spans,
            [
                Span {
                    offset: 0,
                    length: 4
                },
                Span {
                    offset: 1,
                    length: 1
                }
            ]
        );
        assert_eq!(h.deltas, [100_000, -99_999, 2, 3, -5]);
        let buckets: Vec<_> = h.buckets().collect();
        assert_eq!(buckets, [(0, 100_000), (1, 1), (2, 3), (3, 6), (5, 1)]);
    }

    #[test]
    fn the_stale_marker_is_told_apart() {
        assert!(NativeHistogram::stale().is_stale());
        assert!(!NativeHistogram::from_cumulative(1.0, f64::NAN, &[(1.0, 1.0)]).is_stale());
    }

    /// The buckets a reply means, by the plain rule: each level's key to its
    /// level by the formula, its count the growth of the cumulative count.
    fn reference(levels: &[(u32, u64)]) -> Vec<(i32, u64)> {
        let mut below = 0;
        let mut out = Vec::new();
        for &(k, cumulative) in levels {
            if cumulative > below {
                out.push((k as i32, cumulative - below));
                below = cumulative;
            }
        }
        out
    }

    fn replies() -> impl Strategy<Value = Vec<(u32, u64)>> {
        prop::collection::btree_map(0u32..40, 0u64..1_000_000, 0..20).prop_map(|levels| {
            let mut total = 0;
            levels
                .into_iter()
                .map(|(k, n)| {
                    total += n;
                    (k, total)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn buckets_are_the_replys_counts_level_for_level(levels in replies(), extra in 0u64..3) {
            let reply: Vec<(f64, f64)> = levels
                .iter()
                .map(|&(k, c)| (redis_key(k) as f64, c as f64))
                .collect();
            let total = levels.last().map_or(0, |l| l.1);
            let h = NativeHistogram::from_cumulative((total + extra) as f64, 1.0, &reply);
            let buckets: Vec<_> = h.buckets().collect();
            prop_assert_eq!(&buckets, &reference(&levels));
            prop_assert_eq!(h.count, total + extra);
            prop_assert_eq!(h.deltas.len() as u32, h.spans.iter().map(|s| s.length).sum::<u32>());
            prop_assert!(h.spans.iter().skip(1).all(|s| s.offset > 0), "{:?}", h.spans);
        }

        #[test]
        fn any_reply_gives_a_valid_histogram(
            reply in prop::collection::vec((any::<f64>(), any::<f64>()), 0..12),
            calls in any::<f64>(),
        ) {
            let h = NativeHistogram::from_cumulative(calls, 0.0, &reply);
            let buckets: Vec<_> = h.buckets().collect();
            prop_assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0), "{:?}", buckets);
            prop_assert!(buckets.iter().all(|b| b.1 > 0));
            prop_assert!(h.count >= buckets.iter().map(|b| b.1).sum::<u64>());
        }
    }
}
