//! Internal services: what swarmgate answers itself (`ping@internal`, `api@internal`,
//! `dashboard@internal`, `prometheus@internal`, `noop@internal`).
//!
//! Everything here reads the current [`RoutingTable`] (its status and the raw configuration it was built
//! from) and never changes it. Routed like any service, so users can put them behind their own routers and
//! middlewares, as in Traefik.

pub mod api;
pub mod dashboard;
pub mod healthcheck;
pub mod metrics;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::http::body::ProxyBody;
use crate::table::{InternalService, RoutingTable};

/// Process-wide state the internal services read.
#[derive(Debug)]
pub struct AdminState {
    /// Set when shutdown begins: `ping` then answers `terminating_status`.
    pub terminating: AtomicBool,
    /// `ping.terminatingStatusCode` (default 503).
    pub terminating_status: StatusCode,
    /// Entrypoints for `/api/entrypoints`: (name, address as configured, bound address).
    pub entry_points: Vec<api::EntryPointView>,
    /// Metrics exposition, when `--metrics.prometheus` is on.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// `api.dashboard` (default true when the API is on).
    pub dashboard: bool,
    /// Whether the access log is on (`/api/overview` features).
    pub access_log: bool,
    /// When the process started (`/api/version` `startDate`).
    pub started: std::time::SystemTime,
    /// The access log, when `--accesslog` is on (the request path hands it records).
    pub access_logger: Option<Arc<crate::accesslog::AccessLogger>>,
    /// The last configuration changes, filled by the table builder (`/api/x/changes`).
    pub changes: crate::table::builder::ChangeLog,
}

impl AdminState {
    /// Marks the start of shutdown (ping turns to `terminating_status`).
    pub fn begin_termination(&self) {
        self.terminating.store(true, Ordering::Relaxed);
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The proxy serves internal services through this (injected by the wiring code as
/// [`crate::proxy::InternalServices`]), so it never names this module.
impl crate::proxy::InternalServices for AdminState {
    fn serve(
        &self,
        kind: InternalService,
        req: &Request<Incoming>,
        table: &RoutingTable,
    ) -> Response<ProxyBody> {
        serve(kind, req, table, self)
    }
}

/// Answers a request routed to an internal service.
pub fn serve(
    kind: InternalService,
    req: &Request<Incoming>,
    table: &RoutingTable,
    state: &AdminState,
) -> Response<ProxyBody> {
    match kind {
        InternalService::Ping => {
            if state.terminating.load(Ordering::Relaxed) {
                let mut r = text(state.terminating_status, "");
                *r.body_mut() = ProxyBody::full(
                    state
                        .terminating_status
                        .canonical_reason()
                        .unwrap_or("")
                        .to_string(),
                );
                r
            } else {
                text(StatusCode::OK, "OK")
            }
        }
        InternalService::Prometheus => match &state.metrics {
            Some(m) => {
                let mut r = Response::new(ProxyBody::full(metrics::render(m, table)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                r
            }
            None => text(StatusCode::NOT_FOUND, "404 page not found\n"),
        },
        InternalService::Api => api::serve(req, table, state),
        InternalService::Dashboard => dashboard::serve(req, state),
        InternalService::Noop => text(StatusCode::IM_A_TEAPOT, ""),
    }
}
