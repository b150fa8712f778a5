//! Per-server health state and the active HTTP health checker.
//!
//! Owns two things:
//! - [`ServerHealth`], the atomics the hot path reads (`is_up`) and the
//!   checker / proxy write. The table builder shares one `Arc<ServerHealth>`
//!   per server identity and carries it over across rebuilds, so a rebuild
//!   neither forgets that a server is down nor re-probes it from scratch.
//! - The active checker ([`spawn_checker`]): one task per server that probes it
//!   over HTTP on an interval with Traefik's `healthCheck` semantics and flips
//!   `ServerHealth::set_active`. Its pure parts ([`probe_uri`],
//!   [`is_healthy_status`]) are separate functions so they are unit-tested
//!   without sockets.
//!
//! Must not: block or lock on the read path (`is_up` is two relaxed loads), or
//! touch the routing table (state flows only through the shared atomics).
//!
//! Differences from Traefik (`pkg/healthcheck/healthcheck.go`), on purpose:
//! - one loop per server instead of one per service walking its servers in
//!   sequence, so a slow server does not delay its neighbours' checks;
//! - the first probe comes after a random delay in `[0, interval]` instead of
//!   after exactly one interval, so checkers restarted together by a table
//!   rebuild do not probe in lock-step;
//! - a state *change* is logged at info/warn, repeated failures at debug
//!   (Traefik warns on every failed probe);
//! - only `http` probes for now: a server whose probe scheme is `https` is left
//!   unchecked (and up) with one warning, and a redirect to `https` is not
//!   followed: the redirect response itself is judged;
//! - no connection reuse between probes (see [`spawn_checker`]);
//! - passive health is simpler: a failed connection marks the server down for
//!   a fixed window ([`ServerHealth::mark_failed`]), where Traefik's
//!   `passiveHealthCheck` counts failures in a sliding window.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HOST, LOCATION, REFERER};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

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
    fn effective_interval(&self) -> Duration {
        non_zero_or(self.interval, DEFAULT_INTERVAL)
    }

    fn effective_unhealthy_interval(&self) -> Duration {
        self.unhealthy_interval.map_or_else(
            || self.effective_interval(),
            |d| non_zero_or(d, DEFAULT_INTERVAL),
        )
    }

    fn effective_timeout(&self) -> Duration {
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
    /// The probe's scheme is one we cannot speak (yet).
    #[error("{scheme} health checks are not supported yet (only http)")]
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
        /// hyper's error (connect refused, reset, bad response…).
        #[source]
        source: hyper_util::client::legacy::Error,
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

/// The URL to probe for `server_url`, as Traefik's `newRequest` builds it.
///
/// Resolves `s.path` against `server_url` (RFC 3986 reference resolution with
/// Go's dot-segment handling), then applies `s.scheme` and `s.port` (the port
/// replaces the server URL's, IPv6 brackets kept). Bytes that may not appear
/// in a URI (space, `"`, `{`, non-ASCII…) are percent-encoded, as Go does when
/// it serializes the URL; the fragment is dropped (never sent). Errors on a
/// path with a scheme or host ([`HealthError::AbsolutePath`], as Traefik), on
/// a path Go's `url.Parse` rejects ([`HealthError::InvalidPath`]) and on an
/// unusable scheme ([`HealthError::InvalidUri`]). Pure.
///
/// # Errors
///
/// [`HealthError::AbsolutePath`], [`HealthError::InvalidPath`] or
/// [`HealthError::InvalidUri`] as above; the checker counts each as a failed
/// probe (the server goes down), as Traefik does for a bad path.
pub fn probe_uri(server_url: &Uri, s: &HealthCheckSettings) -> Result<Uri, HealthError> {
    let reference = parse_reference(&s.path).map_err(|reason| HealthError::InvalidPath {
        path: s.path.clone(),
        reason,
    })?;
    if reference.scheme.is_some() || reference.authority.is_some() {
        return Err(HealthError::AbsolutePath {
            path: s.path.clone(),
        });
    }
    let resolved = resolve(server_url, &reference);
    let scheme = s.scheme.as_deref().unwrap_or(resolved.scheme);
    let authority = match s.port {
        Some(port) => with_port(resolved.authority, port),
        None => resolved.authority.to_owned(),
    };
    build_uri(scheme, &authority, &resolved.path, resolved.query).map_err(|source| {
        HealthError::InvalidUri {
            server_url: server_url.to_string(),
            source,
        }
    })
}

/// A parsed URI reference (Go's `url.Parse` result, the parts we use).
#[derive(Debug, PartialEq, Eq)]
struct Reference<'a> {
    scheme: Option<&'a str>,
    /// A scheme followed by something other than `/` (`mailto:x`, `http:`).
    opaque: bool,
    authority: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
}

