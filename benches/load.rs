//! `load`: a wrk-style HTTP load generator, so swarmgate's speed claims are measured by a tool we can read.
//!
//! What it measures: requests per second and the latency distribution a fixed set of connections sees
//! against one URL, plus errors by kind and the generator's own CPU share (so a run can show that the
//! generator was not the bottleneck). Why a harness of our own beside `wrk`: wrk has no HTTP/2, no TLS
//! session control, no constant-rate mode without coordinated omission, and no machine-readable output;
//! `h2load` and `wrk2` cover parts each. This one covers all of them with one set of options, and is
//! cross-checked against `wrk` (`docs/benchmarks.md`).
//!
//! Run: `cargo bench --bench load -- -t2 -c64 -d10s --latency http://127.0.0.1:8080/`
//!
//! Shape (like wrk): `-t` OS threads, each with its own single-threaded Tokio runtime, each owning `-c / -t`
//! connections. HTTP/1.1 goes over raw Tokio TCP (or rustls) with a precomputed request and a minimal
//! incremental response parser (status line, `Content-Length`, chunked, `Connection: close`, read-to-EOF);
//! HTTP/2 (`--h2`: h2c prior knowledge on `http://`, ALPN `h2` on `https://`) uses hyper's client with `-m`
//! concurrent streams per connection.
//!
//! Latency is measured from the moment the request is due to the last byte of the response:
//! - closed loop (default): due = when the previous response finished, so this is wrk's latency, except
//!   that with `--close` (or after a reconnect) it includes the TCP connect and TLS handshake, which a
//!   per-request-handshake scenario exists to measure;
//! - open loop (`-R`, wrk2-style): each connection has a fixed schedule and latency counts from the
//!   *intended* send time, so a stalled server is charged for the requests it delayed (no coordinated
//!   omission).
//!
//! Only requests that complete inside the measurement window (after `--warmup`) are counted; requests in
//! flight at the end are allowed to finish (bounded by `--timeout`) but not counted. Bench code: failures to
//! set up (bad arguments, no runtime) exit with a message; failures during the run are counted, never fatal.

// Benchmark code: a failed unwrap, expect or index aborts the measurement on purpose; setup may use std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Largest latency the histogram records (µs); slower answers are clamped here (and are timeouts anyway).
const HIST_MAX_US: u64 = 120_000_000;
/// Read buffer per HTTP/1.1 connection; a response head must fit in it.
const READ_BUF: usize = 64 * 1024;
/// Linux `USER_HZ`: the unit of utime/stime in `/proc/<pid>/stat` (100 on every mainstream architecture).
const CLK_TCK: f64 = 100.0;

