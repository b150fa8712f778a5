//! Wiring and lifecycle: binds entrypoints, starts providers, the table builder, ACME, the health prober
//! and the listeners, supervises the background tasks, and on shutdown stops accepting, drains in-flight
//! requests within `graceTimeOut`, then stops everything else.
//!
//! [`run`] is a list of named steps (`setup`, `providers`, the builder, `serve`, the drain); each step is
//! a function short enough to read at once. Lifecycle (docs/lifecycle.md has the whole story):
//! - every long-lived task (table builder, providers, ACME manager, health prober, access-log writer…) is
//!   spawned in one [`Supervisor`] under a name. One that panics, or ends while it should still run, is
//!   logged with its name, cancels the root token (so the rest stops and the listeners drain) and makes
//!   [`run`] return [`AppError::Task`]: the process exits non-zero and Swarm restarts the task. We do not
//!   restart tasks in-process: a panicked task may have left its state half-updated, and a fresh process
//!   is the one state we know is right;
//! - a signal cancels the same root token: background tasks stop at once (the table in force keeps
//!   serving), listeners accept for `requestAcceptGraceTimeout`, then drain for up to `graceTimeOut`;
//!   the access log is closed last, so the drained requests are logged.

mod providers;
mod serve;
mod setup;
mod udp_serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::accesslog::AccessLogger;
use crate::config::types::StaticConfig;
use crate::provider::file;
use crate::proxy::forward::PoolSettings;
use crate::proxy::health_check;
use crate::proxy::pool::Upstreams;
use crate::supervisor::{Supervisor, TaskFailure};
use crate::table::builder::TableBuilder;
use crate::table::{self, CompileContext, Store};
use crate::tls::challenge::{MemoryChallenges, SharedChallenges};
use crate::tls::TlsShared;

pub use setup::internal_config;

/// The compile context the running proxy would build for `cfg`, without binding a socket: `check` compiles
/// a stack's configuration with it, so that what `check` reports is what the runtime will serve (one code
/// path). Metrics are left out; TLS is compiled against an empty challenge store.
///
/// # Errors
///
/// The same start-up errors as [`run`] for entrypoints and redirections.
pub fn offline_compile_context(cfg: &StaticConfig) -> Result<CompileContext, AppError> {
    let eps = setup::tcp_entry_points(cfg)?;
    let mut ctx = setup::compile_context(cfg, &eps)?;
    let challenges: SharedChallenges = Arc::new(MemoryChallenges::default());
    ctx.tls = Some(TlsShared::new(challenges).map_err(|e| AppError::Invalid(format!("TLS: {e}")))?);
    Ok(ctx)
}

/// How long background tasks get to end after the root token is cancelled before they are aborted.
const TASK_STOP_DEADLINE: Duration = Duration::from_secs(5);

