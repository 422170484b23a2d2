//! Log lines for failures that can repeat many times a second (a full
//! disk, a receiver refusing everything, a Pushgateway down): the first at
//! once, then at most one a minute, the rest only counted by the metrics
//! that go with them. And lines of one kind from many sources (thousands
//! of targets failing at once): a budget a minute for all of them, the
//! number left out said with the next line let through.

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

/// Whether a line of a [`LineBudget`] may be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Budget {
    /// Write it; `left_out` lines were held back before it (say so first).
    Say { left_out: u64 },
    /// Leave it out: the minute's budget is spent.
    Quiet,
}

/// At most `per_minute` lines a minute from all the sources that share it.
#[derive(Debug)]
pub(crate) struct LineBudget {
    per_minute: u32,
    state: Mutex<BudgetState>,
}

#[derive(Debug, Default)]
struct BudgetState {
    minute_from: Option<Instant>,
    used: u32,
    left_out: u64,
}

impl LineBudget {
    pub(crate) const fn new(per_minute: u32) -> Self {
        LineBudget {
            per_minute,
            state: Mutex::new(BudgetState {
                minute_from: None,
                used: 0,
                left_out: 0,
            }),
        }
    }

    /// Whether a line may be written now; if so, it counts as written.
    pub(crate) fn take(&self) -> Budget {
        self.take_at(Instant::now())
    }

    fn take_at(&self, now: Instant) -> Budget {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.minute_from
            .is_none_or(|from| now.saturating_duration_since(from) >= EVERY)
        {
            s.minute_from = Some(now);
            s.used = 0;
        }
        if s.used >= self.per_minute {
            s.left_out += 1;
            return Budget::Quiet;
        }
        s.used += 1;
        Budget::Say {
            left_out: std::mem::take(&mut s.left_out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_a_minute_and_the_left_out_said_after() {
        let budget = LineBudget::new(2);
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(budget.take_at(at(0)), Budget::Say { left_out: 0 });
        assert_eq!(budget.take_at(at(1)), Budget::Say { left_out: 0 });
        assert_eq!(budget.take_at(at(2)), Budget::Quiet);
        assert_eq!(budget.take_at(at(59)), Budget::Quiet);
        assert_eq!(budget.take_at(at(60)), Budget::Say { left_out: 2 });
        assert_eq!(budget.take_at(at(61)), Budget::Say { left_out: 0 });
        assert_eq!(budget.take_at(at(62)), Budget::Quiet);
    }

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
