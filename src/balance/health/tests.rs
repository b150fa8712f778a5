//! Tests for the health state, the pure probe-URL logic, and the checker
//! against a real hyper server on 127.0.0.1:0.

use super::*;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize};
use std::sync::Mutex;

use http::Response;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn uri(s: &str) -> Uri {
    s.parse().expect("test URI")
}

fn settings(path: &str) -> HealthCheckSettings {
    HealthCheckSettings {
        path: path.to_owned(),
        ..HealthCheckSettings::default()
    }
}

fn probe_str(server: &str, s: &HealthCheckSettings) -> Result<String, String> {
    probe_uri(&uri(server), s)
        .map(|u| u.to_string())
        .map_err(|e| e.to_string())
}

#[test]
fn server_health_active_and_passive() {
    let h = ServerHealth::new();
    assert!(h.is_up(0));
    assert!(h.active_up());
    assert!(!h.set_active(true));
    assert!(h.set_active(false));
    assert!(!h.is_up(0));
    assert!(!h.set_active(false));
    assert!(h.set_active(true));
    h.mark_failed(1_000, 500);
    assert!(!h.is_up(1_000));
    assert!(!h.is_up(1_499));
    assert!(h.is_up(1_500));
    // A shorter, earlier mark does not shorten the window.
    h.mark_failed(1_100, 100);
    assert!(!h.is_up(1_300));
    h.mark_failed(u64::MAX, 10);
    assert!(!h.is_up(u64::MAX - 1));
    assert!(ServerHealth::default().is_up(0));
}

#[test]
fn now_ms_is_monotonic() {
    let a = now_ms();
    let b = now_ms();
    assert!(b >= a);
}

#[test]
fn healthy_status_rules() {
    let s = HealthCheckSettings::default();
    for (code, want) in [
        (100, false),
        (199, false),
        (200, true),
        (204, true),
        (302, true),
        (308, true),
        (399, true),
        (400, false),
        (404, false),
        (503, false),
    ] {
        assert_eq!(is_healthy_status(code, &s), want, "{code}");
    }
    let s = HealthCheckSettings {
        status: Some(404),
        ..HealthCheckSettings::default()
    };
    assert!(is_healthy_status(404, &s));
    assert!(!is_healthy_status(200, &s));
}

#[test]
fn defaults_match_traefik() {
    let s = HealthCheckSettings::default();
    assert_eq!(s.interval, Duration::from_secs(30));
    assert_eq!(s.timeout, Duration::from_secs(5));
    assert_eq!(s.method, Method::GET);
    assert!(s.follow_redirects);
    let zero = HealthCheckSettings {
        interval: Duration::ZERO,
        timeout: Duration::ZERO,
        unhealthy_interval: Some(Duration::ZERO),
        ..HealthCheckSettings::default()
    };
    assert_eq!(zero.effective_interval(), DEFAULT_INTERVAL);
    assert_eq!(zero.effective_timeout(), DEFAULT_TIMEOUT);
    assert_eq!(zero.effective_unhealthy_interval(), DEFAULT_INTERVAL);
    let custom = HealthCheckSettings {
        interval: Duration::from_secs(3),
        ..HealthCheckSettings::default()
    };
    assert_eq!(
        custom.effective_unhealthy_interval(),
        Duration::from_secs(3)
    );
}

