//! What this measures: the header work every proxied request gets, on the request headers a browser or
//! load generator sends (Host, User-Agent, Accept, Accept-Encoding, a cookie), as hyper hands them over.
//!
//! - `header_rewrite/untrusted`: `sanitize_at_entry` (the entrypoint's cleaning), `strip_hop_by_hop` (the
//!   forwarding step's) then `set_forwarded` for a client outside `trustedIPs` (the common case: nothing
//!   to remove, six headers added).
//! - `header_rewrite/untrusted_spoofed`: the same client sending its own `X-Forwarded-For`, which must go.
//! - `header_rewrite/trusted_append`: a trusted peer's `X-Forwarded-For` gets the client appended.
//! - `header_rewrite/response`: `strip_hop_by_hop` on a typical backend response head.
//!
//! Why: this runs twice per request (request and response); it was ~7 % of the proxy's instructions per
//! request in callgrind. Each iteration includes cloning the input map, measured alone as
//! `header_rewrite/clone_only` so that it can be subtracted.

// Benchmark code: a failed unwrap, expect or index aborts the measurement on purpose; setup may use std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use swarmgate::proxy::forward::{sanitize_at_entry, set_forwarded, strip_hop_by_hop, ForwardInfo};

fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::with_capacity(5);
    h.insert("host", HeaderValue::from_static("app.example.com"));
    h.insert(
        "user-agent",
        HeaderValue::from_static("Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"),
    );
    h.insert("accept", HeaderValue::from_static("text/html,*/*;q=0.8"));
    h.insert("accept-encoding", HeaderValue::from_static("gzip, br"));
    h.insert("cookie", HeaderValue::from_static("sid=abc123; theme=dark"));
    h
}

fn bench(c: &mut Criterion) {
    let ip = HeaderValue::from_static("203.0.113.7");
    let port = HeaderValue::from_static("443");
    let server = HeaderValue::from_static("gateway-1");
    let host = HeaderValue::from_static("app.example.com");
    let info = ForwardInfo {
        client_ip: &ip,
        proto: "https",
        port: &port,
        server: &server,
        host: Some(&host),
    };
    let plain = request_headers();
    let mut spoofed = request_headers();
    spoofed.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
    let mut response = HeaderMap::new();
    response.insert("content-type", HeaderValue::from_static("text/html"));
    response.insert("content-length", HeaderValue::from_static("1234"));
    response.insert(
        "date",
        HeaderValue::from_static("Mon, 23 Nov 2026 22:00:00 GMT"),
    );
    response.insert("cache-control", HeaderValue::from_static("no-cache"));

    let mut g = c.benchmark_group("header_rewrite");
    g.bench_function("clone_only", |b| b.iter(|| black_box(plain.clone())));
    g.bench_function("untrusted", |b| {
        b.iter(|| {
            let mut h = plain.clone();
            sanitize_at_entry(&mut h, false);
            strip_hop_by_hop(&mut h, false);
            set_forwarded(&mut h, &info);
            black_box(h)
        })
    });
    g.bench_function("untrusted_spoofed", |b| {
        b.iter(|| {
            let mut h = spoofed.clone();
            sanitize_at_entry(&mut h, false);
            strip_hop_by_hop(&mut h, false);
            set_forwarded(&mut h, &info);
            black_box(h)
        })
    });
    g.bench_function("trusted_append", |b| {
        b.iter(|| {
            let mut h = spoofed.clone();
            sanitize_at_entry(&mut h, true);
            strip_hop_by_hop(&mut h, false);
            set_forwarded(&mut h, &info);
            black_box(h)
        })
    });
    g.bench_function("response", |b| {
        b.iter(|| {
            let mut h = response.clone();
            strip_hop_by_hop(&mut h, false);
            black_box(h)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
