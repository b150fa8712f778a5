//! TCP routers through the real binary: plain TCP through `HostSNI(`*`)` to a TCP server that speaks first,
//! TLS passthrough to nginx (the client verifies nginx's certificate through swarmgate), TLS termination
//! routing by SNI between two backends, HTTP and TCP routers sharing one entrypoint, TCP middlewares, and
//! the TCP API.

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

use std::net::SocketAddr;
use std::time::Duration;

use nginx::Nginx;
use support::{get, poll_until, self_signed, tls_client, tls_get, Backend, Gate};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub mod tcp_support {
    //! A TCP server that speaks first (`hello from <tag>\n`), then echoes until the client half-closes.
    use super::*;

    /// Starts one on 127.0.0.1; returns its address.
    pub async fn banner_echo(tag: &str) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let tag = tag.to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let tag = tag.clone();
                tokio::spawn(async move {
                    let _ = s.write_all(format!("hello from {tag}\n").as_bytes()).await;
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                });
            }
        });
        addr
    }
}
use tcp_support::banner_echo;

/// Reads the banner, sends `msg`, half-closes, reads the echo to the end: (banner, echo).
/// `None` when any step fails or takes over 5 s.
async fn talk<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: S,
    msg: &str,
) -> Option<(String, String)> {
    let steps = async {
        let mut r = BufReader::new(s);
        let mut banner = String::new();
        r.read_line(&mut banner).await.ok()?;
        if banner.is_empty() {
            return None;
        }
        r.get_mut().write_all(msg.as_bytes()).await.ok()?;
        r.get_mut().shutdown().await.ok()?;
        let mut echo = String::new();
        r.read_to_string(&mut echo).await.ok()?;
        Some((banner.trim_end().to_string(), echo))
    };
    tokio::time::timeout(Duration::from_secs(5), steps)
        .await
        .ok()
        .flatten()
}

