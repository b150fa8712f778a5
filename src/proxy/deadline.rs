//! Bounds on every state of a client connection: TLS handshake and request headers, the gap between two
//! requests (HTTP/1 keep-alive, HTTP/2 with no open stream), the response write, and — through
//! [`crate::http::body::TimedBody`] — the request body.
//!
//! hyper 1.x gives little of this: its HTTP/1 `header_read_timeout` starts as soon as the connection waits
//! for a head, so it also cuts the keep-alive gap (one value for two bounds), protocol detection by
//! `hyper_util`'s auto builder has no timer at all, and HTTP/2 has no idle timeout (a client answering PINGs
//! is kept forever). So hyper's own header timer is switched off and each connection is driven by
//! [`drive`], which keeps one timer per connection and re-arms it when the connection changes state:
//!
//! ```text
//!  accept ─► Head (readHeaderTimeout, readTimeout) ──request──► Active ──response done──► Idle (idleTimeout)
//!                 ▲                                          (h1: writeTimeout)           │
//!                 └────────────── h1: first byte of the next request ◄────────────────────┘
//! ```
//!
//! A deadline in `Head`, `Idle` (HTTP/1) or `Active` (HTTP/1 `writeTimeout`) closes the connection; an
//! HTTP/2 connection reaching its idle deadline is sent GOAWAY and closed. HTTP/2 PINGs are no activity:
//! only open streams are. HTTP/2 streams get Go's per-stream `writeTimeout` from [`StreamExec`], the
//! executor that spawns them.
//!
//! What the pieces share is one [`Activity`] per connection (atomics only: HTTP/2 streams run on tasks of
//! their own); nothing here allocates per request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The bounds of one entrypoint, resolved from `respondingTimeouts` (`None` = no bound).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// TLS handshake, first bytes and request headers: `readHeaderTimeout`, capped by `readTimeout`.
    pub header: Option<Duration>,
    /// A whole request, headers and body, from its first byte (`readTimeout`).
    pub read: Option<Duration>,
    /// Longest silence between two reads of a request body (`bodyIdleTimeout`).
    pub body_idle: Option<Duration>,
    /// End of the request headers to the end of the response (`writeTimeout`).
    pub write: Option<Duration>,
    /// No request in progress (`idleTimeout`, else `readTimeout` as Go does).
    pub idle: Option<Duration>,
    /// Longest wait for the client to take bytes while a write to it is pending (`sendTimeout`, nginx's
    /// `send_timeout`): a client that stops reading its response is closed even when `writeTimeout` is 0.
    pub send: Option<Duration>,
}

impl Timeouts {
    /// Resolves the five settings (each `None` when zero) the way Go's `http.Server` combines its own:
    /// the header bound is the smaller of the header and whole-request bounds, and a zero idle timeout
    /// falls back to the read timeout.
    pub fn resolve(
        read_header: Option<Duration>,
        read: Option<Duration>,
        body_idle: Option<Duration>,
        write: Option<Duration>,
        idle: Option<Duration>,
    ) -> Timeouts {
        let header = match (read_header, read) {
            (Some(h), Some(r)) => Some(h.min(r)),
            (h, r) => h.or(r),
        };
        Timeouts {
            header,
            read,
            body_idle,
            write,
            idle: idle.or(read),
            send: None,
        }
    }

    /// The same bounds with `sendTimeout` set (`None` = a stalled write waits forever).
    pub fn with_send(self, send: Option<Duration>) -> Timeouts {
        Timeouts { send, ..self }
    }
}

/// Marks "not set" in the millisecond fields of [`Activity`].
const UNSET: u64 = u64::MAX;

