//! `swarmgate socket-guard`: a Docker API guard that forwards to the engine's socket only the calls swarmgate
//! makes, so the internet-facing proxy never holds the raw socket.
//!
//! It listens on a unix socket or a TCP address, judges every request with [`allow::check`] (a pure table:
//! reads of version, info, events, services, tasks, nodes, networks, containers, image inspect, configs; and
//! config writes only with `--allow-config-writes`), and answers everything else 403 with a JSON body shaped
//! like the engine's errors (`{"message": …}`) and one WARN line. Allowed requests are re-sent on a fresh
//! connection to the engine, head and body framed anew (no bytes of the client's framing reach the engine),
//! and the answer streams back as it comes (`/events` stays open as long as both sides want).
//!
//! Bounds: connections (`--max-connections`, the accept loop waits for a free slot), request head size and
//! header count, time to read a request head, time for the engine to answer with a head (not its body:
//! event streams are long-lived), size of a config-write body. Requests whose framing is ambiguous
//! (`Transfer-Encoding` with `Content-Length`, several `Content-Length`, a `Transfer-Encoding` other than
//! `chunked`, a body on a read) are refused with 400 before anything is judged.

pub mod allow;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use allow::{Policy, Verdict};

/// The guard's answer body: the engine's streamed body, or a short body of our own.
type GuardBody = Either<Incoming, Full<Bytes>>;

/// Where the guard listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A unix socket path (a stale socket file there is replaced).
    Unix(PathBuf),
    /// A TCP address, e.g. `0.0.0.0:2375`.
    Tcp(String),
}

impl Listen {
    /// Parses `unix:///path`, `/path`, `tcp://host:port` or `host:port`.
    pub fn parse(text: &str) -> Result<Listen, GuardError> {
        let t = text.trim();
        if let Some(p) = t.strip_prefix("unix://") {
            return Ok(Listen::Unix(PathBuf::from(p)));
        }
        if t.starts_with('/') {
            return Ok(Listen::Unix(PathBuf::from(t)));
        }
        let addr = t.strip_prefix("tcp://").unwrap_or(t);
        if addr
            .rsplit_once(':')
            .is_none_or(|(_, port)| port.parse::<u16>().is_err())
        {
            return Err(GuardError::Listen {
                addr: text.to_string(),
                reason: "expected unix:///path or tcp://host:port".into(),
            });
        }
        Ok(Listen::Tcp(addr.to_string()))
    }
}

/// The guard's settings (from `swarmgate socket-guard` flags).
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Where clients connect.
    pub listen: Listen,
    /// The engine's unix socket.
    pub docker: PathBuf,
    /// Which writes pass.
    pub policy: Policy,
    /// At most this many client connections at once (event streams included).
    pub max_connections: usize,
    /// Time a client has to send a request head.
    pub header_timeout: Duration,
    /// Time the engine has to answer with a response head.
    pub response_timeout: Duration,
    /// Largest config-write body accepted.
    pub max_body: usize,
}

impl GuardConfig {
    /// Defaults for everything but the two sockets.
    pub fn new(listen: Listen, docker: PathBuf) -> GuardConfig {
        GuardConfig {
            listen,
            docker,
            policy: Policy::default(),
            max_connections: 128,
            header_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(60),
            max_body: 1024 * 1024,
        }
    }
}

/// Why the guard could not start.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The listen address is not understood or cannot be bound.
    #[error("socket-guard: listen on `{addr}`: {reason}")]
    Listen {
        /// The address as given.
        addr: String,
        /// What went wrong.
        reason: String,
    },
}

/// Head-size bounds: hyper's smallest read buffer and a header count no Docker client comes near.
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

struct Ctx {
    cfg: GuardConfig,
}

