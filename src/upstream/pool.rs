//! Upstream connections: one keep-alive pool per worker thread, keyed by server, with no lock and no
//! hashing of strings per request.
//!
//! Each worker (see the proxy's `workers`) serves a connection and the upstream connection it uses on the same
//! thread, so the idle connections live in a thread-local map: checking one out or giving it back is a
//! `RefCell` borrow and a `Vec` push/pop. The key is the address of the server's [`ServerHealth`], which the
//! table builder keeps across rebuilds for the same (service, URL) — so pooled connections survive a reload
//! — and which every idle entry holds a reference to, so the address cannot be reused for another server
//! while connections to the first are pooled.
//!
//! An HTTP/1.1 connection goes back to the pool when its response body has been read to the end (the
//! [`PooledBody`] wrapper sees it), not by a task spawned per request as in hyper-util's pool. An HTTP/2
//! connection (`h2c://`, or `https://` when the backend chose h2 by ALPN) stays in the pool while in use and
//! is shared by every request of the worker. A reused connection that turns out to be closed before the
//! request was written is skipped and the request sent on the next one (or a new one): a backend closing
//! an idle keep-alive connection is not an error the client sees. When the close races the write (the
//! request went out, the connection died before a response head), the failure says so ([`Stage::Reused`])
//! and, if the caller asked for it ([`SendOptions::replay`]), carries a replica of the request for the
//! handler to send again on a new connection ([`SendOptions::fresh`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::transport::{upstream_tls, PoolSettings, TransportError};
use crate::balance::health::{now_ms, ServerHealth};
use crate::balance::{ServerRuntime, UpstreamScheme};
use crate::http::body::{GiveBack, Lease, PooledBody, UpstreamBody};
use crate::http::error::{connect_cause, UpstreamError};

/// How long an idle connection is kept when `idleConnTimeout` is not set (Traefik's default).
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Idle connections kept per server when `maxIdleConnsPerHost` is 0 (Go's `DefaultMaxIdleConnsPerHost`).
const DEFAULT_MAX_IDLE: usize = 2;

/// Where a request goes: the server's protocol and address, and the identity its pool is keyed by.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// Protocol to speak.
    pub scheme: UpstreamScheme,
    /// `host:port` to connect to (and to name in TLS SNI).
    pub authority: &'a Authority,
    /// Pool identity: connections are shared by requests to the same identity.
    pub identity: &'a Arc<ServerHealth>,
}

impl<'a> Target<'a> {
    /// The target of a load-balanced server.
    pub fn of(server: &'a ServerRuntime) -> Target<'a> {
        Target {
            scheme: server.scheme,
            authority: &server.authority,
            identity: &server.health,
        }
    }
}

/// A request that failed. `request` is the request to send again when that is possible: the original,
/// untouched, when nothing of it was written (connect failures, a pooled connection found closed), or the
/// replica made before writing when the caller asked for one ([`SendOptions::replay`]).
#[derive(Debug)]
pub struct SendFailure {
    /// What went wrong.
    pub error: UpstreamError,
    /// The request, if it can be sent again (see above).
    pub request: Option<Request<UpstreamBody>>,
    /// How far the exchange went.
    pub stage: Stage,
}

/// How far a failed exchange went: what decides whether a non-idempotent request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No connection could be opened: the request provably never reached the server.
    Connect,
    /// Written (perhaps partly) on a pooled keep-alive connection, failed before a response head: the
    /// keep-alive race (the server closed the idle connection as the request went out).
    Reused,
    /// Written (perhaps partly) on a new connection, failed before a response head.
    Fresh,
}

/// What the caller allows the pool to do for one send.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOptions {
    /// Keep a replica of the request (method, URI, headers, an empty or buffered body) before writing it,
    /// and hand it back if the exchange fails before a response head: for idempotent requests with a
    /// replayable body. Costs a header-map copy per request, so only asked for when it may be used.
    pub replay: bool,
    /// Skip the idle connections and open a new one (a retry must not meet the same race again).
    pub fresh: bool,
    /// A tighter bound than `dialTimeout` on opening a connection for this send: when another server
    /// could take the request, a connect that hangs (a vanished task's address drops SYNs; the kernel
    /// keeps retrying for two minutes) is abandoned early and counted as a connect timeout.
    pub connect_within: Option<Duration>,
}