/// What one client connection is doing, shared by its driver, its I/O, its service and its streams.
#[derive(Debug)]
pub struct Activity {
    born: Instant,
    /// Requests (HTTP/2 streams) whose response is not finished.
    open: AtomicU32,
    /// Requests begun so far: a request answered within one poll of the connection (an internal answer, a
    /// 404) opens and closes before the driver looks, and must still count as one.
    begun: AtomicU64,
    /// Set by [`TrackedIo`] on every read that brought bytes; cleared by the driver when the connection
    /// goes idle, so that the first byte of the next HTTP/1 request starts its header timer.
    read_seen: AtomicBool,
    /// Whether requests arrive over HTTP/2 (known from the first request).
    h2: AtomicBool,
    /// When the head of the current HTTP/1 request began (ms since `born`), as seen by the driver.
    head_start_ms: AtomicU64,
    /// When the current HTTP/1 request began: its head start, else when its headers were complete.
    request_start_ms: AtomicU64,
    /// HTTP/1 `writeTimeout` deadline of the request in progress (ms since `born`).
    write_deadline_ms: AtomicU64,
    /// The driver's task, woken when the last open stream of an HTTP/2 connection ends on another task.
    driver: AtomicWaker,
    /// Set by the service when the HTTP/1 response just served leaves the connection reusable as hyper
    /// sees it (HTTP/1.1, no body left unread, no `Connection: close` either way, no upgrade): only then may
    /// an idle connection be parked (see [`drive`]).
    parkable: AtomicBool,
    /// Set by the driver while it parks the connection: hyper's closing `shutdown` is then not passed to
    /// the socket, which is handed back instead.
    parking: AtomicBool,
}

impl Activity {
    /// A fresh connection, born now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            born: Instant::now(),
            open: AtomicU32::new(0),
            begun: AtomicU64::new(0),
            read_seen: AtomicBool::new(false),
            h2: AtomicBool::new(false),
            head_start_ms: AtomicU64::new(UNSET),
            request_start_ms: AtomicU64::new(UNSET),
            write_deadline_ms: AtomicU64::new(UNSET),
            driver: AtomicWaker::new(),
            parkable: AtomicBool::new(false),
            parking: AtomicBool::new(false),
        })
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.born).as_millis()).unwrap_or(UNSET - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.born + Duration::from_millis(ms)
    }

    /// Called by the service when a request's headers are complete: counts it open until the returned
    /// guard is dropped (with the response body, once it is written or abandoned).
    pub fn begin(self: &Arc<Self>, version: http::Version, write: Option<Duration>) -> OpenRequest {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.begun.fetch_add(1, Ordering::Relaxed);
        self.parkable.store(false, Ordering::Relaxed);
        if version == http::Version::HTTP_2 {
            self.h2.store(true, Ordering::Relaxed);
        } else {
            let now = Instant::now();
            let head = self.head_start_ms.swap(UNSET, Ordering::Relaxed);
            let start = if head == UNSET { self.ms(now) } else { head };
            self.request_start_ms.store(start, Ordering::Relaxed);
            let deadline = write.map_or(UNSET, |w| self.ms(now + w));
            self.write_deadline_ms.store(deadline, Ordering::Relaxed);
        }
        OpenRequest {
            activity: self.clone(),
        }
    }

    /// When the request now being read began, for `readTimeout`: HTTP/1 keeps one request at a time, so
    /// the connection knows; an HTTP/2 stream begins when its body is first wrapped (its headers just
    /// arrived, as Go's per-stream read timer starts).
    pub fn request_start(&self) -> Instant {
        if self.h2.load(Ordering::Relaxed) {
            return Instant::now();
        }
        match self.request_start_ms.load(Ordering::Relaxed) {
            UNSET => Instant::now(),
            ms => self.at(ms),
        }
    }
}

/// One request counted open in its connection's [`Activity`]; uncounted when dropped.
#[derive(Debug)]
pub struct OpenRequest {
    activity: Arc<Activity>,
}

