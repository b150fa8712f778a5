//! Services as the table compiles them and the pick walks them: load balancers over servers, weighted
//! services over child services (by index into the table's service list), internal services, and each
//! server's address and shared health.
//!
//! Defined here, below the table, so that picking a server ([`super::pick()`]) and opening a connection to it
//! (the upstream pool) need nothing from the table; the table module re-exports them.

use std::sync::Arc;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::HeaderValue;

use super::health::ServerHealth;
use super::sticky::{CookieSpec, StickyTable};
use super::WeightedRoundRobin;

/// A compiled service.
#[derive(Debug)]
pub struct ServiceRuntime {
    /// Qualified name (`app@file`).
    pub name: Arc<str>,
    /// Its kind.
    pub kind: ServiceKind,
    /// Request metrics of this service (when metrics are on).
    pub stats: Option<Arc<crate::metrics::RequestStats>>,
}

/// What a service does with a request.
#[derive(Debug)]
pub enum ServiceKind {
    /// Balances over servers.
    LoadBalancer(LoadBalancerRuntime),
    /// Balances over child services.
    Weighted(WeightedRuntime),
    /// Answered by swarmgate itself (`api@internal`, `ping@internal`, …).
    Internal(InternalService),
}

/// The services swarmgate answers itself, referenced as `<name>@internal` (Traefik's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InternalService {
    /// `api@internal`: the read-only API.
    Api,
    /// `dashboard@internal`: the dashboard's pages.
    Dashboard,
    /// `ping@internal`: liveness (`OK`, 503 while shutting down).
    Ping,
    /// `prometheus@internal`: metrics exposition.
    Prometheus,
    /// `noop@internal`: answers nothing (418 in Traefik; used with redirect middlewares).
    Noop,
}

impl InternalService {
    /// Every internal service with its qualified name.
    pub const ALL: [(&'static str, InternalService); 5] = [
        ("api@internal", InternalService::Api),
        ("dashboard@internal", InternalService::Dashboard),
        ("ping@internal", InternalService::Ping),
        ("prometheus@internal", InternalService::Prometheus),
        ("noop@internal", InternalService::Noop),
    ];
}

/// A load balancer over servers.
#[derive(Debug)]
pub struct LoadBalancerRuntime {
    /// The servers, in configuration order.
    pub servers: Box<[ServerRuntime]>,
    /// Lock-free weighted round robin over `servers`.
    pub wrr: WeightedRoundRobin,
    /// Cookie affinity.
    pub sticky: Option<StickyRuntime>,
    /// Forward the client's Host header (else the server's authority).
    pub pass_host_header: bool,
}

/// A weighted service of services.
#[derive(Debug)]
pub struct WeightedRuntime {
    /// Child services (indices into the routing table's services).
    pub children: Box<[usize]>,
    /// Weighted round robin over `children`.
    pub wrr: WeightedRoundRobin,
    /// Cookie affinity to a child.
    pub sticky: Option<StickyRuntime>,
}

/// Sticky-cookie settings with everything precomputed: the request path allocates nothing.
#[derive(Debug)]
pub struct StickyRuntime {
    /// Cookie attributes and name.
    pub spec: CookieSpec,
    /// Cookie value → target index.
    pub table: StickyTable,
    /// Ready `Set-Cookie` value per target index.
    pub set_cookie: Box<[HeaderValue]>,
}

/// How to talk to a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamScheme {
    /// HTTP/1.1 over TCP (upgrades to h2 never happen without TLS).
    Http,
    /// TLS with ALPN (h2 or http/1.1).
    Https,
    /// HTTP/2 prior knowledge over TCP (gRPC backends).
    H2c,
}

/// One backend server, compiled.
#[derive(Debug)]
pub struct ServerRuntime {
    /// The URL as configured (identity for health carry-over, sticky values, logs).
    pub url: Arc<str>,
    /// Protocol.
    pub scheme: UpstreamScheme,
    /// The scheme used in the upstream request URI (`http` for h2c).
    pub uri_scheme: Scheme,
    /// `host:port`.
    pub authority: Authority,
    /// Path prefix of the URL kept with `preservePath`.
    pub base_path: Option<PathAndQuery>,
    /// `Host` value when not passing the client's.
    pub host_header: HeaderValue,
    /// Shared health state.
    pub health: Arc<ServerHealth>,
}
