//! The TCP half of the routing table: per entrypoint, the TCP routers in priority order (plain and TLS), what
//! the entrypoint's HTTPS routers claim (so HTTP and TCP routers share an entrypoint as in Traefik), and the
//! compiled TCP services and middlewares they point to.
//!
//! Immutable once built, swapped with the rest of the table. A route holds its service and middlewares by
//! `Arc`, so an accepted connection keeps what it needs and lets the table go.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use ipnet::IpNet;

use super::TableStatus;
use crate::balance::wrr::WeightedRoundRobin;
use crate::proxy_protocol::Version;
use crate::rule::TcpRule;

/// Every entrypoint's TCP routers, and the TCP items' statuses.
#[derive(Debug, Default)]
pub struct TcpTable {
    /// Per entrypoint, in the table's entrypoint order.
    pub entry_points: Box<[TcpEntryPoint]>,
    /// What became of every TCP router, service and middleware.
    pub status: TableStatus,
}

impl TcpTable {
    /// The TCP routes of entrypoint `index`, when it has any TCP router.
    #[inline]
    pub fn entry_point(&self, index: usize) -> Option<&TcpEntryPoint> {
        self.entry_points
            .get(index)
            .filter(|e| !e.plain.is_empty() || !e.tls.is_empty())
    }
}

/// Where a connection of one entrypoint goes, as Traefik's `tcp.Router` decides it.
#[derive(Debug, Default)]
pub struct TcpEntryPoint {
    /// Routers without `tls`, for connections that do not start with a TLS handshake; priority order.
    pub plain: Box<[Arc<TcpRoute>]>,
    /// Routers with `tls` (passthrough or terminated), matched on the ClientHello; priority order.
    pub tls: Box<[Arc<TcpRoute>]>,
    /// Server names the entrypoint's HTTPS routers name in `Host(...)`: such a TLS connection goes to HTTP
    /// before any TCP router that is not `HostSNI(`*`)`.
    pub https_hosts: HashSet<Box<str>>,
    /// Some HTTPS router names no host (a `PathPrefix` router): it takes TLS connections before a TCP
    /// `HostSNI(`*`)` router.
    pub https_catch_all: bool,
    /// The entrypoint has HTTPS routers at all.
    pub has_https: bool,
    /// `traefik_open_connections{entrypoint,protocol="TCP"}` (when metrics are on).
    pub open: Option<prometheus::IntGauge>,
}

impl TcpEntryPoint {
    /// True when only plain TCP routers can take a connection here (no TLS router of either kind): Traefik
    /// then routes at once, without waiting for the client to speak first.
    pub fn plain_only(&self) -> bool {
        !self.plain.is_empty() && self.tls.is_empty() && !self.has_https
    }

    /// The first plain router matching a connection from `ip`.
    pub fn find_plain(&self, ip: IpAddr) -> Option<&Arc<TcpRoute>> {
        self.plain.iter().find(|r| r.rule.matches(None, ip, &[]))
    }

    /// The first TLS router matching a ClientHello.
    pub fn find_tls(&self, sni: Option<&str>, ip: IpAddr, alpn: &[&str]) -> Option<&Arc<TcpRoute>> {
        self.tls.iter().find(|r| r.rule.matches(sni, ip, alpn))
    }
}

/// What a TCP router does with TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpTls {
    /// Not a TLS router.
    None,
    /// Forwards the TLS bytes untouched.
    Passthrough,
    /// Terminates TLS with the table's certificates and options, forwards the plain bytes.
    Terminate,
}

/// One TCP router on one entrypoint.
#[derive(Debug)]
pub struct TcpRoute {
    /// Qualified name.
    pub name: Arc<str>,
    /// Its rule.
    pub rule: TcpRule,
    /// Effective priority.
    pub priority: i64,
    /// The rule is exactly `HostSNI(`*`)` (Traefik's catch-all, tried after specific routers).
    pub catch_all: bool,
    /// TLS handling.
    pub tls: TcpTls,
    /// Middlewares in order.
    pub middlewares: Box<[Arc<TcpMiddleware>]>,
    /// Target service.
    pub service: Arc<TcpService>,
}

