//! Start-up step: the listeners, served by the worker threads; and the last step, the drain.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::AdminState;
use crate::config::types::StaticConfig;
use crate::proxy::deadline::Timeouts;
use crate::proxy::forward::{PoolSettings, TrustedPeers};
use crate::proxy::handler::Shared;
use crate::proxy::listener::ConnSettings;
use crate::proxy::pool::Upstreams;
use crate::proxy::workers::{self, EntryPointSpec, Workers};
use crate::table::Store;

use super::setup::hostname;
use super::AppError;

/// The listeners being served, and what the drain needs.
pub(super) struct Serving {
    workers: Workers,
    graceful: Arc<GracefulShutdown>,
    stop_accepting: CancellationToken,
    tunnels: TaskTracker,
    accept_grace: Duration,
    drain_grace: Duration,
}

/// Serves `listeners` on the worker threads (thread-per-core, see `proxy::workers`), each with its own
/// upstream pools built from `transport`.
pub(super) fn start(
    cfg: &StaticConfig,
    listeners: Vec<(String, TcpListener)>,
    store: Store,
    admin: Arc<AdminState>,
    transport: PoolSettings,
) -> Result<Serving, AppError> {
    let tunnels = TaskTracker::new();
    let make_shared = {
        let server_name = HeaderValue::from_str(&hostname())
            .unwrap_or_else(|_| HeaderValue::from_static("swarmgate"));
        let t = &cfg.servers_transport;
        let response_header_timeout = t.forwarding_timeouts.response_header_timeout.non_zero();
        let tunnels = tunnels.clone();
        move || {
            Upstreams::new(&transport).map(|upstreams| {
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
    let (mut accept_grace, mut drain_grace) = (Duration::ZERO, Duration::ZERO);
    for (index, (name, l)) in listeners.into_iter().enumerate() {
        let ep = cfg.entry_points.get(&name).cloned().unwrap_or_default();
        accept_grace = accept_grace.max(ep.transport.life_cycle.request_accept_grace_timeout.0);
        drain_grace = drain_grace.max(ep.transport.life_cycle.grace_time_out.0);
        specs.push(entry_point_spec(index, name, &ep, l)?);
    }
    if cfg.entry_points.is_empty() {
        drain_grace = Duration::from_secs(10);
    }
    let worker_count = workers::worker_count();
    tracing::debug!("serving on {worker_count} worker threads");
    let workers = workers::start(
        worker_count,
        specs,
        make_shared,
        stop_accepting.clone(),
        graceful.clone(),
    )
    .map_err(|e| AppError::Invalid(e.to_string()))?;
    Ok(Serving {
        workers,
        graceful,
        stop_accepting,
        tunnels,
        accept_grace,
        drain_grace,
    })
}

/// One entrypoint's listener with its forwarded-headers trust and connection settings.
fn entry_point_spec(
    index: usize,
    name: String,
    ep: &crate::config::types::EntryPoint,
    l: TcpListener,
) -> Result<EntryPointSpec, AppError> {
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
        proxy_protocol: proxy_protocol(&name, ep)?,
    };
    if let Ok(addr) = l.local_addr() {
        tracing::info!("entrypoint {name} listening on {addr}");
    }
    let listener = l
        .into_std()
        .map_err(|e| AppError::Invalid(format!("entrypoint `{name}`: {e}")))?;
    Ok(EntryPointSpec {
        index,
        name,
        listener,
        trusted,
        settings,
    })
}

/// `entryPoints.<name>.proxyProtocol`: whose PROXY protocol headers are honoured (`insecure`: everyone's).
fn proxy_protocol(
    name: &str,
    ep: &crate::config::types::EntryPoint,
) -> Result<Option<TrustedPeers>, AppError> {
    let Some(pp) = &ep.proxy_protocol else {
        return Ok(None);
    };
    let peers = TrustedPeers::parse(pp.insecure, &pp.trusted_ips).map_err(|e| {
        AppError::Invalid(format!("entryPoints.{name}.proxyProtocol.trustedIPs: {e}"))
    })?;
    if pp.insecure {
        tracing::info!(entrypoint = %name, "PROXY protocol from every peer (insecure)");
    }
    Ok(Some(peers))
}

impl Serving {
    /// Graceful shutdown: ping answers `terminatingStatusCode`; on a signal (`signalled`) new connections
    /// are still accepted for `requestAcceptGraceTimeout`; then accepting stops and in-flight requests
    /// (and tunnels) get up to `graceTimeOut` to finish before the rest are closed. After a task failure
    /// accepting stops at once: the process is going down to be restarted.
    pub(super) async fn drain(self, admin: &AdminState, signalled: bool) {
        admin.begin_termination();
        let accept_grace = if signalled {
            self.accept_grace
        } else {
            Duration::ZERO
        };
        let drain_grace = self.drain_grace;
        tracing::info!("shutting down: accepting for {accept_grace:?} more, then draining for up to {drain_grace:?}");
        if !accept_grace.is_zero() {
            tokio::time::sleep(accept_grace).await;
        }
        self.stop_accepting.cancel();
        let mut workers = self.workers;
        workers.accepting_stopped().await;
        self.tunnels.close();
        let graceful = self.graceful;
        let tunnels = self.tunnels;
        let drained = tokio::time::timeout(drain_grace, async {
            // The accept loops have ended and dropped their handles, so this is the last one.
            match Arc::try_unwrap(graceful) {
                Ok(g) => g.shutdown().await,
                Err(_) => {
                    tracing::warn!("shutdown handle still shared; not waiting for connections")
                }
            }
            tunnels.wait().await;
        })
        .await;
        match drained {
            Ok(()) => tracing::info!("all connections drained"),
            Err(_) => tracing::warn!("graceTimeOut reached; closing the remaining connections"),
        }
        workers.finish().await;
    }
}
