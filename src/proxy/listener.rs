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
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::forward::{canonical_ip, TrustedPeers};
use super::handler::{handle, ConnCtx, Shared};

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

/// Accepts until `stop` fires; each connection is served on its own task and watched by `graceful`.
pub async fn serve(
    ep: EntryPointListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    graceful: Arc<GracefulShutdown>,
) {
    let builder = conn_builder(&ep.settings);
    let port = ep.listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let port_header = HeaderValue::from(port);
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
        let _ = stream.set_nodelay(true);
        let ctx = Arc::new(conn_ctx(&ep, &shared, peer, port_header.clone()));
        let svc = service_fn(move |req| handle(req, ctx.clone()));
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
            .into_owned();
        let fut = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = fut.await;
        });
    }
    tracing::debug!(entrypoint = %ep.name, "stopped accepting");
}

fn conn_ctx(
    ep: &EntryPointListener,
    shared: &Arc<Shared>,
    peer: SocketAddr,
    port_header: HeaderValue,
) -> ConnCtx {
    let ip = canonical_ip(peer.ip());
    ConnCtx {
        shared: shared.clone(),
        entry_point: ep.index,
        client_ip: ip,
        client_ip_header: HeaderValue::from_str(&ip.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
        port_header,
        trusted: ep.trusted.trusts(ip),
        tls: false,
    }
}
