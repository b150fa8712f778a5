//! Traefik's read-only API (`/api/...`) over the current routing table: the same paths, the same JSON
//! field names, each object with its `status` (`enabled`, `warning`, `disabled`) and `error` list — which
//! is where per-router isolation becomes visible.

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use super::AdminState;
use crate::dynamic::{self, Configuration};
use crate::proxy::body::ProxyBody;
use crate::table::{ItemStatus, RoutingTable, ServiceKind};

/// An entrypoint as `/api/entrypoints` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EntryPointView {
    /// Name.
    pub name: String,
    /// Address as configured.
    pub address: String,
    /// Address actually bound (port 0 resolved).
    #[serde(rename = "boundAddress")]
    pub bound_address: String,
}

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
    cfg: &'c std::collections::BTreeMap<String, Configuration>,
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
                if let Some(p) = st.priority {
                    m.insert("priority".into(), json!(p));
                }
            }
            None => {
                m.insert("status".into(), json!("enabled"));
            }
        }
    }
    obj
}

/// Routers as Traefik's API lists them.
pub fn routers(table: &RoutingTable) -> Vec<Value> {
    raw_items(&table.input.providers, |c| {
        c.http
            .routers
            .iter()
            .map(|(n, r)| (n, serde_json::to_value(r).unwrap_or_default()))
            .collect()
    })
    .into_iter()
    .map(|(name, provider, v)| {
        let st = table.status.routers.get(&name);
        let mut v = with_status(v, &name, &provider, st);
        if let (Value::Object(m), Some(svc)) = (&mut v, st.and_then(|s| s.service.as_ref())) {
            // Traefik shows the service as referenced; qualified when it is in another provider.
            let shown = match svc.strip_suffix(&format!("@{provider}")) {
                Some(local) => local.to_string(),
                None => svc.clone(),
            };
            m.insert("service".into(), json!(shown));
        }
        v
    })
    .collect()
}

