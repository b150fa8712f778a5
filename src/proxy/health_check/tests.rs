//! The prober against real servers on 127.0.0.1:0 (plain and TLS), and its timing against a scripted
//! probe on a paused clock.

use super::*;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use http::header::{HOST, LOCATION, REFERER};
use http::{HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::balance::health::{now_ms, HealthCheckSettings, ServerHealth, MAX_REQUESTS_PER_PROBE};
use crate::proxy::forward::PoolSettings;

fn uri(s: &str) -> Uri {
    s.parse().expect("test URI")
}

fn settings(path: &str) -> HealthCheckSettings {
    HealthCheckSettings {
        path: path.to_owned(),
        ..HealthCheckSettings::default()
    }
}

// ---- real servers -------------------------------------------------------

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

/// A tiny hyper server (HTTP/1.1 and h2 over TLS when `tls` is set): `/health` answers the shared
/// status; `/redirect` 302s to `/health`; `/see-other` 303s there; `/loop/N` redirects to `/loop/N+1`
/// forever; `/abs` redirects to an absolute URL on the same server; `/https` redirects to https on the
/// same (plain) port; `/slow` never answers in time.
async fn start_backend_with(
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (SocketAddr, Arc<Backend>, JoinHandle<()>) {
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
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let backend = Arc::clone(&backend);
                    async move { Ok::<_, Infallible>(respond(&backend, addr, &req).await) }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                match tls {
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                }
            });
        }
    });
    (addr, backend, task)
}

async fn start_backend() -> (SocketAddr, Arc<Backend>, JoinHandle<()>) {
    start_backend_with(None).await
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
    target_url(&format!("http://{addr}"), s)
}

fn target_url(url: &str, s: HealthCheckSettings) -> CheckTarget {
    CheckTarget {
        service: "whoami@docker".into(),
        server_url: uri(url),
        settings: Arc::new(s),
        state: Arc::new(ServerHealth::new()),
    }
}

fn upstreams(settings: &PoolSettings) -> Upstreams {
    Upstreams::new(settings).expect("pool settings")
}

async fn check(addr: SocketAddr, s: HealthCheckSettings) -> Result<(), HealthError> {
    check_once(&upstreams(&PoolSettings::default()), &target(addr, s)).await
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
    assert_eq!(seen[0].path, "/health");
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
    assert_eq!(seen[before + 1].host.as_deref(), Some("myhost"));

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

    // A redirect to https is followed now; this port speaks plain HTTP, so the TLS handshake fails.
    let e = check(addr, settings("/https")).await;
    assert!(matches!(e, Err(HealthError::Request { .. })), "{e:?}");

    // Ten requests, then Go's error.
    let before = backend.seen().len();
    let e = check(addr, settings("/loop/0")).await;
    assert!(matches!(e, Err(HealthError::TooManyRedirects)), "{e:?}");
    assert_eq!(backend.seen().len() - before, MAX_REQUESTS_PER_PROBE);
    server.abort();
}

#[tokio::test]
async fn probe_fails_on_timeout_refused_and_unknown_scheme() {
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
        scheme: Some("ftp".into()),
        ..settings("/health")
    };
    let e = check(closed, s).await;
    assert!(
        matches!(e, Err(HealthError::UnsupportedScheme { .. })),
        "{e:?}"
    );
}

/// A TLS acceptor with a fresh self-signed certificate for 127.0.0.1 (ALPN h2 and http/1.1), and the
/// certificate to trust it with.
fn self_signed() -> (
    tokio_rustls::TlsAcceptor,
    rustls::pki_types::CertificateDer<'static>,
) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .expect("server config");
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(cfg)),
        ck.cert.der().clone(),
    )
}

#[tokio::test]
async fn https_probes_use_the_pools_tls_settings() {
    let (acceptor, cert) = self_signed();
    let (addr, backend, server) = start_backend_with(Some(acceptor)).await;
    let t = target_url(&format!("https://{addr}"), settings("/health"));
    // Not trusted by default: the handshake fails and the probe with it.
    let e = check_once(&upstreams(&PoolSettings::default()), &t).await;
    assert!(matches!(e, Err(HealthError::Request { .. })), "{e:?}");
    // Trusted through `rootCAs`, or `insecureSkipVerify`.
    let trusted = PoolSettings {
        root_cas: vec![cert],
        ..PoolSettings::default()
    };
    check_once(&upstreams(&trusted), &t)
        .await
        .expect("healthy with rootCAs");
    let insecure = PoolSettings {
        insecure_skip_verify: true,
        ..PoolSettings::default()
    };
    check_once(&upstreams(&insecure), &t)
        .await
        .expect("healthy with insecureSkipVerify");
    assert_eq!(backend.hits.load(Ordering::Relaxed), 2);
    // The scheme override turns an http server URL into an https probe.
    let s = HealthCheckSettings {
        scheme: Some("https".into()),
        ..settings("/health")
    };
    check_once(&upstreams(&insecure), &target(addr, s))
        .await
        .expect("https by scheme override");
    server.abort();
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
async fn https_server_goes_down_and_comes_back_up() {
    let (acceptor, cert) = self_signed();
    let (addr, backend, server) = start_backend_with(Some(acceptor)).await;
    let s = HealthCheckSettings {
        interval: Duration::from_millis(20),
        timeout: Duration::from_millis(500),
        ..settings("/health")
    };
    let t = target_url(&format!("https://{addr}"), s);
    let state = Arc::clone(&t.state);
    let (tx, rx) = watch::channel(Arc::new(vec![t]));
    let trusted = PoolSettings {
        root_cas: vec![cert],
        ..PoolSettings::default()
    };
    let cancel = CancellationToken::new();
    let prober = tokio::spawn(run(rx, upstreams(&trusted), cancel.clone()));

    wait_until("first probes", || backend.hits.load(Ordering::Relaxed) >= 2).await;
    assert!(state.is_up(now_ms()));
    backend.status.store(500, Ordering::Relaxed);
    wait_until("server marked down", || !state.is_up(now_ms())).await;
    backend.status.store(200, Ordering::Relaxed);
    wait_until("server marked up again", || state.is_up(now_ms())).await;

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(1), prober)
        .await
        .expect("prober stops promptly")
        .expect("prober did not panic");
    drop(tx);
    server.abort();
}

