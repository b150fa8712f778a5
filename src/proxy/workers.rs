//! Thread-per-core serving: the accept loops and every connection run on `N` worker threads, each a
//! current-thread Tokio runtime with its own copy of every entrypoint's listening socket and its own
//! upstream pools — the shape of nginx's worker processes and of sōzu's workers.
//!
//! Why not one work-stealing runtime: a proxied request is four short socket operations whose futures
//! wake each other. On a multi-thread runtime those wake-ups cross threads (atomics, futex, cache misses)
//! and a connection migrates between cores; measured on the 2-core bench machine this costs ~20 % of the
//! proxy's CPU per request (docs/benchmarks.md). Here a connection, its upstream connection and every task
//! between them stay on one thread.
//!
//! All workers share the listening socket itself (one kernel accept queue, duplicated file descriptors),
//! so nothing is lost between workers on shutdown and no `SO_REUSEPORT` group is left open to another
//! process binding the same port. Whichever worker wakes first accepts; a worker already serving more
//! connections than the least-loaded one hands the new connection over ([`super::spread`]), so a burst of
//! long-lived keep-alive connections (a load balancer in front, a benchmark) ends up evenly spread rather
//! than all on the thread that happened to be awake. What the workers share beyond that is read-only or
//! atomic: the table store, the admin state, the shutdown signals.

use std::net::TcpListener as StdListener;
use std::sync::Arc;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::forward::TrustedPeers;
use super::handler::Shared;
use super::listener::{self, ConnSettings, EntryPointCtx, EntryPointListener};
use super::spread::{HandedOff, Spread};

/// Environment variable setting the number of worker threads (default: the CPUs this process may use).
pub const WORKERS_ENV: &str = "SWARMGATE_WORKERS";

/// How many worker threads to run: `SWARMGATE_WORKERS` if set to a positive number, else the available
/// parallelism (which honours CPU affinity and cgroup quotas, so a container limited to 2 CPUs gets 2).
pub fn worker_count() -> usize {
    std::env::var(WORKERS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// How often each worker closes its expired idle upstream connections.
const SWEEP_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

/// One entrypoint as handed to the workers: the bound socket plus its connection settings.
pub struct EntryPointSpec {
    /// Index of the entrypoint in the routing table.
    pub index: usize,
    /// Its name (logs).
    pub name: String,
    /// The bound socket (non-blocking).
    pub listener: StdListener,
    /// Who may set forwarded headers.
    pub trusted: TrustedPeers,
    /// Connection settings.
    pub settings: ConnSettings,
}

/// Serves the connections other workers hand to this one, until `done` fires (every accept loop has
/// stopped, so nothing more can arrive); those already sent by then are still served.
async fn serve_handed_off(
    mut rx: mpsc::UnboundedReceiver<HandedOff>,
    eps: Vec<EntryPointCtx>,
    done: CancellationToken,
) {
    let serve = |h: HandedOff| {
        let Some(ep) = eps.iter().find(|e| e.index() == h.entry_point) else {
            return;
        };
        match tokio::net::TcpStream::from_std(h.stream) {
            Ok(stream) => ep.spawn(stream, h.peer, h.watcher, Some(h.load)),
            Err(e) => tracing::debug!(peer = %h.peer, "taking over a connection failed: {e}"),
        }
    };
    loop {
        tokio::select! {
            _ = done.cancelled() => break,
            h = rx.recv() => match h {
                Some(h) => serve(h),
                None => return,
            },
        }
    }
    rx.close();
    while let Ok(h) = rx.try_recv() {
        serve(h);
    }
}

/// Why the workers could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A listening socket could not be duplicated or registered.
    #[error("entrypoint `{name}`: {source}")]
    Listener {
        /// Entrypoint name.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The OS refused a thread or a runtime.
    #[error("starting worker thread: {0}")]
    Thread(std::io::Error),
}

/// The running workers.
pub struct Workers {
    threads: Vec<std::thread::JoinHandle<()>>,
    accepting: Vec<oneshot::Receiver<()>>,
    /// Cancelled once every worker stopped accepting: no more hand-offs can be sent.
    handoffs_done: CancellationToken,
    finish: CancellationToken,
}

/// Starts `count` workers serving `entry_points`.
///
/// `make_shared` builds each worker's process state (called on the worker thread, inside its runtime, so
/// its upstream pools spawn their connection tasks there); the caller has already built one successfully,
/// so an error here is logged and leaves that worker idle rather than failing the others. Accepting stops when `stop_accepting` fires;
/// each connection is registered with `graceful` so the caller can wait for in-flight requests.
pub fn start<F, E>(
    count: usize,
    entry_points: Vec<EntryPointSpec>,
    make_shared: F,
    stop_accepting: CancellationToken,
    graceful: Arc<GracefulShutdown>,
) -> Result<Workers, WorkerError>
where
    F: Fn() -> Result<Arc<Shared>, E> + Send + Sync + 'static,
    E: std::fmt::Display,
{
    let count = count.max(1);
    let make_shared = Arc::new(make_shared);
    let finish = CancellationToken::new();
    let handoffs_done = CancellationToken::new();
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..count).map(|_| mpsc::unbounded_channel()).unzip();
    let spread = (count > 1).then(|| Arc::new(Spread::new(senders)));
    let per_worker = sockets_per_worker(count, entry_points)?;
    let mut threads = Vec::with_capacity(count);
    let mut accepting = Vec::with_capacity(count);
    // One socket set and one inbox per worker: both have `count` entries.
    for (i, (eps, inbox)) in per_worker.into_iter().zip(receivers).enumerate() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(WorkerError::Thread)?;
        // Register the sockets with this worker's reactor before the thread starts, so that an error is
        // reported to the caller rather than logged from a thread.
        let listeners = {
            let _guard = rt.enter();
            register(eps)?
        };
        let (done_tx, done_rx) = oneshot::channel();
        accepting.push(done_rx);
        let worker = Worker {
            index: i,
            listeners,
            stop: stop_accepting.clone(),
            graceful: graceful.clone(),
            finish: finish.clone(),
            handoffs_done: handoffs_done.clone(),
            spread: spread.clone().map(|s| (s, i)),
            inbox,
            accepting_stopped: done_tx,
        };
        let make_shared = make_shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("swarmgate-w{i}"))
            .spawn(move || {
                rt.block_on(worker.run(make_shared.as_ref()));
                // Dropping the runtime closes whatever connections are still open.
                drop(rt);
            })
            .map_err(WorkerError::Thread)?;
        threads.push(thread);
    }
    Ok(Workers {
        threads,
        accepting,
        handoffs_done,
        finish,
    })
}