/// Go's `url.Parse`, restricted to what a health path or a `Location` header
/// needs: fragment cut, scheme per `getScheme`, query cut at the first `?`,
/// authority after `//`, and Go's rejections (control bytes, `:` first,
/// colon in the first segment of a relative path, bad `%` escapes). Opaque
/// URLs (`mailto:x`) are flagged; callers reject them.
fn parse_reference(s: &str) -> Result<Reference<'_>, &'static str> {
    if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("invalid control character in URL");
    }
    let s = s.split_once('#').map_or(s, |(before, _)| before);
    let mut scheme = None;
    let mut rest = s;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return Err("missing protocol scheme"),
            b':' => {
                scheme = Some(&s[..i]);
                rest = &s[i + 1..];
                break;
            }
            _ => break,
        }
    }
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let opaque = scheme.is_some() && !rest.starts_with('/');
    if !rest.starts_with('/') && scheme.is_none() {
        let first_segment = rest.split('/').next().unwrap_or("");
        if first_segment.contains(':') {
            return Err("first path segment in URL cannot contain colon");
        }
    }
    let (authority, path) = match rest.strip_prefix("//") {
        Some(after) if scheme.is_some() || !rest.starts_with("///") => match after.find('/') {
            Some(i) => (Some(&after[..i]), &after[i..]),
            None => (Some(after), ""),
        },
        _ => (None, rest),
    };
    if !valid_escapes(path) {
        return Err("invalid URL escape");
    }
    Ok(Reference {
        scheme,
        opaque,
        authority,
        path,
        query,
    })
}

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

struct Resolved<'a> {
    scheme: &'a str,
    authority: &'a str,
    path: String,
    query: Option<&'a str>,
}

/// Go's `URL.ResolveReference` for a base with scheme and host.
fn resolve<'a>(base: &'a Uri, r: &Reference<'a>) -> Resolved<'a> {
    let base_scheme = base.scheme_str().unwrap_or("http");
    let base_authority = base.authority().map_or("", Authority::as_str);
    if r.scheme.is_some() || r.authority.is_some() {
        return Resolved {
            scheme: r.scheme.unwrap_or(base_scheme),
            authority: r.authority.unwrap_or(""),
            path: resolve_path(r.path, ""),
            query: r.query,
        };
    }
    let query = if r.path.is_empty() && r.query.is_none() {
        base.query()
    } else {
        r.query
    };
    Resolved {
        scheme: base_scheme,
        authority: base_authority,
        path: resolve_path(base.path(), r.path),
        query,
    }
}

/// Go's `resolvePath`: merge `reference` into `base` and remove dot
/// segments, always yielding an absolute path (or "" when both are empty).
fn resolve_path(base: &str, reference: &str) -> String {
    let full = if reference.is_empty() {
        base.to_owned()
    } else if !reference.starts_with('/') {
        let keep = base.rfind('/').map_or(0, |i| i + 1);
        format!("{}{}", &base[..keep], reference)
    } else {
        reference.to_owned()
    };
    if full.is_empty() {
        return full;
    }
    let mut dst = String::with_capacity(full.len() + 1);
    dst.push('/');
    let mut first = true;
    let mut elem = "";
    for segment in full.split('/') {
        elem = segment;
        match segment {
            "." => first = false,
            ".." => {
                if let Some(i) = dst[1..].rfind('/') {
                    dst.truncate(i + 1);
                } else {
                    dst.truncate(1);
                    first = true;
                }
            }
            _ => {
                if !first {
                    dst.push('/');
                }
                dst.push_str(segment);
                first = false;
            }
        }
    }
    if elem == "." || elem == ".." {
        dst.push('/');
    }
    if dst.as_bytes().get(1) == Some(&b'/') {
        dst.remove(0);
    }
    dst
}

/// Replaces the port in `authority` (keeping user info and IPv6 brackets).
fn with_port(authority: &str, port: u16) -> String {
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => authority.split_at(i + 1),
        None => ("", authority),
    };
    let host = if hostport.starts_with('[') {
        hostport.find(']').map_or(hostport, |i| &hostport[..=i])
    } else {
        hostport.rsplit_once(':').map_or(hostport, |(h, _)| h)
    };
    format!("{userinfo}{host}:{port}")
}

