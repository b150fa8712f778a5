//! The active health checker: probes every server whose service has a `healthCheck`, on Traefik's
//! schedule, and writes the verdict to the server's shared [`ServerHealth`](crate::balance::ServerHealth).
//!
//! The table builder publishes the current [`CheckTarget`]s after every stored table; [`run`] (one
//! supervised task, wired by the app) restarts its per-server loops whenever they change, so a probe
//! never outlives the table that asked for it. Probes go through the upstream pool's connector
//! ([`Upstreams::send_unpooled`]): `http`, `https` and `h2c` servers are checked with the same TLS
//! settings as traffic (`serversTransport.insecureSkipVerify`, `rootCAs`). What a probe sends and which
//! redirects it follows is decided by the pure [`ProbePlan`].
//!
//! Must not: touch the routing table (state flows only through the shared atomics), or keep connections
//! between probes.
//!
//! Differences from Traefik (`pkg/healthcheck/healthcheck.go`), on purpose:
//! - one loop per server instead of one per service walking its servers in sequence, so a slow server
//!   does not delay its neighbours' checks;
//! - the first probe comes after a random delay in `[0, interval]` instead of after exactly one interval,
//!   so loops restarted together by a table rebuild do not probe in lock-step;
//! - a state *change* is logged at info/warn, repeated failures at debug (Traefik warns on every failed
//!   probe);
//! - no connection reuse between probes (see [`Upstreams::send_unpooled`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::header::LOCATION;
use http::StatusCode;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::balance::health::{is_healthy_status, CheckTarget, HealthError, Next, ProbePlan};
use crate::balance::UpstreamScheme;
use crate::http::UpstreamBody;
use crate::upstream::pool::{Target, Upstreams};

/// The targets the table builder publishes: every checked server of the current table.
pub type CheckTargets = Arc<Vec<CheckTarget>>;

/// Runs the active checks until `cancel`: one loop per target of the latest `targets`, restarted (all
/// of them, with a new random first delay) whenever the builder publishes a new table's targets.
///
/// Each loop: wait a random delay in `[0, interval]`, then probe; after a healthy probe wait `interval`,
/// after a failed one `unhealthyInterval`, measured from the start of the probe. A probe fails on
/// connect/TLS/IO errors, on timeout, or on an unhealthy final status (see [`is_healthy_status`]). A
/// change of verdict is logged with the service and server URL (`info!` up, `warn!` down, with the
/// reason). A loop that panics takes this task down with it (the supervisor then stops the process):
/// a checker that silently stopped would freeze servers in their last state.
pub async fn run(
    targets: watch::Receiver<CheckTargets>,
    upstreams: Upstreams,
    cancel: CancellationToken,
) {
    run_with(targets, HttpProbe { upstreams }, cancel).await;
}

/// One probe of one target; the HTTP prober, or a scripted one in the timing tests.
trait Probe: Clone + Send + Sync + 'static {
    /// Ok when the server is healthy, else why not.
    fn check(&self, target: &CheckTarget) -> impl Future<Output = Result<(), HealthError>> + Send;
}

async fn run_with<P: Probe>(
    mut targets: watch::Receiver<CheckTargets>,
    probe: P,
    cancel: CancellationToken,
) {
    let mut loops = start(&targets.borrow_and_update(), &probe, &cancel);
    let mut builder_gone = false;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = targets.changed(), if !builder_gone => match changed {
                // Dropping the old set aborts its loops (in-flight probes are dropped).
                Ok(()) => loops = start(&targets.borrow_and_update(), &probe, &cancel),
                // Stopped with the builder: keep checking the last targets until cancelled.
                Err(_) => builder_gone = true,
            },
            Some(Err(e)) = loops.join_next(), if !loops.is_empty() => {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
    }
}

fn start<P: Probe>(targets: &[CheckTarget], probe: &P, cancel: &CancellationToken) -> JoinSet<()> {
    let mut loops = JoinSet::new();
    for target in targets {
        loops.spawn(check_loop(probe.clone(), target.clone(), cancel.clone()));
    }
    loops
}

