//! Routing-table costs, the two numbers that must stay flat as stacks grow:
//! - `lookup/N`: finding the router for a request among N host routers (the request targets the last one
//!   defined, plus a few path routers that every lookup must also consider). The host index makes this
//!   independent of N; a regression to scanning would show as linear growth.
//! - `compile/N`: building the whole table from N routers and services, cold (no state carried from a
//!   previous build): the control-plane cost of one configuration change on a large stack.
//!
//! Both run under the binary's allocator (jemalloc, `src/main.rs`): a build is mostly allocating and freeing
//! small values, so under glibc's malloc the bench measured an allocator the proxy does not use.

// Benchmark code: a failed unwrap, expect or index aborts the measurement on purpose; setup may use std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::{HeaderMap, Method};
use swarmgate::dynamic::{Configuration, LoadBalancer, Router, Server, Service};
use swarmgate::rule::{RequestView, Syntax};
use swarmgate::table::{compile, BuildInput, CarriedState, CompileContext, EntryPointInfo};

fn input(n: usize) -> BuildInput {
    let mut cfg = Configuration::default();
    for i in 0..n {
        cfg.http.routers.insert(
            format!("r{i}"),
            Router {
                rule: format!("Host(`app{i}.example.com`) && PathPrefix(`/`)"),
                service: format!("s{i}"),
                ..Default::default()
            },
        );
        cfg.http.services.insert(
            format!("s{i}"),
            Service {
                load_balancer: Some(LoadBalancer {
                    servers: vec![
                        Server {
                            url: format!("http://10.0.{}.{}:80", i / 250, i % 250),
                            ..Default::default()
                        },
                        Server {
                            url: format!("http://10.1.{}.{}:80", i / 250, i % 250),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
    }
    for p in ["/api", "/static", "/admin"] {
        cfg.http.routers.insert(
            format!("path{p}"),
            Router {
                rule: format!("PathPrefix(`{p}`)"),
                service: "s0".into(),
                ..Default::default()
            },
        );
    }
    let mut providers = BTreeMap::new();
    providers.insert("file".to_string(), Arc::new(cfg));
    BuildInput { providers }
}

fn ctx() -> CompileContext {
    CompileContext {
        entry_points: vec![EntryPointInfo {
            name: "web".into(),
            ..Default::default()
        }],
        default_syntax: Syntax::V3,
        tls: None,
        internal: Vec::new(),
        metrics: None,
        tcp_transport: None,
        udp_entry_points: Vec::new(),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    for n in [10usize, 1_000, 10_000] {
        let compiled = compile(&input(n), &ctx(), &CarriedState::default(), 1);
        let table = compiled.table;
        let host = format!("app{}.example.com", n - 1);
        let headers = HeaderMap::new();
        let client_ip: std::net::IpAddr = "127.0.0.1".parse().expect("ip");
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let view = RequestView {
                    host: black_box(&host),
                    path: black_box("/index.html"),
                    query: None,
                    method: &Method::GET,
                    headers: &headers,
                    client_ip,
                };
                let set = &table.entry_points[0].http;
                black_box(set.find(&view).map(|r| r.service))
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    for n in [1_000usize, 10_000] {
        let big = input(n);
        g.bench_function(n.to_string(), |b| {
            b.iter(|| {
                black_box(
                    compile(&big, &ctx(), &CarriedState::default(), 1)
                        .table
                        .generation,
                )
            })
        });
    }
    g.finish();
}

/// The allocator `src/main.rs` installs, so the numbers are the binary's.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

criterion_group!(benches, bench);
criterion_main!(benches);
