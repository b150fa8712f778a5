//! How connections are spread over the workers: each worker's count of open connections, and the inbox
//! through which an accepting worker hands a connection to a less loaded one. Shared by the accept loop
//! ([`super::listener`]) and the workers that own the inboxes ([`super::workers`]), so neither names the
//! other for it. Touched per connection, never per request.

use std::net::{SocketAddr, TcpStream as StdStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hyper_util::server::graceful::Watcher;
use tokio::sync::mpsc;

/// Open connections per worker, and the way to hand a connection to another worker.
///
/// Only touched when a connection is accepted or closed, never per request.
pub struct Spread {
    load: Box<[AtomicUsize]>,
    inbox: Box<[mpsc::UnboundedSender<HandedOff>]>,
}

/// A connection accepted by one worker and served by another.
pub struct HandedOff {
    /// The socket, deregistered from the accepting worker.
    pub stream: StdStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// Index of the entrypoint it came in on.
    pub entry_point: usize,
    /// Registration with the graceful shutdown.
    pub watcher: Watcher,
    /// The connection's place in the target worker's load.
    pub load: ConnLoad,
}

/// One open connection counted in a worker's load; uncounted when dropped.
pub struct ConnLoad {
    spread: Arc<Spread>,
    worker: usize,
}

impl Drop for ConnLoad {
    fn drop(&mut self) {
        if let Some(l) = self.spread.load.get(self.worker) {
            l.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Spread {
    /// The spread over one worker per inbox, none loaded yet.
    pub fn new(inbox: Vec<mpsc::UnboundedSender<HandedOff>>) -> Spread {
        Spread {
            load: inbox.iter().map(|_| AtomicUsize::new(0)).collect(),
            inbox: inbox.into_boxed_slice(),
        }
    }

    /// Which worker should serve a connection accepted by `me`: `me` unless it has more than one
    /// connection more than the least-loaded worker (the slack avoids handing off on every accept).
    pub fn choose(&self, me: usize) -> usize {
        let mine = self.load.get(me).map_or(0, |l| l.load(Ordering::Relaxed));
        let (least, least_load) = self
            .load
            .iter()
            .map(|l| l.load(Ordering::Relaxed))
            .enumerate()
            .min_by_key(|&(_, l)| l)
            .unwrap_or((me, mine));
        if mine > least_load + 1 {
            least
        } else {
            me
        }
    }

    /// Counts a new connection on `worker` (before it is handed over, so the next choice sees it).
    pub fn charge(self: &Arc<Self>, worker: usize) -> ConnLoad {
        if let Some(l) = self.load.get(worker) {
            l.fetch_add(1, Ordering::Relaxed);
        }
        ConnLoad {
            spread: self.clone(),
            worker,
        }
    }

    /// Takes a worker that could not start out of the choice (it looks fully loaded).
    pub(super) fn retire(&self, worker: usize) {
        if let Some(l) = self.load.get(worker) {
            l.store(usize::MAX / 2, Ordering::Relaxed);
        }
    }

    /// Sends a connection to `worker`. If that worker has stopped, the connection is closed (shutdown).
    pub fn hand_off(&self, worker: usize, conn: HandedOff) {
        if let Some(tx) = self.inbox.get(worker) {
            let _ = tx.send(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(n: usize) -> (Arc<Spread>, Vec<mpsc::UnboundedReceiver<HandedOff>>) {
        let (tx, rx): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::unbounded_channel()).unzip();
        let s = Arc::new(Spread::new(tx));
        (s, rx)
    }

    fn loads(s: &Spread) -> Vec<usize> {
        s.load.iter().map(|l| l.load(Ordering::Relaxed)).collect()
    }

    #[test]
    fn a_burst_accepted_by_one_worker_ends_evenly_spread() {
        let (s, _rx) = spread(3);
        // Worker 0 accepts all 30 connections, as happens when it is the only one awake.
        let held: Vec<ConnLoad> = (0..30).map(|_| s.charge(s.choose(0))).collect();
        let l = loads(&s);
        assert_eq!(l.iter().sum::<usize>(), 30);
        assert!(l.iter().all(|&n| (9..=11).contains(&n)), "{l:?}");
        drop(held);
        assert_eq!(loads(&s), vec![0, 0, 0], "closing uncounts");
    }

    #[test]
    fn a_worker_within_one_of_the_least_keeps_its_connection() {
        let (s, _rx) = spread(2);
        let _a = s.charge(0);
        assert_eq!(s.choose(0), 0, "one more than the other is tolerated");
        let _b = s.charge(0);
        assert_eq!(s.choose(0), 1, "two more is handed off");
        assert_eq!(s.choose(1), 1);
    }

    #[test]
    fn a_retired_worker_is_never_chosen() {
        let (s, _rx) = spread(2);
        s.retire(1);
        let held: Vec<ConnLoad> = (0..10).map(|_| s.charge(s.choose(0))).collect();
        assert_eq!(loads(&s)[0], 10);
        drop(held);
    }
}
