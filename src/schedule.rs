//! The adaptive interval controller: pure logic over readings and time.
//!
//! Each target starts at its base interval. A reading that shows the
//! instance is eventful halves the interval (down to `min`): ops/s far from
//! their moving average, memory near maxmemory, evictions or rejected
//! connections rising, the replication link down, a failed sample. Quiet
//! readings lengthen it by half again, step by step (up to `max`), after
//! three quiet readings in a row, so a flat workload settles at `max`.
//!
//! A slow sample means the server is struggling: the controller then never
//! shortens the interval, and lengthens it one step to take load off.
//!
//! The clock is an argument (`now`, time since any fixed start), so the
//! tests drive it by hand.

use std::time::Duration;

use crate::redis::info::{Info, number};

/// A sample this slow means the server is struggling.
pub(crate) const SLOW_SAMPLE: Duration = Duration::from_millis(500);
/// Quiet readings in a row before the interval lengthens one step.
const QUIET_READINGS: u32 = 3;
/// Ops/s differing from their moving average by more than this fraction
/// (and by more than `OPS_FLOOR`) count as eventful.
const OPS_DEVIATION: f64 = 0.5;
const OPS_FLOOR: f64 = 100.0;
/// Used memory above this fraction of maxmemory counts as eventful.
const MEMORY_PRESSURE: f64 = 0.9;
/// Weight of the newest rate in the moving average.
const EWMA_WEIGHT: f64 = 0.2;

/// What the controller needs from one sample.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Observation {
    pub ok: bool,
    pub duration: Duration,
    pub commands_processed: Option<f64>,
    pub used_memory: Option<f64>,
    pub maxmemory: Option<f64>,
    pub evicted_keys: Option<f64>,
    pub rejected_connections: Option<f64>,
    /// A replica whose link to its primary is down.
    pub master_link_down: bool,
}

impl Observation {
    /// Reads the fields the controller uses from a parsed INFO.
    pub(crate) fn from_info(info: &Info<'_>, duration: Duration) -> Observation {
        let field = |key: &str| info.get(key).and_then(number);
        Observation {
            ok: true,
            duration,
            commands_processed: field("total_commands_processed"),
            used_memory: field("used_memory"),
            maxmemory: field("maxmemory"),
            evicted_keys: field("evicted_keys"),
            rejected_connections: field("rejected_connections"),
            master_link_down: info.get("role") == Some("slave")
                && info.get("master_link_status") != Some("up"),
        }
    }