async fn check_loop<P: Probe>(probe: P, target: CheckTarget, cancel: CancellationToken) {
    let settings = Arc::clone(&target.settings);
    let interval = settings.effective_interval();
    tokio::select! {
        () = cancel.cancelled() => return,
        () = tokio::time::sleep(jitter(interval)) => {}
    }
    loop {
        let started = tokio::time::Instant::now();
        let result = tokio::select! {
            () = cancel.cancelled() => return,
            r = probe.check(&target) => r,
        };
        let up = result.is_ok();
        log_verdict(&target, &result, target.state.set_active(up));
        let next = if up {
            interval
        } else {
            settings.effective_unhealthy_interval()
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep_until(started + next) => {}
        }
    }
}

fn log_verdict(target: &CheckTarget, result: &Result<(), HealthError>, changed: bool) {
    match (result, changed) {
        (Ok(()), true) => tracing::info!(
            service = %target.service,
            server = %target.server_url,
            "health check passed, server is up"
        ),
        (Err(error), true) => tracing::warn!(
            service = %target.service,
            server = %target.server_url,
            %error,
            "health check failed, server is down"
        ),
        (Err(error), false) => tracing::debug!(
            service = %target.service,
            server = %target.server_url,
            %error,
            "health check failed, server still down"
        ),
        (Ok(()), false) => {}
    }
}

fn jitter(interval: Duration) -> Duration {
    let max = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=max))
}

/// Probes over the upstream pool's connector, one new connection per request.
#[derive(Clone)]
struct HttpProbe {
    upstreams: Upstreams,
}

impl Probe for HttpProbe {
    async fn check(&self, target: &CheckTarget) -> Result<(), HealthError> {
        check_once(&self.upstreams, target).await
    }
}

/// One probe of `target` with its timeout: Ok when the final status is healthy.
async fn check_once(upstreams: &Upstreams, target: &CheckTarget) -> Result<(), HealthError> {
    let settings = &*target.settings;
    let timeout = settings.effective_timeout();
    let status = tokio::time::timeout(timeout, probe(upstreams, target))
        .await
        .map_err(|_| HealthError::Timeout { timeout })??;
    if is_healthy_status(status.as_u16(), settings) {
        Ok(())
    } else {
        Err(HealthError::UnhealthyStatus {
            status: status.as_u16(),
            expected: settings.status,
        })
    }
}

/// Sends the probe's requests, following redirects as the [`ProbePlan`] decides; returns the final
/// status.
async fn probe(upstreams: &Upstreams, target: &CheckTarget) -> Result<StatusCode, HealthError> {
    let mut plan = ProbePlan::new(&target.server_url, &target.settings)?;
    loop {
        let uri = plan.uri().clone();
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| HealthError::Request {
            uri: uri.to_string(),
            source,
        };
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => UpstreamScheme::Http,
            Some(s) if s.eq_ignore_ascii_case("https") => UpstreamScheme::Https,
            Some(s) if s.eq_ignore_ascii_case("h2c") => UpstreamScheme::H2c,
            other => {
                return Err(HealthError::UnsupportedScheme {
                    scheme: other.unwrap_or_default().to_owned(),
                })
            }
        };
        let authority = uri.authority().ok_or_else(|| failed("no host".into()))?;
        let pool_target = Target {
            scheme,
            authority,
            identity: &target.state,
        };
        let request = plan.request().map(|()| UpstreamBody::Empty);
        let response = upstreams
            .send_unpooled(pool_target, request)
            .await
            .map_err(|e| failed(Box::new(e)))?;
        match plan.on_response(response.status(), response.headers().get(LOCATION))? {
            Next::Done(status) => return Ok(status),
            Next::Follow => {}
        }
    }
}

#[cfg(test)]
mod tests;