impl OpenRequest {
    /// Called by the service with the response to this request: whether hyper keeps the connection
    /// alive after it (see [`super::park`]), which lets the driver park the connection once it is idle.
    pub fn served(&self, reusable: bool) {
        self.activity.parkable.store(reusable, Ordering::Relaxed);
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        if self.activity.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            // An HTTP/2 stream ends on its own task: the driver must re-arm its idle timer.
            self.activity.driver.wake();
        }
    }
}

/// The client socket (plain or TLS), noting in [`Activity`] when bytes arrive and bounding how long a
/// write may wait for the client to read (`sendTimeout`).
pub struct TrackedIo<I> {
    inner: I,
    activity: Arc<Activity>,
    send: SendStall,
}

impl<I> TrackedIo<I> {
    /// Wraps `inner`; a write that makes no progress for `send` fails with `TimedOut`, which ends the
    /// connection.
    pub fn new(inner: I, activity: Arc<Activity>, send: Option<Duration>) -> TrackedIo<I> {
        TrackedIo {
            inner,
            activity,
            send: SendStall {
                limit: send,
                timer: None,
                armed: false,
            },
        }
    }
}

impl<I> TrackedIo<I> {
    /// The socket, once hyper is done with it (a parked connection).
    pub fn into_inner(self) -> I {
        self.inner
    }
}

/// nginx's `send_timeout` for one connection: the timer starts when a write to the client first returns
/// `Pending` and is disarmed by any write that makes progress. Its `Sleep` is allocated on the first stall
/// only, so connections whose writes never block pay nothing.
struct SendStall {
    limit: Option<Duration>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
}

