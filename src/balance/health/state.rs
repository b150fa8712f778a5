//! Health state: the per-server atomics the hot path reads, a service's `healthCheck` settings with
//! Traefik's defaults, what one check targets, and Traefik's verdict on a status. Pure: no I/O, no clock
//! beyond [`now_ms`].

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, Method, Uri};

/// Traefik's default health check interval (`dynamic.DefaultHealthCheckInterval`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Traefik's default health check timeout (`dynamic.DefaultHealthCheckTimeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Go's `http.Client` gives up when the 10th response in a chain is still a
/// redirect ("stopped after 10 redirects"): at most 10 requests, 9 redirects
/// followed.
pub const MAX_REQUESTS_PER_PROBE: usize = 10;

/// Coarse monotonic milliseconds since the first call in this process.
///
/// What [`ServerHealth::is_up`] and [`ServerHealth::mark_failed`] take as
/// `now`. One `Instant::now()` (a vDSO clock read) per call; cheap enough for
/// the request path. Never goes backwards; the first call returns 0.
#[must_use]
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Health of one server, shared by `Arc` between the routing table (reads on
/// every pick), the active checker and the proxy's passive marking (writes).
///
/// Two independent signals: the active check's verdict (up until a probe says
/// otherwise, as Traefik considers servers up by default) and a passive
/// "down until" deadline set after connection failures. A server is up when
/// both agree. When a rebuild carries this state over to a service that no
/// longer has a health check, the builder must `set_active(true)`, or the
/// server would stay down with nothing left to bring it back. All operations are single relaxed atomics: no lock, no
/// ordering with other memory is needed because nothing else is published
/// through these flags.
#[derive(Debug)]
pub struct ServerHealth {
    active_up: AtomicBool,
    passive_down_until_ms: AtomicU64,
}

impl Default for ServerHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHealth {
    /// A server that is up: active check not yet failed, no passive mark.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            active_up: AtomicBool::new(true),
            passive_down_until_ms: AtomicU64::new(0),
        }
    }

    /// Whether the balancer may pick this server at `now_ms` (from
    /// [`now_ms`]): the active check says up and no passive mark is in force.
    /// Hot path.
    #[must_use]
    pub fn is_up(&self, now_ms: u64) -> bool {
        self.active_up.load(Ordering::Relaxed)
            && now_ms >= self.passive_down_until_ms.load(Ordering::Relaxed)
    }

    /// The active checker's verdict alone, for the admin API and logs.
    #[must_use]
    pub fn active_up(&self) -> bool {
        self.active_up.load(Ordering::Relaxed)
    }

    /// Records the active checker's verdict; returns true if it changed, so
    /// the caller logs transitions only.
    pub fn set_active(&self, up: bool) -> bool {
        self.active_up.swap(up, Ordering::Relaxed) != up
    }

    /// Passive marking: the proxy could not connect to this server at
    /// `now_ms`, so keep it out of rotation until `now_ms + window_ms`.
    /// Concurrent marks keep the latest deadline (`fetch_max`); a mark never
    /// shortens an earlier, longer one. Hot path (error branch), lock-free.
    pub fn mark_failed(&self, now_ms: u64, window_ms: u64) {
        let until = now_ms.saturating_add(window_ms);
        self.passive_down_until_ms
            .fetch_max(until, Ordering::Relaxed);
    }
}

/// One service's `healthCheck` options, with Traefik's names and defaults.
///
/// Built by the table builder from dynamic config and shared by `Arc` among the
/// service's [`CheckTarget`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSettings {
    /// Request path, a *relative* URL reference resolved against the server URL
    /// as Go's `url.Parse` does: `/health` replaces the server URL's path;
    /// `health` replaces only its last segment (`http://h/api/v1` →
    /// `http://h/api/health`); a query in it replaces the server URL's query.
    /// Empty (Traefik's default) probes the server URL itself.
    pub path: String,
    /// Time between probes of a healthy server. Zero means the default (30 s),
    /// as Traefik does for non-positive values.
    pub interval: Duration,
    /// Time between probes of an unhealthy server (Traefik's
    /// `unhealthyInterval`); `None` uses `interval`. Zero means 30 s.
    pub unhealthy_interval: Option<Duration>,
    /// Deadline for a whole probe, redirects included. Zero means 5 s.
    pub timeout: Duration,
    /// Replaces the server URL's scheme for the probe (`http` or `https`).
    pub scheme: Option<String>,
    /// Sent as the `Host` header instead of the server's host:port.
    pub hostname: Option<String>,
    /// Replaces the server URL's port for the probe.
    pub port: Option<u16>,
    /// Extra request headers, set (not appended) in order; a `Host` entry is
    /// ignored, as Go's client ignores it (use `hostname`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Request method; Traefik's default (empty) is GET.
    pub method: Method,
    /// If set, the only healthy status. Otherwise 200–399 are healthy.
    pub status: Option<u16>,
    /// Follow redirects like Go's client (default true). When false a 3xx is
    /// the final status, healthy unless `status` says otherwise.
    pub follow_redirects: bool,
}

