//! `rateLimit`: at most `average` requests per `period` per source, with bursts of `burst`, as Traefik
//! (which uses Go's `x/time/rate` token bucket).
//!
//! The bucket is kept as GCRA's "theoretical arrival time" (TAT) in one atomic per source, updated by
//! compare-and-swap. Like Traefik, a request that is only slightly early is delayed instead of rejected
//! (up to half the emission interval, 500 ms below one request per second); later ones get 429 with
//! `Retry-After` (whole seconds) and `X-Retry-In`. Time is passed in, so the logic is tested without clocks.
//!
//! The sources are chosen by the client (with `requestHeaderName`, any string), so the table of buckets
//! ([`Sources`]) is bounded in memory and in per-request work:
//! - a source is stored as a 64-bit keyed hash of its key (SipHash with a per-limiter random key, so a
//!   client cannot aim collisions), never the key itself: 16 bytes per source plus the index entry, whatever
//!   the header's length;
//! - at most [`MAX_SOURCES`] sources (Traefik's `maxSources`; about 2 MiB at most per `rateLimit`, grown as
//!   sources appear), in [`SHARDS`] shards of equal capacity;
//! - a source whose bucket is full again (TAT ≤ now) is idle: forgetting it changes no decision. Each new
//!   source first sweeps at most [`SWEEP`] entries of its shard (a cursor walks the shard round-robin), so
//!   idle sources are reclaimed at O(1) amortised cost and never by an O(n) pass;
//! - when a shard is full of active sources, a new source shares one overflow bucket (same `average` and
//!   `burst`) with every other source that found no room, until room frees up. Traefik evicts the entry
//!   closest to expiry instead, which lets a client that cycles through keys reset buckets, its own
//!   included; sharing the overflow bucket keeps a flood of fresh keys at one source's rate while the
//!   sources already tracked keep their own buckets.
//!
//! Lock-light: a known source costs one shard read lock (uncontended: one atomic operation) and a CAS, as
//! the `DashMap` this replaces did; a new source takes its shard's write lock once, for a bounded sweep and
//! an insert. State survives table rebuilds with the middleware itself (an unchanged middleware is reused).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use http::{HeaderValue, StatusCode};

use super::opts::Opts;
use super::source_criterion::SourceCriterion;
use super::{text_response, Cx, Flow, MiddlewareError, Req};

/// Sources tracked with a bucket of their own, per `rateLimit` middleware: 65,536, Traefik's `maxSources`
/// (so the same deployments fit), about 34 bytes each (16-byte slot, index entry) — at most about 2 MiB.
pub const MAX_SOURCES: usize = 65_536;

/// Shards of the source table, each with its own lock and `MAX_SOURCES / SHARDS` entries: enough that
/// worker threads rarely meet on one lock.
pub const SHARDS: usize = 64;

/// Entries a new source examines for idleness before it is inserted: the bound of per-request work.
pub const SWEEP: usize = 8;

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
    sources: Sources,
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

/// One tracked source: its key's hash and its bucket's TAT.
#[derive(Debug)]
struct Slot {
    key: u64,
    tat: AtomicU64,
}

/// Keys are already keyed SipHash outputs: the index uses them as they are.
#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the keys are u64); fold anything else in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One shard: slots in a vector (swept round-robin by `cursor`), indexed by key.
#[derive(Debug, Default)]
struct Shard {
    index: HashMap<u64, u32, BuildHasherDefault<KeyHasher>>,
    slots: Vec<Slot>,
    cursor: usize,
}

impl Shard {
    /// Drops idle slots (bucket full again at `now`) among the next `budget` ones; returns how many were
    /// examined.
    fn sweep(&mut self, now: u64, budget: usize) -> usize {
        let mut examined = 0;
        while examined < budget && !self.slots.is_empty() {
            if self.cursor >= self.slots.len() {
                self.cursor = 0;
            }
            examined += 1;
            let i = self.cursor;
            // `i` < len (checked above); a missing slot counts as busy and is never removed.
            let busy = self
                .slots
                .get(i)
                .is_none_or(|s| s.tat.load(Ordering::Acquire) > now);
            if busy {
                self.cursor += 1;
                continue;
            }
            let gone = self.slots.swap_remove(i);
            self.index.remove(&gone.key);
            if let Some(moved) = self.slots.get(i) {
                // The last slot moved into `i`: re-index it; the cursor examines it next.
                self.index.insert(moved.key, i as u32);
            }
        }
        examined
    }
}

