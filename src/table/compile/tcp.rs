//! Step "tcp": compiles the `tcp` sections of every provider into the table's [`TcpTable`]: transports,
//! services (load balancers and weighted), middlewares (`ipAllowList`, `inFlightConn`) and routers per
//! entrypoint, plain and TLS, with what the entrypoint's HTTPS routers claim. Broken items are listed as
//! disabled with their reason; their neighbours are served. TLS routers that terminate add their TLS options
//! and certificate requests to the HTTP routers' ones.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::super::tcp::{
    InFlightConn, TcpEntryPoint, TcpLoadBalancer, TcpMiddleware, TcpRoute, TcpServerTarget,
    TcpService, TcpServiceKind, TcpTable, TcpTls, TcpTransport,
};
use super::super::{EntryPointRoutes, ItemStatus, Status, TableStatus};
use super::{BuildInput, CompileContext};
use crate::balance::wrr::WeightedRoundRobin;
use crate::dynamic::{self, TcpRouter, TcpServersTransport};
use crate::proxy_protocol::Version;
use crate::rule::{self, Syntax};
use crate::tls::{CertRequest, TlsUsage};

/// What the TCP step adds to the TLS side of the build.
pub(super) struct TlsWishes<'a> {
    /// Hosts whose TCP routers use non-default TLS options.
    pub usage: &'a mut TlsUsage,
    /// Certificates TCP routers want from resolvers.
    pub cert_requests: &'a mut Vec<CertRequest>,
}

/// Every TCP item by qualified name, borrowed from the input.
struct Items<'a> {
    services: BTreeMap<String, (&'a str, &'a dynamic::TcpService)>,
    middlewares: BTreeMap<String, (&'a str, &'a dynamic::Middleware)>,
    transports: BTreeMap<String, &'a TcpServersTransport>,
    routers: Vec<(String, &'a str, &'a TcpRouter)>,
}

fn qualify(input: &BuildInput) -> Items<'_> {
    let mut items = Items {
        services: BTreeMap::new(),
        middlewares: BTreeMap::new(),
        transports: BTreeMap::new(),
        routers: Vec::new(),
    };
    for (provider, cfg) in &input.providers {
        let p = provider.as_str();
        let t = &cfg.tcp;
        for (n, s) in &t.services {
            items.services.insert(dynamic::qualify(n, p), (p, s));
        }
        for (n, m) in &t.middlewares {
            items.middlewares.insert(dynamic::qualify(n, p), (p, m));
        }
        for (n, x) in &t.servers_transports {
            items.transports.insert(dynamic::qualify(n, p), x);
        }
        for (n, r) in &t.routers {
            items.routers.push((dynamic::qualify(n, p), p, r));
        }
    }
    items
}

/// Compiles the TCP side. `http` are the entrypoints' compiled HTTP routes (for the HTTPS routers' hosts);
/// problems go to `issues`.
pub(super) fn compile(
    input: &BuildInput,
    ctx: &CompileContext,
    http: &[EntryPointRoutes],
    tls: TlsWishes<'_>,
    issues: &mut Vec<String>,
) -> TcpTable {
    let items = qualify(input);
    let mut status = TableStatus::default();
    let default_transport = ctx.tcp_transport.clone().unwrap_or_default();
    let mut services = Services {
        items: &items,
        default_transport: &default_transport,
        built: HashMap::new(),
        transports: HashMap::new(),
    };
    for name in items.services.keys() {
        let _ = services.build(name, &mut Vec::new());
    }
    for (name, (provider, _)) in &items.services {
        let st = match services.built.get(name) {
            Some(Ok(_)) => ItemStatus::new(Status::Enabled, provider),
            Some(Err(e)) => {
                issues.push(format!("TCP service `{name}` disabled: {e}"));
                ItemStatus::new(Status::Disabled, provider).with_errors(vec![e.clone()])
            }
            None => ItemStatus::new(Status::Disabled, provider),
        };
        status.services.insert(name.clone(), st);
    }
    let middlewares = compile_middlewares(&items, &mut status, issues);
    let mut eps: EpLists = ctx
        .entry_points
        .iter()
        .map(|_| Default::default())
        .collect();
    let mut tls = tls;
    for (name, provider, r) in &items.routers {
        let cx = RouterCx {
            ctx,
            services: &services.built,
            middlewares: &middlewares,
        };
        let st = compile_router(&cx, name, provider, r, &mut eps, &mut tls);
        if !st.errors.is_empty() {
            issues.push(format!(
                "TCP router `{name}` {}: {}",
                if st.status == Status::Disabled {
                    "disabled"
                } else {
                    "served with warnings"
                },
                st.errors.join("; ")
            ));
        }
        status.routers.insert(name.clone(), st);
    }
    let entry_points = eps
        .into_iter()
        .enumerate()
        .map(|(i, (plain, tls_routes))| entry_point(ctx, i, http.get(i), plain, tls_routes))
        .collect();
    TcpTable {
        entry_points,
        status,
    }
}

