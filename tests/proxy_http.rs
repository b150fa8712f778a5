//! The proxy core through the real binary: routing, balancing, errors, streaming, upgrades, lifecycle.

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose), and tests read and
// write fixture files with std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::{client, get, get_with, poll_until, send, Backend, Gate, HoldingBackend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn lb(name: &str, urls: &[(&str, u32)]) -> String {
    let mut s = format!("    {name}:\n      loadBalancer:\n        servers:\n");
    for (u, w) in urls {
        s.push_str(&format!(
            "          - url: \"{u}\"\n            weight: {w}\n"
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_alternates_and_weights_hold() {
    let (a, b) = (Backend::start("A").await, Backend::start("B").await);
    let dynamic = format!(
        "http:\n  routers:\n    eq:\n      rule: Host(`eq.test`)\n      service: eq\n    w:\n      rule: Host(`w.test`)\n      service: w\n  services:\n{}{}",
        lb("eq", &[(&a.url, 1), (&b.url, 1)]),
        lb("w", &[(&a.url, 3), (&b.url, 1)])
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    let c = client();
    let mut seq = String::new();
    for _ in 0..8 {
        let r = get_with(&c, gate.web(), "eq.test", "/", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        seq.push_str(r.backend().expect("backend"));
    }
    assert!(
        seq == "ABABABAB" || seq == "BABABABA",
        "strict alternation expected, got {seq}"
    );

    let (mut na, mut nb) = (0, 0);
    for _ in 0..400 {
        match get_with(&c, gate.web(), "w.test", "/", &[]).await.backend() {
            Some("A") => na += 1,
            Some("B") => nb += 1,
            other => panic!("unexpected backend {other:?}"),
        }
    }
    // 3:1 over 400 requests: exactly 300/100 per full period, within ±1 % of the total either way.
    assert!((296..=304).contains(&na) && na + nb == 400, "A={na} B={nb}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_is_404_and_a_bad_rule_drops_only_its_router() {
    let a = Backend::start("A").await;
    let dynamic = format!(
        "http:\n  routers:\n    good:\n      rule: Host(`good.test`)\n      service: s\n    broken:\n      rule: Host(`broken.test`) && PathPrefx(`/x`)\n      service: s\n    also-good:\n      rule: PathPrefix(`/also`)\n      service: s\n  services:\n{}",
        lb("s", &[(&a.url, 1)])
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    let r = get(gate.web(), "nobody.test", "/").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body, "404 page not found\n");
    assert_eq!(
        get(gate.web(), "good.test", "/").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(gate.web(), "GOOD.test.", "/").await.status,
        StatusCode::OK,
        "host is case-insensitive, trailing dot ignored"
    );
    assert_eq!(
        get(gate.web(), "good.test:8080", "/").await.status,
        StatusCode::OK,
        "port is ignored"
    );
    assert_eq!(
        get(gate.web(), "x.test", "/also/here").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(gate.web(), "broken.test", "/x").await.status,
        StatusCode::NOT_FOUND
    );
    let logs = gate.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("broken@file"))
        .unwrap_or_else(|| panic!("no log line names the broken router:\n{logs}"));
    assert!(line.contains("PathPrefx"), "{line}");
    assert!(line.contains("column"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_is_traefiks_and_survives_until_its_server_dies() {
    let (a, b) = (Backend::start("A").await, Backend::start("B").await);
    let dynamic = format!(
        "http:\n  routers:\n    app:\n      rule: Host(`app.test`)\n      service: app\n  services:\n    app:\n      loadBalancer:\n        sticky:\n          cookie: {{}}\n        servers:\n          - url: \"{}\"\n          - url: \"{}\"\n",
        a.url, b.url
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    let c = client();
    let first = get_with(&c, gate.web(), "app.test", "/", &[]).await;
    let set = first
        .headers
        .get("set-cookie")
        .expect("set-cookie")
        .to_str()
        .expect("ascii")
        .to_string();
    // Traefik's default name for `app@file` and SHA-256[:16] of the server URL.
    assert!(set.starts_with("_fb0b0="), "{set}");
    let chosen = first.backend().expect("backend").to_string();
    let url = if chosen == "A" { &a.url } else { &b.url };
    let value = swarmgate::balance::sticky::cookie_value(url);
    assert!(set.starts_with(&format!("_fb0b0={value}; Path=/")), "{set}");
    assert!(
        !set.contains("127.0.0.1"),
        "the backend address must not leak: {set}"
    );
    let cookie = format!("_fb0b0={value}");
    for _ in 0..10 {
        let r = get_with(&c, gate.web(), "app.test", "/", &[("cookie", &cookie)]).await;
        assert_eq!(r.backend(), Some(chosen.as_str()));
        assert!(
            r.headers.get("set-cookie").is_none(),
            "a valid cookie is not rewritten"
        );
    }
    if chosen == "A" {
        a.stop()
    } else {
        b.stop()
    }
    // Fresh client: the stopped backend's pooled connections are not reused.
    let c2 = client();
    let moved = get_with(&c2, gate.web(), "app.test", "/", &[("cookie", &cookie)]).await;
    assert_eq!(
        moved.status,
        StatusCode::OK,
        "moving a client must not fail: {}",
        moved.body
    );
    assert_ne!(moved.backend(), Some(chosen.as_str()));
    let fresh = moved
        .headers
        .get("set-cookie")
        .expect("a fresh cookie")
        .to_str()
        .expect("ascii");
    assert!(!fresh.contains(&value), "{fresh}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_file_changes_go_live_and_broken_files_keep_the_last_good() {
    let a = Backend::start("A").await;
    let base = format!("http:\n  routers:\n    one:\n      rule: Host(`one.test`)\n      service: s\n  services:\n{}", lb("s", &[(&a.url, 1)]));
    let gate = Gate::with_dynamic(&base, &[]);
    assert_eq!(
        get(gate.web(), "two.test", "/").await.status,
        StatusCode::NOT_FOUND
    );
    let with_two = base.replace(
        "  services:\n",
        "    two:\n      rule: Host(`two.test`)\n      service: s\n  services:\n",
    );
    support::write_atomic(&gate.dynamic_file(), &with_two);
    let started = std::time::Instant::now();
    let live = poll_until(Duration::from_secs(2), || async {
        get(gate.web(), "two.test", "/").await.status == StatusCode::OK
    })
    .await;
    assert!(live, "new router not live within 2 s:\n{}", gate.logs());
    eprintln!("router live after {:?}", started.elapsed());

    std::fs::write(gate.dynamic_file(), "http:\n  routers: [\n").expect("write broken");
    assert!(
        gate.wait_log(
            "keeping the last good configuration",
            Duration::from_secs(3)
        ),
        "{}",
        gate.logs()
    );
    assert_eq!(
        get(gate.web(), "one.test", "/").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(gate.web(), "two.test", "/").await.status,
        StatusCode::OK
    );
    assert!(
        gate.logs().contains("dynamic.yml:"),
        "the error names the file and line:\n{}",
        gate.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses() {
    let a = Backend::start("A").await;
    // A port that refuses: bind then drop.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let dynamic = format!(
        "http:\n  routers:\n    refused:\n      rule: Host(`refused.test`)\n      service: refused\n    slow:\n      rule: Host(`slow.test`)\n      service: s\n    empty:\n      rule: Host(`empty.test`)\n      service: empty\n    ok:\n      rule: Host(`ok.test`)\n      service: s\n  services:\n{}{}    empty:\n      loadBalancer:\n        servers: []\n",
        lb("refused", &[(&format!("http://{refused}"), 1)]),
        lb("s", &[(&a.url, 1)])
    );
    let gate = Gate::with_dynamic(
        &dynamic,
        &["--serversTransport.forwardingTimeouts.responseHeaderTimeout=300ms"],
    );
    let r = get(gate.web(), "refused.test", "/").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    let r = get(gate.web(), "slow.test", "/?wait=2s").await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.body);
    let r = get(gate.web(), "empty.test", "/").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);

    // 400: HTTP/1.1 without Host; 431: a header block over the limit. Raw sockets, as clients send them.
    let mut s = tokio::net::TcpStream::connect(gate.web())
        .await
        .expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.expect("write");
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answer")
        .expect("read");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );

    let mut s = tokio::net::TcpStream::connect(gate.web())
        .await
        .expect("connect");
    let big = "x".repeat(2 << 20);
    let req = format!("GET / HTTP/1.1\r\nHost: ok.test\r\nX-Big: {big}\r\n\r\n");
    let _ = s.write_all(req.as_bytes()).await; // the server may close before reading it all
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answer")
        .unwrap_or(0);
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_is_retried_on_another_server() {
    let a = Backend::start("A").await;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let dynamic = format!(
        "http:\n  routers:\n    r:\n      rule: Host(`r.test`)\n      service: s\n  services:\n{}",
        lb("s", &[(&format!("http://{refused}"), 1), (&a.url, 1)])
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    let c = client();
    for i in 0..6 {
        let body = Bytes::from(format!("payload {i}"));
        let req = Request::post(format!("http://{}/", gate.web()))
            .header("host", "r.test")
            .body(Full::new(body))
            .expect("req");
        let r = send(&c, req).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.body);
        assert_eq!(r.backend(), Some("A"));
        assert!(
            r.body.contains("Body-Bytes: 9"),
            "the body survives the retry: {}",
            r.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_health_checks_take_servers_out_and_back() {
    let (a, b) = (Backend::start("A").await, Backend::start("B").await);
    let dynamic = format!(
        "http:\n  routers:\n    r:\n      rule: Host(`h.test`)\n      service: s\n  services:\n    s:\n      loadBalancer:\n        healthCheck:\n          path: /health\n          interval: 100ms\n          timeout: 1s\n        servers:\n          - url: \"{}\"\n          - url: \"{}\"\n",
        a.url, b.url
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    let c = client();
    // Make B unhealthy through its own control endpoint.
    let req = Request::post(format!("{}/health", b.url))
        .body(Full::new(Bytes::from("500")))
        .expect("req");
    send(&c, req).await;
    let only_a = poll_until(Duration::from_secs(5), || async {
        let mut all_a = true;
        for _ in 0..4 {
            all_a &= get(gate.web(), "h.test", "/").await.backend() == Some("A");
        }
        all_a
    })
    .await;
    assert!(only_a, "B still in rotation:\n{}", gate.logs());
    let req = Request::post(format!("{}/health", b.url))
        .body(Full::new(Bytes::from("200")))
        .expect("req");
    send(&c, req).await;
    let back = poll_until(Duration::from_secs(5), || async {
        get(gate.web(), "h.test", "/").await.backend() == Some("B")
    })
    .await;
    assert!(back, "B did not come back:\n{}", gate.logs());
    // Every server down → 503.
    for u in [&a.url, &b.url] {
        let req = Request::post(format!("{u}/health"))
            .body(Full::new(Bytes::from("503")))
            .expect("req");
        send(&c, req).await;
    }
    let unavailable = poll_until(Duration::from_secs(5), || async {
        get(gate.web(), "h.test", "/").await.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(unavailable, "{}", gate.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_and_host() {
    let a = Backend::start("A").await;
    let dynamic = format!(
        "http:\n  routers:\n    r:\n      rule: Host(`f.test`)\n      service: s\n    n:\n      rule: Host(`n.test`)\n      service: n\n  services:\n{}    n:\n      loadBalancer:\n        passHostHeader: false\n        servers:\n          - url: \"{}\"\n",
        lb("s", &[(&a.url, 1)]),
        a.url
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    let c = client();
    let r = get_with(
        &c,
        gate.web(),
        "f.test",
        "/p?q=1",
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("connection", "x-drop"),
            ("x-drop", "1"),
        ],
    )
    .await;
    assert!(r.body.contains("GET /p?q=1 HTTP/1.1"), "{}", r.body);
    assert!(r.body.contains("Host: f.test"), "{}", r.body);
    assert!(
        r.body.contains("X-Forwarded-For: 127.0.0.1\n"),
        "untrusted XFF replaced: {}",
        r.body
    );
    assert!(r.body.contains("X-Forwarded-Proto: http"), "{}", r.body);
    assert!(r.body.contains("X-Forwarded-Host: f.test"), "{}", r.body);
    assert!(
        r.body
            .contains(&format!("X-Forwarded-Port: {}", gate.web().port())),
        "{}",
        r.body
    );
    assert!(r.body.contains("X-Real-Ip: 127.0.0.1"), "{}", r.body);
    assert!(r.body.contains("X-Forwarded-Server: "), "{}", r.body);
    assert!(
        !r.body.contains("X-Drop"),
        "headers named in Connection are hop-by-hop: {}",
        r.body
    );
    let r = get(gate.web(), "n.test", "/").await;
    assert!(
        r.body.contains(&format!("Host: {}", a.addr)),
        "passHostHeader=false sends the server's host: {}",
        r.body
    );

    // Trusted peers keep their X-Forwarded-For and get the client appended.
    let dynamic2 = format!(
        "http:\n  routers:\n    r:\n      rule: Host(`f.test`)\n      service: s\n  services:\n{}",
        lb("s", &[(&a.url, 1)])
    );
    let trusted = Gate::with_dynamic(
        &dynamic2,
        &["--entrypoints.web.forwardedHeaders.trustedIPs=127.0.0.1/32"],
    );
    let r = get_with(
        &c,
        trusted.web(),
        "f.test",
        "/",
        &[("x-forwarded-for", "6.6.6.6")],
    )
    .await;
    assert!(
        r.body.contains("X-Forwarded-For: 6.6.6.6, 127.0.0.1"),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_served() {
    let a = Backend::start("A").await;
    // HTTP/2 clients send the authority (here 127.0.0.1:port) instead of a Host header; route by path.
    let dynamic = format!("http:\n  routers:\n    r:\n      rule: PathPrefix(`/h2`)\n      service: s\n  services:\n{}", lb("s", &[(&a.url, 1)]));
    let gate = Gate::with_dynamic(&dynamic, &[]);
    let c: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    for _ in 0..3 {
        let req = Request::get(format!("http://{}/h2/x", gate.web()))
            .version(http::Version::HTTP_2)
            .body(Full::new(Bytes::new()))
            .expect("req");
        let r = send(&c, req).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            r.body.contains("GET /h2/x HTTP/1.1"),
            "forwarded as HTTP/1.1 to an http:// server: {}",
            r.body
        );
        assert!(
            r.body.contains(&format!("Host: {}", gate.web())),
            "{}",
            r.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_is_tunnelled() {
    let a = Backend::start("A").await;
    let dynamic = format!(
        "http:\n  routers:\n    r:\n      rule: Host(`ws.test`)\n      service: s\n  services:\n{}",
        lb("s", &[(&a.url, 1)])
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    let mut s = tokio::net::TcpStream::connect(gate.web())
        .await
        .expect("connect");
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte))
            .await
            .expect("head")
            .expect("read");
        assert!(
            n == 1,
            "closed during handshake: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    // A masked text frame "hello"; the echo server returns the same bytes.
    let frame = [
        0x81u8,
        0x85,
        1,
        2,
        3,
        4,
        b'h' ^ 1,
        b'e' ^ 2,
        b'l' ^ 3,
        b'l' ^ 4,
        b'o' ^ 1,
    ];
    for _ in 0..3 {
        s.write_all(&frame).await.expect("frame");
        let mut back = [0u8; 11];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back))
            .await
            .expect("echo")
            .expect("read");
        assert_eq!(back, frame);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_upload_streams_through() {
    let a = Backend::start("A").await;
    let dynamic = format!(
        "http:\n  routers:\n    r:\n      rule: Host(`up.test`)\n      service: s\n  services:\n{}",
        lb("s", &[(&a.url, 1)])
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    const TOTAL: u64 = 1 << 30;
    let mut s = tokio::net::TcpStream::connect(gate.web())
        .await
        .expect("connect");
    s.write_all(
        format!("POST /upload HTTP/1.1\r\nHost: up.test\r\nContent-Length: {TOTAL}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("head");
    let chunk = vec![b'x'; 1 << 20];
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        for _ in 0..(TOTAL >> 20) {
            wr.write_all(&chunk).await.expect("chunk");
        }
        wr
    });
    let mut resp = Vec::new();
    let mut buf = vec![0u8; 4096];
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !String::from_utf8_lossy(&resp).contains("Body-Bytes") {
        assert!(
            std::time::Instant::now() < deadline,
            "upload did not finish"
        );
        let n = tokio::time::timeout(Duration::from_secs(60), rd.read(&mut buf))
            .await
            .expect("answer")
            .expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&resp));
        resp.extend_from_slice(&buf[..n]);
    }
    let _ = writer.await;
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(&format!("Body-Bytes: {TOTAL}")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_request_finish() {
    let a = HoldingBackend::start("A").await;
    let dynamic = format!("http:\n  routers:\n    r:\n      rule: Host(`slow.test`)\n      service: s\n  services:\n{}", lb("s", &[(&a.url, 1)]));
    let mut gate = Gate::with_dynamic(&dynamic, &[]);
    let addr = gate.web();
    // One keep-alive connection: a fast request proves it is accepted and served, then the slow one.
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /fast HTTP/1.1\r\nHost: slow.test\r\n\r\n")
        .await
        .expect("write");
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
    s.write_all(b"GET /hold HTTP/1.1\r\nHost: slow.test\r\n\r\n")
        .await
        .expect("write");
    // The request is at the backend (held there) when shutdown starts; the backend answers only once
    // swarmgate has begun shutting down.
    assert!(
        a.wait_held(1, Duration::from_secs(5)).await,
        "the request never reached the backend:\n{}",
        gate.logs()
    );
    gate.signal("TERM");
    assert!(
        poll_until(Duration::from_secs(5), || async {
            gate.logs().contains("shutting down")
        })
        .await,
        "no shutdown logged:\n{}",
        gate.logs()
    );
    a.release();
    let slow = read_response(&mut s).await;
    assert!(slow.starts_with("HTTP/1.1 200"), "{slow}");
    assert!(slow.contains("Name: A"), "{slow}");
    let status = tokio::task::spawn_blocking(move || {
        let s = gate.wait_exit(Duration::from_secs(10));
        (s, gate.logs())
    })
    .await
    .expect("join");
    assert!(
        status.0.is_some_and(|s| s.success()),
        "exit: {:?}\n{}",
        status.0,
        status.1
    );
    // New connections are refused once it is gone.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_backends_are_verified_against_root_cas() {
    let (tls, pem) = Backend::start_tls("T").await;
    let dynamic = format!("http:\n  routers:\n    r:\n      rule: Host(`tls.test`)\n      service: s\n  services:\n{}", lb("s", &[(&tls.url, 1)]));
    // Not trusted: the handshake fails → 502.
    let untrusted = Gate::with_dynamic(&dynamic, &[]);
    assert_eq!(
        get(untrusted.web(), "tls.test", "/").await.status,
        StatusCode::BAD_GATEWAY
    );
    drop(untrusted);
    // Trusted through serversTransport.rootCAs (a PEM file).
    let ca = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(ca.path(), &pem).expect("write ca");
    let trusted = Gate::with_dynamic(
        &dynamic,
        &[&format!(
            "--serversTransport.rootCAs={}",
            ca.path().display()
        )],
    );
    let r = get(trusted.web(), "tls.test", "/x").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.backend(), Some("T"));
    assert!(
        r.body.contains("/x HTTP/2.0"),
        "ALPN negotiates h2 with the backend: {}",
        r.body
    );
    assert!(r.body.contains("Host: tls.test"), "{}", r.body);
    drop(trusted);
    // insecureSkipVerify accepts it without the CA.
    let insecure = Gate::with_dynamic(&dynamic, &["--serversTransport.insecureSkipVerify=true"]);
    assert_eq!(
        get(insecure.web(), "tls.test", "/").await.status,
        StatusCode::OK
    );
}

/// Reads one HTTP/1.1 response with a Content-Length body from a raw stream (10 s per read).
async fn read_response(s: &mut tokio::net::TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let len: usize = text[..head_end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if got.len() >= head_end + 4 + len {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("answer")
            .expect("read");
        assert!(
            n > 0,
            "connection closed before the response: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// The `RemoteAddr:` line of a whoami answer: which upstream connection carried the request.
fn upstream_conn(body: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix("RemoteAddr: "))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_kept_alive_and_h2c_is_multiplexed() {
    let a = Backend::start("A").await;
    let h2c = format!("h2c://{}", a.addr);
    let dynamic = format!(
        "http:\n  routers:\n    h1:\n      rule: Host(`h1.test`)\n      service: h1\n    h2:\n      rule: Host(`h2.test`)\n      service: h2\n  services:\n{}{}",
        lb("h1", &[(&a.url, 1)]),
        lb("h2", &[(&h2c, 1)])
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    let c = client();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..20 {
        let r = get_with(&c, gate.web(), "h1.test", &format!("/k{i}"), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            r.body.contains(&format!("GET /k{i} HTTP/1.1")),
            "{}",
            r.body
        );
        seen.insert(upstream_conn(&r.body));
    }
    // Sequential requests need one upstream connection per worker that serves them; the test client may
    // itself open a second connection (landing on another worker) when its first is not back in its pool
    // yet. Without upstream keep-alive there would be 20.
    assert!(seen.len() <= 4, "upstream connections reused: {seen:?}");

    // h2c backends: HTTP/2 prior knowledge, concurrent requests share the connection.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = c.clone();
        let addr = gate.web();
        tasks.push(tokio::spawn(async move {
            get_with(&c, addr, "h2.test", &format!("/m{i}"), &[]).await
        }));
    }
    let mut h2_conns = std::collections::BTreeSet::new();
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("HTTP/2.0"), "{}", r.body);
        h2_conns.insert(upstream_conn(&r.body));
    }
    // Client connections may land on both workers; each has at most one h2c connection.
    assert!(h2_conns.len() <= 2, "{h2_conns:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_closing_idle_connections_is_invisible_to_clients() {
    // A backend that answers one request per connection, then closes it, without saying so
    // (`Connection: close` absent): every pooled connection is dead by the next request.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    let dynamic = format!(
        "http:\n  routers:\n    r:\n      rule: Host(`close.test`)\n      service: s\n  services:\n{}",
        lb("s", &[(&format!("http://{addr}"), 1)])
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    let c = client();
    for i in 0..10 {
        let r = get_with(&c, gate.web(), "close.test", "/", &[]).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.body);
        assert_eq!(r.body, "ok");
        // Pacing: the backend's FIN reaches swarmgate's pool between two requests, as it does for a real
        // client; the test is about not reusing a connection the backend closed, not about that race.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        10,
        "a new connection per request, none reused after the backend closed it"
    );
    server.abort();
}