impl SendFailure {
    fn written(
        error: impl Into<UpstreamError>,
        replica: Option<Request<UpstreamBody>>,
        reused: bool,
    ) -> SendFailure {
        SendFailure {
            error: error.into(),
            request: replica,
            stage: if reused { Stage::Reused } else { Stage::Fresh },
        }
    }
}

/// A copy of `req` to send again if the first exchange is lost: `None` when its body is streamed (it will
/// have been consumed). Extensions are not copied (nothing below the handler reads them).
pub fn replica(req: &Request<UpstreamBody>) -> Option<Request<UpstreamBody>> {
    let body = match req.body() {
        UpstreamBody::Empty => UpstreamBody::Empty,
        UpstreamBody::Full(b) => UpstreamBody::Full(b.clone()),
        UpstreamBody::Client(_) => return None,
    };
    let mut copy = Request::new(body);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// The pooled clients of one worker: connection settings and TLS configuration. The idle connections
/// themselves are thread-local (see the module docs).
#[derive(Clone)]
pub struct Upstreams {
    settings: Arc<Settings>,
}

struct Settings {
    dial_timeout: Option<Duration>,
    idle_timeout_ms: u64,
    max_idle: usize,
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams").finish_non_exhaustive()
    }
}

impl Upstreams {
    /// Builds the clients from `serversTransport` settings.
    pub fn new(s: &PoolSettings) -> Result<Upstreams, TransportError> {
        let mut tls = upstream_tls(s)?;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Upstreams {
            settings: Arc::new(Settings {
                dial_timeout: s.dial_timeout,
                idle_timeout_ms: s
                    .idle_timeout
                    .unwrap_or(DEFAULT_IDLE_TIMEOUT)
                    .as_millis()
                    .try_into()
                    .unwrap_or(u64::MAX),
                max_idle: if s.max_idle_per_host == 0 {
                    DEFAULT_MAX_IDLE
                } else {
                    s.max_idle_per_host
                },
                tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            }),
        })
    }

    /// Closes the calling thread's idle connections that the backend closed or that outlived
    /// `idleConnTimeout`, so that connections to servers gone from the table do not linger. Each worker
    /// runs this periodically ([`Upstreams::sweep_every`]).
    pub fn sweep_idle(&self) {
        sweep(self.settings.idle_timeout_ms);
    }

    /// Runs [`Upstreams::sweep_idle`] on the current thread every `period` until `stop` fires.
    pub async fn sweep_every(self, period: Duration, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => self.sweep_idle(),
            }
        }
    }

    /// Sends `req` (origin-form URI, `Host` set) to `target` over a pooled or new connection.
    pub async fn send(
        &self,
        target: Target<'_>,
        req: Request<UpstreamBody>,
    ) -> Result<Response<PooledBody>, SendFailure> {
        self.send_with(target, req, SendOptions::default()).await
    }

    /// [`Upstreams::send`] with [`SendOptions`]: a replica kept for a replay, or a new connection forced.
    pub async fn send_with(
        &self,
        target: Target<'_>,
        mut req: Request<UpstreamBody>,
        opts: SendOptions,
    ) -> Result<Response<PooledBody>, SendFailure> {
        let key = Arc::as_ptr(target.identity) as usize;
        let max_idle = self.settings.max_idle;
        let mut copy = if opts.replay { replica(&req) } else { None };
        // Idle connections first; one that died while idle gives the request back and the next is tried.
        while let Some(mut conn) = (!opts.fresh)
            .then(|| checkout(key, self.settings.idle_timeout_ms))
            .flatten()
        {
            if conn.ready().await.is_err() {
                conn.evict(key);
                continue;
            }
            match conn.send(req, target).await {
                Ok(resp) => return Ok(conn.attach(resp, target.identity, max_idle)),
                Err(mut e) => match e.take_message() {
                    Some(r) => {
                        conn.evict(key);
                        req = r;
                    }
                    None => {
                        conn.evict(key);
                        return Err(SendFailure::written(e.into_error(), copy.take(), true));
                    }
                },
            }
        }
        // HTTP/2 prior knowledge: one connection is enough, so requests arriving while it is being opened
        // wait for it instead of opening their own.
        if target.scheme == UpstreamScheme::H2c && !opts.fresh {
            if let Some(opening) = CONNECTING.with_borrow(|m| m.get(&key).cloned()) {
                let notified = opening.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if CONNECTING.with_borrow(|m| m.contains_key(&key)) {
                    notified.await;
                }
                if let Some(mut conn) = checkout(key, self.settings.idle_timeout_ms) {
                    if conn.ready().await.is_ok() {
                        return match conn.send(req, target).await {
                            Ok(resp) => Ok(conn.attach(resp, target.identity, max_idle)),
                            Err(e) => Err(SendFailure::written(e.into_error(), copy, true)),
                        };
                    }
                }
            }
        }
        let opening = (target.scheme == UpstreamScheme::H2c).then(|| Opening::start(key));
        // Boxed: the connect state (TCP, TLS, HTTP/2 handshakes) is large and rarely needed; inline it
        // would make every request's future that much bigger to build and move (callgrind: ~9,000
        // instructions of memcpy per request before).
        let conn = Box::pin(self.connect(target, opts.connect_within)).await;
        drop(opening);
        let mut conn = match conn {
            Ok(c) => c,
            Err(error) => {
                return Err(SendFailure {
                    error,
                    request: Some(req),
                    stage: Stage::Connect,
                })
            }
        };
        if let Conn::H2(s) = &conn {
            give_back(key, target.identity.clone(), Conn::H2(s.clone()), max_idle);
        }
        match conn.send(req, target).await {
            Ok(resp) => Ok(conn.attach(resp, target.identity, max_idle)),
            Err(mut e) => match e.take_message() {
                // Refused before a byte was written (the new connection was already closed): as a connect.
                Some(r) => Err(SendFailure {
                    error: UpstreamError::Http(e.into_error()),
                    request: Some(r),
                    stage: Stage::Connect,
                }),
                None => Err(SendFailure::written(e.into_error(), copy, false)),
            },
        }
    }

    /// Opens a connection: TCP (with the dial timeout, or `within` when tighter), TLS for `https`, then
    /// the HTTP handshake.
    async fn connect(
        &self,
        target: Target<'_>,
        within: Option<Duration>,
    ) -> Result<Conn, UpstreamError> {
        let limit = match (self.settings.dial_timeout, within) {
            (Some(d), Some(w)) => Some(d.min(w)),
            (d, w) => d.or(w),
        };
        let stream = match limit {
            Some(t) => match tokio::time::timeout(t, dial(target)).await {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "dial timeout",
                )),
            },
            None => dial(target).await,
        }
        .map_err(connect_error)?;
        let _ = stream.set_nodelay(true);
        detect_dead_peers(&stream);
        match target.scheme {
            UpstreamScheme::Http => h1(TokioIo::new(stream)).await,
            UpstreamScheme::H2c => h2(TokioIo::new(stream)).await,
            UpstreamScheme::Https => {
                let name = server_name(target.authority).map_err(connect_error)?;
                let tls = self
                    .settings
                    .tls
                    .connect(name, stream)
                    .await
                    .map_err(connect_error)?;
                if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    h2(TokioIo::new(tls)).await
                } else {
                    h1(TokioIo::new(tls)).await
                }
            }
        }
    }
}

