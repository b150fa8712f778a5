//! Lock-free smooth weighted round robin.
//!
//! Owns one thing: turning a list of server weights into a fixed pick order at
//! table-build time, and walking that order on the hot path with one atomic
//! counter. It knows nothing about health: the caller passes an `is_up`
//! predicate, so the health state (atomics in [`super::health::ServerHealth`])
//! stays outside and this module stays pure and allocation-free per pick.
//!
//! # Order compared with Traefik
//!
//! Traefik's `wrr.Balancer` (`pkg/server/service/loadbalancer/wrr/wrr.go`) is an
//! earliest-deadline-first heap: each pick pops the handler with the smallest
//! deadline and pushes it back at `deadline + 1/weight`, under a mutex. We
//! precompute nginx's *smooth* weighted round robin instead and replay it with an
//! atomic cursor. Both give every server exactly `weight` picks per period of
//! `sum(weights)` picks, and both interleave rather than burst (3:1 gives
//! `A A B A` here; EDF gives `A A A B` or `A A B A` depending on heap tie-break).
//! Equal weights give strict alternation `A B A B …` in both. The exact order
//! is not observable in Traefik anyway, because `service.go` shuffles the server
//! list on every configuration build before adding servers to the balancer.
//!
//! Down servers: Traefik's EDF loop pops down servers (advancing their
//! deadline) until it meets an up one; we walk forward in the schedule from the
//! cursor to the next up server. Either way a down server's turns go to the
//! servers after it, and no down server is returned while an up one exists.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Largest schedule period we precompute before scaling weights down.
///
/// The schedule is one `u32` per slot, so this bounds its memory (16 KiB) and
/// the build-time cost (`period × servers` steps). Weight sums above it are
/// scaled proportionally; see [`WeightedRoundRobin::new`].
pub const MAX_PERIOD: u64 = 4096;

/// A precomputed smooth weighted round robin over servers `0..n`.
///
/// Built once on the control plane (table builder) from the servers' weights;
/// shared read-only by every request through the routing table. `pick` takes
/// `&self`, holds no lock and does not allocate, so the type is `Send + Sync`
/// and cheap to call from any number of connections at once.
#[derive(Debug)]
pub struct WeightedRoundRobin {
    /// Server indices in pick order; one period long. Empty when no server has
    /// a positive weight.
    schedule: Box<[u32]>,
    /// Effective (possibly scaled) weight per server, 0 for excluded servers.
    weights: Box<[u32]>,
    /// Monotonic pick counter; wraps on overflow (harmless: it only selects
    /// the starting slot).
    cursor: AtomicUsize,
}

impl WeightedRoundRobin {
    /// Builds the schedule for `weights`, where `weights[i]` is server `i`'s
    /// weight.
    ///
    /// * Weight 0 excludes the server: it never appears in the schedule and is
    ///   never picked. Traefik does the same (`wrr.Balancer.Add` ignores
    ///   non-positive weights; an absent weight defaults to 1 before it gets
    ///   here, which is the caller's job).
    /// * Positive weights are divided by their greatest common divisor. This
    ///   changes nothing observable (smooth WRR over `k·w` is the sequence over
    ///   `w` repeated `k` times) and keeps the schedule short: weights 100:200
    ///   give a period of 3, equal weights a period of `n`.
    /// * If the reduced sum still exceeds [`MAX_PERIOD`], every positive weight
    ///   is scaled to `max(1, w * MAX_PERIOD / sum)` (integer floor). Shares
    ///   are then kept to within one slot per server, a server with a tiny
    ///   weight still gets at least one turn per period, and the period is at
    ///   most `MAX_PERIOD + n`.
    /// * Servers past index `u32::MAX` are ignored (no real table has them).
    ///
    /// Control plane only: cost is O(period × n), or O(n) when all positive
    /// weights are equal (the usual Swarm case of identical tasks).
    #[must_use]
    pub fn new(weights: &[u32]) -> Self {
        let count = weights.len().min(u32::MAX as usize);
        let weights = weights.get(..count).unwrap_or(weights);
        let divisor = weights.iter().fold(0u32, |g, &w| gcd(g, w)).max(1);
        let reduced: Vec<u32> = weights.iter().map(|&w| w / divisor).collect();
        let sum: u64 = reduced.iter().map(|&w| u64::from(w)).sum();
        let effective: Box<[u32]> = if sum > MAX_PERIOD {
            reduced
                .iter()
                .map(|&w| {
                    if w == 0 {
                        0
                    } else {
                        let scaled = u64::from(w) * MAX_PERIOD / sum;
                        u32::try_from(scaled.max(1)).unwrap_or(u32::MAX)
                    }
                })
                .collect()
        } else {
            reduced.into_boxed_slice()
        };
        let schedule = build_schedule(&effective);
        Self {
            schedule,
            weights: effective,
            cursor: AtomicUsize::new(0),
        }
    }

