//! How one push destination (remote write, Pushgateway) is doing: the
//! failures since its last success, when it last delivered, its last error.
//! Its pusher reports each outcome here and logs what the answer calls
//! for (`failure_streak`); the status page reads a snapshot.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::clock::now_ms;
use crate::failure_streak::{Ended, FailureStreak, Report};
use crate::untrusted::one_line;

#[derive(Debug, Default)]
pub(crate) struct DeliveryStatus(Mutex<State>);

#[derive(Debug, Default)]
struct State {
    streak: FailureStreak,
    last_success_ms: Option<i64>,
    last_error: Option<String>,
}

/// A destination's status at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct DeliverySnapshot {
    pub(crate) last_success_ms: Option<i64>,
    /// The last failure or rejection, one line of text.
    pub(crate) last_error: Option<String>,
    pub(crate) consecutive_failures: u64,
}

impl DeliveryStatus {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An attempt that will be retried failed with `error`: what to log.
    pub(crate) fn failed(&self, error: &str) -> Report {
        let mut state = self.lock();
        state.last_error = Some(one_line(error));
        state.streak.failed(Instant::now())
    }

    /// The destination refused what was sent, for good (it is dropped):
    /// not a failure to deliver again, but the last error all the same.
    pub(crate) fn rejected(&self, error: &str) {
        self.lock().last_error = Some(one_line(error));
    }

    /// The destination took what was sent: the failures this ends, if any.
    pub(crate) fn delivered(&self) -> Option<Ended> {
        let mut state = self.lock();
        state.last_success_ms = Some(now_ms());
        state.streak.succeeded(Instant::now())
    }

    pub(crate) fn snapshot(&self) -> DeliverySnapshot {
        let state = self.lock();
        DeliverySnapshot {
            last_success_ms: state.last_success_ms,
            last_error: state.last_error.clone(),
            consecutive_failures: state.streak.failures(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_follows_the_outcomes() {
        let status = DeliveryStatus::default();
        assert_eq!(status.snapshot(), DeliverySnapshot::default());
        assert_eq!(status.failed("connection refused"), Report::Started);
        assert_eq!(status.failed("503\n"), Report::Quiet);
        let s = status.snapshot();
        assert_eq!(s.consecutive_failures, 2);
        assert_eq!(s.last_error.as_deref(), Some("503\\n"));
        assert_eq!(s.last_success_ms, None);
        let ended = status.delivered().expect("ends the failures");
        assert_eq!(ended.failures, 2);
        let s = status.snapshot();
        assert_eq!(s.consecutive_failures, 0);
        assert!(s.last_success_ms.is_some_and(|ms| ms > 0));
        status.rejected("400 out of order");
        assert_eq!(status.snapshot().consecutive_failures, 0);
        assert_eq!(
            status.snapshot().last_error.as_deref(),
            Some("400 out of order")
        );
    }
}
