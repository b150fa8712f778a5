//! Step "routers": compiles every router into one route per entrypoint it is attached to, with its rule,
//! service index and middleware chain (entrypoint middlewares first), and records the TLS options and the
//! certificates its hosts want. A router that cannot be served is listed as disabled with every reason; an
//! unknown entrypoint next to a valid one is only a warning, as in Traefik.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::super::{EntryPointRoutes, ItemStatus, Route, RouterSet, Status};
use super::middlewares::{self, MwStates};
use super::services::Services;
use super::{CompileContext, Report};
use crate::dynamic::{self, Router};
use crate::middleware::{self as mw, Chain};
use crate::rule::{self, Rule, Syntax};
use crate::tls::{CertRequest, TlsUsage};

/// One entrypoint's routes before sorting: plain HTTP and TLS.
#[derive(Default)]
pub(super) struct EpRoutes {
    http: Vec<Route>,
    https: Vec<Route>,
}

/// What compiling the routers gave besides their statuses.
pub(super) struct Routed {
    /// Per entrypoint (in `ctx.entry_points` order), its routes.
    pub per_ep: Vec<EpRoutes>,
    /// Hosts whose routers use non-default TLS options.
    pub tls_usage: TlsUsage,
    /// Certificates wanted from ACME resolvers (unsorted, may repeat).
    pub cert_requests: Vec<CertRequest>,
}

/// What every router of the build is resolved against.
struct RouterCx<'a> {
    ctx: &'a CompileContext,
    /// Entrypoints of routers that name none: those marked `asDefault`, else all.
    default_eps: Vec<&'a str>,
    services: &'a Services<'a>,
    service_status: &'a BTreeMap<String, ItemStatus>,
    middlewares: &'a MwStates,
}

/// Compiles `routers` (qualified name, provider, router); their statuses and issues go to `report`.
pub(super) fn compile(
    routers: Vec<(String, &str, &Router)>,
    ctx: &CompileContext,
    services: &Services<'_>,
    middlewares: &MwStates,
    report: &mut Report,
) -> Routed {
    let mut routed = Routed {
        per_ep: ctx
            .entry_points
            .iter()
            .map(|_| EpRoutes::default())
            .collect(),
        tls_usage: TlsUsage::default(),
        cert_requests: Vec::new(),
    };
    let cx = RouterCx {
        ctx,
        default_eps: default_entry_points(ctx),
        services,
        service_status: &report.status.services,
        middlewares,
    };
    let mut statuses = Vec::with_capacity(routers.len());
    for (name, provider, r) in routers {
        let st = compile_router(&cx, &name, provider, r, &mut routed);
        if !st.errors.is_empty() {
            let what = if st.status == Status::Disabled {
                "disabled"
            } else {
                "served with warnings"
            };
            report
                .issues
                .push(format!("router `{name}` {what}: {}", st.errors.join("; ")));
        }
        statuses.push((name, st));
    }
    super::extend_status(&mut report.status.routers, statuses);
    routed
}

fn default_entry_points(ctx: &CompileContext) -> Vec<&str> {
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
}