const USAGE: &str = "\
Usage: load [options] <url>
  -t, --threads N        OS threads, each with its own runtime (default 2)
  -c, --connections N    connections kept open in total (default 64)
  -d, --duration T       measured duration: 10s, 500ms, 1m (default 10s)
  -H, --header 'K: V'    add a request header (repeatable; a Host header replaces the URL's)
      --latency          print the latency distribution
      --timeout T        per-request timeout, counted as a timeout error (default 2s)
  -R, --rate N           open loop: N requests/s in total, latency from the intended send time
      --warmup T         run this long before measuring (default 1s)
      --close            send `Connection: close`: one request per connection (with TLS: one handshake)
      --h2               HTTP/2: h2c prior knowledge for http://, ALPN h2 for https://
  -m, --streams N        HTTP/2 concurrent streams per connection (default 1)
      --no-resume        TLS: disable session resumption (every connection a full handshake)
      --json FILE        also write the results as JSON
  https:// certificates are not verified (like wrk): this is a load generator for loopback targets.";

/// Parsed command line.
#[derive(Clone, Debug)]
struct Args {
    threads: usize,
    connections: usize,
    duration: Duration,
    headers: Vec<(String, String)>,
    latency: bool,
    timeout: Duration,
    rate: Option<f64>,
    warmup: Duration,
    close: bool,
    h2: bool,
    streams: usize,
    no_resume: bool,
    json: Option<String>,
    /// `--vary 'K: V'`: connection `i` adds variant `i % n` (e.g. one sticky cookie per client).
    vary: Vec<(String, String)>,
    url: Target,
}

/// The URL split into what the clients need.
#[derive(Clone, Debug)]
struct Target {
    raw: String,
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num.parse().map_err(|_| format!("bad duration `{s}`"))?;
    let secs = match unit {
        "us" => v / 1e6,
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("bad duration unit in `{s}` (use us, ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn parse_url(raw: &str) -> Result<Target, String> {
    let (tls, rest) = if let Some(r) = raw.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = raw.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(format!("`{raw}`: only http:// and https:// URLs"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(h) = authority.strip_prefix('[') {
        let (h, p) = h
            .split_once(']')
            .ok_or_else(|| format!("`{raw}`: bad IPv6 host"))?;
        (h.to_string(), p.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| format!("`{raw}`: bad port"))?,
        None if tls => 443,
        None => 80,
    };
    Ok(Target {
        raw: raw.to_string(),
        tls,
        host,
        port,
        path: path.to_string(),
    })
}

fn parse_args(argv: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        threads: 2,
        connections: 64,
        duration: Duration::from_secs(10),
        headers: Vec::new(),
        latency: false,
        timeout: Duration::from_secs(2),
        rate: None,
        warmup: Duration::from_secs(1),
        close: false,
        h2: false,
        streams: 1,
        no_resume: false,
        json: None,
        vary: Vec::new(),
        url: Target {
            raw: String::new(),
            tls: false,
            host: String::new(),
            port: 0,
            path: String::new(),
        },
    };
    let mut url = None;
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        // `cargo bench` appends `--bench`; flags of the form `-t2`, `-t 2`, `--threads=2`, `--threads 2`.
        let (flag, inline): (String, Option<String>) = if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((k, v)) => (format!("--{k}"), Some(v.to_string())),
                None => (arg.clone(), None),
            }
        } else if arg.starts_with('-') && arg.len() > 2 {
            (arg[..2].to_string(), Some(arg[2..].to_string()))
        } else {
            (arg.clone(), None)
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        let num = |v: String, name: &str| -> Result<usize, String> {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name}: `{v}` is not a positive number"))
        };
        match flag.as_str() {
            "--bench" => {}
            "--self-test" => {
                self_test::run();
                std::process::exit(0);
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            "-t" | "--threads" => a.threads = num(value("-t")?, "-t")?,
            "-c" | "--connections" => a.connections = num(value("-c")?, "-c")?,
            "-m" | "--streams" => a.streams = num(value("-m")?, "-m")?,
            "-d" | "--duration" => a.duration = parse_duration(&value("-d")?)?,
            "--timeout" => a.timeout = parse_duration(&value("--timeout")?)?,
            "--warmup" => a.warmup = parse_duration(&value("--warmup")?)?,
            "-R" | "--rate" => {
                let v = value("-R")?;
                let r: f64 = v
                    .parse()
                    .map_err(|_| format!("-R: `{v}` is not a number"))?;
                if !r.is_finite() || r <= 0.0 {
                    return Err("-R must be positive".into());
                }
                a.rate = Some(r);
            }
            "-H" | "--header" => {
                let v = value("-H")?;
                let (k, val) = v
                    .split_once(':')
                    .ok_or_else(|| format!("-H `{v}`: expected `Name: value`"))?;
                a.headers
                    .push((k.trim().to_string(), val.trim().to_string()));
            }
            "--latency" => a.latency = true,
            "--close" => a.close = true,
            "--h2" => a.h2 = true,
            "--no-resume" => a.no_resume = true,
            "--json" => a.json = Some(value("--json")?),
            "--vary" => {
                let v = value("--vary")?;
                let (k, val) = v
                    .split_once(':')
                    .ok_or_else(|| format!("--vary `{v}`: expected `Name: value`"))?;
                a.vary.push((k.trim().to_string(), val.trim().to_string()));
            }
            f if f.starts_with('-') => return Err(format!("unknown option `{f}`\n{USAGE}")),
            _ => url = Some(arg.clone()),
        }
    }
    a.url = parse_url(&url.ok_or_else(|| USAGE.to_string())?)?;
    if a.connections < a.threads {
        return Err("-c must be at least -t (every thread needs a connection)".into());
    }
    if a.h2 && a.close {
        return Err("--close is an HTTP/1.1 mode".into());
    }
    Ok(a)
}

/// Why a request failed; each kind is counted separately.
#[derive(Clone, Copy, Debug)]
enum ReqError {
    Connect,
    Read,
    Write,
    Timeout,
}

/// Counters and histogram of one thread (then merged).
struct Stats {
    requests: u64,
    bytes: u64,
    status: [u64; 6],
    connect: u64,
    read: u64,
    write: u64,
    timeout: u64,
    /// TLS handshakes in the window: full and resumed (proof that `--no-resume` / resumption did what it says).
    tls_full: u64,
    tls_resumed: u64,
    hist: Histogram<u64>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            requests: 0,
            bytes: 0,
            status: [0; 6],
            connect: 0,
            read: 0,
            write: 0,
            timeout: 0,
            tls_full: 0,
            tls_resumed: 0,
            hist: Histogram::new_with_bounds(1, HIST_MAX_US, 3)
                .expect("histogram bounds are valid"),
        }
    }

    fn merge(&mut self, o: &Stats) {
        self.requests += o.requests;
        self.bytes += o.bytes;
        for (a, b) in self.status.iter_mut().zip(o.status) {
            *a += b;
        }
        self.connect += o.connect;
        self.read += o.read;
        self.write += o.write;
        self.timeout += o.timeout;
        self.tls_full += o.tls_full;
        self.tls_resumed += o.tls_resumed;
        self.hist.add(&o.hist).expect("same histogram bounds");
    }

    fn non_2xx(&self) -> u64 {
        self.status
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .map(|(_, n)| n)
            .sum()
    }
}

