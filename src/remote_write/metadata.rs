//! Remote write's metadata: the type, help and unit of every family, so
//! that a receiver's metric browser (Grafana's, Mimir's) shows them.
//!
//! As Prometheus sends them (`metadata_config`): in requests of their own
//! (a `WriteRequest` with `metadata` and no series), at most
//! [`PER_REQUEST`] entries each, for every family the process has. They
//! are sent once families exist, again every `metadata_interval`, and
//! as soon as a family appears that was not in the last send (checked at
//! most every [`CHECK_EVERY`]). A failed send is tried again at the next
//! check; samples never wait for metadata.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;

use super::proto::{MetricMetadata, WriteRequest, metric_metadata::MetricType};
use crate::metrics::Kind;
use crate::metrics::help::{help, unit};

/// Most metadata entries in one request: Prometheus' default.
pub(crate) const PER_REQUEST: usize = 500;

/// How often the families are looked at for new ones.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(5);

/// A family: its name and type.
pub(crate) type Family = (Arc<str>, Kind);

/// When metadata is due, and what was sent last.
#[derive(Debug)]
pub(crate) struct MetadataSchedule {
    interval: Duration,
    /// When the last send succeeded.
    sent_at: Option<Instant>,
    /// What it sent.
    sent: Vec<Family>,
    /// When to look at the families again.
    next_check: Option<Instant>,
    /// `series::generation` at the last look that found nothing to send:
    /// unchanged, so are the families.
    looked_at: Option<u64>,
}

impl MetadataSchedule {
    pub(crate) fn new(interval: Duration) -> Self {
        MetadataSchedule {
            interval,
            sent_at: None,
            sent: Vec::new(),
            next_check: None,
            looked_at: None,
        }
    }

    /// The families to send at `now`, if a send is due: when the interval
    /// has passed since the last one (or there was none), or when families
    /// appeared since. `generation` tells whether the families may have
    /// changed since the last look; `families` reads them.
    pub(crate) fn due(
        &mut self,
        now: Instant,
        generation: u64,
        families: impl FnOnce() -> Vec<Family>,
    ) -> Option<Vec<Family>> {
        if self.next_check.is_some_and(|at| now < at) {
            return None;
        }
        self.next_check = Some(now + CHECK_EVERY);
        let expired = self
            .sent_at
            .is_none_or(|at| now.duration_since(at) >= self.interval);
        if !expired && self.looked_at == Some(generation) {
            return None;
        }
        let families = families();
        let new = families
            .iter()
            .any(|f| self.sent.binary_search_by(|s| cmp(s, f)).is_err());
        let due = !families.is_empty() && (expired || new);
        // Until a send succeeds, every check looks again.
        self.looked_at = (!due).then_some(generation);
        due.then_some(families)
    }

    /// `families` were accepted at `now`.
    pub(crate) fn sent(&mut self, families: Vec<Family>, now: Instant) {
        self.sent = families;
        self.sent_at = Some(now);
    }
}

fn cmp(a: &Family, b: &Family) -> std::cmp::Ordering {
    a.0.cmp(&b.0).then((a.1 as u8).cmp(&(b.1 as u8)))
}

/// The requests that carry `families`' metadata, snappy-compressed, at
/// most [`PER_REQUEST`] entries each.
pub(crate) fn requests(families: &[Family]) -> Vec<Vec<u8>> {
    families
        .chunks(PER_REQUEST)
        .map(|chunk| {
            let request = WriteRequest {
                timeseries: Vec::new(),
                metadata: chunk.iter().map(entry).collect(),
            };
            snap::raw::Encoder::new()
                .compress_vec(&request.encode_to_vec())
                .expect("snappy compresses any input")
        })
        .collect()
}

fn entry((name, kind): &Family) -> MetricMetadata {
    let r#type = match kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Summary => MetricType::Summary,
        Kind::Histogram => MetricType::Histogram,
    };
    MetricMetadata {
        r#type: r#type as i32,
        metric_family_name: name.to_string(),
        help: help(name).into_owned(),
        unit: unit(name).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(name: &str, kind: Kind) -> Family {
        (Arc::from(name), kind)
    }

    #[test]
    fn sent_once_families_exist_then_per_interval_or_when_new_ones_appear() {
        let start = Instant::now();
        let mut schedule = MetadataSchedule::new(Duration::from_secs(60));
        let one = vec![family("redis_up", Kind::Gauge)];
        assert_eq!(schedule.due(start, 1, Vec::new), None, "no families yet");
        let at = start + CHECK_EVERY;
        let due = schedule.due(at, 2, || one.clone()).expect("due");
        schedule.sent(due, at);
        // Nothing new: not before the interval; an unchanged generation
        // is not even looked at.
        assert_eq!(schedule.due(at + CHECK_EVERY, 2, || one.clone()), None);
        assert_eq!(
            schedule.due(at + 2 * CHECK_EVERY, 2, || panic!("unchanged")),
            None
        );
        // A new family: at the next check.
        let two = vec![
            family("redis_connected_clients", Kind::Gauge),
            family("redis_up", Kind::Gauge),
        ];
        let at2 = at + 3 * CHECK_EVERY;
        assert_eq!(schedule.due(at2, 4, || two.clone()), Some(two.clone()));
        // Not sent (the receiver failed): tried again at the next check.
        assert_eq!(
            schedule.due(at2 + Duration::from_secs(1), 4, || two.clone()),
            None,
            "checked at most every CHECK_EVERY"
        );
        assert_eq!(
            schedule.due(at2 + CHECK_EVERY, 4, || two.clone()),
            Some(two.clone())
        );
        schedule.sent(two.clone(), at2 + CHECK_EVERY);
        // The interval: everything again.
        let later = at2 + CHECK_EVERY + Duration::from_secs(60);
        assert_eq!(schedule.due(later, 4, || two.clone()), Some(two));
    }

    #[test]
    fn requests_carry_type_help_and_unit_in_chunks() {
        let families: Vec<Family> = (0..PER_REQUEST + 1)
            .map(|i| family(&format!("redis_f{i:04}_bytes"), Kind::Counter))
            .chain([family("redis_commands_total", Kind::Counter)])
            .collect();
        let requests = requests(&families);
        assert_eq!(requests.len(), 2);
        let decoded: Vec<WriteRequest> = requests
            .iter()
            .map(|body| {
                let raw = snap::raw::Decoder::new()
                    .decompress_vec(body)
                    .expect("snappy");
                WriteRequest::decode(raw.as_slice()).expect("protobuf")
            })
            .collect();
        assert_eq!(decoded[0].metadata.len(), PER_REQUEST);
        assert!(decoded.iter().all(|r| r.timeseries.is_empty()));
        let last = decoded[1].metadata.last().expect("entry");
        assert_eq!(last.metric_family_name, "redis_commands_total");
        assert_eq!(last.r#type, MetricType::Counter as i32);
        assert_eq!(last.help, "Total number of calls per command");
        assert_eq!(decoded[0].metadata[0].unit, "bytes");
    }
}