impl SendStall {
    /// Passes a write's outcome through, turning a stall longer than the limit into `TimedOut`.
    fn check<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        let Some(limit) = self.limit else { return r };
        if r.is_ready() {
            self.armed = false;
            return r;
        }
        let deadline = Instant::now() + limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            timer.as_mut().reset(deadline);
            self.armed = true;
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took no bytes within sendTimeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for TrackedIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.read_seen.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for TrackedIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.send.check(cx, r)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.send.check(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.activity.parking.load(Ordering::Relaxed) {
            // The connection is being parked, not closed: the socket stays open for the next request.
            return Poll::Ready(Ok(()));
        }
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.send.check(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.send.check(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The executor hyper spawns HTTP/2 streams on: each stream (spawned when its headers arrive, done when
/// its response is written) is bounded by `writeTimeout`, as Go bounds each HTTP/2 stream. Dropping a
/// stream at its deadline resets it and aborts its backend request.
#[derive(Clone, Copy, Debug)]
pub struct StreamExec {
    /// `writeTimeout`.
    pub write: Option<Duration>,
}

impl<F> hyper::rt::Executor<F> for StreamExec
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        match self.write {
            Some(d) => {
                tokio::spawn(tokio::time::timeout(d, fut));
            }
            None => {
                tokio::spawn(fut);
            }
        }
    }
}

/// What the connection is doing, as the driver sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head.
    Head,
    /// At least one request in progress.
    Active,
    /// Between requests.
    Idle,
    /// HTTP/2 GOAWAY sent after the idle deadline; closing.
    Closing,
}

/// How long an HTTP/2 connection sent GOAWAY for being idle may take to close.
const GOAWAY_GRACE: Duration = Duration::from_secs(1);

/// A hyper connection that can be asked to finish gracefully (HTTP/1: close when idle; HTTP/2: GOAWAY).
pub trait Graceful: Future {
    /// Starts a graceful close.
    fn start_graceful(self: Pin<&mut Self>);
    /// Whether the connection ended without an error (only such a connection can be parked).
    fn ended_ok(out: &Self::Output) -> bool;
}

/// How [`drive`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driven {
    /// The connection is over (closed by either side, failed, or a deadline passed): drop it.
    Over,
    /// An idle HTTP/1 connection was parked: hyper gave back the socket (take it with `into_parts`) and
    /// the connection stays open until this deadline (`idleTimeout`; `None` = no bound) for its next
    /// request.
    Parked(Option<Instant>),
}

/// Serves `conn` until it ends, a bound of `t` is reached, or `stop` fires (then gracefully: in-flight
/// requests finish, HTTP/2 clients get GOAWAY). The first request head is bounded from `start` (the
/// accept for plain connections, the end of the handshake for TLS ones).
///
/// With `park_after`, an HTTP/1 connection idle that long after a reusable response (see
/// [`Activity::served`]) is parked: hyper is asked to finish while it waits for the next head (it holds
/// an 8 KiB read and an 8 KiB write buffer meanwhile), its closing `shutdown` is not passed to the socket
/// (see [`TrackedIo`]), and [`Driven::Parked`] tells the caller to take the socket back and wait for it
/// to become readable without any buffer.
pub async fn drive<C: Graceful>(
    mut conn: Pin<&mut C>,
    activity: &Activity,
    t: Timeouts,
    start: Instant,
    stop: &tokio_util::sync::CancellationToken,
    park_after: Option<Duration>,
) -> Driven {
    let stopped = stop.cancelled();
    let mut stopped = std::pin::pin!(stopped);
    activity.parking.store(false, Ordering::Relaxed);
    activity.parkable.store(false, Ordering::Relaxed);
    activity
        .head_start_ms
        .store(activity.ms(start), Ordering::Relaxed);
    let mut phase = Phase::Head;
    let mut deadline = t.header.map(|d| start + d);
    // When the connection, idle, is parked (`None`: not while it is not idle and parkable).
    let mut park_at: Option<Instant> = None;
    let sleep = tokio::time::sleep_until(deadline.unwrap_or(start));
    let mut sleep = std::pin::pin!(sleep);
    let mut graceful = false;
    let mut begun = activity.begun.load(Ordering::Relaxed);
    std::future::poll_fn(|cx| {
        if !graceful && stopped.as_mut().poll(cx).is_ready() {
            graceful = true;
            activity.parking.store(false, Ordering::Relaxed);
            conn.as_mut().start_graceful();
        }
        if let Poll::Ready(out) = conn.as_mut().poll(cx) {
            return Poll::Ready(ended(activity, graceful, C::ended_ok(&out), deadline));
        }
        activity.driver.register(cx.waker());
        loop {
            let now_begun = activity.begun.load(Ordering::Relaxed);
            if now_begun != begun {
                // A request began (and may have ended) since the last look: the connection was active.
                begun = now_begun;
                if phase != Phase::Closing {
                    phase = Phase::Active;
                }
            }
            let next = step(activity, phase, deadline, t);
            if next != (phase, deadline) {
                let was = phase;
                (phase, deadline) = next;
                park_at = match park_after {
                    Some(p) if phase == Phase::Idle && was != Phase::Idle => {
                        let parkable = !activity.h2.load(Ordering::Relaxed)
                            && activity.parkable.load(Ordering::Relaxed);
                        parkable.then(|| Instant::now() + p)
                    }
                    _ if phase == Phase::Idle => park_at,
                    _ => None,
                };
                if let Some(d) = earliest(deadline, park_at) {
                    sleep.as_mut().reset(d);
                }
            }
            let wake = earliest(deadline, park_at);
            if wake.is_none() || sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if park_at.is_some_and(|p| deadline.is_none_or(|d| p < d)) {
                // Idle long enough: park. hyper, idle, closes at once; the shutdown is swallowed.
                park_at = None;
                if !graceful {
                    graceful = true;
                    activity.parking.store(true, Ordering::Relaxed);
                    conn.as_mut().start_graceful();
                }
                if let Poll::Ready(out) = conn.as_mut().poll(cx) {
                    return Poll::Ready(ended(activity, graceful, C::ended_ok(&out), deadline));
                }
                if let Some(d) = deadline {
                    sleep.as_mut().reset(d);
                }
                continue;
            }
            // A deadline passed.
            activity.parking.store(false, Ordering::Relaxed);
            let h2 = activity.h2.load(Ordering::Relaxed);
            if phase != Phase::Idle || !h2 {
                return Poll::Ready(Driven::Over); // dropping the connection closes it
            }
            phase = Phase::Closing;
            deadline = Some(Instant::now() + GOAWAY_GRACE);
            if let Some(d) = deadline {
                sleep.as_mut().reset(d);
            }
            if !graceful {
                graceful = true;
                conn.as_mut().start_graceful();
            }
            if conn.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Driven::Over);
            }
        }
    })
    .await
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What the end of the connection future means: a park that hyper completed cleanly (the idle deadline
/// carries over), or the end.
fn ended(activity: &Activity, graceful: bool, ok: bool, deadline: Option<Instant>) -> Driven {
    if graceful && ok && activity.parking.load(Ordering::Relaxed) {
        Driven::Parked(deadline)
    } else {
        Driven::Over
    }
}

/// The driver's state machine: the phase and deadline after what `activity` shows now.
fn step(
    a: &Activity,
    phase: Phase,
    deadline: Option<Instant>,
    t: Timeouts,
) -> (Phase, Option<Instant>) {
    if phase == Phase::Closing {
        return (phase, deadline);
    }
    let h2 = a.h2.load(Ordering::Relaxed);
    if a.open.load(Ordering::Acquire) > 0 {
        // HTTP/1 bounds the response write here; HTTP/2 streams bound themselves (`StreamExec`).
        let write = match a.write_deadline_ms.load(Ordering::Relaxed) {
            UNSET => None,
            _ if h2 => None,
            ms => Some(a.at(ms)),
        };
        return (Phase::Active, write);
    }
    match phase {
        Phase::Active => {
            a.read_seen.store(false, Ordering::Relaxed);
            (Phase::Idle, t.idle.map(|d| Instant::now() + d))
        }
        Phase::Idle if !h2 && a.read_seen.swap(false, Ordering::Relaxed) => {
            let now = Instant::now();
            a.head_start_ms.store(a.ms(now), Ordering::Relaxed);
            (Phase::Head, t.header.map(|d| now + d))
        }
        _ => (phase, deadline),
    }
}

impl<I, S, E, B> Graceful
    for hyper_util::server::conn::auto::UpgradeableConnection<'static, I, S, E>
where
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>,
    S::Future: 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    E: hyper_util::server::conn::auto::HttpServerConnExec<S::Future, B>,
{
    fn start_graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }

    fn ended_ok(out: &Self::Output) -> bool {
        out.is_ok()
    }
}