    /// Picks the next server whose `is_up(index)` is true.
    ///
    /// Hot path. Advances the shared cursor by one (`Relaxed`: only the
    /// counter's own atomicity matters), then walks the schedule forward from
    /// that slot, calling `is_up` for each candidate, for at most one period.
    /// Returns `None` when no server with a positive weight is up (or there is
    /// none), which the caller maps to 503 as Traefik does ("no available
    /// server"). Never returns a server for which `is_up` returned false, and
    /// never returns a zero-weight server.
    ///
    /// With all servers up, any `k × period` consecutive picks from one thread
    /// give each server exactly `k × effective_weight` picks, i.e. shares
    /// exactly proportional to the configured weights. Under concurrency the
    /// shares hold over the whole set of picks, since each pick claims a
    /// distinct cursor value.
    pub fn pick(&self, mut is_up: impl FnMut(usize) -> bool) -> Option<usize> {
        let len = self.schedule.len();
        if len == 0 {
            return None;
        }
        let slot = self.cursor.fetch_add(1, Ordering::Relaxed) % len;
        // One lap of the schedule starting at `slot`: slot..len, then 0..slot.
        let (before, from) = (self.schedule.get(..slot), self.schedule.get(slot..));
        from.unwrap_or_default()
            .iter()
            .chain(before.unwrap_or_default())
            .map(|&server| server as usize)
            .find(|&server| is_up(server))
    }

    /// Number of slots in one period: the sum of the effective weights (the
    /// configured weights divided by their GCD, scaled down if needed).
    #[must_use]
    pub fn period(&self) -> usize {
        self.schedule.len()
    }

    /// Number of servers the balancer was built for, including zero-weight ones.
    #[must_use]
    pub fn server_count(&self) -> usize {
        self.weights.len()
    }

    /// Effective weight of server `index` after GCD reduction and scaling (0
    /// if excluded or out of range). For the admin API and tests; not used on the hot path.
    #[must_use]
    pub fn effective_weight(&self, index: usize) -> u32 {
        self.weights.get(index).copied().unwrap_or(0)
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Expands weights into one period of nginx smooth-WRR order.
///
/// Each step adds every weight to its server's running score, picks the
/// highest score (lowest index on ties) and subtracts the total from it.
fn build_schedule(weights: &[u32]) -> Box<[u32]> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    // (server index, weight) of every server that takes traffic.
    let positive: Vec<(u32, u32)> = (0u32..)
        .zip(weights.iter().copied())
        .filter(|&(_, w)| w > 0)
        .collect();
    let Some(&(_, first_weight)) = positive.first() else {
        return Box::new([]);
    };
    if positive.iter().all(|&(_, w)| w == first_weight) {
        // Smooth WRR with equal weights is plain rotation in index order,
        // `weight` times over (1 after GCD reduction).
        let rounds = first_weight as usize;
        let order: Vec<u32> = positive.iter().map(|&(i, _)| i).collect();
        return order.repeat(rounds).into_boxed_slice();
    }
    let total_i = i64::try_from(total).unwrap_or(i64::MAX);
    // Running score of each entry of `positive`, in the same order.
    let mut score = vec![0i64; positive.len()];
    let mut schedule = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        // (position in `positive`, its score): the highest score, lowest index on ties.
        let mut best: Option<(usize, i64)> = None;
        for (k, (s, &(_, w))) in score.iter_mut().zip(&positive).enumerate() {
            *s += i64::from(w);
            if best.is_none_or(|(_, b)| *s > b) {
                best = Some((k, *s));
            }
        }
        if let Some((k, _)) = best {
            if let (Some(s), Some(&(i, _))) = (score.get_mut(k), positive.get(k)) {
                *s -= total_i;
                schedule.push(i);
            }
        }
    }
    schedule.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn picks(wrr: &WeightedRoundRobin, n: usize, up: &[bool]) -> Vec<usize> {
        (0..n).filter_map(|_| wrr.pick(|i| up[i])).collect()
    }

