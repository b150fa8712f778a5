//! `whoami`: the tiny test backend used by the demo, the tests and the benchmarks (like containous/whoami).
//!
//! Answers every request with its name, host name, addresses, request line and headers. Extras:
//! - `GET /health` → 200 `OK` while healthy; `POST /health` with body `500` (any status) changes the answer;
//! - `?wait=250ms` delays the answer (slow backends, graceful-shutdown tests);
//! - `GET /data?size=N` → N bytes of text (large downloads);
//! - a request body is read to the end and its size reported as `Body-Bytes: N` (large uploads);
//! - `GET /bench` → a fixed 2-byte body, no headers echoed (load tests measure the proxy, not this server);
//! - any `Upgrade` request (WebSocket) → 101, then every byte received is echoed back.
//!
//! Not on any production path; kept small and dependency-free beyond hyper.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::types::parse_go_duration;

/// State of one whoami server.
struct State {
    name: String,
    hostname: String,
    health: AtomicU16,
}

/// Serves on `listener` until `cancel`, which also closes open connections. `name` appears in every
/// answer (`Name: …`).
pub async fn serve(listener: TcpListener, name: String, cancel: CancellationToken) {
    serve_inner(listener, name, None, cancel).await
}

/// Like [`serve`], over TLS with `tls` (ALPN h2 and http/1.1 as configured in it): the HTTPS test backend.
pub async fn serve_tls(
    listener: TcpListener,
    name: String,
    tls: Arc<rustls::ServerConfig>,
    cancel: CancellationToken,
) {
    serve_inner(
        listener,
        name,
        Some(tokio_rustls::TlsAcceptor::from(tls)),
        cancel,
    )
    .await
}

async fn serve_inner(
    listener: TcpListener,
    name: String,
    tls: Option<tokio_rustls::TlsAcceptor>,
    cancel: CancellationToken,
) {
    let state = Arc::new(State {
        name,
        hostname: std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()),
        health: AtomicU16::new(200),
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().ok();
        let st = state.clone();
        let svc = service_fn(move |req| answer(req, st.clone(), peer, local));
        let builder = builder.clone();
        let stop = cancel.clone();
        let tls = tls.clone();
        // Stopping the server drops its open connections too, like a killed process.
        tokio::spawn(async move {
            match tls {
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = stop.cancelled() => {}
                    }
                }
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = stop.cancelled() => {}
                    }
                }
            }
        });
    }
}

fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

async fn answer(
    mut req: Request<Incoming>,
    st: Arc<State>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/bench" {
        return Ok(Response::new(Full::new(Bytes::from_static(b"ok"))));
    }
    if let Some(wait) =
        query_param(req.uri().query(), "wait").and_then(|w| parse_go_duration(w).ok())
    {
        tokio::time::sleep(wait).await;
    }
    if req.headers().contains_key(header::UPGRADE) {
        return Ok(upgrade(&mut req));
    }
    Ok(match req.uri().path() {
        "/health" => health(req, &st).await,
        "/data" => data(&req),
        _ => echo(req, &st, peer, local).await,
    })
}

/// Accepts any upgrade (WebSocket included) and echoes the upgraded stream back.
fn upgrade(req: &mut Request<Incoming>) -> Response<Full<Bytes>> {
    let on_upgrade = hyper::upgrade::on(&mut *req);
    tokio::spawn(async move {
        if let Ok(up) = on_upgrade.await {
            let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
            let _ = tokio::io::copy(&mut r, &mut w).await;
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Some(u) = req.headers().get(header::UPGRADE) {
        h.insert(header::UPGRADE, u.clone());
    }
    if let Some(key) = req.headers().get("sec-websocket-key") {
        h.insert("sec-websocket-accept", websocket_accept(key.as_bytes()));
    }
    resp
}

/// `/health`: GET answers with the current status code; POST of a number sets it (health-check tests).
async fn health(req: Request<Incoming>, st: &State) -> Response<Full<Bytes>> {
    if req.method() == http::Method::POST {
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if let Some(code) = std::str::from_utf8(&body)
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
        {
            st.health.store(code, Ordering::Relaxed);
        }
        return Response::new(Full::new(Bytes::from_static(b"OK\n")));
    }
    let code = st.health.load(Ordering::Relaxed);
    let mut resp = Response::new(Full::new(Bytes::from(format!("{code}\n"))));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    resp
}

/// `/data?size=N`: N bytes of text (1 KiB by default, at most 1 GiB).
fn data(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let size: usize = query_param(req.uri().query(), "size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024)
        .min(1 << 30);
    let mut body = Vec::with_capacity(size);
    while body.len() < size {
        body.extend_from_slice(b"swarmgate whoami data line\n");
    }
    body.truncate(size);
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// Any other path: Traefik whoami's echo of the request, with the size of its body.
async fn echo(
    req: Request<Incoming>,
    st: &State,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> Response<Full<Bytes>> {
    let mut out = String::with_capacity(512);
    let _ = writeln!(out, "Name: {}", st.name);
    let _ = writeln!(out, "Hostname: {}", st.hostname);
    if let Some(l) = local {
        let _ = writeln!(out, "IP: {}", l.ip());
    }
    let _ = writeln!(out, "RemoteAddr: {peer}");
    let _ = writeln!(out, "{} {} {:?}", req.method(), req.uri(), req.version());
    for (k, v) in req.headers() {
        let _ = writeln!(
            out,
            "{}: {}",
            canonical(k.as_str()),
            String::from_utf8_lossy(v.as_bytes())
        );
    }
    let n = body_len(req.into_body()).await;
    if n > 0 {
        let _ = writeln!(out, "Body-Bytes: {n}");
    }
    let mut resp = Response::new(Full::new(Bytes::from(out)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Reads the body to the end, counting it (streams of any size; nothing is kept; an error ends the count).
async fn body_len(mut body: Incoming) -> u64 {
    let mut n: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    n += d.len() as u64;
                }
            }
            Err(_) => break,
        }
    }
    n
}

/// `Host` → `Host`, `x-forwarded-for` → `X-Forwarded-For`, as Go prints header names.
fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut up = true;
    for c in name.chars() {
        out.push(if up { c.to_ascii_uppercase() } else { c });
        up = c == '-';
    }
    out
}

/// RFC 6455 `Sec-WebSocket-Accept` for a client key.
fn websocket_accept(key: &[u8]) -> HeaderValue {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(key);
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let digest = h.finalize();
    HeaderValue::from_str(&base64(&digest)).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Standard base64 with padding (20 bytes here; not worth a dependency).
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let byte = |k: usize| u32::from(chunk.get(k).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                let sextet = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(T.get(sextet).map_or('=', |c| char::from(*c)));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// UDP echo mode (UDP proxy tests): answers every datagram with `<name> <sender address> <payload>`, so a
/// client sees which backend answered and from which proxy session (the sender address) it came.
pub async fn serve_udp(socket: tokio::net::UdpSocket, name: String, cancel: CancellationToken) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r { Ok(x) => x, Err(_) => continue },
        };
        let payload = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
        let answer = format!("{name} {peer} {payload}");
        let _ = socket.send_to(answer.as_bytes(), peer).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_accept_matches_rfc_example() {
        assert_eq!(
            websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical("x-forwarded-for"), "X-Forwarded-For");
        assert_eq!(canonical("host"), "Host");
    }
}
