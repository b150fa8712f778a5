//! Body types of the hot path, as enums rather than boxed trait objects so that no request allocates for
//! its body.
//!
//! - [`ProxyBody`] is what clients receive: a streamed upstream body, or a small static one we generate; routes
//!   with middlewares may also produce a compressed stream or a body that holds an in-flight slot until it is
//!   done (boxed: only those routes pay for the box).
//! - [`ClientBody`] is what the middleware chain hands to the forwarder: the client's streamed body as hyper
//!   gave it, or a body that a `buffering` middleware read completely (so it can be sent again on retry).
//! - [`UpstreamBody`] is what backends receive: the client's streamed body, handed back by the pool with its request if the
//!   connection to the first backend failed before any byte of it was read, so the request can be retried on
//!   another server.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// Error type of [`ProxyBody`]: hyper's errors for streamed bodies, encoder errors for compressed ones.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body sent to clients.
#[derive(Debug)]
pub enum ProxyBody {
    /// Streamed from a backend, frame by frame (SSE and long polls stay open; nothing is buffered); its
    /// connection returns to the pool at the end.
    Upstream(super::pool::PooledBody),
    /// A complete body we generated (errors, redirects, internal endpoints).
    Full(Option<Bytes>),
    /// Compressed on the fly by the `compress` middleware (streamed, never buffered whole).
    Compressed(Box<crate::middleware::compress::CompressBody>),
    /// A body with something attached that must live until the body is done or dropped (an `inFlightReq`
    /// slot, frames read ahead by `compress`).
    Wrapped(Box<crate::middleware::WrappedBody>),
}

impl ProxyBody {
    /// An empty body.
    pub fn empty() -> ProxyBody {
        ProxyBody::Full(None)
    }

    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
        let b = bytes.into();
        ProxyBody::Full((!b.is_empty()).then_some(b))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Upstream(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|o| o.map(|r| r.map_err(BoxError::from))),
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
            ProxyBody::Compressed(b) => Pin::new(b.as_mut()).poll_frame(cx),
            ProxyBody::Wrapped(b) => Pin::new(&mut b.body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream(b) => b.is_end_stream(),
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Compressed(b) => b.is_end_stream(),
            ProxyBody::Wrapped(b) => b.body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream(b) => b.size_hint(),
            ProxyBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
            ProxyBody::Compressed(_) => SizeHint::default(),
            ProxyBody::Wrapped(b) => b.body.size_hint(),
        }
    }
}

/// The request body the middleware chain passes to the forwarder.
#[derive(Debug)]
pub enum ClientBody {
    /// The client's body, streamed (the only kind on routes without middlewares).
    Incoming(Incoming),
    /// Read completely by a middleware (`buffering`); can be sent again.
    Buffered(Bytes),
}

impl ClientBody {
    /// True when there is no body to send.
    pub fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Incoming(b) => b.is_end_stream(),
            ClientBody::Buffered(b) => b.is_empty(),
        }
    }
}

/// A request body sent to a backend.
#[derive(Debug)]
pub enum UpstreamBody {
    /// No body (most requests).
    Empty,
    /// A body read completely beforehand (`buffering`).
    Full(Option<Bytes>),
    /// The client's body, streamed. A request whose connection failed is handed back whole by the pool,
    /// body unread, so it can still be retried on another server.
    Client(Incoming),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Empty => Poll::Ready(None),
            UpstreamBody::Full(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
            UpstreamBody::Client(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Empty => true,
            UpstreamBody::Full(b) => b.is_none(),
            UpstreamBody::Client(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Full(b) => {
                SizeHint::with_exact(b.as_ref().map(|b| b.len() as u64).unwrap_or(0))
            }
            UpstreamBody::Client(b) => b.size_hint(),
        }
    }
}
