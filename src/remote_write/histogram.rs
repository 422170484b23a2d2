//! One native histogram sample as a `TimeSeries.histograms` field, written
//! by hand as `encode.rs` writes samples (pure).
//!
//! Schema 0 and zero threshold 0 are protobuf's defaults and so are not
//! written; the zero count is (as Prometheus writes it, setting its
//! `oneof`), and so is the sum, also when it is zero. A stale marker is a
//! histogram whose sum is the stale NaN and that has no buckets.

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use super::field;
use crate::metrics::NativeHistogram;
use crate::metrics::native::Span;

fn zigzag32(n: i32) -> u64 {
    ((n << 1) ^ (n >> 31)) as u32 as u64
}

fn zigzag64(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// A field's key byte length: every field number here is below 16.
const KEY: usize = 1;

fn span_len(span: &Span) -> usize {
    let offset = if span.offset == 0 {
        0
    } else {
        KEY + encoded_len_varint(zigzag32(span.offset))
    };
    let length = if span.length == 0 {
        0
    } else {
        KEY + encoded_len_varint(span.length.into())
    };
    offset + length
}

fn deltas_len(h: &NativeHistogram) -> usize {
    h.deltas
        .iter()
        .map(|&d| encoded_len_varint(zigzag64(d)))
        .sum()
}

fn delimited_len(len: usize) -> usize {
    KEY + encoded_len_varint(len as u64) + len
}

/// The length of the `Histogram` message (without its field key and length).
fn message_len(h: &NativeHistogram, timestamp: i64) -> usize {
    let spans: usize = h.spans.iter().map(|s| delimited_len(span_len(s))).sum();
    let deltas = match deltas_len(h) {
        0 => 0,
        len => delimited_len(len),
    };
    let timestamp = match timestamp {
        0 => 0,
        t => KEY + encoded_len_varint(t as u64),
    };
    KEY + encoded_len_varint(h.count) + KEY + 8 + KEY + 1 + spans + deltas + timestamp
}

/// The bytes [`write`] appends for `h` at `timestamp`.
pub(crate) fn field_len(h: &NativeHistogram, timestamp: i64) -> usize {
    delimited_len(message_len(h, timestamp))
}

/// Appends `h` at `timestamp` as one `TimeSeries.histograms` field.
pub(crate) fn write(h: &NativeHistogram, timestamp: i64, out: &mut Vec<u8>) {
    let len = message_len(h, timestamp);
    out.reserve(delimited_len(len));
    encode_key(field::TIMESERIES_HISTOGRAMS, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
    encode_key(field::HISTOGRAM_COUNT_INT, WireType::Varint, out);
    encode_varint(h.count, out);
    encode_key(field::HISTOGRAM_SUM, WireType::SixtyFourBit, out);
    out.extend_from_slice(&h.sum.to_le_bytes());
    encode_key(field::HISTOGRAM_ZERO_COUNT_INT, WireType::Varint, out);
    encode_varint(0, out);
    for span in &h.spans {
        encode_key(
            field::HISTOGRAM_POSITIVE_SPANS,
            WireType::LengthDelimited,
            out,
        );
        encode_varint(span_len(span) as u64, out);
        if span.offset != 0 {
            encode_key(field::SPAN_OFFSET, WireType::Varint, out);
            encode_varint(zigzag32(span.offset), out);
        }
        if span.length != 0 {
            encode_key(field::SPAN_LENGTH, WireType::Varint, out);
            encode_varint(span.length.into(), out);
        }
    }
    let deltas = deltas_len(h);
    if deltas > 0 {
        encode_key(
            field::HISTOGRAM_POSITIVE_DELTAS,
            WireType::LengthDelimited,
            out,
        );
        encode_varint(deltas as u64, out);
        for &d in &h.deltas {
            encode_varint(zigzag64(d), out);
        }
    }
    if timestamp != 0 {
        encode_key(field::HISTOGRAM_TIMESTAMP, WireType::Varint, out);
        encode_varint(timestamp as u64, out);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::remote_write::proto::{self, TimeSeries, histogram};

    /// What `h` at `timestamp` is in the generated types.
    fn theirs(h: &NativeHistogram, timestamp: i64) -> proto::Histogram {
        proto::Histogram {
            count: Some(histogram::Count::CountInt(h.count)),
            sum: h.sum,
            schema: 0,
            zero_threshold: 0.0,
            zero_count: Some(histogram::ZeroCount::ZeroCountInt(0)),
            positive_spans: h
                .spans
                .iter()
                .map(|s| proto::BucketSpan {
                    offset: s.offset,
                    length: s.length,
                })
                .collect(),
            positive_deltas: h.deltas.clone(),
            timestamp,
            ..Default::default()
        }
    }

    fn histograms() -> impl Strategy<Value = NativeHistogram> {
        let span = (any::<i32>(), 0u32..4).prop_map(|(offset, length)| Span { offset, length });
        (
            any::<u64>(),
            any::<f64>(),
            prop::collection::vec(span, 0..5),
        )
            .prop_flat_map(|(count, sum, spans)| {
                let buckets = spans.iter().map(|s| s.length as usize).sum::<usize>();
                prop::collection::vec(any::<i64>(), buckets).prop_map(move |deltas| {
                    NativeHistogram {
                        count,
                        sum,
                        spans: spans.clone(),
                        deltas,
                    }
                })
            })
    }

    proptest! {
        #[test]
        fn the_field_decodes_as_the_generated_type(
            h in histograms(),
            timestamp in prop_oneof![Just(0i64), any::<i64>()],
        ) {
            let mut ours = Vec::new();
            write(&h, timestamp, &mut ours);
            prop_assert_eq!(ours.len(), field_len(&h, timestamp));
            let series = TimeSeries::decode(ours.as_slice()).expect("decodes");
            prop_assert!(series.labels.is_empty() && series.samples.is_empty());
            prop_assert_eq!(series.histograms.len(), 1);
            let got = &series.histograms[0];
            let want = theirs(&h, timestamp);
            // NaN sums compare by their bits.
            prop_assert_eq!(got.sum.to_bits(), want.sum.to_bits());
            prop_assert_eq!(
                proto::Histogram { sum: 0.0, ..got.clone() },
                proto::Histogram { sum: 0.0, ..want }
            );
        }
    }

    #[test]
    fn a_stale_marker_carries_the_stale_nan_and_no_buckets() {
        let mut ours = Vec::new();
        write(&NativeHistogram::stale(), 1_700_000_000_000, &mut ours);
        let series = TimeSeries::decode(ours.as_slice()).expect("decodes");
        let h = &series.histograms[0];
        assert_eq!(h.sum.to_bits(), crate::metrics::STALE_NAN_BITS);
        assert!(h.positive_spans.is_empty() && h.positive_deltas.is_empty());
        assert_eq!(h.count, Some(histogram::Count::CountInt(0)));
    }
}