/// Why the application could not start, or stopped on its own. Each variant names the input (or task) at
/// fault.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// An entrypoint could not be bound.
    #[error("entrypoint `{name}`: cannot listen on {addr}: {source}")]
    Bind {
        /// Entrypoint name.
        name: String,
        /// Address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A static setting is invalid in a way decoding could not see.
    #[error("static configuration: {0}")]
    Invalid(String),
    /// The file provider could not start.
    #[error(transparent)]
    File(#[from] file::FileProviderError),
    /// A certificate resolver cannot work (configuration or storage).
    #[error(transparent)]
    Acme(#[from] crate::tls::acme::AcmeError),
    /// A supervised background task panicked or ended on its own: the process stops (non-zero exit) so
    /// that Swarm restarts it.
    #[error(transparent)]
    Task(#[from] TaskFailure),
}

/// Control handles of a running application.
#[derive(Clone, Debug)]
pub struct Control {
    /// Cancel to begin a graceful shutdown.
    pub shutdown: CancellationToken,
    /// Send to re-read the file provider (SIGHUP).
    pub reload: mpsc::Sender<()>,
}

/// Binds every TCP entrypoint. Called before anything starts, so a bind failure leaves nothing half-started.
pub async fn bind(cfg: &StaticConfig) -> Result<Vec<(String, TcpListener)>, AppError> {
    let mut out = Vec::new();
    for (name, addr) in setup::tcp_entry_points(cfg)? {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Bind {
                name: name.clone(),
                addr,
                source,
            })?;
        out.push((name, l));
    }
    Ok(out)
}

/// Runs until `control.shutdown` is cancelled (or a supervised task fails), then drains and returns.
///
/// `listeners` come from [`bind`] (or a test), in the same order as the static configuration's TCP
/// entrypoints.
///
/// # Errors
///
/// A setting that cannot work (before anything is served), or [`AppError::Task`] when a background task
/// panicked or ended on its own (after the drain).
pub async fn run(
    cfg: StaticConfig,
    listeners: Vec<(String, TcpListener)>,
    control: Control,
    reload_rx: mpsc::Receiver<()>,
) -> Result<(), AppError> {
    let eps = addresses(&listeners);
    let mut tasks = Supervisor::new(control.shutdown.clone());
    let background = control.shutdown.child_token();
    let mut ctx = setup::compile_context(&cfg, &eps)?;
    ctx.metrics = setup::prometheus(&cfg)?;
    let udp = udp_serve::bind(&cfg, &mut ctx)?;
    // Cancelled after draining, so the SIGUSR1 reopen works until the last request is logged.
    let access_log_token = CancellationToken::new();
    let access_logger = start_access_log(&cfg, &access_log_token, &mut tasks)?;
    let admin_eps: Vec<(String, SocketAddr)> = eps.iter().cloned().chain(udp.addresses()).collect();
    let admin = setup::admin_state(&cfg, &admin_eps, ctx.metrics.clone(), access_logger.clone());
    let transport = setup::transport(&cfg)?;
    let acme = crate::tls::acme::prepare(&cfg.certificates_resolvers)?;
    let challenges: SharedChallenges = match &acme {
        Some(a) => a.challenges(),
        None => Arc::new(MemoryChallenges::default()),
    };
    ctx.tls = Some(TlsShared::new(challenges).map_err(|e| AppError::Invalid(format!("TLS: {e}")))?);
    let names: Vec<String> = eps.iter().map(|(n, _)| n.clone()).collect();
    let store = table::empty_store(&names);
    let providers = providers::start(&cfg, reload_rx, &background, &mut tasks)?;
    let build = BuildStep {
        store: store.clone(),
        ctx,
        acme,
        transport: &transport,
        background: &background,
    };
    build.start(&cfg, &eps, providers, &admin, &mut tasks)?;
    udp.start(&store, &background, &mut tasks);
    let serving = serve::start(&cfg, listeners, store, admin.clone(), transport)?;

    let failure = tokio::select! {
        () = control.shutdown.cancelled() => None,
        f = tasks.failure() => Some(f),
    };
    serving.drain(&admin, failure.is_none()).await;
    background.cancel();
    if let Some(l) = &access_logger {
        l.close();
    }
    access_log_token.cancel();
    let late = tasks.join(TASK_STOP_DEADLINE).await;
    match failure.or(late) {
        Some(f) => Err(AppError::Task(f)),
        None => Ok(()),
    }
}

/// Each listener's name and bound address.
fn addresses(listeners: &[(String, TcpListener)]) -> Vec<(String, SocketAddr)> {
    listeners
        .iter()
        .map(|(n, l)| {
            (
                n.clone(),
                l.local_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
            )
        })
        .collect()
}

/// The access log (`accessLog`), its writer thread supervised: it must run until closed at shutdown.
fn start_access_log(
    cfg: &StaticConfig,
    reopen_until: &CancellationToken,
    tasks: &mut Supervisor,
) -> Result<Option<Arc<AccessLogger>>, AppError> {
    let Some(c) = &cfg.access_log else {
        return Ok(None);
    };
    let (logger, writer) = AccessLogger::start(c, reopen_until.clone())
        .map_err(|e| AppError::Invalid(e.to_string()))?;
    tasks.spawn("access log writer", writer.finished());
    Ok(Some(logger))
}

/// The table builder step: what it needs besides the providers.
struct BuildStep<'a> {
    store: Store,
    ctx: CompileContext,
    acme: Option<crate::tls::acme::Acme>,
    transport: &'a PoolSettings,
    background: &'a CancellationToken,
}

impl BuildStep<'_> {
    /// Compiles the first table (so it is complete before we accept), then starts the builder task, the
    /// ACME manager (which follows the routers' wishes) and the health prober (which follows the
    /// builder's check targets), all supervised.
    fn start(
        self,
        cfg: &StaticConfig,
        eps: &[(String, SocketAddr)],
        providers: providers::Providers,
        admin: &crate::admin::AdminState,
        tasks: &mut Supervisor,
    ) -> Result<(), AppError> {
        let providers::Providers {
            mut feeds,
            mut initial,
            _internal,
        } = providers;
        let mut builder = TableBuilder::new(self.store.clone(), self.ctx, self.background.clone());
        builder.set_change_log(admin.changes.clone());
        // ACME: stored certificates are in the first table.
        if let Some(c) = self.acme.as_ref().and_then(|a| a.initial()) {
            initial
                .providers
                .insert(crate::tls::acme::PROVIDER.into(), c);
        }
        builder.apply(initial);
        if let Some(a) = self.acme {
            let wanted = builder.wanted_certificates();
            feeds.push(a.start(wanted, self.background.clone(), tasks));
        }
        setup::startup_summary(cfg, eps, &self.store.load());
        let upstreams = Upstreams::new(self.transport)
            .map_err(|e| AppError::Invalid(format!("serversTransport: {e}")))?;
        tasks.spawn(
            "health checks",
            health_check::run(builder.health_targets(), upstreams, self.background.clone()),
        );
        let throttle = cfg.providers.providers_throttle_duration.0;
        tasks.spawn("table builder", async move {
            // The internal provider's sender lives as long as the builder reads its feed.
            let _internal = _internal;
            builder.run(feeds, throttle).await;
        });
        Ok(())
    }
}