/// The bounded table of buckets (see the module doc): a fixed number of shards of fixed capacity, plus
/// the overflow bucket shared by new sources that find their shard full of active ones.
#[derive(Debug)]
pub struct Sources {
    shards: Box<[RwLock<Shard>]>,
    per_shard: usize,
    overflow: AtomicU64,
    hasher: RandomState,
}

impl Sources {
    /// A table of at most `capacity` sources (rounded up to a multiple of [`SHARDS`]).
    fn new(capacity: usize) -> Sources {
        Sources {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            overflow: AtomicU64::new(0),
            hasher: RandomState::new(),
        }
    }

    /// The shard of a key: bits 32..38, which the shard's own index uses for neither its bucket position
    /// (low bits) nor its control tag (top 7 bits).
    // In bounds: `Sources::new` builds exactly SHARDS shards, and masking with SHARDS - 1 (a power of two,
    // asserted at compile time) keeps the index below SHARDS.
    #[allow(clippy::indexing_slicing)]
    fn shard(&self, key: u64) -> &RwLock<Shard> {
        const _: () = assert!(SHARDS.is_power_of_two());
        &self.shards[((key >> 32) as usize) & (SHARDS - 1)]
    }

    /// Sources tracked now (each with a bucket of its own).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).slots.len())
            .sum()
    }

    /// Whether no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most sources tracked at once.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }
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
            sources: Sources::new(MAX_SOURCES),
        })
    }

    /// Decides for a request from `key` at `now` (nanoseconds since this limiter was built).
    pub fn decide(&self, key: &str, now: u64) -> Decision {
        self.decide_hashed(self.sources.hasher.hash_one(key), now).0
    }

    /// Decides for the source whose keyed hash is `key`; also returns how many table entries were
    /// examined for eviction (at most [`SWEEP`]: the bound of per-request work).
    fn decide_hashed(&self, key: u64, now: u64) -> (Decision, usize) {
        if self.interval == 0 {
            return (Decision::Allow { delay: 0 }, 0);
        }
        let shard = self.sources.shard(key);
        {
            let s = shard.read().unwrap_or_else(|e| e.into_inner());
            if let Some(&i) = s.index.get(&key) {
                if let Some(slot) = s.slots.get(i as usize) {
                    return (self.update(&slot.tat, now), 0);
                }
            }
        }
        let mut s = shard.write().unwrap_or_else(|e| e.into_inner());
        // Another request of this source may have inserted it meanwhile.
        if let Some(&i) = s.index.get(&key) {
            if let Some(slot) = s.slots.get(i as usize) {
                return (self.update(&slot.tat, now), 0);
            }
        }
        let examined = s.sweep(now, SWEEP);
        if s.slots.len() >= self.sources.per_shard {
            drop(s);
            return (self.update(&self.sources.overflow, now), examined);
        }
        let i = s.slots.len();
        s.slots.push(Slot {
            key,
            tat: AtomicU64::new(0),
        });
        s.index.insert(key, i as u32);
        // The slot just pushed; the overflow bucket only if the push somehow left none.
        let tat = s
            .slots
            .last()
            .map_or(&self.sources.overflow, |slot| &slot.tat);
        (self.update(tat, now), examined)
    }

    /// The source table (tests and metrics).
    pub fn sources(&self) -> &Sources {
        &self.sources
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
        let key = self.source.key_hash(req, cx, &self.sources.hasher);
        let now = self.base.elapsed().as_nanos() as u64;
        match self.decide_hashed(key, now).0 {
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

    /// A limiter of `json` whose table holds `capacity` sources.
    fn rl_cap(v: serde_json::Value, capacity: usize) -> RateLimit {
        let mut r = rl(v);
        r.sources = Sources::new(capacity);
        r
    }

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn a_million_distinct_sources_stay_within_capacity_with_bounded_work_each() {
        // One request per minute per source: every source stays active for the whole run.
        let r = rl(json!({"average": 1, "period": "1m", "burst": 3}));
        assert_eq!(r.sources().capacity(), MAX_SOURCES);
        // A steady source tracked before the flood.
        for _ in 0..3 {
            assert_eq!(r.decide("steady", 0), Decision::Allow { delay: 0 });
        }
        let t0 = std::time::Instant::now();
        let (mut max_examined, mut allowed) = (0, 0usize);
        for i in 0..1_000_000u64 {
            let key = r.sources.hasher.hash_one(i.to_le_bytes());
            // A microsecond apart: the whole flood lasts one second.
            let (d, examined) = r.decide_hashed(key, 1_000 + i * 1_000);
            max_examined = max_examined.max(examined);
            allowed += usize::from(matches!(d, Decision::Allow { .. }));
            if i % 100_000 == 0 {
                // The steady source keeps its own (empty) bucket throughout.
                assert!(matches!(
                    r.decide("steady", i * 1_000),
                    Decision::Reject { .. }
                ));
            }
        }
        let elapsed = t0.elapsed();
        let len = r.sources().len();
        assert!(len <= MAX_SOURCES, "{len} sources tracked");
        // The shards filled up (hash spread is not perfectly even), then everyone else shared one bucket.
        assert!(len > MAX_SOURCES * 9 / 10, "{len}");
        assert!(
            max_examined <= SWEEP,
            "{max_examined} entries examined by one call"
        );
        // Sources with a bucket of their own each got their first request; the overflow bucket its burst.
        assert!(allowed <= len + 3 + 1, "{allowed} allowed, {len} tracked");
        eprintln!("1,000,000 distinct sources: {len} tracked, {allowed} allowed, {elapsed:?}");

        // A minute later every bucket is full again: new sources get buckets of their own (the sweep
        // reclaims idle entries), and the steady source is allowed again.
        let later = 62 * SEC;
        for i in 0..10_000u64 {
            let key = r.sources.hasher.hash_one((i + 5_000_000).to_le_bytes());
            let (d, examined) = r.decide_hashed(key, later + i);
            assert_eq!(d, Decision::Allow { delay: 0 }, "source {i}");
            assert!(examined <= SWEEP);
        }
        assert_eq!(r.decide("steady", later), Decision::Allow { delay: 0 });
        assert!(r.sources().len() <= MAX_SOURCES);
    }

    #[test]
    fn a_full_table_shares_one_overflow_bucket_and_keeps_tracked_sources() {
        // A table of 64 sources (one per shard), one request per second, burst 2.
        let r = rl_cap(json!({"average": 1, "burst": 2}), SHARDS);
        assert_eq!(r.sources().capacity(), SHARDS);
        let mut tracked = Vec::new();
        let mut overflowed = Vec::new();
        for i in 0..10_000u64 {
            let key = r.sources.hasher.hash_one(i.to_le_bytes());
            let before = r.sources().len();
            let (d, _) = r.decide_hashed(key, 0);
            if r.sources().len() > before {
                assert_eq!(d, Decision::Allow { delay: 0 });
                tracked.push(key);
            } else if overflowed.len() < 5 {
                overflowed.push((key, d));
            }
        }
        assert_eq!(r.sources().len(), SHARDS);
        assert_eq!(tracked.len(), SHARDS);
        // The first two new sources without room spent the overflow bucket's burst; the rest are limited.
        assert_eq!(overflowed[0].1, Decision::Allow { delay: 0 });
        assert_eq!(overflowed[1].1, Decision::Allow { delay: 0 });
        assert!(matches!(overflowed[2].1, Decision::Reject { .. }));
        // Tracked sources keep their own bucket (one token left of two).
        assert_eq!(
            r.decide_hashed(tracked[0], 0).0,
            Decision::Allow { delay: 0 }
        );
        assert!(matches!(
            r.decide_hashed(tracked[0], 0).0,
            Decision::Reject { .. }
        ));
        // Once buckets are full again, a new source reclaims an idle entry.
        let key = r.sources.hasher.hash_one(u64::MAX.to_le_bytes());
        let (d, examined) = r.decide_hashed(key, 10 * SEC);
        assert_eq!(d, Decision::Allow { delay: 0 });
        assert!((1..=SWEEP).contains(&examined));
        assert!(r.sources().len() <= SHARDS);
    }

    #[test]
    fn idle_sources_are_reclaimed_so_the_table_follows_the_active_set() {
        // 100 per second: a source is idle 10 ms after its request.
        let r = rl(json!({"average": 100, "burst": 1}));
        for i in 0..200_000u64 {
            let key = r.sources.hasher.hash_one(i.to_le_bytes());
            // One new source every 100 µs: about 100 are active at any time.
            let (d, examined) = r.decide_hashed(key, i * 100_000);
            assert_eq!(d, Decision::Allow { delay: 0 });
            assert!(examined <= SWEEP);
        }
        let len = r.sources().len();
        assert!(len < 2_000, "{len} sources kept for ~100 active");
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