/// Each worker's own descriptor of every listening socket (the first worker keeps the originals).
fn sockets_per_worker(
    count: usize,
    entry_points: Vec<EntryPointSpec>,
) -> Result<Vec<Vec<EntryPointSpec>>, WorkerError> {
    let mut per_worker: Vec<Vec<EntryPointSpec>> = (0..count).map(|_| Vec::new()).collect();
    for ep in entry_points {
        for slot in per_worker.iter_mut().skip(1) {
            let dup = ep
                .listener
                .try_clone()
                .map_err(|source| WorkerError::Listener {
                    name: ep.name.clone(),
                    source,
                })?;
            slot.push(EntryPointSpec {
                index: ep.index,
                name: ep.name.clone(),
                listener: dup,
                trusted: ep.trusted.clone(),
                settings: ep.settings.clone(),
            });
        }
        if let Some(first) = per_worker.first_mut() {
            first.push(ep);
        }
    }
    Ok(per_worker)
}

/// Registers a worker's sockets with the reactor of the runtime entered by the caller.
fn register(eps: Vec<EntryPointSpec>) -> Result<Vec<EntryPointListener>, WorkerError> {
    eps.into_iter()
        .map(|ep| {
            let l = tokio::net::TcpListener::from_std(ep.listener).map_err(|source| {
                WorkerError::Listener {
                    name: ep.name.clone(),
                    source,
                }
            })?;
            Ok(EntryPointListener {
                index: ep.index,
                name: ep.name,
                listener: l,
                trusted: ep.trusted,
                settings: ep.settings,
            })
        })
        .collect()
}

/// One worker, ready to run on its thread.
struct Worker {
    index: usize,
    listeners: Vec<EntryPointListener>,
    stop: CancellationToken,
    graceful: Arc<GracefulShutdown>,
    finish: CancellationToken,
    handoffs_done: CancellationToken,
    spread: Option<(Arc<Spread>, usize)>,
    inbox: mpsc::UnboundedReceiver<HandedOff>,
    accepting_stopped: oneshot::Sender<()>,
}

impl Worker {
    /// Builds the worker's state, accepts until told to stop, serves hand-offs, then keeps its open
    /// connections until the caller has drained them (or given up).
    async fn run<F, E>(self, make_shared: &F)
    where
        F: Fn() -> Result<Arc<Shared>, E>,
        E: std::fmt::Display,
    {
        let shared = match make_shared() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(worker = self.index, "worker not started: {e}");
                if let Some((s, me)) = &self.spread {
                    s.retire(*me);
                }
                let _ = self.accepting_stopped.send(());
                return;
            }
        };
        let contexts: Vec<EntryPointCtx> = self
            .listeners
            .iter()
            .map(|l| {
                let port = l.listener.local_addr().map_or(0, |a| a.port());
                EntryPointCtx::new(
                    l.index,
                    l.trusted.clone(),
                    &l.settings,
                    port,
                    shared.clone(),
                    self.stop.clone(),
                )
            })
            .collect();
        let handed = tokio::spawn(serve_handed_off(self.inbox, contexts, self.handoffs_done));
        tokio::spawn(
            shared
                .upstreams
                .clone()
                .sweep_every(SWEEP_PERIOD, self.finish.clone()),
        );
        let loops: Vec<_> = self
            .listeners
            .into_iter()
            .map(|l| {
                tokio::spawn(listener::serve(
                    l,
                    shared.clone(),
                    self.stop.clone(),
                    self.graceful.clone(),
                    self.spread.clone(),
                ))
            })
            .collect();
        // Only the accept loops may hold the shutdown handle (see `listener::serve`).
        drop(self.graceful);
        for l in loops {
            let _ = l.await;
        }
        let _ = self.accepting_stopped.send(());
        let _ = handed.await;
        // Keep serving open connections until the caller has drained them (or given up).
        self.finish.cancelled().await;
    }
}

impl Workers {
    /// Waits until every worker has stopped accepting (after `stop_accepting` fired).
    pub async fn accepting_stopped(&mut self) {
        for rx in self.accepting.drain(..) {
            let _ = rx.await;
        }
        self.handoffs_done.cancel();
    }

    /// Stops the workers, closing any connection still open, and waits for their threads.
    pub async fn finish(self) {
        self.finish.cancel();
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}
