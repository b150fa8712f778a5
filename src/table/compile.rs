//! Compiles merged provider configurations into one [`RoutingTable`]. Pure except for the health registry,
//! which carries per-server health across builds by server identity.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Method, Uri};

use super::{
    EntryPointRedirect, EntryPointRoutes, ItemStatus, LoadBalancerRuntime, Route, RouterSet,
    RoutingTable, ServerRuntime, ServiceKind, ServiceRuntime, StickyRuntime, TableStatus,
    UpstreamScheme, WeightedRuntime,
};
use crate::balance::health::{CheckTarget, HealthCheckSettings, ServerHealth};
use crate::balance::sticky::{cookie_name, cookie_value, CookieSpec, SameSite, StickyTable};
use crate::balance::WeightedRoundRobin;
use crate::dynamic::{self, Configuration, HealthCheck, Service, StickyCookie};
use crate::middleware;
use crate::rule::{self, Syntax};

/// Every provider's latest snapshot, by provider name (`file`, `docker`, `swarm`, `internal`).
///
/// Compared with the input of the current table to skip rebuilding when nothing changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BuildInput {
    /// Provider name → its whole configuration.
    pub providers: BTreeMap<String, Configuration>,
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
        }
    }
}

/// Per-server health state, kept across builds by (service, server URL).
#[derive(Debug, Default)]
pub struct HealthRegistry {
    states: HashMap<(String, String), Arc<ServerHealth>>,
}

impl HealthRegistry {
    fn take(&mut self, service: &str, url: &str, next: &mut HealthRegistry) -> Arc<ServerHealth> {
        let key = (service.to_string(), url.to_string());
        let state = self
            .states
            .get(&key)
            .cloned()
            .unwrap_or_else(|| Arc::new(ServerHealth::new()));
        next.states.insert(key, state.clone());
        state
    }
}

/// The result of a build: the table, one message per dropped item, and the health checks to run.
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
}

