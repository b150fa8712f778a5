//! Wiring and lifecycle: binds entrypoints, starts providers, the table builder and the listeners, and on
//! shutdown stops accepting, drains in-flight requests within `graceTimeOut`, then stops background tasks.
//!
//! Everything long-running hangs off one [`CancellationToken`] tree, so a single cancel stops it all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::admin::{api::EntryPointView, AdminState};
use crate::config::{self, types::StaticConfig, Protocol};
use crate::metrics::{Labels, Metrics};
use crate::provider::file::{self, FileSource};
use crate::proxy::deadline::Timeouts;
use crate::proxy::forward::{load_root_cas, PoolSettings, TrustedPeers};
use crate::proxy::handler::Shared;
use crate::proxy::listener::ConnSettings;
use crate::proxy::pool::Upstreams;
use crate::proxy::workers::{self, EntryPointSpec};
use crate::table::builder::{ProviderFeed, Snapshot, TableBuilder};
use crate::table::{
    self, BuildInput, CompileContext, EntryPointInfo, EntryPointRedirect, InternalService,
};
use crate::tls::challenge::{MemoryChallenges, SharedChallenges};
use crate::tls::TlsShared;

/// Why the application could not start. Each variant names the input at fault.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// An entrypoint could not be bound.
    #[error("entrypoint `{name}`: cannot listen on {addr}: {source}")]
    Bind {
        /// Entrypoint name.
        name: String,
        /// Address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A static setting is invalid in a way decoding could not see.
    #[error("static configuration: {0}")]
    Invalid(String),
    /// The file provider could not start.
    #[error(transparent)]
    File(#[from] file::FileProviderError),
    /// A certificate resolver cannot work (configuration or storage).
    #[error(transparent)]
    Acme(#[from] crate::tls::acme::AcmeError),
}

/// Control handles of a running application.
#[derive(Clone, Debug)]
pub struct Control {
    /// Cancel to begin a graceful shutdown.
    pub shutdown: CancellationToken,
    /// Send to re-read the file provider (SIGHUP).
    pub reload: mpsc::Sender<()>,
}

/// Entrypoints to serve, in table order: (name, address) for TCP entrypoints; UDP ones are skipped.
fn tcp_entry_points(cfg: &StaticConfig) -> Result<Vec<(String, SocketAddr)>, AppError> {
    let mut out = Vec::new();
    for (name, ep) in &cfg.entry_points {
        let (addr, proto) = config::parse_address(&ep.address).map_err(AppError::Invalid)?;
        match proto {
            Protocol::Tcp => out.push((name.clone(), addr)),
            Protocol::Udp => {
                tracing::warn!(entrypoint = %name, "UDP entrypoints are not served yet; skipped")
            }
        }
    }
    if out.is_empty() {
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

fn compile_context(
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
        });
    }
    Ok(CompileContext {
        entry_points: infos,
        default_syntax: config::default_rule_syntax(cfg),
        tls: None,
        internal: internal_config(cfg).1,
        metrics: None,
    })
}

/// Binds every TCP entrypoint. Called before anything starts, so a bind failure leaves nothing half-started.
pub async fn bind(cfg: &StaticConfig) -> Result<Vec<(String, TcpListener)>, AppError> {
    let mut out = Vec::new();
    for (name, addr) in tcp_entry_points(cfg)? {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Bind {
                name: name.clone(),
                addr,
                source,
            })?;
        out.push((name, l));
    }
    Ok(out)
}

