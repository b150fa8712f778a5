//! Start-up steps that only read the static configuration: entrypoints, internal routers, the compile
//! context, metrics, the admin state and the upstream transport. Nothing here spawns a task.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::accesslog::AccessLogger;
use crate::admin::{api::EntryPointView, AdminState};
use crate::config::{self, types::StaticConfig, Protocol};
use crate::metrics::{Labels, Metrics};
use crate::proxy::forward::{load_root_cas, PoolSettings};
use crate::proxy::pool::Upstreams;
use crate::table::{CompileContext, EntryPointInfo, EntryPointRedirect, InternalService};

use super::AppError;

/// Entrypoints to serve, in table order: (name, address) for TCP entrypoints; UDP ones are listed by
/// [`udp_entry_points`]. Without any entrypoint configured, Traefik's default `http` on :80.
pub(super) fn tcp_entry_points(cfg: &StaticConfig) -> Result<Vec<(String, SocketAddr)>, AppError> {
    let mut out = Vec::new();
    for (name, ep) in &cfg.entry_points {
        let (addr, proto) = config::parse_address(&ep.address).map_err(AppError::Invalid)?;
        match proto {
            Protocol::Tcp => out.push((name.clone(), addr)),
            // Served by the UDP proxy (`udp_entry_points`).
            Protocol::Udp => {}
        }
    }
    if cfg.entry_points.is_empty() {
        // Traefik's default: one entrypoint `http` on :80.
        out.push(("http".to_string(), SocketAddr::from(([0, 0, 0, 0], 80))));
    }
    // Traefik creates entrypoint `traefik` on :8080 when an internal service needs it and it is not defined.
    let (_, _, needs_traefik) = internal_config(cfg);
    if needs_traefik && !out.iter().any(|(n, _)| n == "traefik") {
        out.push((
            "traefik".to_string(),
            SocketAddr::from(([0, 0, 0, 0], 8080)),
        ));
    }
    Ok(out)
}

/// A UDP entrypoint as configured: its address and `udp` settings.
#[derive(Debug, Clone)]
pub(super) struct UdpEntryPoint {
    /// Name.
    pub name: String,
    /// Address to bind.
    pub addr: SocketAddr,
    /// `udp.timeout` (Traefik's default 3 s; 0 means the default).
    pub timeout: std::time::Duration,
    /// `udp.maxSessions` (swarmgate's own): most sessions at once.
    pub max_sessions: usize,
}

/// The UDP entrypoints (`address: ":53/udp"`), in configuration order: the order of the table's UDP
/// entrypoints and of the UDP proxy's tasks.
pub(super) fn udp_entry_points(cfg: &StaticConfig) -> Result<Vec<UdpEntryPoint>, AppError> {
    let mut out = Vec::new();
    for (name, ep) in &cfg.entry_points {
        let (addr, proto) = config::parse_address(&ep.address).map_err(AppError::Invalid)?;
        if proto != Protocol::Udp {
            continue;
        }
        let udp = ep.udp.as_ref();
        let get = |key: &str| {
            udp.and_then(serde_json::Value::as_object)
                .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
                .map(|(_, v)| v.clone())
        };
        let timeout = match get("timeout") {
            None => crate::proxy::udp::DEFAULT_TIMEOUT,
            Some(v) => {
                serde_json::from_value::<crate::value::GoDuration>(v)
                    .map_err(|e| AppError::Invalid(format!("entryPoints.{name}.udp.timeout: {e}")))?
                    .0
            }
        };
        let max_sessions = match get("maxSessions") {
            None => crate::proxy::udp::DEFAULT_MAX_SESSIONS,
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    AppError::Invalid(format!(
                        "entryPoints.{name}.udp.maxSessions: `{v}` is not a positive number"
                    ))
                })?,
        };
        out.push(UdpEntryPoint {
            name: name.clone(),
            addr,
            timeout: if timeout.is_zero() {
                crate::proxy::udp::DEFAULT_TIMEOUT
            } else {
                timeout
            },
            max_sessions,
        });
    }
    Ok(out)
}