/// TCP keep-alive probes after this long without traffic on an upstream connection (also while a response
/// is awaited: a live server's kernel answers them, however slow the application).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(1);
/// Between probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// Unanswered probes before the connection is declared dead.
const KEEPALIVE_PROBES: u32 = 3;
/// How long sent data may stay unacknowledged before the connection is declared dead (`TCP_USER_TIMEOUT`).
/// Linux also counts a receive window kept closed against it, so a backend that stops reading an upload
/// for this long loses the connection: 15 s keeps that case rare, and ends a hang to a vanished task in
/// time for the retry (which starts within the handler's 20 s retry window).
const USER_TIMEOUT: Duration = Duration::from_secs(15);

/// Makes a vanished server an error within seconds rather than a hang: a killed Swarm task's network
/// namespace goes away with it, often before its FIN or RST reaches us, so an exchange in flight on its
/// connection would otherwise wait for an answer forever (no `responseHeaderTimeout` by default) and one
/// written afterwards would retransmit for ~15 minutes. Keep-alive probes catch the first case in ~4 s,
/// `TCP_USER_TIMEOUT` the second in 15 s; both end as an I/O `TimedOut`, which the retry logic treats as a
/// connection lost before the answer. Probes are kernel-only (no wake-up of the proxy).
fn detect_dead_peers(stream: &TcpStream) {
    let sock = socket2::SockRef::from(stream);
    let ka = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let ka = ka.with_retries(KEEPALIVE_PROBES);
    let _ = sock.set_tcp_keepalive(&ka);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = sock.set_tcp_user_timeout(Some(USER_TIMEOUT));
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (KEEPALIVE_PROBES, USER_TIMEOUT);
}

