//! The UDP proxy: one task per UDP entrypoint, one session per client address, as Traefik's UDP model.
//!
//! - A datagram from a client address without a session opens one: the entrypoint's router (at most one
//!   per UDP entrypoint, see [`crate::table::udp`]) gives the service, weighted round robin gives the
//!   server, and the session gets its own socket connected to that server. Later datagrams of that client
//!   go through the same socket to the same server; the server's answers come back from the entrypoint's
//!   address to the client.
//! - A session ends after `entryPoints.<name>.udp.timeout` (Traefik's default 3 s) without a datagram in
//!   either direction.
//! - Table changes apply to new sessions; an existing session keeps its server until it is idle, even if
//!   the server left the table (as Traefik, whose sessions keep the handler they started with).
//!
//! Bounds (memory stays bounded under a flood of spoofed client addresses):
//! - at most `maxSessions` sessions per entrypoint (swarmgate's `entryPoints.<name>.udp.maxSessions`,
//!   default [`DEFAULT_MAX_SESSIONS`]); a datagram that would open one more is dropped, existing sessions
//!   are unaffected;
//! - no datagram is queued in user space: each direction is one non-blocking send (`try_send`), and a
//!   datagram the kernel cannot take at once is dropped, as a router would; reads go into one 64 KiB
//!   buffer per entrypoint task and one per worker thread for the sessions, never one per session;
//! - a session is one socket, one task and a few words of state.
//!
//! Hot path: the sessions map belongs to the entrypoint task (no lock); the table is loaded only when a
//! session opens; a session's idle clock is one atomic both directions update.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::IntGauge;
use rustix::net::SendFlags;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::balance::now_ms;
use crate::table::udp::UdpTarget;
use crate::table::Store;

/// Traefik's default `udp.timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// Default cap on concurrent sessions per UDP entrypoint. Each session holds one socket (a file
/// descriptor) and one small task; 4096 sessions of a 3 s timeout serve about 1300 new clients a second
/// and cost well under 10 MiB of user-space memory.
pub const DEFAULT_MAX_SESSIONS: usize = 4096;

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// The idle clock's value once a session has ended.
const CLOSED: u64 = u64::MAX;

/// Datagrams read from one socket per wake-up before the task lets its other branches run.
const BATCH: usize = 64;

/// A socket the reactor watches for reads. Sends bypass tokio's readiness bookkeeping (a socket just
/// registered is not known writable yet): they are plain non-blocking system calls ([`send`],
/// [`send_to`]), and a datagram the kernel cannot take at once is dropped.
type Sock = tokio::net::UdpSocket;

/// Sends `data` on the connected socket `s` without waiting.
fn send(s: &Sock, data: &[u8]) {
    let _ = rustix::net::send(s, data, SendFlags::DONTWAIT);
}

/// Sends `data` to `to` on `s` without waiting.
fn send_to(s: &Sock, data: &[u8], to: SocketAddr) {
    let _ = rustix::net::sendto(s, data, SendFlags::DONTWAIT, &to);
}

/// One UDP entrypoint to serve.
#[derive(Debug)]
pub struct UdpEntryPointSpec {
    /// Index into the table's UDP entrypoints.
    pub index: usize,
    /// Entrypoint name (logs, metrics).
    pub name: String,
    /// The bound socket, non-blocking.
    pub socket: std::net::UdpSocket,
    /// Idle time after which a session ends.
    pub timeout: Duration,
    /// Most sessions open at once.
    pub max_sessions: usize,
    /// `traefik_open_connections{entrypoint=<name>,protocol="UDP"}`, when metrics are on.
    pub open_sessions: Option<IntGauge>,
}

