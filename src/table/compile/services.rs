//! Step "services": builds every configured service into its runtime form, disables the ones that cannot
//! run (bad options, broken or cyclic weighted children) with a status line each, and appends the enabled
//! internal services. Services keep one index for the whole build: routes, weighted services and
//! middlewares (`errors.service`) refer to them by position.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Method, Uri};

use super::super::{
    InternalService, ItemStatus, LoadBalancerRuntime, ServerRuntime, ServiceKind, ServiceRuntime,
    Status, StickyRuntime, UpstreamScheme, WeightedRuntime,
};
use super::{CompileContext, HealthRegistry, Report};
use crate::balance::health::{CheckTarget, HealthCheckSettings, ServerHealth};
use crate::balance::sticky::{cookie_name, cookie_value, CookieSpec, SameSite, StickyTable};
use crate::balance::WeightedRoundRobin;
use crate::dynamic::{self, HealthCheck, Service, StickyCookie};

/// The services of one build, by index: configured ones in name order, then the enabled internal ones.
pub(super) struct Services<'a> {
    /// Index → qualified name of every configured service (built or not).
    names: Vec<&'a str>,
    /// Qualified name → index, built once for every lookup of the build (one per router, weighted child
    /// and middleware); foldhash, not SipHash, as the names come from the configuration.
    index: NameIndex<'a>,
    /// Index → the built service, `None` when it is disabled.
    built: Vec<Option<ServiceRuntime>>,
    /// Enabled internal services; their indices follow the configured ones.
    internal: Vec<(&'static str, InternalService)>,
}

/// Qualified service name → index.
type NameIndex<'a> = HashMap<&'a str, usize, foldhash::fast::RandomState>;

/// Health state of the previous build and of this one, and the active checks this build wants.
pub(super) struct HealthCx<'r> {
    /// The previous build's states (read only).
    pub carried: &'r HealthRegistry,
    /// This build's states.
    pub next: &'r mut HealthRegistry,
    /// Servers with active health checks.
    pub targets: &'r mut Vec<CheckTarget>,
}

/// Builds every service of `items`; disabled ones are reported and listed in `report.status.services`.
pub(super) fn compile<'a>(
    items: &'a [(String, &'a str, &'a Service)],
    ctx: &CompileContext,
    health: &mut HealthCx<'_>,
    report: &mut Report,
) -> Services<'a> {
    let names: Vec<&str> = items.iter().map(|(n, _, _)| n.as_str()).collect();
    let index: NameIndex<'_> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut built = Vec::with_capacity(items.len());
    let mut errors = Vec::with_capacity(items.len());
    let servers = items
        .iter()
        .filter_map(|(_, _, s)| s.load_balancer.as_ref())
        .map(|lb| lb.servers.len())
        .sum();
    health.next.reserve(servers);
    for (name, provider, svc) in items {
        match build_service(name, provider, svc, &index, health) {
            Ok(rt) => {
                built.push(Some(rt));
                errors.push(None);
            }
            Err(e) => {
                built.push(None);
                errors.push(Some(e));
            }
        }
    }
    disable_broken_weighted(&mut built, &mut errors, &names);
    let mut statuses = Vec::with_capacity(items.len());
    for ((name, provider, _), err) in items.iter().zip(errors) {
        let st = match err {
            Some(e) => {
                report
                    .issues
                    .push(format!("service `{name}` disabled: {e}"));
                ItemStatus::new(Status::Disabled, provider).with_errors(vec![e])
            }
            None => ItemStatus::new(Status::Enabled, provider),
        };
        statuses.push((name.clone(), st));
    }
    super::extend_status(&mut report.status.services, statuses);
    let internal = InternalService::ALL
        .into_iter()
        .filter(|(_, kind)| ctx.internal.contains(kind))
        .collect();
    Services {
        names,
        index,
        built,
        internal,
    }
}

