//! PROXY protocol through the real binary, against nginx (`listen ... proxy_protocol`, answering with
//! `$proxy_protocol_addr`): v1 from the older `loadBalancer.proxyProtocol`, v2 from a TCP serversTransport
//! (Traefik v3.5); and the entrypoint's `proxyProtocol.trustedIPs` for TCP and HTTP routers, from a trusted
//! peer (its header's address is the client) and an untrusted one (the header is dropped, the peer is the
//! client), as Traefik does.

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose), and tests read and
// write fixture files with std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

#[path = "support/nginx.rs"]
mod nginx;
mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use nginx::Nginx;
use support::{poll_until, Backend, Gate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// nginx answering `pp=<$proxy_protocol_addr>` on a `proxy_protocol` listener; killed on drop.
async fn nginx_proxy_protocol(port: u16) -> Nginx {
    let server = format!(
        r#"server {{
    listen 127.0.0.1:{port} proxy_protocol;
    location / {{ return 200 "pp=$proxy_protocol_addr\n"; }}
  }}"#
    );
    Nginx::start(|_| server.clone(), port).await
}

/// Sends `preamble` then an HTTP/1.0 GET from `source` to `addr`; the whole answer, or "" on failure.
async fn request_from(source: IpAddr, addr: SocketAddr, preamble: &[u8]) -> String {
    let work = async {
        let sock = tokio::net::TcpSocket::new_v4().ok()?;
        sock.bind(SocketAddr::new(source, 0)).ok()?;
        let mut s = sock.connect(addr).await.ok()?;
        s.write_all(preamble).await.ok()?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: pp.test\r\n\r\n")
            .await
            .ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        Some(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn gate(dynamic: &str, extra: &[&str], eps: usize) -> Gate {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dynamic.yml");
    std::fs::write(&file, dynamic).unwrap();
    let mut args = vec![
        "--entrypoints.web.address=127.0.0.1:0".to_string(),
        format!("--providers.file.filename={}", file.display()),
        "--providers.providersThrottleDuration=50ms".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Gate::start_in(dir, &args, eps)
}

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const OTHER_LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
const HEADER_V1: &[u8] = b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 80\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_see_the_client_address_in_v1_and_v2_and_entrypoints_honour_trusted_peers() {
    let port = support::free_port();
    let _nginx = nginx_proxy_protocol(port).await;
    let g = gate(
        &format!(
            r#"tcp:
  routers:
    v1:
      entryPoints: [web]
      rule: "HostSNI(`*`)"
      service: v1
    v2:
      entryPoints: [v2, edge]
      rule: "HostSNI(`*`)"
      service: v2
  services:
    v1:
      loadBalancer:
        proxyProtocol:
          version: 1
        servers:
          - address: "127.0.0.1:{port}"
    v2:
      loadBalancer:
        serversTransport: pp2
        servers:
          - address: "127.0.0.1:{port}"
  serversTransports:
    pp2:
      proxyProtocol:
        version: 2
"#
        ),
        &[
            "--entrypoints.v2.address=127.0.0.1:0",
            "--entrypoints.edge.address=127.0.0.1:0",
            "--entrypoints.edge.proxyProtocol.trustedIPs=127.0.0.1",
        ],
        3,
    );
    let (web, v2, edge) = (g.web(), g.ep("v2"), g.ep("edge"));
    let ok = poll_until(Duration::from_secs(10), || async {
        request_from(OTHER_LOOPBACK, web, b"")
            .await
            .contains("pp=127.0.0.2")
    })
    .await;
    assert!(ok, "v1 to nginx never worked:\n{}", g.logs());
    // v2 from the transport: nginx sees the client's own address.
    let r = request_from(OTHER_LOOPBACK, v2, b"").await;
    assert!(r.contains("pp=127.0.0.2"), "{r}");
    // A trusted peer's header gives the client's address, passed on to the backend.
    let r = request_from(LOOPBACK, edge, HEADER_V1).await;
    assert!(r.contains("pp=203.0.113.7"), "{r}");
    let v2_header = swarmgate::proxy_protocol::encode(
        swarmgate::proxy_protocol::Version::V2,
        "[2001:db8::7]:1234".parse().unwrap(),
        "[2001:db8::1]:80".parse().unwrap(),
    );
    let r = request_from(LOOPBACK, edge, &v2_header).await;
    assert!(r.contains("pp=2001:db8::7"), "{r}");
    // Without a header, a trusted peer is the client.
    let r = request_from(LOOPBACK, edge, b"").await;
    assert!(r.contains("pp=127.0.0.1"), "{r}");
    // An untrusted peer's header is read and dropped: the peer is the client, and its request still works.
    let r = request_from(OTHER_LOOPBACK, edge, HEADER_V1).await;
    assert!(r.contains("pp=127.0.0.2"), "{r}");
    // A malformed header from a trusted peer closes the connection.
    let r = request_from(LOOPBACK, edge, b"PROXY TCP4 nonsense\r\n").await;
    assert!(r.is_empty(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routers_see_the_address_from_a_trusted_peers_header() {
    let backend = Backend::start("pp-http").await;
    let g = gate(
        &support::catch_all_config(&backend.url),
        &[
            "--entrypoints.web.proxyProtocol.trustedIPs=127.0.0.1",
            "--entrypoints.web.forwardedHeaders.insecure=false",
        ],
        1,
    );
    let web = g.web();
    let ok = poll_until(Duration::from_secs(10), || async {
        request_from(LOOPBACK, web, b"").await.contains("pp-http")
    })
    .await;
    assert!(ok, "HTTP route never served:\n{}", g.logs());
    let xff = |r: &str| {
        r.lines()
            .find_map(|l| l.strip_prefix("X-Forwarded-For: "))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let r = request_from(LOOPBACK, web, HEADER_V1).await;
    assert_eq!(xff(&r), "203.0.113.7", "{r}");
    let r = request_from(OTHER_LOOPBACK, web, HEADER_V1).await;
    assert_eq!(xff(&r), "127.0.0.2", "{r}");
}
