//! Load balancing: which server of a service gets the request.
//!
//! Owns:
//! - [`wrr`]: the smooth weighted round robin, precomputed at table-build time
//!   and walked with one atomic counter per request;
//! - [`sticky`]: Traefik-compatible sticky cookies (names, values, legacy
//!   values, `Set-Cookie` serialization, `Cookie` parsing) and the
//!   value → server table built at compile time;
//! - [`health`]: the per-server health atomics the pick reads, and the pure
//!   parts of the active HTTP check (probe URL, redirects, verdict); the
//!   prober that writes them lives in `proxy::health_check`;
//! - [`service`]: the compiled services the table holds (load balancers,
//!   weighted services, servers), defined here so the pick needs no table;
//! - [`mod@pick`]: the per-request choice of a server over those services.
//!
//! The table builder constructs a [`WeightedRoundRobin`], a [`StickyTable`] and
//! a [`CookieSpec`] per service, and carries each server's `Arc<ServerHealth>`
//! over by server identity across rebuilds. The request handler then does, with
//! no lock and no allocation: [`find_cookie`] → [`StickyTable::lookup`] →
//! (server up? use it) else [`WeightedRoundRobin::pick`] with
//! [`ServerHealth::is_up`] at [`now_ms`].
//!
//! Must not: do I/O, take locks, allocate or log on the pick path; look
//! anything up by name per request (everything is indexed at build time); or
//! reach into the routing table (the pick gets the table's service list; health flows through the shared
//! atomics only). Nothing here does I/O: the active checker is `proxy::health_check`.

pub mod health;
pub mod pick;
pub mod service;
pub mod sticky;
pub mod wrr;

pub use health::{
    is_healthy_status, now_ms, probe_uri, CheckTarget, HealthCheckSettings, HealthError,
    ServerHealth,
};
pub use pick::{pick, service_up, Cookies};
pub use service::{
    InternalService, LoadBalancerRuntime, ServerRuntime, ServiceKind, ServiceRuntime,
    StickyRuntime, UpstreamScheme, WeightedRuntime,
};
pub use sticky::{
    cookie_name, cookie_value, default_cookie_name, find_cookie, CookieSpec, SameSite, StickyTable,
};
pub use wrr::WeightedRoundRobin;
