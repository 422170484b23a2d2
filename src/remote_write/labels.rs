//! A series' labels as remote write sends them, pure.
//!
//! The rule: the shape's own labels, then the target's, except those the
//! shape has itself or hides with an empty value (a series' own labels win,
//! as Prometheus lets them win over external labels), sorted byte-wise by
//! name (upper case before `__name__`, as Prometheus sorts), no empty
//! values ([`merged`]).
//!
//! The bytes: each label as a protobuf `Label` field of a `TimeSeries`,
//! encoded once per shape and per target set and kept with it
//! (`series::EncodedLabels`), so a request copies bytes instead of encoding
//! every label of every series again ([`SeriesLabels`]). Names compare by
//! their first eight bytes and, only where those are equal, by the rest: no
//! string comparison for most labels.

use std::cmp::Ordering;
use std::sync::Arc;

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use super::field;
use crate::series::{EncodedLabels, Label, Shape, TargetLabels};

/// The complete label set remote write sends for `shape` on `target`: the
/// rule, which [`SeriesLabels::wire`] writes and the tests check it by.
#[cfg(test)]
pub(crate) fn merged<'a>(
    shape: &'a Shape,
    target: &'a TargetLabels,
) -> impl Iterator<Item = &'a Label> {
    let labels = SeriesLabels::new(shape, target);
    labels.merge().map(move |side| match side {
        Side::Own(i) => &shape.sorted()[i],
        Side::Target(j) => &target.labels()[j],
    })
}

/// One series' labels as remote write writes them: its shape's and its
/// target's encoded sets, and where the target's go among the shape's when
/// they go in one piece. Made once per series of a request; the encoder
/// sizes and writes every series with it.
pub(crate) struct SeriesLabels<'a> {
    shape: &'a Shape,
    target: &'a TargetLabels,
    own: &'a EncodedLabels,
    theirs: &'a EncodedLabels,
    /// See [`splice_at`].
    splice: Option<usize>,
}

impl<'a> SeriesLabels<'a> {
    pub(crate) fn new(shape: &'a Shape, target: &'a TargetLabels) -> Self {
        let (own, theirs) = (shape.encoded(encode), target.encoded(encode));
        SeriesLabels {
            shape,
            target,
            own,
            theirs,
            splice: splice_at(own, theirs, shape.hidden()),
        }
    }

    /// The labels of the rule, each as the bytes of a protobuf `Label`
    /// field of a `TimeSeries`: three slices where the target's labels go
    /// in one piece, else one per label.
    pub(crate) fn wire(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let (own, theirs) = (self.own, self.theirs);
        let spliced = self.splice.map(|at| {
            let (head, tail) = own.bytes.split_at(end(own, at));
            [head, &theirs.bytes[..], tail]
        });
        let merged = match spliced {
            Some(_) => None,
            None => Some(self.merge().map(move |side| match side {
                Side::Own(i) => label(own, i),
                Side::Target(j) => label(theirs, j),
            })),
        };
        spliced
            .into_iter()
            .flatten()
            .chain(merged.into_iter().flatten())
    }

    /// The length of what `wire` yields, without walking the labels when
    /// the target's go in one piece.
    pub(crate) fn wire_len(&self) -> usize {
        match self.splice {
            Some(_) => self.own.bytes.len() + self.theirs.bytes.len(),
            None => self.wire().map(<[u8]>::len).sum(),
        }
    }

    fn merge(&self) -> Merge<'a> {
        Merge {
            own: self.shape.sorted(),
            own_keys: &self.own.keys,
            hidden: self.shape.hidden(),
            theirs: self.target.labels(),
            their_keys: &self.theirs.keys,
            at_own: 0,
            at_theirs: 0,
        }
    }
}

/// Where the target's labels go among the shape's when they go in one
/// piece: none of their names sorts among the shape's own or ties with one
/// in its first eight bytes, and the shape hides none. That is the usual
/// case (`instance` and `job` after `__name__` and `cmd`), and it costs two
/// comparisons instead of a merge of every label of every series.
fn splice_at(own: &EncodedLabels, theirs: &EncodedLabels, hidden: &[Arc<str>]) -> Option<usize> {
    let (own, theirs) = (&own.keys, &theirs.keys);
    let (Some(&first), Some(&last)) = (theirs.first(), theirs.last()) else {
        return Some(own.len());
    };
    if !hidden.is_empty() {
        return None;
    }
    // Keys order names as bytes do, except that equal keys may hide
    // different names: strictly smaller and strictly greater are safe.
    let at = own.partition_point(|&k| k < first);
    match own.get(at) {
        Some(&next) if next <= last => None,
        _ => Some(at),
    }
}