/// Assembles an absolute URI, percent-encoding bytes a URI may not contain.
fn build_uri(
    scheme: &str,
    authority: &str,
    path: &str,
    query: Option<&str>,
) -> Result<Uri, http::Error> {
    let mut pq = String::with_capacity(path.len() + query.map_or(0, str::len) + 2);
    if path.is_empty() {
        pq.push('/');
    } else {
        push_encoded(&mut pq, path, false);
    }
    if let Some(q) = query {
        pq.push('?');
        push_encoded(&mut pq, q, true);
    }
    let scheme = Scheme::try_from(scheme.to_ascii_lowercase().as_str())?;
    let authority = Authority::try_from(authority)?;
    let pq = PathAndQuery::try_from(pq)?;
    Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(pq)
        .build()
}

/// RFC 3986 `pchar` plus `/` (and `?` in a query), or an existing escape.
fn push_encoded(out: &mut String, s: &str, in_query: bool) {
    for &b in s.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
                    | b'%'
            )
            || (in_query && b == b'?');
        if keep {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
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

type ProbeClient = Client<HttpConnector, Empty<Bytes>>;

/// One client for all probes of a checker. Idle pooling is off: each probe
/// opens a fresh connection, so a keep-alive connection the server closed
/// between two probes 30 s apart can never fail a probe (Go's transport would
/// retry such a GET; hyper-util's pool cannot always), and a probe measures
/// what a new proxy connection would meet.
fn probe_client() -> ProbeClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(0)
        .build(connector)
}

/// Starts the active checker: one task per target, each probing its server on
/// the target's interval and writing the verdict to `target.state`.
///
/// Control plane; called by the app after each table build with the new
/// table's targets (and a fresh child token, cancelling the previous
/// checker). Returns at once; the returned task ends when `cancel` fires
/// (within one scheduler turn, in-flight probes are dropped) and awaiting it
/// is optional. Targets whose probe URL is `https` are not checked yet: they
/// are logged once at warn and set up (an unchecked server is up). Must be
/// called inside a Tokio runtime.
///
/// Each loop: wait a random delay in `[0, interval]`, then probe; after a
/// healthy probe wait `interval`, after a failed one `unhealthy_interval`,
/// measured from the start of the probe. A probe fails on connect/IO errors,
/// on timeout, or on an unhealthy final status; see [`is_healthy_status`]. A
/// change of verdict is logged with the service and server URL (`info!` up,
/// `warn!` down, with the reason).
pub fn spawn_checker(targets: Vec<CheckTarget>, cancel: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = probe_client();
        let mut loops = JoinSet::new();
        for target in targets {
            let scheme = target
                .settings
                .scheme
                .as_deref()
                .or_else(|| target.server_url.scheme_str())
                .unwrap_or("http");
            if scheme.eq_ignore_ascii_case("https") {
                tracing::warn!(
                    service = %target.service,
                    server = %target.server_url,
                    "HTTPS health checks are not supported yet; server is not health-checked"
                );
                // Unchecked means up, even if a carried-over state says down.
                target.state.set_active(true);
                continue;
            }
            loops.spawn(check_loop(client.clone(), target, cancel.clone()));
        }
        while loops.join_next().await.is_some() {}
    })
}

