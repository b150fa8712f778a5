//! Traefik's read-only API (`/api/...`) over the current routing table: the same paths, the same JSON
//! field names, each object with its `status` (`enabled`, `warning`, `disabled`) and `error` list — which
//! is where per-router isolation becomes visible. Items a provider dropped for an invalid configuration
//! (a bad label, a router that does not decode) are listed too, `disabled` with their error, and counted in
//! `/api/overview`.

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use super::AdminState;
use crate::dynamic::{self, traefik_json, Configuration};
use crate::http::body::ProxyBody;
use crate::table::{ItemStatus, RoutingTable, ServiceKind};

#[path = "api_udp.rs"]
mod udp;

/// An entrypoint as `/api/entrypoints` shows it: Traefik's static `EntryPoint` fields (`address`,
/// `transport`, `forwardedHeaders`, `http`, …) and `name`, plus the swarmgate extension `boundAddress`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EntryPointView {
    /// Name.
    pub name: String,
    /// Address as configured.
    pub address: String,
    /// Address actually bound (port 0 resolved). swarmgate extension.
    #[serde(rename = "boundAddress")]
    pub bound_address: String,
    /// The other fields of Traefik's representation.
    #[serde(flatten)]
    pub traefik: Map<String, Value>,
    /// `http.tls` as Traefik writes it, when set: routers on this entrypoint without their own `tls`
    /// inherit it, and the API shows it on them as Traefik does.
    #[serde(skip)]
    pub http_tls: Option<Value>,
}

impl EntryPointView {
    /// Builds the view of a configured entrypoint (`ep` = `None` for the implicit `traefik`/`http` ones).
    pub fn new(
        name: &str,
        ep: Option<&crate::config::types::EntryPoint>,
        bound: std::net::SocketAddr,
    ) -> EntryPointView {
        let default = crate::config::types::EntryPoint::default();
        let e = ep.unwrap_or(&default);
        let t = &e.transport;
        let mut traefik = Map::new();
        traefik.insert(
            "transport".into(),
            json!({
                "lifeCycle": {
                    "requestAcceptGraceTimeout": go_duration(t.life_cycle.request_accept_grace_timeout.0),
                    "graceTimeOut": go_duration(t.life_cycle.grace_time_out.0),
                },
                "respondingTimeouts": {
                    "readTimeout": go_duration(t.responding_timeouts.read_timeout.0),
                    "writeTimeout": go_duration(t.responding_timeouts.write_timeout.0),
                    "idleTimeout": go_duration(t.responding_timeouts.idle_timeout.0),
                },
            }),
        );
        let mut fh = Map::new();
        if e.forwarded_headers.insecure {
            fh.insert("insecure".into(), json!(true));
        }
        if !e.forwarded_headers.trusted_ips.is_empty() {
            fh.insert("trustedIPs".into(), json!(e.forwarded_headers.trusted_ips));
        }
        traefik.insert("forwardedHeaders".into(), Value::Object(fh));
        let http_tls = e.http.tls.as_ref().map(|t| {
            let mut tls = Map::new();
            if let Some(o) = &t.options {
                tls.insert("options".into(), json!(o));
            }
            if let Some(r) = &t.cert_resolver {
                tls.insert("certResolver".into(), json!(r));
            }
            if !t.domains.is_empty() {
                tls.insert("domains".into(), json!(t.domains));
            }
            Value::Object(tls)
        });
        traefik.insert(
            "http".into(),
            match &http_tls {
                Some(tls) => json!({ "tls": tls }),
                None => json!({}),
            },
        );
        EntryPointView {
            name: name.to_string(),
            address: ep
                .map(|e| e.address.clone())
                .unwrap_or_else(|| format!(":{}", bound.port())),
            bound_address: bound.to_string(),
            traefik,
            http_tls,
        }
    }
}

pub use crate::dynamic::traefik_json::go_duration;

fn json_response(status: StatusCode, v: &Value) -> Response<ProxyBody> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(ProxyBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn not_found(what: &str) -> Response<ProxyBody> {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({ "message": format!("{what} not found") }),
    )
}

/// Every item of one kind, qualified, with its raw configuration.
fn raw_items<'c>(
    cfg: &'c std::collections::BTreeMap<String, std::sync::Arc<Configuration>>,
    pick: impl Fn(&'c Configuration) -> Vec<(&'c String, Value)>,
) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (provider, c) in cfg {
        for (name, v) in pick(c) {
            out.push((dynamic::qualify(name, provider), provider.clone(), v));
        }
    }
    out
}