/// Raises the soft limit on open files to the hard limit, as Go's runtime does at start (Traefik runs
/// with it), and logs the limit once: a shell or service manager leaving the soft limit at 256 or 1024
/// would otherwise cap the connections served far below what the host allows. Failure is logged, not
/// fatal: the process still runs with the limit it was given.
pub fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    let (soft, hard) = (limit.current, limit.maximum);
    if soft.is_some() && soft != hard {
        let raised = rustix::process::Rlimit {
            current: hard,
            maximum: hard,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(
                soft = ?soft,
                hard = ?hard,
                "open files limit could not be raised to the hard limit: {e}"
            );
            return;
        }
    }
    let now = getrlimit(Resource::Nofile).current;
    let show = |l: Option<u64>| l.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    tracing::info!(
        "open files limit {} (was {}, hard {})",
        show(now),
        show(soft),
        show(hard)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A supervised task that panics stops the app: `run`'s caller gets [`AppError::Task`] naming it,
    /// which `main` turns into a non-zero exit.
    #[tokio::test]
    async fn a_panicking_task_ends_the_app_with_an_error() {
        let root = CancellationToken::new();
        let mut tasks = Supervisor::new(root.clone());
        tasks.spawn("table builder", async { panic!("routing table poisoned") });
        let failure = tasks.failure().await;
        assert!(root.is_cancelled());
        let e = AppError::from(failure);
        assert_eq!(
            e.to_string(),
            "task `table builder` panicked: routing table poisoned"
        );
    }
}
