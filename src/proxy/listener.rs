//! Accept loops: one per entrypoint, serving HTTP/1.1 and HTTP/2 (prior knowledge) on each connection.
//!
//! Listeners are bound by the caller and passed in, so tests bind port 0. Connections are registered with a
//! graceful-shutdown watcher: when accepting stops, open connections finish their in-flight requests.
//! Every state of a connection has a bound (`respondingTimeouts`), kept by [`super::deadline`]: from the
//! accept, the first byte and the TLS handshake share the header bound with the request head.
//!
//! Accept errors (EMFILE when the descriptor limit is reached) back off for 50 ms and are logged at most
//! once per [`ACCEPT_WARN_EVERY`], with the number of failures in between.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;
use tokio_util::sync::CancellationToken;

use super::body::{BodyClock, ServedBody};
use super::deadline::{self, Activity, Driven, StreamExec, Timeouts, TrackedIo};
use super::forward::{canonical_ip, TrustedPeers};
use super::handler::{handle, ConnCtx, Shared};
use super::park;
use super::spread::{ConnLoad, HandedOff, Spread};
use super::tcp::prefixed::Prefixed;
use crate::http::ConnInfo;
use crate::table::tcp::TcpTls;
use crate::tls::challenge::ACME_TLS_ALPN;

/// Connection-level settings of an entrypoint.
#[derive(Clone, Debug)]
pub struct ConnSettings {
    /// The bounds on each state of a connection (`respondingTimeouts`).
    pub timeouts: Timeouts,
    /// Largest request head accepted (larger → 431).
    pub max_header_bytes: usize,
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// `proxyProtocol`: the peers whose PROXY protocol header is honoured (`None`: not enabled).
    pub proxy_protocol: Option<TrustedPeers>,
}

/// One bound entrypoint ready to serve.
pub struct EntryPointListener {
    /// Index of the entrypoint in the routing table.
    pub index: usize,
    /// Its name (logs).
    pub name: String,
    /// The bound socket.
    pub listener: TcpListener,
    /// Who may set forwarded headers.
    pub trusted: TrustedPeers,
    /// Connection settings.
    pub settings: ConnSettings,
}

/// hyper's connection builders for an entrypoint, one set per accept loop, shared by its connections.
struct Builders {
    /// TLS connections (HTTP/1.1 or HTTP/2 by ALPN or preface).
    auto: auto::Builder<StreamExec>,
    /// Plain HTTP/1 connections, which are parked when idle ([`park`]).
    h1: http1::Builder,
    /// Plain HTTP/2 prior-knowledge connections.
    h2: http2::Builder<StreamExec>,
}

/// hyper's HTTP/1 settings of an entrypoint, applied to the plain-HTTP/1 builder and to the auto builder's
/// (a different type with the same setters, hence a macro).
macro_rules! configure_h1 {
    ($b:expr, $s:expr) => {
        // hyper's header timer also runs through the keep-alive gap (one value for two bounds): off, the
        // connection driver keeps both (`deadline`).
        $b.timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_buf_size($s.max_header_bytes.max(8192))
            .keep_alive(true)
    };
}

/// hyper's HTTP/2 settings of an entrypoint, for the prior-knowledge builder and the auto builder's.
macro_rules! configure_h2 {
    ($b:expr, $s:expr) => {
        $b.timer(TokioTimer::new())
            .max_concurrent_streams($s.max_concurrent_streams)
            .keep_alive_interval(Some(Duration::from_secs(30)))
    };
}

/// Builds hyper's connection builders for an entrypoint (the same settings for all three).
fn conn_builders(s: &ConnSettings) -> Builders {
    let exec = StreamExec {
        write: s.timeouts.write,
    };
    let mut a = auto::Builder::new(exec);
    configure_h1!(a.http1(), s);
    configure_h2!(a.http2(), s);
    let mut h1 = http1::Builder::new();
    configure_h1!(h1, s);
    let mut h2 = http2::Builder::new(exec);
    configure_h2!(h2, s);
    Builders { auto: a, h1, h2 }
}