/// Disables weighted services whose children are broken (until nothing changes), then those in a cycle.
fn disable_broken_weighted(
    built: &mut [Option<ServiceRuntime>],
    errors: &mut [Option<String>],
    names: &[&str],
) {
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..built.len() {
            let bad_child = match built.get(i).and_then(Option::as_ref).map(|s| &s.kind) {
                Some(ServiceKind::Weighted(w)) => w
                    .children
                    .iter()
                    .find(|&&c| built.get(c).is_some_and(Option::is_none))
                    .map(|&c| names.get(c).copied().unwrap_or_default()),
                _ => None,
            };
            if let (Some(child), Some(b), Some(e)) =
                (bad_child, built.get_mut(i), errors.get_mut(i))
            {
                *e = Some(format!("child service `{child}` is not available"));
                *b = None;
                changed = true;
            }
        }
    }
    for (i, e) in errors.iter_mut().enumerate() {
        if built.get(i).is_some_and(Option::is_some) && weighted_cycle(i, built, &mut Vec::new()) {
            *e = Some("weighted services form a cycle".into());
        }
    }
    for (b, e) in built.iter_mut().zip(errors.iter()) {
        if e.is_some() {
            *b = None;
        }
    }
}

impl Services<'_> {
    /// Index of the configured or internal service `qualified`, built or not.
    pub(super) fn lookup(&self, qualified: &str) -> Option<usize> {
        self.index.get(qualified).copied().or_else(|| {
            self.internal
                .iter()
                .position(|(n, _)| *n == qualified)
                .map(|p| self.built.len() + p)
        })
    }

    /// Index of `qualified` if it can serve (configured and built, or internal and enabled).
    pub(super) fn usable(&self, qualified: &str) -> Option<usize> {
        self.lookup(qualified).filter(|&i| !self.is_disabled(i))
    }

    /// Whether the configured service at `index` failed to build.
    pub(super) fn is_disabled(&self, index: usize) -> bool {
        self.built.get(index).is_some_and(Option::is_none)
    }

    /// The table's services: disabled ones as empty placeholders (so indices stay valid; no route points at
    /// them), then the internal ones.
    pub(super) fn into_runtime(self) -> Vec<ServiceRuntime> {
        let mut out: Vec<ServiceRuntime> = self
            .built
            .into_iter()
            .zip(&self.names)
            .map(|(b, name)| b.unwrap_or_else(|| placeholder(name)))
            .collect();
        out.extend(
            self.internal
                .into_iter()
                .map(|(name, kind)| ServiceRuntime {
                    name: Arc::from(name),
                    kind: ServiceKind::Internal(kind),
                    stats: None,
                }),
        );
        out
    }
}

