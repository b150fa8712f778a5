//! swarmgate: an ingress load balancer for Docker Swarm that reads Traefik's labels, flags and files.
//!
//! # Layout
//!
//! Grouped by layer, top to bottom. **Every import points down**: a module names only modules in lower
//! layers (or beside it, without a cycle); what a lower layer needs from above is handed to it (the middleware
//! chain gets its final step from the handler, the proxy gets the internal services from `app.rs`). Check with
//! `python3 scripts/import-graph.py --level 1` and `--level 2`; docs/architecture.md walks through a request.
//!
//! ```text
//! wiring     app.rs      wiring and lifecycle (bind, start, supervise, drain; docs/lifecycle.md); injects
//!                        admin into the proxy
//!            main.rs     flags → static config → app; anyhow only here
//!            check.rs    `swarmgate check stack.yml`: the Docker label function run offline on a compose file
//!            guard/      `swarmgate socket-guard`: the Docker API allow-list proxy (names nothing in the crate)
//! admin/     internal services: API, dashboard, ping, metrics exposition (admin/metrics.rs reads the table)
//! proxy/     hot path: listener → handler (route, chain, terminal service) → forward; workers, spread
//!            (per-worker connection counts and hand-offs), deadline (connection timers), forward (headers);
//!            health_check: the active prober, over the pool's connector
//! table/     compile(snapshots) → RoutingTable; builder task; the one ArcSwap store; per-table state
//! middleware/ Traefik's HTTP middlewares: built per table, run per request as a chain ending in a Terminal
//! tls/       certificate store and resolver, TLS options, ACME (tls/acme/) and its challenges
//! provider/  sources of dynamic configuration, each publishing whole snapshots (file.rs, docker/)
//! upstream/  the pooled client to backends (pool.rs) and its transport settings (transport.rs)
//! accesslog.rs access-log records and their writer thread
//! rule/      rule language (v2 and v3) → matcher trees; pure
//! balance/   compiled services (service.rs), the pick (pick.rs), weighted round robin, sticky cookies,
//!            health state and the pure parts of active checks (probe URL, redirects, verdict); pure
//! http/      request-path vocabulary: bodies, ProxyError and its one status mapping, ConnInfo, Terminal
//! metrics.rs Prometheus registry and the typed per-request handles the hot path increments
//! config/    static configuration: flags, env, files → one tree (value::node) → typed StaticConfig
//! dynamic/   provider-neutral dynamic configuration (routers, services, middlewares, TLS) + item decoder;
//!            snapshot.rs: what providers publish
//! value/     the vocabulary config and dynamic share: the configuration tree (node.rs), Go durations
//! backoff.rs jittered exponential backoff (Docker reconnects, ACME retries)
//! cause.rs   why a connection failed (DNS, refused, timeout, TLS issuer), from an error source chain
//! supervisor.rs named background tasks (a panic or an early end stops the process); names nothing in
//!            the crate, so every task owner (providers, ACME, access log, app) can register with it
//! whoami.rs  the test backend used by the demo, tests and benches
//! fuzzing.rs invariant checks over untrusted input, run by the fuzz targets and the corpus replay test
//! ```
//!
//! Data flows one way: providers → builder → table → hot path. Nothing on the hot path writes back except
//! per-server health atomics and metric counters.

#![forbid(unsafe_code)]

#[allow(clippy::disallowed_methods)] // control plane: opens and reopens the access log file
pub mod accesslog;
pub mod admin;
#[allow(clippy::disallowed_methods)] // control plane: wiring at start (reads /etc/hostname)
pub mod app;
pub mod backoff;
pub mod balance;
pub mod cause;
pub mod check;
#[allow(clippy::disallowed_methods)] // control plane: loads the static configuration file
pub mod config;
pub mod dynamic;
/// Check functions shared by the cargo-fuzz targets in `fuzz/` and the corpus replay test; public for them only.
pub mod fuzzing;
pub mod guard;
pub mod http;
pub mod metrics;
pub mod middleware;
pub mod provider;
pub mod proxy;
pub mod proxy_protocol;
pub mod rule;
pub mod supervisor;
pub mod table;
pub mod tls;
pub mod upstream;
pub mod value;
pub mod whoami;