/// Binds the listener and serves until `cancel`.
pub async fn run(cfg: GuardConfig, cancel: CancellationToken) -> Result<(), GuardError> {
    let slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let listen = cfg.listen.clone();
    let ctx = Arc::new(Ctx { cfg });
    let bad = |addr: String| {
        move |e: std::io::Error| GuardError::Listen {
            addr,
            reason: e.to_string(),
        }
    };
    match listen {
        Listen::Tcp(addr) => {
            let l = tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(bad(addr.clone()))?;
            tracing::info!(policy = ?ctx.cfg.policy, "socket-guard listening on tcp://{}, forwarding to {}", l.local_addr().map_err(bad(addr))?, ctx.cfg.docker.display());
            loop {
                let Some(permit) = slot(&slots, &cancel).await else {
                    return Ok(());
                };
                let (s, peer) = tokio::select! {
                    r = l.accept() => match r { Ok(c) => c, Err(e) => { accept_failed(&e).await; continue } },
                    _ = cancel.cancelled() => return Ok(()),
                };
                let _ = s.set_nodelay(true);
                tokio::spawn(serve_conn(s, peer.to_string(), ctx.clone(), permit));
            }
        }
        Listen::Unix(path) => {
            let addr = path.display().to_string();
            remove_stale_socket(&path);
            let l = tokio::net::UnixListener::bind(&path).map_err(bad(addr.clone()))?;
            tracing::info!(policy = ?ctx.cfg.policy, "socket-guard listening on unix://{addr}, forwarding to {}", ctx.cfg.docker.display());
            loop {
                let Some(permit) = slot(&slots, &cancel).await else {
                    return Ok(());
                };
                let s = tokio::select! {
                    r = l.accept() => match r { Ok((s, _)) => s, Err(e) => { accept_failed(&e).await; continue } },
                    _ = cancel.cancelled() => return Ok(()),
                };
                tokio::spawn(serve_conn(s, "unix".to_string(), ctx.clone(), permit));
            }
        }
    }
}

/// A free connection slot, or `None` once cancelled.
async fn slot(
    slots: &Arc<Semaphore>,
    cancel: &CancellationToken,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    tokio::select! {
        p = slots.clone().acquire_owned() => p.ok(),
        _ = cancel.cancelled() => None,
    }
}

/// Out of file descriptors and the like: say so, and pause instead of spinning.
async fn accept_failed(e: &std::io::Error) {
    tracing::warn!("socket-guard: accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[allow(clippy::disallowed_methods)] // start-up: replaces a stale socket file left by a previous run
fn remove_stale_socket(path: &std::path::Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

async fn serve_conn<S>(
    stream: S,
    peer: String,
    ctx: Arc<Ctx>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctx_timeout = ctx.cfg.header_timeout;
    let svc = hyper::service::service_fn(move |req| {
        let ctx = ctx.clone();
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(handle(req, &ctx, &peer).await) }
    });
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(Some(ctx_timeout))
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    // hyper counts the head timeout from when the connection starts waiting for a head, so an idle
    // keep-alive connection is closed after it too: clients reconnect, and idle slots are freed. A
    // streaming answer (`/events`) is not waiting for a head and is not cut.
    let conn = b.serve_connection(TokioIo::new(stream), svc);
    let _ = conn.await;
}

/// Judges one request and forwards it or refuses it.
async fn handle(req: Request<Incoming>, ctx: &Ctx, peer: &str) -> Response<GuardBody> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if let Err(why) = framing(&method, req.headers()) {
        tracing::warn!(peer, %method, path, "socket-guard: refused (400): {why}");
        return error(StatusCode::BAD_REQUEST, why);
    }
    if let Verdict::Deny(why) = allow::check(ctx.cfg.policy, &method, &path) {
        tracing::warn!(peer, %method, path, "socket-guard: refused (403): {why}");
        let msg = format!("socket-guard: {method} {path} is not allowed: {why}");
        drain(req.into_body()).await;
        return error(StatusCode::FORBIDDEN, &msg);
    }
    tracing::debug!(peer, %method, path, "socket-guard: forwarding");
    match forward(req, ctx).await {
        Ok(resp) => resp,
        Err((status, why)) => {
            tracing::warn!(peer, %method, path, "socket-guard: {why}");
            error(status, &why)
        }
    }
}

/// Reads (and drops) a refused request's body, at most [`DRAIN_BYTES`] within [`DRAIN_TIME`], so that a
/// client still writing it (`docker exec` posts a JSON body) reads the 403 instead of a broken pipe. A
/// longer or slower body is left: hyper closes the connection after the answer.
async fn drain(body: Incoming) {
    let _ = tokio::time::timeout(DRAIN_TIME, Limited::new(body, DRAIN_BYTES).collect()).await;
}

/// Largest refused body read before answering.
const DRAIN_BYTES: usize = 64 * 1024;
/// Longest wait for a refused body before answering.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Refuses requests whose length could be read two ways, and reads that carry a body.
fn framing(method: &Method, h: &HeaderMap) -> Result<(), &'static str> {
    let te: Vec<_> = h.get_all(header::TRANSFER_ENCODING).iter().collect();
    let cl: Vec<_> = h.get_all(header::CONTENT_LENGTH).iter().collect();
    if !te.is_empty() && !cl.is_empty() {
        return Err("both Transfer-Encoding and Content-Length");
    }
    if cl.len() > 1 {
        return Err("several Content-Length headers");
    }
    if te.len() > 1
        || te
            .iter()
            .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"chunked"))
    {
        return Err("a Transfer-Encoding other than one `chunked`");
    }
    let has_body = !te.is_empty() || cl.iter().any(|v| v.as_bytes() != b"0");
    if (method == Method::GET || method == Method::HEAD) && has_body {
        return Err("a read with a body");
    }
    Ok(())
}

