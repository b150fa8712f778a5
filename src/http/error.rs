//! Request failures, classified by where they came from, and the one mapping to HTTP statuses.
//!
//! Every failure the hot path can meet is a [`ProxyError`] variant that keeps its cause (refused vs timed
//! out), so 502 and 504 stay distinct; [`ProxyError::status`] is the only place statuses are chosen, and
//! [`error_response`] the only place error bodies are written (Traefik's texts, so clients and monitors that
//! match on them keep working).

use std::error::Error as StdError;
use std::io;

use http::{header, HeaderValue, Response, StatusCode};

use super::body::{BodyError, ProxyBody};

/// Why a connection to a backend failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectCause {
    /// The backend refused or reset the connection attempt.
    Refused,
    /// The dial timeout expired.
    Timeout,
    /// Anything else (unreachable, DNS, TLS handshake).
    Other,
}

/// Why a request could not be sent to a backend or answered by it (what the upstream pool reports).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be opened (nothing was sent: the request may go to another server).
    #[error("connect: {source}")]
    Connect {
        /// Refused, timed out, or other.
        cause: ConnectCause,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The connection failed while the request was sent or the response read.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// A failed request, by origin: the client, the routing table, or the backend.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The client sent something we cannot route (no Host, bad URI).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// No router matches.
    #[error("no router matches")]
    NoRoute,
    /// The request's headers exceed the limit.
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// The request body exceeds a configured limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The client stopped sending its request body (`bodyIdleTimeout`) or took longer than `readTimeout`.
    #[error("request body timed out")]
    ClientTimeout,
    /// A rate or concurrency limit rejected the request.
    #[error("too many requests")]
    TooManyRequests,
    /// The service has no server that is up.
    #[error("no available server")]
    NoHealthyServer,
    /// Connecting to the backend failed.
    #[error("cannot connect to {server}: {cause:?}")]
    Connect {
        /// Server URL.
        server: std::sync::Arc<str>,
        /// Refused or timed out.
        cause: ConnectCause,
    },
    /// The backend did not send response headers in time (`responseHeaderTimeout`).
    #[error("{server} did not answer in time")]
    UpstreamTimeout {
        /// Server URL.
        server: std::sync::Arc<str>,
    },
    /// The backend switched protocols (`101`) although the client asked for no upgrade, or to another
    /// protocol than the one asked for; the switch is refused (502), as Go's reverse proxy does.
    #[error("{server} switched to a protocol the client did not ask for")]
    BadUpgrade {
        /// Server URL.
        server: std::sync::Arc<str>,
    },
    /// The backend closed, reset or sent an invalid response.
    #[error("bad response from {server}: {source}")]
    Upstream {
        /// Server URL.
        server: std::sync::Arc<str>,
        /// The HTTP error.
        source: hyper::Error,
    },
}

impl ProxyError {
    /// The status a client sees for this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::NoHealthyServer => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect {
                cause: ConnectCause::Timeout,
                ..
            } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Connect { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Upstream { .. } | ProxyError::BadUpgrade { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// The body text, as Traefik writes it.
    pub fn body(&self) -> &'static str {
        match self {
            ProxyError::NoRoute => "404 page not found\n",
            ProxyError::NoHealthyServer => "no available server\n",
            ProxyError::BadRequest(_) => "400 Bad Request\n",
            ProxyError::HeadersTooLarge => "431 Request Header Fields Too Large\n",
            ProxyError::PayloadTooLarge => "request body too large\n",
            ProxyError::ClientTimeout => "Request Timeout\n",
            ProxyError::TooManyRequests => "Too Many Requests\n",
            ProxyError::Connect {
                cause: ConnectCause::Timeout,
                ..
            }
            | ProxyError::UpstreamTimeout { .. } => "Gateway Timeout\n",
            ProxyError::Connect { .. }
            | ProxyError::Upstream { .. }
            | ProxyError::BadUpgrade { .. } => "Bad Gateway\n",
        }
    }

    /// Classifies an error from the upstream pool.
    pub fn from_client(server: std::sync::Arc<str>, e: UpstreamError) -> ProxyError {
        match e {
            UpstreamError::Connect { cause, .. } => ProxyError::Connect { server, cause },
            UpstreamError::Http(source) => match client_body_failure(&source) {
                Some(body) => ProxyError::from_body_ref(body),
                None => ProxyError::Upstream { server, source },
            },
        }
    }

    /// Classifies a failed read of the client's body by a middleware (`buffering`).
    pub fn from_body(e: BodyError) -> ProxyError {
        ProxyError::from_body_ref(&e)
    }

    /// The same for a body error found in a backend exchange's cause chain: the client's fault (a stalled
    /// or malformed body — 408 or 400), never the backend's (502).
    fn from_body_ref(e: &BodyError) -> ProxyError {
        match e {
            BodyError::Timeout => ProxyError::ClientTimeout,
            BodyError::Read(_) => ProxyError::BadRequest("request body read failed"),
        }
    }

    /// True when nothing reached the backend, so another server may be tried.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProxyError::Connect { .. })
    }
}