async fn check_loop(client: ProbeClient, target: CheckTarget, cancel: CancellationToken) {
    let settings = Arc::clone(&target.settings);
    let interval = settings.effective_interval();
    let first = jitter(interval);
    tokio::select! {
        () = cancel.cancelled() => return,
        () = tokio::time::sleep(first) => {}
    }
    loop {
        let started = tokio::time::Instant::now();
        let result = tokio::select! {
            () = cancel.cancelled() => return,
            r = check_once(&client, &target) => r,
        };
        let up = result.is_ok();
        let changed = target.state.set_active(up);
        match (&result, changed) {
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

fn jitter(interval: Duration) -> Duration {
    let max = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=max))
}

/// One probe of `target` with its timeout: Ok when the final status is healthy.
async fn check_once(client: &ProbeClient, target: &CheckTarget) -> Result<(), HealthError> {
    let settings = &*target.settings;
    let timeout = settings.effective_timeout();
    let status = tokio::time::timeout(timeout, probe(client, target))
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

/// Sends the probe request and follows redirects as Go's `http.Client` does
/// (`client.go`, `do`): 301/302/303 turn non-GET/HEAD into GET, 307/308 keep
/// the method; a 3xx without `Location` is final; the `Host` override survives
/// only relative redirects; `Authorization`/`Cookie`-like headers are not sent
/// to another host; `Referer` is set to the previous URL. Returns the final
/// status.
async fn probe(client: &ProbeClient, target: &CheckTarget) -> Result<StatusCode, HealthError> {
    let s = &*target.settings;
    let mut uri = probe_uri(&target.server_url, s)?;
    let mut host: Option<HeaderValue> = match s.hostname.as_deref() {
        Some(h) => Some(
            HeaderValue::from_str(h).map_err(|_| HealthError::InvalidHostname {
                hostname: h.to_owned(),
            })?,
        ),
        None => None,
    };
    let mut method = s.method.clone();
    let mut referer: Option<HeaderValue> = None;
    let mut send_sensitive = true;
    let mut sent = 0usize;
    loop {
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(HealthError::UnsupportedScheme {
                scheme: uri.scheme_str().unwrap_or_default().to_owned(),
            });
        }
        let request = build_request(
            &uri,
            &method,
            host.as_ref(),
            referer.as_ref(),
            s,
            send_sensitive,
        );
        let response = client
            .request(request)
            .await
            .map_err(|source| HealthError::Request {
                uri: uri.to_string(),
                source,
            })?;
        sent += 1;
        let status = response.status();
        if !s.follow_redirects || !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            return Ok(status);
        }
        let location = match response.headers().get(LOCATION) {
            None => return Ok(status),
            Some(l) if l.is_empty() => return Ok(status),
            Some(l) => l,
        };
        let bad = |reason| HealthError::BadRedirect {
            location: String::from_utf8_lossy(location.as_bytes()).into_owned(),
            reason,
        };
        let location_str = location.to_str().map_err(|_| bad("not ASCII"))?;
        let reference = parse_reference(location_str).map_err(bad)?;
        if reference.opaque {
            return Err(bad("opaque URLs cannot be followed"));
        }
        let resolved = resolve(&uri, &reference);
        let next = build_uri(
            resolved.scheme,
            resolved.authority,
            &resolved.path,
            resolved.query,
        )
        .map_err(|_| bad("not a valid URL"))?;
        if next.scheme() == Some(&Scheme::HTTPS) {
            // Cannot follow yet: judge the redirect itself (see module docs).
            tracing::debug!(
                service = %target.service,
                server = %target.server_url,
                location = location_str,
                "not following redirect to https in health check"
            );
            return Ok(status);
        }
        let current_host = host_of(&uri);
        host =
            host.filter(|h| reference.scheme.is_none() && h.as_bytes() != current_host.as_bytes());
        if matches!(status.as_u16(), 301..=303) && method != Method::GET && method != Method::HEAD {
            method = Method::GET;
        }
        send_sensitive = canonical_addr(&next) == canonical_addr(&uri);
        referer = HeaderValue::from_str(&strip_userinfo(&uri)).ok();
        if sent >= MAX_REQUESTS_PER_PROBE {
            return Err(HealthError::TooManyRedirects);
        }
        drop(response);
        uri = next;
    }
}

fn build_request(
    uri: &Uri,
    method: &Method,
    host: Option<&HeaderValue>,
    referer: Option<&HeaderValue>,
    s: &HealthCheckSettings,
    send_sensitive: bool,
) -> Request<Empty<Bytes>> {
    let mut request = Request::new(Empty::new());
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri.clone();
    let headers = request.headers_mut();
    for (name, value) in &s.headers {
        if name == HOST || (!send_sensitive && is_sensitive(name)) {
            continue;
        }
        headers.insert(name.clone(), value.clone());
    }
    // Go sends `Host` exactly as the URL's host[:port] (default port kept);
    // hyper would drop a default port, so set it ourselves.
    let host = host
        .cloned()
        .or_else(|| HeaderValue::from_str(host_of(uri)).ok());
    if let Some(host) = host {
        headers.insert(HOST, host);
    }
    if let Some(referer) = referer {
        headers.insert(REFERER, referer.clone());
    }
    request
}

fn is_sensitive(name: &HeaderName) -> bool {
    name == http::header::AUTHORIZATION
        || name == http::header::WWW_AUTHENTICATE
        || name == http::header::COOKIE
        || name.as_str() == "cookie2"
}

/// `host[:port]` of the URI's authority, without user info (Go's `URL.Host`).
fn host_of(uri: &Uri) -> &str {
    let authority = uri.authority().map_or("", Authority::as_str);
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

/// Go's `canonicalAddr`: lowercase host and explicit port.
fn canonical_addr(uri: &Uri) -> (String, u16) {
    let host = uri.host().unwrap_or_default().to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    (host, port)
}

fn strip_userinfo(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let pq = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    format!("{scheme}://{}{pq}", host_of(uri))
}

#[cfg(test)]
mod tests;