/// Items of `kind` that a provider dropped (invalid configuration) and that no valid item of the same name
/// replaces, as the API lists them: name, provider, status `disabled` and the error. They have no
/// configuration to show.
fn dropped(
    table: &RoutingTable,
    kind: dynamic::ItemKind,
    statuses: &std::collections::BTreeMap<String, ItemStatus>,
    present: impl Fn(&Configuration, &str) -> bool,
) -> Vec<Value> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (provider, c) in &table.input.providers {
        for d in c.dropped.iter().filter(|d| d.kind == kind) {
            if present(c, &d.name) {
                continue;
            }
            let name = dynamic::qualify(&d.name, provider);
            if seen.insert(name.clone()) {
                let st = statuses.get(&name);
                out.push(with_status(json!({}), &name, provider, st));
            }
        }
    }
    out
}

fn with_status(mut obj: Value, name: &str, provider: &str, st: Option<&ItemStatus>) -> Value {
    if let Value::Object(m) = &mut obj {
        m.insert("name".into(), json!(name));
        m.insert("provider".into(), json!(provider));
        match st {
            Some(st) => {
                m.insert("status".into(), json!(st.status));
                if !st.errors.is_empty() {
                    m.insert("error".into(), json!(st.errors));
                }
                if !st.entry_points.is_empty() {
                    m.insert("using".into(), json!(st.entry_points));
                }
            }
            None => {
                m.insert("status".into(), json!("enabled"));
            }
        }
    }
    obj
}

/// Sets `key` on a JSON object (every item built here is one); any other value is left as it is.
fn set(v: &mut Value, key: &str, val: Value) {
    if let Value::Object(m) = v {
        m.insert(key.into(), val);
    }
}

/// Go's `omitempty` for the top level of a serialized item: empty strings and arrays are left out.
fn omit_empty(v: &mut Value) {
    if let Value::Object(m) = v {
        m.retain(|_, x| match x {
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Null => false,
            _ => true,
        });
    }
}

/// An item of our model as Traefik writes it (typed values, Traefik's defaults; see
/// [`traefik_json`]); `typ` is Traefik's struct for it.
fn typed<T: serde::Serialize>(item: &T, typ: &str) -> Value {
    traefik_json::item(serde_json::to_value(item).unwrap_or_default(), typ)
}

/// The `tls` a router without its own inherits from its entrypoints' `http.tls` (Traefik applies the
/// entrypoint's model to the router): the one value its entrypoints with `http.tls` share. Traefik splits a
/// router whose entrypoints differ into one router per entrypoint; such a router is shown without.
fn inherited_tls(entry_points: Option<&Value>, eps: &[EntryPointView]) -> Option<Value> {
    let names: Vec<&str> = entry_points?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut found: Option<&Value> = None;
    for ep in eps.iter().filter(|e| names.contains(&e.name.as_str())) {
        match (&ep.http_tls, found) {
            (Some(t), None) => found = Some(t),
            (Some(t), Some(f)) if t != f => return None,
            _ => {}
        }
    }
    found.cloned()
}

/// Routers as Traefik's API lists them: the dynamic router with default entrypoints and observability filled
/// in (as Traefik's aggregator does), `priorityStr`, `using`, `status`, `error`, `name`, `provider`.
pub fn routers(table: &RoutingTable, eps: &[EntryPointView]) -> Vec<Value> {
    raw_items(&table.input.providers, |c| {
        c.http
            .routers
            .iter()
            .map(|(n, r)| (n, typed(r, traefik_json::ROUTER)))
            .collect()
    })
    .into_iter()
    .map(|(name, provider, mut v)| {
        omit_empty(&mut v);
        let st = table.status.routers.get(&name);
        if let Value::Object(m) = &mut v {
            if !m.contains_key("entryPoints") {
                if let Some(st) = st.filter(|s| !s.entry_points.is_empty()) {
                    m.insert("entryPoints".into(), json!(st.entry_points));
                }
            }
            let priority = m.get("priority").and_then(Value::as_i64).unwrap_or(0);
            if priority == 0 {
                m.remove("priority");
            }
            m.insert("priorityStr".into(), json!(priority.to_string()));
            let obs = m.entry("observability").or_insert_with(|| json!({}));
            if let Value::Object(o) = obs {
                for k in ["accessLogs", "metrics", "tracing"] {
                    o.entry(k).or_insert(json!(true));
                }
                o.entry("traceVerbosity").or_insert(json!("minimal"));
            }
            if !m.contains_key("tls") {
                if let Some(tls) = inherited_tls(m.get("entryPoints"), eps) {
                    m.insert("tls".into(), tls);
                }
            }
            if let Some(Value::Object(tls)) = m.get_mut("tls") {
                tls.entry("options").or_insert(json!("default"));
            }
        }
        with_status(v, &name, &provider, st)
    })
    .chain(dropped(
        table,
        dynamic::ItemKind::Router,
        &table.status.routers,
        |c, n| c.http.routers.contains_key(n),
    ))
    .collect()
}

