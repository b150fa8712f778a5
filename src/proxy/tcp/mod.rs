//! Serving a connection a TCP router took: its middlewares, the pick of a server, the dial (bounded by
//! `dialTimeout`, with TCP keep-alive), the PROXY protocol header and TLS towards the backend when
//! configured, then bytes copied both ways until both sides are done.
//!
//! Half-close is propagated: when one side ends its stream, the other side's write half is shut down, and
//! the remaining direction gets `terminationDelay` to finish (Traefik's semantics; a negative delay waits
//! as long as the other side keeps it open). Dead peers are found by TCP keep-alive on both sockets.

pub mod hello;
pub mod prefixed;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::table::tcp::{InFlightSlot, TcpMiddleware, TcpRoute, TcpServerTarget, TcpTransport};

/// Keep-alive period on client sockets of TCP routes (Go's default for accepted connections, Traefik's).
pub const CLIENT_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Copy buffer per direction.
const COPY_BUF: usize = 32 * 1024;

/// Where the connection came from and arrived at (after the entrypoint's PROXY protocol, if any).
#[derive(Clone, Copy, Debug)]
pub struct Addresses {
    /// The client.
    pub client: SocketAddr,
    /// The address the client connected to.
    pub local: SocketAddr,
}

/// Serves `client` (already past TLS termination, or raw for plain and passthrough routes) with `route`.
pub async fn serve<C>(route: Arc<TcpRoute>, client: C, addrs: Addresses)
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
{
    let Some(_slots) = admit(&route, addrs.client) else {
        tracing::debug!(router = %route.name, client = %addrs.client, "connection refused by a TCP middleware");
        return;
    };
    let Some((server, transport)) = route.service.pick() else {
        tracing::debug!(router = %route.name, "TCP service has no server");
        return;
    };
    let transport = transport.clone();
    match connect(server, &transport, addrs).await {
        Ok(Backend::Plain(b)) => splice(client, b, transport.termination_delay).await,
        Ok(Backend::Tls(b)) => splice(client, *b, transport.termination_delay).await,
        Err(e) => {
            tracing::debug!(router = %route.name, server = %server.address, "TCP backend unreachable: {e}")
        }
    }
}

/// Runs the route's middlewares in order; `None` when one refuses the client. The returned slots are held
/// for the connection's life.
fn admit(route: &TcpRoute, client: SocketAddr) -> Option<Vec<InFlightSlot>> {
    let ip = client.ip().to_canonical();
    let mut slots = Vec::new();
    for m in route.middlewares.iter() {
        match &**m {
            TcpMiddleware::IpAllowList(_) if !m.allows(ip) => return None,
            TcpMiddleware::IpAllowList(_) => {}
            TcpMiddleware::InFlightConn(_) => slots.push(m.acquire(ip)?),
        }
    }
    Some(slots)
}

enum Backend {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("dial timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("bad server name `{0}`")]
    Name(String),
}

/// Dials `server`, sends the PROXY header and makes the TLS handshake, all within `dialTimeout`.
async fn connect(
    server: &TcpServerTarget,
    t: &TcpTransport,
    addrs: Addresses,
) -> Result<Backend, ConnectError> {
    let work = async {
        let mut s = TcpStream::connect(&*server.address).await?;
        let _ = s.set_nodelay(true);
        if let Some(k) = t.keep_alive {
            let _ = socket2::SockRef::from(&s)
                .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(k).with_interval(k));
        }
        if let Some(v) = t.proxy_protocol {
            s.write_all(&crate::proxy_protocol::encode(v, addrs.client, addrs.local))
                .await?;
        }
        let Some(cfg) = t.tls.as_ref().filter(|_| server.tls) else {
            return Ok(Backend::Plain(s));
        };
        let host = match &t.server_name {
            Some(n) => n.clone(),
            None => host_of(&server.address).to_string(),
        };
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|_| ConnectError::Name(host))?;
        let tls = tokio_rustls::TlsConnector::from(cfg.clone())
            .connect(name, s)
            .await?;
        Ok(Backend::Tls(Box::new(tls)))
    };
    match tokio::time::timeout(t.dial_timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout(t.dial_timeout)),
    }
}

/// The host part of `host:port` (`[v6]:port` unbracketed).
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Copies both ways until both directions end; once one does, the other gets `delay` (None: unbounded).
pub async fn splice<A, B>(a: A, b: B, delay: Option<Duration>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (ar, mut aw) = tokio::io::split(a);
    let (br, mut bw) = tokio::io::split(b);
    let up = async move {
        let r = tokio::io::copy_buf(&mut BufReader::with_capacity(COPY_BUF, ar), &mut bw).await;
        let _ = bw.shutdown().await;
        r
    };
    let down = async move {
        let r = tokio::io::copy_buf(&mut BufReader::with_capacity(COPY_BUF, br), &mut aw).await;
        let _ = aw.shutdown().await;
        r
    };
    tokio::pin!(up, down);
    let rest = tokio::select! {
        _ = &mut up => futures_util::future::Either::Left(down),
        _ = &mut down => futures_util::future::Either::Right(up),
    };
    match delay {
        Some(d) => {
            let _ = tokio::time::timeout(d, rest).await;
        }
        None => {
            let _ = rest.await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn host_of_addresses() {
        assert_eq!(host_of("db.example:5432"), "db.example");
        assert_eq!(host_of("[::1]:443"), "::1");
        assert_eq!(host_of("10.0.0.1:80"), "10.0.0.1");
    }

    #[tokio::test]
    async fn splice_propagates_half_close_and_bounds_the_rest() {
        let (mut client, proxy_a) = tokio::io::duplex(1024);
        let (proxy_b, mut server) = tokio::io::duplex(1024);
        let task = tokio::spawn(splice(proxy_a, proxy_b, Some(Duration::from_millis(200))));
        client.write_all(b"ping").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ping", "the server sees the data, then EOF");
        // The server never closes: the delay ends the copy anyway.
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