// ---- timing, against a scripted probe on a paused clock ------------------

/// Answers from a shared verdict and records when each probe started; panics when told to.
#[derive(Clone, Default)]
struct Scripted {
    down: Arc<AtomicBool>,
    panic: Arc<AtomicBool>,
    probes: Arc<Mutex<Vec<(String, tokio::time::Instant)>>>,
}

impl Scripted {
    fn count(&self) -> usize {
        self.probes.lock().map(|p| p.len()).unwrap_or(0)
    }

    fn count_for(&self, service: &str) -> usize {
        self.probes
            .lock()
            .map(|p| p.iter().filter(|(s, _)| s == service).count())
            .unwrap_or(0)
    }
}

impl Probe for Scripted {
    async fn check(&self, target: &CheckTarget) -> Result<(), HealthError> {
        if let Ok(mut p) = self.probes.lock() {
            p.push((target.service.clone(), tokio::time::Instant::now()));
        }
        assert!(!self.panic.load(Ordering::Relaxed), "scripted probe panic");
        if self.down.load(Ordering::Relaxed) {
            Err(HealthError::UnhealthyStatus {
                status: 500,
                expected: None,
            })
        } else {
            Ok(())
        }
    }
}

fn timed(service: &str, interval: u64, unhealthy: Option<u64>) -> CheckTarget {
    CheckTarget {
        service: service.into(),
        ..target_url(
            "http://127.0.0.1:1",
            HealthCheckSettings {
                interval: Duration::from_secs(interval),
                unhealthy_interval: unhealthy.map(Duration::from_secs),
                ..HealthCheckSettings::default()
            },
        )
    }
}

#[tokio::test(start_paused = true)]
async fn loops_follow_interval_and_flip_state() {
    let probe = Scripted::default();
    let t = timed("a@file", 10, None);
    let state = Arc::clone(&t.state);
    let (_tx, rx) = watch::channel(Arc::new(vec![t]));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_with(rx, probe.clone(), cancel.clone()));
    // The first probe comes within one interval (random delay), then one per interval.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(probe.count(), 1);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(probe.count(), 4);
    let times: Vec<_> = probe
        .probes
        .lock()
        .map(|p| p.iter().map(|(_, t)| *t).collect())
        .unwrap_or_default();
    for w in times.windows(2) {
        assert_eq!(w[1] - w[0], Duration::from_secs(10));
    }
    assert!(state.is_up(now_ms()));
    probe.down.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!state.active_up());
    probe.down.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(state.active_up());
    cancel.cancel();
    task.await.expect("stops on cancel");
    let n = probe.count();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(probe.count(), n, "no probe after cancel");
}

#[tokio::test(start_paused = true)]
async fn down_servers_wait_the_unhealthy_interval() {
    let probe = Scripted::default();
    probe.down.store(true, Ordering::Relaxed);
    let t = timed("a@file", 1, Some(3600));
    let state = Arc::clone(&t.state);
    let (_tx, rx) = watch::channel(Arc::new(vec![t]));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_with(rx, probe.clone(), cancel.clone()));
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert!(!state.active_up());
    assert_eq!(
        probe.count(),
        1,
        "one probe, then the long unhealthy interval"
    );
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(probe.count(), 2);
    cancel.cancel();
    task.await.expect("stops on cancel");
}

#[tokio::test(start_paused = true)]
async fn new_targets_restart_the_loops() {
    let probe = Scripted::default();
    let (tx, rx) = watch::channel(Arc::new(vec![timed("old@file", 10, None)]));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_with(rx, probe.clone(), cancel.clone()));
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert!(probe.count_for("old@file") >= 2);
    tx.send_replace(Arc::new(vec![timed("new@file", 10, None)]));
    tokio::time::sleep(Duration::from_millis(1)).await;
    let old = probe.count_for("old@file");
    tokio::time::sleep(Duration::from_secs(35)).await;
    assert_eq!(probe.count_for("old@file"), old, "old loops stopped");
    assert!(probe.count_for("new@file") >= 3);
    // No targets: nothing probed; the builder gone: the last targets are kept until cancelled.
    tx.send_replace(Arc::new(Vec::new()));
    tokio::time::sleep(Duration::from_millis(1)).await;
    let n = probe.count();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(probe.count(), n);
    drop(tx);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!task.is_finished());
    cancel.cancel();
    task.await.expect("stops on cancel");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_loop_takes_the_prober_down() {
    let probe = Scripted::default();
    probe.panic.store(true, Ordering::Relaxed);
    let (_tx, rx) = watch::channel(Arc::new(vec![timed("a@file", 1, None)]));
    let task = tokio::spawn(run_with(rx, probe, CancellationToken::new()));
    let e = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("prober ends")
        .expect_err("panics");
    assert!(e.is_panic());
}