/// A compiled TCP middleware.
#[derive(Debug)]
pub enum TcpMiddleware {
    /// `ipAllowList.sourceRange` (and the deprecated `ipWhiteList`): other clients are closed.
    IpAllowList(Box<[IpNet]>),
    /// `inFlightConn.amount`: at most that many simultaneous connections per client IP.
    InFlightConn(InFlightConn),
}

impl TcpMiddleware {
    /// `ipAllowList`: whether `ip` is in its ranges (an IPv4 client also as its IPv4-mapped IPv6 form, as
    /// Go compares them); other middlewares allow everyone.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let TcpMiddleware::IpAllowList(nets) = self else {
            return true;
        };
        let ip = ip.to_canonical();
        let mapped = match ip {
            IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
            IpAddr::V6(_) => None,
        };
        nets.iter()
            .any(|n| n.contains(&ip) || mapped.is_some_and(|m| n.contains(&m)))
    }

    /// `inFlightConn`: a slot for `ip`, `None` when its connections are at the limit; other middlewares
    /// need no slot and get `None` too (callers only ask `inFlightConn`).
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<InFlightSlot> {
        match &**self {
            TcpMiddleware::InFlightConn(l) => l.acquire(self.clone(), ip),
            TcpMiddleware::IpAllowList(_) => None,
        }
    }
}

/// The per-IP connection counts of one `inFlightConn` middleware (touched at connect and close only).
#[derive(Debug)]
pub struct InFlightConn {
    /// The limit per client IP.
    pub amount: u64,
    counts: DashMap<IpAddr, u64>,
}

impl InFlightConn {
    /// A limit of `amount` connections per IP.
    pub fn new(amount: u64) -> InFlightConn {
        InFlightConn {
            amount,
            counts: DashMap::new(),
        }
    }

    /// Takes a slot for `ip` in `owner` (the middleware holding this limit), or `None` when `ip` already
    /// holds `amount` connections.
    fn acquire(&self, owner: Arc<TcpMiddleware>, ip: IpAddr) -> Option<InFlightSlot> {
        let mut n = self.counts.entry(ip).or_insert(0);
        if *n >= self.amount {
            return None;
        }
        *n += 1;
        drop(n);
        Some(InFlightSlot { owner, ip })
    }

    fn release(&self, ip: IpAddr) {
        self.counts.remove_if_mut(&ip, |_, n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
    }
}

/// One connection counted by an [`InFlightConn`]; gives its slot back when dropped.
#[derive(Debug)]
pub struct InFlightSlot {
    owner: Arc<TcpMiddleware>,
    ip: IpAddr,
}

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        if let TcpMiddleware::InFlightConn(l) = &*self.owner {
            l.release(self.ip);
        }
    }
}

/// A compiled TCP service.
#[derive(Debug)]
pub struct TcpService {
    /// Qualified name.
    pub name: Arc<str>,
    /// What it is.
    pub kind: TcpServiceKind,
}

/// The kinds of TCP service.
#[derive(Debug)]
pub enum TcpServiceKind {
    /// Servers picked by weighted round robin.
    LoadBalancer(TcpLoadBalancer),
    /// Weighted round robin over other TCP services.
    Weighted {
        /// The children.
        children: Box<[Arc<TcpService>]>,
        /// Pick order over `children`.
        wrr: WeightedRoundRobin,
    },
}

/// Servers of a TCP load balancer and how to reach them.
#[derive(Debug)]
pub struct TcpLoadBalancer {
    /// `host:port` of each server.
    pub servers: Box<[TcpServerTarget]>,
    /// Pick order over `servers`.
    pub wrr: WeightedRoundRobin,
    /// Dial settings.
    pub transport: Arc<TcpTransport>,
}

/// One TCP backend.
#[derive(Debug)]
pub struct TcpServerTarget {
    /// `host:port` as configured.
    pub address: Box<str>,
    /// Speak TLS to it (`servers[].tls`, or a transport with `tls`).
    pub tls: bool,
}