/// One entrypoint's TCP routes (sorted) and its HTTPS routers' claims.
fn entry_point(
    ctx: &CompileContext,
    i: usize,
    http: Option<&EntryPointRoutes>,
    mut plain: Vec<Arc<TcpRoute>>,
    mut tls: Vec<Arc<TcpRoute>>,
) -> TcpEntryPoint {
    let order = |a: &Arc<TcpRoute>, b: &Arc<TcpRoute>| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.name.cmp(&b.name))
    };
    plain.sort_by(order);
    tls.sort_by(order);
    let mut https_hosts = HashSet::new();
    let mut https_catch_all = false;
    let mut has_https = false;
    if let Some(h) = http {
        for route in h.https.routes.iter() {
            has_https = true;
            let domains = route.rule.domains();
            if domains.is_empty() {
                https_catch_all = true;
            }
            https_hosts.extend(domains.into_iter().map(String::into_boxed_str));
        }
    }
    let open = match (&ctx.metrics, ctx.entry_points.get(i)) {
        (Some(m), Some(ep)) if !plain.is_empty() || !tls.is_empty() => Some(
            m.open_connections
                .with_label_values(&[ep.name.as_str(), "TCP"]),
        ),
        _ => None,
    };
    TcpEntryPoint {
        plain: plain.into_boxed_slice(),
        tls: tls.into_boxed_slice(),
        https_hosts,
        https_catch_all,
        has_https,
        open,
    }
}

/// Builds services on demand (weighted services name others), each once, refusing cycles.
struct Services<'a> {
    items: &'a Items<'a>,
    default_transport: &'a TcpServersTransport,
    built: HashMap<String, Result<Arc<TcpService>, String>>,
    transports: HashMap<String, Result<Arc<TcpTransport>, String>>,
}

impl Services<'_> {
    fn build(&mut self, name: &str, stack: &mut Vec<String>) -> Result<Arc<TcpService>, String> {
        if let Some(done) = self.built.get(name) {
            return done.clone();
        }
        if stack.iter().any(|s| s == name) {
            return Err(format!("weighted services form a cycle through `{name}`"));
        }
        let Some(&(provider, svc)) = self.items.services.get(name) else {
            return Err(format!("TCP service `{name}` does not exist"));
        };
        stack.push(name.to_string());
        let built = self.build_one(name, provider, svc, stack);
        stack.pop();
        self.built.insert(name.to_string(), built.clone());
        built
    }

    fn build_one(
        &mut self,
        name: &str,
        provider: &str,
        svc: &dynamic::TcpService,
        stack: &mut Vec<String>,
    ) -> Result<Arc<TcpService>, String> {
        let kind = match (&svc.load_balancer, &svc.weighted) {
            (Some(lb), None) => TcpServiceKind::LoadBalancer(self.load_balancer(lb, provider)?),
            (None, Some(w)) => {
                let mut children = Vec::new();
                let mut weights = Vec::new();
                for c in &w.services {
                    let child = dynamic::qualify(&c.name, provider);
                    children.push(
                        self.build(&child, stack)
                            .map_err(|e| format!("child `{child}`: {e}"))?,
                    );
                    weights.push(c.weight.unwrap_or(1));
                }
                if children.is_empty() {
                    return Err("weighted service without services".into());
                }
                TcpServiceKind::Weighted {
                    wrr: WeightedRoundRobin::new(&weights),
                    children: children.into_boxed_slice(),
                }
            }
            _ => return Err("exactly one of loadBalancer and weighted must be set".into()),
        };
        Ok(Arc::new(TcpService {
            name: name.into(),
            kind,
        }))
    }

    fn load_balancer(
        &mut self,
        lb: &dynamic::TcpLoadBalancer,
        provider: &str,
    ) -> Result<TcpLoadBalancer, String> {
        let (key, t) = match lb.servers_transport.as_deref().filter(|s| !s.is_empty()) {
            Some(n) => {
                let q = dynamic::qualify(n, provider);
                match self.items.transports.get(&q) {
                    Some(t) => (q, *t),
                    None => return Err(format!("serversTransport `{q}` does not exist")),
                }
            }
            None => (String::new(), self.default_transport),
        };
        let base = self
            .transports
            .entry(key.clone())
            .or_insert_with(|| transport(t).map(Arc::new))
            .clone()
            .map_err(|e| format!("serversTransport `{key}`: {e}"))?;
        // The deprecated load-balancer settings override the transport's, as Traefik v3.5 does.
        let legacy_pp = match &lb.proxy_protocol {
            Some(pp) => Some(proxy_version(pp)?),
            None => None,
        };
        let any_tls = lb.servers.iter().any(|s| s.tls);
        let transport = if legacy_pp.is_some()
            || lb.termination_delay.is_some()
            || (any_tls && base.tls.is_none())
        {
            let mut own = transport(t)?;
            if let Some(v) = legacy_pp {
                own.proxy_protocol = Some(v);
            }
            if let Some(ms) = lb.termination_delay {
                own.termination_delay = u64::try_from(ms).ok().map(Duration::from_millis);
            }
            if any_tls && own.tls.is_none() {
                own.tls = Some(client_tls(&dynamic::TcpTransportTls::default())?);
            }
            Arc::new(own)
        } else {
            base
        };
        let mut servers = Vec::new();
        let mut weights = Vec::new();
        for s in &lb.servers {
            if s.address.is_empty() {
                return Err("a server has no address".into());
            }
            servers.push(TcpServerTarget {
                address: s.address.as_str().into(),
                tls: s.tls || transport_tls(t),
            });
            weights.push(s.weight.unwrap_or(1));
        }
        Ok(TcpLoadBalancer {
            wrr: WeightedRoundRobin::new(&weights),
            servers: servers.into_boxed_slice(),
            transport,
        })
    }
}

