//! The routing table: everything a request needs, compiled once, immutable, swapped as one value.
//!
//! [`compile`] turns the merged provider configurations into a [`RoutingTable`]; the builder task
//! ([`builder`]) stores it in the one [`Store`] (an `ArcSwap`). The hot path only loads the table and reads it:
//! host lookup through a hash map, then the routers in priority order, then a lock-free pick.
//!
//! Invariants enforced here:
//! - a router appears in a [`RouterSet`] only if its rule parsed, its service exists and every middleware it
//!   references exists and was built (once per table, shared by `Arc`); otherwise it is listed in
//!   [`RoutingTable::status`] with the reason;
//! - candidates are ordered by (priority desc, name asc), so ties are deterministic;
//! - per-server health state ([`crate::balance::health::ServerHealth`]) is shared with the previous table by
//!   server identity.

pub mod builder;
mod compile;
pub mod tcp;
pub mod udp;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::rule::{RequestView, Rule};

/// The compiled services, defined with the pick that reads them ([`crate::balance::service`]); named here
/// too because the table is where the rest of the crate finds them.
pub use crate::balance::service::{
    InternalService, LoadBalancerRuntime, ServerRuntime, ServiceKind, ServiceRuntime,
    StickyRuntime, UpstreamScheme, WeightedRuntime,
};

pub use compile::{
    compile, BuildInput, CarriedState, CompileContext, Compiled, EntryPointInfo, HealthRegistry,
};

/// The one place the current table lives. Cloned handles share it.
pub type Store = Arc<ArcSwap<RoutingTable>>;

/// Creates a store holding an empty table (every request gets 404 until the first build).
pub fn empty_store(entry_points: &[String]) -> Store {
    Arc::new(ArcSwap::from_pointee(RoutingTable::empty(entry_points)))
}

/// One immutable compiled configuration.
#[derive(Debug)]
pub struct RoutingTable {
    /// Increases with every stored table (for logs and the API).
    pub generation: u64,
    /// Per entrypoint, in the order the application created its listeners.
    pub entry_points: Box<[EntryPointRoutes]>,
    /// All services; routes and weighted services refer to them by index.
    pub services: Box<[ServiceRuntime]>,
    /// What became of every router, service and middleware (served or why not).
    pub status: Arc<TableStatus>,
    /// Certificates and TLS options, swapped together with the routes.
    pub tls: Option<Arc<crate::tls::TlsRuntime>>,
    /// The provider snapshots this table was compiled from (`/api/rawdata`).
    pub input: Arc<BuildInput>,
    /// TCP routers per entrypoint, TCP services and middlewares, and their statuses.
    pub tcp: Arc<tcp::TcpTable>,
    /// UDP routers and services, by UDP entrypoint.
    pub udp: Arc<udp::UdpTable>,
}

impl RoutingTable {
    /// A table that routes nothing, with one (empty) entry per entrypoint.
    pub fn empty(entry_points: &[String]) -> RoutingTable {
        RoutingTable {
            generation: 0,
            entry_points: entry_points
                .iter()
                .map(|n| EntryPointRoutes {
                    name: n.clone(),
                    ..Default::default()
                })
                .collect(),
            services: Box::new([]),
            status: Arc::new(TableStatus::default()),
            tls: None,
            input: Arc::new(BuildInput::default()),
            tcp: Arc::new(tcp::TcpTable::default()),
            udp: Arc::default(),
        }
    }

    /// The routes of entrypoint `index` (as passed to the listener), if it exists.
    #[inline]
    pub fn entry_point(&self, index: usize) -> Option<&EntryPointRoutes> {
        self.entry_points.get(index)
    }
}

/// Routes of one entrypoint.
#[derive(Debug)]
pub struct EntryPointRoutes {
    /// The entrypoint's name.
    pub name: String,
    /// Routers for plain-HTTP requests.
    pub http: RouterSet,
    /// Routers for requests that arrived over TLS.
    pub https: RouterSet,
    /// `http.redirections.entryPoint`: every request is redirected.
    pub redirect: Option<EntryPointRedirect>,
    /// `http.sanitizePath`: the handler resolves dot segments and duplicate slashes of the request path
    /// before redirection, routing and middlewares, and forwards the result (Traefik's default, true).
    pub sanitize_path: bool,
    /// `http.underscoreHeadersStrategy`: what happens to request headers whose name has `_`.
    pub underscore_headers: crate::http::underscore::UnderscoreHeaders,
    /// Request metrics of this entrypoint (when metrics are on).
    pub stats: Option<Arc<crate::metrics::RequestStats>>,
}

impl Default for EntryPointRoutes {
    /// No routes, no redirect, and `sanitizePath` on as in Traefik.
    fn default() -> Self {
        EntryPointRoutes {
            name: String::new(),
            http: RouterSet::default(),
            https: RouterSet::default(),
            redirect: None,
            sanitize_path: true,
            underscore_headers: Default::default(),
            stats: None,
        }
    }
}

/// A compiled entrypoint redirection (`http.redirections.entryPoint`).
#[derive(Debug, Clone)]
pub struct EntryPointRedirect {
    /// Target scheme.
    pub scheme: String,
    /// Target port (`None` = the scheme's default).
    pub port: Option<u16>,
    /// 301/308 rather than 302/307.
    pub permanent: bool,
}