/// The routers Traefik generates for its internal services (`api@internal`, `dashboard@internal`,
/// `ping@internal`, `prometheus@internal`), which internal services are enabled, and whether the
/// `traefik` entrypoint is needed.
pub fn internal_config(
    cfg: &StaticConfig,
) -> (crate::dynamic::Configuration, Vec<InternalService>, bool) {
    use crate::dynamic::{Configuration, Router};
    let mut c = Configuration::default();
    let mut enabled = vec![InternalService::Noop];
    let mut needs_traefik = false;
    let router = |c: &mut Configuration, name: &str, rule: &str, ep: &str, priority: i64| {
        c.http.routers.insert(
            name.to_string(),
            Router {
                entry_points: vec![ep.to_string()],
                service: format!("{name}@internal"),
                rule: rule.to_string(),
                priority: Some(priority),
                ..Default::default()
            },
        );
    };
    if let Some(api) = &cfg.api {
        enabled.push(InternalService::Api);
        let dashboard = api.dashboard.unwrap_or(true);
        if dashboard {
            enabled.push(InternalService::Dashboard);
        }
        if api.insecure {
            needs_traefik = true;
            router(&mut c, "api", "PathPrefix(`/api`)", "traefik", i64::MAX - 1);
            if dashboard {
                router(
                    &mut c,
                    "dashboard",
                    "PathPrefix(`/`)",
                    "traefik",
                    i64::MAX - 2,
                );
            }
        }
    }
    if let Some(ping) = &cfg.ping {
        enabled.push(InternalService::Ping);
        if !ping.manual_routing {
            let ep = ping.entry_point.clone().unwrap_or_else(|| "traefik".into());
            needs_traefik |= ep == "traefik";
            router(&mut c, "ping", "PathPrefix(`/ping`)", &ep, i64::MAX);
        }
    }
    if let Some(prom) = cfg.metrics.as_ref().and_then(|m| m.prometheus.as_ref()) {
        enabled.push(InternalService::Prometheus);
        if !prom.manual_routing {
            let ep = prom.entry_point.clone().unwrap_or_else(|| "traefik".into());
            needs_traefik |= ep == "traefik";
            router(
                &mut c,
                "prometheus",
                "PathPrefix(`/metrics`)",
                &ep,
                i64::MAX,
            );
        }
    }
    (c, enabled, needs_traefik)
}

/// How the table is compiled for these entrypoints (redirections, default middlewares and TLS, internal
/// services); TLS and metrics are filled in by the caller.
pub(super) fn compile_context(
    cfg: &StaticConfig,
    eps: &[(String, SocketAddr)],
) -> Result<CompileContext, AppError> {
    let mut infos = Vec::new();
    for (name, _) in eps {
        let ep = cfg.entry_points.get(name).cloned().unwrap_or_default();
        let redirect = match ep
            .http
            .redirections
            .as_ref()
            .and_then(|r| r.entry_point.as_ref())
        {
            None => None,
            Some(r) => {
                let port = match eps.iter().find(|(n, _)| *n == r.to) {
                    Some((_, addr)) => addr.port(),
                    None => r.to.trim_start_matches(':').parse().map_err(|_| {
                        AppError::Invalid(format!(
                            "entryPoints.{name}.http.redirections.entryPoint.to: `{}` is unknown",
                            r.to
                        ))
                    })?,
                };
                Some(EntryPointRedirect {
                    scheme: r.scheme.clone(),
                    port: Some(port),
                    permanent: r.permanent,
                })
            }
        };
        infos.push(EntryPointInfo {
            name: name.clone(),
            as_default: ep.as_default,
            redirect,
            middlewares: ep.http.middlewares.clone(),
            tls: ep.http.tls.clone(),
            sanitize_path: ep.http.sanitize_path.unwrap_or(true),
            // Validated when the static configuration was loaded.
            underscore_headers: ep
                .http
                .underscore_headers_strategy
                .as_deref()
                .and_then(|s| s.parse().ok())
                .unwrap_or_default(),
        });
    }
    Ok(CompileContext {
        entry_points: infos,
        default_syntax: config::default_rule_syntax(cfg),
        tls: None,
        internal: internal_config(cfg).1,
        metrics: None,
        tcp_transport: tcp_servers_transport(cfg)?,
        udp_entry_points: Vec::new(),
    })
}

/// The static `tcpServersTransport` (the default transport of TCP services), checked at start-up.
fn tcp_servers_transport(
    cfg: &StaticConfig,
) -> Result<Option<crate::dynamic::TcpServersTransport>, AppError> {
    cfg.tcp_servers_transport
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| AppError::Invalid(format!("tcpServersTransport: {e}")))
}