fn connect_error(e: std::io::Error) -> UpstreamError {
    UpstreamError::Connect {
        cause: connect_cause(&e),
        source: Box::new(e),
    }
}

/// Resolves the authority (IP literals without DNS) and connects to the first address that answers.
async fn dial(target: Target<'_>) -> std::io::Result<TcpStream> {
    let host = target.authority.host();
    let port = target.authority.port_u16().unwrap_or(match target.scheme {
        UpstreamScheme::Https => 443,
        _ => 80,
    });
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return TcpStream::connect(SocketAddr::new(ip, port)).await;
    }
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host}: no address found"),
        )
    }))
}

fn server_name(authority: &Authority) -> std::io::Result<rustls::pki_types::ServerName<'static>> {
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

async fn h1<I>(io: I) -> Result<Conn, UpstreamError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(io).await?;
    tokio::spawn(conn.with_upgrades());
    Ok(Conn::H1(sender))
}

async fn h2<I>(io: I) -> Result<Conn, UpstreamError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(io)
        .await?;
    tokio::spawn(conn);
    Ok(Conn::H2(sender))
}

/// A connection's sending half.
enum Conn {
    H1(http1::SendRequest<UpstreamBody>),
    H2(http2::SendRequest<UpstreamBody>),
}

type TrySend = hyper::client::conn::TrySendError<Request<UpstreamBody>>;

impl Conn {
    fn is_closed(&self) -> bool {
        match self {
            Conn::H1(s) => s.is_closed(),
            Conn::H2(s) => s.is_closed(),
        }
    }

    /// Waits until the connection can take a request (an HTTP/1.1 connection given back at the end of a
    /// body may still be finishing that exchange on this thread).
    async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Conn::H1(s) => s.ready().await,
            Conn::H2(s) => s.ready().await,
        }
    }

    async fn send(
        &mut self,
        mut req: Request<UpstreamBody>,
        target: Target<'_>,
    ) -> Result<Response<Incoming>, TrySend> {
        match self {
            Conn::H1(s) => s.try_send_request(req).await,
            Conn::H2(s) => {
                // HTTP/2 needs the absolute form (`:scheme`, `:authority`).
                let scheme = match target.scheme {
                    UpstreamScheme::Https => Scheme::HTTPS,
                    _ => Scheme::HTTP,
                };
                let pq = req
                    .uri()
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/"));
                let mut parts = http::uri::Parts::default();
                parts.scheme = Some(scheme);
                parts.authority = Some(target.authority.clone());
                parts.path_and_query = Some(pq);
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
                s.try_send_request(req).await
            }
        }
    }

    /// Drops a connection that failed; an HTTP/2 one is also taken out of the pool.
    fn evict(self, key: usize) {
        if let Conn::H2(_) = self {
            IDLE.with_borrow_mut(|m| {
                if let Some(list) = m.get_mut(&key) {
                    list.retain(|i| !i.conn.is_closed() && !matches!(i.conn, Conn::H2(_)));
                }
            });
        }
    }

    /// Wraps the response body so that an HTTP/1.1 connection returns to the pool when it is read.
    fn attach(
        self,
        resp: Response<Incoming>,
        identity: &Arc<ServerHealth>,
        max_idle: usize,
    ) -> Response<PooledBody> {
        let give = match self {
            Conn::H1(s) => Some(Lease {
                sender: s,
                identity: identity.clone(),
                max_idle,
            }),
            // Shared while in use; it is already in the pool.
            Conn::H2(_) => None,
        };
        let upgrade = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        // An upgraded connection belongs to the tunnel.
        resp.map(|body| PooledBody::new(body, if upgrade { None } else { give }))
    }
}

/// An idle connection.
struct Idle {
    conn: Conn,
    since_ms: u64,
    /// Keeps the key's address from being reused while this entry exists.
    _identity: Arc<ServerHealth>,
}