/// Service name → the routers using it, from a table's router statuses (HTTP, TCP or UDP).
pub(super) fn used_by(
    routers: &std::collections::BTreeMap<String, ItemStatus>,
) -> std::collections::BTreeMap<&str, Vec<&str>> {
    let mut out: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
    for (router, st) in routers {
        if let Some(s) = &st.service {
            out.entry(s.as_str()).or_default().push(router.as_str());
        }
    }
    out
}

/// A service's `type` as Traefik's API writes it, from its raw configuration.
pub(super) fn service_type(v: &Value) -> &'static str {
    let Value::Object(m) = v else { return "" };
    [
        ("loadBalancer", "loadbalancer"),
        ("weighted", "weighted"),
        ("mirroring", "mirroring"),
        ("failover", "failover"),
    ]
    .into_iter()
    .find(|(key, _)| m.contains_key(*key))
    .map_or("", |(_, kind)| kind)
}

/// Services with their status, users and server health.
pub fn services(table: &RoutingTable) -> Vec<Value> {
    let used_by = used_by(&table.status.routers);
    let mut out: Vec<Value> = raw_items(&table.input.providers, |c| {
        c.http
            .services
            .iter()
            .map(|(n, s)| (n, typed(s, traefik_json::SERVICE)))
            .collect()
    })
    .into_iter()
    .map(|(name, provider, v)| {
        let kind = service_type(&v);
        let mut v = with_status(v, &name, &provider, table.status.services.get(&name));
        if let Value::Object(m) = &mut v {
            m.insert("type".into(), json!(kind));
            if let Some(users) = used_by.get(name.as_str()) {
                m.insert("usedBy".into(), json!(users));
            }
            if let Some(rt) = table.services.iter().find(|s| *s.name == *name) {
                if let ServiceKind::LoadBalancer(lb) = &rt.kind {
                    let now = crate::balance::health::now_ms();
                    let servers: Map<String, Value> = lb
                        .servers
                        .iter()
                        .map(|s| {
                            (
                                s.url.to_string(),
                                json!(if s.health.is_up(now) { "UP" } else { "DOWN" }),
                            )
                        })
                        .collect();
                    m.insert("serverStatus".into(), Value::Object(servers));
                }
            }
        }
        v
    })
    .collect();
    out.extend(dropped(
        table,
        dynamic::ItemKind::Service,
        &table.status.services,
        |c, n| c.http.services.contains_key(n),
    ));
    out.extend(internal_services(table, &used_by));
    out
}

/// Internal services as Traefik lists them (`api@internal`, `noop@internal`, …): no type, status enabled.
fn internal_services(
    table: &RoutingTable,
    used_by: &std::collections::BTreeMap<&str, Vec<&str>>,
) -> Vec<Value> {
    table
        .services
        .iter()
        .filter(|s| matches!(s.kind, ServiceKind::Internal(_)))
        .map(|s| {
            let mut v = json!({ "name": &*s.name, "provider": "internal", "status": "enabled" });
            if let Some(users) = used_by.get(&*s.name) {
                set(&mut v, "usedBy", json!(users));
            }
            v
        })
        .collect()
}

/// One middleware as the API lists it (HTTP or TCP): its configuration with status, `type` and `usedBy`.
fn middleware_entry(
    v: Value,
    name: &str,
    provider: &str,
    st: Option<&ItemStatus>,
    users: Vec<String>,
) -> Value {
    let kind = middleware_type(&v);
    let mut v = with_status(v, name, provider, st);
    set(&mut v, "type", json!(kind));
    if !users.is_empty() {
        set(&mut v, "usedBy", json!(users));
    }
    v
}

