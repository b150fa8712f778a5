//! swarmgate: an ingress load balancer for Docker Swarm that reads Traefik's labels, flags and files.
//!
//! # Layout
//!
//! ```text
//! value/     the vocabulary config and dynamic share: the configuration tree (node.rs), Go durations
//! config/    static configuration: flags, env, files → one tree (value::node) → typed StaticConfig
//! dynamic/   provider-neutral dynamic configuration (routers, services, middlewares, TLS) + item decoder
//! provider/  sources of dynamic configuration, each publishing whole snapshots (file.rs)
//! rule/      rule language (v2 and v3) → matcher trees; pure
//! table/     compile(snapshots) → RoutingTable; builder task; the one ArcSwap store
//! middleware/ Traefik's HTTP middlewares: built per table, run per request as a chain around the service
//! balance/   weighted round robin, sticky cookies, health state and active checks
//! proxy/     hot path: listener → handler (route, pick) → forward; one error → status mapping
//! app.rs     wiring and lifecycle (bind, start, drain)
//! backoff.rs jittered exponential backoff (Docker reconnects)
//! check.rs   `swarmgate check stack.yml`: the Docker label function run offline on a compose file
//! whoami.rs  the test backend used by the demo, tests and benches
//! fuzzing.rs invariant checks over untrusted input, run by the fuzz targets and the corpus replay test
//! ```
//!
//! Data flows one way: providers → builder → table → hot path. Nothing on the hot path writes back except
//! per-server health atomics.

#![forbid(unsafe_code)]

pub mod accesslog;
pub mod admin;
pub mod app;
pub mod backoff;
pub mod balance;
pub mod check;
pub mod config;
pub mod dynamic;
/// Check functions shared by the cargo-fuzz targets in `fuzz/` and the corpus replay test; public for them only.
pub mod fuzzing;
pub mod metrics;
pub mod middleware;
pub mod provider;
pub mod proxy;
pub mod rule;
pub mod table;
pub mod tls;
pub mod value;
pub mod whoami;
