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

// ---------------------------------------------------------------------------------------------------
// Behaviours of real applications, for the task-churn and keep-alive tests: what a process does on
// SIGTERM, and keep-alive connections closed by the server. Selected by flags of the `whoami` binary or
// by environment (`WHOAMI_ON_SIGTERM`, `WHOAMI_KEEPALIVE`), so a Swarm service sets them with `--env`.

/// What the process does on SIGTERM (`docker stop`, a Swarm task being retired).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnTerm {
    /// Nothing (the default: as PID 1 without a handler, the process ignores SIGTERM until SIGKILL).
    #[default]
    Ignore,
    /// Exit at once, closing every connection (most applications).
    Exit,
    /// Keep serving for this long (new connections too), then exit (an application with a drain delay).
    Drain(std::time::Duration),
}

/// How the server treats keep-alive connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeepAlive {
    /// As hyper does (HTTP/1.1 and h2, idle connections kept).
    #[default]
    Normal,
    /// Answer with keep-alive, then read nothing more and close the connection this long after the answer:
    /// a request sent on it meanwhile is lost (the worst case of a server's idle timeout).
    CloseAfter(std::time::Duration),
    /// Close right after each answer, without `Connection: close` (the client learns it from the FIN).
    CloseEach,
}

/// The behaviour modes of one whoami process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Modes {
    /// On SIGTERM.
    pub on_term: OnTerm,
    /// Keep-alive connections.
    pub keepalive: KeepAlive,
}

impl Modes {
    /// Parses `--on-sigterm` values: `ignore`, `exit`, `drain:<go duration>`.
    pub fn parse_on_term(v: &str) -> Result<OnTerm, String> {
        match v {
            "" | "ignore" => Ok(OnTerm::Ignore),
            "exit" => Ok(OnTerm::Exit),
            _ => match v.strip_prefix("drain:") {
                Some(d) => parse_go_duration(d)
                    .map(OnTerm::Drain)
                    .map_err(|e| format!("on-sigterm `{v}`: {e}")),
                None => Err(format!(
                    "on-sigterm `{v}`: use ignore, exit or drain:<duration>"
                )),
            },
        }
    }

    /// Parses `--keepalive` values: `normal`, `close-each`, `close-after:<go duration>`.
    pub fn parse_keepalive(v: &str) -> Result<KeepAlive, String> {
        match v {
            "" | "normal" => Ok(KeepAlive::Normal),
            "close-each" => Ok(KeepAlive::CloseEach),
            _ => match v.strip_prefix("close-after:") {
                Some(d) => parse_go_duration(d)
                    .map(KeepAlive::CloseAfter)
                    .map_err(|e| format!("keepalive `{v}`: {e}")),
                None => Err(format!(
                    "keepalive `{v}`: use normal, close-each or close-after:<duration>"
                )),
            },
        }
    }

    /// The modes from `WHOAMI_ON_SIGTERM` and `WHOAMI_KEEPALIVE` (unset: the defaults).
    pub fn from_env() -> Result<Modes, String> {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        Ok(Modes {
            on_term: Modes::parse_on_term(&var("WHOAMI_ON_SIGTERM"))?,
            keepalive: Modes::parse_keepalive(&var("WHOAMI_KEEPALIVE"))?,
        })
    }
}