/// Compiles `input` into a table. Items that fail are left out and reported; never fails as a whole.
///
/// `registry` is replaced by one holding exactly the servers of the new table, sharing state with the old.
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // TODO(lints): being rewritten on the builder branch
pub fn compile(
    input: &BuildInput,
    ctx: &CompileContext,
    registry: &mut HealthRegistry,
    generation: u64,
) -> Compiled {
    let mut next_registry = HealthRegistry::default();
    let mut status = TableStatus::default();
    let mut issues = Vec::new();
    let mut health_targets = Vec::new();

    // 1. Qualified views of every item.
    let mut services: BTreeMap<String, (&str, &Service)> = BTreeMap::new();
    let mut middlewares: BTreeMap<String, (&str, &dynamic::Middleware)> = BTreeMap::new();
    let mut routers: Vec<(String, &str, &dynamic::Router)> = Vec::new();
    for (provider, cfg) in &input.providers {
        for (name, s) in &cfg.http.services {
            services.insert(dynamic::qualify(name, provider), (provider.as_str(), s));
        }
        for (name, m) in &cfg.http.middlewares {
            middlewares.insert(dynamic::qualify(name, provider), (provider.as_str(), m));
        }
        for (name, r) in &cfg.http.routers {
            routers.push((dynamic::qualify(name, provider), provider.as_str(), r));
        }
    }

    // 2. Services: assign indices to every buildable service first so weighted services can refer to them.
    let index: HashMap<&str, usize> = services
        .keys()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut built: Vec<Option<ServiceRuntime>> = Vec::with_capacity(services.len());
    let mut service_errors: Vec<Option<String>> = Vec::with_capacity(services.len());
    for (name, (provider, svc)) in &services {
        match build_service(
            name,
            provider,
            svc,
            &index,
            registry,
            &mut next_registry,
            &mut health_targets,
        ) {
            Ok(rt) => {
                built.push(Some(rt));
                service_errors.push(None);
            }
            Err(e) => {
                built.push(None);
                service_errors.push(Some(e));
            }
        }
    }
    // Weighted services whose children are broken, or that form a cycle, are broken too.
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..built.len() {
            let bad_child = match built[i].as_ref().map(|s| &s.kind) {
                Some(ServiceKind::Weighted(w)) => w
                    .children
                    .iter()
                    .find(|&&c| built[c].is_none())
                    .map(|&c| services.keys().nth(c).cloned().unwrap_or_default()),
                _ => None,
            };
            if let Some(child) = bad_child {
                built[i] = None;
                service_errors[i] = Some(format!("child service `{child}` is not available"));
                changed = true;
            }
        }
    }
    for i in 0..built.len() {
        if built[i].is_some() && weighted_cycle(i, &built, &mut Vec::new()) {
            service_errors[i] = Some("weighted services form a cycle".into());
        }
    }
    for (i, e) in service_errors.iter().enumerate() {
        if e.is_some() {
            built[i] = None;
        }
    }
    // Internal services come after the configured ones, so configured indices stay as they are.
    let mut internal_index: HashMap<&str, usize> = HashMap::new();
    for (qualified, kind) in super::InternalService::ALL {
        if ctx.internal.contains(&kind) {
            internal_index.insert(qualified, built.len() + internal_index.len());
        }
    }
    for ((name, (provider, _)), err) in services.iter().zip(&service_errors) {
        let st = match err {
            Some(e) => {
                issues.push(format!("service `{name}` disabled: {e}"));
                ItemStatus {
                    status: "disabled",
                    errors: vec![e.clone()],
                    provider: provider.to_string(),
                    ..Default::default()
                }
            }
            None => ItemStatus {
                status: "enabled",
                provider: provider.to_string(),
                ..Default::default()
            },
        };
        status.services.insert(name.clone(), st);
    }

    // 3. Middlewares: each built once for this table and shared by `Arc` across the routes using it. A
    // middleware with an invalid option is dropped (one line naming it and the option); the routers that
    // use it are disabled rather than served without it (it could be an auth middleware), as in Traefik.
    let mut mw_states: HashMap<String, MwState> = HashMap::new();
    {
        let service_index = |q: &str| -> Option<usize> {
            index
                .get(q)
                .copied()
                .filter(|&i| built.get(i).is_some_and(|b| b.is_some()))
                .or_else(|| internal_index.get(q).copied())
        };
        for (name, (provider, m)) in &middlewares {
            let cx = middleware::BuildCx {
                name,
                provider,
                service_index: &service_index,
            };
            let (state, st) = match middleware::build(m, &cx) {
                Ok(middleware::Built::Ready(mw, warnings)) => {
                    for w in &warnings {
                        issues.push(format!("middleware `{name}`: {w}"));
                    }
                    let st = if warnings.is_empty() {
                        "enabled"
                    } else {
                        "warning"
                    };
                    (MwState::Ready(mw), (st, warnings))
                }
                Ok(middleware::Built::Chain(names)) => {
                    (MwState::Chain(names), ("enabled", Vec::new()))
                }
                Err(e) => {
                    let msg = e.to_string();
                    issues.push(format!("middleware `{name}` disabled: {msg}"));
                    (MwState::Broken(msg.clone()), ("disabled", vec![msg]))
                }
            };
            mw_states.insert(name.clone(), state);
            status.middlewares.insert(
                name.clone(),
                ItemStatus {
                    status: st.0,
                    errors: st.1,
                    provider: provider.to_string(),
                    ..Default::default()
                },
            );
        }
    }
    // Chains are valid when every member (recursively) is.
    for (name, st) in status.middlewares.iter_mut() {
        if matches!(mw_states.get(name), Some(MwState::Chain(_))) {
            if let Err(e) = expand_middleware(name, &mw_states, &mut Vec::new(), &mut Vec::new()) {
                issues.push(format!("middleware `{name}` disabled: {e}"));
                st.status = "disabled";
                st.errors = vec![e];
            }
        }
    }

    list_dropped(input, &mut status, &mut mw_states);

    // 4. Routers.
    let default_eps: Vec<&str> = {
        let marked: Vec<&str> = ctx
            .entry_points
            .iter()
            .filter(|e| e.as_default)
            .map(|e| e.name.as_str())
            .collect();
        if marked.is_empty() {
            ctx.entry_points.iter().map(|e| e.name.as_str()).collect()
        } else {
            marked
        }
    };
    let mut tls_usage = crate::tls::TlsUsage::default();
    let mut cert_requests: Vec<crate::tls::CertRequest> = Vec::new();
    let mut per_ep: Vec<(Vec<Route>, Vec<Route>)> = ctx
        .entry_points
        .iter()
        .map(|_| (Vec::new(), Vec::new()))
        .collect();
    for (name, provider, r) in &routers {
        let mut errors = Vec::new();
        let syntax = match r.rule_syntax.as_deref() {
            None | Some("") => ctx.default_syntax,
            Some(s) => match s.parse::<Syntax>() {
                Ok(s) => s,
                Err(_) => {
                    errors.push(format!("ruleSyntax `{s}` is not v2 or v3"));
                    ctx.default_syntax
                }
            },
        };
        let parsed = if r.rule.trim().is_empty() {
            errors.push("empty rule".to_string());
            None
        } else {
            match rule::parse(&r.rule, syntax) {
                Ok(p) => Some(p),
                Err(e) => {
                    errors.push(format!("invalid rule `{}`: {e}", r.rule));
                    None
                }
            }
        };
        let service_name = if r.service.is_empty() {
            errors.push("no service".to_string());
            String::new()
        } else {
            dynamic::qualify(&r.service, provider)
        };
        let service_idx = index
            .get(service_name.as_str())
            .or_else(|| internal_index.get(service_name.as_str()))
            .copied();
        match service_idx {
            None if service_name.ends_with("@internal") => errors.push(format!(
                "service `{service_name}` is not enabled (see --api, --ping, --metrics.prometheus)"
            )),
            None if status
                .services
                .get(&service_name)
                .is_some_and(|s| s.status == "disabled") =>
            {
                errors.push(format!("service `{service_name}` is disabled"))
            }
            None if !service_name.is_empty() => {
                errors.push(format!("service `{service_name}` does not exist"))
            }
            Some(i) if built.get(i).is_some_and(|b| b.is_none()) => {
                errors.push(format!("service `{service_name}` is disabled"))
            }
            _ => {}
        }
        let mut router_steps = Vec::new();
        for m in &r.middlewares {
            let q = dynamic::qualify(m.trim(), provider);
            if let Err(e) = expand_middleware(&q, &mw_states, &mut Vec::new(), &mut router_steps) {
                errors.push(e);
            }
        }
        let wanted: Vec<&str> = if r.entry_points.is_empty() {
            default_eps.clone()
        } else {
            r.entry_points.iter().map(String::as_str).collect()
        };
        // An unknown entrypoint is a warning while the router still has a valid one (as in Traefik).
        let mut warnings = Vec::new();
        let mut eps = Vec::new();
        for ep in &wanted {
            match ctx.entry_points.iter().position(|e| e.name == *ep) {
                Some(i) => eps.push(i),
                None => warnings.push(format!("entryPoint `{ep}` does not exist")),
            }
        }
        // Entrypoint middlewares come first; like Traefik, unqualified names resolve in the router's provider.
        let mut chains: Vec<Option<Arc<middleware::Chain>>> = Vec::with_capacity(eps.len());
        for &i in &eps {
            let mut steps = Vec::new();
            for m in &ctx.entry_points[i].middlewares {
                let q = dynamic::qualify(m.trim(), provider);
                if let Err(e) = expand_middleware(&q, &mw_states, &mut Vec::new(), &mut steps) {
                    errors.push(format!("entryPoint `{}`: {e}", ctx.entry_points[i].name));
                }
            }
            steps.extend(router_steps.iter().cloned());
            chains.push((!steps.is_empty()).then(|| Arc::new(middleware::Chain::new(steps))));
        }
        if eps.is_empty() {
            errors.push("no valid entryPoint for this router".into());
        }
        let priority = match r.priority {
            Some(p) if p != 0 => p,
            _ => r.rule.chars().count() as i64,
        };
        let serve = errors.is_empty();
        if let (true, Some(rule), Some(service)) = (serve, &parsed, service_idx) {
            for (k, &i) in eps.iter().enumerate() {
                let route = Route {
                    name: Arc::from(name.as_str()),
                    rule: rule.clone(),
                    priority,
                    service,
                    stats: None,
                    middlewares: chains.get(k).cloned().flatten(),
                };
                // A router is a TLS router by its own `tls` or by its entrypoint's `http.tls`.
                let ep_tls = ctx.entry_points[i].tls.as_ref();
                if r.tls.is_some() || ep_tls.is_some() {
                    let options = r
                        .tls
                        .as_ref()
                        .and_then(|t| t.options.clone())
                        .or_else(|| ep_tls.and_then(|t| t.options.clone()));
                    if let Some(o) = options.filter(|o| !o.is_empty() && o != "default") {
                        let o = dynamic::qualify(&o, provider);
                        for h in rule.domains() {
                            tls_usage.host_options.push((h, o.clone(), name.clone()));
                        }
                    }
                    let resolver = r
                        .tls
                        .as_ref()
                        .and_then(|t| t.cert_resolver.clone())
                        .or_else(|| ep_tls.and_then(|t| t.cert_resolver.clone()));
                    if let Some(res) = resolver.filter(|x| !x.is_empty()) {
                        let domains =
                            match r.tls.as_ref().map(|t| &t.domains).filter(|d| !d.is_empty()) {
                                Some(d) => d.clone(),
                                None => ep_tls.map(|t| t.domains.clone()).unwrap_or_default(),
                            };
                        cert_requests.extend(crate::tls::cert_requests(
                            &res,
                            &domains,
                            rule.domains(),
                        ));
                    }
                    per_ep[i].1.push(route);
                } else {
                    per_ep[i].0.push(route);
                }
            }
        }
        errors.extend(warnings);
        let state = if !serve {
            "disabled"
        } else if errors.is_empty() {
            "enabled"
        } else {
            "warning"
        };
        if !errors.is_empty() {
            issues.push(format!(
                "router `{name}` {}: {}",
                if serve {
                    "served with warnings"
                } else {
                    "disabled"
                },
                errors.join("; ")
            ));
        }
        status.routers.insert(
            name.clone(),
            ItemStatus {
                status: state,
                errors,
                provider: provider.to_string(),
                rule: Some(r.rule.clone()),
                entry_points: eps
                    .iter()
                    .map(|&i| ctx.entry_points[i].name.clone())
                    .collect(),
                service: (!service_name.is_empty()).then_some(service_name),
                priority: Some(priority),
            },
        );
    }

    let mut entry_points: Vec<EntryPointRoutes> = ctx
        .entry_points
        .iter()
        .zip(per_ep)
        .map(|(info, (mut http, mut https))| {
            sort_routes(&mut http);
            sort_routes(&mut https);
            EntryPointRoutes {
                name: info.name.clone(),
                http: RouterSet::new(http),
                https: RouterSet::new(https),
                redirect: info.redirect.clone(),
                sanitize_path: info.sanitize_path,
                stats: None,
            }
        })
        .collect();

    // Services that failed are kept as placeholders so indices stay valid; no route points at them.
    let mut services_rt: Vec<ServiceRuntime> = built
        .into_iter()
        .zip(services.keys())
        .map(|(b, name)| {
            b.unwrap_or_else(|| ServiceRuntime {
                name: Arc::from(name.as_str()),
                kind: ServiceKind::Weighted(WeightedRuntime {
                    children: Box::new([]),
                    wrr: WeightedRoundRobin::new(&[]),
                    sticky: None,
                }),
                stats: None,
            })
        })
        .collect();

    let mut internal: Vec<(&str, usize)> = internal_index.into_iter().collect();
    internal.sort_by_key(|(_, i)| *i);
    for (qualified, _) in internal {
        if let Some((_, kind)) = super::InternalService::ALL
            .iter()
            .find(|(n, _)| *n == qualified)
        {
            services_rt.push(ServiceRuntime {
                name: Arc::from(qualified),
                kind: ServiceKind::Internal(*kind),
                stats: None,
            });
        }
    }
    // Metrics handles, resolved once here so a request only adds to atomics.
    if let Some(m) = &ctx.metrics {
        let ep_names: Vec<String> = entry_points.iter().map(|e| e.name.clone()).collect();
        let router_names: Vec<String> = status
            .routers
            .iter()
            .filter(|(_, st)| st.status != "disabled")
            .map(|(n, _)| n.clone())
            .collect();
        let service_names: Vec<String> = services_rt
            .iter()
            .filter(|s| !matches!(s.kind, ServiceKind::Internal(_)))
            .map(|s| s.name.to_string())
            .collect();
        let r = m.resolve(&ep_names, &router_names, &service_names);
        for ep in &mut entry_points {
            ep.stats = r.entry_points.get(&ep.name).cloned();
            for route in ep.http.routes.iter_mut().chain(ep.https.routes.iter_mut()) {
                route.stats = r.routers.get(&*route.name).cloned();
            }
        }
        for svc in &mut services_rt {
            svc.stats = r.services.get(&*svc.name).cloned();
        }
    }
    let tls = ctx.tls.as_ref().map(|shared| {
        let sections: Vec<(String, &dynamic::TlsConfiguration)> = input
            .providers
            .iter()
            .map(|(p, c)| (p.clone(), &c.tls))
            .collect();
        let (rt, tls_issues) = crate::tls::compile(&sections, &tls_usage, shared);
        issues.extend(tls_issues);
        Arc::new(rt)
    });
    cert_requests.sort();
    cert_requests.dedup();

    *registry = next_registry;
    Compiled {
        table: RoutingTable {
            generation,
            entry_points: entry_points.into_boxed_slice(),
            services: services_rt.into_boxed_slice(),
            status: Arc::new(status),
            tls,
            input: Arc::new(input.clone()),
        },
        issues,
        health_targets,
        cert_requests,
    }
}

