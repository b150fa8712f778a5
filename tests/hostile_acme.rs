//! Client-controlled work on the hot path, tried as a hostile client would, through the real binary:
//! - random `/.well-known/acme-challenge/<token>` requests are answered 404 quickly and without touching
//!   the shared challenge directory (a FIFO planted there, standing in for a stalled network file system,
//!   must not stall a worker), while a challenge another replica publishes is still answered;
//! - many TLS ClientHellos offering `acme-tls/1` are refused (no pending challenge) or answered (pending
//!   challenge) cheaply; the handshake rates are printed;
//! - a `rateLimit` keyed by a request header, flooded with 80,000 distinct values, keeps its memory and its
//!   per-request work bounded and still limits a steady client.
//!
//! The figures (requests/s, handshakes/s, RSS) are printed with `eprintln!`: run with `--nocapture` to see them.

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
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};
use support::{client, get_with, poll_until, rss_kb, tls_client, Backend, Gate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A host no router matches: a request the challenge responder does not answer gets 404.
const NO_ROUTE: &str = "acme.test";
static TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// A base64url token of 43 characters (32 random bytes), as CAs issue them.
fn random_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..43)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

/// A gate with an ACME resolver whose storage is `storage_dir/acme.json` (the CA is never contacted: no
/// router asks for a certificate), a router `app.test` → `backend`, and `web` on a free port.
fn acme_gate(storage_dir: &Path, backend: &str) -> Gate {
    let dynamic = format!(
        "http:\n  routers:\n    app:\n      rule: Host(`app.test`)\n      service: app\n  services:\n    app:\n      loadBalancer:\n        servers:\n          - url: \"{backend}\"\n"
    );
    let storage = storage_dir.join("acme.json");
    Gate::with_dynamic(
        &dynamic,
        &[
            "--certificatesresolvers.le.acme.email=ops@example.com",
            &format!(
                "--certificatesresolvers.le.acme.storage={}",
                storage.display()
            ),
            "--certificatesresolvers.le.acme.caserver=https://127.0.0.1:9/dir",
            "--certificatesresolvers.le.acme.httpchallenge.entrypoint=web",
        ],
    )
}

fn challenges_dir(storage_dir: &Path, kind: &str) -> PathBuf {
    storage_dir.join(".swarmgate").join("challenges").join(kind)
}

/// Publishes a challenge answer the way another replica does (temp file + rename).
fn publish(storage_dir: &Path, kind: &str, name: &str, key_auth: &str) {
    let dir = challenges_dir(storage_dir, kind);
    std::fs::create_dir_all(&dir).expect("mkdir");
    support::write_atomic(&dir.join(name), key_auth);
}