/// Serves on `listener` with `modes.keepalive` until `cancel` ([`serve`] when it is `Normal`).
pub async fn serve_with(
    listener: TcpListener,
    name: String,
    modes: Modes,
    cancel: CancellationToken,
) {
    if modes.keepalive == KeepAlive::Normal {
        return serve(listener, name, cancel).await;
    }
    let st = Arc::new(State {
        name,
        hostname: std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()),
        health: AtomicU16::new(200),
    });
    loop {
        let (stream, _) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
        };
        let _ = stream.set_nodelay(true);
        let (st, stop) = (st.clone(), cancel.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = raw_connection(stream, &st, modes.keepalive) => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

/// Waits for the process's stop: Ctrl-C, or SIGTERM as `on_term` says (returns when the process should
/// exit; with `Ignore`, SIGTERM does not end the wait).
pub async fn stop_signal(on_term: OnTerm) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = term.recv() => match on_term {
                    OnTerm::Ignore => continue,
                    OnTerm::Exit => return,
                    OnTerm::Drain(d) => {
                        println!("whoami: SIGTERM, serving {d:?} more, then exiting");
                        tokio::time::sleep(d).await;
                        return;
                    }
                },
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = on_term;
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `whoami healthcheck`: `GET /health` on `127.0.0.1:port`; exit code 0 when it answers 200, else 1. Usable
/// as an exec-form `HEALTHCHECK CMD` in a `FROM scratch` image (no shell, no curl).
pub fn healthcheck(port: u16) -> i32 {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(2);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
        return 1;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let req = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return 1;
    }
    let mut head = [0u8; 12];
    match s.read_exact(&mut head) {
        Ok(()) if head.starts_with(b"HTTP/1.1 200") => 0,
        _ => 1,
    }
}

/// One connection of the keep-alive modes: a minimal HTTP/1.1 exchange loop (request head, a
/// `Content-Length` or chunked body, a plain answer with keep-alive), then the mode's close.
async fn raw_connection(mut stream: tokio::net::TcpStream, st: &State, mode: KeepAlive) {
    use tokio::io::AsyncWriteExt;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let Some((line, body_bytes)) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        let text = format!(
            "Name: {}\nHostname: {}\n{line}\nBody-Bytes: {body_bytes}\n",
            st.name, st.hostname
        );
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        if stream.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
        match mode {
            KeepAlive::CloseEach => return,
            KeepAlive::CloseAfter(d) => {
                // Reads nothing more: a request sent on this connection now is lost when it closes.
                tokio::time::sleep(d).await;
                return;
            }
            KeepAlive::Normal => {}
        }
    }
}

/// Reads one request from `stream` (leftover bytes kept in `buf`): its request line and body size.
async fn read_request(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(String, usize)> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 || !fill(stream, buf).await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(buf.get(..head_end)?).to_string();
    buf.drain(..head_end);
    let line = head.lines().next().unwrap_or_default().to_string();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let len = if chunked {
        read_chunked(stream, buf).await?
    } else {
        let n: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < n {
            if !fill(stream, buf).await {
                return None;
            }
        }
        buf.drain(..n);
        n
    };
    Some((line, len))
}

/// Reads a chunked body (no trailers expected); returns its size.
async fn read_chunked(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    let mut total = 0;
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            if !fill(stream, buf).await {
                return None;
            }
        };
        let size_text = String::from_utf8_lossy(buf.get(..line_end)?).to_string();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        let need = line_end + 2 + size + 2;
        while buf.len() < need {
            if !fill(stream, buf).await {
                return None;
            }
        }
        buf.drain(..need);
        total += size;
        if size == 0 {
            return Some(total);
        }
    }
}

/// Appends what the stream has to `buf`; false at EOF or error.
async fn fill(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> bool {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            true
        }
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

    #[test]
    fn modes_parse() {
        assert_eq!(Modes::parse_on_term("exit"), Ok(OnTerm::Exit));
        assert_eq!(
            Modes::parse_on_term("drain:2s"),
            Ok(OnTerm::Drain(std::time::Duration::from_secs(2)))
        );
        assert_eq!(Modes::parse_on_term(""), Ok(OnTerm::Ignore));
        assert!(Modes::parse_on_term("drain").is_err());
        assert_eq!(
            Modes::parse_keepalive("close-each"),
            Ok(KeepAlive::CloseEach)
        );
        assert_eq!(
            Modes::parse_keepalive("close-after:1s"),
            Ok(KeepAlive::CloseAfter(std::time::Duration::from_secs(1)))
        );
        assert!(Modes::parse_keepalive("close").is_err());
    }
}
