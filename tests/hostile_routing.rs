//! Hostile clients against routing: the request must reach the router its authority and its cleaned
//! path name, and the backend must receive that same authority and path — never a second opinion that
//! a protected router would have claimed.
//!
//! Setup as an attacker finds it: router `admin` = `Host(`admin.test`)` + basicAuth, router `admin-path`
//! = `PathPrefix(`/admin`)` + basicAuth, both in front of backend `ADMIN`; router `public` =
//! `PathPrefix(`/`)`, the catch-all, in front of backend `PUBLIC`. HTTP/1 probes are raw bytes on a TCP
//! socket (absolute-form targets and duplicate headers are what ordinary clients will not send); HTTP/2
//! probes use hyper's HTTP/2 client over cleartext (prior knowledge). Every read has a deadline.

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

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{poll_until, Backend, Gate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `u:password` (`{SHA}` of `password`), as `Authorization: Basic`.
const CREDENTIALS: &str = "Basic dTpwYXNzd29yZA==";

struct Setup {
    gate: Gate,
    _admin: Backend,
    _public: Backend,
}

async fn setup(extra: &[&str]) -> Setup {
    let admin = Backend::start("ADMIN").await;
    let public = Backend::start("PUBLIC").await;
    let dynamic = format!(
        "http:
  routers:
    admin:
      rule: Host(`admin.test`)
      service: admin
      middlewares: [auth]
    admin-path:
      rule: PathPrefix(`/admin`)
      service: admin
      middlewares: [auth]
    public:
      rule: PathPrefix(`/`)
      service: public
    redir:
      rule: Host(`redir.test`)
      service: public
      middlewares: [to-https]
  middlewares:
    to-https:
      redirectScheme:
        scheme: https
    auth:
      basicAuth:
        users:
          - \"u:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\"
  services:
    admin:
      loadBalancer:
        servers:
          - url: \"{}\"
    public:
      loadBalancer:
        servers:
          - url: \"{}\"
",
        admin.url, public.url
    );
    let gate = Gate::with_dynamic(&dynamic, extra);
    let addr = gate.web();
    let ready = poll_until(Duration::from_secs(10), || async move {
        let a = raw(addr, "GET /admin HTTP/1.1\r\nHost: x.test\r\n").await;
        let p = raw(addr, "GET /p HTTP/1.1\r\nHost: x.test\r\n").await;
        a.status == 401 && p.backend() == Some("PUBLIC")
    })
    .await;
    assert!(ready, "routes never came up:\n{}", gate.logs());
    Setup {
        gate,
        _admin: admin,
        _public: public,
    }
}

/// An answer as seen on the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Everything after the status line: headers and body (the whoami echo when a backend answered).
    text: String,
}

impl Answer {
    /// The backend that answered (`Name:` line of the whoami echo).
    fn backend(&self) -> Option<&str> {
        self.echo("Name")
    }

    /// The value of line `name: value` in the whoami echo, e.g. the `Host` the backend received.
    fn echo(&self, name: &str) -> Option<&str> {
        let body = self.text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
    }

    /// The request line the backend received (`GET /path HTTP/1.1`).
    fn request_line(&self) -> Option<&str> {
        let body = self.text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        body.lines()
            .find(|l| l.starts_with("GET ") || l.starts_with("HEAD "))
    }
}

/// Sends `head` (request line and header lines, each ending in CRLF) plus `Connection: close` and the
/// blank line, then reads the whole answer (10 s deadline).
async fn raw(addr: SocketAddr, head: &str) -> Answer {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("{head}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Answer { status, text }
}

/// One HTTP/2 (cleartext, prior knowledge) GET of `uri` — its authority becomes `:authority` — with extra
/// header fields, e.g. a `host` that disagrees.
async fn h2_get(addr: SocketAddr, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let mut b = Request::get(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::new())).expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), send.send_request(req))
        .await
        .expect("answer in time")
        .expect("h2 response");
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes();
    let mut text = String::new();
    for (k, v) in &parts.headers {
        text.push_str(&format!(
            "\r\n{k}: {}",
            String::from_utf8_lossy(v.as_bytes())
        ));
    }
    text.push_str("\r\n\r\n");
    text.push_str(&String::from_utf8_lossy(&body));
    Answer {
        status: parts.status.as_u16(),
        text,
    }
}