impl<I, S, B> Graceful for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn start_graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }

    fn ended_ok(out: &Self::Output) -> bool {
        out.is_ok()
    }
}

impl<I, S, B, E> Graceful for hyper::server::conn::http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn start_graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }

    fn ended_ok(out: &Self::Output) -> bool {
        out.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    /// Whether `d` is `n` seconds from now (within the time a test step takes).
    fn in_secs(d: Option<Instant>, n: u64) -> bool {
        d.is_some_and(|d| {
            let left = d.saturating_duration_since(Instant::now());
            left <= Duration::from_secs(n) && left > Duration::from_secs(n) - Duration::from_secs(1)
        })
    }

    #[test]
    fn header_bound_is_the_smaller_of_header_and_read_and_idle_falls_back_to_read() {
        let t = Timeouts::resolve(s(60), s(5), s(60), None, None);
        assert_eq!(t.header, s(5));
        assert_eq!(t.idle, s(5), "idleTimeout 0 takes readTimeout, as Go");
        let t = Timeouts::resolve(None, None, None, None, s(180));
        assert_eq!(t.header, None);
        assert_eq!(t.idle, s(180));
        let t = Timeouts::resolve(s(60), None, None, None, None);
        assert_eq!(t.header, s(60));
    }

    #[tokio::test]
    async fn the_driver_moves_through_head_active_idle_and_back_to_head_on_a_byte() {
        let a = Activity::new();
        let t = Timeouts::resolve(s(10), None, None, s(3), s(100));
        let (p, d) = step(
            &a,
            Phase::Head,
            Some(Instant::now() + Duration::from_secs(10)),
            t,
        );
        assert_eq!(p, Phase::Head);
        assert!(d.is_some());
        let guard = a.begin(http::Version::HTTP_11, t.write);
        let (p, d) = step(&a, p, d, t);
        assert_eq!(p, Phase::Active);
        assert!(in_secs(d, 3), "writeTimeout from the end of the headers");
        drop(guard);
        let (p, d) = step(&a, p, d, t);
        assert_eq!(p, Phase::Idle);
        assert!(in_secs(d, 100));
        // Nothing read: still idle.
        assert_eq!(step(&a, p, d, t).0, Phase::Idle);
        a.read_seen.store(true, Ordering::Relaxed);
        let (p, d) = step(&a, p, d, t);
        assert_eq!(p, Phase::Head);
        assert!(in_secs(d, 10));
    }

    /// A connection that is pending until asked to finish gracefully, then ends at once (as hyper's
    /// HTTP/1 connection does when idle); the activity is driven by the test.
    struct FakeConn {
        graceful: bool,
    }

    impl Future for FakeConn {
        type Output = Result<(), ()>;
        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
            if self.graceful {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        }
    }

    impl Graceful for FakeConn {
        fn start_graceful(mut self: Pin<&mut Self>) {
            self.graceful = true;
        }
        fn ended_ok(out: &Self::Output) -> bool {
            out.is_ok()
        }
    }

    /// Drives a fake connection that serves one request (reusable or not) and then stays idle.
    async fn serve_one_then_idle(reusable: bool) -> (Driven, Duration) {
        let a = Activity::new();
        let t = Timeouts::resolve(s(10), None, None, None, s(100));
        let stop = tokio_util::sync::CancellationToken::new();
        let mut conn = std::pin::pin!(FakeConn { graceful: false });
        let t0 = Instant::now();
        let driver = drive(
            conn.as_mut(),
            &a,
            t,
            t0,
            &stop,
            Some(Duration::from_millis(500)),
        );
        let request = async {
            let open = a.begin(http::Version::HTTP_11, None);
            tokio::time::sleep(Duration::from_millis(10)).await;
            open.served(reusable);
            drop(open);
            std::future::pending::<()>().await;
        };
        let driven = tokio::select! {
            d = driver => d,
            _ = request => unreachable!(),
        };
        (driven, t0.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_reusable_http1_connection_is_parked_and_keeps_its_idle_deadline() {
        let (driven, took) = serve_one_then_idle(true).await;
        let Driven::Parked(Some(idle)) = driven else {
            panic!("{driven:?}")
        };
        assert!(
            took >= Duration::from_millis(510) && took < Duration::from_millis(600),
            "{took:?}"
        );
        let left = idle.saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(99) && left <= Duration::from_secs(100),
            "{left:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_hyper_would_close_is_never_parked() {
        let (driven, took) = serve_one_then_idle(false).await;
        // Not parked: it runs to its idle deadline and is then dropped.
        assert_eq!(driven, Driven::Over);
        assert!(took >= Duration::from_secs(100), "{took:?}");
    }

    #[tokio::test]
    async fn an_idle_http2_connection_ignores_reads() {
        let a = Activity::new();
        let t = Timeouts::resolve(s(10), None, None, None, s(100));
        drop(a.begin(http::Version::HTTP_2, None));
        let (p, d) = step(&a, Phase::Active, None, t);
        assert_eq!(p, Phase::Idle);
        a.read_seen.store(true, Ordering::Relaxed); // a PING
        assert_eq!(step(&a, p, d, t), (Phase::Idle, d));
    }
}
