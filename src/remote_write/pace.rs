//! `max_samples_per_second`: sends paced so that, on average, no more
//! samples a second go out than the endpoint allows (a backlog after a long
//! outage must not flood a receiver that sizes itself for the steady rate).
//! Pure: the caller gives the time.
//!
//! A batch may go once the batches before it have been paid for: a batch of
//! `n` samples sent at `t` lets the next one go at `t + n / rate` (or, if
//! the sender was idle longer, at once). In steady state, when the samples
//! come slower than the rate, no batch ever waits.

use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// Samples a second; `None`: unlimited.
    per_second: Option<u64>,
    /// When the next batch may go.
    next: Option<Instant>,
}

impl Pace {
    pub(crate) fn new(per_second: Option<u64>) -> Pace {
        Pace {
            per_second: per_second.filter(|&n| n > 0),
            next: None,
        }
    }

    /// How long a batch ready at `now` waits.
    pub(crate) fn wait(&self, now: Instant) -> Duration {
        self.next
            .map_or(Duration::ZERO, |next| next.saturating_duration_since(now))
    }

    /// A batch of `samples` went out at `now`.
    pub(crate) fn sent(&mut self, samples: usize, now: Instant) {
        if let Some(rate) = self.per_second {
            let from = self.next.map_or(now, |next| next.max(now));
            self.next = Some(from + Duration::from_secs_f64(samples as f64 / rate as f64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_waits() {
        let mut pace = Pace::new(None);
        let now = Instant::now();
        pace.sent(1_000_000, now);
        assert_eq!(pace.wait(now), Duration::ZERO);
    }

    #[test]
    fn batches_wait_for_what_the_ones_before_used() {
        let mut pace = Pace::new(Some(1000));
        let t0 = Instant::now();
        assert_eq!(pace.wait(t0), Duration::ZERO);
        pace.sent(500, t0);
        assert_eq!(pace.wait(t0), Duration::from_millis(500));
        // Sent late (it waited): the next is paced from when it could go.
        pace.sent(500, t0 + Duration::from_millis(500));
        assert_eq!(
            pace.wait(t0 + Duration::from_millis(600)),
            Duration::from_millis(400)
        );
        // Idle for long: no credit saved up beyond one batch, no wait.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(pace.wait(later), Duration::ZERO);
        pace.sent(2000, later);
        assert_eq!(pace.wait(later), Duration::from_secs(2));
    }

    proptest::proptest! {
        /// However batches come, what is sent from the first send on never
        /// runs ahead of the rate by more than the last batch.
        #[test]
        fn the_rate_holds_over_any_run(
            batches in proptest::collection::vec((1usize..5000, 0u64..3000), 1..40),
            rate in 100u64..10_000,
        ) {
            let mut pace = Pace::new(Some(rate));
            let start = Instant::now();
            let mut now = start;
            let mut sent = 0usize;
            for (samples, idle_ms) in batches {
                now += Duration::from_millis(idle_ms);
                now += pace.wait(now);
                // Everything sent before this batch was paid for by now.
                let allowed = rate as f64 * (now - start).as_secs_f64() + 1.0;
                proptest::prop_assert!(sent as f64 <= allowed + 1e-6 || sent == 0, "{} > {}", sent, allowed);
                pace.sent(samples, now);
                sent += samples;
            }
        }
    }
}
