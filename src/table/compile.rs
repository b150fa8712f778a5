//! Compiles merged provider configurations into one [`RoutingTable`], in named steps:
//! 1. qualify every item (`name@provider`), borrowing it from the input;
//! 2. services ([`services`]): build, disable the broken, append the internal ones;
//! 3. middlewares ([`middlewares`]): build once per table, check chains, list what providers dropped;
//! 4. routers ([`routers`]): rule, service, chain and entrypoints, and the TLS options and certificates wanted;
//! 5. metrics handles ([`metrics`]) and the TLS runtime.
//!
//! Pure except for the state carried from the previous build ([`CarriedState`]: per-server health and
//! stateful middlewares), which a build reads and replaces by a new one instead of changing it. Nothing of
//! the input is deep-cloned: the table keeps the input itself (the providers' `Arc` snapshots) for the API.

mod metrics;
mod middlewares;
mod routers;
mod services;
mod state;
mod tcp;
mod udp;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{EntryPointRedirect, RoutingTable, TableStatus};
use crate::balance::health::CheckTarget;
use crate::dynamic::{self, Configuration, Service};
use crate::rule::Syntax;

#[cfg(test)]
pub(super) use services::build_server_for_tests;
pub use state::{CarriedState, HealthRegistry};

/// Every provider's latest snapshot, by provider name (`file`, `docker`, `swarm`, `internal`), shared with
/// the provider that published it.
///
/// Compared with the input of the current table to skip rebuilding when nothing changed.
#[derive(Clone, Debug, Default)]
pub struct BuildInput {
    /// Provider name → its whole configuration.
    pub providers: BTreeMap<String, Arc<Configuration>>,
}

impl PartialEq for BuildInput {
    /// Same providers with equal configurations. A snapshot that is the very same `Arc` is equal without
    /// looking inside: the common case, where one provider changed and the others did not.
    fn eq(&self, other: &BuildInput) -> bool {
        self.providers.len() == other.providers.len()
            && self
                .providers
                .iter()
                .zip(&other.providers)
                .all(|((pa, a), (pb, b))| pa == pb && (Arc::ptr_eq(a, b) || a == b))
    }
}

/// What compilation needs from the static configuration.
#[derive(Clone, Debug, Default)]
pub struct CompileContext {
    /// Entrypoints in listener order.
    pub entry_points: Vec<EntryPointInfo>,
    /// Grammar for rules without `ruleSyntax`.
    pub default_syntax: Syntax,
    /// TLS state shared across builds; `None` compiles no TLS side (tests, benches).
    pub tls: Option<crate::tls::TlsShared>,
    /// Internal services that are enabled (`api@internal` only with `--api`, …).
    pub internal: Vec<super::InternalService>,
    /// Metrics whose per-request handles the table carries (`None` = metrics off).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// The static `tcpServersTransport`: the default transport of TCP services.
    pub tcp_transport: Option<dynamic::TcpServersTransport>,
    /// UDP entrypoints in the order the application bound them (their own list: the table's
    /// `entry_points` are the TCP ones).
    pub udp_entry_points: Vec<String>,
}

/// One entrypoint's routing-relevant settings.
#[derive(Clone, Debug)]
pub struct EntryPointInfo {
    /// Name.
    pub name: String,
    /// Receives routers that name no entrypoint.
    pub as_default: bool,
    /// Redirect everything.
    pub redirect: Option<EntryPointRedirect>,
    /// Middlewares prepended to every router.
    pub middlewares: Vec<String>,
    /// `http.tls`: every router on this entrypoint is a TLS router with these defaults.
    pub tls: Option<crate::config::types::EntryPointTls>,
    /// `http.sanitizePath`: resolve dot segments and duplicate slashes before routing (Traefik's default).
    pub sanitize_path: bool,
    /// `http.underscoreHeadersStrategy`.
    pub underscore_headers: crate::http::underscore::UnderscoreHeaders,
}

impl Default for EntryPointInfo {
    /// No redirect, no middlewares, no TLS defaults, and `sanitizePath` on as in Traefik.
    fn default() -> Self {
        EntryPointInfo {
            name: String::new(),
            as_default: false,
            redirect: None,
            middlewares: Vec::new(),
            tls: None,
            sanitize_path: true,
            underscore_headers: Default::default(),
        }
    }
}

/// The result of a build: the table, one message per dropped item, the health checks to run, and the
/// state the next build carries over.
#[derive(Debug)]
pub struct Compiled {
    /// The table to store.
    pub table: RoutingTable,
    /// Problems, one line each, naming the item and the reason.
    pub issues: Vec<String>,
    /// Servers with active health checks.
    pub health_targets: Vec<CheckTarget>,
    /// Certificates the routers want from ACME resolvers (sorted, deduplicated).
    pub cert_requests: Vec<crate::tls::CertRequest>,
    /// Health and middleware state of exactly this table's servers and middlewares, shared with the
    /// previous build's where the server or middleware is unchanged; pass it to the next build.
    pub carried: CarriedState,
}

