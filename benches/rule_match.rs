//! Single-rule evaluation: the cost of `Rule::matches` for rules typical of real stacks, plus
//! `normalize_host` / `parse_host` and `normalize_path`, which run once per request before any rule.
//!
//! Why: the hot path evaluates the rules of every candidate router for a request's host until
//! one matches, so this is the per-router cost the routing table multiplies. The rules are the
//! shapes Docker labels actually carry — `Host && PathPrefix` (most routers), a v3
//! `HostRegexp` (wildcard subdomains), a v2 multi-host rule (stacks migrated from Traefik v2) —
//! each timed on a request that matches and on one that misses, since a miss is what most
//! evaluations are. A percent-encoded path shows the lazy routing-path decoding. Parsing is
//! timed too, as a control-plane reference (it runs once per router per configuration change).
//! How many routers are searched (10 / 1,000 / 10,000) is the table's bench, not this one.

// Benchmark code: a failed unwrap, expect or index aborts the measurement on purpose; setup may use std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue, Method};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use swarmgate::rule::{
    normalize_host, normalize_path, parse, parse_host, RequestView, Rule, Syntax,
};

struct Request {
    host: &'static str,
    path: &'static str,
    query: Option<&'static str>,
    method: Method,
    headers: HeaderMap,
}

impl Request {
    fn new(host: &'static str, path: &'static str) -> Request {
        let mut headers = HeaderMap::new();
        headers.insert("user-agent", HeaderValue::from_static("bench/1.0"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        Request {
            host,
            path,
            query: Some("page=2&sort=name"),
            method: Method::GET,
            headers,
        }
    }

    fn view(&self) -> RequestView<'_> {
        RequestView {
            host: self.host,
            path: self.path,
            query: self.query,
            method: &self.method,
            headers: &self.headers,
            client_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
        }
    }
}

fn compiled(rule: &str, syntax: Syntax) -> Rule {
    match parse(rule, syntax) {
        Ok(r) => r,
        Err(e) => panic!("bench rule `{rule}` does not parse: {e}"),
    }
}

fn bench_matches(c: &mut Criterion) {
    let cases: [(&str, &str, Syntax, Request, bool); 8] = [
        (
            "v3 Host && PathPrefix / match",
            "Host(`app.example.com`) && PathPrefix(`/api`)",
            Syntax::V3,
            Request::new("app.example.com", "/api/v1/users"),
            true,
        ),
        (
            "v3 Host && PathPrefix / miss on path",
            "Host(`app.example.com`) && PathPrefix(`/api`)",
            Syntax::V3,
            Request::new("app.example.com", "/static/app.js"),
            false,
        ),
        (
            "v3 Host && PathPrefix / encoded path",
            "Host(`app.example.com`) && PathPrefix(`/api/my files`)",
            Syntax::V3,
            Request::new("app.example.com", "/api/my%20files/report.pdf"),
            true,
        ),
        (
            "v3 HostRegexp / match",
            r"HostRegexp(`^[a-z0-9-]+\.apps\.example\.com$`)",
            Syntax::V3,
            Request::new("tenant-42.apps.example.com", "/"),
            true,
        ),
        (
            "v3 HostRegexp / miss",
            r"HostRegexp(`^[a-z0-9-]+\.apps\.example\.com$`)",
            Syntax::V3,
            Request::new("www.example.org", "/"),
            false,
        ),
        (
            "v2 Host(a, b, c) && PathPrefix / match third host",
            "Host(`example.com`, `www.example.com`, `shop.example.com`) && PathPrefix(`/`)",
            Syntax::V2,
            Request::new("shop.example.com", "/cart"),
            true,
        ),
        (
            "v2 HostRegexp template / match",
            r"HostRegexp(`{subdomain:[a-z]+}.example.com`) && PathPrefix(`/{lang:[a-z]{2}}/`)",
            Syntax::V2,
            Request::new("blog.example.com", "/en/posts/1"),
            true,
        ),
        (
            "v3 mixed (Host && (PathPrefix || PathPrefix) && !Header && Method)",
            "Host(`app.example.com`) && (PathPrefix(`/api`) || PathPrefix(`/graphql`)) \
             && !Header(`X-Internal`, `1`) && Method(`GET`)",
            Syntax::V3,
            Request::new("app.example.com", "/graphql"),
            true,
        ),
    ];
    let mut group = c.benchmark_group("rule_match");
    for (name, rule, syntax, request, expected) in &cases {
        let rule = compiled(rule, *syntax);
        let view = request.view();
        assert_eq!(rule.matches(&view), *expected, "{name}");
        group.bench_function(*name, |b| {
            b.iter(|| black_box(&rule).matches(black_box(&view)))
        });
    }
    group.finish();
}

fn bench_normalize_host(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize_host");
    for (name, raw) in [
        ("already normalized", "app.example.com"),
        ("with port", "app.example.com:8443"),
        ("upper case (allocates)", "App.Example.COM"),
        ("bracketed IPv6 with port", "[2001:db8::1]:443"),
    ] {
        group.bench_function(name, |b| b.iter(|| normalize_host(black_box(raw))));
        // The hot path's validating form: the same normalization plus the syntax checks.
        group.bench_function(format!("parse_host: {name}"), |b| {
            b.iter(|| parse_host(black_box(raw)))
        });
    }
    group.finish();
}

fn bench_normalize_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize_path");
    for (name, raw) in [
        ("clean (borrowed)", "/api/v1/users/42/profile"),
        ("clean with escapes (borrowed)", "/files/a%2Fb/%E2%82%AC"),
        ("dot segments (allocates)", "/api/./v1//users/../users/42"),
        ("encoded dots (allocates)", "/x/%2e%2e/admin/%2e/panel"),
    ] {
        group.bench_function(name, |b| b.iter(|| normalize_path(black_box(raw), true)));
    }
    group.finish();
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("rule_parse");
    for (name, rule, syntax) in [
        (
            "v3 Host && PathPrefix",
            "Host(`app.example.com`) && PathPrefix(`/api`)",
            Syntax::V3,
        ),
        (
            "v3 HostRegexp",
            r"HostRegexp(`^[a-z0-9-]+\.apps\.example\.com$`)",
            Syntax::V3,
        ),
    ] {
        group.bench_function(name, |b| b.iter(|| parse(black_box(rule), syntax)));
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_matches,
    bench_normalize_host,
    bench_normalize_path,
    bench_parse
);
criterion_main!(benches);
