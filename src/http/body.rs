//! Body types of the request path, as enums rather than boxed trait objects so that no request allocates
//! for its body.
//!
//! - [`ProxyBody`] is what clients receive: a streamed upstream body, or a small static one we generate; routes
//!   with middlewares may also produce a body of their own (a compressed stream, a body that holds an
//!   in-flight slot until it is done), carried boxed in [`ProxyBody::Boxed`]: only those routes pay for the box,
//!   and this module never names a middleware.
//! - [`ClientBody`] is what the middleware chain hands to the forwarder: the client's streamed body as hyper
//!   gave it (a [`TimedBody`]: bounded by `readTimeout` and by the silence allowed between two reads), or a
//!   body that a `buffering` middleware read completely (so it can be sent again on retry).
//! - [`UpstreamBody`] is what backends receive: the client's streamed body, handed back by the pool with its request if the
//!   connection to the first backend failed before any byte of it was read, so the request can be retried on
//!   another server.
//! - [`PooledBody`] is a backend's response body as the upstream pool hands it over: it gives its HTTP/1.1
//!   connection back to the pool when read to the end, through a [`Lease`] the pool fills in (this module
//!   knows nothing of the pool).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use tokio::time::{Instant, Sleep};

/// Error type of [`ProxyBody`]: hyper's errors for streamed bodies, encoder errors for compressed ones.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body sent to clients.
#[derive(Debug)]
pub enum ProxyBody {
    /// Streamed from a backend, frame by frame (SSE and long polls stay open; nothing is buffered); its
    /// connection returns to the pool at the end.
    Upstream(PooledBody),
    /// A complete body we generated (errors, redirects, internal endpoints).
    Full(Option<Bytes>),
    /// A body a middleware made (compressed on the fly by `compress`, or holding an `inFlightReq` slot until
    /// it is done or dropped). Boxed, so that only the routes using such middlewares pay for it.
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
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

    /// A body of a middleware's own, boxed (see [`ProxyBody::Boxed`]).
    pub fn boxed<B>(body: B) -> ProxyBody
    where
        B: Body<Data = Bytes, Error = BoxError> + Send + 'static,
    {
        ProxyBody::Boxed(UnsyncBoxBody::new(body))
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
            ProxyBody::Boxed(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream(b) => b.is_end_stream(),
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream(b) => b.size_hint(),
            ProxyBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
            ProxyBody::Boxed(b) => b.size_hint(),
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
    /// The client's body `inner`, failing once `read_deadline` passes (`readTimeout`) or after `idle` without
    /// bytes while it is waited for (`bodyIdleTimeout`). No timer is allocated unless the body has to be
    /// waited for. The listener's per-connection clock computes the deadline.
    pub fn new(
        inner: Incoming,
        read_deadline: Option<Instant>,
        idle: Option<std::time::Duration>,
    ) -> TimedBody {
        TimedBody {
            inner,
            read_deadline,
            idle,
            waiting_since: None,
            sleep: None,
            timed_out: false,
        }
    }

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

/// Where an HTTP/1.1 connection goes back to when its response body has been read to the end: the pool
/// implements this for the server identity its connections are keyed by, so this layer stays below the
/// pool and a response carries no function pointer of its own.
pub trait GiveBack: Send + Sync + 'static {
    /// Puts the connection `sender` back into the pool of this identity, keeping at most `max_idle`.
    fn give_back(self: Arc<Self>, sender: http1::SendRequest<UpstreamBody>, max_idle: usize);
}

/// What an HTTP/1.1 response body gives back when it has been read to the end: its connection, to the pool
/// that opened it. Held inline in [`PooledBody`]: no allocation per response.
pub struct Lease {
    /// The connection's sending half.
    pub sender: http1::SendRequest<UpstreamBody>,
    /// The server's identity, which knows its pool.
    pub identity: Arc<dyn GiveBack>,
    /// Idle connections the pool keeps for this identity.
    pub max_idle: usize,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lease")
    }
}

/// A backend's response body; returns its HTTP/1.1 connection to the pool once read to the end. A body
/// dropped before its end closes the connection instead (it may still carry unread bytes).
#[derive(Debug)]
pub struct PooledBody {
    body: Incoming,
    give: Option<Lease>,
}

impl PooledBody {
    /// A backend's body; `give` is `None` for connections that are not given back (HTTP/2, upgraded ones).
    /// A body that is already at its end gives its connection back at once.
    pub fn new(body: Incoming, give: Option<Lease>) -> PooledBody {
        let mut b = PooledBody { body, give };
        if b.body.is_end_stream() {
            b.release();
        }
        b
    }

    fn release(&mut self) {
        if let Some(lease) = self.give.take() {
            lease.identity.give_back(lease.sender, lease.max_idle);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            None => this.release(),
            Some(Ok(_)) if this.body.is_end_stream() => this.release(),
            Some(Err(_)) => this.give = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
