//! Hostile clients against connection bounds: every state a client can hold a connection in ends within
//! its configured bound (`respondingTimeouts`), and running out of file descriptors neither floods the log
//! nor stops serving once the flood ends. Timeouts are set to a second or two so the suite stays fast;
//! each wait is bounded, and each test checks both that the bound is kept and that it is not cut short.

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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{catch_all_config, get, poll_until, self_signed, tls_client, Backend, Gate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const FLAG: &str = "--entryPoints.web.transport.respondingTimeouts.";

fn flag(name: &str, value: &str) -> String {
    format!("{FLAG}{name}={value}")
}

fn start(url: &str, flags: &[String]) -> Gate {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Gate::with_dynamic(&catch_all_config(url), &flags)
}

/// Reads (discarding) until the server closes; the time that took, or None if still open after `max`.
async fn closed_within(s: &mut TcpStream, max: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let left = max.checked_sub(t0.elapsed())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t0.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads until `needle` was received or the connection closed (bounded by `max`); everything read.
async fn read_until(s: &mut TcpStream, needle: &str, max: Duration) -> String {
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while !String::from_utf8_lossy(&got).contains(needle) {
        let Some(left) = max.checked_sub(t0.elapsed()) else {
            break;
        };
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// One GET over a fresh connection; whatever came back within 2 s (empty when refused or closed).
async fn raw_get(addr: SocketAddr) -> String {
    let Ok(Ok(mut s)) =
        tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await
    else {
        return String::new();
    };
    if s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .is_err()
    {
        return String::new();
    }
    read_until(&mut s, "Name: ", Duration::from_secs(2)).await
}

fn assert_bound(took: Option<Duration>, min: Duration, max_what: &str) {
    let took = took.unwrap_or_else(|| panic!("still open: {max_what}"));
    assert!(
        took >= min,
        "closed after {took:?}, before the bound {min:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_byte_client_on_a_plain_port_is_closed_at_the_header_bound() {
    let b = Backend::start("a").await;
    // readTimeout alone bounds the first bytes too (the header bound is the smaller of the two).
    let gate = start(
        &b.url,
        &[flag("readTimeout", "1s"), flag("readHeaderTimeout", "0")],
    );
    let mut s = TcpStream::connect(gate.web()).await.expect("connect");
    let took = closed_within(&mut s, Duration::from_secs(4)).await;
    assert_bound(took, Duration::from_millis(900), "zero-byte client");
    // A client that does send is still served.
    assert_eq!(get(gate.web(), "x", "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_byte_partial_handshake_and_silent_tls_clients_are_closed_at_the_header_bound() {
    let b = Backend::start("a").await;
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, key) = self_signed(&["a.test"]);
    let (cp, kp) = (dir.path().join("a.crt"), dir.path().join("a.key"));
    std::fs::write(&cp, &cert).expect("w");
    std::fs::write(&kp, &key).expect("w");
    let text = format!(
        "{}tls:\n  certificates:\n    - certFile: {}\n      keyFile: {}\n",
        catch_all_config(&b.url).replace("      service: s\n", "      service: s\n      tls: {}\n"),
        cp.display(),
        kp.display()
    );
    let gate = Gate::with_dynamic(&text, &[&flag("readHeaderTimeout", "1s")]);
    let addr = gate.web();

    // Zero bytes.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    assert_bound(
        closed_within(&mut s, Duration::from_secs(4)).await,
        Duration::from_millis(900),
        "zero-byte client on the TLS port",
    );

    // The first bytes of a ClientHello, then silence.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("w");
    assert_bound(
        closed_within(&mut s, Duration::from_secs(4)).await,
        Duration::from_millis(900),
        "partial ClientHello",
    );

    // A complete handshake, then no request.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let connector = tokio_rustls::TlsConnector::from(tls_client(
        Some(&cert),
        &[b"http/1.1"],
        rustls::ALL_VERSIONS,
    ));
    let name = rustls::pki_types::ServerName::try_from("a.test").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    let t0 = Instant::now();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(4), tls.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "silent TLS client still open: {read:?}"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_are_closed_at_the_header_bound_though_bytes_keep_coming() {
    let b = Backend::start("a").await;
    let gate = start(&b.url, &[flag("readHeaderTimeout", "1s")]);
    let mut s = TcpStream::connect(gate.web()).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("w");
    let t0 = Instant::now();
    let mut closed = None;
    // One header byte every 100 ms, for up to 5 s.
    for i in 0..50u32 {
        if s.write_all(b"X").await.is_err() {
            closed = Some(t0.elapsed());
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = Some(t0.elapsed());
                break;
            }
            Ok(Ok(n)) => panic!(
                "answered a slowloris at byte {i}: {}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(_) => {}
        }
    }
    assert_bound(closed, Duration::from_millis(800), "slowloris");
    assert!(
        closed.is_some_and(|c| c < Duration::from_secs(3)),
        "{closed:?}"
    );
}

/// A backend that reads request heads and never answers, noting when each of its connections is closed
/// by the proxy.
struct Sink {
    url: String,
    accepted: Arc<AtomicUsize>,
    released: Arc<AtomicUsize>,
}

async fn sink() -> Sink {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let released = Arc::new(AtomicUsize::new(0));
    let (a, r) = (accepted.clone(), released.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let r = r.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                r.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    Sink {
        url,
        accepted,
        released,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408_and_its_backend_connection_is_released() {
    let backend = sink().await;
    let gate = start(
        &backend.url,
        &[flag("bodyIdleTimeout", "1s"), flag("readTimeout", "0")],
    );
    let mut s = TcpStream::connect(gate.web()).await.expect("connect");
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabcd")
        .await
        .expect("w");
    let t0 = Instant::now();
    let answer = read_until(&mut s, "\r\n\r\n", Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "after {:?}: {answer:?}",
        t0.elapsed()
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 1);
    assert!(
        poll_until(Duration::from_secs(2), || async {
            backend.released.load(Ordering::SeqCst) == 1
        })
        .await,
        "the backend connection is still held"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_timeout_bounds_a_whole_body_that_keeps_trickling() {
    let backend = sink().await;
    let gate = start(
        &backend.url,
        &[
            flag("bodyIdleTimeout", "10s"),
            flag("readTimeout", "1500ms"),
        ],
    );
    let mut s = TcpStream::connect(gate.web()).await.expect("connect");
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        .await
        .expect("w");
    let t0 = Instant::now();
    let mut answer = String::new();
    for _ in 0..40 {
        let _ = s.write_all(b"a").await;
        answer.push_str(&read_until(&mut s, "\r\n\r\n", Duration::from_millis(100)).await);
        if !answer.is_empty() {
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1300) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_that_makes_progress_is_not_cut() {
    let b = Backend::start("a").await;
    let gate = start(
        &b.url,
        &[flag("bodyIdleTimeout", "1s"), flag("readTimeout", "0")],
    );
    let mut s = TcpStream::connect(gate.web()).await.expect("connect");
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
        .await
        .expect("w");
    // 8 bytes, one every 400 ms: 3.2 s in all, never silent for the 1 s bound.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        s.write_all(b"z").await.expect("still open");
    }
    let answer = read_until(&mut s, "Body-Bytes", Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_timeout_closes_a_client_that_does_not_read_its_response() {
    let b = Backend::start("a").await;
    let gate = start(&b.url, &[flag("writeTimeout", "1s")]);
    assert_closed_while_not_reading(&gate).await;
}

/// Asks `gate` for 64 MB (far more than the socket buffers hold), does not read for 2.5 s, then drains:
/// the connection must have been closed part way.
async fn assert_closed_while_not_reading(gate: &Gate) {
    let mut s = TcpStream::connect(gate.web()).await.expect("connect");
    let size = 64usize << 20;
    s.write_all(format!("GET /data?size={size} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("w");
    let (closed, got) =
        drain_after(&mut s, Duration::from_millis(2500), Duration::from_secs(10)).await;
    assert!(closed, "still open after draining {got} bytes");
    assert!(got < size, "the whole response was written ({got} bytes)");
}

/// Reads `s` after `pause` until it closes (or `limit`): whether it closed, and how many bytes came.
async fn drain_after(s: &mut TcpStream, pause: Duration, limit: Duration) -> (bool, usize) {
    // Deliberate gap: the client does not read for `pause`, the stall under test.
    tokio::time::sleep(pause).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let t0 = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (true, got),
            Ok(Ok(n)) => got += n,
            Err(_) => return (false, got),
        }
        if t0.elapsed() > limit {
            return (false, got);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_timeout_closes_a_client_that_stops_reading_even_without_write_timeout() {
    let b = Backend::start("a").await;
    // writeTimeout stays 0 (Traefik's default): only the stalled-write bound can close this client.
    let gate = start(&b.url, &[flag("sendTimeout", "1s")]);
    assert_closed_while_not_reading(&gate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_timeout_does_not_cut_a_slow_download_that_makes_progress() {
    let b = Backend::start("a").await;
    let gate = start(&b.url, &[flag("sendTimeout", "2s")]);
    let mut s = TcpStream::connect(gate.web()).await.expect("connect");
    let size = 16usize << 20;
    s.write_all(
        format!("GET /data?size={size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("w");
    // Read up to 1 MiB every 250 ms: slower than the proxy writes. The kernel wakes a blocked writer only
    // when half of its queued bytes have drained (a few MiB on loopback), so each stall lasts about half a
    // second here: under the 2 s bound, and a reader that makes progress is never cut.
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let t0 = Instant::now();
    loop {
        // Pacing, not waiting: the slow reader reads every 250 ms.
        tokio::time::sleep(Duration::from_millis(250)).await;
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => got += n,
            other => panic!("read failed after {got} bytes: {other:?}"),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "download took too long"
        );
    }
    assert!(got > size, "closed after {got} of {size} body bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http1_keep_alive_connection_is_closed_after_idle_timeout() {
    let b = Backend::start("a").await;
    let gate = start(
        &b.url,
        &[flag("idleTimeout", "1s"), flag("readHeaderTimeout", "10s")],
    );
    let mut s = TcpStream::connect(gate.web()).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("w");
    let answer = read_until(&mut s, "Name: a", Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let took = closed_within(&mut s, Duration::from_secs(5)).await;
    assert_bound(took, Duration::from_millis(800), "idle keep-alive");
    assert!(took.is_some_and(|t| t < Duration::from_secs(3)), "{took:?}");
}

/// One HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_answering_pings_gets_goaway_after_idle_timeout() {
    let b = Backend::start("a").await;
    let gate = start(
        &b.url,
        &[flag("idleTimeout", "1s"), flag("readHeaderTimeout", "10s")],
    );
    let mut s = TcpStream::connect(gate.web()).await.expect("connect");
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
                                       // GET / with :authority x: static-table indexes 2 (GET), 6 (http), 4 (/), literal authority.
    out.extend(frame(0x1, 0x5, 1, &[0x82, 0x86, 0x84, 0x41, 0x01, b'x']));
    s.write_all(&out).await.expect("w");
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let mut goaway_at = None;
    let mut answered = false;
    let mut last_ping = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        // The client stays busy with PINGs every 200 ms.
        if last_ping.elapsed() >= Duration::from_millis(200) {
            last_ping = Instant::now();
            if s.write_all(&frame(0x6, 0, 0, &[7; 8])).await.is_err() {
                break;
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(Duration::from_millis(50), s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => continue,
        }
        while buf.len() >= 9 {
            let len =
                (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            match buf[3] {
                0x1 => answered = true, // HEADERS of the answer
                0x7 => goaway_at = goaway_at.or(Some(t0.elapsed())),
                0x4 if buf[4] & 1 == 0 => {
                    let _ = s.write_all(&frame(0x4, 1, 0, &[])).await; // SETTINGS ack
                }
                0x6 if buf[4] & 1 == 0 => {
                    // The server's own keep-alive PING: answered, as a live client does.
                    let _ = s.write_all(&frame(0x6, 1, 0, &buf[9..9 + len])).await;
                }
                _ => {}
            }
            buf.drain(..9 + len);
        }
    }
    assert!(answered, "the request was not answered");
    let at = goaway_at.expect("no GOAWAY while the client kept sending PINGs");
    assert!(
        at >= Duration::from_millis(800) && at < Duration::from_secs(3),
        "GOAWAY after {at:?}"
    );
}

/// swarmgate under `prlimit --nofile=<nofile>`, one worker, serving [`dynamic`] to `url`.
fn limited(nofile: &str, url: &str) -> Gate {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("dynamic.yml");
    std::fs::write(&file, catch_all_config(url)).expect("w");
    let args = [
        "--entrypoints.web.address=127.0.0.1:0".to_string(),
        format!("--providers.file.filename={}", file.display()),
    ];
    let limit = format!("--nofile={nofile}");
    Gate::start_under(
        &["prlimit", &limit],
        dir,
        &args,
        1,
        &[("SWARMGATE_WORKERS", "1")],
    )
}

fn max_open_files(pid: u32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_default()
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
    let b = Backend::start("a").await;
    let gate = limited("256:4096", &b.url);
    let web = gate.web();
    // prlimit execs the binary: same pid.
    assert_eq!(max_open_files(gate.pid()), "4096 4096");
    assert!(
        gate.logs().contains("open files limit 4096 (was 256"),
        "{}",
        gate.logs()
    );
    assert_eq!(get(web, "x", "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_logs_a_few_lines_and_serves_again_after_the_flood() {
    let b = Backend::start("a").await;
    let gate = limited("64:64", &b.url);
    let web = gate.web();
    // Hold far more connections than 64 descriptors allow, for 3 s.
    let mut flood = Vec::new();
    for _ in 0..150 {
        if let Ok(s) = TcpStream::connect(web).await {
            flood.push(s);
        }
    }
    let saw_emfile = poll_until(Duration::from_secs(3), || async {
        gate.logs().contains("accept failed")
    })
    .await;
    assert!(saw_emfile, "no accept failure:\n{}", gate.logs());
    // Deliberate gap: the flood is held 3 s, the window in which a log flood would happen (and must not).
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(flood);
    let warns = gate
        .logs()
        .lines()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert!(warns <= 3, "{warns} accept warnings:\n{}", gate.logs());
    let served = poll_until(Duration::from_secs(10), || async {
        raw_get(web).await.starts_with("HTTP/1.1 200")
    })
    .await;
    assert!(served, "not served after the flood:\n{}", gate.logs());
}