/// What every connection of every thread shares (read-only).
struct Plan {
    args: Args,
    /// The HTTP/1.1 request, bytes ready to write.
    /// The HTTP/1.1 requests (one per `--vary` variant), bytes ready to write.
    requests: Vec<Vec<u8>>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Start of the run (warm-up begins).
    t0: Instant,
    measure_start: Instant,
    end: Instant,
}

/// Per-thread mutable state (single-threaded runtime, so `RefCell`).
struct Local {
    plan: Arc<Plan>,
    stats: RefCell<Stats>,
}

impl Local {
    fn in_window(&self, t: Instant) -> bool {
        t >= self.plan.measure_start && t < self.plan.end
    }

    fn record_ok(&self, due: Instant, done: Instant, status: u16, bytes: u64) {
        if !self.in_window(done) {
            return;
        }
        let mut s = self.stats.borrow_mut();
        s.requests += 1;
        s.bytes += bytes;
        s.status[usize::from(status / 100).min(5)] += 1;
        let us = u64::try_from(done.saturating_duration_since(due).as_micros()).unwrap_or(u64::MAX);
        s.hist.saturating_record(us.clamp(1, HIST_MAX_US));
    }

    fn record_handshake(&self, kind: Option<rustls::HandshakeKind>) {
        if !self.in_window(Instant::now()) {
            return;
        }
        let mut s = self.stats.borrow_mut();
        match kind {
            Some(rustls::HandshakeKind::Resumed) => s.tls_resumed += 1,
            _ => s.tls_full += 1,
        }
    }

    fn record_err(&self, e: ReqError) {
        if !self.in_window(Instant::now()) {
            return;
        }
        let mut s = self.stats.borrow_mut();
        match e {
            ReqError::Connect => s.connect += 1,
            ReqError::Read => s.read += 1,
            ReqError::Write => s.write += 1,
            ReqError::Timeout => s.timeout += 1,
        }
    }
}

/// When each request of one connection (or stream) is due: now (closed loop) or on a fixed schedule.
struct Schedule {
    next: Option<(Instant, Duration)>,
}

impl Schedule {
    /// `slot` in `0..slots` staggers the open-loop schedules evenly over one interval.
    fn new(plan: &Plan, slot: usize, slots: usize) -> Schedule {
        let next = plan.args.rate.map(|r| {
            let interval = Duration::from_secs_f64(slots as f64 / r);
            (
                plan.t0 + interval.mul_f64(slot as f64 / slots as f64),
                interval,
            )
        });
        Schedule { next }
    }