/// Where the next label of a merged set comes from.
enum Side {
    Own(usize),
    Target(usize),
}

/// The merge of a shape's and a target's sorted labels, by index.
struct Merge<'a> {
    own: &'a [Label],
    own_keys: &'a [u64],
    hidden: &'a [Arc<str>],
    theirs: &'a [Label],
    their_keys: &'a [u64],
    /// The next label of each side.
    at_own: usize,
    at_theirs: usize,
}

impl Iterator for Merge<'_> {
    type Item = Side;

    fn next(&mut self) -> Option<Side> {
        loop {
            let own = self.own_keys.get(self.at_own);
            let theirs = self.their_keys.get(self.at_theirs);
            let take_own = match (own, theirs) {
                (None, None) => return None,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => match a.cmp(b).then_with(|| {
                    let a = &self.own[self.at_own].0;
                    let b = &self.theirs[self.at_theirs].0;
                    a.as_bytes().cmp(b.as_bytes())
                }) {
                    Ordering::Less => true,
                    Ordering::Greater => false,
                    Ordering::Equal => {
                        // The shape's label of that name wins.
                        self.at_theirs += 1;
                        true
                    }
                },
            };
            if take_own {
                self.at_own += 1;
                return Some(Side::Own(self.at_own - 1));
            }
            self.at_theirs += 1;
            let name = &self.theirs[self.at_theirs - 1].0;
            if !self.hidden.contains(name) {
                return Some(Side::Target(self.at_theirs - 1));
            }
        }
    }
}

/// Sorted labels as the request encoder needs them: each one's sort key
/// (its name's first eight bytes, big-endian, zero-padded) and its bytes as
/// a protobuf `Label` field of a `TimeSeries`.
fn encode(labels: &[Label]) -> EncodedLabels {
    let field_len = |s: &str| 1 + encoded_len_varint(s.len() as u64) + s.len();
    let mut bytes = Vec::new();
    let mut ends = Vec::with_capacity(labels.len());
    for (name, value) in labels {
        encode_key(
            field::TIMESERIES_LABELS,
            WireType::LengthDelimited,
            &mut bytes,
        );
        encode_varint((field_len(name) + field_len(value)) as u64, &mut bytes);
        for (number, s) in [(field::LABEL_NAME, name), (field::LABEL_VALUE, value)] {
            encode_key(number, WireType::LengthDelimited, &mut bytes);
            encode_varint(s.len() as u64, &mut bytes);
            bytes.extend_from_slice(s.as_bytes());
        }
        ends.push(bytes.len() as u32);
    }
    let keys = labels
        .iter()
        .map(|(name, _)| {
            let mut key = [0u8; 8];
            let head = &name.as_bytes()[..name.len().min(8)];
            key[..head.len()].copy_from_slice(head);
            u64::from_be_bytes(key)
        })
        .collect();
    EncodedLabels {
        keys,
        ends: ends.into(),
        bytes: bytes.into(),
    }
}

/// The bytes of label `i`.
fn label(encoded: &EncodedLabels, i: usize) -> &[u8] {
    &encoded.bytes[end(encoded, i)..encoded.ends[i] as usize]
}