/// The client-body failure that aborted a backend exchange, if that is why it failed (hyper reports the
/// request body's error as the cause).
fn client_body_failure(e: &hyper::Error) -> Option<&BodyError> {
    let mut cur: Option<&(dyn StdError + 'static)> = StdError::source(e);
    while let Some(err) = cur {
        if let Some(body) = err.downcast_ref::<BodyError>() {
            return Some(body);
        }
        cur = err.source();
    }
    None
}

/// Where an upstream exchange failed, as far as retrying it is concerned (what Go's transport and nginx's
/// `proxy_next_upstream error timeout` distinguish).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No connection was made: the request never reached the server (any method may go elsewhere).
    Connect(ConnectCause),
    /// The connection was reset or aborted (or the write hit a broken pipe, or TCP gave up on a vanished
    /// peer) before the status line.
    Reset,
    /// The server closed the connection before a complete response head (EOF, or hyper saw it closed).
    Closed,
    /// The client's own body failed (stalled, malformed): never the server's fault, never retried.
    ClientBody,
    /// Anything else: an invalid response, a protocol error. The server answered something; not retried.
    Other,
}

impl FailureKind {
    /// Whether the failure means "the server went away before answering", the case an idempotent request
    /// may be replayed for (RFC 9110 §9.2.2). Connect failures are retryable for every method, elsewhere.
    pub fn lost_before_response(self) -> bool {
        matches!(self, FailureKind::Reset | FailureKind::Closed)
    }
}

/// Classifies an error from the upstream pool for the retry decision (see [`FailureKind`]). Cheap: walks
/// the error's cause chain, no allocation. Only errors of the request/response-head exchange reach here;
/// once a response head was received the exchange is the client's, and body errors are never retried.
pub fn classify(e: &UpstreamError) -> FailureKind {
    match e {
        UpstreamError::Connect { cause, .. } => FailureKind::Connect(*cause),
        UpstreamError::Http(h) => classify_hyper(h),
    }
}

/// [`classify`] for a hyper error: the client body first (hyper reports it as the cause), then the
/// connection state hyper knows, then the I/O kind at the bottom of the chain.
fn classify_hyper(h: &hyper::Error) -> FailureKind {
    if client_body_failure(h).is_some() {
        return FailureKind::ClientBody;
    }
    if h.is_parse() || h.is_parse_status() || h.is_user() {
        return FailureKind::Other;
    }
    if let Some(kind) = io_kind(h) {
        return match kind {
            // TimedOut here is TCP's own verdict (keep-alive probes or `TCP_USER_TIMEOUT` unanswered): the
            // peer vanished, as a killed task's network namespace does.
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::TimedOut => FailureKind::Reset,
            io::ErrorKind::UnexpectedEof => FailureKind::Closed,
            _ => FailureKind::Other,
        };
    }
    if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
        return FailureKind::Closed;
    }
    FailureKind::Other
}

/// The kind of the first I/O error in `e`'s cause chain.
fn io_kind(e: &(dyn StdError + 'static)) -> Option<io::ErrorKind> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

/// Walks the error chain for the I/O error that says why a connect failed.
pub fn connect_cause(e: &(dyn StdError + 'static)) -> ConnectCause {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return match io.kind() {
                io::ErrorKind::TimedOut => ConnectCause::Timeout,
                io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => {
                    ConnectCause::Refused
                }
                _ => ConnectCause::Other,
            };
        }
        cur = err.source();
    }
    ConnectCause::Other
}

/// The response for an error: status, a short text body, no caching.
pub fn error_response(e: &ProxyError) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(e.body()));
    *resp.status_mut() = e.status();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Marks a response that stands for a forwarding failure, so that outer `retry` / `circuitBreaker` steps
/// still see the failure after inner steps turned it into a response.
#[derive(Clone, Copy, Debug)]
pub struct NetworkFailure {
    /// Nothing reached the backend (another attempt is safe).
    pub retryable: bool,
}

/// The response for a failure, marked as a network failure when it is one (middlewares that turn failures
/// into responses use this rather than [`error_response`]).
pub fn failure_response(e: &ProxyError) -> Response<ProxyBody> {
    let mut r = error_response(e);
    if matches!(
        e,
        ProxyError::Connect { .. }
            | ProxyError::Upstream { .. }
            | ProxyError::UpstreamTimeout { .. }
    ) {
        r.extensions_mut().insert(NetworkFailure {
            retryable: e.is_retryable() || matches!(e, ProxyError::Upstream { .. }),
        });
    }
    r
}