/// What building a middleware gave, for expanding router chains.
enum MwState {
    Ready(Arc<middleware::Middleware>),
    Chain(Vec<String>),
    Broken(String),
}

/// Deepest `chain` nesting followed (cycles are reported before this matters).
const MAX_CHAIN_DEPTH: usize = 16;

/// Items their provider dropped (invalid explicit configuration): listed as disabled with the provider's
/// error, never served; a dropped middleware is broken for the routers that use it. A valid item of the same
/// name (another workload's) wins.
fn list_dropped(
    input: &BuildInput,
    status: &mut TableStatus,
    mw_states: &mut HashMap<String, MwState>,
) {
    for (provider, cfg) in &input.providers {
        for d in &cfg.dropped {
            let qualified = dynamic::qualify(&d.name, provider);
            if d.kind == dynamic::ItemKind::Middleware {
                mw_states
                    .entry(qualified.clone())
                    .or_insert_with(|| MwState::Broken(d.error.clone()));
            }
            let map = match d.kind {
                dynamic::ItemKind::Router => &mut status.routers,
                dynamic::ItemKind::Service => &mut status.services,
                dynamic::ItemKind::Middleware => &mut status.middlewares,
                _ => continue,
            };
            let st = map.entry(qualified).or_insert_with(|| ItemStatus {
                status: "disabled",
                provider: provider.to_string(),
                ..Default::default()
            });
            if st.status == "disabled" && !st.errors.contains(&d.error) {
                st.errors.push(d.error.clone());
            }
        }
    }
}

