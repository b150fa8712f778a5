//! `rateLimit`: at most `average` requests per `period` per source, with bursts of `burst`, as Traefik
//! (which uses Go's `x/time/rate` token bucket).
//!
//! The bucket is kept as GCRA's "theoretical arrival time" in one atomic per source, updated by
//! compare-and-swap: no lock on the request path (the source map is sharded; a new source takes a shard
//! write lock once). Like Traefik, a request that is only slightly early is delayed instead of rejected
//! (up to half the emission interval, 500 ms below one request per second); later ones get 429 with
//! `Retry-After` (whole seconds) and `X-Retry-In`. Time is passed in, so the logic is tested without clocks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use http::{HeaderValue, StatusCode};

use super::opts::Opts;
use super::source_criterion::SourceCriterion;
use super::{text_response, Cx, Flow, MiddlewareError, Req};

/// Sources kept before idle ones (whose bucket is full again) are dropped.
const MAX_SOURCES: usize = 65_536;

/// A compiled rate limiter with its per-source state.
#[derive(Debug)]
pub struct RateLimit {
    /// Nanoseconds between two requests at the average rate (0 = no limit).
    interval: u64,
    /// Burst tolerance in nanoseconds (`burst × interval`).
    tolerance: u64,
    /// Longest delay imposed instead of a rejection.
    max_delay: u64,
    source: SourceCriterion,
    base: Instant,
    buckets: DashMap<String, AtomicU64>,
}

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve it after `delay` nanoseconds (usually 0).
    Allow {
        /// Delay in nanoseconds.
        delay: u64,
    },
    /// Reject it; a request would be allowed again after `retry_in` nanoseconds.
    Reject {
        /// Nanoseconds until the next token.
        retry_in: u64,
    },
}

impl RateLimit {
    /// Reads `average`, `period` (default 1s), `burst` (default 1), `sourceCriterion`.
    pub fn build(mut o: Opts<'_>) -> Result<RateLimit, MiddlewareError> {
        let average = o.f64("average")?.unwrap_or(0.0);
        if average < 0.0 {
            return Err(o.err("average", "must not be negative"));
        }
        let period = o.duration("period")?.unwrap_or(Duration::from_secs(1));
        if period.is_zero() {
            return Err(o.err("period", "must be positive"));
        }
        let burst = o.u64("burst")?.unwrap_or(1).max(1);
        let source = SourceCriterion::from_parent(&mut o)?;
        o.finish()?;
        let (interval, max_delay) = if average == 0.0 {
            (0, 0)
        } else {
            let interval = (period.as_nanos() as f64 / average).max(1.0) as u64;
            let per_second = average * 1e9 / period.as_nanos() as f64;
            let max_delay = if per_second < 1.0 {
                500_000_000
            } else {
                (1e9 / (per_second.floor() * 2.0)) as u64
            };
            (interval, max_delay)
        };
        Ok(RateLimit {
            interval,
            tolerance: interval.saturating_mul(burst),
            max_delay,
            source,
            base: Instant::now(),
            buckets: DashMap::new(),
        })
    }

    /// Decides for a request from `key` at `now` (nanoseconds since this limiter was built).
    pub fn decide(&self, key: &str, now: u64) -> Decision {
        if self.interval == 0 {
            return Decision::Allow { delay: 0 };
        }
        if let Some(tat) = self.buckets.get(key) {
            return self.update(&tat, now);
        }
        if self.buckets.len() >= MAX_SOURCES {
            // Buckets whose arrival time has passed are full again: dropping them changes nothing.
            self.buckets.retain(|_, t| t.load(Ordering::Relaxed) > now);
        }
        let entry = self
            .buckets
            .entry(key.to_string())
            .or_insert_with(|| AtomicU64::new(0));
        self.update(entry.value(), now)
    }

    fn update(&self, tat: &AtomicU64, now: u64) -> Decision {
        let mut cur = tat.load(Ordering::Acquire);
        loop {
            let new_tat = cur.max(now) + self.interval;
            let allow_at = new_tat.saturating_sub(self.tolerance);
            let wait = allow_at.saturating_sub(now);
            if wait > self.max_delay {
                return Decision::Reject { retry_in: wait };
            }
            match tat.compare_exchange_weak(cur, new_tat, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Decision::Allow { delay: wait },
                Err(actual) => cur = actual,
            }
        }
    }

    /// Request step: may sleep a few milliseconds (as Traefik), or answer 429.
    pub async fn on_request(&self, req: &Req, cx: &Cx<'_>) -> Flow {
        if self.interval == 0 {
            return Flow::Next;
        }
        let key = self.source.key(req, cx);
        let now = self.base.elapsed().as_nanos() as u64;
        match self.decide(&key, now) {
            Decision::Allow { delay: 0 } => Flow::Next,
            Decision::Allow { delay } => {
                tokio::time::sleep(Duration::from_nanos(delay)).await;
                Flow::Next
            }
            Decision::Reject { retry_in } => {
                let mut r = text_response(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n");
                let secs = retry_in.div_ceil(1_000_000_000).max(1);
                r.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
                if let Ok(v) =
                    HeaderValue::from_str(&format!("{:?}", Duration::from_nanos(retry_in)))
                {
                    r.headers_mut().insert("x-retry-in", v);
                }
                Flow::Respond(r)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rl(v: serde_json::Value) -> RateLimit {
        RateLimit::build(Opts::new("rateLimit", &v).expect("o")).expect("b")
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn burst_then_average() {
        let r = rl(json!({"average": 100, "burst": 50}));
        // 50 at once pass, the 51st is delayed at most 5 ms (it is 10 ms early): rejected.
        for i in 0..50 {
            assert_eq!(
                r.decide("a", 0),
                Decision::Allow { delay: 0 },
                "request {i}"
            );
        }
        assert!(matches!(r.decide("a", 0), Decision::Reject { retry_in } if retry_in == 10 * MS));
        // Other sources have their own bucket.
        assert_eq!(r.decide("b", 0), Decision::Allow { delay: 0 });
        // Slightly early: delayed rather than rejected.
        assert_eq!(r.decide("a", 6 * MS), Decision::Allow { delay: 4 * MS });
        // 10 s of a request every millisecond: 100/s are accepted.
        let r = rl(json!({"average": 100, "burst": 50}));
        let accepted = (0..10_000u64)
            .filter(|i| matches!(r.decide("x", i * MS), Decision::Allow { .. }))
            .count();
        assert!((1048..=1052).contains(&accepted), "accepted {accepted}");
    }

    #[test]
    fn period_and_options() {
        let r = rl(json!({"average": "6", "period": "1m", "burst": 1}));
        assert_eq!(r.decide("k", 0), Decision::Allow { delay: 0 });
        assert!(matches!(r.decide("k", 1), Decision::Reject { .. }));
        assert_eq!(r.decide("k", 10_000 * MS), Decision::Allow { delay: 0 });
        assert_eq!(
            rl(json!({})).decide("k", 0),
            Decision::Allow { delay: 0 },
            "average 0 = no limit"
        );
        assert!(RateLimit::build(
            Opts::new("rateLimit", &json!({"period": "0s", "average": 1})).expect("o")
        )
        .is_err());
        let e = RateLimit::build(
            Opts::new("rateLimit", &json!({"average": 1, "sourceCriterion": {"requestHost": true, "requestHeaderName": "x"}})).expect("o"),
        )
        .expect_err("exclusive");
        assert!(e.message.contains("mutually exclusive"), "{e}");
    }
}
