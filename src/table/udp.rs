//! The UDP half of the routing table: per UDP entrypoint the one router Traefik serves there, and the UDP
//! services it reaches, compiled once per table and swapped with the rest of it.
//!
//! The UDP proxy reads this only when a datagram opens a new session (one per client address): it finds
//! its entrypoint's route and picks a server with [`UdpTable::pick`] (weighted round robin, atomics only,
//! following weighted services down to a load balancer). Datagrams of an existing session never read the
//! table.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::balance::WeightedRoundRobin;

/// The compiled UDP routers and services of one table.
#[derive(Debug, Default)]
pub struct UdpTable {
    /// One entry per UDP entrypoint, in the order the application bound them.
    pub entry_points: Box<[UdpEntryPoint]>,
    /// The enabled UDP services; routes and weighted services refer to them by index.
    pub services: Box<[UdpServiceRuntime]>,
}

/// What one UDP entrypoint serves.
#[derive(Debug, Default)]
pub struct UdpEntryPoint {
    /// The entrypoint's name.
    pub name: String,
    /// The router served here: UDP has no rules, so at most one (Traefik's choice when several name the
    /// entrypoint: the greatest router name among those that build).
    pub route: Option<UdpRoute>,
}

/// The router an entrypoint serves.
#[derive(Debug)]
pub struct UdpRoute {
    /// Qualified router name.
    pub name: Arc<str>,
    /// Index into [`UdpTable::services`].
    pub service: usize,
}

/// One enabled UDP service.
#[derive(Debug)]
pub struct UdpServiceRuntime {
    /// Qualified service name.
    pub name: Arc<str>,
    /// Servers or children.
    pub kind: UdpServiceKind,
}

/// What a UDP service balances over.
#[derive(Debug)]
pub enum UdpServiceKind {
    /// Servers, one picked per new session.
    LoadBalancer {
        /// The servers, in configuration order.
        servers: Box<[UdpTarget]>,
        /// Round robin over them (equal weights: UDP servers have none).
        wrr: WeightedRoundRobin,
    },
    /// Other UDP services by weight.
    Weighted {
        /// Indices into [`UdpTable::services`].
        children: Box<[usize]>,
        /// Weighted round robin over `children`.
        wrr: WeightedRoundRobin,
    },
}

/// A UDP server's address as configured, and resolved when it is an IP address (a host name is resolved
/// when a session opens, as Traefik dials it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpTarget {
    /// `host:port`.
    pub address: Arc<str>,
    /// The address when `host` is an IP.
    pub resolved: Option<SocketAddr>,
}

impl UdpTable {
    /// The route of UDP entrypoint `index`, if it has one.
    #[inline]
    pub fn route(&self, index: usize) -> Option<&UdpRoute> {
        self.entry_points.get(index).and_then(|e| e.route.as_ref())
    }

    /// Picks a server of service `service` for a new session: round robin, weighted services followed
    /// down (the compiler refuses cycles; the depth is bounded anyway). `None` when a load balancer on the
    /// way has no server.
    pub fn pick(&self, service: usize) -> Option<&UdpTarget> {
        let mut at = service;
        for _ in 0..=self.services.len() {
            match &self.services.get(at)?.kind {
                UdpServiceKind::LoadBalancer { servers, wrr } => {
                    return servers.get(wrr.pick(|_| true)?);
                }
                UdpServiceKind::Weighted { children, wrr } => {
                    at = *children.get(wrr.pick(|_| true)?)?;
                }
            }
        }
        None
    }
}