/// What every connection of one entrypoint on one worker shares, built once per accept loop.
#[derive(Clone)]
pub struct EntryPointCtx {
    builders: Arc<Builders>,
    shared: Arc<Shared>,
    index: usize,
    trusted: TrustedPeers,
    timeouts: Timeouts,
    stop: CancellationToken,
    port_header: HeaderValue,
    /// With `proxyProtocol`: whose headers are honoured, and the forwarded-headers trust recomputed for
    /// the address a header gives.
    proxy_protocol: Option<Arc<ProxyTrust>>,
}

/// An entrypoint's PROXY protocol trust, with its forwarded-headers trust.
#[derive(Debug)]
struct ProxyTrust {
    proxy: TrustedPeers,
    forwarded: TrustedPeers,
}

impl EntryPointCtx {
    /// The context of entrypoint `index` (whose socket listens on `port`) on a worker with state `shared`;
    /// its connections finish gracefully once `stop` fires.
    pub fn new(
        index: usize,
        trusted: TrustedPeers,
        settings: &ConnSettings,
        port: u16,
        shared: Arc<Shared>,
        stop: CancellationToken,
    ) -> EntryPointCtx {
        let proxy_protocol = settings.proxy_protocol.clone().map(|proxy| {
            Arc::new(ProxyTrust {
                proxy,
                forwarded: trusted.clone(),
            })
        });
        EntryPointCtx {
            builders: Arc::new(conn_builders(settings)),
            shared,
            index,
            trusted,
            timeouts: settings.timeouts,
            stop,
            port_header: HeaderValue::from(port),
            proxy_protocol,
        }
    }

    /// Index of the entrypoint in the routing table.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Serves one accepted connection on the current worker, on a task of its own.
    pub fn spawn(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        watcher: Watcher,
        load: Option<ConnLoad>,
    ) {
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let conn = Conn {
            builders: self.builders.clone(),
            shared: self.shared.clone(),
            watcher,
            index: self.index,
            trusted: self.trusted.trusts(canonical_ip(peer.ip())),
            timeouts: self.timeouts,
            stop: self.stop.clone(),
            peer,
            local,
            port_header: self.port_header.clone(),
            proxy_protocol: self.proxy_protocol.clone(),
            _load: load,
        };
        tokio::spawn(conn.serve(stream));
    }
}

/// Accepts until `stop` fires; each connection is served on its own task and watched by `graceful`.
///
/// With `spread` (several workers), a connection this worker should not take — it serves more than the
/// least-loaded worker by more than one — is handed to that worker instead (see [`Spread`]).
pub async fn serve(
    ep: EntryPointListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    graceful: Arc<GracefulShutdown>,
    spread: Option<(Arc<Spread>, usize)>,
) {
    let port = ep.listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let ctx = EntryPointCtx::new(
        ep.index,
        ep.trusted,
        &ep.settings,
        port,
        shared,
        stop.clone(),
    );
    let mut accept_errors = AcceptErrors::default();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            r = ep.listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                accept_errors.note(&ep.name, &e, tokio::time::Instant::now());
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // A watcher, not the shutdown handle: only the accept loops may hold that, so that the app can
        // take it back and wait for connections once accepting has stopped.
        let watcher = graceful.watcher();
        let Some((spread, me)) = &spread else {
            ctx.spawn(stream, peer, watcher, None);
            continue;
        };
        let target = spread.choose(*me);
        let load = spread.charge(target);
        if target == *me {
            ctx.spawn(stream, peer, watcher, Some(load));
            continue;
        }
        match stream.into_std() {
            Ok(stream) => spread.hand_off(
                target,
                HandedOff {
                    stream,
                    peer,
                    entry_point: ep.index,
                    watcher,
                    load,
                },
            ),
            Err(e) => tracing::debug!(peer = %peer, "handing off a connection failed: {e}"),
        }
    }
    tracing::debug!(entrypoint = %ep.name, "stopped accepting");
}

/// At most one accept-failure warning per this period (per entrypoint and worker).
pub const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(5);

