//! Hostile clients and misbehaving backends against the header rewriting of the proxy path: spoofed
//! forwarded headers, `Connection` tokens that try to remove headers added later, and backends that send
//! interim (`1xx`), unsolicited `101` or `HTTP/1.0` answers. Every request is written on a raw socket so
//! that the exact bytes (duplicate names, underscores, `Connection` lists) reach swarmgate; every read
//! has a deadline.

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose), and tests read and
// write fixture files with std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{Backend, Gate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DEADLINE: Duration = Duration::from_secs(10);

fn lb(name: &str, url: &str) -> String {
    format!("    {name}:\n      loadBalancer:\n        servers:\n          - url: \"{url}\"\n")
}

/// One response as a raw client saw it: the interim (`1xx`) heads before it, its head, its body.
#[derive(Debug)]
struct Raw {
    interim: Vec<String>,
    head: String,
    body: String,
}

impl Raw {
    fn status_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }

    fn status(&self) -> u16 {
        status_of(&self.head)
    }
}

fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Reads heads until a final one (interim `1xx` other than `101` are collected), then its
/// `Content-Length` body. `buf` keeps bytes read past the response, for the next one.
async fn read_raw(s: &mut TcpStream, buf: &mut Vec<u8>) -> Raw {
    let mut interim = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            fill(s, buf).await;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let status = status_of(&head);
        if (100..200).contains(&status) && status != 101 {
            interim.push(head);
            continue;
        }
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0);
        while buf.len() < len {
            fill(s, buf).await;
        }
        let body = String::from_utf8_lossy(&buf[..len]).into_owned();
        buf.drain(..len);
        return Raw {
            interim,
            head,
            body,
        };
    }
}

async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    let n = tokio::time::timeout(DEADLINE, s.read(&mut chunk))
        .await
        .expect("read deadline")
        .expect("read");
    assert!(
        n > 0,
        "connection closed; read so far: {}",
        String::from_utf8_lossy(buf)
    );
    buf.extend_from_slice(&chunk[..n]);
}

/// Sends one raw request on a new connection and reads the answer.
async fn exchange(addr: SocketAddr, request: &str) -> Raw {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    read_raw(&mut s, &mut Vec::new()).await
}

/// A backend that answers every request head it reads with `answer` (on the same connection, for as long
/// as the peer keeps it open).
async fn raw_backend(answer: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..i + 4);
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