/// Compiles one router: its routes go to `routed`; returns its status (errors, then warnings).
fn compile_router(
    cx: &RouterCx<'_>,
    name: &str,
    provider: &str,
    r: &Router,
    routed: &mut Routed,
) -> ItemStatus {
    let mut errors = Vec::new();
    let parsed = parse_rule(r, cx.ctx.default_syntax, &mut errors);
    let (service_name, service) = resolve_service(cx, &r.service, provider, &mut errors);
    let router_steps = expand_all(&r.middlewares, provider, cx.middlewares, &mut errors);
    let (eps, warnings) = entry_points(cx, r);
    // Entrypoint middlewares come first; like Traefik, unqualified names resolve in the router's provider.
    let mut chains = Vec::with_capacity(eps.len());
    for &i in &eps {
        let ep = cx.ctx.entry_points.get(i);
        let ep_mws = ep.map(|e| e.middlewares.as_slice()).unwrap_or_default();
        let mut ep_errors = Vec::new();
        let mut steps = expand_all(ep_mws, provider, cx.middlewares, &mut ep_errors);
        let ep_name = ep.map(|e| e.name.as_str()).unwrap_or_default();
        errors.extend(
            ep_errors
                .into_iter()
                .map(|e| format!("entryPoint `{ep_name}`: {e}")),
        );
        steps.extend(router_steps.iter().cloned());
        chains.push((!steps.is_empty()).then(|| Arc::new(Chain::new(steps))));
    }
    if eps.is_empty() {
        errors.push("no valid entryPoint for this router".into());
    }
    let priority = match r.priority {
        Some(p) if p != 0 => p,
        _ => r.rule.chars().count() as i64,
    };
    let serve = errors.is_empty();
    if let (true, Some(rule), Some(service)) = (serve, parsed, service) {
        let route = RouteParts {
            name: Arc::from(name),
            rule,
            priority,
            service,
        };
        place_routes(cx.ctx, name, provider, r, route, &eps, chains, routed);
    }
    let status = match (serve, errors.is_empty() && warnings.is_empty()) {
        (false, _) => Status::Disabled,
        (true, true) => Status::Enabled,
        (true, false) => Status::Warning,
    };
    errors.extend(warnings);
    ItemStatus {
        status,
        errors,
        provider: provider.to_string(),
        rule: Some(r.rule.clone()),
        entry_points: eps
            .iter()
            .filter_map(|&i| cx.ctx.entry_points.get(i).map(|e| e.name.clone()))
            .collect(),
        service: (!service_name.is_empty()).then_some(service_name),
        priority: Some(priority),
    }
}

/// The router's rule in its `ruleSyntax` (the default when empty or invalid, with an error).
fn parse_rule(r: &Router, default: Syntax, errors: &mut Vec<String>) -> Option<Rule> {
    let syntax = match r.rule_syntax.as_deref() {
        None | Some("") => default,
        Some(s) => s.parse::<Syntax>().unwrap_or_else(|_| {
            errors.push(format!("ruleSyntax `{s}` is not v2 or v3"));
            default
        }),
    };
    if r.rule.trim().is_empty() {
        errors.push("empty rule".to_string());
        return None;
    }
    rule::parse(&r.rule, syntax)
        .map_err(|e| errors.push(format!("invalid rule `{}`: {e}", r.rule)))
        .ok()
}

/// The qualified service name and its index, if it can serve; an error says why not.
fn resolve_service(
    cx: &RouterCx<'_>,
    service: &str,
    provider: &str,
    errors: &mut Vec<String>,
) -> (String, Option<usize>) {
    if service.is_empty() {
        errors.push("no service".to_string());
        return (String::new(), None);
    }
    let name = dynamic::qualify(service, provider);
    let index = cx.services.lookup(&name);
    match index {
        None if name.ends_with("@internal") => errors.push(format!(
            "service `{name}` is not enabled (see --api, --ping, --metrics.prometheus)"
        )),
        None if cx
            .service_status
            .get(&name)
            .is_some_and(|s| s.status == Status::Disabled) =>
        {
            errors.push(format!("service `{name}` is disabled"))
        }
        None => errors.push(format!("service `{name}` does not exist")),
        Some(i) if cx.services.is_disabled(i) => {
            errors.push(format!("service `{name}` is disabled"))
        }
        Some(_) => {}
    }
    (name, index)
}

/// The steps of middlewares `names` (qualified in `provider`), chains expanded; an error per bad one.
fn expand_all(
    names: &[String],
    provider: &str,
    states: &MwStates,
    errors: &mut Vec<String>,
) -> Vec<Arc<mw::Middleware>> {
    let mut steps = Vec::new();
    for m in names {
        let q = dynamic::qualify(m.trim(), provider);
        if let Err(e) = middlewares::expand(&q, states, &mut Vec::new(), &mut steps) {
            errors.push(e);
        }
    }
    steps
}

/// Indices of the entrypoints the router is attached to, and a warning per unknown one.
fn entry_points(cx: &RouterCx<'_>, r: &Router) -> (Vec<usize>, Vec<String>) {
    let mut eps = Vec::new();
    let mut warnings = Vec::new();
    let mut add = |ep: &str| match cx.ctx.entry_points.iter().position(|e| e.name == ep) {
        Some(i) => eps.push(i),
        None => warnings.push(format!("entryPoint `{ep}` does not exist")),
    };
    if r.entry_points.is_empty() {
        cx.default_eps.iter().for_each(|ep| add(ep));
    } else {
        r.entry_points.iter().for_each(|ep| add(ep));
    }
    (eps, warnings)
}

