//! `redpush once`: sample every target one time, then print the exposition
//! text, or push it once (remote write, Pushgateway) and exit. For cron and
//! batch jobs, and for looking at what the agent would export.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use crate::config::{RemoteWriteSettings, Settings};
use crate::exposition::{write_series, write_targets};
use crate::pushgateway::Pushgateway;
use crate::queue::Queued;
use crate::remote_write::encode::encode;
use crate::remote_write::sender::{Delivery, Sender};
use crate::remote_write::write_relabel::WriteRelabel;
use crate::self_metrics::EndpointMetrics;
use crate::series::{Record, TargetSeries};
use crate::target::{Target, TargetReading};
use crate::untrusted::OneLine;

/// Exit codes of `redpush once`, documented in README.md.
pub(crate) const EXIT_NO_TARGET: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;
pub(crate) const EXIT_PUSH_FAILED: u8 = 3;

pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let readings = read_all(&settings).await;
    let mut answered = 0;
    for sampled in &readings {
        match &sampled.reading.error {
            None => answered += 1,
            Some(e) => eprintln!("redpush: {}: {}", sampled.instance, OneLine(e)),
        }
    }
    // A target that did not answer is still written or pushed, as
    // `redis_up 0`: a cron job's textfile or group says so instead of
    // being empty. The exit code says it too.
    let outcome = if answered == 0 {
        eprintln!("redpush: no target answered");
        ExitCode::from(EXIT_NO_TARGET)
    } else {
        ExitCode::SUCCESS
    };
    if settings.remote_write.is_empty() && settings.pushgateway.is_none() {
        print!("{}", exposition(&readings));
        return Ok(outcome);
    }
    let mut ok = true;
    for rw in &settings.remote_write {
        ok &= push_remote_write(rw, &readings).await?;
    }
    if let Some(pg) = &settings.pushgateway {
        let pushgateway = Pushgateway::new(pg.clone()).context("pushgateway")?;
        for sampled in &readings {
            let mut body = String::new();
            write_series(&mut body, &sampled.record.series, &[]);
            if let Err(e) = pushgateway.put(&sampled.instance, body).await {
                eprintln!("redpush: {}: {}", sampled.instance, OneLine(e));
                ok = false;
            }
        }
    }
    Ok(match (answered, ok) {
        (0, _) => outcome,
        (_, true) => ExitCode::SUCCESS,
        (_, false) => ExitCode::from(EXIT_PUSH_FAILED),
    })
}

/// Pushes `readings` to remote-write endpoint `rw` once (its metadata
/// after, when it sends metadata); whether the receiver took them. Errors
/// are said on stderr.
async fn push_remote_write(rw: &RemoteWriteSettings, readings: &[Sampled]) -> anyhow::Result<bool> {
    let batch: Vec<Queued> = readings
        .iter()
        .enumerate()
        .map(|(seq, sampled)| Queued {
            seq: seq as u64,
            record: sampled.record.clone(),
        })
        .collect();
    let encoded = encode(&WriteRelabel::new(&rw.write_relabel).batch(batch));
    let metrics = EndpointMetrics::new(&rw.name, &rw.endpoint.url);
    let sender = Sender::new(rw.clone(), Arc::new(metrics)).with_context(|| rw.key.clone())?;
    // Retries run for at most one request timeout in all; a batch job
    // must end.
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let timeout = rw.endpoint.timeout;
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        let _ = stop_tx.send(true);
    });
    match sender
        .deliver(encoded.body, encoded.samples, None, &mut stop_rx)
        .await
    {
        Delivery::Accepted if rw.metadata_interval.is_some() => {
            // The families of this run, as the agent sends them.
            if let Err(e) = sender.post_metadata(&crate::series::families()).await {
                eprintln!(
                    "redpush: remote write {}: the receiver did not take the metadata: {e}",
                    rw.name
                );
            }
        }
        Delivery::Accepted => {}
        Delivery::Rejected => {
            eprintln!(
                "redpush: remote write {}: the receiver rejected the samples",
                rw.name
            );
            return Ok(false);
        }
        Delivery::Held { status } => {
            eprintln!(
                "redpush: remote write {}: the receiver answered {status}: check the url and credentials",
                rw.name
            );
            return Ok(false);
        }
        Delivery::Abandoned => {
            eprintln!(
                "redpush: remote write {}: the receiver did not accept the samples within {timeout:?}",
                rw.name
            );
            return Ok(false);
        }
    }
    Ok(true)
}

/// One target's reading, and as the record it pushes.
struct Sampled {
    instance: String,
    reading: TargetReading,
    record: Arc<Record>,
}

/// Samples all targets at once; results in configuration order.
async fn read_all(settings: &Settings) -> Vec<Sampled> {
    let mut tasks = Vec::new();
    for t in &settings.targets {
        let mut target = Target::new(settings, t.clone());
        let interval = settings.intervals.interval;
        tasks.push(tokio::spawn(async move {
            let reading = target.read(interval).await;
            let record = TargetSeries::new(target.labels().clone(), false)
                .relabeled(&target.settings().metric_relabel)
                .record(&reading.families, reading.timestamp_ms, true);
            Sampled {
                instance: target.instance().to_owned(),
                reading,
                record,
            }
        }));
    }
    let mut readings = Vec::new();
    for task in tasks {
        if let Ok(sampled) = task.await {
            readings.push(sampled);
        }
    }
    readings
}

fn exposition(readings: &[Sampled]) -> String {
    let mut out = String::new();
    if let [only] = readings {
        write_series(&mut out, &only.record.series, &[]);
    } else {
        let targets = readings
            .iter()
            .map(|s| (s.instance.clone(), s.record.clone()))
            .collect();
        write_targets(&mut out, targets);
    }
    printable(out)
}

/// The page as printed to a terminal: a label value from Redis may hold
/// control characters, which the text format passes as they are (only `\n`,
/// `\\` and `"` are escaped) but a terminal would obey. Each is shown as
/// U+FFFD; line ends are the format's own.
fn printable(page: String) -> String {
    if !page.chars().any(|c| c.is_control() && c != '\n') {
        return page;
    }
    page.chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}
