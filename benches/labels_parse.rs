//! Docker provider control-plane cost at 5,000 Swarm services (Traefik takes minutes at that size,
//! traefik/traefik#11890):
//! - `labels/5000`: the pure label function for every service (8 labels each: router rule, entrypoints,
//!   middleware, TLS resolver, port, sticky cookie, health check, one middleware definition) plus Traefik's
//!   merge across workloads — what one rebuild after an event costs before the table is compiled;
//! - `labels+table/5000`: the same followed by compiling the routing table from the result, i.e. the whole
//!   path from Docker labels to a new `RoutingTable`.
//!
//! Run: `cargo bench --bench labels_parse`. Each service has 3 task addresses.

// Benchmark code: a failed unwrap, expect or index aborts the measurement on purpose; setup may use std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use swarmgate::provider::docker::assemble;
use swarmgate::provider::docker::labels::{Mode, Settings, Workload};
use swarmgate::rule::Syntax;
use swarmgate::table::{compile, BuildInput, CarriedState, CompileContext, EntryPointInfo};

fn workloads(n: usize) -> Vec<Workload> {
    (0..n)
        .map(|i| {
            let name = format!("stack_app{i}");
            let labels: BTreeMap<String, String> = [
                (
                    format!("traefik.http.routers.app{i}.rule"),
                    format!("Host(`app{i}.example.com`) && PathPrefix(`/`)"),
                ),
                (
                    format!("traefik.http.routers.app{i}.entrypoints"),
                    "web".to_string(),
                ),
                (
                    format!("traefik.http.routers.app{i}.middlewares"),
                    format!("hdr{i}"),
                ),
                (
                    format!("traefik.http.routers.app{i}.tls.certresolver"),
                    "le".to_string(),
                ),
                (
                    format!("traefik.http.middlewares.hdr{i}.headers.customresponseheaders.X-App"),
                    format!("app{i}"),
                ),
                (
                    format!("traefik.http.services.app{i}.loadbalancer.server.port"),
                    "8080".to_string(),
                ),
                (
                    format!("traefik.http.services.app{i}.loadbalancer.sticky.cookie"),
                    "true".to_string(),
                ),
                (
                    format!("traefik.http.services.app{i}.loadbalancer.healthcheck.path"),
                    "/health".to_string(),
                ),
                (
                    "com.docker.stack.namespace".to_string(),
                    "stack".to_string(),
                ),
            ]
            .into_iter()
            .collect();
            Workload {
                container_name: name.clone(),
                name,
                labels,
                exposed_ports: Vec::new(),
                addresses: (0..3)
                    .map(|t| format!("10.{t}.{}.{}", i / 250, i % 250))
                    .collect(),
                bindings: Vec::new(),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let ws = workloads(5_000);
    let settings = Settings::new(Mode::Swarm);
    let ctx = CompileContext {
        entry_points: vec![EntryPointInfo {
            name: "web".into(),
            ..Default::default()
        }],
        default_syntax: Syntax::V3,
        ..Default::default()
    };
    let check = assemble(&ws, &settings);
    assert!(check.errors.is_empty(), "{:?}", check.errors.first());
    assert_eq!(check.config.http.routers.len(), 5_000);
    let mut g = c.benchmark_group("docker");
    g.sample_size(10);
    g.bench_function("labels/5000", |b| {
        b.iter(|| {
            black_box(
                assemble(black_box(&ws), &settings)
                    .config
                    .http
                    .routers
                    .len(),
            )
        })
    });
    g.bench_function("labels+table/5000", |b| {
        b.iter(|| {
            let a = assemble(black_box(&ws), &settings);
            let mut providers = BTreeMap::new();
            providers.insert("swarm".to_string(), std::sync::Arc::new(a.config));
            let input = BuildInput { providers };
            black_box(
                compile(&input, &ctx, &CarriedState::default(), 1)
                    .table
                    .generation,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