/// The parts of a route shared by all of a router's entrypoints.
struct RouteParts {
    name: Arc<str>,
    rule: Rule,
    priority: i64,
    service: usize,
}

/// Adds the router's route to each of its entrypoints: as a TLS route (recording the TLS options and
/// certificates it wants) when the router or the entrypoint has `tls`, else as a plain one.
#[allow(clippy::too_many_arguments)]
fn place_routes(
    ctx: &CompileContext,
    name: &str,
    provider: &str,
    r: &Router,
    parts: RouteParts,
    eps: &[usize],
    chains: Vec<Option<Arc<Chain>>>,
    routed: &mut Routed,
) {
    let mut rule = Some(parts.rule);
    for (k, (&i, middlewares)) in eps.iter().zip(chains).enumerate() {
        let (Some(ep), Some(r_rule)) = (ctx.entry_points.get(i), rule.as_ref()) else {
            continue;
        };
        // A router is a TLS router by its own `tls` or by its entrypoint's `http.tls`.
        let ep_tls = ep.tls.as_ref();
        let tls = r.tls.is_some() || ep_tls.is_some();
        if tls {
            want_tls(
                r,
                ep_tls,
                provider,
                name,
                r_rule,
                &mut routed.tls_usage,
                &mut routed.cert_requests,
            );
        }
        // The last entrypoint takes the rule itself; the others a copy.
        let rule = if k + 1 == eps.len() {
            rule.take()
        } else {
            rule.clone()
        };
        let (Some(rule), Some(out)) = (rule, routed.per_ep.get_mut(i)) else {
            continue;
        };
        let route = Route {
            name: parts.name.clone(),
            rule,
            priority: parts.priority,
            service: parts.service,
            stats: None,
            middlewares,
        };
        if tls {
            out.https.push(route);
        } else {
            out.http.push(route);
        }
    }
}

/// Records the TLS options a TLS router's hosts use and the certificates it wants from its resolver.
fn want_tls(
    r: &Router,
    ep_tls: Option<&crate::config::types::EntryPointTls>,
    provider: &str,
    name: &str,
    rule: &Rule,
    usage: &mut TlsUsage,
    cert_requests: &mut Vec<CertRequest>,
) {
    let options = r
        .tls
        .as_ref()
        .and_then(|t| t.options.clone())
        .or_else(|| ep_tls.and_then(|t| t.options.clone()));
    if let Some(o) = options.filter(|o| !o.is_empty() && o != "default") {
        let o = dynamic::qualify(&o, provider);
        for h in rule.domains() {
            usage.host_options.push((h, o.clone(), name.to_string()));
        }
    }
    let resolver = r
        .tls
        .as_ref()
        .and_then(|t| t.cert_resolver.clone())
        .or_else(|| ep_tls.and_then(|t| t.cert_resolver.clone()));
    if let Some(res) = resolver.filter(|x| !x.is_empty()) {
        let domains = match r.tls.as_ref().map(|t| &t.domains).filter(|d| !d.is_empty()) {
            Some(d) => d.clone(),
            None => ep_tls.map(|t| t.domains.clone()).unwrap_or_default(),
        };
        cert_requests.extend(crate::tls::cert_requests(&res, &domains, rule.domains()));
    }
}

/// Each entrypoint's routers, sorted by (priority desc, name asc) and indexed by host.
pub(super) fn entry_point_routes(
    ctx: &CompileContext,
    per_ep: Vec<EpRoutes>,
) -> Vec<EntryPointRoutes> {
    ctx.entry_points
        .iter()
        .zip(per_ep)
        .map(
            |(
                info,
                EpRoutes {
                    mut http,
                    mut https,
                },
            )| {
                sort_routes(&mut http);
                sort_routes(&mut https);
                EntryPointRoutes {
                    name: info.name.clone(),
                    http: RouterSet::new(http),
                    https: RouterSet::new(https),
                    redirect: info.redirect.clone(),
                    sanitize_path: info.sanitize_path,
                    underscore_headers: info.underscore_headers,
                    stats: None,
                }
            },
        )
        .collect()
}

fn sort_routes(routes: &mut [Route]) {
    routes.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.name.cmp(&b.name))
    });
}