/// Headers that belong to one hop and are never passed on.
const HOP: [header::HeaderName; 7] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

fn strip_hop(h: &mut HeaderMap) {
    for name in &HOP {
        h.remove(name);
    }
    h.remove("keep-alive");
    h.remove("proxy-connection");
}

/// Sends the request to the engine on a fresh connection; the answer's body streams.
async fn forward(
    req: Request<Incoming>,
    ctx: &Ctx,
) -> Result<Response<GuardBody>, (StatusCode, String)> {
    let (parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let body = if parts.method == Method::GET || parts.method == Method::HEAD {
        Bytes::new()
    } else {
        Limited::new(body, ctx.cfg.max_body)
            .collect()
            .await
            .map_err(|e| (StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e}")))?
            .to_bytes()
    };
    let mut headers = parts.headers;
    strip_hop(&mut headers);
    headers.insert(header::HOST, header::HeaderValue::from_static("docker"));
    headers.remove(header::CONTENT_LENGTH);
    let mut out = Request::builder()
        .method(parts.method)
        .uri(target)
        .body(Full::new(body))
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    *out.headers_mut() = headers;
    let unavailable = |e: String| {
        (
            StatusCode::BAD_GATEWAY,
            format!("docker engine at {}: {e}", ctx.cfg.docker.display()),
        )
    };
    let send = async {
        let s = tokio::net::UnixStream::connect(&ctx.cfg.docker)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender
            .send_request(out)
            .await
            .map_err(|e| unavailable(e.to_string()))
    };
    let resp = tokio::time::timeout(ctx.cfg.response_timeout, send)
        .await
        .map_err(|_| {
            (
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "docker engine: no answer within {:?}",
                    ctx.cfg.response_timeout
                ),
            )
        })??;
    let (mut parts, body) = resp.into_parts();
    strip_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Either::Left(body)))
}

/// An error answer shaped like the engine's: `{"message": "…"}`.
fn error(status: StatusCode, message: &str) -> Response<GuardBody> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut r = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            Listen::parse("unix:///run/g.sock").ok(),
            Some(Listen::Unix("/run/g.sock".into()))
        );
        assert_eq!(
            Listen::parse("/run/g.sock").ok(),
            Some(Listen::Unix("/run/g.sock".into()))
        );
        assert_eq!(
            Listen::parse("tcp://0.0.0.0:2375").ok(),
            Some(Listen::Tcp("0.0.0.0:2375".into()))
        );
        assert_eq!(
            Listen::parse(":2375").ok(),
            Some(Listen::Tcp(":2375".into()))
        );
        assert!(Listen::parse("tcp://guard").is_err());
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(
                    header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    header::HeaderValue::from_str(v).expect("value"),
                );
            }
            m
        };
        let post = Method::POST;
        assert!(framing(&post, &h(&[("content-length", "5")])).is_ok());
        assert!(framing(&post, &h(&[("transfer-encoding", "chunked")])).is_ok());
        assert!(framing(&Method::GET, &h(&[])).is_ok());
        assert!(framing(&Method::GET, &h(&[("content-length", "0")])).is_ok());
        for bad in [
            vec![("transfer-encoding", "chunked"), ("content-length", "5")],
            vec![("content-length", "5"), ("content-length", "5")],
            vec![("transfer-encoding", "gzip, chunked")],
            vec![
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
        ] {
            assert!(framing(&post, &h(&bad)).is_err(), "{bad:?}");
        }
        assert!(framing(&Method::GET, &h(&[("content-length", "3")])).is_err());
        assert!(framing(&Method::GET, &h(&[("transfer-encoding", "chunked")])).is_err());
    }
}
