//! What the agent is doing, for an operator: the data of `GET /api/status`
//! (JSON), and the same as the page at `GET /` (HTML, no JavaScript) and
//! as `redpush status`'s table; whether `GET /readyz` passes. The agent
//! builds it on request (`agent::state`); `redpush status` reads it back.
//! Text from outside (errors) is one line by the time it is here.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::delivery::DeliverySnapshot;

/// The whole status, as `/api/status` serves it. Timestamps are Unix
/// seconds; a field that has no value yet is `null`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub targets: Vec<TargetStatus>,
    /// Each remote-write endpoint, with its backlog in the on-disk queue.
    pub remote_write: Vec<DestinationStatus>,
    pub pushgateway: Option<DestinationStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub instance: String,
    /// `null` until the first sample.
    pub up: Option<bool>,
    pub interval_seconds: f64,
    /// Why the interval is what it is (the adaptive controller's last reason).
    pub interval_reason: String,
    pub last_sample_timestamp: Option<f64>,
    /// Why the last sample failed; `null` while the target answers.
    pub last_error: Option<String>,
}

/// What the on-disk queue holds for one remote-write endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueStatus {
    pub samples: u64,
    pub bytes: u64,
    pub oldest_sample_age_seconds: f64,
    /// Samples lost since the start, by reason (`redpush_samples_dropped_total`).
    pub dropped: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DestinationStatus {
    /// The remote-write endpoint's name (`remote_name`); `null` for the
    /// Pushgateway.
    pub name: Option<String>,
    /// Without credentials or query.
    pub url: String,
    pub last_success_timestamp: Option<f64>,
    /// The last failure or rejection, even if delivery has resumed since
    /// (compare `last_success_timestamp`).
    pub last_error: Option<String>,
    pub consecutive_failures: u64,
    /// How long the backlog would take to send at the rate requests have
    /// gone so far; `null` while failing, before the first delivery, and
    /// for the Pushgateway (which keeps no backlog).
    pub backlog_drain_eta_seconds: Option<f64>,
    /// The endpoint's backlog; `null` for the Pushgateway.
    pub queue: Option<QueueStatus>,
}

impl DestinationStatus {
    pub(crate) fn new(name: Option<String>, url: String, snapshot: DeliverySnapshot) -> Self {
        DestinationStatus {
            name,
            url,
            last_success_timestamp: snapshot.last_success_ms.map(seconds),
            last_error: snapshot.last_error,
            consecutive_failures: snapshot.consecutive_failures,
            backlog_drain_eta_seconds: None,
            queue: None,
        }
    }

    /// How the status names it: `remote write <name>`, or `Pushgateway`.
    fn title(&self) -> String {
        match &self.name {
            Some(name) => format!("remote write {name}"),
            None => "Pushgateway".to_owned(),
        }
    }
}

pub(crate) fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

impl Status {
    /// The push destinations that are set: each remote-write endpoint, then
    /// the Pushgateway.
    fn destinations(&self) -> impl Iterator<Item = &DestinationStatus> {
        self.remote_write.iter().chain(&self.pushgateway)
    }

    /// Whether every push destination has delivered within `limit` (or
    /// the agent has not been up that long); the reason when not.
    pub(crate) fn ready(
        &self,
        now_ms: i64,
        started_ms: i64,
        limit: Duration,
    ) -> Result<(), String> {
        let limit_ms = limit.as_millis() as i64;
        for destination in self.destinations() {
            let since = destination
                .last_success_timestamp
                .map_or(started_ms, |s| (s * 1000.0) as i64);
            if now_ms - since > limit_ms {
                return Err(format!(
                    "{}: nothing delivered for {} s (limit {} s); last error: {}",
                    destination.title(),
                    (now_ms - since) / 1000,
                    limit.as_secs(),
                    destination.last_error.as_deref().unwrap_or("none")
                ));
            }
        }
        Ok(())
    }