async fn plain_talk(addr: SocketAddr, msg: &str) -> Option<(String, String)> {
    let s = TcpStream::connect(addr).await.ok()?;
    talk(s, msg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_through_hostsni_star_reaches_a_server_that_speaks_first() {
    let echo = banner_echo("pg").await;
    let gate = Gate::with_dynamic(
        &format!(
            r#"tcp:
  routers:
    db:
      rule: "HostSNI(`*`)"
      service: db
  services:
    db:
      loadBalancer:
        servers:
          - address: "{echo}"
"#
        ),
        &[],
    );
    let web = gate.web();
    let ok = poll_until(Duration::from_secs(10), || async {
        plain_talk(web, "x").await.is_some()
    })
    .await;
    assert!(ok, "TCP route never served:\n{}", gate.logs());
    // The server speaks first (no HTTP or TLS router here: routed at once), and a half-close from the
    // client reaches it: the echo ends with the server's own close.
    let (banner, echo) = plain_talk(web, "ping\npong\n").await.unwrap();
    assert_eq!(banner, "hello from pg");
    assert_eq!(echo, "ping\npong\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_passthrough_client_verifies_the_backends_certificate() {
    let (cert, key) = self_signed(&["pass.test"]);
    let port = support::free_port();
    let certs = tempfile::tempdir().unwrap();
    std::fs::write(certs.path().join("c.pem"), &cert).unwrap();
    std::fs::write(certs.path().join("k.pem"), &key).unwrap();
    let cdir = certs.path().to_path_buf();
    let _nginx = Nginx::start(
        |_| {
            format!(
                r#"server {{
    listen 127.0.0.1:{port} ssl;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate {c}/c.pem;
    ssl_certificate_key {c}/k.pem;
    location / {{ return 200 "from nginx over tls\n"; }}
  }}"#,
                c = cdir.display()
            )
        },
        port,
    )
    .await;
    let gate = Gate::with_dynamic(
        &format!(
            r#"tcp:
  routers:
    pass:
      rule: "HostSNI(`pass.test`)"
      service: pass
      tls:
        passthrough: true
  services:
    pass:
      loadBalancer:
        servers:
          - address: "127.0.0.1:{port}"
"#
        ),
        &[],
    );
    let web = gate.web();
    // Only nginx's certificate is trusted: a handshake that succeeds went to nginx untouched.
    let cfg = tls_client(Some(&cert), &[b"http/1.1"], &[&rustls::version::TLS13]);
    let last = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let ok = poll_until(Duration::from_secs(10), || {
        let cfg = cfg.clone();
        let last = last.clone();
        async move {
            let seen = match tls_get(web, "pass.test", Some("/"), cfg).await {
                Ok(r) => format!("{:?}", r.reply.map(|r| r.body)),
                Err(e) => e,
            };
            let ok = seen.contains("from nginx over tls");
            *last.lock().unwrap() = seen;
            ok
        }
    })
    .await;
    assert!(
        ok,
        "passthrough failed: {}\n{}",
        last.lock().unwrap(),
        gate.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_termination_routes_by_sni_and_http_shares_the_entrypoint() {
    let a = banner_echo("a").await;
    let b = banner_echo("b").await;
    let http = Backend::start("web-http").await;
    let (cert_a, key_a) = self_signed(&["a.test"]);
    let (cert_b, key_b) = self_signed(&["b.test"]);
    let (cert_w, key_w) = self_signed(&["web.test"]);
    let dir = tempfile::tempdir().unwrap();
    let mut certs = String::new();
    for (n, c, k) in [
        ("a", &cert_a, &key_a),
        ("b", &cert_b, &key_b),
        ("w", &cert_w, &key_w),
    ] {
        let (cp, kp) = (
            dir.path().join(format!("{n}.crt")),
            dir.path().join(format!("{n}.key")),
        );
        std::fs::write(&cp, c).unwrap();
        std::fs::write(&kp, k).unwrap();
        certs.push_str(&format!(
            "    - certFile: {}\n      keyFile: {}\n",
            cp.display(),
            kp.display()
        ));
    }
    let gate = Gate::with_dynamic(
        &format!(
            r#"tls:
  certificates:
{certs}
http:
  routers:
    plain:
      rule: Host(`web.test`)
      service: h
    secure:
      rule: Host(`web.test`)
      service: h
      tls: {{}}
  services:
    h:
      loadBalancer:
        servers:
          - url: "{url}"
tcp:
  routers:
    a:
      rule: "HostSNI(`a.test`)"
      service: a
      tls: {{}}
    b:
      rule: "HostSNI(`b.test`)"
      service: b
      tls: {{}}
  services:
    a:
      loadBalancer:
        servers:
          - address: "{a}"
    b:
      loadBalancer:
        servers:
          - address: "{b}"
"#,
            url = http.url
        ),
        &[],
    );
    let web = gate.web();
    let talk_tls = |sni: &'static str, roots: String| async move {
        let cfg = tls_client(Some(&roots), &[], &[&rustls::version::TLS13]);
        let s = TcpStream::connect(web).await.ok()?;
        let name = rustls::pki_types::ServerName::try_from(sni).ok()?;
        let tls = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_rustls::TlsConnector::from(cfg).connect(name, s),
        )
        .await
        .ok()?
        .ok()?;
        talk(tls, "over tls").await
    };
    let ok = poll_until(Duration::from_secs(10), || {
        let c = cert_a.clone();
        async move { talk_tls("a.test", c).await.is_some() }
    })
    .await;
    assert!(ok, "TLS TCP route never served:\n{}", gate.logs());
    // Each SNI reaches its own backend, with swarmgate's certificate for that name.
    let (banner, echo) = talk_tls("a.test", cert_a.clone()).await.unwrap();
    assert_eq!(
        (banner.as_str(), echo.as_str()),
        ("hello from a", "over tls")
    );
    let (banner, _) = talk_tls("b.test", cert_b.clone()).await.unwrap();
    assert_eq!(banner, "hello from b");
    // The HTTPS router's host goes to HTTP over TLS; plain HTTP still reaches the HTTP router.
    let r = tls_get(
        web,
        "web.test",
        Some("/"),
        tls_client(Some(&cert_w), &[b"http/1.1"], &[&rustls::version::TLS13]),
    )
    .await
    .unwrap();
    assert_eq!(r.reply.unwrap().backend(), Some("web-http"));
    assert_eq!(get(web, "web.test", "/").await.backend(), Some("web-http"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_middlewares_and_api() {
    let echo = banner_echo("m").await;
    let gate = Gate::with_dynamic(
        &format!(
            r#"tcp:
  routers:
    allowed:
      entryPoints: [web]
      rule: "HostSNI(`*`)"
      service: s
      middlewares: [limit]
    blocked:
      entryPoints: [other]
      rule: "HostSNI(`*`)"
      service: s
      middlewares: [only-far]
    broken:
      rule: "HostSNI(`*`)"
      service: missing
  middlewares:
    limit:
      inFlightConn:
        amount: 1
    only-far:
      ipAllowList:
        sourceRange: ["192.0.2.0/24"]
  services:
    s:
      loadBalancer:
        servers:
          - address: "{echo}"
"#
        ),
        &[
            "--entrypoints.other.address=127.0.0.1:0",
            "--entrypoints.traefik.address=127.0.0.1:0",
            "--api.insecure=true",
            "--metrics.prometheus=true",
        ],
    );
    let web = gate.web();
    let ok = poll_until(Duration::from_secs(10), || async {
        plain_talk(web, "x").await.is_some()
    })
    .await;
    assert!(ok, "TCP route never served:\n{}", gate.logs());
    // inFlightConn 1: a second connection from the same IP while one is open is closed at once.
    // (The slot of the probe connection above is freed right after it closed: retry until it is.)
    let mut first = None;
    for _ in 0..100 {
        let mut c = BufReader::new(TcpStream::connect(web).await.unwrap());
        let mut banner = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read_line(&mut banner)).await;
        if banner == "hello from m\n" {
            first = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = first.expect("a first connection is served");
    // The open connection is counted on its entrypoint, as Traefik's `traefik_open_connections`.
    let open_line = r#"traefik_open_connections{entrypoint="web",protocol="TCP"} 1"#;
    let counted = poll_until(Duration::from_secs(5), || async {
        get(gate.ep("traefik"), "x", "/metrics")
            .await
            .body
            .contains(open_line)
    })
    .await;
    assert!(counted, "{open_line} not in /metrics");
    let mut second = TcpStream::connect(web).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), second.read_to_end(&mut buf))
        .await
        .expect("second connection closed in time");
    assert!(n.is_ok() && buf.is_empty(), "second connection got {buf:?}");
    drop(first);
    let zero = r#"traefik_open_connections{entrypoint="web",protocol="TCP"} 0"#;
    assert!(
        poll_until(Duration::from_secs(5), || async {
            get(gate.ep("traefik"), "x", "/metrics")
                .await
                .body
                .contains(zero)
        })
        .await,
        "{zero} not in /metrics once closed"
    );
    assert!(
        poll_until(Duration::from_secs(5), || async {
            plain_talk(web, "y").await.is_some()
        })
        .await,
        "the slot is freed when the first connection closes"
    );
    // ipAllowList: loopback is not in 192.0.2.0/24.
    let mut blocked = TcpStream::connect(gate.ep("other")).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), blocked.read_to_end(&mut buf))
        .await
        .expect("blocked connection closed in time");
    assert!(buf.is_empty());
    // The API lists the TCP items as Traefik does.
    let api = gate.ep("traefik");
    let routers: serde_json::Value =
        serde_json::from_str(&get(api, "x", "/api/tcp/routers").await.body).unwrap();
    let by = |name: &str| {
        routers
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(by("allowed@file")["status"], "enabled");
    assert_eq!(by("allowed@file")["service"], "s");
    assert_eq!(by("broken@file")["status"], "disabled");
    assert!(by("broken@file")["error"][0]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    let svc: serde_json::Value =
        serde_json::from_str(&get(api, "x", "/api/tcp/services/s@file").await.body).unwrap();
    assert_eq!(svc["status"], "enabled");
    assert_eq!(
        svc["usedBy"],
        serde_json::json!(["allowed@file", "blocked@file"])
    );
    let mws: serde_json::Value =
        serde_json::from_str(&get(api, "x", "/api/tcp/middlewares").await.body).unwrap();
    assert_eq!(mws.as_array().unwrap().len(), 2);
    let overview: serde_json::Value =
        serde_json::from_str(&get(api, "x", "/api/overview").await.body).unwrap();
    assert_eq!(overview["tcp"]["routers"]["total"], 3);
    assert_eq!(overview["tcp"]["routers"]["errors"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_backend_through_a_tcp_servers_transport_and_weighted_services() {
    let (secure, ca) = Backend::start_tls("tls-backend").await;
    let plain = Backend::start("plain-backend").await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let gate = Gate::with_dynamic(
        &format!(
            r#"tcp:
  routers:
    all:
      rule: "HostSNI(`*`)"
      service: both
  services:
    both:
      weighted:
        services:
          - name: secure
            weight: 1
          - name: plain
            weight: 1
    secure:
      loadBalancer:
        serversTransport: verified
        servers:
          - address: "{s}"
    plain:
      loadBalancer:
        servers:
          - address: "{p}"
  serversTransports:
    verified:
      dialTimeout: 2s
      tls:
        serverName: localhost
        rootCAs: ["{ca}"]
"#,
            s = secure.addr,
            p = plain.addr,
            ca = ca_file.display()
        ),
        &[],
    );
    let web = gate.web();
    let once = || async move {
        let mut s = TcpStream::connect(web).await.ok()?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .ok()?;
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .ok()?
            .ok()?;
        String::from_utf8_lossy(&out)
            .lines()
            .find_map(|l| l.strip_prefix("Name: ").map(str::to_string))
    };
    let ok = poll_until(Duration::from_secs(10), || async { once().await.is_some() }).await;
    assert!(ok, "TCP route never served:\n{}", gate.logs());
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        seen.insert(once().await.unwrap_or_default());
    }
    // Half the connections go to each child; the TLS one was verified against its CA and name.
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["plain-backend", "tls-backend"],
        "{}",
        gate.logs()
    );
}