fn transport_tls(t: &TcpServersTransport) -> bool {
    t.tls.is_some()
}

fn proxy_version(pp: &dynamic::TcpProxyProtocol) -> Result<Version, String> {
    // Traefik's default version when the section is present is 2.
    let v = pp.version.unwrap_or(2);
    Version::from_number(v).ok_or_else(|| format!("proxyProtocol.version {v} is not 1 or 2"))
}

/// A TCP transport from its configuration, with Traefik's defaults.
fn transport(t: &TcpServersTransport) -> Result<TcpTransport, String> {
    let mut out = TcpTransport::default();
    if let Some(d) = t.dial_timeout {
        out.dial_timeout = d.non_zero().unwrap_or(out.dial_timeout);
    }
    if let Some(d) = t.dial_keep_alive {
        out.keep_alive = d.non_zero();
    }
    if let Some(v) = &t.termination_delay {
        out.termination_delay = termination_delay(v)?;
    }
    if let Some(pp) = &t.proxy_protocol {
        out.proxy_protocol = Some(proxy_version(pp)?);
    }
    if let Some(tls) = &t.tls {
        out.tls = Some(client_tls(tls)?);
        out.server_name = tls.server_name.clone().filter(|s| !s.is_empty());
    }
    Ok(out)
}

/// `terminationDelay`: a Go duration or a number of seconds; negative means no bound.
fn termination_delay(v: &serde_json::Value) -> Result<Option<Duration>, String> {
    let bad = || format!("terminationDelay `{v}` is not a duration");
    match v {
        serde_json::Value::Number(n) => {
            let secs = n.as_f64().ok_or_else(bad)?;
            Ok((secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9))))
        }
        serde_json::Value::String(s) => match s.trim().strip_prefix('-') {
            Some(_) => Ok(None),
            None => crate::value::duration::parse_go_duration(s)
                .map(Some)
                .map_err(|_| bad()),
        },
        _ => Err(bad()),
    }
}

