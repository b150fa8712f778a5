//! Hostile clients against the protocol layer: HTTP/1 request smuggling and HTTP/2 floods. These attacks
//! are refused today; the tests keep them refused.
//!
//! Each HTTP/1 case is sent over raw TCP to a gate whose catch-all router leads to a recording backend;
//! the test checks exactly what the client gets back today (400 and a close for a malformed head; for both
//! framings at once, the request served by its Transfer-Encoding alone and the connection closed after it;
//! 400 and a close for a broken chunked body) and that nothing smuggled reached the backend.
//!
//! Each HTTP/2 case speaks prior-knowledge h2c with hand-made frames and hand-encoded HPACK, checks that
//! the flooding connection is refused (GOAWAY ENHANCE_YOUR_CALM or a close) or fully served within a
//! deadline, that the gate's resident memory stays bounded, and that a new client is served afterwards.
//! Every read has a deadline.

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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{catch_all_config, get, rss_kb, status_kb, Gate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// A backend that records every byte it receives and answers each complete request (head plus its
/// `Content-Length` or chunked body) with a small 200, keeping the connection open. A request whose body
/// never completes is never answered, so a broken body cannot turn into a 200 by a race.
struct Recorder {
    url: String,
    seen: Arc<Mutex<Vec<u8>>>,
    requests: Arc<AtomicUsize>,
}

impl Recorder {
    async fn start() -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let (seen2, requests2) = (seen.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(record(s, seen2.clone(), requests2.clone()));
            }
        });
        Recorder {
            url,
            seen,
            requests,
        }
    }

    /// Every request line the backend received (`METHOD target HTTP/x`), in order.
    fn request_lines(&self) -> Vec<String> {
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        String::from_utf8_lossy(&seen)
            .split("\r\n")
            .filter(|l| {
                let mut words = l.split(' ');
                let method = words.next().unwrap_or("");
                !method.is_empty()
                    && method.bytes().all(|b| b.is_ascii_uppercase())
                    && words.next_back().is_some_and(|v| v.starts_with("HTTP/"))
            })
            .map(str::to_string)
            .collect()
    }

    /// Everything received, as text.
    fn text(&self) -> String {
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        String::from_utf8_lossy(&seen).into_owned()
    }
}

