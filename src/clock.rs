//! Wall-clock time as samples carry it: milliseconds since the Unix epoch.
//!
//! Every stage that stamps or ages samples reads the clock here, so the one
//! rule about stamps lives in one place: a series' samples must have
//! strictly increasing timestamps (a receiver rejects an older or equal
//! one), even when the wall clock steps back or two samples share a
//! millisecond. [`Timestamps`] keeps it for one source of samples.

use std::time::SystemTime;

/// Milliseconds since the Unix epoch (0 for a clock set before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The stamps of one source of samples (a target, the agent's own
/// metrics): each later than the one before.
#[derive(Clone, Debug, Default)]
pub(crate) struct Timestamps {
    last_ms: i64,
}

impl Timestamps {
    /// The wall clock's time, or one millisecond after the last stamp if
    /// the clock has not moved past it.
    pub(crate) fn next(&mut self) -> i64 {
        self.next_at(now_ms())
    }

    fn next_at(&mut self, now_ms: i64) -> i64 {
        self.last_ms = now_ms.max(self.last_ms + 1);
        self.last_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_increase_whatever_the_clock_does() {
        let mut stamps = Timestamps::default();
        assert_eq!(stamps.next_at(1_000), 1_000);
        // The same millisecond, then a clock stepped back.
        assert_eq!(stamps.next_at(1_000), 1_001);
        assert_eq!(stamps.next_at(500), 1_002);
        assert_eq!(stamps.next_at(5_000), 5_000);
        assert!(stamps.next() > 5_000);
    }
}