/// Rate limit of the accept-failure warning: under EMFILE an accept loop fails 20 times a second.
#[derive(Debug, Default)]
struct AcceptErrors {
    last_warn: Option<tokio::time::Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    /// Logs `e` unless a warning was logged less than [`ACCEPT_WARN_EVERY`] ago; returns whether it did.
    fn note(&mut self, entry_point: &str, e: &std::io::Error, now: tokio::time::Instant) -> bool {
        if self
            .last_warn
            .is_some_and(|t| now.saturating_duration_since(t) < ACCEPT_WARN_EVERY)
        {
            self.suppressed += 1;
            return false;
        }
        let suppressed = std::mem::take(&mut self.suppressed);
        tracing::warn!(
            entrypoint = %entry_point,
            suppressed,
            "accept failed: {e} (backing off; at most one warning per {}s)",
            ACCEPT_WARN_EVERY.as_secs()
        );
        self.last_warn = Some(now);
        true
    }
}

/// The service answering a connection's requests, written out inside each function that serves a
/// connection. It must not look at the request's body before `handle` takes the request: doing so made the
/// compiler build each request's ~14 KB future on the stack and copy it into hyper's slot (+14,000
/// instructions a request under callgrind, issue 21), so whether the connection may be parked is judged
/// from the head ([`park::request_reusable`]).
macro_rules! conn_service {
    ($activity:expr, $ctx:expr, $write:expr) => {{
        let svc_activity = $activity.clone();
        let ctx = $ctx;
        let write = $write;
        service_fn(move |req: Request<Incoming>| {
            let open = svc_activity.begin(req.version(), write);
            let reusable = park::request_reusable(req.version(), req.headers());
            let served = handle(req, ctx.clone());
            async move {
                let resp: Response<_> = served.await?;
                open.served(reusable && park::response_reusable(resp.status(), resp.headers()));
                Ok::<_, Infallible>(resp.map(|body| ServedBody { body, open }))
            }
        })
    }};
}

/// One accepted connection, before we know whether it speaks TLS.
struct Conn {
    builders: Arc<Builders>,
    shared: Arc<Shared>,
    watcher: Watcher,
    index: usize,
    trusted: bool,
    timeouts: Timeouts,
    stop: CancellationToken,
    peer: SocketAddr,
    /// The address the client connected to.
    local: SocketAddr,
    port_header: HeaderValue,
    proxy_protocol: Option<Arc<ProxyTrust>>,
    /// Counts this connection in its worker's load until it closes.
    _load: Option<ConnLoad>,
}

/// First byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

/// The TCP router a TLS connection goes to, or `None` for HTTP (Traefik's order; ACME TLS-ALPN-01
/// validations always go to HTTP, which answers them).
fn tls_route(
    ep: &crate::table::tcp::TcpEntryPoint,
    hello: &crate::proxy::tcp::hello::Hello,
    ip: std::net::IpAddr,
) -> Option<Arc<crate::table::tcp::TcpRoute>> {
    let acme = hello.alpn.iter().any(|p| p.as_bytes() == ACME_TLS_ALPN);
    let sni = hello.sni.as_deref();
    if acme || sni.is_some_and(|s| ep.https_hosts.contains(s)) {
        return None;
    }
    let alpn: Vec<&str> = hello.alpn.iter().map(String::as_str).collect();
    match ep.find_tls(sni, ip, &alpn) {
        Some(r) if !r.catch_all || !ep.https_catch_all => Some(r.clone()),
        _ => None,
    }
}