fn client_tls(t: &dynamic::TcpTransportTls) -> Result<Arc<rustls::ClientConfig>, String> {
    let settings = crate::upstream::transport::PoolSettings {
        insecure_skip_verify: t.insecure_skip_verify,
        root_cas: crate::upstream::transport::load_root_cas(&t.root_cas)
            .map_err(|e| e.to_string())?,
        ..Default::default()
    };
    crate::upstream::transport::upstream_tls(&settings)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

type Built = HashMap<String, Result<Arc<TcpMiddleware>, String>>;

fn compile_middlewares(
    items: &Items<'_>,
    status: &mut TableStatus,
    issues: &mut Vec<String>,
) -> Built {
    let mut out = HashMap::new();
    for (name, (provider, m)) in &items.middlewares {
        let built = middleware(m).map(Arc::new);
        let st = match &built {
            Ok(_) => ItemStatus::new(Status::Enabled, provider),
            Err(e) => {
                issues.push(format!("TCP middleware `{name}` disabled: {e}"));
                ItemStatus::new(Status::Disabled, provider).with_errors(vec![e.clone()])
            }
        };
        status.middlewares.insert(name.clone(), st);
        out.insert(name.clone(), built);
    }
    out
}

fn middleware(m: &dynamic::Middleware) -> Result<TcpMiddleware, String> {
    let mut kinds = m.0.iter();
    let (Some((kind, v)), None) = (kinds.next(), kinds.next()) else {
        return Err("a TCP middleware has exactly one type".into());
    };
    let field = |k: &str| {
        v.as_object()
            .and_then(|o| o.iter().find(|(x, _)| x.eq_ignore_ascii_case(k)))
            .map(|(_, v)| v)
    };
    match kind.to_ascii_lowercase().as_str() {
        "ipallowlist" | "ipwhitelist" => {
            let ranges = field("sourceRange")
                .and_then(|r| r.as_array())
                .ok_or_else(|| format!("{kind}.sourceRange: a list of IPs or CIDRs is required"))?;
            let mut nets = Vec::new();
            for r in ranges {
                let s = r.as_str().unwrap_or_default();
                nets.push(
                    parse_net(s)
                        .ok_or_else(|| format!("{kind}.sourceRange: `{s}` is not an IP or CIDR"))?,
                );
            }
            Ok(TcpMiddleware::IpAllowList(nets.into_boxed_slice()))
        }
        "inflightconn" => {
            let amount = field("amount")
                .and_then(|a| {
                    a.as_u64()
                        .or_else(|| a.as_str().and_then(|s| s.trim().parse().ok()))
                })
                .filter(|a| *a > 0)
                .ok_or_else(|| "inFlightConn.amount: a positive number is required".to_string())?;
            Ok(TcpMiddleware::InFlightConn(InFlightConn::new(amount)))
        }
        other => Err(format!(
            "TCP middleware type `{other}` is not supported (ipAllowList, inFlightConn)"
        )),
    }
}

/// An IP (a one-address range) or a CIDR range, host bits ignored, as Traefik's `ip.NewChecker` reads them.
fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Some(ipnet::IpNet::from(ip));
    }
    s.parse::<ipnet::IpNet>().ok().map(|n| n.trunc())
}

struct RouterCx<'a> {
    ctx: &'a CompileContext,
    services: &'a HashMap<String, Result<Arc<TcpService>, String>>,
    middlewares: &'a Built,
}

type EpLists = Vec<(Vec<Arc<TcpRoute>>, Vec<Arc<TcpRoute>>)>;

fn compile_router(
    cx: &RouterCx<'_>,
    name: &str,
    provider: &str,
    r: &TcpRouter,
    eps: &mut EpLists,
    tls: &mut TlsWishes<'_>,
) -> ItemStatus {
    let mut errors = Vec::new();
    let syntax = match r.rule_syntax.as_deref() {
        None | Some("") => cx.ctx.default_syntax,
        Some(s) => s.parse::<Syntax>().unwrap_or_else(|_| {
            errors.push(format!("ruleSyntax `{s}` is not v2 or v3"));
            cx.ctx.default_syntax
        }),
    };
    let parsed = if r.rule.trim().is_empty() {
        errors.push("empty rule".into());
        None
    } else {
        rule::parse_tcp(&r.rule, syntax)
            .map_err(|e| errors.push(format!("invalid rule `{}`: {e}", r.rule)))
            .ok()
    };
    let service_name = dynamic::qualify(&r.service, provider);
    let service = match cx.services.get(&service_name) {
        _ if r.service.is_empty() => {
            errors.push("no service".into());
            None
        }
        Some(Ok(s)) => Some(s.clone()),
        Some(Err(e)) => {
            errors.push(format!("service `{service_name}` is disabled: {e}"));
            None
        }
        None => {
            errors.push(format!("TCP service `{service_name}` does not exist"));
            None
        }
    };
    let mut mws = Vec::new();
    for m in &r.middlewares {
        let q = dynamic::qualify(m.trim(), provider);
        match cx.middlewares.get(&q) {
            Some(Ok(m)) => mws.push(m.clone()),
            Some(Err(e)) => errors.push(format!("middleware `{q}` is disabled: {e}")),
            None => errors.push(format!("TCP middleware `{q}` does not exist")),
        }
    }
    let (ep_idx, warnings) = entry_points(cx.ctx, r);
    if ep_idx.is_empty() {
        errors.push("no valid entryPoint for this router".into());
    }
    if r.tls.as_ref().is_none()
        && parsed
            .as_ref()
            .is_some_and(|p| p.sni_names().iter().any(|n| n != "*"))
    {
        errors.push("HostSNI with a name needs tls (only HostSNI(`*`) matches plain TCP)".into());
    }
    let priority = match r.priority {
        Some(p) if p != 0 => p,
        _ => r.rule.chars().count() as i64,
    };
    let serve = errors.is_empty();
    if let (true, Some(rule), Some(service)) = (serve, parsed, service) {
        let mode = match &r.tls {
            None => TcpTls::None,
            Some(t) if t.passthrough => TcpTls::Passthrough,
            Some(_) => TcpTls::Terminate,
        };
        if mode == TcpTls::Terminate {
            tls_wishes(name, provider, r, &rule, tls);
        }
        let route = Arc::new(TcpRoute {
            name: name.into(),
            catch_all: r.rule.trim() == "HostSNI(`*`)",
            rule,
            priority,
            tls: mode,
            middlewares: mws.into_boxed_slice(),
            service,
        });
        for &i in &ep_idx {
            if let Some((plain, tls_list)) = eps.get_mut(i) {
                match mode {
                    TcpTls::None => plain.push(route.clone()),
                    _ => tls_list.push(route.clone()),
                }
            }
        }
    }
    let status = match (serve, warnings.is_empty()) {
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
        entry_points: ep_idx
            .iter()
            .filter_map(|&i| cx.ctx.entry_points.get(i).map(|e| e.name.clone()))
            .collect(),
        service: (!r.service.is_empty()).then_some(service_name),
        priority: Some(priority),
    }
}

