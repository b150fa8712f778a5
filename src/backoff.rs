//! One jittered exponential backoff, shared by everything that retries a remote (the Docker API today;
//! ACME and health checks may use it too).
//!
//! The delay doubles from `initial` up to `max`; each delay is drawn in `[base/2, base]` ("equal jitter") so
//! that many swarmgate replicas that lost the same daemon do not reconnect in lock-step. [`Backoff::reset`]
//! after a success. The arithmetic is pure ([`Backoff::next_with`] takes the random draw), so tests are
//! deterministic; [`Backoff::next_delay`] draws from `fastrand`.

use std::time::Duration;

/// Exponential backoff state.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A backoff starting at `initial` and capped at `max` (`max` below `initial` is raised to it).
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            current: initial,
        }
    }

    /// The Docker provider's reconnect schedule: 1 s doubling to 30 s.
    pub fn docker() -> Backoff {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// Next delay with a random draw `unit` in `[0, 1]` (clamped); advances the schedule.
    pub fn next_with(&mut self, unit: f64) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            1.0
        };
        base / 2 + base.mul_f64(unit / 2.0)
    }

    /// Next delay, jittered with `fastrand`.
    pub fn next_delay(&mut self) -> Duration {
        self.next_with(fastrand::f64())
    }

    /// Back to `initial` (call after a success).
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_bounds() {
        let mut b = Backoff::docker();
        let upper: Vec<u64> = (0..7)
            .map(|_| b.next_with(1.0).as_millis() as u64)
            .collect();
        assert_eq!(upper, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        b.reset();
        let lower: Vec<u64> = (0..3)
            .map(|_| b.next_with(0.0).as_millis() as u64)
            .collect();
        assert_eq!(lower, [500, 1000, 2000]);
        b.reset();
        assert_eq!(b.next_with(f64::NAN), Duration::from_secs(1));
        for _ in 0..100 {
            let d = b.next_delay();
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_secs(30));
        }
    }
}
