//! Body types of the hot path, as enums rather than boxed trait objects so that no request allocates for
//! its body.
//!
//! - [`ProxyBody`] is what clients receive: a streamed upstream body, or a small static one we generate.
//! - [`UpstreamBody`] is what backends receive: the client's streamed body, handed back to the handler if the
//!   connection to the first backend failed before any byte of it was read, so the request can be retried on
//!   another server.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::oneshot;

/// A response body sent to clients.
#[derive(Debug)]
pub enum ProxyBody {
    /// Streamed from a backend, frame by frame (SSE and long polls stay open; nothing is buffered).
    Upstream(Incoming),
    /// A complete body we generated (errors, redirects, internal endpoints).
    Full(Option<Bytes>),
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
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Upstream(b) => Pin::new(b).poll_frame(cx),
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream(b) => b.is_end_stream(),
            ProxyBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream(b) => b.size_hint(),
            ProxyBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
        }
    }
}

/// A request body sent to a backend.
#[derive(Debug)]
pub enum UpstreamBody {
    /// No body (most requests): nothing to recover on retry.
    Empty,
    /// The client's body. If dropped before its first poll, it is sent back through `recover`.
    Client {
        /// The body, `None` once handed back.
        body: Option<Incoming>,
        /// Set once the body was polled: from then on a retry is impossible.
        polled: bool,
        /// Where an unread body goes when the request is dropped (connect failure).
        recover: Option<oneshot::Sender<Incoming>>,
    },
}

impl UpstreamBody {
    /// Wraps a client body; the receiver gets it back if it is dropped unread.
    pub fn recoverable(body: Incoming) -> (UpstreamBody, oneshot::Receiver<Incoming>) {
        let (tx, rx) = oneshot::channel();
        (
            UpstreamBody::Client {
                body: Some(body),
                polled: false,
                recover: Some(tx),
            },
            rx,
        )
    }

    /// Wraps a client body that will not be retried.
    pub fn streaming(body: Incoming) -> UpstreamBody {
        UpstreamBody::Client {
            body: Some(body),
            polled: false,
            recover: None,
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let UpstreamBody::Client {
            body,
            polled: false,
            recover,
        } = self
        {
            if let (Some(b), Some(tx)) = (body.take(), recover.take()) {
                let _ = tx.send(b);
            }
        }
    }
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
            UpstreamBody::Client { body, polled, .. } => {
                *polled = true;
                match body {
                    Some(b) => Pin::new(b).poll_frame(cx),
                    None => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Empty => true,
            UpstreamBody::Client { body, .. } => body.as_ref().is_none_or(|b| b.is_end_stream()),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Client { body, .. } => body
                .as_ref()
                .map(|b| b.size_hint())
                .unwrap_or_else(|| SizeHint::with_exact(0)),
        }
    }
}