    /// Waits until the next request is due and returns its due time.
    async fn due(&mut self) -> Instant {
        match &mut self.next {
            None => Instant::now(),
            Some((t, interval)) => {
                let due = *t;
                *t += *interval;
                tokio::time::sleep_until(due.into()).await;
                due
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// HTTP/1.1
// ---------------------------------------------------------------------------------------------------------

fn build_request(a: &Args, variant: Option<&(String, String)>) -> Vec<u8> {
    let mut r = String::new();
    let _ = write!(r, "GET {} HTTP/1.1\r\n", a.url.path);
    if !a
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("host"))
    {
        let default_port = if a.url.tls { 443 } else { 80 };
        if a.url.port == default_port {
            let _ = write!(r, "Host: {}\r\n", a.url.host);
        } else {
            let _ = write!(r, "Host: {}:{}\r\n", a.url.host, a.url.port);
        }
    }
    for (k, v) in a.headers.iter().chain(variant) {
        let _ = write!(r, "{k}: {v}\r\n");
    }
    if a.close {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// The parts of a response head the client acts on.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    /// Length of the head including the blank line.
    len: usize,
    body: BodyLen,
    close: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum BodyLen {
    Fixed(u64),
    Chunked,
    UntilClose,
}

/// Parses a complete response head (`buf` ends right after `\r\n\r\n`). `None` on malformed input.
fn parse_head(buf: &[u8]) -> Option<Head> {
    if buf.len() < 12 || !buf.starts_with(b"HTTP/1.") {
        return None;
    }
    let status: u16 = std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()?;
    let http10 = buf[7] == b'0';
    let mut body = None;
    let mut close = http10;
    let mut lines = buf.split(|&b| b == b'\n').skip(1);
    for line in &mut lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            if body.is_none() {
                body = Some(BodyLen::Fixed(
                    std::str::from_utf8(value).ok()?.parse().ok()?,
                ));
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if contains_token(value, b"chunked") {
                body = Some(BodyLen::Chunked);
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            if contains_token(value, b"close") {
                close = true;
            } else if contains_token(value, b"keep-alive") {
                close = false;
            }
        }
    }
    let body = match status {
        100..=199 | 204 | 304 => BodyLen::Fixed(0),
        _ => body.unwrap_or(BodyLen::UntilClose),
    };
    let close = close || body == BodyLen::UntilClose;
    Some(Head {
        status,
        len: buf.len(),
        body,
        close,
    })
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &v[start..end]
}

fn contains_token(v: &[u8], token: &[u8]) -> bool {
    v.split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One HTTP/1.1 connection: a stream and a read buffer holding `buf[start..end]` unconsumed.
struct H1<S> {
    s: S,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> H1<S> {
    fn new(s: S) -> H1<S> {
        H1 {
            s,
            buf: vec![0; READ_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Reads more bytes; EOF or a full buffer is a read error.
    async fn fill(&mut self) -> Result<(), ReqError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start == 0 {
                return Err(ReqError::Read);
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        match self.s.read(&mut self.buf[self.end..]).await {
            Ok(0) | Err(_) => Err(ReqError::Read),
            Ok(n) => {
                self.end += n;
                Ok(())
            }
        }
    }

    /// Consumes up to `n` body bytes; returns how many.
    async fn skip(&mut self, mut n: u64) -> Result<(), ReqError> {
        while n > 0 {
            if self.start == self.end {
                self.fill().await?;
            }
            let take = (self.end - self.start).min(usize::try_from(n).unwrap_or(usize::MAX));
            self.start += take;
            n -= take as u64;
        }
        Ok(())
    }

    /// Reads one CRLF-terminated line and returns its content parsed by `f`.
    async fn line<T>(&mut self, f: impl Fn(&[u8]) -> Option<T>) -> Result<(T, usize), ReqError> {
        loop {
            if let Some(i) = find(&self.buf[self.start..self.end], b"\r\n") {
                let v = f(&self.buf[self.start..self.start + i]).ok_or(ReqError::Read)?;
                self.start += i + 2;
                return Ok((v, i + 2));
            }
            self.fill().await?;
        }
    }

    /// Sends the request and reads one whole response; returns (status, bytes read, close).
    async fn exchange(&mut self, request: &[u8]) -> Result<(u16, u64, bool), ReqError> {
        self.s
            .write_all(request)
            .await
            .map_err(|_| ReqError::Write)?;
        // Head.
        let mut scanned: usize = 0;
        let head = loop {
            let avail = &self.buf[self.start..self.end];
            if let Some(i) = find(&avail[scanned.saturating_sub(3)..], b"\r\n\r\n") {
                let len = scanned.saturating_sub(3) + i + 4;
                let head = parse_head(&avail[..len]).ok_or(ReqError::Read)?;
                self.start += len;
                break head;
            }
            scanned = avail.len();
            self.fill().await?;
        };
        let mut bytes = head.len as u64;
        match head.body {
            BodyLen::Fixed(n) => {
                self.skip(n).await?;
                bytes += n;
            }
            BodyLen::Chunked => loop {
                let (size, l) = self
                    .line(|l| {
                        let hex = l.split(|&b| b == b';').next()?;
                        u64::from_str_radix(std::str::from_utf8(trim(hex)).ok()?, 16).ok()
                    })
                    .await?;
                bytes += l as u64;
                if size == 0 {
                    // Trailers until the empty line.
                    loop {
                        let (empty, l) = self.line(|l| Some(l.is_empty())).await?;
                        bytes += l as u64;
                        if empty {
                            break;
                        }
                    }
                    break;
                }
                self.skip(size).await?;
                let (_, l) = self.line(|l| l.is_empty().then_some(())).await?;
                bytes += size + l as u64;
            },
            BodyLen::UntilClose => loop {
                bytes += (self.end - self.start) as u64;
                self.start = self.end;
                if self.fill().await.is_err() {
                    break;
                }
            },
        }
        Ok((head.status, bytes, head.close))
    }
}

async fn connect_tcp(plan: &Plan) -> Result<TcpStream, ReqError> {
    let s = TcpStream::connect((plan.args.url.host.as_str(), plan.args.url.port))
        .await
        .map_err(|_| ReqError::Connect)?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Drives one HTTP/1.1 connection slot until the end: reconnects after errors and after `close`.
async fn h1_slot(local: Rc<Local>, slot: usize) {
    let plan = local.plan.clone();
    let mut sched = Schedule::new(&plan, slot, plan.args.connections);
    'reconnect: loop {
        if Instant::now() >= plan.end {
            return;
        }
        // The first request on a new connection is due now (or on schedule); its latency includes connect.
        let due = sched.due().await;
        if due >= plan.end {
            return;
        }
        let timeout = plan.args.timeout;
        let tcp = match tokio::time::timeout(timeout, connect_tcp(&plan)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                local.record_err(e);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(_) => {
                local.record_err(ReqError::Timeout);
                continue;
            }
        };
        if let Some((connector, name)) = &plan.tls {
            match tokio::time::timeout(timeout, connector.connect(name.clone(), tcp)).await {
                Ok(Ok(tls)) => {
                    local.record_handshake(tls.get_ref().1.handshake_kind());
                    if !run_h1(&local, &plan, &mut sched, H1::new(tls), due, slot).await {
                        return;
                    }
                }
                Ok(Err(_)) => local.record_err(ReqError::Connect),
                Err(_) => local.record_err(ReqError::Timeout),
            }
            continue 'reconnect;
        }
        if !run_h1(&local, &plan, &mut sched, H1::new(tcp), due, slot).await {
            return;
        }
    }
}

/// Runs requests on one connection. Returns false when the test is over, true to reconnect.
async fn run_h1<S: AsyncRead + AsyncWrite + Unpin>(
    local: &Local,
    plan: &Plan,
    sched: &mut Schedule,
    mut conn: H1<S>,
    first_due: Instant,
    slot: usize,
) -> bool {
    let mut due = first_due;
    let request = &plan.requests[slot % plan.requests.len()];
    loop {
        match tokio::time::timeout(plan.args.timeout, conn.exchange(request)).await {
            Ok(Ok((status, bytes, close))) => {
                local.record_ok(due, Instant::now(), status, bytes);
                if close || plan.args.close {
                    return true;
                }
            }
            Ok(Err(e)) => {
                local.record_err(e);
                return true;
            }
            Err(_) => {
                local.record_err(ReqError::Timeout);
                return true;
            }
        }
        if Instant::now() >= plan.end {
            return false;
        }
        due = sched.due().await;
        if due >= plan.end {
            return false;
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// HTTP/2
// ---------------------------------------------------------------------------------------------------------

/// Drives one HTTP/2 connection with `-m` stream loops; reconnects when the connection dies.
async fn h2_slot(local: Rc<Local>, slot: usize) {
    let plan = local.plan.clone();
    let streams = plan.args.streams;
    let mut scheds: Vec<Schedule> = (0..streams)
        .map(|i| Schedule::new(&plan, slot * streams + i, plan.args.connections * streams))
        .collect();
    let authority = plan
        .args
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| format!("{}:{}", plan.args.url.host, plan.args.url.port));
    let scheme = if plan.args.url.tls { "https" } else { "http" };
    let uri: http::Uri = format!("{scheme}://{authority}{}", plan.args.url.path)
        .parse()
        .expect("valid request URI");
    while Instant::now() < plan.end {
        let connected = tokio::time::timeout(plan.args.timeout, async {
            let tcp = connect_tcp(&plan).await?;
            let builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
            match &plan.tls {
                None => {
                    let (tx, conn) = builder
                        .handshake(TokioIo::new(tcp))
                        .await
                        .map_err(|_| ReqError::Connect)?;
                    tokio::task::spawn_local(conn);
                    Ok(tx)
                }
                Some((connector, name)) => {
                    let tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|_| ReqError::Connect)?;
                    local.record_handshake(tls.get_ref().1.handshake_kind());
                    let (tx, conn) = builder
                        .handshake(TokioIo::new(tls))
                        .await
                        .map_err(|_| ReqError::Connect)?;
                    tokio::task::spawn_local(conn);
                    Ok(tx)
                }
            }
        })
        .await;
        let tx = match connected {
            Ok(Ok(tx)) => tx,
            Ok(Err(e)) => {
                local.record_err(e);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(_) => {
                local.record_err(ReqError::Timeout);
                continue;
            }
        };
        let loops = scheds.iter_mut().map(|sched| {
            let mut tx = tx.clone();
            let (local, plan, uri) = (&local, &plan, &uri);
            async move {
                while Instant::now() < plan.end && !tx.is_closed() {
                    let due = sched.due().await;
                    if due >= plan.end {
                        break;
                    }
                    let mut req = http::Request::builder()
                        .uri(uri.clone())
                        .version(http::Version::HTTP_2);
                    let variant = plan.args.vary.get(slot % plan.args.vary.len().max(1));
                    for (k, v) in plan.args.headers.iter().chain(variant) {
                        if !k.eq_ignore_ascii_case("host") {
                            req = req.header(k.as_str(), v.as_str());
                        }
                    }
                    let req = req.body(Empty::<Bytes>::new()).expect("valid request");
                    let r = tokio::time::timeout(plan.args.timeout, async {
                        tx.ready().await.map_err(|_| ReqError::Write)?;
                        let resp = tx.send_request(req).await.map_err(|_| ReqError::Read)?;
                        let status = resp.status().as_u16();
                        let body = resp
                            .into_body()
                            .collect()
                            .await
                            .map_err(|_| ReqError::Read)?;
                        Ok::<_, ReqError>((status, body.to_bytes().len() as u64))
                    })
                    .await;
                    match r {
                        Ok(Ok((status, bytes))) => {
                            local.record_ok(due, Instant::now(), status, bytes)
                        }
                        Ok(Err(e)) => local.record_err(e),
                        Err(_) => {
                            local.record_err(ReqError::Timeout);
                            break;
                        }
                    }
                }
            }
        });
        futures_util::future::join_all(loops).await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------------------

/// Accepts any server certificate (wrk does not verify either); signatures are still checked so the
/// handshake does the same work as a verifying client minus the chain walk.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Most TLS 1.3 tickets kept (each is used once; servers send one or two per handshake).
const MAX_TICKETS: usize = 4096;

/// Session store for one target. rustls' default store keeps at most 8 TLS 1.3 tickets per server name, and
/// tickets are single-use, so with `-c 64` connections to one name most reconnects found none and did a full
/// handshake (measured: 51-86 % resumed in `tls-resume`). This one keeps up to [`MAX_TICKETS`]. Every
/// connection of a run goes to the same server name, so names are not distinguished.
#[derive(Debug, Default)]
struct TicketStore {
    kx: std::sync::Mutex<Option<rustls::NamedGroup>>,
    tls12: std::sync::Mutex<Option<rustls::client::Tls12ClientSessionValue>>,
    tls13: std::sync::Mutex<std::collections::VecDeque<rustls::client::Tls13ClientSessionValue>>,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().expect("ticket store lock poisoned")
}

impl rustls::client::ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, _: ServerName<'static>, group: rustls::NamedGroup) {
        *lock(&self.kx) = Some(group);
    }

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        *lock(&self.kx)
    }

    fn set_tls12_session(
        &self,
        _: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        *lock(&self.tls12) = Some(value);
    }

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        lock(&self.tls12).clone()
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {
        *lock(&self.tls12) = None;
    }

    fn insert_tls13_ticket(
        &self,
        _: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        let mut q = lock(&self.tls13);
        if q.len() >= MAX_TICKETS {
            q.pop_front();
        }
        q.push_back(value);
    }

    fn take_tls13_ticket(
        &self,
        _: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        lock(&self.tls13).pop_back()
    }
}

fn tls_connector(a: &Args) -> (TlsConnector, ServerName<'static>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![if a.h2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    cfg.resumption = if a.no_resume {
        rustls::client::Resumption::disabled()
    } else {
        rustls::client::Resumption::store(Arc::new(TicketStore::default()))
    };
    let sni = a
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.split(':').next().unwrap_or(v).to_string())
        .unwrap_or_else(|| a.url.host.clone());
    let name = ServerName::try_from(sni).expect("valid TLS server name");
    (TlsConnector::from(Arc::new(cfg)), name)
}

// ---------------------------------------------------------------------------------------------------------
// Driver and report
// ---------------------------------------------------------------------------------------------------------

/// utime + stime of this process in seconds, from `/proc/self/stat` (None off Linux).
fn cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let u: f64 = f.get(11)?.parse().ok()?;
    let s: f64 = f.get(12)?.parse().ok()?;
    Some((u / CLK_TCK, s / CLK_TCK))
}

fn run_thread(plan: Arc<Plan>, first_slot: usize, slots: usize) -> Stats {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let local = Rc::new(Local {
        plan: plan.clone(),
        stats: RefCell::new(Stats::new()),
    });
    let set = tokio::task::LocalSet::new();
    for slot in first_slot..first_slot + slots {
        if plan.args.h2 {
            set.spawn_local(h2_slot(local.clone(), slot));
        } else {
            set.spawn_local(h1_slot(local.clone(), slot));
        }
    }
    rt.block_on(set);
    let Ok(local) = Rc::try_unwrap(local) else {
        panic!("connection tasks outlived the run")
    };
    local.stats.into_inner()
}

fn fmt_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2}s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{us:.2}us")
    }
}

fn fmt_bytes(b: f64) -> String {
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}GB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.2}MB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.2}KB", b / 1024.0)
    } else {
        format!("{b:.0}B")
    }
}

// ---------------------------------------------------------------------------------------------------------
// --serve: a backend with a fixed service time and limited concurrency (the `scale` scenario)
// ---------------------------------------------------------------------------------------------------------

/// `load --serve ADDR [--name N] [--service-time 5ms] [--concurrency 4]`: answers every request after
/// holding one of `concurrency` slots for `service-time`, like a backend with a fixed pool of workers, so
/// one replica serves at most `concurrency / service-time` requests per second and adding replicas adds
/// capacity. The body is the name (so a balance check can see which replica answered). HTTP/1.1 keep-alive
/// only; requests must not have a body (GET). Runs until killed.
fn serve(argv: Vec<String>) {
    let mut addr = String::new();
    let mut name = "slow".to_string();
    let mut service = Duration::from_millis(5);
    let mut concurrency = 4usize;
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        let v = it.next().unwrap_or_default();
        match a.as_str() {
            "--serve" => addr = v,
            "--name" => name = v,
            "--service-time" => service = parse_duration(&v).expect("--service-time: a duration"),
            "--concurrency" => concurrency = v.parse().expect("--concurrency: a number"),
            other => panic!("--serve mode: unknown option `{other}`"),
        }
    }
    let response: Arc<[u8]> = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Backend: {name}\r\n\r\n{name}",
        name.len()
    )
    .into_bytes()
    .into();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind(&addr)
            .await
            .expect("bind --serve address");
        println!("serving {name} on {addr}: {service:?} per request, {concurrency} at a time");
        let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            let (slots, response) = (slots.clone(), response.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut filled = 0;
                loop {
                    // One request head per iteration (no pipelining beyond what is already buffered).
                    let end = loop {
                        if let Some(i) = find(&buf[..filled], b"\r\n\r\n") {
                            break i + 4;
                        }
                        if filled == buf.len() {
                            return;
                        }
                        match s.read(&mut buf[filled..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => filled += n,
                        }
                    };
                    buf.copy_within(end..filled, 0);
                    filled -= end;
                    let permit = slots.acquire().await.expect("semaphore never closed");
                    tokio::time::sleep(service).await;
                    drop(permit);
                    if s.write_all(&response).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

fn main() {
    let argv: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if argv.first().is_some_and(|a| a == "--serve") {
        serve(argv);
        return;
    }
    let args = match parse_args(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let tls = args.url.tls.then(|| tls_connector(&args));
    let t0 = Instant::now();
    let measure_start = t0 + args.warmup;
    let plan = Arc::new(Plan {
        requests: if args.vary.is_empty() {
            vec![build_request(&args, None)]
        } else {
            args.vary
                .iter()
                .map(|v| build_request(&args, Some(v)))
                .collect()
        },
        tls,
        t0,
        measure_start,
        end: measure_start + args.duration,
        args,
    });
    let a = &plan.args;
    let mode = match (a.h2, a.url.tls, a.close) {
        (true, false, _) => "h2c",
        (true, true, _) => "h2 over TLS",
        (false, false, false) => "HTTP/1.1 keep-alive",
        (false, false, true) => "HTTP/1.1 Connection: close",
        (false, true, false) => "HTTP/1.1 over TLS keep-alive",
        (false, true, true) if a.no_resume => "HTTP/1.1 over TLS, full handshake per request",
        (false, true, true) => "HTTP/1.1 over TLS, resumed handshake per request",
    };
    println!(
        "Running {} test @ {} ({mode})",
        humantime(a.duration),
        a.url.raw
    );
    let rate = a
        .rate
        .map(|r| format!(", constant rate {r} req/s"))
        .unwrap_or_default();
    let streams = if a.h2 {
        format!(" x {} streams", a.streams)
    } else {
        String::new()
    };
    println!(
        "  {} threads and {} connections{streams}{rate}, warm-up {}",
        a.threads,
        a.connections,
        humantime(a.warmup)
    );

    let mut handles = Vec::new();
    let per = a.connections / a.threads;
    let extra = a.connections % a.threads;
    let mut first = 0;
    for t in 0..a.threads {
        let n = per + usize::from(t < extra);
        let p = plan.clone();
        let f = first;
        handles.push(
            std::thread::Builder::new()
                .name(format!("load-{t}"))
                .spawn(move || run_thread(p, f, n))
                .expect("spawn thread"),
        );
        first += n;
    }
    // CPU over the measurement window only.
    std::thread::sleep(plan.measure_start.saturating_duration_since(Instant::now()));
    let cpu0 = cpu_seconds();
    let w0 = Instant::now();
    std::thread::sleep(plan.end.saturating_duration_since(Instant::now()));
    let cpu1 = cpu_seconds();
    let wall = w0.elapsed().as_secs_f64();
    let mut total = Stats::new();
    for h in handles {
        total.merge(&h.join().expect("load thread panicked"));
    }
    let secs = a.duration.as_secs_f64();
    let rps = total.requests as f64 / secs;
    let h = &total.hist;
    let q = |p: f64| h.value_at_quantile(p) as f64;

    let mut out = String::new();
    let _ = writeln!(out, "  Thread Stats   Avg      Stdev     Max   +/- Stdev");
    let within = if !h.is_empty() {
        let (m, sd) = (h.mean(), h.stdev());
        let n: u64 = h
            .iter_recorded()
            .filter(|v| (v.value_iterated_to() as f64 - m).abs() <= sd)
            .map(|v| v.count_at_value())
            .sum();
        100.0 * n as f64 / h.len() as f64
    } else {
        0.0
    };
    let _ = writeln!(
        out,
        "    Latency {:>9} {:>9} {:>9} {:>8.2}%",
        fmt_us(h.mean()),
        fmt_us(h.stdev()),
        fmt_us(h.max() as f64),
        within
    );
    if a.latency {
        let _ = writeln!(out, "  Latency Distribution");
        for (label, p) in [
            ("50%", 0.5),
            ("75%", 0.75),
            ("90%", 0.9),
            ("99%", 0.99),
            ("99.9%", 0.999),
        ] {
            let _ = writeln!(out, "  {label:>6}  {:>9}", fmt_us(q(p)));
        }
    }
    let _ = writeln!(
        out,
        "  {} requests in {:.2}s, {} read",
        total.requests,
        secs,
        fmt_bytes(total.bytes as f64)
    );
    if total.connect + total.read + total.write + total.timeout > 0 {
        let _ = writeln!(
            out,
            "  Socket errors: connect {}, read {}, write {}, timeout {}",
            total.connect, total.read, total.write, total.timeout
        );
    }
    if total.tls_full + total.tls_resumed > 0 {
        let _ = writeln!(
            out,
            "  TLS handshakes: {} full, {} resumed",
            total.tls_full, total.tls_resumed
        );
    }
    if total.non_2xx() > 0 {
        let _ = writeln!(
            out,
            "  Non-2xx responses: {} (1xx {}, 3xx {}, 4xx {}, 5xx {})",
            total.non_2xx(),
            total.status[1],
            total.status[3],
            total.status[4],
            total.status[5]
        );
    }
    let _ = writeln!(out, "Requests/sec: {rps:>10.2}");
    let _ = writeln!(
        out,
        "Transfer/sec: {:>10}",
        fmt_bytes(total.bytes as f64 / secs)
    );
    let cpu = match (cpu0, cpu1) {
        (Some((u0, s0)), Some((u1, s1))) => Some((u1 - u0, s1 - s0)),
        _ => None,
    };
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    if let Some((u, s)) = cpu {
        let share = (u + s) / wall;
        let per_req = if total.requests > 0 {
            (u + s) * 1e6 / total.requests as f64
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "Harness CPU: {:.2}s (user {u:.2} + sys {s:.2}) = {:.1}% of one core, {:.1}% of {} cores, {per_req:.1}us per request",
            u + s,
            share * 100.0,
            share * 100.0 / ncpu,
            ncpu
        );
    }
    print!("{out}");
    let _ = std::io::stdout().flush();

    if let Some(path) = &a.json {
        let (u, s) = cpu.unwrap_or((0.0, 0.0));
        let json = serde_json::json!({
            "url": a.url.raw,
            "mode": mode,
            "threads": a.threads,
            "connections": a.connections,
            "streams": a.streams,
            "rate": a.rate,
            "warmup_s": a.warmup.as_secs_f64(),
            "duration_s": secs,
            "requests": total.requests,
            "req_per_s": rps,
            "bytes": total.bytes,
            "latency_us": {
                "mean": h.mean(), "stdev": h.stdev(), "min": h.min(), "max": h.max(),
                "p50": q(0.5), "p75": q(0.75), "p90": q(0.9), "p99": q(0.99), "p99_9": q(0.999),
            },
            "errors": {
                "connect": total.connect, "read": total.read, "write": total.write, "timeout": total.timeout,
                "non_2xx": total.non_2xx(),
            },
            "status": { "1xx": total.status[1], "2xx": total.status[2], "3xx": total.status[3], "4xx": total.status[4], "5xx": total.status[5] },
            "tls_handshakes": { "full": total.tls_full, "resumed": total.tls_resumed },
            "harness_cpu": { "user_s": u, "sys_s": s, "wall_s": wall, "share_of_one_core": (u + s) / wall, "cores": ncpu },
        });
        let text = serde_json::to_string_pretty(&json).expect("JSON of plain values");
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("writing {path}: {e}");
            std::process::exit(1);
        }
    }
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 && s.fract() == 0.0 {
        format!("{}s", s as u64)
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `--self-test`: checks of the response parser and argument parsing (a `harness = false` bench has no
/// `#[test]` runner, so they run through the binary: `cargo bench --bench load -- --self-test`).
mod self_test {
    use super::*;

    fn heads_are_parsed() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n").expect("head");
        assert_eq!(
            h,
            Head {
                status: 200,
                len: 38,
                body: BodyLen::Fixed(2),
                close: false
            }
        );
        let h = parse_head(
            b"HTTP/1.1 502 Bad\r\ntransfer-encoding: gzip, chunked\r\nconnection: close\r\n\r\n",
        )
        .expect("head");
        assert_eq!((h.status, h.body, h.close), (502, BodyLen::Chunked, true));
        let h = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").expect("head");
        assert_eq!((h.body, h.close), (BodyLen::UntilClose, true));
        assert!(parse_head(b"garbage\r\n\r\n").is_none());
    }

    fn args_accept_wrk_forms() {
        let a = parse_args(
            [
                "-t2",
                "-c",
                "64",
                "-d10s",
                "--latency",
                "-H",
                "Host: a",
                "http://127.0.0.1:8080/x",
                "--bench",
            ]
            .map(String::from),
        )
        .expect("args");
        assert_eq!(
            (a.threads, a.connections, a.duration, a.latency),
            (2, 64, Duration::from_secs(10), true)
        );
        assert_eq!((a.url.port, a.url.path.as_str()), (8080, "/x"));
        assert!(String::from_utf8(build_request(&a, None))
            .expect("utf8")
            .contains("Host: a\r\n"));
    }

    pub fn run() {
        heads_are_parsed();
        args_accept_wrk_forms();
        println!("self-test ok");
    }
}