async fn record(mut s: TcpStream, seen: Arc<Mutex<Vec<u8>>>, requests: Arc<AtomicUsize>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        // Answer every complete request in `buf`.
        while let Some(end) = complete_request(&buf) {
            buf.drain(..end);
            requests.fetch_add(1, Ordering::SeqCst);
            if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .is_err()
            {
                return;
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Ok(mut all) = seen.lock() {
                    all.extend_from_slice(&chunk[..n]);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

/// The length of the first complete request in `buf` (head and body), if it is all there.
fn complete_request(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if head.contains("\r\ntransfer-encoding:") {
        let body = &buf[head_end..];
        let end = body.windows(5).position(|w| w == b"0\r\n\r\n")? + 5;
        return Some(head_end + end);
    }
    let len = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (buf.len() >= head_end + len).then_some(head_end + len)
}

/// Samples a process's RSS every 5 ms until dropped. `peak()` is the largest sample or the kernel's
/// high-water mark (`VmHWM`, reset at start through `clear_refs` where allowed), whichever is larger, so a
/// spike between two samples is not missed.
struct RssWatch {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    pid: u32,
}

impl RssWatch {
    fn start(pid: u32) -> RssWatch {
        // Best effort: without it the high-water mark includes start-up, which only makes the check stricter.
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        let peak = Arc::new(AtomicU64::new(rss_kb(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                p.fetch_max(rss_kb(pid), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        RssWatch { peak, stop, pid }
    }

    fn peak(&self) -> u64 {
        self.peak
            .load(Ordering::SeqCst)
            .max(status_kb(self.pid, "VmHWM:"))
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------------
// HTTP/1 smuggling
// ---------------------------------------------------------------------------------------------------

/// What the client got for one raw request.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// A response with this status, then the connection was closed.
    StatusThenClose(u16),
    /// A response with this status, and the connection stayed open.
    StatusKeptOpen(u16),
    /// Closed without any response.
    Closed,
    /// Nothing within the deadline.
    Hang,
}

/// Sends `request` on a new connection; reads until the server closes it or 3 s pass.
async fn send_raw(addr: SocketAddr, request: &[u8]) -> (Outcome, String) {
    let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect");
    // The server may refuse and close before all is written: that is fine.
    let _ = s.write_all(request).await;
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let closed = loop {
        let Some(left) = Duration::from_secs(3).checked_sub(t0.elapsed()) else {
            break false;
        };
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    };
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse::<u16>().ok());
    let outcome = match (status, closed) {
        (Some(c), true) => Outcome::StatusThenClose(c),
        (Some(c), false) => Outcome::StatusKeptOpen(c),
        (None, true) => Outcome::Closed,
        (None, false) => Outcome::Hang,
    };
    (outcome, text)
}

/// One smuggling attempt: its name (also its path, so the backend's log tells the cases apart), the raw
/// bytes, what the proxy answers today, and the one request line the backend may see for it (when the
/// head is valid and only the body is broken, the head may be forwarded before the body fails).
struct Case {
    name: &'static str,
    request: Vec<u8>,
    expect: Outcome,
    may_forward: Option<&'static str>,
}

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

fn cases() -> Vec<Case> {
    let case = |name, head: &str, body: &str, expect, may_forward| Case {
        name,
        request: format!("{head}{body}{SMUGGLED}").into_bytes(),
        expect,
        may_forward,
    };
    let mut nul = b"GET /nul HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n".to_vec();
    nul.extend_from_slice(SMUGGLED.as_bytes());
    vec![
        // Both framings: Transfer-Encoding wins (RFC 9112 §6.3), the Content-Length is dropped, the request
        // is served and the connection closed after it, so what follows the chunked body is never read.
        // If the proxy went by the Content-Length instead, `/smuggled` would reach the backend in the body.
        case(
            "cl-te",
            &format!(
                "POST /cl-te HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
                5 + SMUGGLED.len()
            ),
            "0\r\n\r\n",
            Outcome::StatusThenClose(200),
            Some("POST /cl-te HTTP/1.1"),
        ),
        case(
            "te-cl",
            "POST /te-cl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
            "0\r\n\r\n",
            Outcome::StatusThenClose(200),
            Some("POST /te-cl HTTP/1.1"),
        ),
        case(
            "two-cl",
            "POST /two-cl HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 35\r\n\r\n",
            "",
            Outcome::StatusThenClose(400),
            None,
        ),
        case(
            "obs-fold",
            "POST /obs-fold HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nX-Fold: a\r\n Transfer-Encoding: chunked\r\n\r\n",
            "",
            Outcome::StatusThenClose(400),
            None,
        ),
        case(
            "obs-fold-tab",
            "POST /obs-fold-tab HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nX-Fold: a\r\n\tTransfer-Encoding: chunked\r\n\r\n",
            "",
            Outcome::StatusThenClose(400),
            None,
        ),
        case(
            "bare-cr",
            "POST /bare-cr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nX-A: a\rTransfer-Encoding: chunked\r\n\r\n",
            "",
            Outcome::StatusThenClose(400),
            None,
        ),
        case(
            "chunk-overflow",
            "POST /chunk-overflow HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            "ffffffffffffffffff\r\nx\r\n0\r\n\r\n",
            // The head is valid, so it is routed; the body then fails: the client's fault, 400, and a close.
            Outcome::StatusThenClose(400),
            Some("POST /chunk-overflow HTTP/1.1"),
        ),
        case(
            "te-chunked-identity",
            "POST /te-chunked-identity HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            "0\r\n\r\n",
            Outcome::StatusThenClose(400),
            None,
        ),
        case(
            "te-xchunked",
            "POST /te-xchunked HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "0\r\n\r\n",
            Outcome::StatusThenClose(400),
            None,
        ),
        case(
            "space-before-colon",
            "GET /space-before-colon HTTP/1.1\r\nHost : x\r\n\r\n",
            "",
            Outcome::StatusThenClose(400),
            None,
        ),
        case(
            "te-space-before-colon",
            "POST /te-space-before-colon HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n",
            "0\r\n\r\n",
            Outcome::StatusThenClose(400),
            None,
        ),
        Case {
            name: "nul",
            request: nul,
            expect: Outcome::StatusThenClose(400),
            may_forward: None,
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_attempts_are_refused_or_closed_and_nothing_smuggled_reaches_the_backend() {
    let rec = Recorder::start().await;
    let gate = Gate::with_dynamic(&catch_all_config(&rec.url), &[]);
    let addr = gate.web();

    // Positive control: a legitimate request reaches the recorder, which logs its request line.
    let (legit, text) = send_raw(
        addr,
        b"GET /legit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(legit, Outcome::StatusThenClose(200), "{text:?}");
    assert_eq!(rec.request_lines(), vec!["GET /legit HTTP/1.1"]);

    let mut failures = Vec::new();
    let cases = cases();
    for c in &cases {
        let (got, text) = send_raw(addr, &c.request).await;
        println!("{:<22} -> {got:?}", c.name);
        if got != c.expect {
            failures.push(format!(
                "{}: expected {:?}, got {got:?}: {text:?}",
                c.name, c.expect
            ));
        }
    }
    // Every case has been answered or closed: whatever the proxy forwarded has arrived.
    let lines = rec.request_lines();
    println!("backend request lines: {lines:?}");
    println!("backend received: {:?}", rec.text());
    for line in &lines[1..] {
        let allowed = cases.iter().any(|c| c.may_forward == Some(line.as_str()));
        if !allowed {
            failures.push(format!("the backend received {line:?}"));
        }
    }
    let all = rec.text();
    // A request the proxy forwarded carries one framing only.
    for c in &cases {
        let Some(line) = c.may_forward else { continue };
        let Some(at) = all.find(line) else { continue };
        let head = all[at..].split("\r\n\r\n").next().unwrap_or("");
        if head.contains("\r\ncontent-length:") && head.contains("\r\ntransfer-encoding:") {
            failures.push(format!("{}: forwarded with two framings: {head:?}", c.name));
        }
    }
    assert!(
        !all.contains("/smuggled"),
        "SMUGGLED: the backend received {all:?}"
    );
    assert!(failures.is_empty(), "{failures:#?}");
    // The gate still serves.
    assert_eq!(get(addr, "x", "/after").await.status, 200);
}

// ---------------------------------------------------------------------------------------------------
// HTTP/2 floods
// ---------------------------------------------------------------------------------------------------

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
/// RST_STREAM / GOAWAY error code CANCEL.
const CANCEL: u32 = 0x8;
/// GOAWAY error code ENHANCE_YOUR_CALM: the peer is refused for the load it generates.
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with a `prefix`-bit prefix, OR-ed into `flags` (RFC 7541 §5.1).
fn hpack_int(out: &mut Vec<u8>, prefix: u8, flags: u8, mut v: usize) {
    let max = (1usize << prefix) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// An HPACK string literal without Huffman coding.
fn hpack_str(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 7, 0, s.len());
    out.extend_from_slice(s);
}

/// `GET /` on `http` with `:authority x` (static indexes 2, 6, 4; literal authority with indexed name 1,
/// which also enters the dynamic table).
const GET_X: &[u8] = &[0x82, 0x86, 0x84, 0x41, 0x01, b'x'];

/// What came back on an HTTP/2 connection.
#[derive(Debug, Default)]
struct Seen {
    /// The error code of the first GOAWAY.
    goaway: Option<u32>,
    /// When the first GOAWAY or the close came, since the reader started.
    ended_at: Option<Duration>,
    /// The connection was closed by the server.
    closed: bool,
    /// Streams that got a 200 (a HEADERS block starting with indexed `:status 200`).
    ok: Vec<u32>,
    /// Other response HEADERS: stream and the first bytes of the block.
    other_headers: Vec<(u32, Vec<u8>)>,
    /// RST_STREAM frames: stream and error code.
    resets: usize,
    first_reset_code: Option<u32>,
    pings_acked: usize,
    settings_acked: usize,
}

/// Reads frames from `r` into `seen` until the server closes or `until`; sets `ended` at GOAWAY or close.
async fn read_frames(
    mut r: OwnedReadHalf,
    seen: Arc<Mutex<Seen>>,
    ended: Arc<AtomicBool>,
    until: Instant,
) {
    let t0 = Instant::now();
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let Some(left) = until.checked_duration_since(Instant::now()) else {
            return;
        };
        let n = match tokio::time::timeout(left, r.read(&mut chunk)).await {
            Err(_) => return,
            Ok(Ok(0)) | Ok(Err(_)) => {
                if let Ok(mut s) = seen.lock() {
                    s.closed = true;
                    s.ended_at = s.ended_at.or(Some(t0.elapsed()));
                }
                ended.store(true, Ordering::SeqCst);
                return;
            }
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        while buf.len() - at >= 9 {
            let b = &buf[at..];
            let len = (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
            if b.len() < 9 + len {
                break;
            }
            let (kind, flags) = (b[3], b[4]);
            let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff;
            let payload = &b[9..9 + len];
            if let Ok(mut s) = seen.lock() {
                match kind {
                    HEADERS if payload.first() == Some(&0x88) => s.ok.push(stream),
                    HEADERS => s
                        .other_headers
                        .push((stream, payload.iter().take(8).copied().collect())),
                    RST_STREAM => {
                        s.resets += 1;
                        if payload.len() >= 4 && s.first_reset_code.is_none() {
                            s.first_reset_code = Some(u32::from_be_bytes([
                                payload[0], payload[1], payload[2], payload[3],
                            ]));
                        }
                    }
                    GOAWAY if payload.len() >= 8 && s.goaway.is_none() => {
                        s.goaway = Some(u32::from_be_bytes([
                            payload[4], payload[5], payload[6], payload[7],
                        ]));
                        s.ended_at = s.ended_at.or(Some(t0.elapsed()));
                        ended.store(true, Ordering::SeqCst);
                    }
                    PING if flags & 1 == 1 => s.pings_acked += 1,
                    SETTINGS if flags & 1 == 1 => s.settings_acked += 1,
                    _ => {}
                }
            }
            at += 9 + len;
        }
        buf.drain(..at);
    }
}

/// A raw h2c connection: the write half, and a reader task recording what comes back.
struct H2 {
    w: OwnedWriteHalf,
    seen: Arc<Mutex<Seen>>,
    ended: Arc<AtomicBool>,
    reader: tokio::task::JoinHandle<()>,
}

impl H2 {
    /// Connects, sends the preface and an empty SETTINGS, and starts reading (for at most `read_for`).
    async fn connect(addr: SocketAddr, read_for: Duration) -> H2 {
        let s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        let (r, mut w) = s.into_split();
        let mut out = PREFACE.to_vec();
        out.extend(frame(SETTINGS, 0, 0, &[]));
        w.write_all(&out).await.expect("preface");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let ended = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn(read_frames(
            r,
            seen.clone(),
            ended.clone(),
            Instant::now() + read_for,
        ));
        H2 {
            w,
            seen,
            ended,
            reader,
        }
    }

    /// Writes `count` chunks made by `make(i)` until the server ends the connection (GOAWAY or close), a
    /// write fails, or a write stalls for 2 s; how many chunks were written.
    async fn flood(&mut self, count: usize, mut make: impl FnMut(usize) -> Vec<u8>) -> usize {
        for i in 0..count {
            if self.ended.load(Ordering::SeqCst) {
                return i;
            }
            let chunk = make(i);
            match tokio::time::timeout(Duration::from_secs(2), self.w.write_all(&chunk)).await {
                Ok(Ok(())) => {}
                _ => return i,
            }
        }
        count
    }

    /// Waits (bounded by the reader's deadline) until `done(seen)` holds or the reader stops.
    async fn wait_for(&self, max: Duration, done: impl Fn(&Seen) -> bool) -> bool {
        let t0 = Instant::now();
        loop {
            let ok = self.seen.lock().map(|s| done(&s)).unwrap_or(false);
            if ok {
                return true;
            }
            if self.reader.is_finished() || t0.elapsed() > max {
                return self.seen.lock().map(|s| done(&s)).unwrap_or(false);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn summary(&self) -> String {
        self.seen
            .lock()
            .map(|s| format!("{s:?}"))
            .unwrap_or_default()
    }
}

impl Drop for H2 {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A new prior-knowledge h2c client gets a 200 for `GET /` within 3 s.
async fn h2_served(addr: SocketAddr) -> bool {
    let mut c = H2::connect(addr, Duration::from_secs(3)).await;
    if c.w
        .write_all(&frame(HEADERS, END_STREAM | END_HEADERS, 1, GET_X))
        .await
        .is_err()
    {
        return false;
    }
    c.wait_for(Duration::from_secs(3), |s| s.ok.contains(&1))
        .await
}

/// A new client is served, over HTTP/2 and HTTP/1.
async fn assert_new_clients_served(addr: SocketAddr) {
    assert!(h2_served(addr).await, "a new HTTP/2 client is not served");
    assert_eq!(get(addr, "x", "/").await.status, 200, "HTTP/1 client");
}

/// The flooding connection was ended (GOAWAY or close), and a GOAWAY, if any, says ENHANCE_YOUR_CALM: a
/// PROTOCOL_ERROR or COMPRESSION_ERROR would mean the test's frames were malformed, not that the defence
/// held.
fn assert_refused_calmly(what: &str, c: &H2, ended: bool) {
    let summary = c.summary();
    assert!(ended, "{what}: no GOAWAY nor close: {summary}");
    let code = c.seen.lock().map(|s| s.goaway).unwrap_or(None);
    assert!(
        code.is_none() || code == Some(ENHANCE_YOUR_CALM),
        "{what}: GOAWAY for another reason: {summary}"
    );
}

/// The bound on RSS growth during one flood.
const RSS_BOUND_KB: u64 = 64 * 1024;

fn assert_rss(what: &str, base: u64, peak: u64) {
    println!(
        "{what}: VmRSS {base} kB before, peak {peak} kB (+{} kB)",
        peak.saturating_sub(base)
    );
    assert!(
        peak.saturating_sub(base) < RSS_BOUND_KB,
        "{what}: VmRSS grew from {base} kB to {peak} kB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_gets_goaway_and_few_requests_reach_the_backend() {
    let rec = Recorder::start().await;
    let gate = Gate::with_dynamic(&catch_all_config(&rec.url), &[]);
    let addr = gate.web();
    let base = rss_kb(gate.pid());
    let rss = RssWatch::start(gate.pid());

    const STREAMS: usize = 10_000;
    let mut c = H2::connect(addr, Duration::from_secs(8)).await;
    let t0 = Instant::now();
    // 100 streams per write: HEADERS(END_STREAM|END_HEADERS) then RST_STREAM(CANCEL) on each.
    let batches = c
        .flood(STREAMS / 100, |b| {
            let mut out = Vec::with_capacity(100 * 32);
            for k in 0..100 {
                let id = (2 * (b * 100 + k) + 1) as u32;
                out.extend(frame(HEADERS, END_STREAM | END_HEADERS, id, GET_X));
                out.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
            }
            out
        })
        .await;
    let ended = c
        .wait_for(Duration::from_secs(5), |s| s.goaway.is_some() || s.closed)
        .await;
    let summary = c.summary();
    println!(
        "rapid reset: {} of {STREAMS} streams written in {:?}; {summary}",
        batches * 100,
        t0.elapsed()
    );
    assert_refused_calmly("rapid reset", &c, ended);
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t0.elapsed()
    );
    drop(c);

    assert_new_clients_served(addr).await;
    let reached = rec.requests.load(Ordering::SeqCst);
    println!("rapid reset: the backend received {reached} requests (2 of them the new clients')");
    assert!(
        reached < STREAMS / 10,
        "{reached} requests of {STREAMS} reset streams reached the backend"
    );
    assert_rss("rapid reset", base, rss.peak());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_flood_is_cut_before_it_ends_and_memory_stays_bounded() {
    let rec = Recorder::start().await;
    let gate = Gate::with_dynamic(&catch_all_config(&rec.url), &[]);
    let addr = gate.web();
    let base = rss_kb(gate.pid());
    let rss = RssWatch::start(gate.pid());

    // HEADERS without END_HEADERS, then 16 KiB CONTINUATION frames (each a run of literal headers that
    // never ends the block), up to 64 MiB.
    const FRAMES: usize = 4096;
    let mut block = Vec::with_capacity(16 * 1024);
    while block.len() + 120 < 16 * 1024 {
        block.push(0x00); // literal without indexing, new name
        hpack_str(&mut block, b"x-flood");
        hpack_str(&mut block, &[b'a'; 100]);
    }
    // Control: the same encoding in one CONTINUATION that ends the block is served.
    let mut ok = H2::connect(addr, Duration::from_secs(3)).await;
    let mut out = frame(HEADERS, END_STREAM, 1, GET_X);
    out.extend(frame(CONTINUATION, END_HEADERS, 1, &block[..1 + 8 + 101]));
    ok.w.write_all(&out).await.expect("w");
    assert!(
        ok.wait_for(Duration::from_secs(3), |s| s.ok.contains(&1))
            .await,
        "control request not served: {}",
        ok.summary()
    );
    drop(ok);

    let mut c = H2::connect(addr, Duration::from_secs(10)).await;
    let _ = c.w.write_all(&frame(HEADERS, END_STREAM, 1, GET_X)).await;
    let t0 = Instant::now();
    let sent = c
        .flood(FRAMES / 16, |_| {
            let mut out = Vec::with_capacity(16 * (block.len() + 9));
            for _ in 0..16 {
                out.extend(frame(CONTINUATION, 0, 1, &block));
            }
            out
        })
        .await
        * 16;
    let ended = c
        .wait_for(Duration::from_secs(5), |s| s.goaway.is_some() || s.closed)
        .await;
    let summary = c.summary();
    println!(
        "CONTINUATION flood: {sent} of {FRAMES} frames ({} KiB) written in {:?}; {summary}",
        sent * block.len() / 1024,
        t0.elapsed()
    );
    assert_refused_calmly("CONTINUATION flood", &c, ended);
    assert!(sent < FRAMES, "all {FRAMES} CONTINUATION frames were taken");
    assert!(
        c.seen.lock().map(|s| s.ok.is_empty()).unwrap_or(false),
        "{summary}"
    );
    drop(c);
    assert_new_clients_served(addr).await;
    assert_rss("CONTINUATION flood", base, rss.peak());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_continuation_flood_is_cut() {
    let rec = Recorder::start().await;
    let gate = Gate::with_dynamic(&catch_all_config(&rec.url), &[]);
    let addr = gate.web();
    let base = rss_kb(gate.pid());
    let rss = RssWatch::start(gate.pid());

    // HEADERS without END_HEADERS, then empty CONTINUATION frames: the header list never grows, so only a
    // bound on the frames themselves ends this one.
    const FRAMES: usize = 1_000_000;
    let mut c = H2::connect(addr, Duration::from_secs(10)).await;
    let _ = c.w.write_all(&frame(HEADERS, END_STREAM, 1, GET_X)).await;
    let t0 = Instant::now();
    let batch = frame(CONTINUATION, 0, 1, &[]).repeat(1000);
    let sent = c.flood(FRAMES / 1000, |_| batch.clone()).await * 1000;
    let ended = c
        .wait_for(Duration::from_secs(5), |s| s.goaway.is_some() || s.closed)
        .await;
    let summary = c.summary();
    println!(
        "empty CONTINUATION flood: {sent} of {FRAMES} frames written in {:?}; {summary}",
        t0.elapsed()
    );
    assert_refused_calmly("empty CONTINUATION flood", &c, ended);
    assert!(
        sent < FRAMES,
        "all {FRAMES} empty CONTINUATION frames were taken"
    );
    drop(c);
    assert_new_clients_served(addr).await;
    assert_rss("empty CONTINUATION flood", base, rss.peak());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpack_bomb_is_not_served_and_memory_stays_bounded() {
    let rec = Recorder::start().await;
    let gate = Gate::with_dynamic(&catch_all_config(&rec.url), &[]);
    let addr = gate.web();
    let base = rss_kb(gate.pid());
    let rss = RssWatch::start(gate.pid());

    // Stream 1: GET / plus one ~4 KiB header with incremental indexing. The dynamic table (4,096 octets)
    // then holds `x-b` at index 62 and `:authority x` at 63.
    let mut first = GET_X.to_vec();
    first.push(0x40);
    hpack_str(&mut first, b"x-b");
    hpack_str(&mut first, &[b'b'; 4000]);
    // Stream 3: GET / with `:authority` by index 63, then index 62 sixteen thousand times (~64 MB decoded
    // from 16 KB).
    let refs = |n| {
        let mut b = vec![0x82, 0x86, 0x84, 0xbf];
        b.extend(std::iter::repeat_n(0xbe, n));
        b
    };
    // Control: two references (8 KB decoded) are served, so the encoding is right.
    let mut ok = H2::connect(addr, Duration::from_secs(3)).await;
    let mut out = frame(HEADERS, END_STREAM | END_HEADERS, 1, &first);
    out.extend(frame(HEADERS, END_STREAM | END_HEADERS, 3, &refs(2)));
    ok.w.write_all(&out).await.expect("w");
    assert!(
        ok.wait_for(Duration::from_secs(3), |s| s.ok.contains(&1)
            && s.ok.contains(&3))
            .await,
        "control requests not served: {}",
        ok.summary()
    );
    drop(ok);

    let mut c = H2::connect(addr, Duration::from_secs(8)).await;
    let bomb = refs(16_000);
    let mut out = frame(HEADERS, END_STREAM | END_HEADERS, 1, &first);
    out.extend(frame(HEADERS, END_STREAM | END_HEADERS, 3, &bomb));
    let _ = c.w.write_all(&out).await;
    let t0 = Instant::now();
    let refused = c
        .wait_for(Duration::from_secs(5), |s| {
            s.goaway.is_some()
                || s.closed
                || s.resets > 0
                || s.other_headers.iter().any(|(id, _)| *id == 3)
        })
        .await;
    let summary = c.summary();
    println!("HPACK bomb: after {:?}: {summary}", t0.elapsed());
    assert!(refused, "the bomb was neither reset nor refused: {summary}");
    assert_refused_calmly("HPACK bomb", &c, true);
    assert!(
        c.seen.lock().map(|s| !s.ok.contains(&3)).unwrap_or(false),
        "the bomb was served: {summary}"
    );
    drop(c);
    assert_new_clients_served(addr).await;
    assert_rss("HPACK bomb", base, rss.peak());
}

/// Floods one frame type `count` times (200 per write) after a GET on stream 1, reading all the while;
/// the connection must be served with every frame acknowledged (`acked`), or closed, within the bound;
/// memory bounded, and new clients served.
async fn control_flood(what: &str, one: Vec<u8>, acked: fn(&Seen) -> usize) {
    let rec = Recorder::start().await;
    let gate = Gate::with_dynamic(&catch_all_config(&rec.url), &[]);
    let addr = gate.web();
    let base = rss_kb(gate.pid());
    let rss = RssWatch::start(gate.pid());

    const COUNT: usize = 100_000;
    let mut c = H2::connect(addr, Duration::from_secs(10)).await;
    let _ =
        c.w.write_all(&frame(HEADERS, END_STREAM | END_HEADERS, 1, GET_X))
            .await;
    let t0 = Instant::now();
    let batch: Vec<u8> = one.repeat(200);
    let sent = c.flood(COUNT / 200, |_| batch.clone()).await * 200;
    let flood_took = t0.elapsed();
    // Served (stream 1 answered and every frame acknowledged) or ended (GOAWAY / close): never a hang.
    let settled = c
        .wait_for(Duration::from_secs(5), |s| {
            s.goaway.is_some() || s.closed || (s.ok.contains(&1) && acked(s) >= sent)
        })
        .await;
    let summary = c.summary();
    println!("{what}: {sent} of {COUNT} frames written in {flood_took:?}; {summary}");
    assert!(settled, "{what}: neither served nor closed: {summary}");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "{what}: took {:?}",
        t0.elapsed()
    );
    drop(c);
    assert_new_clients_served(addr).await;
    assert_rss(what, base, rss.peak());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_is_bounded_and_the_gate_stays_responsive() {
    control_flood("PING flood", frame(PING, 0, 0, &[1; 8]), |s| s.pings_acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_flood_is_bounded_and_the_gate_stays_responsive() {
    // SETTINGS_INITIAL_WINDOW_SIZE = 65535 (an allowed value, so each frame needs processing and an ACK).
    control_flood(
        "SETTINGS flood",
        frame(SETTINGS, 0, 0, &[0x00, 0x04, 0x00, 0x00, 0xff, 0xff]),
        // The ACK of the client's first, empty SETTINGS is not one of the flood's.
        |s| s.settings_acked.saturating_sub(1),
    )
    .await;
}
