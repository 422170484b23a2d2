//! Log lines for failures that can repeat many times a second (a full
//! disk, a receiver refusing everything, a Pushgateway down): the first at
//! once, then at most one a minute, the rest only counted by the metrics
//! that go with them.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often a throttled line may repeat.
const EVERY: Duration = Duration::from_secs(60);

/// When one kind of line was last written.
#[derive(Debug, Default)]
pub(crate) struct LogThrottle(Mutex<Option<Instant>>);

impl LogThrottle {
    /// Whether a line may be written now; if so, it counts as written.
    pub(crate) fn ready(&self) -> bool {
        self.ready_at(Instant::now())
    }

    fn ready_at(&self, now: Instant) -> bool {
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| now.saturating_duration_since(at) < EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_then_one_a_minute() {
        let throttle = LogThrottle::default();
        let start = Instant::now();
        assert!(throttle.ready_at(start));
        assert!(!throttle.ready_at(start + Duration::from_secs(59)));
        assert!(throttle.ready_at(start + EVERY));
        assert!(!throttle.ready_at(start + EVERY + Duration::from_secs(1)));
    }
}
