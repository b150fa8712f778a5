//! What this measures: the per-request cost of choosing a backend, the part of
//! the hot path that `balance` owns.
//!
//! - `wrr_pick/all_up/{2,10,100}`: one `WeightedRoundRobin::pick` with every
//!   server up, health read through real `ServerHealth` atomics and one
//!   `now_ms()` per pick, as the handler does. Should be flat in the number of
//!   servers (one atomic add, one slot).
//! - `wrr_pick/no_health/100`: the same pick with a constant `is_up`, to
//!   separate the algorithm (one atomic add) from the clock read and health
//!   loads that dominate the line above.
//! - `wrr_pick/half_down/100`: every other server down, so each pick may skip
//!   one slot; shows the cost of walking past down servers.
//! - `sticky/lookup_and_decode`: `find_cookie` over a realistic `Cookie`
//!   header (several cookies, ours in the middle) followed by
//!   `StickyTable::lookup` on a 10-server table; `sticky/lookup_legacy` the
//!   same with a pre-3.3.4 FNV value.
//!
//! Why: these run on every proxied request, so a regression here is a
//! regression in latency for every route. Numbers are evidence for the docs,
//! not pass/fail thresholds.

// Benchmark code: a failed unwrap, expect or index aborts the measurement on purpose; setup may use std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use http::{HeaderMap, HeaderValue};
use swarmgate::balance::{find_cookie, now_ms, ServerHealth, StickyTable, WeightedRoundRobin};

fn servers(n: usize) -> Vec<Arc<ServerHealth>> {
    (0..n).map(|_| Arc::new(ServerHealth::new())).collect()
}

fn wrr_pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("wrr_pick");
    for n in [2usize, 10, 100] {
        let health = servers(n);
        let weights: Vec<u32> = (0..n).map(|i| 1 + (i % 3) as u32).collect();
        let wrr = WeightedRoundRobin::new(&weights);
        group.bench_with_input(BenchmarkId::new("all_up", n), &n, |b, _| {
            b.iter(|| {
                let now = now_ms();
                black_box(wrr.pick(|i| health[i].is_up(now)))
            });
        });
    }
    // The algorithm alone: no health read, no clock.
    let wrr = WeightedRoundRobin::new(&[1; 100]);
    group.bench_function(BenchmarkId::new("no_health", 100), |b| {
        b.iter(|| black_box(wrr.pick(|_| true)));
    });
    let health = servers(100);
    for (i, h) in health.iter().enumerate() {
        h.set_active(i % 2 == 0);
    }
    let wrr = WeightedRoundRobin::new(&[1; 100]);
    group.bench_function(BenchmarkId::new("half_down", 100), |b| {
        b.iter(|| {
            let now = now_ms();
            black_box(wrr.pick(|i| health[i].is_up(now)))
        });
    });
    group.finish();
}

fn sticky(c: &mut Criterion) {
    let urls: Vec<String> = (1..=10).map(|i| format!("http://10.0.1.{i}:80")).collect();
    let table = StickyTable::new(&urls);
    let current = table.value(6).unwrap_or_default().to_owned();
    let header = |value: &str| {
        let mut headers = HeaderMap::new();
        let line = format!("_ga=GA1.2.3.4; session=abcdef0123456789; _fb0b0={value}; theme=dark");
        if let Ok(v) = HeaderValue::from_str(&line) {
            headers.insert(http::header::COOKIE, v);
        }
        headers
    };
    let mut group = c.benchmark_group("sticky");
    let headers = header(&current);
    group.bench_function("lookup_and_decode", |b| {
        b.iter(|| {
            let value = find_cookie(black_box(&headers), "_fb0b0");
            black_box(value.and_then(|v| table.lookup(v)))
        });
    });
    // FNV-1 of the server URL, as Traefik 2.x/3.0–3.3.3 weighted services wrote.
    let legacy = {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in urls[6].as_bytes() {
            h = h.wrapping_mul(0x0000_0100_0000_01b3) ^ u64::from(b);
        }
        format!("{h:x}")
    };
    let headers = header(&legacy);
    group.bench_function("lookup_legacy", |b| {
        b.iter(|| {
            let value = find_cookie(black_box(&headers), "_fb0b0");
            black_box(value.and_then(|v| table.lookup(v)))
        });
    });
    group.finish();
}

criterion_group!(benches, wrr_pick, sticky);
criterion_main!(benches);