/// How connections to a service's servers are made.
#[derive(Debug)]
pub struct TcpTransport {
    /// Connect timeout.
    pub dial_timeout: Duration,
    /// TCP keep-alive period on the backend socket (`None`: off).
    pub keep_alive: Option<Duration>,
    /// Bound on the other direction once one side closed (`None`: unbounded, Traefik's negative value).
    pub termination_delay: Option<Duration>,
    /// PROXY protocol header to send first.
    pub proxy_protocol: Option<Version>,
    /// TLS client settings (when any server speaks TLS).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Server name to send and verify (`tls.serverName`; else the address's host).
    pub server_name: Option<String>,
}

/// Traefik's defaults: `dialTimeout` 30 s, `dialKeepAlive` 15 s, `terminationDelay` 100 ms.
impl Default for TcpTransport {
    fn default() -> Self {
        TcpTransport {
            dial_timeout: Duration::from_secs(30),
            keep_alive: Some(Duration::from_secs(15)),
            termination_delay: Some(Duration::from_millis(100)),
            proxy_protocol: None,
            tls: None,
            server_name: None,
        }
    }
}

/// Maximum depth of weighted services followed when picking (cycles are refused at build).
const MAX_DEPTH: usize = 8;

impl TcpService {
    /// Picks a server (weighted round robin, following weighted services down); lock-free.
    pub fn pick(&self) -> Option<(&TcpServerTarget, &Arc<TcpTransport>)> {
        self.pick_at(0)
    }

    fn pick_at(&self, depth: usize) -> Option<(&TcpServerTarget, &Arc<TcpTransport>)> {
        if depth > MAX_DEPTH {
            return None;
        }
        match &self.kind {
            TcpServiceKind::LoadBalancer(lb) => {
                let i = lb.wrr.pick(|_| true)?;
                lb.servers.get(i).map(|s| (s, &lb.transport))
            }
            TcpServiceKind::Weighted { children, wrr } => {
                let i = wrr.pick(|_| true)?;
                children.get(i)?.pick_at(depth + 1)
            }
        }
    }
}

/// Counts a connection in a gauge while held.
#[derive(Debug)]
pub struct OpenGuard(Option<prometheus::IntGauge>);

impl OpenGuard {
    /// Counts one more open connection on `gauge` (none: counts nothing).
    pub fn new(gauge: Option<&prometheus::IntGauge>) -> OpenGuard {
        if let Some(g) = gauge {
            g.inc();
        }
        OpenGuard(gauge.cloned())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.dec();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_conn_limits_per_ip_and_frees_on_drop() {
        let l = Arc::new(TcpMiddleware::InFlightConn(InFlightConn::new(2)));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = l.acquire(a).unwrap();
        let _s2 = l.acquire(a).unwrap();
        assert!(l.acquire(a).is_none(), "third connection from a is refused");
        let _s3 = l.acquire(b).unwrap();
        drop(s1);
        assert!(l.acquire(a).is_some(), "a slot is free again");
    }

    #[test]
    fn weighted_services_pick_through_children() {
        let lb = |addr: &str| {
            Arc::new(TcpService {
                name: addr.into(),
                kind: TcpServiceKind::LoadBalancer(TcpLoadBalancer {
                    servers: vec![TcpServerTarget {
                        address: addr.into(),
                        tls: false,
                    }]
                    .into(),
                    wrr: WeightedRoundRobin::new(&[1]),
                    transport: Arc::new(TcpTransport::default()),
                }),
            })
        };
        let w = TcpService {
            name: "w".into(),
            kind: TcpServiceKind::Weighted {
                children: vec![lb("a:1"), lb("b:1")].into(),
                wrr: WeightedRoundRobin::new(&[3, 1]),
            },
        };
        let picks: Vec<String> = (0..8)
            .map(|_| w.pick().unwrap().0.address.to_string())
            .collect();
        assert_eq!(picks.iter().filter(|p| *p == "a:1").count(), 6);
        assert_eq!(picks.iter().filter(|p| *p == "b:1").count(), 2);
    }
}