fn placeholder(name: &str) -> ServiceRuntime {
    ServiceRuntime {
        name: Arc::from(name),
        kind: ServiceKind::Weighted(WeightedRuntime {
            children: Box::new([]),
            wrr: WeightedRoundRobin::new(&[]),
            sticky: None,
        }),
        stats: None,
    }
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

fn build_service(
    name: &str,
    provider: &str,
    svc: &Service,
    index: &NameIndex<'_>,
    health: &mut HealthCx<'_>,
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
    let shared_name: Arc<str> = Arc::from(name);
    let kind = if let Some(lb) = &svc.load_balancer {
        ServiceKind::LoadBalancer(load_balancer(&shared_name, lb, health)?)
    } else if let Some(w) = &svc.weighted {
        ServiceKind::Weighted(weighted(name, provider, w, index)?)
    } else if svc.mirroring.is_some() {
        return Err("mirroring services are not supported yet".into());
    } else if svc.failover.is_some() {
        return Err("failover services are not supported yet".into());
    } else {
        return Err("no loadBalancer or weighted section".into());
    };
    Ok(ServiceRuntime {
        name: shared_name,
        kind,
        stats: None,
    })
}

/// Up to this many servers, repeats are found by scanning instead of hashing.
const SCAN_SERVERS: usize = 16;

fn load_balancer(
    name: &Arc<str>,
    lb: &dynamic::LoadBalancer,
    health: &mut HealthCx<'_>,
) -> Result<LoadBalancerRuntime, String> {
    let health_settings = match &lb.health_check {
        Some(hc) => Some(Arc::new(health_settings(hc)?)),
        None => None,
    };
    let mut servers = Vec::with_capacity(lb.servers.len());
    let mut weights = Vec::with_capacity(lb.servers.len());
    // Short lists (the usual one to a few replicas) are checked for repeats by a scan of the servers kept,
    // without building a hash set per service.
    let mut seen =
        (lb.servers.len() > SCAN_SERVERS).then(|| HashSet::with_capacity(lb.servers.len()));
    for (i, s) in lb.servers.iter().enumerate() {
        let parsed = parse_server(&s.url, s.preserve_path)
            .map_err(|e| format!("servers[{i}].url `{}`: {e}", s.url))?;
        let repeated = match seen.as_mut() {
            Some(seen) => !seen.insert(s.url.as_str()),
            None => servers.iter().any(|k: &ServerRuntime| *k.url == *s.url),
        };
        if repeated {
            continue; // the same server twice (e.g. merged from two containers) counts once
        }
        let url: Arc<str> = Arc::from(s.url.as_str());
        let state = health.carried.take(name, &url, health.next);
        if let Some(settings) = &health_settings {
            if let Ok(uri) = s.url.parse::<Uri>() {
                health.targets.push(CheckTarget {
                    service: name.to_string(),
                    server_url: uri,
                    settings: settings.clone(),
                    state: state.clone(),
                });
            }
        } else {
            // No active check: a server that a former check marked down must not stay down forever.
            // Read first: a new state is up already, and the swap costs a locked instruction per server.
            if !state.active_up() {
                state.set_active(true);
            }
        }
        servers.push(parsed.with_health(url, state));
        weights.push(s.weight.unwrap_or(1));
    }
    let servers: Box<[ServerRuntime]> = servers.into_boxed_slice();
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
    // Named `serversTransport`s: all share the default pool for now.
    Ok(LoadBalancerRuntime {
        wrr: WeightedRoundRobin::new(&weights),
        servers,
        sticky,
        pass_host_header: lb.pass_host_header.unwrap_or(true),
    })
}

fn weighted(
    name: &str,
    provider: &str,
    w: &dynamic::Weighted,
    index: &NameIndex<'_>,
) -> Result<WeightedRuntime, String> {
    let mut children = Vec::with_capacity(w.services.len());
    let mut weights = Vec::with_capacity(w.services.len());
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
    Ok(WeightedRuntime {
        children: children.into_boxed_slice(),
        wrr: WeightedRoundRobin::new(&weights),
        sticky,
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

/// A server URL parsed into the parts the forwarder needs, before its health state is attached.
pub(super) struct ParsedServer {
    scheme: UpstreamScheme,
    uri_scheme: Scheme,
    authority: Authority,
    base_path: Option<PathAndQuery>,
    host_header: HeaderValue,
}

impl ParsedServer {
    fn with_health(self, url: Arc<str>, health: Arc<ServerHealth>) -> ServerRuntime {
        ServerRuntime {
            url,
            scheme: self.scheme,
            uri_scheme: self.uri_scheme,
            authority: self.authority,
            base_path: self.base_path,
            host_header: self.host_header,
            health,
        }
    }
}

/// Parses a server URL into the parts the forwarder needs. `h2c://` means HTTP/2 prior knowledge.
fn parse_server(url: &str, preserve_path: bool) -> Result<ParsedServer, String> {
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
    Ok(ParsedServer {
        scheme,
        uri_scheme,
        authority,
        base_path,
        host_header,
    })
}

#[cfg(test)]
pub(in crate::table) fn build_server_for_tests(url: &str) -> Result<ServerRuntime, String> {
    parse_server(url, false).map(|p| p.with_health(Arc::from(url), Arc::new(ServerHealth::new())))
}