/// Appends the steps of middleware `name` (qualified) to `out`, expanding chains; Err names what is wrong.
fn expand_middleware(
    name: &str,
    states: &HashMap<String, MwState>,
    stack: &mut Vec<String>,
    out: &mut Vec<Arc<middleware::Middleware>>,
) -> Result<(), String> {
    match states.get(name) {
        None => Err(format!("middleware `{name}` does not exist")),
        Some(MwState::Broken(e)) => Err(format!("middleware `{name}` is disabled: {e}")),
        Some(MwState::Ready(m)) => {
            out.push(m.clone());
            Ok(())
        }
        Some(MwState::Chain(members)) => {
            if stack.iter().any(|s| s == name) || stack.len() > MAX_CHAIN_DEPTH {
                return Err(format!(
                    "chain `{name}` refers to itself ({} → {name})",
                    stack.join(" → ")
                ));
            }
            stack.push(name.to_string());
            for m in members {
                if let Err(e) = expand_middleware(m, states, stack, out) {
                    stack.pop();
                    return Err(format!("chain `{name}`: {e}"));
                }
            }
            stack.pop();
            Ok(())
        }
    }
}

fn sort_routes(routes: &mut [Route]) {
    routes.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.name.cmp(&b.name))
    });
}

fn weighted_cycle(i: usize, built: &[Option<ServiceRuntime>], path: &mut Vec<usize>) -> bool {
    if path.contains(&i) {
        return true;
    }
    let Some(Some(ServiceRuntime {
        kind: ServiceKind::Weighted(w),
        ..
    })) = built.get(i)
    else {
        return false;
    };
    path.push(i);
    let cyc = w.children.iter().any(|&c| weighted_cycle(c, built, path));
    path.pop();
    cyc
}