/// A middleware's `type` as Traefik's API writes it: its one key, lower-case.
fn middleware_type(v: &Value) -> String {
    v.as_object()
        .and_then(|m| m.keys().next().cloned())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The routers (qualified, sorted) whose middlewares name the qualified middleware `name`, in every
/// provider; `routers` lists a configuration's routers of one protocol with their middlewares.
fn middleware_users<'c>(
    table: &'c RoutingTable,
    name: &str,
    routers: impl Fn(&'c Configuration) -> Vec<(&'c String, &'c [String])>,
) -> Vec<String> {
    let mut users: Vec<String> = table
        .input
        .providers
        .iter()
        .flat_map(|(p, c)| routers(c).into_iter().map(move |(rn, mws)| (p, rn, mws)))
        .filter(|(p, _, mws)| mws.iter().any(|m| dynamic::qualify(m, p) == name))
        .map(|(p, rn, _)| dynamic::qualify(rn, p))
        .collect();
    users.sort();
    users
}

/// Middlewares with their status and users.
pub fn middlewares(table: &RoutingTable) -> Vec<Value> {
    raw_items(&table.input.providers, |c| {
        c.http
            .middlewares
            .iter()
            .map(|(n, m)| (n, typed(m, traefik_json::MIDDLEWARE)))
            .collect()
    })
    .into_iter()
    .map(|(name, provider, v)| {
        let st = table.status.middlewares.get(&name);
        let users = middleware_users(table, &name, |c| {
            c.http
                .routers
                .iter()
                .map(|(rn, r)| (rn, r.middlewares.as_slice()))
                .collect()
        });
        middleware_entry(v, &name, &provider, st, users)
    })
    .chain(dropped(
        table,
        dynamic::ItemKind::Middleware,
        &table.status.middlewares,
        |c, n| c.http.middlewares.contains_key(n),
    ))
    .collect()
}

/// TCP routers as Traefik's API lists them: the dynamic router with its effective entrypoints, `using`,
/// `status`, `error`, `name`, `provider`.
pub fn tcp_routers(table: &RoutingTable) -> Vec<Value> {
    let status = &table.tcp.status.routers;
    raw_items(&table.input.providers, |c| {
        c.tcp
            .routers
            .iter()
            .map(|(n, r)| (n, typed(r, traefik_json::TCP_ROUTER)))
            .collect()
    })
    .into_iter()
    .map(|(name, provider, mut v)| {
        omit_empty(&mut v);
        let st = status.get(&name);
        if let Value::Object(m) = &mut v {
            if !m.contains_key("entryPoints") {
                if let Some(st) = st.filter(|s| !s.entry_points.is_empty()) {
                    m.insert("entryPoints".into(), json!(st.entry_points));
                }
            }
            if let Some(Value::Object(tls)) = m.get_mut("tls") {
                tls.entry("options").or_insert(json!("default"));
            }
        }
        with_status(v, &name, &provider, st)
    })
    .chain(dropped(
        table,
        dynamic::ItemKind::TcpRouter,
        status,
        |c, n| c.tcp.routers.contains_key(n),
    ))
    .collect()
}

/// TCP services with their status, type and users.
pub fn tcp_services(table: &RoutingTable) -> Vec<Value> {
    let used_by = used_by(&table.tcp.status.routers);
    let status = &table.tcp.status.services;
    raw_items(&table.input.providers, |c| {
        c.tcp
            .services
            .iter()
            .map(|(n, s)| (n, typed(s, traefik_json::TCP_SERVICE)))
            .collect()
    })
    .into_iter()
    .map(|(name, provider, v)| {
        let kind = service_type(&v);
        let mut v = with_status(v, &name, &provider, status.get(&name));
        set(&mut v, "type", json!(kind));
        if let Some(users) = used_by.get(name.as_str()) {
            set(&mut v, "usedBy", json!(users));
        }
        v
    })
    .chain(dropped(
        table,
        dynamic::ItemKind::TcpService,
        status,
        |c, n| c.tcp.services.contains_key(n),
    ))
    .collect()
}

/// TCP middlewares with their status, type and users.
pub fn tcp_middlewares(table: &RoutingTable) -> Vec<Value> {
    let status = &table.tcp.status.middlewares;
    raw_items(&table.input.providers, |c| {
        c.tcp
            .middlewares
            .iter()
            .map(|(n, m)| (n, typed(m, traefik_json::TCP_MIDDLEWARE)))
            .collect()
    })
    .into_iter()
    .map(|(name, provider, v)| {
        let users = middleware_users(table, &name, |c| {
            c.tcp
                .routers
                .iter()
                .map(|(rn, r)| (rn, r.middlewares.as_slice()))
                .collect()
        });
        middleware_entry(v, &name, &provider, status.get(&name), users)
    })
    .collect()
}

fn counts(items: &[Value]) -> Value {
    let by = |s: &str| {
        items
            .iter()
            .filter(|v| v.get("status").and_then(Value::as_str) == Some(s))
            .count()
    };
    json!({ "total": items.len(), "warnings": by("warning"), "errors": by("disabled") })
}

/// Filters Traefik's list endpoints accept: `search`, `status`, `provider`; then `page`/`per_page`.
fn filtered(items: Vec<Value>, query: Option<&str>) -> (Vec<Value>, Option<usize>) {
    let param = |k: &str| -> Option<String> {
        query?
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.to_string())
    };
    let search = param("search").map(|s| s.to_ascii_lowercase());
    let status = param("status");
    let provider = param("provider");
    let mut items: Vec<Value> = items
        .into_iter()
        .filter(|v| {
            let name = v.get("name").and_then(Value::as_str).unwrap_or("");
            search.as_ref().is_none_or(|s| {
                name.to_ascii_lowercase().contains(s.as_str())
                    || v.get("rule")
                        .and_then(Value::as_str)
                        .is_some_and(|r| r.to_ascii_lowercase().contains(s.as_str()))
            }) && status
                .as_ref()
                .is_none_or(|s| v.get("status").and_then(Value::as_str) == Some(s.as_str()))
                && provider
                    .as_ref()
                    .is_none_or(|p| v.get("provider").and_then(Value::as_str) == Some(p.as_str()))
        })
        .collect();
    items.sort_by(|a, b| {
        a.get("name")
            .and_then(Value::as_str)
            .cmp(&b.get("name").and_then(Value::as_str))
    });
    let per_page: usize = param("per_page")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p > 0)
        .unwrap_or(100);
    let page: usize = param("page")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p > 0)
        .unwrap_or(1);
    let start = (page - 1).saturating_mul(per_page);
    let next = (start + per_page < items.len()).then_some(page + 1);
    let items = items.into_iter().skip(start).take(per_page).collect();
    (items, next)
}