impl Conn {
    /// Peeks at the first byte: a TLS handshake is terminated with the current table's TLS settings
    /// (chosen by SNI and ALPN), anything else is served as plain HTTP — as Traefik's entrypoints do.
    /// The first byte and the handshake must come within the header bound, counted from the accept; a
    /// client that sends nothing is closed, not handed to protocol detection. A plain request head must be
    /// complete within the same bound from the accept (as nginx's `client_header_timeout`); after a TLS
    /// handshake the head gets a bound of its own (as Go's server).
    async fn serve(mut self, mut stream: TcpStream) {
        let accepted = tokio::time::Instant::now();
        // Without a header bound (switched off) the handshake still gets one: rustls buffers it.
        let limit = accepted + self.timeouts.header.unwrap_or(Duration::from_secs(60));
        if let Some(pp) = self.proxy_protocol.clone() {
            if !self.proxy_header(&mut stream, &pp, limit).await {
                return;
            }
        }
        let table = self.shared.store.load();
        // The TLS and TCP paths are boxed: their states (rustls, hyper's auto connection) would otherwise
        // size every connection's task, plain ones included.
        if table.tcp.entry_point(self.index).is_some() {
            let tcp = table.tcp.clone();
            drop(table);
            Box::pin(self.serve_mixed(stream, tcp, limit, accepted)).await;
            return;
        }
        drop(table);
        let Some(first) = self.first_byte(&stream, limit).await else {
            return;
        };
        if first != TLS_HANDSHAKE {
            self.http_plain(stream, accepted).await;
            return;
        }
        Box::pin(self.https(stream, limit)).await;
    }

    /// The first byte the client sends, within the header bound from the accept; `None` when it sends
    /// nothing in time or closes: the connection is then closed, not handed to protocol detection.
    async fn first_byte(&self, stream: &TcpStream, limit: tokio::time::Instant) -> Option<u8> {
        let mut first = [0u8; 1];
        let peeked = match self.timeouts.header {
            Some(_) => tokio::time::timeout_at(limit, stream.peek(&mut first))
                .await
                .ok()?,
            None => stream.peek(&mut first).await,
        };
        matches!(peeked, Ok(1)).then_some(first[0])
    }