#[allow(clippy::too_many_arguments)]
fn build_service(
    name: &str,
    provider: &str,
    svc: &Service,
    index: &HashMap<&str, usize>,
    registry: &mut HealthRegistry,
    next: &mut HealthRegistry,
    health_targets: &mut Vec<CheckTarget>,
) -> Result<ServiceRuntime, String> {
    let kinds = [
        svc.load_balancer.is_some(),
        svc.weighted.is_some(),
        svc.mirroring.is_some(),
        svc.failover.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        return Err(
            "more than one kind (loadBalancer, weighted, mirroring, failover) is set".into(),
        );
    }
    let kind = if let Some(lb) = &svc.load_balancer {
        let health_settings = match &lb.health_check {
            Some(hc) => Some(Arc::new(health_settings(hc)?)),
            None => None,
        };
        let mut servers = Vec::with_capacity(lb.servers.len());
        let mut seen = HashSet::new();
        for (i, s) in lb.servers.iter().enumerate() {
            let rt = build_server(&s.url, s.preserve_path)
                .map_err(|e| format!("servers[{i}].url `{}`: {e}", s.url))?;
            if !seen.insert(s.url.clone()) {
                continue; // the same server twice (e.g. merged from two containers) counts once
            }
            let health = registry.take(name, &s.url, next);
            if let Some(settings) = &health_settings {
                if let Ok(uri) = s.url.parse::<Uri>() {
                    health_targets.push(CheckTarget {
                        service: name.to_string(),
                        server_url: uri,
                        settings: settings.clone(),
                        state: health.clone(),
                    });
                }
            } else {
                // No active check: a server that a former check marked down must not stay down forever.
                health.set_active(true);
            }
            servers.push((ServerRuntime { health, ..rt }, s.weight.unwrap_or(1)));
        }
        let weights: Vec<u32> = servers.iter().map(|(_, w)| *w).collect();
        let servers: Box<[ServerRuntime]> = servers.into_iter().map(|(s, _)| s).collect();
        let sticky = match lb.sticky.as_ref().and_then(|s| s.cookie.as_ref()) {
            Some(c) => Some(sticky_runtime(
                name,
                c,
                servers.iter().map(|s| s.url.to_string()).collect(),
            )?),
            None => None,
        };
        if let Some(strategy) = &lb.strategy {
            if !strategy.eq_ignore_ascii_case("wrr") && !strategy.eq_ignore_ascii_case("p2c") {
                return Err(format!("strategy `{strategy}` is not wrr or p2c"));
            }
        }
        if let Some(t) = &lb.servers_transport {
            let _ = (t, provider); // named transports: all share the default pool for now
        }
        ServiceKind::LoadBalancer(LoadBalancerRuntime {
            wrr: WeightedRoundRobin::new(&weights),
            servers,
            sticky,
            pass_host_header: lb.pass_host_header.unwrap_or(true),
        })
    } else if let Some(w) = &svc.weighted {
        let mut children = Vec::new();
        let mut weights = Vec::new();
        for c in &w.services {
            let q = dynamic::qualify(&c.name, provider);
            let idx = *index
                .get(q.as_str())
                .ok_or_else(|| format!("child service `{q}` does not exist"))?;
            children.push(idx);
            weights.push(c.weight.unwrap_or(1));
        }
        let sticky = match w.sticky.as_ref().and_then(|s| s.cookie.as_ref()) {
            // Traefik hashes the child name exactly as written in `services[].name`.
            Some(c) => Some(sticky_runtime(
                name,
                c,
                w.services.iter().map(|c| c.name.clone()).collect(),
            )?),
            None => None,
        };
        ServiceKind::Weighted(WeightedRuntime {
            children: children.into_boxed_slice(),
            wrr: WeightedRoundRobin::new(&weights),
            sticky,
        })
    } else if svc.mirroring.is_some() {
        return Err("mirroring services are not supported yet".into());
    } else if svc.failover.is_some() {
        return Err("failover services are not supported yet".into());
    } else {
        return Err("no loadBalancer or weighted section".into());
    };
    Ok(ServiceRuntime {
        name: Arc::from(name),
        kind,
        stats: None,
    })
}