/// Answers `/api/...`.
pub fn serve(
    req: &Request<Incoming>,
    table: &RoutingTable,
    state: &AdminState,
) -> Response<ProxyBody> {
    let path = req.uri().path().trim_end_matches('/');
    let list = |items: Vec<Value>| list_response(items, req.uri().query());
    match path {
        "/api/version" => json_response(
            StatusCode::OK,
            &json!({
                "Version": env!("CARGO_PKG_VERSION"),
                "Codename": "swarmgate",
                "startDate": crate::accesslog::rfc3339_nano(state.started),
            }),
        ),
        "/api/overview" => json_response(StatusCode::OK, &overview(table, state)),
        "/api/rawdata" => json_response(StatusCode::OK, &rawdata(table, &state.entry_points)),
        "/api/certificates" => list(certificates(table)),
        "/api/x/stats" => json_response(StatusCode::OK, &stats(state)),
        "/api/x/changes" => json_response(StatusCode::OK, &changes(state)),
        "/api/entrypoints" => list(
            state
                .entry_points
                .iter()
                .map(|e| serde_json::to_value(e).unwrap_or_default())
                .collect(),
        ),
        "/api/http/routers" => list(routers(table, &state.entry_points)),
        "/api/http/services" => list(services(table)),
        "/api/http/middlewares" => list(middlewares(table)),
        "/api/tcp/routers" => list(tcp_routers(table)),
        "/api/tcp/services" => list(tcp_services(table)),
        "/api/tcp/middlewares" => list(tcp_middlewares(table)),
        "/api/udp/routers" => list(udp::routers(table)),
        "/api/udp/services" => list(udp::services(table)),
        p => serve_one(p, table, state),
    }
}

