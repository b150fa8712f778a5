//! Health of servers: the state the hot path reads and the pure parts of Traefik's `healthCheck`.
//!
//! Owns:
//! - [`ServerHealth`] (in `state`), the atomics the hot path reads (`is_up`) and the checker / proxy
//!   write. The table builder shares one `Arc<ServerHealth>` per server identity and carries it over
//!   across rebuilds, so a rebuild neither forgets that a server is down nor re-probes it from scratch;
//! - [`HealthCheckSettings`] and [`CheckTarget`]: what the builder publishes after each table build for
//!   the prober to check;
//! - the pure probe logic: the probe URL ([`probe_uri`], in `uri`), the requests of one probe and the
//!   redirects it follows ([`ProbePlan`], in `plan`), and the verdict on a status
//!   ([`is_healthy_status`]).
//!
//! Must not: do I/O (the prober that sends the requests is `proxy::health_check`, above the pool, so
//! probes use the same connector and TLS settings as traffic), block or lock on the read path (`is_up` is
//! two relaxed loads), or touch the routing table (state flows only through the shared atomics).
//!
//! Differences from Traefik (`pkg/healthcheck/healthcheck.go`), on purpose (see `proxy::health_check`
//! for the prober's own):
//! - passive health is simpler: a failed connection marks the server down for a fixed window
//!   ([`ServerHealth::mark_failed`]), where Traefik's `passiveHealthCheck` counts failures in a sliding
//!   window.

mod plan;
mod state;
mod uri;

pub use plan::{Next, ProbePlan};
pub use state::{
    is_healthy_status, now_ms, CheckTarget, HealthCheckSettings, HealthError, ServerHealth,
    DEFAULT_INTERVAL, DEFAULT_TIMEOUT, MAX_REQUESTS_PER_PROBE,
};
pub use uri::probe_uri;

#[cfg(test)]
use uri::{build_uri, parse_reference, resolve, resolve_path};

#[cfg(test)]
mod tests;