/// What the steps report besides the table: every item's status and one line per problem.
#[derive(Default)]
struct Report {
    status: TableStatus,
    issues: Vec<String>,
}

/// Every item of every provider under its qualified name, borrowed from the input.
struct Items<'a> {
    /// (qualified name, provider, service), sorted by name, one per name.
    services: Vec<(String, &'a str, &'a Service)>,
    middlewares: BTreeMap<String, (&'a str, &'a dynamic::Middleware)>,
    routers: Vec<(String, &'a str, &'a dynamic::Router)>,
}

fn qualify_items(input: &BuildInput) -> Items<'_> {
    let mut items = Items {
        services: Vec::with_capacity(
            input
                .providers
                .values()
                .map(|c| c.http.services.len())
                .sum(),
        ),
        middlewares: BTreeMap::new(),
        routers: Vec::new(),
    };
    for (provider, cfg) in &input.providers {
        let p = provider.as_str();
        items.services.extend(
            cfg.http
                .services
                .iter()
                .map(|(name, s)| (dynamic::qualify(name, p), p, s)),
        );
        for (name, m) in &cfg.http.middlewares {
            items.middlewares.insert(dynamic::qualify(name, p), (p, m));
        }
        items.routers.extend(
            cfg.http
                .routers
                .iter()
                .map(|(name, r)| (dynamic::qualify(name, p), p, r)),
        );
    }
    // Sorted as a map by name would be (services keep their name order as their index), and, also as a
    // map would, a later provider's service replaces an earlier one of the same qualified name. One sort
    // of a nearly sorted list instead of a map insertion per service.
    items.services.sort_by(|a, b| a.0.cmp(&b.0));
    items.services.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            std::mem::swap(later, kept);
        }
        same
    });
    items
}

/// Adds `statuses` to `map`; a later status replaces an earlier one of the same name. Into an empty map
/// (the usual case) they go in one bulk build, not one insertion each.
fn extend_status(
    map: &mut BTreeMap<String, super::ItemStatus>,
    statuses: Vec<(String, super::ItemStatus)>,
) {
    if map.is_empty() {
        *map = statuses.into_iter().collect();
    } else {
        map.extend(statuses);
    }
}

/// Compiles `input` into a table. Items that fail are left out and reported; never fails as a whole.
///
/// `carried` is the previous build's state (read only); the returned [`Compiled::carried`] holds exactly
/// the servers and stateful middlewares of the new table, sharing state with `carried`.
pub fn compile(
    input: &BuildInput,
    ctx: &CompileContext,
    carried: &CarriedState,
    generation: u64,
) -> Compiled {
    let mut report = Report::default();
    let mut next = CarriedState::default();
    let mut health_targets = Vec::new();
    let items = qualify_items(input);

    let mut health = services::HealthCx {
        carried: &carried.health,
        next: &mut next.health,
        targets: &mut health_targets,
    };
    let services = services::compile(&items.services, ctx, &mut health, &mut report);
    let mut mw_states = middlewares::compile(
        &items.middlewares,
        &services,
        &carried.middlewares,
        &mut next.middlewares,
        &mut report,
    );
    middlewares::list_dropped(input, &mut report.status, &mut mw_states);
    let mut routed = routers::compile(items.routers, ctx, &services, &mw_states, &mut report);
    let per_ep = std::mem::take(&mut routed.per_ep);
    let mut entry_points = routers::entry_point_routes(ctx, per_ep);
    let tcp = tcp::compile(
        input,
        ctx,
        &entry_points,
        tcp::TlsWishes {
            usage: &mut routed.tls_usage,
            cert_requests: &mut routed.cert_requests,
        },
        &mut report.issues,
    );
    let udp = udp::compile(input, ctx, &mut report);
    let mut services = services.into_runtime();
    if let Some(m) = &ctx.metrics {
        metrics::attach(m, &report.status, &mut entry_points, &mut services);
    }
    let tls = ctx.tls.as_ref().map(|shared| {
        let sections: Vec<(String, &dynamic::TlsConfiguration)> = input
            .providers
            .iter()
            .map(|(p, c)| (p.clone(), &c.tls))
            .collect();
        let (rt, tls_issues) = crate::tls::compile(&sections, &routed.tls_usage, shared);
        report.issues.extend(tls_issues);
        Arc::new(rt)
    });
    let mut cert_requests = routed.cert_requests;
    cert_requests.sort();
    cert_requests.dedup();

    Compiled {
        table: RoutingTable {
            generation,
            entry_points: entry_points.into_boxed_slice(),
            services: services.into_boxed_slice(),
            status: Arc::new(report.status),
            tls,
            input: Arc::new(input.clone()),
            tcp: Arc::new(tcp),
            udp: Arc::new(udp),
        },
        issues: report.issues,
        health_targets,
        cert_requests,
        carried: next,
    }
}