/// Runs until `control.shutdown` is cancelled, then drains and returns.
///
/// `listeners` come from [`bind`] (or a test), in the same order as the static configuration's TCP
/// entrypoints.
pub async fn run(
    cfg: StaticConfig,
    listeners: Vec<(String, TcpListener)>,
    control: Control,
    reload_rx: mpsc::Receiver<()>,
) -> Result<(), AppError> {
    let eps: Vec<(String, SocketAddr)> = listeners
        .iter()
        .map(|(n, l)| {
            (
                n.clone(),
                l.local_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
            )
        })
        .collect();
    let mut ctx = compile_context(&cfg, &eps)?;
    let metrics = match cfg.metrics.as_ref().and_then(|m| m.prometheus.as_ref()) {
        Some(p) => Some(Arc::new(
            Metrics::new(
                &p.buckets,
                Labels {
                    entry_points: p.add_entry_points_labels.unwrap_or(true),
                    routers: p.add_routers_labels,
                    services: p.add_services_labels.unwrap_or(true),
                },
            )
            .map_err(|e| AppError::Invalid(e.to_string()))?,
        )),
        None => None,
    };
    ctx.metrics = metrics.clone();
    // Access log (issue 9): its writer task stops with the rest of the background work.
    let access_log_token = CancellationToken::new(); // cancelled after draining, so late requests are logged
    let access_logger = match &cfg.access_log {
        Some(c) => Some(
            crate::accesslog::AccessLogger::start(c, access_log_token.clone())
                .map_err(|e| AppError::Invalid(e.to_string()))?,
        ),
        None => None,
    };
    let admin = Arc::new(AdminState {
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
    });
    // ACME wiring: the ACME manager (when configured) replaces these in-memory challenge answers.
    let acme = crate::tls::acme::prepare(&cfg.certificates_resolvers)?;
    let challenges: SharedChallenges = match &acme {
        Some(a) => a.challenges(),
        None => Arc::new(MemoryChallenges::default()),
    };
    ctx.tls = Some(TlsShared::new(challenges).map_err(|e| AppError::Invalid(format!("TLS: {e}")))?);
    let names: Vec<String> = eps.iter().map(|(n, _)| n.clone()).collect();
    let store = table::empty_store(&names);
    let background = control.shutdown.child_token();

    // Providers: read once synchronously so the first table is complete before we accept.
    let mut feeds = Vec::new();
    let mut initial = BuildInput::default();
    let mut reload_rx = Some(reload_rx);
    // Internal routers (api, dashboard, ping, prometheus) are a provider of their own that never changes.
    let (internal_cfg, _, _) = internal_config(&cfg);
    initial
        .providers
        .insert("internal".into(), internal_cfg.clone());
    let (_internal_tx, mut internal_rx) = watch::channel(Some(Arc::new(internal_cfg)));
    internal_rx.mark_unchanged();
    feeds.push(ProviderFeed {
        name: "internal".into(),
        rx: internal_rx,
    });
    if let Some(fp) = &cfg.providers.file {
        let source = FileSource::from_config(fp)?;
        let first: Snapshot = match file::read(&source) {
            Ok((c, errors)) => {
                file::log_item_errors(&errors);
                Some(Arc::new(c))
            }
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        };
        if let Some(c) = &first {
            initial.providers.insert("file".into(), (**c).clone());
        }
        let (tx, rx) = watch::channel(first);
        let rx_reload = reload_rx.take().unwrap_or_else(|| mpsc::channel(1).1);
        let token = background.clone();
        if fp.watch {
            tokio::spawn(async move {
                if let Err(e) = file::watch(source, tx, rx_reload, token).await {
                    tracing::error!("{e}");
                }
            });
        } else {
            tokio::spawn(file::reload_on_signal(source, tx, rx_reload, token));
        }
        let mut rx = rx;
        rx.mark_unchanged();
        feeds.push(ProviderFeed {
            name: "file".into(),
            rx,
        });
    }
    // Docker / Swarm providers (issue 5): background tasks publishing whole snapshots; never block start-up.
    feeds.extend(crate::provider::docker::spawn(&cfg, background.clone()));
    // End of Docker / Swarm providers.
    let mut builder = TableBuilder::new(store.clone(), ctx, background.clone());
    builder.set_change_log(admin.changes.clone());
    // ACME: stored certificates are in the first table; the manager follows the routers' wishes.
    if let Some(c) = acme.as_ref().and_then(|a| a.initial()) {
        initial
            .providers
            .insert(crate::tls::acme::PROVIDER.into(), (*c).clone());
    }
    builder.apply(initial);
    if let Some(a) = acme {
        feeds.push(a.start(builder.wanted_certificates(), background.clone()));
    }
    startup_summary(&cfg, &eps, &store.load());
    let throttle = cfg.providers.providers_throttle_duration.0;
    let builder_task = tokio::spawn(builder.run(feeds, throttle));

    // Listeners: served by the worker threads (thread-per-core, see `proxy::workers`), each with its own
    // upstream pools; the settings are checked here once so that a bad `rootCAs` fails start-up.
    let t = &cfg.servers_transport;
    let pool_settings = PoolSettings {
        dial_timeout: t.forwarding_timeouts.dial_timeout.non_zero(),
        idle_timeout: t.forwarding_timeouts.idle_conn_timeout.non_zero(),
        max_idle_per_host: t.max_idle_conns_per_host,
        insecure_skip_verify: t.insecure_skip_verify,
        root_cas: load_root_cas(&t.root_cas)
            .map_err(|e| AppError::Invalid(format!("serversTransport.{e}")))?,
    };
    Upstreams::new(&pool_settings)
        .map_err(|e| AppError::Invalid(format!("serversTransport: {e}")))?;
    let tunnels = tokio_util::task::TaskTracker::new();
    let make_shared = {
        let store = store.clone();
        let server_name = HeaderValue::from_str(&hostname())
            .unwrap_or_else(|_| HeaderValue::from_static("swarmgate"));
        let response_header_timeout = t.forwarding_timeouts.response_header_timeout.non_zero();
        let tunnels = tunnels.clone();
        let admin = admin.clone();
        move || {
            Upstreams::new(&pool_settings).map(|upstreams| {
                Arc::new(Shared {
                    store: store.clone(),
                    upstreams,
                    server_name: server_name.clone(),
                    response_header_timeout,
                    tunnels: tunnels.clone(),
                    internal: admin.clone(),
                    access_logger: admin.access_logger.clone(),
                    metrics: admin.metrics.is_some(),
                })
            })
        }
    };
    let graceful = Arc::new(GracefulShutdown::new());
    let stop_accepting = CancellationToken::new();
    let mut specs = Vec::new();
    let mut accept_grace = Duration::ZERO;
    let mut drain_grace = Duration::ZERO;
    for (index, (name, l)) in listeners.into_iter().enumerate() {
        let ep = cfg.entry_points.get(&name).cloned().unwrap_or_default();
        let trusted = TrustedPeers::parse(
            ep.forwarded_headers.insecure,
            &ep.forwarded_headers.trusted_ips,
        )
        .map_err(|e| {
            AppError::Invalid(format!(
                "entryPoints.{name}.forwardedHeaders.trustedIPs: {e}"
            ))
        })?;
        let rt = &ep.transport.responding_timeouts;
        let settings = ConnSettings {
            timeouts: Timeouts::resolve(
                rt.read_header_timeout.non_zero(),
                rt.read_timeout.non_zero(),
                rt.body_idle_timeout.non_zero(),
                rt.write_timeout.non_zero(),
                rt.idle_timeout.non_zero(),
            )
            .with_send(rt.send_timeout.non_zero()),
            max_header_bytes: ep.http.max_header_bytes.unwrap_or(1 << 20),
            max_concurrent_streams: ep
                .http2
                .as_ref()
                .and_then(|h| h.max_concurrent_streams)
                .unwrap_or(250),
        };
        accept_grace = accept_grace.max(ep.transport.life_cycle.request_accept_grace_timeout.0);
        drain_grace = drain_grace.max(ep.transport.life_cycle.grace_time_out.0);
        if let Ok(addr) = l.local_addr() {
            tracing::info!("entrypoint {name} listening on {addr}");
        }
        let listener = l
            .into_std()
            .map_err(|e| AppError::Invalid(format!("entrypoint `{name}`: {e}")))?;
        specs.push(EntryPointSpec {
            index,
            name,
            listener,
            trusted,
            settings,
        });
    }
    let worker_count = workers::worker_count();
    tracing::debug!("serving on {worker_count} worker threads");
    let mut workers = workers::start(
        worker_count,
        specs,
        make_shared,
        stop_accepting.clone(),
        graceful.clone(),
    )
    .map_err(|e| AppError::Invalid(e.to_string()))?;
    if cfg.entry_points.is_empty() {
        drain_grace = Duration::from_secs(10);
    }

    control.shutdown.cancelled().await;
    admin.begin_termination();
    tracing::info!("shutting down: accepting for {accept_grace:?} more, then draining for up to {drain_grace:?}");
    if !accept_grace.is_zero() {
        tokio::time::sleep(accept_grace).await;
    }
    stop_accepting.cancel();
    workers.accepting_stopped().await;
    tunnels.close();
    let drained = tokio::time::timeout(drain_grace, async {
        // The accept loops have ended and dropped their handles, so this is the last one.
        match Arc::try_unwrap(graceful) {
            Ok(g) => g.shutdown().await,
            Err(_) => tracing::warn!("shutdown handle still shared; not waiting for connections"),
        }
        tunnels.wait().await;
    })
    .await;
    match drained {
        Ok(()) => tracing::info!("all connections drained"),
        Err(_) => tracing::warn!("graceTimeOut reached; closing the remaining connections"),
    }
    workers.finish().await;
    background.cancel();
    access_log_token.cancel();
    let _ = builder_task.await;
    Ok(())
}

/// One line saying what runs: entrypoints, providers, routers served and certificates (issue 9).
fn startup_summary(cfg: &StaticConfig, eps: &[(String, SocketAddr)], table: &table::RoutingTable) {
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
        .filter(|s| s.status != "disabled")
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

/// Raises the soft limit on open files to the hard limit, as Go's runtime does at start (Traefik runs
/// with it), and logs the limit once: a shell or service manager leaving the soft limit at 256 or 1024
/// would otherwise cap the connections served far below what the host allows. Failure is logged, not
/// fatal: the process still runs with the limit it was given.
pub fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    let (soft, hard) = (limit.current, limit.maximum);
    if soft.is_some() && soft != hard {
        let raised = rustix::process::Rlimit {
            current: hard,
            maximum: hard,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(
                soft = ?soft,
                hard = ?hard,
                "open files limit could not be raised to the hard limit: {e}"
            );
            return;
        }
    }
    let now = getrlimit(Resource::Nofile).current;
    let show = |l: Option<u64>| l.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    tracing::info!(
        "open files limit {} (was {}, hard {})",
        show(now),
        show(soft),
        show(hard)
    );
}

/// This host's name for `X-Forwarded-Server` (the container ID in Docker).
fn hostname() -> String {
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