/// The Prometheus registry, when `metrics.prometheus` is configured.
pub(super) fn prometheus(cfg: &StaticConfig) -> Result<Option<Arc<Metrics>>, AppError> {
    let Some(p) = cfg.metrics.as_ref().and_then(|m| m.prometheus.as_ref()) else {
        return Ok(None);
    };
    let metrics = Metrics::new(
        &p.buckets,
        Labels {
            entry_points: p.add_entry_points_labels.unwrap_or(true),
            routers: p.add_routers_labels,
            services: p.add_services_labels.unwrap_or(true),
        },
    )
    .map_err(|e| AppError::Invalid(e.to_string()))?;
    Ok(Some(Arc::new(metrics)))
}

/// What the admin API, ping and the dashboard read: entrypoints, features, the change log.
pub(super) fn admin_state(
    cfg: &StaticConfig,
    eps: &[(String, SocketAddr)],
    metrics: Option<Arc<Metrics>>,
    access_logger: Option<Arc<AccessLogger>>,
) -> Arc<AdminState> {
    Arc::new(AdminState {
        terminating: std::sync::atomic::AtomicBool::new(false),
        terminating_status: cfg
            .ping
            .as_ref()
            .and_then(|p| p.terminating_status_code)
            .and_then(|c| http::StatusCode::from_u16(c).ok())
            .unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE),
        entry_points: eps
            .iter()
            .map(|(n, a)| EntryPointView::new(n, cfg.entry_points.get(n), *a))
            .collect(),
        metrics,
        dashboard: cfg
            .api
            .as_ref()
            .is_some_and(|a| a.dashboard.unwrap_or(true)),
        access_log: access_logger.is_some(),
        access_logger,
        started: std::time::SystemTime::now(),
        changes: Default::default(),
    })
}

/// The upstream pools' settings from `serversTransport`, checked once here so that a bad `rootCAs` fails
/// start-up (the workers and the health prober build their pools from them).
pub(super) fn transport(cfg: &StaticConfig) -> Result<PoolSettings, AppError> {
    let t = &cfg.servers_transport;
    let settings = PoolSettings {
        dial_timeout: t.forwarding_timeouts.dial_timeout.non_zero(),
        idle_timeout: t.forwarding_timeouts.idle_conn_timeout.non_zero(),
        max_idle_per_host: t.max_idle_conns_per_host,
        insecure_skip_verify: t.insecure_skip_verify,
        root_cas: load_root_cas(&t.root_cas)
            .map_err(|e| AppError::Invalid(format!("serversTransport.{e}")))?,
    };
    Upstreams::new(&settings).map_err(|e| AppError::Invalid(format!("serversTransport: {e}")))?;
    Ok(settings)
}

/// One line saying what runs: entrypoints, providers, routers served and certificates, logged at startup.
pub(super) fn startup_summary(
    cfg: &StaticConfig,
    eps: &[(String, SocketAddr)],
    table: &crate::table::RoutingTable,
) {
    let entry_points: Vec<String> = eps.iter().map(|(n, a)| format!("{n}={a}")).collect();
    let mut providers: Vec<&str> = Vec::new();
    if cfg.providers.file.is_some() {
        providers.push("file");
    }
    if cfg.providers.docker.is_some() {
        providers.push("docker");
    }
    if cfg.providers.swarm.is_some() {
        providers.push("swarm");
    }
    let routers = table.status.routers.len();
    let enabled = table
        .status
        .routers
        .values()
        .filter(|s| s.status != crate::table::Status::Disabled)
        .count();
    let certificates = table
        .tls
        .as_ref()
        .map(|t| t.certs.certificates().len())
        .unwrap_or(0);
    tracing::info!(
        entrypoints = %entry_points.join(","),
        providers = %providers.join(","),
        routers,
        routers_enabled = enabled,
        certificates,
        access_log = cfg.access_log.is_some(),
        metrics = cfg.metrics.as_ref().is_some_and(|m| m.prometheus.is_some()),
        "swarmgate started"
    );
}

/// This host's name for `X-Forwarded-Server` (the container ID in Docker).
pub(super) fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "swarmgate".into())
}