/// Where the bytes of the first `n` labels end.
fn end(encoded: &EncodedLabels, n: usize) -> usize {
    n.checked_sub(1).map_or(0, |p| encoded.ends[p] as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Kind;
    use crate::series::{shape, target_labels};
    use proptest::prelude::*;

    #[test]
    fn target_labels_go_in_one_piece_where_they_can() {
        let target = target_labels([("job", "redis"), ("instance", "a:6379")]);
        let cmd = shape("redis_commands_total", Kind::Counter, "", &[("cmd", "get")]);
        // `__name__`, `cmd`, then `instance`, `job`.
        let splice = |s: &Shape| SeriesLabels::new(s, &target).splice;
        assert_eq!(splice(&cmd), Some(2));
        let zone = shape("x", Kind::Gauge, "", &[("zone", "b")]);
        assert_eq!(splice(&zone), Some(1));
        // A label between the target's, one of the same name, one that
        // hides a target label: merged label by label.
        let between = shape("x", Kind::Gauge, "", &[("isp", "c")]);
        assert_eq!(splice(&between), None);
        let same = shape("x", Kind::Gauge, "", &[("job", "other")]);
        assert_eq!(splice(&same), None);
        let hiding = shape("x", Kind::Gauge, "", &[("job", "")]);
        assert_eq!(splice(&hiding), None);
        for s in [cmd, zone, between, same, hiding] {
            let labels = SeriesLabels::new(&s, &target);
            let wire: Vec<u8> = labels.wire().flatten().copied().collect();
            let one_by_one: Vec<u8> = labels
                .merge()
                .flat_map(|side| match side {
                    Side::Own(i) => label(labels.own, i),
                    Side::Target(j) => label(labels.theirs, j),
                })
                .copied()
                .collect();
            assert_eq!(wire, one_by_one, "{:?}", s.name());
            assert_eq!(labels.wire_len(), wire.len(), "{:?}", s.name());
        }
    }

    fn names<'a>(labels: impl Iterator<Item = &'a Label>) -> Vec<(String, String)> {
        labels
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn merged_sorts_bytewise_and_lets_own_labels_win() {
        let target = target_labels([
            ("job", "redis"),
            ("instance", "h:6379"),
            ("Zone", "eu"),
            ("empty", ""),
            ("cmd", "target's"),
        ]);
        let s = shape("redis_commands_total", Kind::Counter, "", &[("cmd", "get")]);
        assert_eq!(
            names(merged(&s, &target)),
            [
                ("Zone", "eu"),
                ("__name__", "redis_commands_total"),
                ("cmd", "get"),
                ("instance", "h:6379"),
                ("job", "redis")
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        // An empty own label hides the target's label of that name.
        let hiding = shape("x", Kind::Gauge, "_sum", &[("Zone", "")]);
        assert_eq!(
            names(merged(&hiding, &target))
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            ["__name__", "cmd", "instance", "job"]
        );
        assert_eq!(names(merged(&hiding, &target))[0].1, "x_sum");
    }

    /// The label set as the rules say it (Prometheus' own labels over
    /// external ones): own labels first, then target labels, empty values
    /// out but hiding, first of a name wins, sorted byte-wise.
    fn reference(own: &[(String, String)], target: &[(String, String)]) -> Vec<(String, String)> {
        let mut all = vec![("__name__".to_owned(), "m".to_owned())];
        let hidden: Vec<&str> = own
            .iter()
            .filter(|(_, v)| v.is_empty())
            .map(|(n, _)| n.as_str())
            .collect();
        all.extend(own.iter().filter(|(_, v)| !v.is_empty()).cloned());
        for (n, v) in target {
            if !v.is_empty() && !hidden.contains(&n.as_str()) && !all.iter().any(|(m, _)| m == n) {
                all.push((n.clone(), v.clone()));
            }
        }
        all.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        all.dedup_by(|a, b| a.0 == b.0);
        all
    }

    fn labels() -> impl Strategy<Value = Vec<(String, String)>> {
        // Names that share their first eight bytes, or all of them, test
        // the sort keys' fallback to whole names.
        prop::collection::vec(
            (
                "(?:[aZ_]|__name__|__name__x|instance|instanceA|instance_|job|cmd)",
                "(?:|x|y)",
            ),
            0..5,
        )
    }

    proptest! {
        #[test]
        fn merged_wire_is_merged_as_prost_writes_it(own in labels(), target in labels()) {
            use crate::remote_write::proto::{Label as ProtoLabel, TimeSeries};
            use prost::Message;
            let pairs: Vec<(&str, &str)> = own.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let s = shape("m", Kind::Gauge, "", &pairs);
            let t = target_labels(target.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            let labels = SeriesLabels::new(&s, &t);
            let ours: Vec<u8> = labels.wire().flatten().copied().collect();
            prop_assert_eq!(labels.wire_len(), ours.len());
            let theirs = TimeSeries {
                labels: merged(&s, &t)
                    .map(|(n, v)| ProtoLabel { name: n.to_string(), value: v.to_string() })
                    .collect(),
                samples: Vec::new(),
                histograms: Vec::new(),
            }
            .encode_to_vec();
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn merged_is_the_rule(own in labels(), target in labels()) {
            let pairs: Vec<(&str, &str)> = own.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let s = shape("m", Kind::Gauge, "", &pairs);
            let t = target_labels(target.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            prop_assert_eq!(names(merged(&s, &t)), reference(&own, &target));
        }
    }
}