fn assert_never_reached_a_backend(a: &Answer, what: &str) {
    assert!(
        a.backend().is_none(),
        "{what}: a backend answered: {}",
        a.text
    );
}

#[tokio::test]
async fn absolute_form_authority_decides_both_routing_and_the_forwarded_host() {
    let s = setup(&[]).await;
    let addr = s.gate.web();

    // Routed by the target's authority (public), so the backend must see that authority — not the
    // `Host: admin.test` an unauthenticated client put beside it.
    let a = raw(
        addr,
        "GET http://public.test/secret HTTP/1.1\r\nHost: admin.test\r\n",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.backend(), Some("PUBLIC"));
    assert_eq!(a.echo("Host"), Some("public.test"), "{}", a.text);
    assert_eq!(
        a.echo("X-Forwarded-Host"),
        Some("public.test"),
        "{}",
        a.text
    );
    assert_eq!(a.request_line(), Some("GET /secret HTTP/1.1"), "{}", a.text);
    assert!(!a.text.contains("admin.test"), "{}", a.text);

    // The other way round: the target names the protected host, so its router (and basicAuth) decide.
    let a = raw(
        addr,
        "GET http://admin.test/secret HTTP/1.1\r\nHost: public.test\r\n",
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.text);
    assert_never_reached_a_backend(&a, "absolute-form admin.test");

    // With credentials it reaches the admin backend, which sees admin.test.
    let a = raw(
        addr,
        &format!(
            "GET http://admin.test/secret HTTP/1.1\r\nHost: public.test\r\nAuthorization: {CREDENTIALS}\r\n"
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.backend(), Some("ADMIN"));
    assert_eq!(a.echo("Host"), Some("admin.test"), "{}", a.text);
    assert_eq!(a.echo("X-Forwarded-Host"), Some("admin.test"), "{}", a.text);

    // User info in the target's authority is an error (RFC 9110 §4.2.4), not a way to hide a host.
    let a = raw(
        addr,
        "GET http://admin.test@public.test/ HTTP/1.1\r\nHost: public.test\r\n",
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_never_reached_a_backend(&a, "user info in the target");
}

#[tokio::test]
async fn h2_authority_wins_over_a_host_field() {
    let s = setup(&[]).await;
    let addr = s.gate.web();

    let a = h2_get(addr, "http://public.test/secret", &[("host", "admin.test")]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.backend(), Some("PUBLIC"));
    assert_eq!(a.echo("Host"), Some("public.test"), "{}", a.text);
    assert_eq!(
        a.echo("X-Forwarded-Host"),
        Some("public.test"),
        "{}",
        a.text
    );
    assert!(!a.text.contains("admin.test"), "{}", a.text);

    let a = h2_get(addr, "http://admin.test/secret", &[("host", "public.test")]).await;
    assert_eq!(a.status, 401, "{}", a.text);
    assert_never_reached_a_backend(&a, "h2 :authority admin.test");

    // Two `host` fields beside `:authority`: refused like two Host headers in HTTP/1.
    let a = h2_get(
        addr,
        "http://public.test/",
        &[("host", "public.test"), ("host", "admin.test")],
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_never_reached_a_backend(&a, "h2 two host fields");
}

#[tokio::test]
async fn two_host_headers_are_refused_even_when_identical() {
    let s = setup(&[]).await;
    let addr = s.gate.web();
    for head in [
        "GET /secret HTTP/1.1\r\nHost: public.test\r\nHost: admin.test\r\n",
        "GET /secret HTTP/1.1\r\nHost: admin.test\r\nHost: public.test\r\n",
        // Go's net/http refuses any second Host line ("too many Host headers"), identical or not.
        "GET /secret HTTP/1.1\r\nHost: public.test\r\nHost: public.test\r\n",
        "GET http://public.test/ HTTP/1.1\r\nHost: public.test\r\nHost: admin.test\r\n",
        "GET /secret HTTP/1.0\r\nHost: public.test\r\nhost: public.test\r\n",
    ] {
        let a = raw(addr, head).await;
        assert_eq!(a.status, 400, "{head:?}: {}", a.text);
        assert_never_reached_a_backend(&a, head);
    }
}

#[tokio::test]
async fn invalid_host_syntax_is_refused_not_routed() {
    let s = setup(&[]).await;
    let addr = s.gate.web();
    for host in [
        "user@example.com",
        "admin.test@public.test",
        "example.com:abc",
        ":99999",
        "public.test:99999",
        "public.test:65536",
        ":80",
        "%61dmin.test",
        "admin.test,public.test",
        "public\ttest",
        "[::1",
        "[public.test]",
        "::1",
    ] {
        let a = raw(addr, &format!("GET /p HTTP/1.1\r\nHost: {host}\r\n")).await;
        assert_eq!(a.status, 400, "Host {host:?}: {}", a.text);
        assert_never_reached_a_backend(&a, host);
    }
    // A target authority gets the same check as a Host header.
    let a = raw(
        addr,
        "GET http://public.test:99999/p HTTP/1.1\r\nHost: public.test\r\n",
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    // A Host header that the target's authority replaces must still be a host.
    let a = raw(
        addr,
        "GET http://public.test/p HTTP/1.1\r\nHost: user@admin.test\r\n",
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
}

#[tokio::test]
async fn dot_segments_and_encoded_dots_reach_the_protected_path_router() {
    let s = setup(&[]).await;
    let addr = s.gate.web();
    for path in [
        "//admin",
        "/./admin",
        "/x/../admin",
        "/%2e/admin",
        "/.%2e/admin",
        "/%2E%2E/admin",
        "/x/%2e%2e/admin/",
        "///admin//",
        "/%61dmin",
    ] {
        // Without credentials: the protected router answers, not the catch-all.
        let a = raw(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: public.test\r\n"),
        )
        .await;
        assert_eq!(a.status, 401, "{path}: {}", a.text);
        assert_never_reached_a_backend(&a, path);
        // HTTP/2 takes the same path.
        let a = h2_get(addr, &format!("http://public.test{path}"), &[]).await;
        assert_eq!(a.status, 401, "h2 {path}: {}", a.text);
    }
    // With credentials the admin backend receives the cleaned path, not the raw one.
    for (path, forwarded) in [
        ("//admin", "/admin"),
        ("/x/../admin?q=1", "/admin?q=1"),
        ("/.%2e/admin", "/admin"),
        ("/x/%2e%2e/admin/", "/admin/"),
        ("/%61dmin//a/./b", "/admin/a/b"),
    ] {
        let a = raw(
            addr,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: public.test\r\nAuthorization: {CREDENTIALS}\r\n"
            ),
        )
        .await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        assert_eq!(a.backend(), Some("ADMIN"));
        assert_eq!(
            a.request_line(),
            Some(format!("GET {forwarded} HTTP/1.1").as_str()),
            "{path}: {}",
            a.text
        );
    }
    // Encoded separators stay encoded (one segment, as in Traefik): no traversal out of /x, and the hex
    // digits are upper-cased as Traefik's normalizePath does. Invalid escapes are refused.
    for (path, forwarded) in [
        ("/x/..%2fadmin", "/x/..%2Fadmin"),
        ("/x/..%5cadmin", "/x/..%5Cadmin"),
        ("/x%00/a;b", "/x%00/a;b"),
    ] {
        let a = raw(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: public.test\r\n"),
        )
        .await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        assert_eq!(a.backend(), Some("PUBLIC"), "{path}");
        assert_eq!(
            a.request_line(),
            Some(format!("GET {forwarded} HTTP/1.1").as_str()),
            "{path}: {}",
            a.text
        );
    }
    let a = raw(addr, "GET /admin%zz HTTP/1.1\r\nHost: public.test\r\n").await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_never_reached_a_backend(&a, "/admin%zz");
}

#[tokio::test]
async fn sanitize_path_false_keeps_the_raw_path_as_traefik_does() {
    let s = setup(&["--entrypoints.web.http.sanitizePath=false"]).await;
    let addr = s.gate.web();
    // Traefik with sanitizePath=false routes `/./admin` by that path: `PathPrefix(`/admin`)` does not
    // match, the catch-all does, and the backend gets the path as sent.
    for (path, forwarded) in [
        ("/./admin", "/./admin"),
        ("//admin", "//admin"),
        ("/x/../admin", "/x/../admin"),
        // Escapes are still normalized (Traefik's normalizePath always runs).
        ("/%2e/admin", "/./admin"),
    ] {
        let a = raw(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: public.test\r\n"),
        )
        .await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        assert_eq!(a.backend(), Some("PUBLIC"), "{path}");
        assert_eq!(
            a.request_line(),
            Some(format!("GET {forwarded} HTTP/1.1").as_str()),
            "{path}: {}",
            a.text
        );
    }
}

#[tokio::test]
async fn ordinary_requests_still_route() {
    let s = setup(&[]).await;
    let addr = s.gate.web();

    // Host with a port, upper case, a trailing dot: the Host rule still matches.
    for host in [
        "admin.test:80",
        "ADMIN.test",
        "admin.test.",
        "admin.test.:8080",
    ] {
        let a = raw(addr, &format!("GET / HTTP/1.1\r\nHost: {host}\r\n")).await;
        assert_eq!(a.status, 401, "Host {host}: {}", a.text);
    }
    let a = raw(
        addr,
        &format!("GET / HTTP/1.1\r\nHost: admin.test:8080\r\nAuthorization: {CREDENTIALS}\r\n"),
    )
    .await;
    assert_eq!(a.backend(), Some("ADMIN"), "{}", a.text);
    assert_eq!(a.echo("Host"), Some("admin.test:8080"), "{}", a.text);

    // IPv6 literal and IPv4 hosts, with and without a port, reach the catch-all with Host unchanged.
    for host in [
        "[::1]",
        "[::1]:8080",
        "127.0.0.1",
        "127.0.0.1:8080",
        "public.test:",
    ] {
        let a = raw(addr, &format!("GET /p HTTP/1.1\r\nHost: {host}\r\n")).await;
        assert_eq!(a.status, 200, "Host {host}: {}", a.text);
        assert_eq!(a.backend(), Some("PUBLIC"));
        assert_eq!(a.echo("Host"), Some(host), "{}", a.text);
        assert_eq!(a.echo("X-Forwarded-Host"), Some(host), "{}", a.text);
    }

    // HTTP/1.0 without Host routes to routers without a Host rule; HTTP/1.1 without Host is a 400.
    let a = raw(addr, "GET /p HTTP/1.0\r\n").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.backend(), Some("PUBLIC"));
    let a = raw(addr, "GET /admin HTTP/1.0\r\n").await;
    assert_eq!(a.status, 401, "{}", a.text);
    let a = raw(addr, "GET /p HTTP/1.1\r\n").await;
    assert_eq!(a.status, 400, "{}", a.text);
    // Absolute-form without Host in HTTP/1.1 is refused as Go does; in HTTP/1.0 the target names the host.
    let a = raw(addr, "GET http://admin.test/ HTTP/1.1\r\n").await;
    assert_eq!(a.status, 400, "{}", a.text);
    let a = raw(addr, "GET http://public.test/p HTTP/1.0\r\n").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.echo("Host"), Some("public.test"), "{}", a.text);

    // Absolute-form agreeing with Host, and a clean path with a query: passed through untouched.
    let a = raw(
        addr,
        "GET http://public.test:8080/a/b?x=%2e%2E&y=/../ HTTP/1.1\r\nHost: public.test:8080\r\n",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.echo("Host"), Some("public.test:8080"), "{}", a.text);
    assert_eq!(
        a.request_line(),
        Some("GET /a/b?x=%2e%2E&y=/../ HTTP/1.1"),
        "{}",
        a.text
    );

    // HTTP/2 without a host field: `:authority` is forwarded as Host and X-Forwarded-Host.
    let a = h2_get(addr, "http://public.test:8080/p", &[]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.echo("Host"), Some("public.test:8080"), "{}", a.text);
    assert_eq!(
        a.echo("X-Forwarded-Host"),
        Some("public.test:8080"),
        "{}",
        a.text
    );
}

#[tokio::test]
async fn middlewares_see_the_same_authority_and_path_as_routing() {
    let s = setup(&[]).await;
    let addr = s.gate.web();
    // redirectScheme builds its Location from the request's host and path: the authority that routed
    // the request and the cleaned path, not the Host header beside it nor the raw path.
    let a = raw(
        addr,
        "GET http://redir.test/x/../a//b?q=1 HTTP/1.1\r\nHost: admin.test\r\n",
    )
    .await;
    assert_eq!(a.status, 302, "{}", a.text);
    assert!(
        a.text
            .to_ascii_lowercase()
            .contains("\r\nlocation: https://redir.test/a/b?q=1\r\n"),
        "{}",
        a.text
    );
    let a = h2_get(addr, "http://redir.test/%2e/c", &[("host", "admin.test")]).await;
    assert_eq!(a.status, 302, "{}", a.text);
    assert!(
        a.text.contains("\r\nlocation: https://redir.test/c\r\n"),
        "{}",
        a.text
    );
}