    /// Terminates TLS on `io` with the current table's TLS settings (chosen by SNI and ALPN), within
    /// `limit`, and serves HTTP over it.
    async fn https<I>(self, io: I, limit: tokio::time::Instant)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Some(tls_stream) = self.terminate(io, limit).await else {
            return;
        };
        let acme = tls_stream.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN);
        if acme {
            // TLS-ALPN-01 validation: the handshake was the answer.
            return;
        }
        // Mutual TLS: the chain, for `passTLSClientCert` (kept once per connection).
        let client_certs = tls_stream
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.clone().into_owned()).collect());
        self.http(tls_stream, true, client_certs, tokio::time::Instant::now())
            .await;
    }

    /// The TLS handshake on `io` within `limit`, with the current table's certificates and options.
    async fn terminate<I>(
        &self,
        io: I,
        limit: tokio::time::Instant,
    ) -> Option<tokio_rustls::server::TlsStream<I>>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let tls = self.shared.store.load().tls.clone()?; // no TLS configured at all: close
        let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
        let handshake = async {
            let start = acceptor.await?;
            // TLS-ALPN-01 for a name whose answer is not loaded yet (Swarm store): a bounded wait for a
            // resync, inside the handshake's own bound.
            let wait = tls.alpn_read_through(&start.client_hello());
            if let Some(wait) = wait {
                wait.await;
            }
            let config = tls.config_for(&start.client_hello());
            start.into_stream(config).await
        };
        match tokio::time::timeout_at(limit, handshake).await {
            Ok(Ok(tls_stream)) => Some(tls_stream),
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, "TLS handshake failed: {e}");
                None
            }
            Err(_) => {
                tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                None
            }
        }
    }

    /// Reads the entrypoint's PROXY protocol header, as Traefik (go-proxyproto) does: from a trusted peer a
    /// header is optional and, when present, its source becomes the client address (and its destination
    /// the local one); from any other peer a header is read and dropped, and the peer stays the client.
    /// The header must be complete within `limit`; a malformed or incomplete one closes the connection
    /// (`false`). A client that sends nothing in time is left to the first-byte bound.
    async fn proxy_header(
        &mut self,
        stream: &mut TcpStream,
        pp: &ProxyTrust,
        limit: tokio::time::Instant,
    ) -> bool {
        use crate::proxy_protocol::{decode, Decoded, V2_MAX};
        let mut buf = vec![0u8; V2_MAX];
        let mut seen = 0;
        let (header, len) = loop {
            let n = match tokio::time::timeout_at(limit, stream.peek(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => n,
                Ok(_) => return false, // closed or failed
                Err(_) => return seen == 0,
            };
            match decode(buf.get(..n).unwrap_or_default()) {
                Ok(Decoded::NotProxy) => return true,
                Ok(Decoded::Header { header, len }) => break (header, len),
                Ok(Decoded::Incomplete) if n == buf.len() => return false,
                Ok(Decoded::Incomplete) => {
                    if n == seen {
                        // The rest of the header is still on its way: peek again shortly.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    seen = n;
                }
                Err(e) => {
                    tracing::debug!(peer = %self.peer, "{e}");
                    return false;
                }
            }
        };
        let consumed = buf.get_mut(..len).unwrap_or_default();
        let read = tokio::io::AsyncReadExt::read_exact(stream, consumed);
        if !matches!(tokio::time::timeout_at(limit, read).await, Ok(Ok(_))) {
            return false;
        }
        let honoured = pp.proxy.trusts(canonical_ip(self.peer.ip()));
        if let (true, Some((src, dst))) = (honoured, header.addresses) {
            self.peer = src;
            self.local = dst;
            self.trusted = pp.forwarded.trusts(canonical_ip(src.ip()));
        }
        true
    }

    /// An entrypoint with TCP routers, routed as Traefik's `tcp.Router`: plain connections to a plain TCP
    /// router that matches (at once when the entrypoint has no TLS router of either kind), else to HTTP;
    /// TLS connections by their ClientHello — HTTPS routers naming the SNI first, then TCP routers other
    /// than `HostSNI(`*`)`, then HTTPS catch-alls, then TCP catch-alls, then HTTP (its 404).
    async fn serve_mixed(
        self,
        stream: TcpStream,
        tcp: Arc<crate::table::tcp::TcpTable>,
        limit: tokio::time::Instant,
        accepted: tokio::time::Instant,
    ) {
        let ip = canonical_ip(self.peer.ip());
        let Some(ep) = tcp.entry_point(self.index) else {
            return;
        };
        let open = ep.open.clone();
        if ep.plain_only() {
            if let Some(route) = ep.find_plain(ip).cloned() {
                drop(tcp);
                return self.tcp_route(route, stream, open).await;
            }
        }
        let Some(first) = self.first_byte(&stream, limit).await else {
            return;
        };
        if first != TLS_HANDSHAKE {
            match ep.find_plain(ip).cloned() {
                Some(route) => {
                    drop(tcp);
                    self.tcp_route(route, stream, open).await
                }
                None => {
                    drop(tcp);
                    self.http_plain(stream, accepted).await
                }
            }
            return;
        }
        let mut stream = stream;
        let hello =
            match tokio::time::timeout_at(limit, crate::proxy::tcp::hello::read(&mut stream)).await
            {
                Ok(Ok(h)) => h,
                _ => return, // closed or too slow before a whole ClientHello
            };
        let route = tls_route(ep, &hello, ip);
        drop(tcp);
        let io = Prefixed::new(hello.bytes, stream);
        match route {
            None => self.https(io, limit).await,
            Some(route) if route.tls == TcpTls::Passthrough => {
                self.tcp_route(route, io, open).await
            }
            Some(route) => {
                let Some(tls) = self.terminate(io, limit).await else {
                    return;
                };
                self.tcp_route(route, tls, open).await
            }
        }
    }

    /// Serves `io` with a TCP route; the connection counts as open on the entrypoint meanwhile.
    async fn tcp_route<I>(
        self,
        route: Arc<crate::table::tcp::TcpRoute>,
        io: I,
        open: Option<prometheus::IntGauge>,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    {
        let _open = crate::table::tcp::OpenGuard::new(open.as_ref());
        let addrs = crate::proxy::tcp::Addresses {
            client: self.peer,
            local: self.local,
        };
        crate::proxy::tcp::serve(route, io, addrs).await;
        drop(self.watcher);
    }

    /// The per-connection state of a connection served over HTTP (TLS or not).
    fn conn_ctx(
        &self,
        tls: bool,
        client_certs: Option<Arc<[rustls::pki_types::CertificateDer<'static>]>>,
    ) -> (Arc<Activity>, Arc<ConnCtx>) {
        let ip = canonical_ip(self.peer.ip());
        let activity = Activity::new();
        let ctx = Arc::new(ConnCtx {
            shared: self.shared.clone(),
            info: ConnInfo {
                entry_point: self.index,
                client_ip: ip,
                client_ip_header: HeaderValue::from_str(&ip.to_string())
                    .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
                port_header: self.port_header.clone(),
                trusted: self.trusted,
                tls,
                client_certs,
            },
            body_clock: BodyClock {
                activity: activity.clone(),
                read: self.timeouts.read,
                idle: self.timeouts.body_idle,
            },
        });
        (activity, ctx)
    }

    /// Serves HTTP on `io` (TLS, or a plain connection whose first bytes were taken for routing); the
    /// first request head is bounded from `head_start`.
    async fn http<I>(
        self,
        io: I,
        tls: bool,
        client_certs: Option<Arc<[rustls::pki_types::CertificateDer<'static>]>>,
        head_start: tokio::time::Instant,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (activity, ctx) = self.conn_ctx(tls, client_certs);
        let svc = conn_service!(activity, ctx, self.timeouts.write);
        let io = TokioIo::new(TrackedIo::new(io, activity.clone(), self.timeouts.send));
        let conn = self
            .builders
            .auto
            .serve_connection_with_upgrades(io, svc)
            .into_owned();
        let conn = std::pin::pin!(conn);
        deadline::drive(conn, &activity, self.timeouts, head_start, &self.stop, None).await;
        // Held until the connection is done, so that shutdown waits for it.
        drop(self.watcher);
    }

    /// Serves plain HTTP on `stream`: HTTP/2 with prior knowledge, else HTTP/1 with idle keep-alive
    /// connections parked — hyper's connection (and its buffers) dropped, the socket kept — until their
    /// next request ([`park`]). The first request head is bounded from `head_start`.
    ///
    /// Takes anything that converts into a `TcpStream` (the listener passes one).
    async fn http_plain<T: Into<TcpStream>>(self, stream: T, head_start: tokio::time::Instant) {
        let mut stream: TcpStream = stream.into();
        let limit = self.timeouts.header.map(|d| head_start + d);
        let Some((h2, seen)) = park::read_preface(&mut stream, limit).await else {
            return;
        };
        let (activity, ctx) = self.conn_ctx(false, None);
        let svc = conn_service!(activity, ctx, self.timeouts.write);
        let send = self.timeouts.send;
        if h2 {
            let io = TokioIo::new(TrackedIo::new(
                Prefixed::new(seen, stream),
                activity.clone(),
                send,
            ));
            // Boxed, as the HTTP/1 connection below: the task stays small while the connection is idle.
            let mut conn = Box::pin(self.builders.h2.serve_connection(io, svc));
            deadline::drive(
                conn.as_mut(),
                &activity,
                self.timeouts,
                head_start,
                &self.stop,
                None,
            )
            .await;
            drop(self.watcher);
            return;
        }
        let mut prefix = seen;
        let mut start = head_start;
        loop {
            let io = TokioIo::new(TrackedIo::new(
                Prefixed::new(prefix, stream),
                activity.clone(),
                send,
            ));
            let mut conn = Box::pin(
                self.builders
                    .h1
                    .serve_connection(io, svc.clone())
                    .with_upgrades(),
            );
            let idle = match deadline::drive(
                conn.as_mut(),
                &activity,
                self.timeouts,
                start,
                &self.stop,
                Some(park::PARK_AFTER),
            )
            .await
            {
                Driven::Parked(idle) => idle,
                Driven::Over => break,
            };
            let Some(http1::Parts { io, read_buf, .. }) = Pin::into_inner(conn).into_parts() else {
                break;
            };
            let (rest, s) = io.into_inner().into_inner().into_parts();
            stream = s;
            // Bytes hyper had read past the last request come first, then any not yet replayed. The
            // buffer itself (hyper's whole read buffer) is dropped before the wait, not held through it.
            prefix = if read_buf.is_empty() {
                rest
            } else {
                let mut p = read_buf.to_vec();
                p.extend_from_slice(&rest);
                p
            };
            drop(read_buf);
            if prefix.is_empty() && !park::wait(&stream, idle, &self.stop).await {
                break;
            }
            start = tokio::time::Instant::now();
        }
        // Held until the connection is done, so that shutdown waits for it.
        drop(self.watcher);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::tcp::{
        TcpEntryPoint, TcpLoadBalancer, TcpRoute, TcpService, TcpServiceKind, TcpTransport,
    };

    fn route(name: &str, rule: &str) -> Arc<TcpRoute> {
        Arc::new(TcpRoute {
            name: name.into(),
            rule: crate::rule::parse_tcp(rule, crate::rule::Syntax::V3)
                .unwrap_or_else(|e| panic!("{e}")),
            priority: 0,
            catch_all: rule == "HostSNI(`*`)",
            tls: TcpTls::Passthrough,
            middlewares: Box::new([]),
            service: Arc::new(TcpService {
                name: "s".into(),
                kind: TcpServiceKind::LoadBalancer(TcpLoadBalancer {
                    servers: Box::new([]),
                    wrr: crate::balance::wrr::WeightedRoundRobin::new(&[]),
                    transport: Arc::new(TcpTransport::default()),
                }),
            }),
        })
    }

    fn hello(sni: &str, alpn: &[&str]) -> crate::proxy::tcp::hello::Hello {
        crate::proxy::tcp::hello::Hello {
            bytes: Vec::new(),
            sni: Some(sni.to_string()),
            alpn: alpn.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn tls_connections_go_where_traefik_sends_them() {
        let ip: std::net::IpAddr = [127, 0, 0, 1].into();
        let mut ep = TcpEntryPoint {
            tls: vec![
                route("a", "HostSNI(`a.test`)"),
                route("any", "HostSNI(`*`)"),
            ]
            .into(),
            https_hosts: ["web.test".into()].into_iter().collect(),
            has_https: true,
            ..Default::default()
        };
        let to = |ep: &TcpEntryPoint, sni: &str, alpn: &[&str]| {
            tls_route(ep, &hello(sni, alpn), ip).map(|r| r.name.to_string())
        };
        // An HTTPS router naming the SNI wins over every TCP router.
        assert_eq!(to(&ep, "web.test", &[]), None);
        // A specific TCP router, then the TCP catch-all when no HTTPS router is a catch-all.
        assert_eq!(to(&ep, "a.test", &[]).as_deref(), Some("a"));
        assert_eq!(to(&ep, "other.test", &[]).as_deref(), Some("any"));
        // An HTTPS catch-all (a router without Host) comes before the TCP catch-all, not before `a`.
        ep.https_catch_all = true;
        assert_eq!(to(&ep, "other.test", &[]), None);
        assert_eq!(to(&ep, "a.test", &[]).as_deref(), Some("a"));
        // ACME TLS-ALPN-01 validations are answered by HTTP.
        assert_eq!(to(&ep, "a.test", &["acme-tls/1"]), None);
    }

    #[test]
    fn accept_failures_are_logged_once_per_period_with_a_count() {
        let mut errs = AcceptErrors::default();
        let e = std::io::Error::from_raw_os_error(24);
        let t0 = tokio::time::Instant::now();
        assert!(errs.note("web", &e, t0));
        let logged = (1..=100)
            .filter(|i| errs.note("web", &e, t0 + Duration::from_millis(i * 40)))
            .count();
        // 4 s of failures every 40 ms after the first: all suppressed; then one line with the count.
        assert_eq!(logged, 0);
        assert!(errs.note("web", &e, t0 + ACCEPT_WARN_EVERY));
        assert_eq!(errs.suppressed, 0, "the count restarts after a warning");
    }
}