/// The router's TLS options for its exact server names, and its certificates from a resolver.
fn tls_wishes(
    name: &str,
    provider: &str,
    r: &TcpRouter,
    rule: &rule::TcpRule,
    tls: &mut TlsWishes<'_>,
) {
    let Some(t) = &r.tls else { return };
    let hosts: Vec<String> = rule
        .sni_names()
        .into_iter()
        .filter(|n| n != "*" && !n.starts_with('*'))
        .collect();
    if let Some(o) = t
        .options
        .as_ref()
        .filter(|o| !o.is_empty() && *o != "default")
    {
        let o = dynamic::qualify(o, provider);
        for h in &hosts {
            tls.usage
                .host_options
                .push((h.clone(), o.clone(), name.to_string()));
        }
    }
    if let Some(resolver) = t.cert_resolver.as_ref().filter(|r| !r.is_empty()) {
        tls.cert_requests
            .extend(crate::tls::cert_requests(resolver, &t.domains, hosts));
    }
}

/// Entrypoints of a TCP router: its own, else the default ones (`asDefault`, else all), as for HTTP.
fn entry_points(ctx: &CompileContext, r: &TcpRouter) -> (Vec<usize>, Vec<String>) {
    let mut eps = Vec::new();
    let mut warnings = Vec::new();
    if r.entry_points.is_empty() {
        let marked = ctx.entry_points.iter().any(|e| e.as_default);
        eps.extend(
            ctx.entry_points
                .iter()
                .enumerate()
                .filter(|(_, e)| e.as_default || !marked)
                .map(|(i, _)| i),
        );
    } else {
        for ep in &r.entry_points {
            match ctx.entry_points.iter().position(|e| e.name == *ep) {
                Some(i) => eps.push(i),
                None => warnings.push(format!("entryPoint `{ep}` does not exist")),
            }
        }
    }
    (eps, warnings)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn termination_delay_values() {
        use serde_json::json;
        assert_eq!(
            termination_delay(&json!("100ms")).unwrap(),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            termination_delay(&json!(2)).unwrap(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(termination_delay(&json!("-1s")).unwrap(), None);
        assert_eq!(termination_delay(&json!(-1)).unwrap(), None);
        assert!(termination_delay(&json!("soon")).is_err());
    }

    #[test]
    fn middlewares_parse_as_traefik_names_them() {
        let m = |v: serde_json::Value| {
            let dynamic::Middleware(map) = serde_json::from_value(v).unwrap();
            middleware(&dynamic::Middleware(map))
        };
        assert!(matches!(
            m(serde_json::json!({"ipAllowList": {"sourceRange": ["10.0.0.0/8", "::1"]}})),
            Ok(TcpMiddleware::IpAllowList(n)) if n.len() == 2
        ));
        assert!(matches!(
            m(serde_json::json!({"inFlightConn": {"amount": 3}})),
            Ok(TcpMiddleware::InFlightConn(c)) if c.amount == 3
        ));
        assert!(m(serde_json::json!({"ipAllowList": {"sourceRange": ["nope"]}})).is_err());
        assert!(m(serde_json::json!({"stripPrefix": {}})).is_err());
    }
}