fn sticky_runtime(
    service: &str,
    c: &StickyCookie,
    targets: Vec<String>,
) -> Result<StickyRuntime, String> {
    let spec = CookieSpec {
        name: cookie_name(c.name.as_deref().unwrap_or(""), service),
        secure: c.secure,
        http_only: c.http_only,
        // Traefik ignores unknown values (default mode, no attribute); so do we.
        same_site: c.same_site.as_deref().and_then(SameSite::from_traefik),
        max_age: c.max_age,
        path: c.path.clone().unwrap_or_else(|| "/".into()),
        domain: c.domain.clone().filter(|d| !d.is_empty()),
        expires: None,
    };
    let set_cookie = targets
        .iter()
        .map(|t| spec.set_cookie_header(&cookie_value(t)))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            format!(
                "sticky.cookie.name `{}` is not a valid cookie name",
                spec.name
            )
        })?
        .into_boxed_slice();
    Ok(StickyRuntime {
        table: StickyTable::new(&targets),
        spec,
        set_cookie,
    })
}

fn health_settings(hc: &HealthCheck) -> Result<HealthCheckSettings, String> {
    let mut s = HealthCheckSettings::default();
    if let Some(mode) = &hc.mode {
        if !mode.eq_ignore_ascii_case("http") {
            return Err(format!(
                "healthCheck.mode `{mode}` is not supported (http only)"
            ));
        }
    }
    s.path = hc.path.clone();
    if let Some(i) = hc.interval {
        if i.0.is_zero() {
            return Err("healthCheck.interval must be positive".into());
        }
        s.interval = i.0;
    }
    if let Some(t) = hc.timeout {
        if t.0.is_zero() {
            return Err("healthCheck.timeout must be positive".into());
        }
        s.timeout = t.0;
    }
    s.scheme = hc.scheme.clone().filter(|x| !x.is_empty());
    s.hostname = hc.hostname.clone().filter(|x| !x.is_empty());
    s.port = hc.port.filter(|p| *p != 0);
    s.status = hc.status.filter(|p| *p != 0);
    if let Some(f) = hc.follow_redirects {
        s.follow_redirects = f;
    }
    if let Some(m) = &hc.method {
        s.method = Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("healthCheck.method `{m}` is not a method"))?;
    }
    for (k, v) in &hc.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("healthCheck.headers: `{k}` is not a header name"))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| format!("healthCheck.headers.{k}: invalid value"))?;
        s.headers.push((name, value));
    }
    Ok(s)
}