    /// The page at `/`: the same data as `/api/status`, readable without
    /// JavaScript; it reloads itself every 10 s.
    pub(crate) fn html(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(concat!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<meta http-equiv=\"refresh\" content=\"10\">",
            "<title>redpush status</title><style>",
            "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}",
            "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}",
            ".down,.failing{background:#fdd}.up,.ok{background:#dfd}",
            "</style></head><body>\n"
        ));
        let _ = write!(
            out,
            "<h1>redpush {}</h1>\n<p><a href=\"/metrics\">/metrics</a> · <a href=\"/api/status\">/api/status</a></p>\n",
            html_escape(&self.version)
        );
        self.targets_table(&mut out);
        self.delivery_table(&mut out);
        out.push_str("</body></html>\n");
        out
    }

    fn targets_table(&self, out: &mut String) {
        out.push_str(concat!(
            "<h2>Targets</h2>\n<table id=\"targets\"><tr><th>instance</th><th>state</th>",
            "<th>interval</th><th>why</th><th>last sample</th><th>last error</th></tr>\n"
        ));
        for t in &self.targets {
            let (class, state) = match t.up {
                Some(true) => ("up", "up"),
                Some(false) => ("down", "down"),
                None => ("", "not sampled yet"),
            };
            let _ = writeln!(
                out,
                "<tr class=\"{class}\"><td>{}</td><td>{state}</td><td>{} s</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                html_escape(&t.instance),
                t.interval_seconds,
                html_escape(&t.interval_reason),
                time_text(t.last_sample_timestamp),
                html_escape(t.last_error.as_deref().unwrap_or("")),
            );
        }
        out.push_str("</table>\n");
    }

    fn delivery_table(&self, out: &mut String) {
        out.push_str("<h2>Delivery</h2>\n");
        if !self.remote_write.is_empty() {
            out.push_str(concat!(
                "<table id=\"queue\"><tr><th>remote write</th><th>queued samples</th>",
                "<th>queue bytes</th><th>oldest sample age</th><th>dropped</th></tr>\n"
            ));
        }
        for d in &self.remote_write {
            let q = d.queue.clone().unwrap_or_default();
            let dropped: u64 = q.dropped.values().sum();
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.0} s</td><td>{dropped}</td></tr>",
                html_escape(d.name.as_deref().unwrap_or("")),
                q.samples,
                q.bytes,
                q.oldest_sample_age_seconds
            );
        }
        if !self.remote_write.is_empty() {
            out.push_str("</table>\n");
        }
        out.push_str(concat!(
            "<table id=\"destinations\"><tr><th>destination</th><th>url</th><th>state</th>",
            "<th>last success</th><th>failures in a row</th><th>backlog sent in</th><th>last error</th></tr>\n"
        ));
        for d in self.destinations() {
            let (class, state) = if d.consecutive_failures > 0 {
                ("failing", "failing")
            } else {
                ("ok", "ok")
            };
            let eta = d
                .backlog_drain_eta_seconds
                .map_or(String::new(), |s| format!("{s:.0} s"));
            let _ = writeln!(
                out,
                "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{state}</td><td>{}</td><td>{}</td><td>{eta}</td><td>{}</td></tr>",
                html_escape(&d.title()),
                html_escape(&d.url),
                time_text(d.last_success_timestamp),
                d.consecutive_failures,
                html_escape(d.last_error.as_deref().unwrap_or("")),
            );
        }
        out.push_str("</table>\n");
    }

    /// The terminal table of `redpush status`.
    pub fn text(&self) -> String {
        let mut out = format!(
            "redpush {}\n\nTARGET\tSTATE\tINTERVAL\tLAST SAMPLE\tLAST ERROR\n",
            self.version
        );
        for t in &self.targets {
            let state = match t.up {
                Some(true) => "up",
                Some(false) => "down",
                None => "-",
            };
            let _ = writeln!(
                out,
                "{}\t{state}\t{}s ({})\t{}\t{}",
                t.instance,
                t.interval_seconds,
                t.interval_reason,
                time_text(t.last_sample_timestamp),
                t.last_error.as_deref().unwrap_or("-"),
            );
        }
        out.push('\n');
        for d in &self.remote_write {
            let q = d.queue.clone().unwrap_or_default();
            let _ = write!(
                out,
                "QUEUE {}\t{} samples, {} bytes, oldest {:.0} s old, dropped",
                d.name.as_deref().unwrap_or(""),
                q.samples,
                q.bytes,
                q.oldest_sample_age_seconds
            );
            for (reason, n) in &q.dropped {
                let _ = write!(out, " {reason}={n}");
            }
            out.push('\n');
        }
        for d in self.destinations() {
            let _ = writeln!(
                out,
                "{}\t{}\tlast success {}\t{} failures in a row{}{}",
                d.title(),
                d.url,
                time_text(d.last_success_timestamp),
                d.consecutive_failures,
                d.backlog_drain_eta_seconds
                    .map_or(String::new(), |s| format!("\tbacklog sent in {s:.0} s")),
                d.last_error
                    .as_deref()
                    .map_or(String::new(), |e| format!("\tlast error: {e}")),
            );
        }
        out
    }
}