/// GET over a fresh connection with an overall deadline; None when it timed out or failed.
async fn get_within(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Option<(StatusCode, String)> {
    tokio::time::timeout(timeout, async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let code: u16 = text.get(9..12)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Some((StatusCode::from_u16(code).ok()?, body))
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_challenge_tokens_are_refused_from_memory_and_a_replicas_challenge_is_answered() {
    let backend = Backend::start("app").await;
    let storage = tempfile::tempdir().expect("tmp");
    // A FIFO under a valid token name: reading it blocks until a writer appears, as a file on a stalled
    // network file system does. Nothing on the request path may open it.
    let http01 = challenges_dir(storage.path(), "http-01");
    std::fs::create_dir_all(&http01).expect("mkdir");
    let fifo_token = random_token();
    let status = std::process::Command::new("mkfifo")
        .arg(http01.join(&fifo_token))
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let g = acme_gate(storage.path(), &backend.url);

    // A challenge published by another replica is answered.
    let token = random_token();
    let key_auth = format!("{token}.thumbprint");
    publish(storage.path(), "http-01", &token, &key_auth);
    let path = format!("/.well-known/acme-challenge/{token}");
    let answered = poll_until(Duration::from_secs(10), || async {
        get_within(g.web(), NO_ROUTE, &path, Duration::from_secs(2)).await
            == Some((StatusCode::OK, key_auth.clone()))
    })
    .await;
    assert!(answered, "replica's challenge not answered\n{}", g.logs());

    // The planted FIFO is answered 404 at once (a worker that opened it would hang here, and with it
    // every connection it serves).
    let fifo = get_within(
        g.web(),
        NO_ROUTE,
        &format!("/.well-known/acme-challenge/{fifo_token}"),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        fifo.map(|(s, _)| s),
        Some(StatusCode::NOT_FOUND),
        "request for a FIFO token stalled\n{}",
        g.logs()
    );

    // 10,000 random tokens (valid and invalid shapes) on keep-alive connections: all 404, in bounded time.
    let not_found = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (addr, not_found) = (g.web(), not_found.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            for i in 0..1250 {
                let token = match (w + i) % 10 {
                    0 => "..%2f..%2fetc%2fpasswd".to_string(),
                    1 => "a".repeat(2000),
                    2 => "short".to_string(),
                    _ => random_token(),
                };
                let r = get_with(
                    &c,
                    addr,
                    NO_ROUTE,
                    &format!("/.well-known/acme-challenge/{token}"),
                    &[],
                )
                .await;
                if r.status == StatusCode::NOT_FOUND {
                    not_found.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let all = async {
        for t in tasks {
            t.await.expect("task");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("10,000 random tokens not answered within 120 s");
    let elapsed = t0.elapsed();
    eprintln!(
        "hostile ACME: 10,000 random challenge tokens answered in {:.2} s ({:.0} requests/s)",
        elapsed.as_secs_f64(),
        10_000.0 / elapsed.as_secs_f64()
    );
    assert_eq!(not_found.load(Ordering::Relaxed), 10_000);

    // The real challenge is still answered, and so is the application.
    assert_eq!(
        get_within(g.web(), NO_ROUTE, &path, Duration::from_secs(5)).await,
        Some((StatusCode::OK, key_auth.clone()))
    );
    assert_eq!(
        get_within(g.web(), "app.test", "/", Duration::from_secs(5))
            .await
            .map(|(s, _)| s),
        Some(StatusCode::OK)
    );
    // Withdrawn by the replica: no longer answered.
    std::fs::remove_file(http01.join(&token)).expect("rm");
    let withdrawn = poll_until(Duration::from_secs(10), || async {
        get_within(g.web(), NO_ROUTE, &path, Duration::from_secs(2))
            .await
            .is_some_and(|(s, _)| s == StatusCode::NOT_FOUND)
    })
    .await;
    assert!(withdrawn, "withdrawn challenge still answered");
}

/// One TLS handshake offering `alpn` with SNI `sni`: the leaf certificate on success.
async fn handshake(
    addr: SocketAddr,
    sni: &str,
    cfg: Arc<rustls::ClientConfig>,
) -> Result<Vec<u8>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no certificate")?;
    Ok(leaf.as_ref().to_vec())
}

/// Handshakes per second over `run` with `tasks` concurrent clients; (succeeded, failed, rate).
async fn handshake_rate(
    addr: SocketAddr,
    sni: &'static str,
    cfg: Arc<rustls::ClientConfig>,
    run: Duration,
) -> (usize, usize, f64) {
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (ok, failed, cfg) = (ok.clone(), failed.clone(), cfg.clone());
        tasks.push(tokio::spawn(async move {
            while t0.elapsed() < run {
                match handshake(addr, sni, cfg.clone()).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let rate = (ok + failed) as f64 / t0.elapsed().as_secs_f64();
    (ok, failed, rate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_tls_hellos_are_answered_from_memory_without_a_config_each() {
    let backend = Backend::start("app").await;
    let storage = tempfile::tempdir().expect("tmp");
    let g = acme_gate(storage.path(), &backend.url);
    let acme = support::acme_tls_client();

    // Another replica's TLS-ALPN-01 challenge for alpn.test: answered with the RFC 8737 certificate.
    let key_auth = "tlsalpntoken.thumbprint";
    publish(storage.path(), "tls-alpn-01", "alpn.test", key_auth);
    let addr = g.web();
    let leaf = Arc::new(std::sync::Mutex::new(Vec::new()));
    let answered = poll_until(Duration::from_secs(10), || {
        let (acme, leaf) = (acme.clone(), leaf.clone());
        async move {
            match handshake(addr, "alpn.test", acme).await {
                Ok(l) => {
                    *leaf.lock().expect("lock") = l;
                    true
                }
                Err(_) => false,
            }
        }
    })
    .await;
    assert!(answered, "TLS-ALPN-01 challenge not answered\n{}", g.logs());
    let leaf = leaf.lock().expect("lock").clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).expect("x509");
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
        .expect("acmeIdentifier");
    assert!(ext.critical);
    assert_eq!(
        &ext.value[2..],
        Sha256::digest(key_auth.as_bytes()).as_slice()
    );

    // Many hellos for names without a challenge: refused, cheaply; rates before/after are printed.
    let run = Duration::from_secs(3);
    let (ok, failed, rate) = handshake_rate(g.web(), "nochallenge.test", acme.clone(), run).await;
    eprintln!("hostile ACME: acme-tls/1 without a challenge: {rate:.0} handshakes/s ({failed} refused, {ok} completed)");
    assert_eq!(
        ok, 0,
        "an acme-tls/1 handshake without a challenge completed"
    );
    assert!(failed > 0);
    let (ok, failed, rate) = handshake_rate(g.web(), "alpn.test", acme.clone(), run).await;
    eprintln!("hostile ACME: acme-tls/1 with a pending challenge: {rate:.0} handshakes/s ({ok} completed, {failed} failed)");
    assert!(ok > 0);
    assert_eq!(failed, 0);

    // Ordinary TLS is unaffected.
    let normal = handshake(g.web(), "app.test", tls_client(None, &[b"http/1.1"], TLS13)).await;
    assert!(normal.is_ok(), "{normal:?}");
}

/// Sends `count` pipelined GETs with `X-Client: <prefix>-<i>-<padding>` over one connection, in batches;
/// returns how many were answered 429 and 200.
async fn flood(addr: SocketAddr, prefix: usize, count: usize) -> (usize, usize) {
    let pad = "x".repeat(1000);
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut limited, mut ok) = (0, 0);
    let mut buf = Vec::with_capacity(1 << 16);
    let mut sent = 0;
    while sent < count {
        let batch = (count - sent).min(128);
        let mut out = String::new();
        for i in sent..sent + batch {
            out.push_str(&format!(
                "GET / HTTP/1.1\r\nHost: rl.test\r\nX-Client: {prefix}-{i}-{pad}\r\n\r\n"
            ));
        }
        s.write_all(out.as_bytes()).await.expect("write");
        let mut answered = 0;
        while answered < batch {
            // Parse whole responses from the buffer (status line, headers, Content-Length body).
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                assert!(!head.contains("transfer-encoding"), "{head}");
                if buf.len() < end + 4 + len {
                    break;
                }
                match head.get(9..12) {
                    Some("429") => limited += 1,
                    Some("200") => ok += 1,
                    other => panic!("unexpected status {other:?}: {head}"),
                }
                buf.drain(..end + 4 + len);
                answered += 1;
            }
            if answered == batch {
                break;
            }
            let mut chunk = [0u8; 65536];
            let n = s.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed after {} answers", sent + answered);
            buf.extend_from_slice(&chunk[..n]);
        }
        sent += batch;
    }
    (limited, ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_by_header_stays_bounded_under_80k_distinct_values() {
    let backend = Backend::start("rl").await;
    // One request per minute per source, bursts of 5: every flooded source stays "active" (its bucket is
    // not full again) for the whole flood, so the table fills and stays full.
    let dynamic = format!(
        "http:\n  routers:\n    r:\n      rule: Host(`rl.test`)\n      service: s\n      middlewares: [rl]\n  middlewares:\n    rl:\n      rateLimit:\n        average: 1\n        period: 1m\n        burst: 5\n        sourceCriterion:\n          requestHeaderName: X-Client\n  services:\n    s:\n      loadBalancer:\n        servers:\n          - url: \"{}\"\n",
        backend.url
    );
    let g = Gate::with_dynamic(&dynamic, &[]);
    let c = client();
    let steady = || get_with(&c, g.web(), "rl.test", "/", &[("x-client", "steady")]);
    assert!(
        poll_until(Duration::from_secs(10), || async {
            steady().await.status == StatusCode::OK
        })
        .await,
        "{}",
        g.logs()
    );
    let rss_before = rss_kb(g.pid());

    // The steady client keeps asking every 50 ms while 4 connections flood 80,000 distinct values.
    let t0 = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let steady_ok = Arc::new(AtomicUsize::new(0));
    let steady_task = {
        let (stop, steady_ok, c, addr) = (stop.clone(), steady_ok.clone(), c.clone(), g.web());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = get_with(&c, addr, "rl.test", "/", &[("x-client", "steady")]).await;
                if r.status == StatusCode::OK {
                    steady_ok.fetch_add(1, Ordering::Relaxed);
                }
                // Pacing, not waiting: the steady client's request rate.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut floods = Vec::new();
    for p in 0..4 {
        floods.push(tokio::spawn(flood(g.web(), p, 20_000)));
    }
    let all = async {
        let (mut limited, mut ok) = (0, 0);
        for f in floods {
            let (l, o) = f.await.expect("flood");
            limited += l;
            ok += o;
        }
        (limited, ok)
    };
    // About 35-45 s for a debug build on two busy cores. With per-request work that grows with the table
    // (an O(n) pass per new source once 65,536 are tracked) it takes hours.
    let Ok((limited, ok)) = tokio::time::timeout(Duration::from_secs(300), all).await else {
        panic!(
            "80,000 requests not answered within 300 s (per-request work grows with the table?); RSS {rss_before} → {:?} KiB",
            rss_kb(g.pid())
        );
    };
    let elapsed = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    steady_task.await.expect("steady");
    let rss_after = rss_kb(g.pid());
    let steady_ok = steady_ok.load(Ordering::Relaxed);
    eprintln!(
        "hostile rateLimit: 80,000 distinct X-Client values in {:.1} s ({:.0} requests/s): {ok} allowed, {limited} limited; RSS {} → {} KiB; steady client allowed {steady_ok} times",
        elapsed.as_secs_f64(),
        80_000.0 / elapsed.as_secs_f64(),
        rss_before,
        rss_after
    );
    assert_eq!(ok + limited, 80_000);
    assert!(limited > 0, "the flood was never limited");
    // The steady client has its own bucket: burst 5 (its first was spent) plus one per minute.
    let budget = 5 + (elapsed.as_secs() / 60) as usize + 1;
    assert!(
        steady_ok <= budget,
        "steady client allowed {steady_ok} times (budget {budget})"
    );
    // 80,000 keys of 1 KiB each would be > 78 MiB if kept; the table holds a fixed-size entry per source.
    assert!(
        rss_after.saturating_sub(rss_before) < 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    // The gate still serves.
    assert_eq!(steady().await.status, StatusCode::TOO_MANY_REQUESTS);
}