    pub(crate) fn failed(duration: Duration) -> Observation {
        Observation {
            ok: false,
            duration,
            ..Observation::default()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub base: Duration,
    pub min: Duration,
    pub max: Duration,
}

/// A change of interval and why.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Change {
    pub from: Duration,
    pub to: Duration,
    pub reason: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Controller {
    bounds: Bounds,
    adaptive: bool,
    current: Duration,
    quiet: u32,
    /// Moving average of ops/s.
    ops_average: Option<f64>,
    previous: Option<(Duration, Observation)>,
}

impl Controller {
    pub(crate) fn new(bounds: Bounds, adaptive: bool) -> Controller {
        Controller {
            bounds,
            adaptive,
            current: bounds.base,
            quiet: 0,
            ops_average: None,
            previous: None,
        }
    }

    pub(crate) fn interval(&self) -> Duration {
        self.current
    }

    /// Takes one sample's observation at `now` and returns the change of
    /// interval it causes, if any.
    pub(crate) fn observe(&mut self, now: Duration, obs: Observation) -> Option<Change> {
        let event = self.event(now, &obs);
        if obs.ok {
            self.previous = Some((now, obs));
        }
        if !self.adaptive {
            return None;
        }
        if obs.duration >= SLOW_SAMPLE {
            // Protect the server: never faster, one step slower.
            self.quiet = 0;
            let reason = format!("slow sample ({} ms)", obs.duration.as_millis());
            return self.set(self.longer(), reason);
        }
        match event {
            Some(reason) => {
                self.quiet = 0;
                self.set(self.shorter(), reason)
            }
            None => {
                self.quiet += 1;
                if self.quiet >= QUIET_READINGS {
                    self.quiet = 0;
                    self.set(self.longer(), "quiet".to_owned())
                } else {
                    None
                }
            }
        }
    }

    /// Why this observation is eventful, if it is. Also updates the ops/s
    /// moving average.
    fn event(&mut self, now: Duration, obs: &Observation) -> Option<String> {
        if !obs.ok {
            return Some("sample failed".to_owned());
        }
        let mut reason = None;
        if let (Some((then, prev)), Some(total)) = (self.previous, obs.commands_processed) {
            let seconds = now.saturating_sub(then).as_secs_f64();
            if let Some(prev_total) = prev.commands_processed
                && seconds > 0.0
                && total >= prev_total
            {
                let rate = (total - prev_total) / seconds;
                if let Some(average) = self.ops_average {
                    let deviation = (rate - average).abs();
                    if deviation > OPS_FLOOR && deviation > OPS_DEVIATION * average {
                        reason = Some(format!("ops/s {rate:.0}, average {average:.0}"));
                    }
                    self.ops_average = Some(average + EWMA_WEIGHT * (rate - average));
                } else {
                    self.ops_average = Some(rate);
                }
            }
        }
        if reason.is_some() {
            return reason;
        }
        if let (Some(used), Some(max)) = (obs.used_memory, obs.maxmemory)
            && max > 0.0
            && used >= MEMORY_PRESSURE * max
        {
            return Some(format!("memory at {:.0}% of maxmemory", 100.0 * used / max));
        }
        let rising = |now: Option<f64>, before: Option<f64>| matches!((now, before), (Some(n), Some(b)) if n > b);
        if let Some((_, prev)) = self.previous {
            if rising(obs.evicted_keys, prev.evicted_keys) {
                return Some("keys evicted".to_owned());
            }
            if rising(obs.rejected_connections, prev.rejected_connections) {
                return Some("connections rejected".to_owned());
            }
        }
        if obs.master_link_down {
            return Some("replication link down".to_owned());
        }
        None
    }

    fn shorter(&self) -> Duration {
        (self.current / 2).max(self.bounds.min)
    }

    fn longer(&self) -> Duration {
        (self.current + self.current / 2).min(self.bounds.max)
    }

    fn set(&mut self, to: Duration, reason: String) -> Option<Change> {
        if to == self.current {
            return None;
        }
        let from = std::mem::replace(&mut self.current, to);
        Some(Change { from, to, reason })
    }
}

/// The wait between a target's first and second sample: between half and
/// one and a half intervals, at a point fixed by the target's name.
///
/// Every target takes its first sample at once when the agent starts; with
/// a fixed interval they would then all sample in the same instant forever
/// after. At 1000 targets that is a burst of a whole interval's readings
/// (encoding, queue writes, requests) every interval and an idle agent in
/// between; spreading the phases, as Prometheus spreads its scrapes, turns
/// it into a steady trickle. Stable per name, so a restart keeps the phase.
pub(crate) fn first_gap(name: &str, interval: Duration) -> Duration {
    // FNV-1a (stable across runs and builds, unlike the std hasher), then
    // a 64-bit finaliser: FNV alone leaves names that differ only in their
    // last characters (ports) close together in the high bits.
    let mut hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    let fraction = (hash >> 11) as f64 / (1u64 << 53) as f64;
    interval.mul_f64(0.5 + fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_gaps_spread_over_one_interval_and_stay_put() {
        let interval = Duration::from_secs(10);
        let gaps: Vec<Duration> = (0..1000)
            .map(|port| first_gap(&format!("10.0.0.1:{port}"), interval))
            .collect();
        assert!(
            gaps.iter()
                .all(|g| *g >= interval / 2 && *g < interval * 3 / 2)
        );
        // Each tenth of the range holds about a tenth of the targets.
        let mut buckets = [0u32; 10];
        for g in &gaps {
            let i = ((g.as_secs_f64() - 5.0) / 1.0) as usize;
            buckets[i.min(9)] += 1;
        }
        assert!(
            buckets.iter().all(|&n| (50..=150).contains(&n)),
            "{buckets:?}"
        );
        assert_eq!(first_gap("a:1", interval), first_gap("a:1", interval));
        assert_ne!(first_gap("a:1", interval), first_gap("a:2", interval));
    }

    const S: Duration = Duration::from_secs(1);

    fn bounds() -> Bounds {
        Bounds {
            base: 10 * S,
            min: S,
            max: 60 * S,
        }
    }

    /// A healthy reading with `commands` processed so far.
    fn quiet(commands: f64) -> Observation {
        Observation {
            ok: true,
            duration: Duration::from_millis(2),
            commands_processed: Some(commands),
            used_memory: Some(1e6),
            maxmemory: Some(0.0),
            evicted_keys: Some(0.0),
            rejected_connections: Some(0.0),
            master_link_down: false,
        }
    }

    /// Feeds readings at the controller's own interval with a steady 50 ops/s;
    /// returns the clock and command count reached.
    fn run_quiet(
        c: &mut Controller,
        mut now: Duration,
        mut commands: f64,
        readings: usize,
    ) -> (Duration, f64) {
        for _ in 0..readings {
            let step = c.interval();
            now += step;
            commands += 50.0 * step.as_secs_f64();
            c.observe(now, quiet(commands));
        }
        (now, commands)
    }

    #[test]
    fn a_flat_workload_settles_at_max_step_by_step() {
        let mut c = Controller::new(bounds(), true);
        let mut seen = vec![c.interval()];
        let (mut now, mut commands) = (Duration::ZERO, 0.0);
        for _ in 0..40 {
            (now, commands) = run_quiet(&mut c, now, commands, 1);
            if seen.last() != Some(&c.interval()) {
                seen.push(c.interval());
            }
        }
        assert_eq!(c.interval(), 60 * S);
        // 10 s → 15 s → 22.5 s → 33.75 s → 50.6 s → 60 s: one step at a time.
        assert_eq!(seen.len(), 6, "{seen:?}");
        assert!(seen.windows(2).all(|w| w[1] > w[0] && w[1] <= w[0] * 3 / 2));
    }

    #[test]
    fn a_failed_sample_shortens_down_to_min() {
        let mut c = Controller::new(bounds(), true);
        let change = c.observe(S, Observation::failed(Duration::from_millis(1)));
        assert_eq!(
            change.map(|c| (c.to, c.reason)),
            Some((5 * S, "sample failed".to_owned()))
        );
        for i in 2..10 {
            c.observe(i * S, Observation::failed(Duration::from_millis(1)));
        }
        assert_eq!(c.interval(), S);
    }

    #[test]
    fn an_ops_spike_shortens() {
        let mut c = Controller::new(bounds(), true);
        let (now, commands) = run_quiet(&mut c, Duration::ZERO, 0.0, 2);
        let before = c.interval();
        // 5000 ops/s against an average of 50.
        let step = c.interval();
        let change = c.observe(now + step, quiet(commands + 5000.0 * step.as_secs_f64()));
        let change = change.expect("a change");
        assert_eq!(change.to, before / 2);
        assert!(change.reason.starts_with("ops/s 5000"), "{}", change.reason);
    }

    #[test]
    fn small_ops_changes_are_not_events() {
        let mut c = Controller::new(bounds(), true);
        let (now, commands) = run_quiet(&mut c, Duration::ZERO, 0.0, 2);
        // 120 ops/s against 50: more than 50% off, but under the floor of 100.
        let change = c.observe(now + 10 * S, quiet(commands + 1200.0));
        assert!(change.as_ref().is_none_or(|c| c.to > c.from), "{change:?}");
    }

    #[test]
    fn memory_near_maxmemory_shortens() {
        let mut c = Controller::new(bounds(), true);
        let mut obs = quiet(0.0);
        obs.used_memory = Some(95.0);
        obs.maxmemory = Some(100.0);
        let change = c.observe(S, obs).expect("a change");
        assert_eq!(change.to, 5 * S);
        assert_eq!(change.reason, "memory at 95% of maxmemory");
        // maxmemory 0 means no limit: never an event.
        let mut c = Controller::new(bounds(), true);
        let mut obs = quiet(0.0);
        obs.used_memory = Some(1e12);
        obs.maxmemory = Some(0.0);
        assert_eq!(c.observe(S, obs), None);
    }

    #[test]
    fn evictions_and_rejections_rising_shorten() {
        for field in ["evicted", "rejected"] {
            let mut c = Controller::new(bounds(), true);
            c.observe(10 * S, quiet(500.0));
            let mut obs = quiet(1000.0);
            match field {
                "evicted" => obs.evicted_keys = Some(3.0),
                _ => obs.rejected_connections = Some(1.0),
            }
            let change = c.observe(20 * S, obs).expect("a change");
            assert_eq!(change.to, 5 * S, "{field}");
        }
    }

    #[test]
    fn replication_link_down_shortens() {
        let mut c = Controller::new(bounds(), true);
        let mut obs = quiet(0.0);
        obs.master_link_down = true;
        assert_eq!(
            c.observe(S, obs).map(|c| c.reason),
            Some("replication link down".to_owned())
        );
    }

    #[test]
    fn a_slow_sample_never_shortens() {
        let mut c = Controller::new(bounds(), true);
        // Failed and slow (a timeout): the server is struggling.
        let change = c
            .observe(S, Observation::failed(Duration::from_secs(5)))
            .expect("a change");
        assert_eq!(change.to, 15 * S);
        assert!(
            change.reason.starts_with("slow sample"),
            "{}",
            change.reason
        );
        // Eventful but slow: still no faster.
        let mut obs = quiet(0.0);
        obs.used_memory = Some(99.0);
        obs.maxmemory = Some(100.0);
        obs.duration = Duration::from_millis(800);
        let change = c.observe(2 * S, obs).expect("a change");
        assert!(change.to > change.from);
    }

    #[test]
    fn bounds_hold() {
        let tight = Bounds {
            base: 2 * S,
            min: 2 * S,
            max: 3 * S,
        };
        let mut c = Controller::new(tight, true);
        assert_eq!(
            c.observe(S, Observation::failed(Duration::ZERO)),
            None,
            "already at min"
        );
        run_quiet(&mut c, S, 0.0, 30);
        assert_eq!(c.interval(), 3 * S);
        c.observe(100 * S, Observation::failed(Duration::from_secs(1)));
        assert_eq!(c.interval(), 3 * S, "slow at max stays at max");
    }

    #[test]
    fn not_adaptive_stays_at_base() {
        let mut c = Controller::new(bounds(), false);
        assert_eq!(c.observe(S, Observation::failed(Duration::ZERO)), None);
        run_quiet(&mut c, S, 0.0, 30);
        assert_eq!(c.interval(), 10 * S);
    }

    #[test]
    fn observation_from_info() {
        let info = Info::parse(
            "# Replication\nrole:slave\nmaster_link_status:down\n# Stats\ntotal_commands_processed:42\nevicted_keys:3\n",
        );
        let obs = Observation::from_info(&info, Duration::from_millis(3));
        assert!(obs.ok && obs.master_link_down);
        assert_eq!(obs.commands_processed, Some(42.0));
        assert_eq!(obs.evicted_keys, Some(3.0));
        assert_eq!(obs.maxmemory, None);
    }
}
