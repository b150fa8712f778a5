//! The request path's vocabulary, below everything that handles requests: the body types ([`body`]), the
//! one classification of failures and its one mapping to statuses ([`error`]), the facts about the client
//! connection ([`context`]), and the end of a middleware chain ([`Terminal`]).
//!
//! Middlewares, the upstream pool, the internal services and the proxy all speak these types; this module
//! names none of them, so every arrow into it points down.

pub mod body;
pub mod context;
pub mod error;
pub mod underscore;

use std::future::Future;
use std::pin::Pin;

use ::http::{Request, Response};

pub use body::{BoxError, ClientBody, ProxyBody, UpstreamBody};
pub use context::ConnInfo;
pub use error::{error_response, failure_response, text_response, ProxyError};

/// A request as the middleware chain and the services see it.
pub type Req = Request<ClientBody>;
/// What serving a request gives: a response, or a failure the edge maps to a status.
pub type Res = Result<Response<ProxyBody>, ProxyError>;
/// A boxed future of [`Res`] (the rest of a chain, or a service called through [`Terminal`]).
pub type BoxRes<'a> = Pin<Box<dyn Future<Output = Res> + Send + 'a>>;

/// The end of a middleware chain: serving a request with a service of the table the request was routed
/// with. The handler implements it and hands it to the chain, so middlewares never call back into the
/// proxy; `errors` uses it to fetch its error page from another service.
///
/// Called through `dyn` only inside wrapping middlewares (which box the rest of the chain already); a chain
/// of request-only steps hands the request back to the handler, which serves it without a box.
pub trait Terminal: Sync {
    /// Serves `req` with service `service` (an index into the routing table's services).
    fn call(&self, req: Req, service: usize) -> BoxRes<'_>;
}