/// Services with their status, users and server health.
pub fn services(table: &RoutingTable) -> Vec<Value> {
    let mut used_by: std::collections::BTreeMap<&str, Vec<&str>> =
        std::collections::BTreeMap::new();
    for (router, st) in &table.status.routers {
        if let Some(s) = &st.service {
            used_by.entry(s.as_str()).or_default().push(router.as_str());
        }
    }
    raw_items(&table.input.providers, |c| {
        c.http
            .services
            .iter()
            .map(|(n, s)| (n, serde_json::to_value(s).unwrap_or_default()))
            .collect()
    })
    .into_iter()
    .map(|(name, provider, v)| {
        let kind = match &v {
            Value::Object(m) if m.contains_key("loadBalancer") => "loadbalancer",
            Value::Object(m) if m.contains_key("weighted") => "weighted",
            Value::Object(m) if m.contains_key("mirroring") => "mirroring",
            Value::Object(m) if m.contains_key("failover") => "failover",
            _ => "",
        };
        let mut v = with_status(v, &name, &provider, table.status.services.get(&name));
        if let Value::Object(m) = &mut v {
            m.insert("type".into(), json!(kind));
            if let Some(users) = used_by.get(name.as_str()) {
                m.insert("usedBy".into(), json!(users));
            }
            if let Some(rt) = table.services.iter().find(|s| &*s.name == name) {
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
    .collect()
}

/// Middlewares with their status and users.
pub fn middlewares(table: &RoutingTable) -> Vec<Value> {
    raw_items(&table.input.providers, |c| {
        c.http
            .middlewares
            .iter()
            .map(|(n, m)| (n, serde_json::to_value(m).unwrap_or_default()))
            .collect()
    })
    .into_iter()
    .map(|(name, provider, v)| {
        let kind = v
            .as_object()
            .and_then(|m| m.keys().next().cloned())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let users: Vec<&String> = table
            .input
            .providers
            .iter()
            .flat_map(|(p, c)| c.http.routers.iter().map(move |(rn, r)| (p, rn, r)))
            .filter(|(p, _, r)| r.middlewares.iter().any(|m| dynamic::qualify(m, p) == name))
            .map(|(_, rn, _)| rn)
            .collect();
        let mut v = with_status(v, &name, &provider, table.status.middlewares.get(&name));
        if let Value::Object(m) = &mut v {
            m.insert("type".into(), json!(kind));
            if !users.is_empty() {
                m.insert("usedBy".into(), json!(users));
            }
        }
        v
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
    let query = req.uri().query();
    let list = |items: Vec<Value>| {
        let (items, next) = filtered(items, query);
        let mut r = json_response(StatusCode::OK, &Value::Array(items));
        r.headers_mut()
            .insert("x-next-page", HeaderValue::from(next.unwrap_or(1)));
        r
    };
    let one = |items: Vec<Value>, name: &str, what: &str| match items
        .into_iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(name))
    {
        Some(v) => json_response(StatusCode::OK, &v),
        None => not_found(what),
    };
    match path {
        "/api/version" => json_response(
            StatusCode::OK,
            &json!({ "Version": env!("CARGO_PKG_VERSION"), "Codename": "swarmgate" }),
        ),
        "/api/overview" => {
            let providers: Vec<String> = table
                .input
                .providers
                .keys()
                .map(|p| capitalize(p))
                .collect();
            json_response(
                StatusCode::OK,
                &json!({
                    "http": { "routers": counts(&routers(table)), "services": counts(&services(table)), "middlewares": counts(&middlewares(table)) },
                    "tcp": { "routers": {"total": 0, "warnings": 0, "errors": 0}, "services": {"total": 0, "warnings": 0, "errors": 0}, "middlewares": {"total": 0, "warnings": 0, "errors": 0} },
                    "udp": { "routers": {"total": 0, "warnings": 0, "errors": 0}, "services": {"total": 0, "warnings": 0, "errors": 0} },
                    "features": { "tracing": "", "metrics": if state.metrics.is_some() { "Prometheus" } else { "" }, "accessLog": false },
                    "providers": providers,
                }),
            )
        }
        "/api/rawdata" => {
            let to_map = |items: Vec<Value>| -> Value {
                Value::Object(
                    items
                        .into_iter()
                        .filter_map(|v| Some((v.get("name")?.as_str()?.to_string(), v)))
                        .collect(),
                )
            };
            json_response(
                StatusCode::OK,
                &json!({ "routers": to_map(routers(table)), "services": to_map(services(table)), "middlewares": to_map(middlewares(table)) }),
            )
        }
        "/api/entrypoints" => list(
            state
                .entry_points
                .iter()
                .map(|e| serde_json::to_value(e).unwrap_or_default())
                .collect(),
        ),
        "/api/http/routers" => list(routers(table)),
        "/api/http/services" => list(services(table)),
        "/api/http/middlewares" => list(middlewares(table)),
        "/api/tcp/routers"
        | "/api/tcp/services"
        | "/api/tcp/middlewares"
        | "/api/udp/routers"
        | "/api/udp/services" => list(Vec::new()),
        p => {
            if let Some(n) = p.strip_prefix("/api/http/routers/") {
                one(routers(table), &percent_decode(n), "router")
            } else if let Some(n) = p.strip_prefix("/api/http/services/") {
                one(services(table), &percent_decode(n), "service")
            } else if let Some(n) = p.strip_prefix("/api/http/middlewares/") {
                one(middlewares(table), &percent_decode(n), "middleware")
            } else if let Some(n) = p.strip_prefix("/api/entrypoints/") {
                match state.entry_points.iter().find(|e| e.name == n) {
                    Some(e) => {
                        json_response(StatusCode::OK, &serde_json::to_value(e).unwrap_or_default())
                    }
                    None => not_found("entry point"),
                }
            } else {
                not_found("resource")
            }
        }
    }
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
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
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