impl Default for HealthCheckSettings {
    fn default() -> Self {
        Self {
            path: String::new(),
            interval: DEFAULT_INTERVAL,
            unhealthy_interval: None,
            timeout: DEFAULT_TIMEOUT,
            scheme: None,
            hostname: None,
            port: None,
            headers: Vec::new(),
            method: Method::GET,
            status: None,
            follow_redirects: true,
        }
    }
}

impl HealthCheckSettings {
    /// `interval`, or the default when zero: the wait after a healthy probe.
    #[must_use]
    pub fn effective_interval(&self) -> Duration {
        non_zero_or(self.interval, DEFAULT_INTERVAL)
    }

    /// `unhealthyInterval` (else `interval`), zero meaning the default: the wait after a failed probe.
    #[must_use]
    pub fn effective_unhealthy_interval(&self) -> Duration {
        self.unhealthy_interval.map_or_else(
            || self.effective_interval(),
            |d| non_zero_or(d, DEFAULT_INTERVAL),
        )
    }

    /// `timeout`, or the default when zero: the deadline of one whole probe, redirects included.
    #[must_use]
    pub fn effective_timeout(&self) -> Duration {
        non_zero_or(self.timeout, DEFAULT_TIMEOUT)
    }
}

fn non_zero_or(d: Duration, default: Duration) -> Duration {
    if d.is_zero() {
        default
    } else {
        d
    }
}

/// Why a probe failed or could not be built. Each variant names the offending
/// value; the messages follow Traefik's where it has one.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// `path` is not a valid URL reference.
    #[error("parsing health check path {path:?}: {reason}")]
    InvalidPath {
        /// The configured path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `path` has a scheme or a host.
    #[error("health check path must be a relative URL, got: {path:?}")]
    AbsolutePath {
        /// The configured path.
        path: String,
    },
    /// The probe URL cannot be assembled (bad scheme override, bad server URL).
    #[error("building health check URL from {server_url}: {source}")]
    InvalidUri {
        /// The server URL the probe was derived from.
        server_url: String,
        /// The `http` crate's complaint.
        #[source]
        source: http::Error,
    },
    /// `hostname` cannot be a `Host` header.
    #[error("health check hostname {hostname:?} is not a valid Host header")]
    InvalidHostname {
        /// The configured hostname.
        hostname: String,
    },
    /// The probe's scheme is not one the upstream pool speaks.
    #[error("{scheme} health checks are not supported (only http, https and h2c)")]
    UnsupportedScheme {
        /// The probe URL's scheme.
        scheme: String,
    },
    /// No response within the timeout.
    #[error("health check timed out after {timeout:?}")]
    Timeout {
        /// The effective timeout.
        timeout: Duration,
    },
    /// Connecting or exchanging the request failed.
    #[error("HTTP request to {uri} failed: {source}")]
    Request {
        /// The URL probed.
        uri: String,
        /// The pool's error (connect refused, TLS handshake, reset, bad response…).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The final status is not a healthy one.
    #[error("received error status code: {status}{}", expected_suffix(.expected))]
    UnhealthyStatus {
        /// The status received.
        status: u16,
        /// The configured `status`, if any.
        expected: Option<u16>,
    },
    /// The 10th response was still a redirect.
    #[error("stopped after 10 redirects")]
    TooManyRedirects,
    /// A `Location` header that cannot be followed.
    #[error("failed to parse Location header {location:?}: {reason}")]
    BadRedirect {
        /// The header value (lossy if not UTF-8).
        location: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

struct ExpectedSuffix(Option<u16>);

fn expected_suffix(expected: &Option<u16>) -> ExpectedSuffix {
    ExpectedSuffix(*expected)
}

impl fmt::Display for ExpectedSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, " expected status code: {s}"),
            None => Ok(()),
        }
    }
}

/// Traefik's verdict on a final status: equal to `status` if that is set,
/// otherwise `200 <= status < 400` (so 3xx is healthy, 1xx is not).
#[must_use]
pub fn is_healthy_status(status: u16, s: &HealthCheckSettings) -> bool {
    match s.status {
        Some(expected) => status == expected,
        None => (200..400).contains(&status),
    }
}

/// What the checker probes: one server of one service.
#[derive(Debug, Clone)]
pub struct CheckTarget {
    /// Qualified service name (`whoami@docker`), for logs.
    pub service: String,
    /// The server URL as configured (`http://10.0.1.5:80`).
    pub server_url: Uri,
    /// The service's `healthCheck` options.
    pub settings: Arc<HealthCheckSettings>,
    /// The server's shared health, updated by the checker.
    pub state: Arc<ServerHealth>,
}