/// A list endpoint's answer: the filtered page, and Traefik's `X-Next-Page` (1 when there is none).
fn list_response(items: Vec<Value>, query: Option<&str>) -> Response<ProxyBody> {
    let (items, next) = filtered(items, query);
    let mut r = json_response(StatusCode::OK, &Value::Array(items));
    r.headers_mut()
        .insert("x-next-page", HeaderValue::from(next.unwrap_or(1)));
    r
}

/// `/api/<kind>/<name>`: the one item of that kind with that (percent-encoded) name, or 404.
fn serve_one(path: &str, table: &RoutingTable, state: &AdminState) -> Response<ProxyBody> {
    let one = |items: Vec<Value>, name: &str, what: &str| match items
        .into_iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(name))
    {
        Some(v) => json_response(StatusCode::OK, &v),
        None => not_found(what),
    };
    if let Some(n) = path.strip_prefix("/api/http/routers/") {
        one(
            routers(table, &state.entry_points),
            &percent_decode(n),
            "router",
        )
    } else if let Some(n) = path.strip_prefix("/api/http/services/") {
        one(services(table), &percent_decode(n), "service")
    } else if let Some(n) = path.strip_prefix("/api/http/middlewares/") {
        one(middlewares(table), &percent_decode(n), "middleware")
    } else if let Some(n) = path.strip_prefix("/api/tcp/routers/") {
        one(tcp_routers(table), &percent_decode(n), "router")
    } else if let Some(n) = path.strip_prefix("/api/tcp/services/") {
        one(tcp_services(table), &percent_decode(n), "service")
    } else if let Some(n) = path.strip_prefix("/api/tcp/middlewares/") {
        one(tcp_middlewares(table), &percent_decode(n), "middleware")
    } else if let Some(n) = path.strip_prefix("/api/udp/routers/") {
        one(udp::routers(table), &percent_decode(n), "udp router")
    } else if let Some(n) = path.strip_prefix("/api/udp/services/") {
        one(udp::services(table), &percent_decode(n), "udp service")
    } else if let Some(n) = path.strip_prefix("/api/certificates/") {
        one(certificates(table), &percent_decode(n), "certificate")
    } else if let Some(n) = path.strip_prefix("/api/entrypoints/") {
        match state.entry_points.iter().find(|e| e.name == n) {
            Some(e) => json_response(StatusCode::OK, &serde_json::to_value(e).unwrap_or_default()),
            None => not_found("entry point"),
        }
    } else {
        not_found("resource")
    }
}

/// `/api/overview`: Traefik's counts per kind, certificate health, features and providers.
fn overview(table: &RoutingTable, state: &AdminState) -> Value {
    let providers: Vec<String> = table
        .input
        .providers
        .keys()
        .filter(|p| p.as_str() != "internal")
        .map(|p| capitalize(p))
        .collect();
    let certs = certificates(table);
    let status_count = |s: &str| {
        certs
            .iter()
            .filter(|c| c.get("status").and_then(Value::as_str) == Some(s))
            .count()
    };
    let mut v = json!({
        "http": { "routers": counts(&routers(table, &state.entry_points)), "services": counts(&services(table)), "middlewares": counts(&middlewares(table)) },
        "tcp": { "routers": counts(&tcp_routers(table)), "services": counts(&tcp_services(table)), "middlewares": counts(&tcp_middlewares(table)) },
        "udp": { "routers": counts(&udp::routers(table)), "services": counts(&udp::services(table)) },
        "certificates": {
            "total": certs.len(),
            "warnings": status_count("warning"),
            "errors": status_count("expired"),
        },
        "features": { "tracing": "", "metrics": if state.metrics.is_some() { "Prometheus" } else { "" }, "accessLog": state.access_log },
    });
    if let (false, Some(m)) = (providers.is_empty(), v.as_object_mut()) {
        m.insert("providers".into(), json!(providers));
    }
    v
}

/// `/api/rawdata`: Traefik's runtime representation, the items by name without the list-only fields.
fn rawdata(table: &RoutingTable, eps: &[EntryPointView]) -> Value {
    let to_map = |items: Vec<Value>| -> Value {
        Value::Object(
            items
                .into_iter()
                .filter_map(|mut v| {
                    let name = v.get("name")?.as_str()?.to_string();
                    if let Value::Object(m) = &mut v {
                        for k in ["name", "provider", "type", "priorityStr"] {
                            m.remove(k);
                        }
                    }
                    Some((name, v))
                })
                .collect(),
        )
    };
    let mut v = json!({ "routers": to_map(routers(table, eps)), "services": to_map(services(table)), "middlewares": to_map(middlewares(table)) });
    // Traefik omits the TCP and UDP maps when empty (`omitempty`).
    for (key, items) in [
        ("tcpRouters", tcp_routers(table)),
        ("tcpServices", tcp_services(table)),
        ("tcpMiddlewares", tcp_middlewares(table)),
        ("udpRouters", udp::routers(table)),
        ("udpServices", udp::services(table)),
    ] {
        if !items.is_empty() {
            set(&mut v, key, to_map(items));
        }
    }
    v
}