/// A Unix time as UTC text, or "never".
fn time_text(seconds: Option<f64>) -> String {
    seconds.map_or("never".to_owned(), |s| {
        let at = std::time::UNIX_EPOCH + Duration::from_secs_f64(s.max(0.0));
        humantime::format_rfc3339_seconds(at).to_string()
    })
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        Status {
            version: "1.2.3".to_owned(),
            targets: vec![
                TargetStatus {
                    instance: "a:6379".to_owned(),
                    up: Some(true),
                    interval_seconds: 10.0,
                    interval_reason: "configured".to_owned(),
                    last_sample_timestamp: Some(1_700_000_000.0),
                    last_error: None,
                },
                TargetStatus {
                    instance: "<b>:1".to_owned(),
                    up: Some(false),
                    interval_seconds: 60.0,
                    interval_reason: "slow sample (2000 ms)".to_owned(),
                    last_sample_timestamp: None,
                    last_error: Some("connection refused".to_owned()),
                },
            ],
            remote_write: vec![DestinationStatus {
                name: Some("rw:9090".to_owned()),
                url: "http://rw:9090/api/v1/write".to_owned(),
                last_success_timestamp: Some(1_700_000_000.0),
                last_error: None,
                consecutive_failures: 0,
                backlog_drain_eta_seconds: Some(0.5),
                queue: Some(QueueStatus {
                    samples: 12,
                    bytes: 4096,
                    oldest_sample_age_seconds: 3.0,
                    dropped: [("rejected".to_owned(), 2)].into(),
                }),
            }],
            pushgateway: None,
        }
    }

    #[test]
    fn json_round_trips_with_the_documented_keys() {
        let json = serde_json::to_value(status()).expect("json");
        for key in ["version", "targets", "remote_write", "pushgateway"] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert_eq!(json["targets"][1]["last_error"], "connection refused");
        assert_eq!(json["remote_write"][0]["name"], "rw:9090");
        assert_eq!(json["remote_write"][0]["queue"]["dropped"]["rejected"], 2);
        let back: Status = serde_json::from_value(json).expect("back");
        assert_eq!(back, status());
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let html = status().html();
        assert!(html.contains("<td>&lt;b&gt;:1</td><td>down</td>"), "{html}");
        assert!(!html.contains("<b>"));
        assert!(html.contains("http://rw:9090/api/v1/write"));
    }

    #[test]
    fn ready_until_a_destination_has_not_delivered_for_the_limit() {
        let limit = Duration::from_secs(600);
        let mut s = status();
        let last = 1_700_000_000_000;
        assert_eq!(s.ready(last + 599_000, 0, limit), Ok(()));
        let err = s.ready(last + 601_000, 0, limit).expect_err("not ready");
        assert!(
            err.starts_with("remote write rw:9090: nothing delivered for 601 s"),
            "{err}"
        );
        // Never delivered: counted from the start.
        s.remote_write[0].last_success_timestamp = None;
        assert_eq!(s.ready(last, last - 10_000, limit), Ok(()));
        assert!(s.ready(last, last - 700_000, limit).is_err());
        // Nothing to push to: always ready.
        s.remote_write.clear();
        assert_eq!(s.ready(last, 0, limit), Ok(()));
    }
}
