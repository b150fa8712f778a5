//! The listener's side of bodies: the per-connection clock that bounds request bodies ([`BodyClock`]) and the
//! response body as hyper writes it ([`ServedBody`]). The body types themselves are request-path vocabulary
//! and live in [`crate::http::body`].
//!
//! - [`ServedBody`] is a [`ProxyBody`] as the listener hands it to hyper: it keeps its request counted open
//!   on the connection until it is written or abandoned, which is what the idle timers go by.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::deadline::{Activity, OpenRequest};
use crate::http::body::{BoxError, ClientBody, ProxyBody, TimedBody};

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
        TimedBody::new(
            inner,
            self.read.map(|d| self.activity.request_start() + d),
            self.idle,
        )
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