/// Pointer keys are already well spread; a multiplicative mix is all the hashing they need.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdleMap = HashMap<usize, Vec<Idle>, BuildHasherDefault<KeyHasher>>;

thread_local! {
    static IDLE: RefCell<IdleMap> = RefCell::new(IdleMap::default());
    /// HTTP/2 connections being opened, by key; waiters are woken when the attempt ends either way.
    static CONNECTING: RefCell<HashMap<usize, Arc<tokio::sync::Notify>, BuildHasherDefault<KeyHasher>>> =
        RefCell::new(HashMap::default());
}

/// Marks an HTTP/2 connection attempt for its key until dropped (also when the attempt fails or its
/// request is cancelled), then wakes the requests that waited for it.
struct Opening {
    key: usize,
    notify: Arc<tokio::sync::Notify>,
}

impl Opening {
    fn start(key: usize) -> Opening {
        let notify = Arc::new(tokio::sync::Notify::new());
        CONNECTING.with_borrow_mut(|m| m.insert(key, notify.clone()));
        Opening { key, notify }
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        CONNECTING.with_borrow_mut(|m| {
            if m.get(&self.key)
                .is_some_and(|n| Arc::ptr_eq(n, &self.notify))
            {
                m.remove(&self.key);
            }
        });
        self.notify.notify_waiters();
    }
}

/// The most recently used live connection for `key`: HTTP/1.1 ones are taken out, an HTTP/2 one is
/// shared (cloned, left in the pool).
fn checkout(key: usize, idle_timeout_ms: u64) -> Option<Conn> {
    let now = now_ms();
    IDLE.with_borrow_mut(|m| {
        let list = m.get_mut(&key)?;
        while let Some(mut idle) = list.pop() {
            if idle.conn.is_closed() || now.saturating_sub(idle.since_ms) > idle_timeout_ms {
                continue;
            }
            if let Conn::H2(s) = &idle.conn {
                let shared = Conn::H2(s.clone());
                // In use from now: its idle time restarts (it is never "given back").
                idle.since_ms = now;
                list.push(idle);
                return Some(shared);
            }
            return Some(idle.conn);
        }
        None
    })
}

fn give_back(key: usize, identity: Arc<ServerHealth>, conn: Conn, max_idle: usize) {
    IDLE.with_borrow_mut(|m| {
        let list = m.entry(key).or_default();
        if list.len() < max_idle {
            list.push(Idle {
                conn,
                since_ms: now_ms(),
                _identity: identity,
            });
        }
    });
}

/// What a [`PooledBody`] calls when its HTTP/1.1 exchange is complete: the server's identity is the key.
impl GiveBack for ServerHealth {
    fn give_back(self: Arc<Self>, sender: http1::SendRequest<UpstreamBody>, max_idle: usize) {
        let key = Arc::as_ptr(&self) as usize;
        give_back(key, self, Conn::H1(sender), max_idle);
    }
}
/// Closes this thread's idle connections that are closed or idle for longer than `limit` ms, and forgets
/// servers with none left.
fn sweep(limit: u64) {
    let now = now_ms();
    IDLE.with_borrow_mut(|m| {
        m.retain(|_, list| {
            list.retain(|i| !i.conn.is_closed() && now.saturating_sub(i.since_ms) <= limit);
            !list.is_empty()
        });
    });
}

/// Idle connections pooled on this thread (tests and the sweep's log).
pub fn idle_count() -> usize {
    IDLE.with_borrow(|m| m.values().map(Vec::len).sum())
}
impl Upstreams {
    /// Sends `req` (origin-form URI, `Host` set) to `target` over a new connection that is never pooled and
    /// is closed once the response is dropped: what an active health probe needs. Same dial timeout, TLS
    /// settings (`insecureSkipVerify`, `rootCAs`, SNI from the authority) and protocol choice (ALPN, h2c)
    /// as traffic; a fresh connection measures what a new proxied connection would meet, and a keep-alive
    /// connection closed by the server between two probes can never fail one. Control plane.
    pub async fn send_unpooled(
        &self,
        target: Target<'_>,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut conn = Box::pin(self.connect(target, None)).await?;
        conn.send(req, target)
            .await
            .map_err(|e| UpstreamError::Http(e.into_error()))
    }
}
