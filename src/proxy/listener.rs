//! Accept loops: one per entrypoint, serving HTTP/1.1 and HTTP/2 (prior knowledge) on each connection.
//!
//! Listeners are bound by the caller and passed in, so tests bind port 0. Connections are registered with a
//! graceful-shutdown watcher: when accepting stops, open connections finish their in-flight requests.
//! Every state of a connection has a bound (`respondingTimeouts`), kept by [`super::deadline`]: from the
//! accept, the first byte and the TLS handshake share the header bound with the request head.
//!
//! Accept errors (EMFILE when the descriptor limit is reached) back off for 50 ms and are logged at most
//! once per [`ACCEPT_WARN_EVERY`], with the number of failures in between.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;
use tokio_util::sync::CancellationToken;

use super::body::{BodyClock, ServedBody};
use super::deadline::{self, Activity, StreamExec, Timeouts, TrackedIo};
use super::forward::{canonical_ip, TrustedPeers};
use super::handler::{handle, ConnCtx, Shared};
use super::spread::{ConnLoad, HandedOff, Spread};
use crate::http::ConnInfo;
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
fn conn_builder(s: &ConnSettings) -> auto::Builder<StreamExec> {
    let mut b = auto::Builder::new(StreamExec {
        write: s.timeouts.write,
    });
    // hyper's header timer also runs through the keep-alive gap (one value for two bounds): off, the
    // connection driver keeps both (`deadline`).
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
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
    builder: auto::Builder<StreamExec>,
    shared: Arc<Shared>,
    index: usize,
    trusted: TrustedPeers,
    timeouts: Timeouts,
    stop: CancellationToken,
    port_header: HeaderValue,
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
        EntryPointCtx {
            builder: conn_builder(settings),
            shared,
            index,
            trusted,
            timeouts: settings.timeouts,
            stop,
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
            timeouts: self.timeouts,
            stop: self.stop.clone(),
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

/// One accepted connection, before we know whether it speaks TLS.
struct Conn {
    builder: auto::Builder<StreamExec>,
    shared: Arc<Shared>,
    watcher: Watcher,
    index: usize,
    trusted: bool,
    timeouts: Timeouts,
    stop: CancellationToken,
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
    /// The first byte and the handshake must come within the header bound, counted from the accept; a
    /// client that sends nothing is closed, not handed to protocol detection. A plain request head must be
    /// complete within the same bound from the accept (as nginx's `client_header_timeout`); after a TLS
    /// handshake the head gets a bound of its own (as Go's server).
    async fn serve(self, stream: TcpStream) {
        let accepted = tokio::time::Instant::now();
        // Without a header bound (switched off) the handshake still gets one: rustls buffers it.
        let limit = accepted + self.timeouts.header.unwrap_or(Duration::from_secs(60));
        let mut first = [0u8; 1];
        let peeked = match self.timeouts.header {
            Some(_) => match tokio::time::timeout_at(limit, stream.peek(&mut first)).await {
                Ok(r) => r,
                Err(_) => return, // nothing within the bound: close
            },
            None => stream.peek(&mut first).await,
        };
        if !matches!(peeked, Ok(1)) {
            return; // closed or failed before a byte
        }
        if first[0] != TLS_HANDSHAKE {
            self.http(stream, false, None, accepted).await;
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
        match tokio::time::timeout_at(limit, handshake).await {
            Ok(Ok(tls_stream)) => {
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
            Ok(Err(e)) => tracing::debug!(peer = %self.peer, "TLS handshake failed: {e}"),
            Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
        }
    }

    /// Serves HTTP on `io`; the first request head is bounded from `head_start`.
    async fn http<I>(
        self,
        io: I,
        tls: bool,
        client_certs: Option<Arc<[rustls::pki_types::CertificateDer<'static>]>>,
        head_start: tokio::time::Instant,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let ip = canonical_ip(self.peer.ip());
        let activity = Activity::new();
        let ctx = Arc::new(ConnCtx {
            shared: self.shared.clone(),
            info: ConnInfo {
                entry_point: self.index,
                client_ip: ip,
                client_ip_header: HeaderValue::from_str(&ip.to_string())
                    .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
                port_header: self.port_header,
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
        let write = self.timeouts.write;
        let svc_activity = activity.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let open = svc_activity.begin(req.version(), write);
            let served = handle(req, ctx.clone());
            async move {
                let resp: Response<_> = served.await?;
                Ok::<_, std::convert::Infallible>(resp.map(|body| ServedBody { body, open }))
            }
        });
        let io = TokioIo::new(TrackedIo::new(io, activity.clone(), self.timeouts.send));
        let conn = self
            .builder
            .serve_connection_with_upgrades(io, svc)
            .into_owned();
        deadline::drive(conn, &activity, self.timeouts, head_start, &self.stop).await;
        // Held until the connection is done, so that shutdown waits for it.
        drop(self.watcher);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