/// Serves one UDP entrypoint until `stop` is cancelled; its sessions end with it.
pub async fn serve(spec: UdpEntryPointSpec, store: Store, stop: CancellationToken) {
    let listener = match Sock::from_std(spec.socket) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            tracing::error!(entrypoint = %spec.name, "UDP entrypoint cannot be served: {e}");
            stop.cancelled().await;
            return;
        }
    };
    let mut ep = EntryPoint {
        listener: listener.clone(),
        index: spec.index,
        timeout_ms: u64::try_from(spec.timeout.as_millis())
            .unwrap_or(u64::MAX / 2)
            .max(1),
        max_sessions: spec.max_sessions.max(1),
        gauge: spec.open_sessions,
        sessions: HashMap::new(),
        next_id: 0,
        store,
        stop,
    };
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            () = ep.stop.cancelled() => break,
            Some((peer, id)) = ended_rx.recv() => ep.ended(peer, id),
            r = listener.readable() => match r {
                Ok(()) => {
                    for _ in 0..BATCH {
                        match listener.try_recv_from(&mut buf) {
                            Ok((n, peer)) => {
                                ep.datagram(buf.get(..n).unwrap_or_default(), peer, &ended_tx);
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            // A transient error of the socket (no memory): the next read may work.
                            Err(_) => continue,
                        }
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

/// One entrypoint's task-owned state.
struct EntryPoint {
    listener: Arc<Sock>,
    index: usize,
    timeout_ms: u64,
    max_sessions: usize,
    gauge: Option<IntGauge>,
    sessions: HashMap<SocketAddr, SessionHandle>,
    next_id: u64,
    store: Store,
    stop: CancellationToken,
}

/// The entrypoint's handle on a session.
struct SessionHandle {
    id: u64,
    shared: Arc<Session>,
}

/// What the entrypoint task and a session's task share.
struct Session {
    /// Last activity (ms of [`now_ms`]), or [`CLOSED`].
    last: AtomicU64,
    /// The socket connected to the server (set at once for an IP, after resolution for a host name).
    upstream: OnceLock<Arc<Sock>>,
}

impl Session {
    /// Records activity; false when the session has already ended.
    fn touch(&self, now: u64) -> bool {
        let mut cur = self.last.load(Ordering::Acquire);
        loop {
            if cur == CLOSED {
                return false;
            }
            match self.last.compare_exchange_weak(
                cur,
                now.max(cur),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(v) => cur = v,
            }
        }
    }

    /// Ends the session if it has been idle for `timeout_ms`; otherwise returns when it may next end.
    fn try_close(&self, now: u64, timeout_ms: u64) -> Result<(), u64> {
        let cur = self.last.load(Ordering::Acquire);
        let deadline = cur.saturating_add(timeout_ms);
        if now < deadline {
            return Err(deadline);
        }
        self.last
            .compare_exchange(cur, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(|v| v.saturating_add(timeout_ms))
    }
}

impl EntryPoint {
    /// A client's datagram: through its session, or opening one.
    fn datagram(
        &mut self,
        data: &[u8],
        peer: SocketAddr,
        ended: &mpsc::UnboundedSender<(SocketAddr, u64)>,
    ) {
        let now = now_ms();
        if let Some(s) = self.sessions.get(&peer) {
            if s.shared.touch(now) {
                if let Some(up) = s.shared.upstream.get() {
                    // Dropped when the kernel cannot take it now (UDP semantics, no queue).
                    send(up, data);
                }
                return;
            }
            // Ended but not yet reported: a new session takes its place.
            self.sessions.remove(&peer);
        }
        if self.sessions.len() >= self.max_sessions {
            return;
        }
        let table = self.store.load();
        let Some(target) = table
            .udp
            .route(self.index)
            .and_then(|r| table.udp.pick(r.service))
            .cloned()
        else {
            return;
        };
        self.open(data, peer, target, now, ended.clone());
    }

    /// Opens a session to `target` and sends it `first`.
    fn open(
        &mut self,
        first: &[u8],
        peer: SocketAddr,
        target: UdpTarget,
        now: u64,
        ended: mpsc::UnboundedSender<(SocketAddr, u64)>,
    ) {
        let shared = Arc::new(Session {
            last: AtomicU64::new(now),
            upstream: OnceLock::new(),
        });
        let pending = match target.resolved.map(connect) {
            Some(Ok(sock)) => {
                send(&sock, first);
                let _ = shared.upstream.set(Arc::new(sock));
                None
            }
            // The socket could not be made (no file descriptor left): drop the datagram.
            Some(Err(_)) => return,
            None => Some(first.to_vec()),
        };
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        self.sessions.insert(
            peer,
            SessionHandle {
                id,
                shared: shared.clone(),
            },
        );
        let task = SessionTask {
            shared,
            target,
            pending,
            peer,
            listener: self.listener.clone(),
            timeout_ms: self.timeout_ms,
            _open: OpenGuard::new(self.gauge.clone()),
        };
        let stop = self.stop.clone();
        tokio::spawn(async move {
            task.run(stop).await;
            let _ = ended.send((peer, id));
        });
    }

    /// A session reported its end: forget it unless a newer one already took its client address.
    fn ended(&mut self, peer: SocketAddr, id: u64) {
        if self.sessions.get(&peer).is_some_and(|s| s.id == id) {
            self.sessions.remove(&peer);
        }
    }
}

/// A socket connected to `target`, from an ephemeral port of the matching family.
fn connect(target: SocketAddr) -> io::Result<Sock> {
    let local: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(local)?;
    s.connect(target)?;
    s.set_nonblocking(true)?;
    Sock::from_std(s)
}

/// Counts an open session in `traefik_open_connections` while it lives.
struct OpenGuard(Option<IntGauge>);

impl OpenGuard {
    fn new(g: Option<IntGauge>) -> OpenGuard {
        if let Some(g) = &g {
            g.inc();
        }
        OpenGuard(g)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.dec();
        }
    }
}

/// One session's task: answers from the server to the client, and the idle clock.
struct SessionTask {
    shared: Arc<Session>,
    target: UdpTarget,
    /// The first datagram, while a host name is being resolved.
    pending: Option<Vec<u8>>,
    peer: SocketAddr,
    listener: Arc<Sock>,
    timeout_ms: u64,
    _open: OpenGuard,
}

thread_local! {
    /// Where sessions on this worker thread read their server's answers (read and sent on in one go).
    static ANSWER: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; MAX_DATAGRAM].into_boxed_slice());
}

impl SessionTask {
    async fn run(mut self, stop: CancellationToken) {
        let timeout = Duration::from_millis(self.timeout_ms);
        let upstream = match self.shared.upstream.get().cloned() {
            Some(u) => u,
            None => match tokio::time::timeout(timeout, self.resolve()).await {
                Ok(Some(u)) => u,
                _ => {
                    self.shared.last.store(CLOSED, Ordering::Release);
                    return;
                }
            },
        };
        let idle = tokio::time::sleep(timeout);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = &mut idle => match self.shared.try_close(now_ms(), self.timeout_ms) {
                    Ok(()) => break,
                    Err(deadline) => {
                        let wait = Duration::from_millis(deadline.saturating_sub(now_ms()).max(1));
                        idle.as_mut().reset(tokio::time::Instant::now() + wait);
                    }
                },
                r = upstream.readable() => match r {
                    Ok(()) => self.relay_answers(&upstream),
                    Err(_) => break,
                },
            }
        }
        self.shared.last.store(CLOSED, Ordering::Release);
    }

    /// Sends the answers waiting on the server's socket to the client, from the entrypoint's address.
    fn relay_answers(&self, upstream: &Sock) {
        ANSWER.with_borrow_mut(|buf| {
            for _ in 0..BATCH {
                match upstream.try_recv(buf) {
                    Ok(n) => {
                        self.shared.touch(now_ms());
                        send_to(&self.listener, buf.get(..n).unwrap_or_default(), self.peer);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    // The server's port refused a datagram (ICMP): the session lives on until idle.
                    Err(_) => continue,
                }
            }
        });
    }

    /// Resolves a host name target, connects, and sends the first datagram.
    async fn resolve(&mut self) -> Option<Arc<Sock>> {
        let addr = tokio::net::lookup_host(&*self.target.address)
            .await
            .ok()?
            .next()?;
        let sock = Arc::new(connect(addr).ok()?);
        if let Some(first) = self.pending.take() {
            send(&sock, &first);
        }
        let _ = self.shared.upstream.set(sock.clone());
        Some(sock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_closes_only_when_idle_and_never_reopens() {
        let s = Session {
            last: AtomicU64::new(1_000),
            upstream: OnceLock::new(),
        };
        assert_eq!(s.try_close(2_000, 3_000), Err(4_000));
        assert!(s.touch(3_500));
        assert_eq!(s.try_close(4_000, 3_000), Err(6_500));
        assert_eq!(s.try_close(6_500, 3_000), Ok(()));
        assert!(!s.touch(7_000), "an ended session takes no datagram");
    }
}
