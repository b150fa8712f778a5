//! Traefik's middlewares through the real binary, configured from a file: one test (at least) per
//! middleware, the dockerswarm.rocks pair (HTTPS redirect + basic auth on the same service), bad
//! configuration isolation, and two measured figures: rate-limit accuracy over 10 s and compression of
//! one mebibyte per `Accept-Encoding`.

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose), and tests read and
// write fixture files with std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use support::{
    client, get, get_with, self_signed, send, tls_client, Backend, Gate, HoldingBackend, Reply,
};

/// A dynamic file: `routers` and `middlewares` sections as given (YAML, indented by 4), service `s` → url.
fn config(routers: &str, middlewares: &str, services: &str) -> String {
    format!("http:\n  routers:\n{routers}  middlewares:\n{middlewares}  services:\n{services}")
}

fn lb(name: &str, url: &str) -> String {
    format!("    {name}:\n      loadBalancer:\n        servers:\n          - url: \"{url}\"\n")
}

fn router(name: &str, rule: &str, mws: &[&str]) -> String {
    format!(
        "    {name}:\n      rule: \"{rule}\"\n      service: s\n      middlewares: [{}]\n",
        mws.join(", ")
    )
}

async fn req(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(
        &client(),
        b.body(Full::new(Bytes::from(body.to_string())))
            .expect("req"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerswarm_rocks_https_redirect_and_apr1_admin_auth() {
    let a = Backend::start("A").await;
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, key) = self_signed(&["app.test"]);
    let (cp, kp) = (dir.path().join("a.crt"), dir.path().join("a.key"));
    std::fs::write(&cp, &cert).expect("w");
    std::fs::write(&kp, &key).expect("w");
    // `htpasswd -nb admin test` style entry with an apr1 hash (openssl passwd -apr1 -salt r31.... test).
    let dynamic = format!(
        "http:\n  routers:\n    app-http:\n      rule: Host(`app.test`)\n      service: s\n      middlewares: [https-redirect]\n    app-https:\n      rule: Host(`app.test`)\n      service: s\n      middlewares: [admin-auth]\n      tls: {{}}\n  middlewares:\n    https-redirect:\n      redirectScheme:\n        scheme: https\n        permanent: true\n    admin-auth:\n      basicAuth:\n        users:\n          - \"admin:$apr1$r31....$ngBPjzVkLtPf/sLj.RKiN/\"\n  services:\n{}tls:\n  certificates:\n    - certFile: {}\n      keyFile: {}\n",
        lb("s", &a.url),
        cp.display(),
        kp.display()
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    let r = get(gate.web(), "app.test", "/dashboard/?x=1").await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY, "{}", gate.logs());
    assert_eq!(r.headers["location"], "https://app.test/dashboard/?x=1");
    let r = req(gate.web(), "POST", "app.test", "/api", &[], "x").await;
    assert_eq!(
        r.status,
        StatusCode::PERMANENT_REDIRECT,
        "non-GET keeps the method"
    );

    let cfg = tls_client(Some(&cert), &[b"http/1.1"], &[&rustls::version::TLS13]);
    let r = tls_request(gate.web(), "app.test", "/", &[], cfg.clone()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers["www-authenticate"], "Basic realm=\"traefik\"");
    // admin:test
    let ok = tls_request(
        gate.web(),
        "app.test",
        "/",
        &[("authorization", "Basic YWRtaW46dGVzdA==")],
        cfg.clone(),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.backend(), Some("A"));
    let bad = tls_request(
        gate.web(),
        "app.test",
        "/",
        &[("authorization", "Basic YWRtaW46dGVzVA==")],
        cfg,
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
}

/// One HTTP/1.1 request over TLS with extra headers.
async fn tls_request(
    addr: SocketAddr,
    sni: &str,
    path: &str,
    headers: &[(&str, &str)],
    cfg: Arc<rustls::ClientConfig>,
) -> Reply {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).expect("sni");
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .expect("handshake");
    let (mut s, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .expect("h1");
    tokio::spawn(conn);
    let mut b = Request::get(path).header("host", sni);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = s
        .send_request(b.body(Full::new(Bytes::new())).expect("req"))
        .await
        .expect("send");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_regex_rewrites_the_url() {
    let a = Backend::start("A").await;
    let gate = Gate::with_dynamic(
        &config(
            &router("r", "Host(`old.test`)", &["move"]),
            "    move:\n      redirectRegex:\n        regex: \"^http://old.test/(.*)\"\n        replacement: \"http://new.test/${1}\"\n",
            &lb("s", &a.url),
        ),
        &[],
    );
    let r = get(gate.web(), "old.test", "/a/b?c=d").await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", gate.logs());
    assert_eq!(r.headers["location"], "http://new.test/a/b?c=d");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_middlewares_strip_add_and_replace() {
    let a = Backend::start("A").await;
    let routers = [
        router("strip", "Host(`strip.test`)", &["strip"]),
        router("stripre", "Host(`stripre.test`)", &["stripre"]),
        router("add", "Host(`add.test`)", &["add"]),
        router("replace", "Host(`replace.test`)", &["replace"]),
        router("replacere", "Host(`replacere.test`)", &["replacere"]),
    ]
    .concat();
    let mws = "    strip:\n      stripPrefix:\n        prefixes: [\"/api\", \"/v2\"]\n    stripre:\n      stripPrefixRegex:\n        regex: [\"/users/[0-9]+\"]\n    add:\n      addPrefix:\n        prefix: /base\n    replace:\n      replacePath:\n        path: /fixed\n    replacere:\n      replacePathRegex:\n        regex: \"^/foo/(.*)\"\n        replacement: \"/bar/$1\"\n";
    let gate = Gate::with_dynamic(&config(&routers, mws, &lb("s", &a.url)), &[]);
    let cases = [
        (
            "strip.test",
            "/api/items?q=1",
            "GET /items?q=1 ",
            Some(("X-Forwarded-Prefix", "/api")),
        ),
        (
            "stripre.test",
            "/users/42/profile",
            "GET /profile ",
            Some(("X-Forwarded-Prefix", "/users/42")),
        ),
        ("add.test", "/x", "GET /base/x ", None),
        (
            "replace.test",
            "/whatever?k=v",
            "GET /fixed?k=v ",
            Some(("X-Replaced-Path", "/whatever")),
        ),
        (
            "replacere.test",
            "/foo/a/b",
            "GET /bar/a/b ",
            Some(("X-Replaced-Path", "/foo/a/b")),
        ),
    ];
    for (host, path, line, header) in cases {
        let r = get(gate.web(), host, path).await;
        assert_eq!(r.status, StatusCode::OK, "{host}: {}", gate.logs());
        assert!(r.body.contains(line), "{host}{path}: {}", r.body);
        if let Some((h, v)) = header {
            assert!(
                r.body.contains(&format!("{h}: {v}\n")),
                "{host}: {}",
                r.body
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_custom_cors_preflight_and_security() {
    let a = Backend::start("A").await;
    let mws = "    h:\n      headers:\n        customRequestHeaders:\n          X-Script-Name: test\n          User-Agent: \"\"\n        customResponseHeaders:\n          X-Custom-Response: yes\n          Content-Type: \"\"\n        accessControlAllowMethods: [GET, OPTIONS, PUT]\n        accessControlAllowOriginList: [\"https://app.example\"]\n        accessControlMaxAge: 100\n        addVaryHeader: true\n        frameDeny: true\n        contentTypeNosniff: true\n        stsSeconds: 31536000\n        forceSTSHeader: true\n";
    let gate = Gate::with_dynamic(
        &config(
            &router("r", "Host(`h.test`)", &["h"]),
            mws,
            &lb("s", &a.url),
        ),
        &[],
    );
    let r = get_with(
        &client(),
        gate.web(),
        "h.test",
        "/",
        &[("origin", "https://app.example"), ("user-agent", "curl")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", gate.logs());
    assert!(r.body.contains("X-Script-Name: test\n"), "{}", r.body);
    assert!(
        !r.body.contains("User-Agent"),
        "empty value removes: {}",
        r.body
    );
    assert_eq!(r.headers["x-custom-response"], "yes");
    assert!(
        r.headers.get("content-type").is_none(),
        "empty value removes"
    );
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(r.headers["vary"], "Origin");
    assert_eq!(r.headers["x-frame-options"], "DENY");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(r.headers["strict-transport-security"], "max-age=31536000");
    let p = req(
        gate.web(),
        "OPTIONS",
        "h.test",
        "/",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "PUT"),
        ],
        "",
    )
    .await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(
        p.backend().is_none(),
        "preflight is answered by the proxy: {}",
        p.body
    );
    assert_eq!(p.headers["access-control-allow-methods"], "GET,OPTIONS,PUT");
    assert_eq!(p.headers["access-control-max-age"], "100");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_users_file_header_field_and_sha_hashes() {
    let a = Backend::start("A").await;
    let dir = tempfile::tempdir().expect("tmp");
    let users = dir.path().join("users");
    // {SHA} of "password", and a bcrypt entry.
    let bcrypt_hash = bcrypt::hash("s3cret", 4).expect("bcrypt");
    std::fs::write(
        &users,
        format!("# comment\nsha:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nbc:{bcrypt_hash}\n"),
    )
    .expect("w");
    let mws = format!(
        "    auth:\n      basicAuth:\n        usersFile: {}\n        realm: inner\n        headerField: X-WebAuth-User\n        removeHeader: true\n",
        users.display()
    );
    let gate = Gate::with_dynamic(
        &config(
            &router("r", "Host(`b.test`)", &["auth"]),
            &mws,
            &lb("s", &a.url),
        ),
        &[],
    );
    let c = client();
    let r = get_with(&c, gate.web(), "b.test", "/", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", gate.logs());
    assert_eq!(r.headers["www-authenticate"], "Basic realm=\"inner\"");
    // sha:password
    let r = get_with(
        &c,
        gate.web(),
        "b.test",
        "/",
        &[("authorization", "Basic c2hhOnBhc3N3b3Jk")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("X-Webauth-User: sha\n"), "{}", r.body);
    assert!(
        !r.body.contains("Authorization"),
        "removeHeader: {}",
        r.body
    );
    // bc:s3cret
    let r = get_with(
        &c,
        gate.web(),
        "b.test",
        "/",
        &[("authorization", "Basic YmM6czNjcmV0")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_challenge_and_answer() {
    use md5::{Digest, Md5};
    let md5 = |s: &str| hex::encode(Md5::digest(s.as_bytes()));
    let a = Backend::start("A").await;
    let ha1 = md5("test:traefik:test");
    let mws = format!("    d:\n      digestAuth:\n        users: [\"test:traefik:{ha1}\"]\n");
    let gate = Gate::with_dynamic(
        &config(
            &router("r", "Host(`d.test`)", &["d"]),
            &mws,
            &lb("s", &a.url),
        ),
        &[],
    );
    let r = get(gate.web(), "d.test", "/p").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", gate.logs());
    let challenge = r.headers["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string();
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("nonce");
    let ha2 = md5("GET:/p");
    let resp = md5(&format!("{ha1}:{nonce}:00000001:abc:auth:{ha2}"));
    let auth = format!(
        "Digest username=\"test\", realm=\"traefik\", nonce=\"{nonce}\", uri=\"/p\", qop=auth, nc=00000001, cnonce=\"abc\", response=\"{resp}\""
    );
    let r = get_with(
        &client(),
        gate.web(),
        "d.test",
        "/p",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.backend(), Some("A"));
}

/// A tiny auth server: `Authorization: ok` → 200 with `X-Auth-User: alice`; anything else → 401 with a body.
async fn auth_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let ok = req
                            .headers()
                            .get("authorization")
                            .is_some_and(|v| v == "ok")
                            && req
                                .headers()
                                .get("x-forwarded-uri")
                                .is_some_and(|v| v == "/private?x=1")
                            && req
                                .headers()
                                .get("x-forwarded-method")
                                .is_some_and(|v| v == "GET");
                        let resp = if ok {
                            http::Response::builder()
                                .header("x-auth-user", "alice")
                                .header("x-other", "no")
                                .body(Full::new(Bytes::new()))
                        } else {
                            http::Response::builder()
                                .status(401)
                                .header("www-authenticate", "Bearer")
                                .body(Full::new(Bytes::from_static(b"denied by auth")))
                        };
                        Ok::<_, std::convert::Infallible>(resp.expect("resp"))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_passes_headers_or_returns_the_auth_answer() {
    let a = Backend::start("A").await;
    let (auth, seen) = auth_server().await;
    let mws = format!("    fa:\n      forwardAuth:\n        address: http://{auth}/verify\n        authResponseHeaders: [X-Auth-User]\n");
    let gate = Gate::with_dynamic(
        &config(
            &router("r", "Host(`f.test`)", &["fa"]),
            &mws,
            &lb("s", &a.url),
        ),
        &[],
    );
    let r = get(gate.web(), "f.test", "/private?x=1").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", gate.logs());
    assert_eq!(r.body, "denied by auth");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let r = get_with(
        &client(),
        gate.web(),
        "f.test",
        "/private?x=1",
        &[("authorization", "ok")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("X-Auth-User: alice\n"), "{}", r.body);
    assert!(!r.body.contains("X-Other"), "{}", r.body);
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_max_response_body_size_refuses_longer_auth_answers() {
    let a = Backend::start("A").await;
    let (auth, _) = auth_server().await;
    // The denial body ("denied by auth") is 14 bytes: over a 5-byte limit → 401 without it, as Traefik.
    for (limit, denial_body) in [(5, ""), (100, "denied by auth")] {
        let mws = format!("    fa:\n      forwardAuth:\n        address: http://{auth}/verify\n        maxResponseBodySize: {limit}\n");
        let gate = Gate::with_dynamic(
            &config(
                &router("r", "Host(`f.test`)", &["fa"]),
                &mws,
                &lb("s", &a.url),
            ),
            &[],
        );
        let r = get(gate.web(), "f.test", "/private?x=1").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", gate.logs());
        assert_eq!(r.body, denial_body, "limit {limit}");
        // The success answer has an empty body: within any limit, the request goes through.
        let r = get_with(
            &client(),
            gate.web(),
            "f.test",
            "/private?x=1",
            &[("authorization", "ok")],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "limit {limit}: {}", gate.logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_rejects_with_retry_after() {
    let a = Backend::start("A").await;
    let mws =
        "    rl:\n      rateLimit:\n        average: 1\n        period: 1m\n        burst: 3\n";
    let gate = Gate::with_dynamic(
        &config(
            &router("r", "Host(`rl.test`)", &["rl"]),
            mws,
            &lb("s", &a.url),
        ),
        &[],
    );
    let c = client();
    for i in 0..3 {
        let r = get_with(&c, gate.web(), "rl.test", "/", &[]).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", gate.logs());
    }
    let r = get_with(&c, gate.web(), "rl.test", "/", &[]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers["retry-after"]
        .to_str()
        .expect("a")
        .parse()
        .expect("n");
    assert!((1..=60).contains(&retry), "{retry}");
}

/// The rate-limit accuracy promise: 100 req/s average, burst 50, one source, driven for 10 s as fast as possible →
/// accepted = 50 + 100 × 10 within 5 %, every other answer 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_100_per_second_burst_50_over_10_seconds() {
    let a = Backend::start("A").await;
    let mws = "    rl:\n      rateLimit:\n        average: 100\n        burst: 50\n";
    let gate = Gate::with_dynamic(
        &config(
            &router("r", "Host(`rl.test`)", &["rl"]),
            mws,
            &lb("s", &a.url),
        ),
        &[],
    );
    // Wait until the router is live (first request spends one token).
    let first = get(gate.web(), "rl.test", "/bench").await;
    assert_eq!(first.status, StatusCode::OK, "{}", gate.logs());
    // Deliberate gap: the token bucket refills with time (a full burst after 1 s); there is nothing to poll.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ok = Arc::new(AtomicUsize::new(0));
    let limited = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let run = Duration::from_secs(10);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (ok, limited, addr) = (ok.clone(), limited.clone(), gate.web());
        tasks.push(tokio::spawn(async move {
            let c = client();
            while start.elapsed() < run {
                let r = get_with(&c, addr, "rl.test", "/bench", &[]).await;
                match r.status {
                    StatusCode::OK => ok.fetch_add(1, Ordering::Relaxed),
                    StatusCode::TOO_MANY_REQUESTS => limited.fetch_add(1, Ordering::Relaxed),
                    other => panic!("unexpected {other}"),
                };
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (ok, limited) = (ok.load(Ordering::Relaxed), limited.load(Ordering::Relaxed));
    let expected = 50.0 + 100.0 * elapsed;
    eprintln!(
        "rate limit: {ok} accepted, {limited} rejected in {elapsed:.2} s (budget {expected:.0})"
    );
    assert!(limited > 0, "the load must exceed the limit");
    assert!(
        (ok as f64 - expected).abs() <= 0.05 * expected,
        "accepted {ok}, budget {expected:.0}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_req_limits_concurrency() {
    let a = HoldingBackend::start("A").await;
    let mws = "    one:\n      inFlightReq:\n        amount: 1\n";
    let gate = Gate::with_dynamic(
        &config(
            &router("r", "Host(`if.test`)", &["one"]),
            mws,
            &lb("s", &a.url),
        ),
        &[],
    );
    assert_eq!(
        get(gate.web(), "if.test", "/").await.status,
        StatusCode::OK,
        "{}",
        gate.logs()
    );
    let addr = gate.web();
    let slow = tokio::spawn(async move { get(addr, "if.test", "/hold").await });
    // The one slot is taken while the backend holds the request.
    assert!(
        a.wait_held(1, Duration::from_secs(5)).await,
        "the request never reached the backend:\n{}",
        gate.logs()
    );
    let r = get(gate.web(), "if.test", "/").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    a.release();
    assert_eq!(slow.await.expect("slow").status, StatusCode::OK);
    assert_eq!(
        get(gate.web(), "if.test", "/").await.status,
        StatusCode::OK,
        "slot released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_allow_list_and_v2_ip_white_list() {
    let a = Backend::start("A").await;
    let routers = [
        router("deny", "Host(`deny.test`)", &["lan"]),
        router("allow", "Host(`allow.test`)", &["local"]),
    ]
    .concat();
    let mws = "    lan:\n      ipAllowList:\n        sourceRange: [\"10.0.0.0/8\", \"192.168.0.0/16\"]\n    local:\n      ipWhiteList:\n        sourceRange: \"127.0.0.1/32\"\n";
    let gate = Gate::with_dynamic(&config(&routers, mws, &lb("s", &a.url)), &[]);
    let r = get(gate.web(), "deny.test", "/").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", gate.logs());
    assert_eq!(r.body, "Forbidden");
    assert_eq!(
        get(gate.web(), "allow.test", "/").await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compress_one_mebibyte_per_accept_encoding() {
    let a = Backend::start("A").await;
    let mws = "    c:\n      compress: {}\n";
    let gate = Gate::with_dynamic(
        &config(
            &router("r", "Host(`c.test`)", &["c"]),
            mws,
            &lb("s", &a.url),
        ),
        &[],
    );
    let c = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let fetch = |enc: &'static str| {
        let c = c.clone();
        let addr = gate.web();
        async move {
            let mut b =
                Request::get(format!("http://{addr}/data?size=1048576")).header("host", "c.test");
            if !enc.is_empty() {
                b = b.header("accept-encoding", enc);
            }
            let resp = c
                .request(b.body(Full::new(Bytes::new())).expect("req"))
                .await
                .expect("send");
            let (parts, body) = resp.into_parts();
            (parts, body.collect().await.expect("body").to_bytes())
        }
    };
    let (plain_parts, plain) = fetch("").await;
    assert_eq!(plain_parts.status, StatusCode::OK, "{}", gate.logs());
    assert!(plain_parts.headers.get("content-encoding").is_none());
    assert_eq!(plain.len(), 1 << 20);
    for (accept, want) in [
        ("gzip", "gzip"),
        ("br;q=1.0, gzip;q=0.8", "br"),
        ("gzip, br, zstd", "zstd"),
        ("deflate, gzip;q=0.5", "gzip"),
    ] {
        let (parts, body) = fetch(accept).await;
        assert_eq!(parts.headers["content-encoding"], want, "{accept}");
        assert!(parts.headers.get("content-length").is_none());
        assert!(parts.headers["vary"]
            .to_str()
            .expect("a")
            .contains("Accept-Encoding"));
        assert!(body.len() < plain.len() / 2, "{want}: {} bytes", body.len());
        let mut out = Vec::new();
        match want {
            "gzip" => flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .map(|_| ()),
            "br" => brotli::Decompressor::new(&body[..], 4096)
                .read_to_end(&mut out)
                .map(|_| ()),
            _ => zstd::stream::read::Decoder::new(&body[..])
                .and_then(|mut d| d.read_to_end(&mut out))
                .map(|_| ()),
        }
        .expect("decode");
        assert!(out == plain, "{want}: decoded body differs");
    }
    // Small answers (under minResponseBodyBytes) pass as they are.
    let small = get_with(
        &client(),
        gate.web(),
        "c.test",
        "/bench",
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert!(small.headers.get("content-encoding").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_resends_after_a_closed_connection() {
    // A backend that drops the first connection without answering, then serves.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let conns = Arc::new(AtomicUsize::new(0));
    let n = conns.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            if n.fetch_add(1, Ordering::SeqCst) == 0 {
                let mut buf = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
                drop(s);
                continue;
            }
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(b"second"),
                        )))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let mws = "    rt:\n      retry:\n        attempts: 3\n        initialInterval: 10ms\n";
    let gate = Gate::with_dynamic(
        &config(
            &router("r", "Host(`rt.test`)", &["rt"]),
            mws,
            &lb("s", &format!("http://{addr}")),
        ),
        &[],
    );
    let r = get(gate.web(), "rt.test", "/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", gate.logs());
    assert_eq!(r.body, "second");
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffering_limits_request_bodies() {
    let a = Backend::start("A").await;
    let mws = "    buf:\n      buffering:\n        maxRequestBodyBytes: 100\n";
    let gate = Gate::with_dynamic(
        &config(
            &router("r", "Host(`buf.test`)", &["buf"]),
            mws,
            &lb("s", &a.url),
        ),
        &[],
    );
    let r = req(gate.web(), "POST", "buf.test", "/", &[], &"x".repeat(50)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", gate.logs());
    assert!(r.body.contains("Body-Bytes: 50"), "{}", r.body);
    let r = req(gate.web(), "POST", "buf.test", "/", &[], &"x".repeat(500)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_opens_on_network_errors() {
    // Nothing listens on this port: every attempt is a network error.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let mws = "    cb:\n      circuitBreaker:\n        expression: \"NetworkErrorRatio() > 0.5\"\n        checkPeriod: 50ms\n        fallbackDuration: 30s\n";
    let gate = Gate::with_dynamic(
        &config(
            &router("r", "Host(`cb.test`)", &["cb"]),
            mws,
            &lb("s", &url),
        ),
        &[],
    );
    let c = client();
    let first = get_with(&c, gate.web(), "cb.test", "/", &[]).await;
    assert_eq!(first.status, StatusCode::BAD_GATEWAY, "{}", gate.logs());
    let opened = support::poll_until(Duration::from_secs(5), || {
        let c = c.clone();
        let addr = gate.web();
        async move {
            get_with(&c, addr, "cb.test", "/", &[]).await.status == StatusCode::SERVICE_UNAVAILABLE
        }
    })
    .await;
    assert!(opened, "the breaker never opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_serves_the_page_with_the_original_status() {
    let a = Backend::start("PAGES").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let mws = "    pages:\n      errors:\n        status: [\"500-599\"]\n        service: pages\n        query: \"/errors/{status}.html\"\n";
    let services = format!("{}{}", lb("s", &url), lb("pages", &a.url));
    let gate = Gate::with_dynamic(
        &config(&router("r", "Host(`e.test`)", &["pages"]), mws, &services),
        &[],
    );
    let r = get(gate.web(), "e.test", "/x").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", gate.logs());
    assert_eq!(r.backend(), Some("PAGES"));
    assert!(r.body.contains("GET /errors/502.html "), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_and_entrypoint_middlewares_apply_in_order() {
    let a = Backend::start("A").await;
    let mws = "    both:\n      chain:\n        middlewares: [strip, tag]\n    strip:\n      stripPrefix:\n        prefixes: /app\n    tag:\n      headers:\n        customRequestHeaders:\n          X-Tag: chained\n    ep:\n      headers:\n        customResponseHeaders:\n          X-Entrypoint: yes\n";
    let routers = [
        router("r", "Host(`ch.test`)", &["both"]),
        router("plain", "Host(`plain.test`)", &[]),
    ]
    .concat();
    let gate = Gate::with_dynamic(
        &config(&routers, mws, &lb("s", &a.url)),
        &["--entrypoints.web.http.middlewares=ep@file"],
    );
    let r = get(gate.web(), "ch.test", "/app/x").await;
    assert_eq!(r.status, StatusCode::OK, "{}", gate.logs());
    assert!(r.body.contains("GET /x "), "{}", r.body);
    assert!(r.body.contains("X-Tag: chained\n"), "{}", r.body);
    assert_eq!(r.headers["x-entrypoint"], "yes");
    let r = get(gate.web(), "plain.test", "/").await;
    assert_eq!(
        r.headers["x-entrypoint"], "yes",
        "entrypoint middlewares apply to every router"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_missing_and_plugin_middlewares_disable_only_their_routers() {
    let a = Backend::start("A").await;
    let routers = [
        router("badregex", "Host(`bad.test`)", &["badre"]),
        router("missing", "Host(`missing.test`)", &["nothere"]),
        router("plugin", "Host(`plugin.test`)", &["sablier"]),
        router("good", "Host(`good.test`)", &["fine"]),
    ]
    .concat();
    let mws = "    badre:\n      replacePathRegex:\n        regex: \"(unclosed\"\n        replacement: /x\n    sablier:\n      plugin:\n        sablier:\n          group: demo\n    fine:\n      addPrefix:\n        prefix: /ok\n";
    let gate = Gate::with_dynamic(&config(&routers, mws, &lb("s", &a.url)), &[]);
    let good = get(gate.web(), "good.test", "/").await;
    assert_eq!(good.status, StatusCode::OK, "{}", gate.logs());
    for host in ["bad.test", "missing.test", "plugin.test"] {
        assert_eq!(
            get(gate.web(), host, "/").await.status,
            StatusCode::NOT_FOUND,
            "{host}"
        );
    }
    let logs = gate.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("badre@file") && l.contains("replacePathRegex.regex"))
        .unwrap_or_else(|| panic!("no line names the option:\n{logs}"));
    assert!(line.contains("(unclosed"), "{line}");
    assert!(
        logs.lines().any(|l| l.contains("plugin@file")
            && l.contains("sablier")
            && l.contains("not supported")),
        "{logs}"
    );
    assert!(
        logs.lines().any(|l| l.contains("missing@file")
            && l.contains("nothere@file")
            && l.contains("does not exist")),
        "{logs}"
    );
}