/// Traefik's `TestServiceHealthChecker_newRequest` cases, plus Go's
/// reference-resolution rules.
#[test]
fn probe_uri_cases() {
    let port = |p| HealthCheckSettings {
        port: Some(p),
        ..settings("/health")
    };
    let cases: Vec<(&str, HealthCheckSettings, Result<&str, ()>)> = vec![
        (
            "http://backend1:80",
            settings("/test"),
            Ok("http://backend1:80/test"),
        ),
        (
            "http://backend2:80",
            HealthCheckSettings {
                port: Some(8080),
                ..settings("/test")
            },
            Ok("http://backend2:8080/test"),
        ),
        (
            "http://backend1",
            settings("/health"),
            Ok("http://backend1/health"),
        ),
        (
            "http://backend2",
            port(8080),
            Ok("http://backend2:8080/health"),
        ),
        (
            "https://backend1:80",
            HealthCheckSettings {
                scheme: Some("http".into()),
                ..settings("/test")
            },
            Ok("http://backend1:80/test"),
        ),
        (
            "http://backend1:80",
            settings("http://backend2/health?powpow=do"),
            Err(()),
        ),
        ("http://backend1:80", settings("//backend2/health"), Err(())),
        (
            "http://backend1:80",
            settings("/health?powpow=do"),
            Ok("http://backend1:80/health?powpow=do"),
        ),
        (
            "http://backend1:80",
            settings("/health?powpow=do&do=powpow"),
            Ok("http://backend1:80/health?powpow=do&do=powpow"),
        ),
        ("http://backend1:80", settings(":"), Err(())),
        (
            "http://backend1:80",
            settings("/"),
            Ok("http://backend1:80/"),
        ),
        // Relative references resolve against the server URL's path.
        (
            "http://h:80/api/v1",
            settings("health"),
            Ok("http://h:80/api/health"),
        ),
        (
            "http://h:80/api/v1/",
            settings("health"),
            Ok("http://h:80/api/v1/health"),
        ),
        (
            "http://h:80/api/v1",
            settings("../health"),
            Ok("http://h:80/health"),
        ),
        (
            "http://h:80/app/",
            settings("/health"),
            Ok("http://h:80/health"),
        ),
        (
            "http://h:80/a/b",
            settings("/x/./y/../z"),
            Ok("http://h:80/x/z"),
        ),
        ("http://h:80/a/b", settings("/x/.."), Ok("http://h:80/")),
        ("http://h:80", settings("health"), Ok("http://h:80/health")),
        // Empty path: the server URL itself, its query kept.
        (
            "http://h:80/base?q=1",
            settings(""),
            Ok("http://h:80/base?q=1"),
        ),
        (
            "http://h:80/base?q=1",
            settings("?x=2"),
            Ok("http://h:80/base?x=2"),
        ),
        ("http://h:80", settings(""), Ok("http://h:80/")),
        // Fragment dropped; unsafe bytes escaped; escapes kept.
        (
            "http://h:80",
            settings("/a b#frag"),
            Ok("http://h:80/a%20b"),
        ),
        (
            "http://h:80",
            settings("/%7Euser/{x}"),
            Ok("http://h:80/%7Euser/%7Bx%7D"),
        ),
        ("http://h:80", settings("/é"), Ok("http://h:80/%C3%A9")),
        ("http://h:80", settings("/a%zz"), Err(())),
        ("http://h:80", settings("/a\u{1}"), Err(())),
        ("http://h:80", settings("a:b/c"), Err(())),
        ("http://h:80", settings("1a:b"), Err(())),
        // IPv6 and user info survive a port override.
        (
            "http://[::1]:80",
            port(8080),
            Ok("http://[::1]:8080/health"),
        ),
        (
            "http://[fe80::1]",
            port(9000),
            Ok("http://[fe80::1]:9000/health"),
        ),
        ("http://u:p@h:80", port(81), Ok("http://u:p@h:81/health")),
        // A bad scheme override is an error, not a panic.
        (
            "http://h:80",
            HealthCheckSettings {
                scheme: Some("bad scheme".into()),
                ..settings("/")
            },
            Err(()),
        ),
    ];
    for (server, s, want) in cases {
        let got = probe_str(server, &s);
        match want {
            Ok(w) => assert_eq!(got.as_deref(), Ok(w), "{server} + {:?}", s.path),
            Err(()) => assert!(got.is_err(), "{server} + {:?} gave {got:?}", s.path),
        }
    }
}

#[test]
fn probe_uri_error_kinds() {
    let e = probe_uri(&uri("http://h"), &settings("http://x/health"));
    assert!(matches!(e, Err(HealthError::AbsolutePath { .. })));
    assert_eq!(
        e.map_err(|e| e.to_string()).err().as_deref(),
        Some("health check path must be a relative URL, got: \"http://x/health\"")
    );
    assert!(matches!(
        probe_uri(&uri("http://h"), &settings(":")),
        Err(HealthError::InvalidPath {
            reason: "missing protocol scheme",
            ..
        })
    ));
    assert!(matches!(
        probe_uri(&uri("http://h"), &settings("mailto:x")),
        Err(HealthError::AbsolutePath { .. })
    ));
}

