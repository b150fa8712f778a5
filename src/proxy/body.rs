//! Body types of the hot path, as enums rather than boxed trait objects so that no request allocates for
//! its body.
//!
//! - [`ProxyBody`] is what clients receive: a streamed upstream body, or a small static one we generate; routes
//!   with middlewares may also produce a compressed stream or a body that holds an in-flight slot until it is
//!   done (boxed: only those routes pay for the box).
//! - [`ClientBody`] is what the middleware chain hands to the forwarder: the client's streamed body as hyper
//!   gave it (a [`TimedBody`]: bounded by `readTimeout` and by the silence allowed between two reads), or a
//!   body that a `buffering` middleware read completely (so it can be sent again on retry).
//! - [`ServedBody`] is a [`ProxyBody`] as the listener hands it to hyper: it keeps its request counted open
//!   on the connection until it is written or abandoned, which is what the idle timers go by.
//! - [`UpstreamBody`] is what backends receive: the client's streamed body, handed back by the pool with its request if the
//!   connection to the first backend failed before any byte of it was read, so the request can be retried on
//!   another server.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::deadline::{Activity, OpenRequest};

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
    Incoming(TimedBody),
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
    Client(TimedBody),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
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

/// Why reading a client's request body failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The connection failed or the body was malformed.
    #[error("reading the request body: {0}")]
    Read(#[from] hyper::Error),
    /// The client sent nothing for `bodyIdleTimeout`, or the whole request took longer than `readTimeout`.
    #[error("request body timed out")]
    Timeout,
}

/// What a [`TimedBody`] is bounded by; one per connection, copied into each body.
#[derive(Clone, Debug)]
pub struct BodyClock {
    /// The connection, which knows when its current request began.
    pub activity: std::sync::Arc<Activity>,
    /// `readTimeout`: the whole request, from its first byte.
    pub read: Option<std::time::Duration>,
    /// `bodyIdleTimeout`: the longest wait for the next bytes of the body.
    pub idle: Option<std::time::Duration>,
}

impl BodyClock {
    /// The request being served, its body bounded (what the handler hands to middlewares or forwards).
    pub fn request(&self, req: http::Request<Incoming>) -> http::Request<ClientBody> {
        req.map(|b| ClientBody::Incoming(self.body(b)))
    }

    /// The client's body of the request being served, with its bounds. No timer is allocated unless the
    /// body has to be waited for.
    pub fn body(&self, inner: Incoming) -> TimedBody {
        TimedBody {
            inner,
            read_deadline: self.read.map(|d| self.activity.request_start() + d),
            idle: self.idle,
            waiting_since: None,
            sleep: None,
            timed_out: false,
        }
    }
}

/// A client's request body with nginx's `client_body_timeout` (silence between two reads) and Go's
/// `ReadTimeout` (the whole request): a stalled upload fails with [`BodyError::Timeout`], which aborts
/// its backend request and answers 408 if the response has not started. Time counts only while the
/// body is being waited for: a backend slow to read does not make the client late.
#[derive(Debug)]
pub struct TimedBody {
    inner: Incoming,
    read_deadline: Option<Instant>,
    idle: Option<std::time::Duration>,
    /// When the current wait for the client began.
    waiting_since: Option<Instant>,
    /// Allocated at the first wait; reset rather than re-created.
    sleep: Option<Pin<Box<Sleep>>>,
    timed_out: bool,
}

impl TimedBody {
    /// hyper's body, for the internal services that take the request as hyper gave it.
    pub fn into_inner(self) -> Incoming {
        self.inner
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.timed_out {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                this.waiting_since = None;
                return Poll::Ready(Some(Ok(f)));
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(BodyError::Read(e)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        let idle_deadline = match this.idle {
            Some(d) => Some(*this.waiting_since.get_or_insert_with(Instant::now) + d),
            None => None,
        };
        let deadline = match (this.read_deadline, idle_deadline) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(d) => d,
                None => return Poll::Pending,
            },
        };
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        if sleep.as_mut().poll(cx).is_ready() {
            this.timed_out = true;
            return Poll::Ready(Some(Err(BodyError::Timeout)));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.timed_out || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body on its way to the client, keeping its request counted open on the connection
/// (see [`super::deadline`]) until hyper has written or dropped it.
#[derive(Debug)]
pub struct ServedBody {
    /// The response.
    pub body: ProxyBody,
    /// Released with the body.
    pub open: OpenRequest,
}

impl Body for ServedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
