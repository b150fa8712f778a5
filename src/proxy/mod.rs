//! The hot path: accepting connections, routing, running the middleware chain and forwarding requests.
//!
//! Nothing here decides anything the table builder could have decided: the handler reads the current
//! [`crate::table::RoutingTable`], never changes it, takes no lock and does not log per request. What it
//! needs from above — the internal services (API, dashboard, ping, metrics) — is injected at wiring time as
//! an [`InternalServices`], so the proxy never names the admin module.

pub mod body;
pub mod deadline;
pub mod forward;
pub mod handler;
pub mod health_check;
pub mod listener;
pub mod park;
pub mod spread;
pub mod tcp;
pub mod udp;
pub mod workers;

/// The pooled upstream client, which lives below the proxy (`forwardAuth` uses it too); named here for the
/// wiring code that builds it with the proxy.
pub use crate::upstream::pool;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::http::body::ProxyBody;
use crate::table::{InternalService, RoutingTable};

/// What swarmgate answers itself (`api@internal`, `dashboard@internal`, `ping@internal`,
/// `prometheus@internal`, `noop@internal`). Implemented by the admin module and handed to the proxy in
/// [`handler::Shared`] by the wiring code: the proxy routes to these services like to any other, but what
/// they answer is not its business.
pub trait InternalServices: Send + Sync {
    /// Answers `req`, routed to `kind`, from the table it was routed with (read only).
    fn serve(
        &self,
        kind: InternalService,
        req: &Request<Incoming>,
        table: &RoutingTable,
    ) -> Response<ProxyBody>;
}