#[test]
fn resolve_path_matches_go() {
    // Go's url_test.go resolveReferenceTests (path part).
    for (base, reference, want) in [
        ("/a/b", "", "/a/b"),
        ("", "", ""),
        ("/a/b", ".", "/a/"),
        ("/a/b", "./", "/a/"),
        ("/a/b", "..", "/"),
        ("/a/b/", "..", "/a/"),
        ("/a/b/c", "../..", "/"),
        ("/a/b/c", "../../..", "/"),
        ("/a/b/c", "../../../d", "/d"),
        ("/", "./foo/..", "/"),
        ("/", "./foo/../", "/"),
        ("/a/b/c/d/e", "../../../g", "/a/g"),
        ("/a/b/c/d/e", "../../../../g", "/g"),
        ("/a//b", "c", "/a//c"),
        ("/foo", "bar", "/bar"),
        ("/foo/", "bar", "/foo/bar"),
        ("/foo/bar", "./quux", "/foo/quux"),
        ("/", "//x", "/x"),
    ] {
        // `//x` as a reference would be an authority; here we test the merge only.
        let got = resolve_path(base, reference);
        if reference == "//x" {
            assert_eq!(resolve_path("", "/x"), want);
            continue;
        }
        assert_eq!(got, want, "{base} + {reference}");
    }
}

#[test]
fn error_messages_follow_traefik() {
    let e = HealthError::UnhealthyStatus {
        status: 500,
        expected: None,
    };
    assert_eq!(e.to_string(), "received error status code: 500");
    let e = HealthError::UnhealthyStatus {
        status: 200,
        expected: Some(503),
    };
    assert_eq!(
        e.to_string(),
        "received error status code: 200 expected status code: 503"
    );
    assert_eq!(
        HealthError::TooManyRedirects.to_string(),
        "stopped after 10 redirects"
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// Any configured path and port: an error or a URI whose path is
        /// absolute, on the server's host — never a panic.
        #[test]
        fn probe_uri_total(path in "\\PC{0,24}", port in proptest::option::of(any::<u16>())) {
            let s = HealthCheckSettings { path, port, ..HealthCheckSettings::default() };
            if let Ok(u) = probe_uri(&uri("http://[::1]:8080/a/b?c=d"), &s) {
                prop_assert!(u.path().starts_with('/'));
                prop_assert_eq!(u.host(), Some("[::1]"));
            }
        }

        /// Any `Location` value resolves or errors without panicking.
        #[test]
        fn location_resolution_total(location in "[ -~]{0,32}") {
            let base = uri("http://h:80/x/y");
            if let Ok(r) = parse_reference(&location) {
                let res = resolve(&base, &r);
                let _ = build_uri(res.scheme, res.authority, &res.path, res.query);
            }
        }
    }
}

// ---- real server -------------------------------------------------------

#[derive(Default)]
struct Backend {
    status: AtomicU16,
    hits: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    host: Option<String>,
    referer: Option<String>,
    authorization: bool,
    custom: Option<String>,
}

