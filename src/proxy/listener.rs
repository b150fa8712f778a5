//! Accept loops: one per entrypoint, serving HTTP/1.1 and HTTP/2 (prior knowledge) on each connection.
//!
//! Listeners are bound by the caller and passed in, so tests bind port 0. Connections are registered with a
//! graceful-shutdown watcher: when accepting stops, open connections finish their in-flight requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;
use tokio_util::sync::CancellationToken;

use super::forward::{canonical_ip, TrustedPeers};
use super::handler::{handle, ConnCtx, Shared};
use super::workers::{ConnLoad, HandedOff, Spread};
use crate::tls::challenge::ACME_TLS_ALPN;

/// Connection-level settings of an entrypoint.
#[derive(Clone, Debug)]
pub struct ConnSettings {
    /// Time allowed to receive request headers, and idle time between keep-alive requests.
    pub header_read_timeout: Option<Duration>,
    /// Largest request head accepted (larger → 431).
    pub max_header_bytes: usize,
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
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

/// Builds hyper's connection builder for an entrypoint.
fn conn_builder(s: &ConnSettings) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(s.header_read_timeout)
        .max_buf_size(s.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(s.max_concurrent_streams)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    b
}

/// What every connection of one entrypoint on one worker shares, built once per accept loop.
#[derive(Clone)]
pub struct EntryPointCtx {
    builder: auto::Builder<TokioExecutor>,
    shared: Arc<Shared>,
    index: usize,
    trusted: TrustedPeers,
    handshake_timeout: Duration,
    port_header: HeaderValue,
}

impl EntryPointCtx {
    /// The context of entrypoint `index` (whose socket listens on `port`) on a worker with state `shared`.
    pub fn new(
        index: usize,
        trusted: TrustedPeers,
        settings: &ConnSettings,
        port: u16,
        shared: Arc<Shared>,
    ) -> EntryPointCtx {
        EntryPointCtx {
            builder: conn_builder(settings),
            shared,
            index,
            trusted,
            handshake_timeout: settings
                .header_read_timeout
                .unwrap_or(Duration::from_secs(60)),
            port_header: HeaderValue::from(port),
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
        let conn = Conn {
            builder: self.builder.clone(),
            shared: self.shared.clone(),
            watcher,
            index: self.index,
            trusted: self.trusted.trusts(canonical_ip(peer.ip())),
            handshake_timeout: self.handshake_timeout,
            peer,
            port_header: self.port_header.clone(),
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
    let ctx = EntryPointCtx::new(ep.index, ep.trusted, &ep.settings, port, shared);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            r = ep.listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(entrypoint = %ep.name, "accept failed: {e}");
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

/// One accepted connection, before we know whether it speaks TLS.
struct Conn {
    builder: auto::Builder<TokioExecutor>,
    shared: Arc<Shared>,
    watcher: Watcher,
    index: usize,
    trusted: bool,
    handshake_timeout: Duration,
    peer: SocketAddr,
    port_header: HeaderValue,
    /// Counts this connection in its worker's load until it closes.
    _load: Option<ConnLoad>,
}

/// First byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

impl Conn {
    /// Peeks at the first byte: a TLS handshake is terminated with the current table's TLS settings
    /// (chosen by SNI and ALPN), anything else is served as plain HTTP — as Traefik's entrypoints do.
    async fn serve(self, stream: TcpStream) {
        let mut first = [0u8; 1];
        let peeked = tokio::time::timeout(self.handshake_timeout, stream.peek(&mut first)).await;
        let is_tls = matches!(peeked, Ok(Ok(1))) && first[0] == TLS_HANDSHAKE;
        if !is_tls {
            self.http(TokioIo::new(stream), false).await;
            return;
        }
        let table = self.shared.store.load_full();
        let Some(tls) = table.tls.clone() else {
            return; // no TLS configured at all: close
        };
        drop(table);
        let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
        let handshake = async {
            let start = acceptor.await?;
            let config = tls.config_for(&start.client_hello());
            start.into_stream(config).await
        };
        match tokio::time::timeout(self.handshake_timeout, handshake).await {
            Ok(Ok(tls_stream)) => {
                let acme = tls_stream.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN);
                if acme {
                    // TLS-ALPN-01 validation: the handshake was the answer.
                    return;
                }
                self.http(TokioIo::new(tls_stream), true).await;
            }
            Ok(Err(e)) => tracing::debug!(peer = %self.peer, "TLS handshake failed: {e}"),
            Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
        }
    }

    async fn http<I>(self, io: I, tls: bool)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let ip = canonical_ip(self.peer.ip());
        let ctx = Arc::new(ConnCtx {
            shared: self.shared.clone(),
            entry_point: self.index,
            client_ip: ip,
            client_ip_header: HeaderValue::from_str(&ip.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            port_header: self.port_header,
            trusted: self.trusted,
            tls,
        });
        let svc = service_fn(move |req| handle(req, ctx.clone()));
        let conn = self
            .builder
            .serve_connection_with_upgrades(io, svc)
            .into_owned();
        let _ = self.watcher.watch(conn).await;
    }
}