    fn counts(picked: &[usize], servers: usize) -> Vec<usize> {
        let mut c = vec![0; servers];
        for &p in picked {
            c[p] += 1;
        }
        c
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<WeightedRoundRobin>();
    }

    #[test]
    fn equal_weights_alternate_strictly() {
        let wrr = WeightedRoundRobin::new(&[1, 1]);
        assert_eq!(picks(&wrr, 8, &[true, true]), [0, 1, 0, 1, 0, 1, 0, 1]);
        let wrr = WeightedRoundRobin::new(&[5, 5, 5]);
        assert_eq!(wrr.period(), 3);
        assert_eq!(wrr.effective_weight(0), 1);
        assert_eq!(picks(&wrr, 6, &[true; 3]), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn three_to_one_is_smooth_and_exact() {
        let wrr = WeightedRoundRobin::new(&[3, 1]);
        assert_eq!(picks(&wrr, 4, &[true, true]), [0, 0, 1, 0]);
        let wrr = WeightedRoundRobin::new(&[3, 1]);
        let c = counts(&picks(&wrr, 400, &[true, true]), 2);
        assert_eq!(c, [300, 100]);
    }

    #[test]
    fn weights_are_reduced_by_gcd() {
        let wrr = WeightedRoundRobin::new(&[100, 200, 0]);
        assert_eq!(wrr.period(), 3);
        assert_eq!(picks(&wrr, 6, &[true; 3]), [1, 0, 1, 1, 0, 1]);
        // Reduction before scaling: this sum is far above the limit but reduces to 3.
        let wrr = WeightedRoundRobin::new(&[1 << 30, 1 << 31]);
        assert_eq!(wrr.period(), 3);
    }

    #[test]
    fn zero_weight_is_never_picked() {
        // Traefik's TestBalancerOneServerZeroWeight.
        let wrr = WeightedRoundRobin::new(&[1, 0]);
        assert_eq!(picks(&wrr, 3, &[true, true]), [0, 0, 0]);
        let wrr = WeightedRoundRobin::new(&[0, 0]);
        assert_eq!(wrr.pick(|_| true), None);
        assert_eq!(wrr.effective_weight(1), 0);
        // The only up server has weight 0: nothing to pick.
        let wrr = WeightedRoundRobin::new(&[1, 0]);
        assert_eq!(wrr.pick(|i| i == 1), None);
    }

    #[test]
    fn empty_and_all_down_give_none() {
        let wrr = WeightedRoundRobin::new(&[]);
        assert_eq!(wrr.pick(|_| true), None);
        assert_eq!(wrr.server_count(), 0);
        let wrr = WeightedRoundRobin::new(&[1, 2, 3]);
        assert_eq!(wrr.pick(|_| false), None);
    }

    #[test]
    fn down_server_turns_go_to_the_others() {
        let wrr = WeightedRoundRobin::new(&[1, 1, 1]);
        let up = [true, false, true];
        let c = counts(&picks(&wrr, 300, &up), 3);
        assert_eq!(c[1], 0);
        assert_eq!(c[0] + c[2], 300);
    }

    #[test]
    fn large_sums_are_scaled_keeping_every_server() {
        let wrr = WeightedRoundRobin::new(&[1_000_000, 1, 3_000_000]);
        assert_eq!(wrr.server_count(), 3);
        assert!(wrr.period() as u64 <= MAX_PERIOD + 3);
        assert_eq!(wrr.effective_weight(1), 1);
        assert_eq!(wrr.effective_weight(0), 1023);
        assert_eq!(wrr.effective_weight(2), 3071);
        let c = counts(&picks(&wrr, wrr.period(), &[true; 3]), 3);
        assert_eq!(c, [1023, 1, 3071]);
        let wrr = WeightedRoundRobin::new(&[u32::MAX, u32::MAX]);
        assert_eq!(wrr.period(), 2);
    }

    #[test]
    fn many_servers_of_weight_one_exceed_the_limit_but_all_stay() {
        let weights = vec![1u32; 5000];
        let wrr = WeightedRoundRobin::new(&weights);
        assert_eq!(wrr.period(), 5000);
        let all_up = vec![true; 5000];
        let c = counts(&picks(&wrr, 5000, &all_up), 5000);
        assert!(c.iter().all(|&n| n == 1));
    }

    #[test]
    fn concurrent_picks_keep_exact_shares() {
        let wrr = std::sync::Arc::new(WeightedRoundRobin::new(&[3, 1, 2]));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let wrr = wrr.clone();
                std::thread::spawn(move || {
                    (0..600)
                        .filter_map(|_| wrr.pick(|_| true))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in threads {
            all.extend(t.join().unwrap_or_default());
        }
        assert_eq!(counts(&all, 3), [1200, 400, 800]);
    }

    proptest! {
        // No regression files: they would land outside this module's folder.
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn shares_are_exact_over_whole_periods(
            weights in prop::collection::vec(0u32..20, 1..12),
            k in 1usize..4,
            offset in 0usize..50,
        ) {
            let wrr = WeightedRoundRobin::new(&weights);
            let up = vec![true; weights.len()];
            // Start anywhere in the cycle: any window of whole periods is exact.
            for _ in 0..offset { wrr.pick(|i| up[i]); }
            let period = wrr.period();
            let g = weights.iter().fold(0, |g, &w| gcd(g, w)).max(1);
            prop_assert_eq!(period as u64, weights.iter().map(|&w| u64::from(w / g)).sum::<u64>());
            let got = counts(&picks(&wrr, k * period, &up), weights.len());
            let want: Vec<usize> = weights.iter().map(|&w| k * (w / g) as usize).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn never_picks_down_while_one_is_up(
            weights in prop::collection::vec(0u32..10, 1..10),
            up in prop::collection::vec(any::<bool>(), 10),
            n in 1usize..200,
        ) {
            let wrr = WeightedRoundRobin::new(&weights);
            let any_eligible = weights.iter().zip(&up).any(|(&w, &u)| w > 0 && u);
            for _ in 0..n {
                match wrr.pick(|i| up[i]) {
                    Some(i) => {
                        prop_assert!(up[i], "picked down server {}", i);
                        prop_assert!(weights[i] > 0, "picked zero-weight server {}", i);
                    }
                    None => prop_assert!(!any_eligible, "None while a server is up"),
                }
            }
        }

        #[test]
        fn scaled_shares_stay_close(
            weights in prop::collection::vec(1u32..100_000, 1..8),
        ) {
            let wrr = WeightedRoundRobin::new(&weights);
            let sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
            prop_assert!(wrr.period() as u64 <= MAX_PERIOD + weights.len() as u64);
            let period = wrr.period() as f64;
            for (i, &w) in weights.iter().enumerate() {
                let want = w as f64 / sum as f64;
                let got = f64::from(wrr.effective_weight(i)) / period;
                prop_assert!(wrr.effective_weight(i) >= 1);
                // One slot of rounding per server, relative to the period.
                prop_assert!((want - got).abs() <= (weights.len() as f64 + 1.0) / period);
            }
        }
    }
}