/// Routers of one entrypoint and protocol, indexed for lookup without scanning every router.
#[derive(Debug, Default)]
pub struct RouterSet {
    /// All routes, sorted by (priority desc, name asc).
    pub routes: Box<[Route]>,
    /// Exact host → indices into `routes` (ascending = priority order). A `Vec` rather than a boxed slice
    /// so that the map built in [`RouterSet::new`] is the one kept, not rehashed into a second map.
    /// Hashed with foldhash (seeded per process), not SipHash: the keys come from the configuration, and a
    /// request's host only ever looks up, never inserts, so it cannot make the map degrade.
    by_host: HashMap<Box<str>, Vec<u32>, foldhash::fast::RandomState>,
    /// Indices of routes not restricted to a finite host set, ascending.
    any_host: Box<[u32]>,
}

impl RouterSet {
    /// Builds the index; `routes` must already be sorted by priority.
    pub fn new(routes: Vec<Route>) -> RouterSet {
        let mut by_host: HashMap<Box<str>, Vec<u32>, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(routes.len(), Default::default());
        let mut any_host = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let i = i as u32;
            match route.rule.exact_hosts() {
                Some(hosts) => {
                    for h in hosts {
                        // Most hosts have one route: room for exactly one until a second arrives.
                        let list = by_host
                            .entry(h.into_boxed_str())
                            .or_insert_with(|| Vec::with_capacity(1));
                        if list.last() != Some(&i) {
                            list.push(i);
                        }
                    }
                }
                None => any_host.push(i),
            }
        }
        by_host.shrink_to_fit();
        RouterSet {
            routes: routes.into_boxed_slice(),
            by_host,
            any_host: any_host.into_boxed_slice(),
        }
    }

    /// The highest-priority route matching `req`. Hot path: no allocation, cost independent of the number of
    /// routers for other hosts.
    #[inline]
    pub fn find(&self, req: &RequestView<'_>) -> Option<&Route> {
        let exact: &[u32] = self.by_host.get(req.host).map(Vec::as_slice).unwrap_or(&[]);
        let any: &[u32] = &self.any_host;
        // Merge the two ascending index lists: the smaller index has the higher priority.
        let (mut i, mut j) = (0, 0);
        loop {
            let next = match (exact.get(i), any.get(j)) {
                (Some(&a), Some(&b)) if a < b => {
                    i += 1;
                    a
                }
                (_, Some(&b)) => {
                    j += 1;
                    b
                }
                (Some(&a), None) => {
                    i += 1;
                    a
                }
                (None, None) => return None,
            };
            // `by_host` and `any_host` hold indices of `routes` only (built together in `new`).
            let route = self.routes.get(next as usize);
            if let Some(route) = route.filter(|r| r.rule.matches(req)) {
                return Some(route);
            }
        }
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when no route exists.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// One router, compiled.
#[derive(Debug)]
pub struct Route {
    /// Qualified router name (`web@file`).
    pub name: Arc<str>,
    /// Compiled rule.
    pub rule: Rule,
    /// Effective priority.
    pub priority: i64,
    /// Index into [`RoutingTable::services`].
    pub service: usize,
    /// Middlewares run around the service (entrypoint ones first); `None` when there are none, so such
    /// routes pay nothing for middlewares.
    pub middlewares: Option<Arc<crate::middleware::Chain>>,
    /// Request metrics of this router (with `addRoutersLabels`).
    pub stats: Option<Arc<crate::metrics::RequestStats>>,
}

/// What became of each configuration item in the last build, for logs, the API and tests.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct TableStatus {
    /// Routers, by qualified name.
    pub routers: std::collections::BTreeMap<String, ItemStatus>,
    /// Services, by qualified name.
    pub services: std::collections::BTreeMap<String, ItemStatus>,
    /// Middlewares, by qualified name.
    pub middlewares: std::collections::BTreeMap<String, ItemStatus>,
    /// UDP routers, by qualified name.
    pub udp_routers: std::collections::BTreeMap<String, ItemStatus>,
    /// UDP services, by qualified name.
    pub udp_services: std::collections::BTreeMap<String, ItemStatus>,
}

/// Status of one item, in Traefik's API vocabulary.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct ItemStatus {
    /// Whether it is served.
    pub status: Status,
    /// Why it is not (fully) enabled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Provider that defined it.
    pub provider: String,
    /// The router's rule (routers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Entrypoints the router is attached to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entry_points: Vec<String>,
    /// Target service (routers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Effective priority (routers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

impl ItemStatus {
    /// An item of `provider` with `status` and nothing else known yet.
    pub(crate) fn new(status: Status, provider: &str) -> ItemStatus {
        ItemStatus {
            status,
            provider: provider.to_string(),
            ..Default::default()
        }
    }

    /// The same, with `errors` (or warnings) attached.
    pub(crate) fn with_errors(mut self, errors: Vec<String>) -> ItemStatus {
        self.errors = errors;
        self
    }
}

/// Whether an item is served, as Traefik's API says it: serialized as `enabled`, `warning` or `disabled`,
/// the strings the dashboard and API clients compare against.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Served as configured.
    #[default]
    Enabled,
    /// Served, with something worth a look (an unknown entrypoint next to a valid one, a legacy option).
    Warning,
    /// Not served; the item's errors say why.
    Disabled,
}

impl Status {
    /// The API's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enabled => "enabled",
            Status::Warning => "warning",
            Status::Disabled => "disabled",
        }
    }
}

impl std::fmt::Display for Status {
    /// The API's word, for logs and change lines.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;