/// `/api/x/changes`: the recent table changes, newest first.
fn changes(state: &AdminState) -> Value {
    let ring = state.changes.lock().unwrap_or_else(|e| e.into_inner());
    Value::Array(
        ring.iter()
            .rev()
            .map(|c| serde_json::to_value(c).unwrap_or_default())
            .collect(),
    )
}

/// Certificates as Traefik's `/api/certificates` shows them (a subset of its fields: names, validity,
/// issuer, fingerprints, status `enabled`/`warning` (< 30 days left)/`expired`).
pub fn certificates(table: &RoutingTable) -> Vec<Value> {
    use sha2::Digest as _;
    let Some(tls) = &table.tls else {
        return Vec::new();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let at = |secs: i64| {
        crate::accesslog::rfc3339_nano(
            std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0)),
        )
    };
    let mut out = Vec::new();
    for ck in tls.certs.certificates() {
        let Some(leaf) = ck.cert.first() else {
            continue;
        };
        let Ok((_, x)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
            continue;
        };
        let fp = hex::encode(sha2::Sha256::digest(leaf.as_ref()));
        let pk = hex::encode(sha2::Sha256::digest(x.public_key().raw));
        let not_after = x.validity().not_after.timestamp();
        let status = if not_after < now {
            "expired"
        } else if not_after - now < 30 * 24 * 3600 {
            "warning"
        } else {
            "enabled"
        };
        let first =
            |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
                it.next()
                    .and_then(|a| a.as_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
        let mut v = json!({
            "name": fp,
            "sans": crate::tls::certs::names(leaf),
            "notAfter": at(not_after),
            "notBefore": at(x.validity().not_before.timestamp()),
            "serialNumber": x.tbs_certificate.raw_serial_as_string(),
            "commonName": first(&mut x.subject().iter_common_name()),
            "version": format!("v{}", x.version().0 + 1),
            "certFingerprint": fp,
            "publicKeyFingerprint": pk,
            "status": status,
        });
        for (k, val) in [
            ("issuerOrg", first(&mut x.issuer().iter_organization())),
            ("issuerCN", first(&mut x.issuer().iter_common_name())),
        ] {
            if !val.is_empty() {
                set(&mut v, k, json!(val));
            }
        }
        out.push(v);
    }
    out
}

/// `/api/x/stats` (swarmgate extension): request totals per entrypoint, router and service from the metrics
/// counters, for the dashboard's rates. `{"enabled": false}` when `--metrics.prometheus` is off.
fn stats(state: &AdminState) -> Value {
    let Some(m) = &state.metrics else {
        return json!({ "enabled": false });
    };
    let mut out = json!({ "enabled": true, "entrypoint": {}, "router": {}, "service": {} });
    for (family, name, t) in m.totals() {
        if let Value::Object(o) = &mut out {
            let items = o.entry(family).or_insert_with(|| json!({}));
            set(items, &name, serde_json::to_value(t).unwrap_or_default());
        }
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// `%40` → `@` in item names (`/api/http/routers/web%40file`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        if c == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_percent_decoded() {
        assert_eq!(percent_decode("web%40file"), "web@file");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%4"), "bad%4");
    }

    #[test]
    fn filters_and_pages() {
        let items: Vec<Value> = (0..5).map(|i| json!({"name": format!("r{i}@file"), "status": if i == 2 { "disabled" } else { "enabled" }, "provider": "file"})).collect();
        let (v, next) = filtered(items.clone(), Some("status=disabled"));
        assert_eq!(v.len(), 1);
        assert_eq!(next, None);
        let (v, next) = filtered(items.clone(), Some("per_page=2&page=2"));
        assert_eq!(v.len(), 2);
        assert_eq!(next, Some(3));
        let (v, _) = filtered(items, Some("search=R4"));
        assert_eq!(v.len(), 1);
    }
}