impl Backend {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// A tiny hyper server: `/health` answers the shared status; `/redirect`
/// 302s to `/health`; `/see-other` 303s there; `/loop/N` redirects to
/// `/loop/N+1` forever; `/abs` redirects to an absolute URL on the same
/// server; `/https` redirects to https; `/slow` never answers in time.
async fn start_backend() -> (SocketAddr, Arc<Backend>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let backend = Arc::new(Backend {
        status: AtomicU16::new(200),
        ..Backend::default()
    });
    let shared = Arc::clone(&backend);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let backend = Arc::clone(&shared);
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let backend = Arc::clone(&backend);
                    async move { Ok::<_, Infallible>(respond(&backend, addr, &req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, backend, task)
}

async fn respond(
    backend: &Backend,
    addr: SocketAddr,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    backend.hits.fetch_add(1, Ordering::Relaxed);
    let header = |name: HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let path = req.uri().path().to_owned();
    if let Ok(mut seen) = backend.seen.lock() {
        seen.push(Seen {
            method: req.method().clone(),
            path: path.clone(),
            host: header(HOST),
            referer: header(REFERER),
            authorization: req.headers().contains_key(http::header::AUTHORIZATION),
            custom: header(HeaderName::from_static("x-custom")),
        });
    }
    let redirect = |code: u16, to: String| {
        Response::builder()
            .status(code)
            .header(LOCATION, to)
            .body(Full::new(Bytes::new()))
            .unwrap_or_default()
    };
    match path.as_str() {
        "/health" => Response::builder()
            .status(backend.status.load(Ordering::Relaxed))
            .body(Full::new(Bytes::from_static(b"ok")))
            .unwrap_or_default(),
        "/redirect" => redirect(302, "/health".into()),
        "/see-other" => redirect(303, "health".into()),
        "/temporary" => redirect(307, "/health".into()),
        "/abs" => redirect(301, format!("http://localhost:{}/health", addr.port())),
        "/https" => redirect(302, format!("https://127.0.0.1:{}/health", addr.port())),
        "/no-location" => Response::builder()
            .status(302)
            .body(Full::new(Bytes::new()))
            .unwrap_or_default(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Response::default()
        }
        p if p.starts_with("/loop/") => {
            let n: u32 = p["/loop/".len()..].parse().unwrap_or(0);
            redirect(302, format!("/loop/{}", n + 1))
        }
        _ => Response::builder()
            .status(404)
            .body(Full::new(Bytes::new()))
            .unwrap_or_default(),
    }
}

fn target(addr: SocketAddr, s: HealthCheckSettings) -> CheckTarget {
    CheckTarget {
        service: "whoami@docker".into(),
        server_url: uri(&format!("http://{addr}")),
        settings: Arc::new(s),
        state: Arc::new(ServerHealth::new()),
    }
}

async fn check(addr: SocketAddr, s: HealthCheckSettings) -> Result<(), HealthError> {
    check_once(&probe_client(), &target(addr, s)).await
}

#[tokio::test]
async fn probe_sends_go_style_request() {
    let (addr, backend, server) = start_backend().await;
    let s = HealthCheckSettings {
        headers: vec![
            (
                HeaderName::from_static("x-custom"),
                HeaderValue::from_static("foo"),
            ),
            (HOST, HeaderValue::from_static("ignored")),
        ],
        method: Method::HEAD,
        ..settings("/health")
    };
    check(addr, s).await.expect("healthy");
    let seen = backend.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, Method::HEAD);
    assert_eq!(seen[0].host.as_deref(), Some(addr.to_string().as_str()));
    assert_eq!(seen[0].custom.as_deref(), Some("foo"));

    let s = HealthCheckSettings {
        hostname: Some("myhost".into()),
        ..settings("/health")
    };
    check(addr, s).await.expect("healthy");
    assert_eq!(backend.seen()[1].host.as_deref(), Some("myhost"));
    server.abort();
}

#[tokio::test]
async fn probe_status_rules_against_server() {
    let (addr, backend, server) = start_backend().await;
    backend.status.store(503, Ordering::Relaxed);
    let e = check(addr, settings("/health")).await;
    assert!(
        matches!(
            e,
            Err(HealthError::UnhealthyStatus {
                status: 503,
                expected: None
            })
        ),
        "{e:?}"
    );
    let s = HealthCheckSettings {
        status: Some(503),
        ..settings("/health")
    };
    check(addr, s).await.expect("503 expected and received");
    backend.status.store(204, Ordering::Relaxed);
    check(addr, settings("/health"))
        .await
        .expect("204 is healthy");
    server.abort();
}

#[tokio::test]
async fn probe_follows_redirects_like_go() {
    let (addr, backend, server) = start_backend().await;
    backend.status.store(500, Ordering::Relaxed);
    // Followed: the final 500 decides.
    assert!(check(addr, settings("/redirect")).await.is_err());
    // Not followed: the 302 itself is healthy (Traefik's NotFollowingRedirects test).
    let no_follow = HealthCheckSettings {
        follow_redirects: false,
        ..settings("/redirect")
    };
    check(addr, no_follow).await.expect("302 is healthy");
    backend.status.store(200, Ordering::Relaxed);

    // 303 turns POST into GET; Referer is the previous URL; relative Location.
    let before = backend.seen().len();
    let s = HealthCheckSettings {
        method: Method::POST,
        hostname: Some("myhost".into()),
        ..settings("/see-other")
    };
    check(addr, s).await.expect("healthy after 303");
    let seen = backend.seen();
    assert_eq!(seen.len(), before + 2);
    assert_eq!(seen[before].method, Method::POST);
    assert_eq!(seen[before + 1].method, Method::GET);
    assert_eq!(seen[before + 1].path, "/health");
    assert_eq!(
        seen[before + 1].referer.as_deref(),
        Some(format!("http://{addr}/see-other").as_str())
    );
    // Host override kept through a relative redirect.
    assert_eq!(seen[before + 1].host.as_deref(), Some("myhost"));

    // 307 keeps the method.
    let before = backend.seen().len();
    let s = HealthCheckSettings {
        method: Method::POST,
        ..settings("/temporary")
    };
    check(addr, s).await.expect("healthy after 307");
    assert_eq!(backend.seen()[before + 1].method, Method::POST);

    // Absolute redirect to another host name: Host override and credentials dropped.
    let before = backend.seen().len();
    let s = HealthCheckSettings {
        hostname: Some("myhost".into()),
        headers: vec![(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Basic eA=="),
        )],
        ..settings("/abs")
    };
    check(addr, s)
        .await
        .expect("healthy after absolute redirect");
    let seen = backend.seen();
    assert!(seen[before].authorization);
    assert!(!seen[before + 1].authorization);
    assert_eq!(
        seen[before + 1].host.as_deref(),
        Some(format!("localhost:{}", addr.port()).as_str())
    );

    // A 3xx without Location is final.
    check(addr, settings("/no-location"))
        .await
        .expect("302 without Location");

    // Redirect to https is not followed: the 302 is judged.
    check(addr, settings("/https"))
        .await
        .expect("302 to https judged as 302");

    // Ten requests, then Go's error.
    let before = backend.seen().len();
    let e = check(addr, settings("/loop/0")).await;
    assert!(matches!(e, Err(HealthError::TooManyRedirects)), "{e:?}");
    assert_eq!(backend.seen().len() - before, MAX_REQUESTS_PER_PROBE);
    server.abort();
}

#[tokio::test]
async fn probe_fails_on_timeout_refused_and_https() {
    let (addr, _backend, server) = start_backend().await;
    let s = HealthCheckSettings {
        timeout: Duration::from_millis(100),
        ..settings("/slow")
    };
    let e = check(addr, s).await;
    assert!(matches!(e, Err(HealthError::Timeout { .. })), "{e:?}");
    server.abort();

    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    let e = check(closed, settings("/health")).await;
    assert!(matches!(e, Err(HealthError::Request { .. })), "{e:?}");

    let s = HealthCheckSettings {
        scheme: Some("https".into()),
        ..settings("/health")
    };
    let e = check(closed, s).await;
    assert!(
        matches!(e, Err(HealthError::UnsupportedScheme { .. })),
        "{e:?}"
    );
    assert_eq!(
        e.err().map(|e| e.to_string()).as_deref(),
        Some("https health checks are not supported yet (only http)")
    );
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn checker_flips_state_and_stops_on_cancel() {
    let (addr, backend, server) = start_backend().await;
    let s = HealthCheckSettings {
        interval: Duration::from_millis(20),
        timeout: Duration::from_millis(500),
        ..settings("/health")
    };
    let t = target(addr, s);
    let state = Arc::clone(&t.state);
    // An https target is skipped, not probed, and stays up.
    let https = CheckTarget {
        server_url: uri("https://127.0.0.1:1"),
        ..target(addr, HealthCheckSettings::default())
    };
    let https_state = Arc::clone(&https.state);
    https_state.set_active(false);
    let cancel = CancellationToken::new();
    let handle = spawn_checker(vec![t, https], cancel.clone());

    wait_until("first probes", || backend.hits.load(Ordering::Relaxed) >= 2).await;
    assert!(state.is_up(now_ms()));

    backend.status.store(500, Ordering::Relaxed);
    wait_until("server marked down", || !state.is_up(now_ms())).await;

    backend.status.store(200, Ordering::Relaxed);
    wait_until("server marked up again", || state.is_up(now_ms())).await;
    assert!(https_state.is_up(now_ms()));

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(1), handle)
        .await
        .expect("checker stops promptly")
        .expect("checker task did not panic");
    let hits = backend.hits.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        backend.hits.load(Ordering::Relaxed),
        hits,
        "no probe after cancel"
    );
    server.abort();
}

#[tokio::test]
async fn checker_uses_unhealthy_interval() {
    let (addr, backend, server) = start_backend().await;
    backend.status.store(500, Ordering::Relaxed);
    let s = HealthCheckSettings {
        interval: Duration::from_millis(10),
        unhealthy_interval: Some(Duration::from_secs(3600)),
        ..settings("/health")
    };
    let t = target(addr, s);
    let state = Arc::clone(&t.state);
    let cancel = CancellationToken::new();
    let handle = spawn_checker(vec![t], cancel.clone());
    wait_until("server marked down", || !state.is_up(now_ms())).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Down servers wait the (long) unhealthy interval: one probe only.
    assert_eq!(backend.hits.load(Ordering::Relaxed), 1);
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(1), handle).await;
    server.abort();
}
