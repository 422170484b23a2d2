//! When to say that something keeps failing (a push destination, a target):
//! the first failure at once, then at most one summary a minute while the
//! failures last, and one line when the first success ends them.
//!
//! Only the decision lives here, made from the outcomes and the instants
//! the caller gives (so it is tested without waiting); the caller writes the
//! line and adds what it knows (the backlog, the error).

use std::time::{Duration, Instant};

/// How often a summary may repeat while the failures last.
pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// The failures since the last success, if any.
#[derive(Debug, Default)]
pub(crate) struct FailureStreak {
    current: Option<Streak>,
}

#[derive(Debug, Clone, Copy)]
struct Streak {
    since: Instant,
    failures: u64,
    reported_at: Instant,
}

/// What a failure calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Report {
    /// The first failure after a success (or since the start): say it now.
    Started,
    /// Still failing, and the last line is a minute old: summarise.
    Continuing { lasted: Duration, failures: u64 },
    /// Still failing; said recently enough.
    Quiet,
}

/// The failures a success ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ended {
    pub(crate) lasted: Duration,
    pub(crate) failures: u64,
}

impl FailureStreak {
    /// Counts a failure at `now` and says what to log.
    pub(crate) fn failed(&mut self, now: Instant) -> Report {
        let Some(streak) = &mut self.current else {
            self.current = Some(Streak {
                since: now,
                failures: 1,
                reported_at: now,
            });
            return Report::Started;
        };
        streak.failures += 1;
        if now.saturating_duration_since(streak.reported_at) < SUMMARY_EVERY {
            return Report::Quiet;
        }
        streak.reported_at = now;
        Report::Continuing {
            lasted: now.saturating_duration_since(streak.since),
            failures: streak.failures,
        }
    }

    /// A success at `now`: the failures it ends, if there were any.
    pub(crate) fn succeeded(&mut self, now: Instant) -> Option<Ended> {
        self.current.take().map(|streak| Ended {
            lasted: now.saturating_duration_since(streak.since),
            failures: streak.failures,
        })
    }

    /// Failures since the last success.
    pub(crate) fn failures(&self) -> u64 {
        self.current.map_or(0, |s| s.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn first_at_once_then_a_summary_a_minute_then_the_end() {
        let t0 = Instant::now();
        let mut streak = FailureStreak::default();
        assert_eq!(streak.succeeded(t0), None, "nothing to end");
        assert_eq!(streak.failed(t0), Report::Started);
        assert_eq!(streak.failed(t0 + secs(5)), Report::Quiet);
        assert_eq!(streak.failed(t0 + secs(59)), Report::Quiet);
        assert_eq!(
            streak.failed(t0 + secs(60)),
            Report::Continuing {
                lasted: secs(60),
                failures: 4
            }
        );
        assert_eq!(streak.failed(t0 + secs(100)), Report::Quiet);
        assert_eq!(streak.failures(), 5);
        assert_eq!(
            streak.succeeded(t0 + secs(130)),
            Some(Ended {
                lasted: secs(130),
                failures: 5
            })
        );
        assert_eq!(streak.failures(), 0);
        assert_eq!(streak.failed(t0 + secs(131)), Report::Started);
    }

    proptest! {
        /// However outcomes fall, a streak's lines are its first failure and
        /// at most one per started minute after it, and the success that
        /// ends it reports every failure of it.
        #[test]
        fn lines_are_bounded_and_failures_counted(
            steps in prop::collection::vec((any::<bool>(), 0u64..30_000), 1..400)
        ) {
            let t0 = Instant::now();
            let mut streak = FailureStreak::default();
            let mut now = t0;
            let (mut failures, mut lines, mut since) = (0u64, 0u64, t0);
            for (ok, gap_ms) in steps {
                now += Duration::from_millis(gap_ms);
                if ok {
                    let ended = streak.succeeded(now);
                    if failures == 0 {
                        prop_assert_eq!(ended, None);
                    } else {
                        prop_assert_eq!(ended, Some(Ended { lasted: now - since, failures }));
                        let minutes = (now - since).as_secs() / SUMMARY_EVERY.as_secs();
                        prop_assert!(lines <= 1 + minutes, "{} lines in {} minutes", lines, minutes);
                    }
                    (failures, lines) = (0, 0);
                } else {
                    if failures == 0 {
                        since = now;
                    }
                    failures += 1;
                    match streak.failed(now) {
                        Report::Started => {
                            prop_assert_eq!(failures, 1);
                            lines += 1;
                        }
                        Report::Continuing { failures: n, lasted } => {
                            prop_assert_eq!(n, failures);
                            prop_assert_eq!(lasted, now - since);
                            lines += 1;
                        }
                        Report::Quiet => prop_assert!(failures > 1),
                    }
                }
                prop_assert_eq!(streak.failures(), failures);
            }
        }
    }
}