/// Every header of Traefik's forwarded set (`forwardedheaders.XHeadersSet`), RFC 7239 `Forwarded`, and
/// underscore spellings (which some backends, e.g. CGI-style ones, read as the dashed name).
const SPOOFED: &[&str] = &[
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Forwarded-Server",
    "X-Forwarded-Prefix",
    "X-Forwarded-Uri",
    "X-Forwarded-Method",
    "X-Forwarded-Tls-Client-Cert",
    "X-Forwarded-Tls-Client-Cert-Info",
    "X-Forwarded-Scheme",
    "X-Scheme",
    "X-Real-Ip",
    "Forwarded",
    "X_Forwarded_Tls_Client_Cert",
    "X_Forwarded_For",
    "X-Forwarded_Method",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_peers_cannot_set_any_forwarded_header() {
    let a = Backend::start("A").await;
    // `plain` has no middleware; `mw` runs a chain: both paths must clean the same set.
    let dynamic = format!(
        "http:\n  routers:\n    plain:\n      rule: Host(`f.test`)\n      service: s\n    mw:\n      rule: Host(`m.test`)\n      service: s\n      middlewares: [tag]\n  middlewares:\n    tag:\n      headers:\n        customRequestHeaders:\n          X-Tag: chained\n  services:\n{}",
        lb("s", &a.url)
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    for host in ["f.test", "m.test"] {
        let mut req = format!("GET /p HTTP/1.1\r\nHost: {host}\r\n");
        for (i, name) in SPOOFED.iter().enumerate() {
            req.push_str(&format!("{name}: spoofed-{i}\r\n"));
        }
        req.push_str("Connection: close\r\n\r\n");
        let r = exchange(gate.web(), &req).await;
        assert_eq!(r.status(), 200, "{host}: {r:?}");
        let body = r.body.to_ascii_lowercase();
        assert!(
            !body.contains("spoofed"),
            "{host}: a client's forwarded header reached the backend:\n{}",
            r.body
        );
        // Ours are there instead.
        assert!(body.contains("x-forwarded-for: 127.0.0.1\n"), "{}", r.body);
        assert!(body.contains("x-real-ip: 127.0.0.1\n"), "{}", r.body);
        assert!(body.contains("x-forwarded-proto: http\n"), "{}", r.body);
        assert!(
            body.contains(&format!("x-forwarded-host: {host}\n")),
            "{}",
            r.body
        );
    }

    // A trusted peer's values pass (Traefik's `forwardedHeaders.trustedIPs`).
    let trusted = Gate::with_dynamic(
        &dynamic,
        &["--entrypoints.web.forwardedHeaders.trustedIPs=127.0.0.1/32"],
    );
    let r = exchange(
        trusted.web(),
        "GET / HTTP/1.1\r\nHost: f.test\r\nX-Forwarded-Tls-Client-Cert: from-proxy\r\nX-Forwarded-For: 10.9.9.9\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        r.body.contains("X-Forwarded-Tls-Client-Cert: from-proxy"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("X-Forwarded-For: 10.9.9.9, 127.0.0.1\n"),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_tokens_cannot_remove_headers_added_by_the_proxy() {
    let a = Backend::start("A").await;
    let dynamic = format!(
        "http:\n  routers:\n    h:\n      rule: Host(`h.test`)\n      service: s\n      middlewares: [routed]\n    p:\n      rule: Host(`p.test`)\n      service: s\n      middlewares: [strip]\n    plain:\n      rule: Host(`x.test`)\n      service: s\n    fa:\n      rule: Host(`fa.test`)\n      service: s\n      middlewares: [auth]\n  middlewares:\n    auth:\n      forwardAuth:\n        address: \"{}/auth\"\n        authResponseHeaders: [Content-Type]\n    routed:\n      headers:\n        customRequestHeaders:\n          X-Routed: by-gateway\n    strip:\n      stripPrefix:\n        prefixes: [\"/api\"]\n  services:\n{}",
        a.url,
        lb("s", &a.url)
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);

    // forwardAuth's `authResponseHeaders` take the same path: the auth server's (whoami's) Content-Type
    // is copied into the request and survives the client's Connection token naming it.
    let r = exchange(
        gate.web(),
        "GET / HTTP/1.1\r\nHost: fa.test\r\nConnection: Content-Type\r\n\r\n",
    )
    .await;
    assert_eq!(r.status(), 200, "{r:?}");
    assert!(r.body.contains("GET / HTTP/1.1"), "{}", r.body);
    assert!(
        r.body.contains("Content-Type: text/plain; charset=utf-8\n"),
        "{}",
        r.body
    );

    // A header a `headers` middleware adds survives a client's Connection token naming it; the client's
    // own hop-by-hop header named there is still removed.
    let r = exchange(
        gate.web(),
        "GET / HTTP/1.1\r\nHost: h.test\r\nConnection: X-Routed, X-Mine\r\nX-Mine: 1\r\nX-Routed: from-client\r\n\r\n",
    )
    .await;
    assert_eq!(r.status(), 200, "{r:?}");
    assert!(r.body.contains("X-Routed: by-gateway\n"), "{}", r.body);
    assert!(!r.body.contains("X-Mine"), "{}", r.body);
    assert!(!r.body.contains("from-client"), "{}", r.body);

    // The same for the `X-Forwarded-Prefix` that stripPrefix adds.
    let r = exchange(
        gate.web(),
        "GET /api/x HTTP/1.1\r\nHost: p.test\r\nConnection: X-Forwarded-Prefix\r\n\r\n",
    )
    .await;
    assert!(r.body.contains("GET /x HTTP/1.1"), "{}", r.body);
    assert!(r.body.contains("X-Forwarded-Prefix: /api\n"), "{}", r.body);

    // Ours: Connection cannot name them away, also not in a list with several values.
    let r = exchange(
        gate.web(),
        "GET / HTTP/1.1\r\nHost: x.test\r\nConnection: keep-alive\r\nConnection: X-Forwarded-For, X-Real-Ip, X-Forwarded-Host, X-Forwarded-Proto, X-Forwarded-Port, X-Forwarded-Server\r\n\r\n",
    )
    .await;
    for h in [
        "X-Forwarded-For: 127.0.0.1\n",
        "X-Real-Ip: 127.0.0.1\n",
        "X-Forwarded-Host: x.test\n",
        "X-Forwarded-Proto: http\n",
        "X-Forwarded-Port: ",
        "X-Forwarded-Server: ",
    ] {
        assert!(r.body.contains(h), "missing {h}: {}", r.body);
    }

    // A trusted proxy's X-Forwarded-For chain cannot be cut by its client's Connection header.
    let trusted = Gate::with_dynamic(
        &dynamic,
        &["--entrypoints.web.forwardedHeaders.trustedIPs=127.0.0.1/32"],
    );
    let r = exchange(
        trusted.web(),
        "GET / HTTP/1.1\r\nHost: x.test\r\nX-Forwarded-For: 10.9.9.9\r\nConnection: X-Forwarded-For\r\n\r\n",
    )
    .await;
    assert!(
        r.body.contains("X-Forwarded-For: 10.9.9.9, 127.0.0.1\n"),
        "{}",
        r.body
    );

    // Upgrades still get `Connection: Upgrade` and `Upgrade` through, and the tunnel works; the
    // middleware's header is there too.
    let mut s = TcpStream::connect(gate.web()).await.expect("connect");
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: h.test\r\nConnection: Upgrade, X-Routed\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.expect("write");
    let mut buf = Vec::new();
    let r = read_raw(&mut s, &mut buf).await;
    assert_eq!(r.status(), 101, "{r:?}");
    s.write_all(b"ping").await.expect("write");
    while buf.len() < 4 {
        fill(&mut s, &mut buf).await;
    }
    assert_eq!(&buf[..4], b"ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_103_is_passed_over_and_its_final_response_served() {
    // hyper 1.x's server cannot write 1xx responses from a handler, so Early Hints are not forwarded (see
    // docs/differences.md); what must hold is that the final answer after a 103 arrives whole and the
    // client connection stays usable.
    let backend = raw_backend(
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
    )
    .await;
    let dynamic = format!(
        "http:\n  routers:\n    r:\n      rule: Host(`e.test`)\n      service: s\n  services:\n{}",
        lb("s", &format!("http://{backend}"))
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    let mut s = TcpStream::connect(gate.web()).await.expect("connect");
    let mut buf = Vec::new();
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: e.test\r\n\r\n")
            .await
            .expect("write");
        let r = read_raw(&mut s, &mut buf).await;
        assert_eq!(r.status(), 200, "{r:?}");
        assert_eq!(r.body, "final");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "hyper 1.12's server cannot send 1xx responses (docs/differences.md)"]
async fn a_backend_103_reaches_the_client() {
    let backend = raw_backend(
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
    )
    .await;
    let dynamic = format!(
        "http:\n  routers:\n    r:\n      rule: Host(`e.test`)\n      service: s\n  services:\n{}",
        lb("s", &format!("http://{backend}"))
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    let r = exchange(gate.web(), "GET / HTTP/1.1\r\nHost: e.test\r\n\r\n").await;
    assert_eq!(r.interim.len(), 1, "{r:?}");
    assert!(r.interim[0].starts_with("HTTP/1.1 103"), "{r:?}");
    assert_eq!(r.status(), 200, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsolicited_or_mismatched_101_is_a_bad_gateway() {
    let backend = raw_backend(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    )
    .await;
    let dynamic = format!(
        "http:\n  routers:\n    r:\n      rule: Host(`u.test`)\n      service: s\n  services:\n{}",
        lb("s", &format!("http://{backend}"))
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    // No upgrade asked for.
    let r = exchange(gate.web(), "GET / HTTP/1.1\r\nHost: u.test\r\n\r\n").await;
    assert_eq!(r.status(), 502, "{r:?}");
    // WebSocket asked for, h2c answered (Go's ReverseProxy: "backend tried to switch protocol").
    let r = exchange(
        gate.web(),
        "GET / HTTP/1.1\r\nHost: u.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert_eq!(r.status(), 502, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_backend_is_answered_to_clients_in_their_own_version() {
    let backend =
        raw_backend(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok")
            .await;
    let dynamic = format!(
        "http:\n  routers:\n    r:\n      rule: Host(`o.test`)\n      service: s\n  services:\n{}",
        lb("s", &format!("http://{backend}"))
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    let mut s = TcpStream::connect(gate.web()).await.expect("connect");
    let mut buf = Vec::new();
    // Three requests on one client connection: HTTP/1.1 answers, kept alive.
    for i in 0..3 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: o.test\r\n\r\n")
            .await
            .expect("write");
        let r = read_raw(&mut s, &mut buf).await;
        assert!(r.status_line().starts_with("HTTP/1.1 200"), "{i}: {r:?}");
        assert_eq!(r.body, "ok");
        assert!(
            !r.head.to_ascii_lowercase().contains("connection: close"),
            "{i}: {r:?}"
        );
    }
    // An HTTP/1.0 client still gets HTTP/1.0.
    let r = exchange(gate.web(), "GET / HTTP/1.0\r\nHost: o.test\r\n\r\n").await;
    assert!(r.status_line().starts_with("HTTP/1.0 200"), "{r:?}");
}