/// Parses a server URL into the parts the forwarder needs. `h2c://` means HTTP/2 prior knowledge.
fn build_server(url: &str, preserve_path: bool) -> Result<ServerRuntime, String> {
    let uri: Uri = url.trim().parse().map_err(|e| format!("not a URL ({e})"))?;
    let (scheme, uri_scheme, default_port) =
        match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") => (UpstreamScheme::Http, Scheme::HTTP, 80),
            Some("https") => (UpstreamScheme::Https, Scheme::HTTPS, 443),
            Some("h2c") => (UpstreamScheme::H2c, Scheme::HTTP, 80),
            Some(other) => return Err(format!("scheme `{other}` is not http, https or h2c")),
            None => return Err("missing scheme (http://, https:// or h2c://)".into()),
        };
    let auth = uri.authority().ok_or("missing host")?;
    if auth.as_str().contains('@') {
        return Err("user info in server URLs is not supported".into());
    }
    let authority: Authority = if auth.port_u16().is_some() {
        auth.clone()
    } else {
        format!("{}:{default_port}", auth.host())
            .parse()
            .map_err(|_| "invalid host".to_string())?
    };
    let host_header =
        HeaderValue::from_str(auth.as_str()).map_err(|_| "invalid host".to_string())?;
    let base_path = if preserve_path {
        uri.path_and_query()
            .filter(|p| p.path() != "/" && !p.path().is_empty())
            .cloned()
            .map(|p| {
                let trimmed = p.path().trim_end_matches('/').to_string();
                PathAndQuery::try_from(trimmed).unwrap_or(p)
            })
    } else {
        None
    };
    Ok(ServerRuntime {
        url: Arc::from(url),
        scheme,
        uri_scheme,
        authority,
        base_path,
        host_header,
        health: Arc::new(ServerHealth::new()),
    })
}

#[cfg(test)]
pub(super) fn build_server_for_tests(url: &str) -> Result<ServerRuntime, String> {
    build_server(url, false)
}