/// A short plain-text answer (`401 Unauthorized\n` style bodies, as Traefik writes them).
pub fn text_response(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn server() -> Arc<str> {
        Arc::from("http://10.0.0.1:80")
    }

    #[test]
    fn each_error_maps_to_its_status() {
        let cases: Vec<(ProxyError, u16)> = vec![
            (ProxyError::BadRequest("no host"), 400),
            (ProxyError::NoRoute, 404),
            (ProxyError::PayloadTooLarge, 413),
            (ProxyError::ClientTimeout, 408),
            (ProxyError::TooManyRequests, 429),
            (ProxyError::HeadersTooLarge, 431),
            (
                ProxyError::Connect {
                    server: server(),
                    cause: ConnectCause::Refused,
                },
                502,
            ),
            (
                ProxyError::Connect {
                    server: server(),
                    cause: ConnectCause::Other,
                },
                502,
            ),
            (ProxyError::NoHealthyServer, 503),
            (
                ProxyError::Connect {
                    server: server(),
                    cause: ConnectCause::Timeout,
                },
                504,
            ),
            (ProxyError::UpstreamTimeout { server: server() }, 504),
            (ProxyError::BadUpgrade { server: server() }, 502),
        ];
        for (e, code) in cases {
            assert_eq!(e.status().as_u16(), code, "{e}");
            let r = error_response(&e);
            assert_eq!(r.status().as_u16(), code);
        }
    }

    #[test]
    fn not_found_body_is_traefiks() {
        assert_eq!(ProxyError::NoRoute.body(), "404 page not found\n");
        assert!(ProxyError::Connect {
            server: server(),
            cause: ConnectCause::Refused
        }
        .is_retryable());
        assert!(!ProxyError::UpstreamTimeout { server: server() }.is_retryable());
    }

    #[test]
    fn connect_cause_reads_the_io_kind() {
        let e = io::Error::new(io::ErrorKind::TimedOut, "t");
        assert_eq!(connect_cause(&e), ConnectCause::Timeout);
        let e = io::Error::new(io::ErrorKind::ConnectionRefused, "r");
        assert_eq!(connect_cause(&e), ConnectCause::Refused);
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped")]
        struct Wrap(#[source] io::Error);
        let e = Wrap(io::Error::new(io::ErrorKind::TimedOut, "t"));
        assert_eq!(connect_cause(&e), ConnectCause::Timeout);
        let e = io::Error::other("x");
        assert_eq!(connect_cause(&e), ConnectCause::Other);
    }

    /// A real exchange with a server that does `close` after reading the request: the error hyper gives.
    async fn failure_from(
        close: impl FnOnce(tokio::net::TcpStream) + Send + 'static,
    ) -> FailureKind {
        use tokio::io::AsyncReadExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            close(s);
        });
        let io =
            hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(addr).await.expect("c"));
        let (mut tx, conn) =
            hyper::client::conn::http1::handshake::<_, http_body_util::Empty<bytes::Bytes>>(io)
                .await
                .expect("handshake");
        tokio::spawn(conn);
        let req = http::Request::get("/")
            .body(http_body_util::Empty::new())
            .expect("req");
        let e = tx.send_request(req).await.expect_err("the server closed");
        classify(&UpstreamError::Http(e))
    }

    #[tokio::test]
    async fn eof_before_the_status_line_is_closed() {
        assert_eq!(failure_from(drop).await, FailureKind::Closed);
        assert!(FailureKind::Closed.lost_before_response());
    }

    #[tokio::test]
    async fn reset_before_the_status_line_is_reset() {
        let kind = failure_from(|s| {
            // SO_LINGER 0: close sends RST, as a killed process with unread data does.
            let _ = socket2::SockRef::from(&s).set_linger(Some(std::time::Duration::ZERO));
            drop(s);
        })
        .await;
        assert_eq!(kind, FailureKind::Reset);
        assert!(kind.lost_before_response());
    }

    #[tokio::test]
    async fn an_invalid_answer_is_not_retryable() {
        let kind = failure_from(|s| {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut s = s;
                let _ = s.write_all(b"NOT HTTP AT ALL\r\n\r\n").await;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            });
        })
        .await;
        assert_eq!(kind, FailureKind::Other);
        assert!(!kind.lost_before_response());
    }

    #[test]
    fn connect_failures_keep_their_cause() {
        let e = UpstreamError::Connect {
            cause: ConnectCause::Refused,
            source: Box::new(io::Error::new(io::ErrorKind::ConnectionRefused, "r")),
        };
        assert_eq!(classify(&e), FailureKind::Connect(ConnectCause::Refused));
        assert!(!classify(&e).lost_before_response());
        assert_eq!(
            io_kind(&io::Error::new(io::ErrorKind::BrokenPipe, "p")),
            Some(io::ErrorKind::BrokenPipe)
        );
    }
}
