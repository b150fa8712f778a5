//! The per-request path: route → pick → forward.
//!
//! Per request this loads the current table once (one atomic increment), makes the request consistent
//! before anyone reads it (`normalize_request`: one authority in `Host`, an origin-form URI, the path
//! normalized and sanitized as Traefik's entrypoint does — no allocation for an ordinary request),
//! validates and normalizes the host without allocating when it is already lowercase, finds the router
//! through the table's host index, picks a server
//! with atomics only ([`crate::balance::pick()`]), rewrites headers in place and forwards over this worker's
//! pool ([`crate::upstream::pool`]). No
//! lock, no logging, and no allocation beyond what hyper needs and the `X-Forwarded-For` join for trusted
//! peers.
//!
//! Retries (`send_with_retry`): a request lost before any response byte is sent again on a new connection
//! to another server when that is safe — a connect failure for every method (the pool hands the request
//! back whole, body unread), a reset or EOF before the status line (the keep-alive race, a task killed
//! mid-request) for idempotent methods with an empty or buffered body (the pool kept a replica). At most
//! `MAX_ATTEMPTS` sends within `RETRY_WINDOW`, counted in `traefik_service_retries_total`; never once
//! response bytes reached the client.
//!
//! Middlewares: a route's chain gets the connection facts and a [`Terminal`] (serving a service of this
//! table); a chain of request-only steps hands the request back ([`Outcome::Serve`]) and the handler serves it
//! without a box. Internal services are answered through [`Shared::internal`], injected at wiring time.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::forward::{
    sanitize_at_entry, set_forwarded, strip_hop_by_hop, upgrade_requested, ForwardInfo,
};
use super::InternalServices;
use crate::balance::health::now_ms;
use crate::balance::{pick, Cookies};
use crate::http::body::{ClientBody, PooledBody, ProxyBody, UpstreamBody};
use crate::http::error::{classify, error_response, FailureKind, ProxyError};
use crate::http::{BoxRes, ConnInfo, Req, Terminal};
use crate::middleware::{Cx, Outcome};
use crate::rule::{normalize_path, parse_host, RequestView};
use crate::table::{
    EntryPointRedirect, LoadBalancerRuntime, RoutingTable, ServiceKind, Store, UpstreamScheme,
};
use crate::tls::challenge::HTTP01_PREFIX;
use crate::upstream::pool::{SendOptions, Stage, Target, Upstreams};

/// How long a server that refused a connection stays out of rotation (passive health).
pub const PASSIVE_DOWN_WINDOW_MS: u64 = 5_000;

/// State shared by every connection of the process.
pub struct Shared {
    /// The current routing table.
    pub store: Store,
    /// Pools to backends (this worker's).
    pub upstreams: Upstreams,
    /// `X-Forwarded-Server` value.
    pub server_name: HeaderValue,
    /// `responseHeaderTimeout` (None = wait forever).
    pub response_header_timeout: Option<Duration>,
    /// Tracks upgraded (WebSocket) tunnels so shutdown can wait for them.
    pub tunnels: tokio_util::task::TaskTracker,
    /// The internal services (ping, API, dashboard, metrics), injected at wiring time.
    pub internal: Arc<dyn InternalServices>,
    /// The access log, when `--accesslog` is on (the request path hands it records).
    pub access_logger: Option<Arc<crate::accesslog::AccessLogger>>,
    /// Whether request metrics are on (the counters themselves hang on the table's routes and services).
    pub metrics: bool,
}

/// One client connection as the handler sees it, set up once at accept.
pub struct ConnCtx {
    /// Process-wide state.
    pub shared: Arc<Shared>,
    /// What middlewares and the forwarder read about the client and the connection.
    pub info: ConnInfo,
    /// The bounds on reading a request body (`readTimeout`, `bodyIdleTimeout`).
    pub body_clock: super::body::BodyClock,
}

/// Serves one request; never fails (errors become responses).
///
/// Observability: with metrics and the access log off this is one branch more than routing
/// itself; with either on, what routing decided is noted in [`Seen`] and recorded once, at the end.
pub async fn handle(
    mut req: Request<Incoming>,
    ctx: Arc<ConnCtx>,
) -> Result<Response<ProxyBody>, Infallible> {
    // The entrypoint's header cleaning, before routing and any middleware (as Traefik's entrypoint).
    sanitize_at_entry(req.headers_mut(), ctx.info.trusted);
    let shared = &ctx.shared;
    if !shared.metrics && shared.access_logger.is_none() {
        return Ok(match route_and_forward(req, &ctx, None).await {
            Ok(resp) => resp,
            Err(e) => error_response(&e),
        });
    }
    let start = std::time::Instant::now();
    let method = req.method().clone();
    let bytes_in = content_length(req.headers());
    let pre = shared
        .access_logger
        .as_ref()
        .map(|l| observe::Pre::capture(&req, l));
    let mut seen = Seen::default();
    let resp = match route_and_forward(req, &ctx, Some(&mut seen)).await {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    };
    observe::record(&ctx, &seen, &method, bytes_in, pre, &resp, start.elapsed());
    Ok(resp)
}

/// What routing decided for one request, noted only when metrics or the access log are on.
#[derive(Default)]
pub(crate) struct Seen {
    entry_point: Option<Arc<crate::metrics::RequestStats>>,
    router: Option<Arc<crate::metrics::RequestStats>>,
    service: Option<Arc<crate::metrics::RequestStats>>,
    router_name: Option<Arc<str>>,
    service_name: Option<Arc<str>>,
    internal: bool,
}

impl Seen {
    /// Notes the route and its service (names only when the access log wants them).
    fn note_route(&mut self, route: &crate::table::Route, table: &RoutingTable, names: bool) {
        let svc = table.services.get(route.service);
        self.internal = matches!(svc.map(|s| &s.kind), Some(ServiceKind::Internal(_)));
        self.router = route.stats.clone();
        self.service = svc.and_then(|s| s.stats.clone());
        if names {
            self.router_name = Some(route.name.clone());
            self.service_name = svc.map(|s| s.name.clone());
        }
    }
}

/// The server that answered, set on the response by [`forward`] when the access log is on.
#[derive(Clone)]
pub(crate) struct Upstream {
    url: Arc<str>,
    retries: u32,
    status: u16,
}

fn content_length(h: &HeaderMap) -> u64 {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Recording metrics and access-log records at the end of [`handle`].
mod observe {
    use super::*;
    use crate::accesslog::{AccessLogger, Record};

    /// What the access log needs from the request, taken before the request is consumed.
    pub(super) struct Pre {
        start: std::time::SystemTime,
        path: String,
        version: Version,
        host: String,
        forwarded_for: Option<String>,
        headers: Vec<(String, String)>,
        count: u64,
    }

    impl Pre {
        pub(super) fn capture(req: &Request<Incoming>, l: &AccessLogger) -> Pre {
            let host = req
                .uri()
                .authority()
                .map(|a| a.as_str().to_string())
                .or_else(|| {
                    req.headers()
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .map(str::to_string)
                })
                .unwrap_or_default();
            Pre {
                start: std::time::SystemTime::now(),
                path: req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into()),
                version: req.version(),
                host,
                forwarded_for: req
                    .headers()
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                headers: Record::headers_from(&l.settings, req.headers()),
                count: l.next_count(),
            }
        }
    }

    pub(super) fn record(
        ctx: &ConnCtx,
        seen: &Seen,
        method: &http::Method,
        bytes_in: u64,
        pre: Option<Pre>,
        resp: &Response<ProxyBody>,
        elapsed: Duration,
    ) {
        let status = resp.status().as_u16();
        let upstream = resp.extensions().get::<Upstream>();
        if !seen.internal {
            let bytes_out = content_length(resp.headers());
            for s in [&seen.entry_point, &seen.router, &seen.service]
                .into_iter()
                .flatten()
            {
                s.record(method, status, elapsed);
                s.bytes_in
                    .fetch_add(bytes_in, std::sync::atomic::Ordering::Relaxed);
                s.bytes_out
                    .fetch_add(bytes_out, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let (Some(pre), Some(l)) = (pre, ctx.shared.access_logger.as_ref()) else {
            return;
        };
        if seen.internal && !l.settings.add_internals {
            return;
        }
        let retries = upstream.map(|u| u.retries).unwrap_or(0);
        if !l.settings.keep(status, retries, elapsed) {
            return;
        }
        l.log(Record {
            start: pre.start,
            duration: elapsed,
            client_ip: ctx.info.client_ip,
            client_port: None,
            forwarded_for: pre.forwarded_for,
            method: method.clone(),
            path: pre.path,
            version: pre.version,
            host: pre.host,
            tls: ctx.info.tls,
            request_size: bytes_in,
            status,
            response_size: content_length(resp.headers()),
            router: seen.router_name.clone(),
            service: seen.service_name.clone(),
            server_url: upstream.map(|u| u.url.clone()),
            origin_status: upstream.map(|u| u.status),
            retries,
            count: pre.count,
            headers: pre.headers,
        });
    }
}

async fn route_and_forward(
    mut req: Request<Incoming>,
    ctx: &ConnCtx,
    mut seen: Option<&mut Seen>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let table = ctx.shared.store.load_full();
    let ep = table
        .entry_point(ctx.info.entry_point)
        .ok_or(ProxyError::NoRoute)?;
    if let Some(seen) = seen.as_deref_mut() {
        seen.entry_point = ep.stats.clone();
    }
    normalize_request(&mut req, ep.sanitize_path)?;
    ep.underscore_headers
        .apply(req.headers_mut())
        .map_err(|_| ProxyError::BadRequest("header name with an underscore"))?;
    // After `normalize_request` the Host header is the one authority (the URI is origin-form); it was
    // validated there only when it came from the URI, so the routing host is parsed (and checked) here.
    let raw_host = match req.headers().get(header::HOST) {
        Some(h) => h
            .to_str()
            .map_err(|_| ProxyError::BadRequest("invalid Host header"))?,
        None => "",
    };
    let host = parse_host(raw_host).map_err(|e| ProxyError::BadRequest(e.reason()))?;
    // ACME HTTP-01 validation is answered on every entrypoint, before redirections and routing.
    if let Some(token) = req.uri().path().strip_prefix(HTTP01_PREFIX) {
        let tls = table.tls.as_ref();
        let mut answer = tls.and_then(|t| t.http01(token));
        // A miss with a Swarm store: the answer may be in the store and not loaded yet; wait a bounded
        // while for a resync (boxed: the wait's state stays out of every request's future).
        if answer.is_none() {
            if let Some(wait) = tls.and_then(|t| t.http01_read_through(token)) {
                answer = wait.await;
            }
        }
        if let Some(key_auth) = answer {
            let mut resp = Response::new(ProxyBody::full(key_auth));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            return Ok(resp);
        }
    }
    if let Some(redirect) = &ep.redirect {
        return Ok(redirect_response(
            redirect,
            raw_host,
            req.uri(),
            req.method(),
        ));
    }
    let route = {
        let view = RequestView {
            host: &host,
            path: req.uri().path(),
            query: req.uri().query(),
            method: req.method(),
            headers: req.headers(),
            client_ip: ctx.info.client_ip,
        };
        let set = if ctx.info.tls { &ep.https } else { &ep.http };
        set.find(&view).ok_or(ProxyError::NoRoute)?
    };
    drop(host);
    let service = route.service;
    if let Some(seen) = seen {
        seen.note_route(route, &table, ctx.shared.access_logger.is_some());
    }
    // Routes with middlewares run their chain around the service; the others pay one branch.
    if let Some(chain) = &route.middlewares {
        return run_chain(chain, ctx.body_clock.request(req), &table, service, ctx).await;
    }
    if let Some(ServiceKind::Internal(kind)) = table.services.get(service).map(|s| &s.kind) {
        return Ok(ctx.shared.internal.serve(*kind, &req, &table));
    }
    forward(ctx.body_clock.request(req), &table, service, ctx).await
}

/// Runs a route's middleware chain; a request its steps let through is served here, unboxed, and the
/// steps' response notes applied. Wrapping steps reach the service through [`ServeWith`].
async fn run_chain(
    chain: &crate::middleware::Chain,
    req: Req,
    table: &RoutingTable,
    service: usize,
    ctx: &ConnCtx,
) -> Result<Response<ProxyBody>, ProxyError> {
    let terminal = ServeWith { table, ctx };
    let cx = Cx {
        conn: &ctx.info,
        service,
        terminal: &terminal,
        upstreams: &ctx.shared.upstreams,
    };
    match chain.run(req, &cx).await {
        Outcome::Done(res) => res,
        Outcome::Serve(req, pending) => {
            pending.finish(serve_service(req, table, service, ctx).await)
        }
    }
}

/// Makes the request say one thing to every later reader (routing, middlewares, forwarding, access log):
/// one authority in the `Host` header and an origin-form URI with the normalized path.
///
/// Authority: the request target's authority when there is one — HTTP/1 absolute-form (RFC 9112 §3.2.2:
/// it replaces `Host`) or HTTP/2 `:authority` (RFC 9113 §8.3.1: it wins over a `host` field) — else the
/// `Host` header. This is what Go's `net/http` does, hence Traefik: `req.Host` is set from the target and
/// used for routing, `X-Forwarded-Host` and, with `passHostHeader`, the upstream `Host`. A `Host` header
/// that disagrees is therefore replaced, not refused. Refused with 400, as Go does: more than one `Host`
/// field (even identical ones), an HTTP/1.1 request without `Host` (even in absolute-form; `CONNECT`
/// excepted), and a `Host` header that the authority replaces but that is not a valid host itself. The
/// resulting `Host` — the authority, user info included, which RFC 9110 §4.2.4 says to treat as an
/// error — is validated once, by the caller's [`parse_host`].
///
/// Path: [`normalize_path`] with the entrypoint's `sanitizePath` (Traefik's `normalizePath` and
/// `sanitizePath` entrypoint handlers); a bad `%`-escape is a 400.
///
/// No allocation for the common origin-form request with a clean path and one `Host` header (one scan
/// of the path); an HTTP/2 request has its URI rebuilt from the shared path bytes (no copy) and, without
/// a `host` field, its authority copied into one — the copy `forward` used to make for `X-Forwarded-Host`.
fn normalize_request(req: &mut Request<Incoming>, sanitize: bool) -> Result<(), ProxyError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(ProxyError::BadRequest("too many Host headers"));
    }
    if host_header.is_none()
        && req.version() == Version::HTTP_11
        && req.method() != http::Method::CONNECT
    {
        return Err(ProxyError::BadRequest("missing Host header"));
    }
    let authority = match req.uri().authority() {
        None => None,
        Some(a) => match host_header {
            Some(h) if h.as_bytes() == a.as_str().as_bytes() => None,
            Some(h) => {
                let h = h
                    .to_str()
                    .map_err(|_| ProxyError::BadRequest("invalid Host header"))?;
                parse_host(h).map_err(|e| ProxyError::BadRequest(e.reason()))?;
                Some(a.as_str())
            }
            None => Some(a.as_str()),
        },
    };
    let authority = authority
        .map(HeaderValue::from_str)
        .transpose()
        .map_err(|_| ProxyError::BadRequest("invalid authority"))?;
    let absolute = req.uri().scheme().is_some() || req.uri().authority().is_some();
    let path = req.uri().path();
    let clean = normalize_path(path, sanitize).map_err(|e| ProxyError::BadRequest(e.reason()))?;
    let new_pq = match clean {
        Cow::Owned(p) => {
            let pq = match req.uri().query() {
                Some(q) => format!("{p}?{q}"),
                None => p,
            };
            Some(PathAndQuery::try_from(pq).map_err(|_| ProxyError::BadRequest("invalid path"))?)
        }
        Cow::Borrowed(_) if absolute => Some(
            req.uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        ),
        Cow::Borrowed(_) => None,
    };
    if let Some(pq) = new_pq {
        *req.uri_mut() = Uri::from(pq);
    }
    if let Some(a) = authority {
        req.headers_mut().insert(header::HOST, a);
    }
    Ok(())
}

/// The end of a middleware chain: serving a service of the table the request was routed with.
struct ServeWith<'a> {
    table: &'a RoutingTable,
    ctx: &'a ConnCtx,
}

impl Terminal for ServeWith<'_> {
    fn call(&self, req: Req, service: usize) -> BoxRes<'_> {
        Box::pin(serve_service(req, self.table, service, self.ctx))
    }
}

/// Serves a request with service `service`: an internal service answers itself, any other is forwarded.
/// The end of every middleware chain (and the `errors` middleware's page service) comes here.
async fn serve_service(
    req: Request<ClientBody>,
    table: &RoutingTable,
    service: usize,
    ctx: &ConnCtx,
) -> Result<Response<ProxyBody>, ProxyError> {
    if let Some(ServiceKind::Internal(kind)) = table.services.get(service).map(|s| &s.kind) {
        let (parts, body) = req.into_parts();
        return match body {
            ClientBody::Incoming(b) => Ok(ctx.shared.internal.serve(
                *kind,
                &Request::from_parts(parts, b.into_inner()),
                table,
            )),
            // Internal services take no request body; one buffered by a middleware cannot be handed back.
            ClientBody::Buffered(_) => Err(ProxyError::BadRequest(
                "internal services cannot follow a buffering middleware",
            )),
        };
    }
    forward(req, table, service, ctx).await
}

/// Forwards a request to a server of `service`: pick, rewrite for the upstream, send (retrying a failed
/// connect once on another server), then relay the response or the protocol switch.
async fn forward(
    mut req: Request<ClientBody>,
    table: &RoutingTable,
    service: usize,
    ctx: &ConnCtx,
) -> Result<Response<ProxyBody>, ProxyError> {
    let first = Attempt::pick(table, service, req.headers())?;
    let upgrade = upgrade_requested(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    // What the response must match: the protocol asked for, and the client's HTTP version.
    let requested_protocol = upgrade
        .then(|| req.headers().get(header::UPGRADE).cloned())
        .flatten();
    let client_version = req.version();
    let (mut parts, body) = req.into_parts();
    let original_host = rewrite_for_upstream(&mut parts, ctx, upgrade);
    // The client's path, before a server's `preservePath` prefix is joined to it.
    let client_pq = parts.uri.path_and_query().cloned();
    let origin = Origin {
        host: original_host.as_ref(),
        pq: client_pq.as_ref(),
    };
    let req = Request::from_parts(parts, upstream_body(body));
    let (mut resp, sent) = send_with_retry(req, table, service, ctx, first, &origin).await?;
    // `pick` returns indices of `lb.servers` only; out of range is answered like an empty pool, not a panic.
    let server = sent
        .lb
        .servers
        .get(sent.idx)
        .ok_or(ProxyError::NoHealthyServer)?;
    if ctx.shared.access_logger.is_some() {
        let status = resp.status().as_u16();
        resp.extensions_mut().insert(Upstream {
            url: server.url.clone(),
            retries: sent.attempts.saturating_sub(1),
            status,
        });
    }
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let asked = client_upgrade.zip(requested_protocol);
        return switch_protocols(resp, asked, &server.url, ctx);
    }
    let (mut parts, body) = resp.into_parts();
    // Our own HTTP version towards the client (RFC 9110 §6.2), not the backend's: an `HTTP/1.0` answer
    // relayed as such makes an HTTP/1.1 client treat its keep-alive connection as closing.
    parts.version = client_version;
    strip_hop_by_hop(&mut parts.headers, false);
    for v in sent.cookies.iter() {
        parts.headers.append(header::SET_COOKIE, v.clone());
    }
    Ok(Response::from_parts(parts, ProxyBody::Upstream(body)))
}

/// The client's authority and path, which every attempt points at its server.
struct Origin<'a> {
    host: Option<&'a HeaderValue>,
    pq: Option<&'a PathAndQuery>,
}

/// A picked server, the `Set-Cookie` values the pick chose, and how many sends it took to get there.
struct Attempt<'t> {
    lb: &'t LoadBalancerRuntime,
    idx: usize,
    cookies: Cookies<'t>,
}

impl<'t> Attempt<'t> {
    /// Picks a server of `service` now (sticky cookie first, then weighted round robin): the first try and
    /// the retry after a refused connect choose the same way.
    fn pick(
        table: &'t RoutingTable,
        service: usize,
        headers: &HeaderMap,
    ) -> Result<Self, ProxyError> {
        let mut cookies = Cookies::default();
        let (lb, idx) = pick(&table.services, service, headers, now_ms(), &mut cookies, 0)?;
        Ok(Attempt { lb, idx, cookies })
    }
}

/// What a successful send went through.
struct Sent<'t> {
    lb: &'t LoadBalancerRuntime,
    idx: usize,
    cookies: Cookies<'t>,
    attempts: u32,
}

/// Rewrites the request's headers for the upstream (hop-by-hop removed, `X-Forwarded-*` set) and returns
/// the client's authority.
fn rewrite_for_upstream(
    parts: &mut http::request::Parts,
    ctx: &ConnCtx,
    upgrade: bool,
) -> Option<HeaderValue> {
    let proto = match (ctx.info.tls, upgrade) {
        (false, false) => "http",
        (true, false) => "https",
        (false, true) => "ws",
        (true, true) => "wss",
    };
    // The entrypoint put the one authority into `Host` (`normalize_request`); a middleware may have set
    // another since (`headers` customRequestHeaders), which Traefik forwards too. The URI's authority is
    // only a fallback for requests built without `Host`.
    let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    strip_hop_by_hop(&mut parts.headers, upgrade);
    set_forwarded(
        &mut parts.headers,
        &ForwardInfo {
            client_ip: &ctx.info.client_ip_header,
            proto,
            port: &ctx.info.port_header,
            server: &ctx.shared.server_name,
            host: original_host.as_ref(),
        },
    );
    original_host
}

/// The body a backend receives: none, a buffered one, or the client's stream.
fn upstream_body(body: ClientBody) -> UpstreamBody {
    match body {
        ClientBody::Buffered(b) => UpstreamBody::Full((!b.is_empty()).then_some(b)),
        ClientBody::Incoming(body) if http_body::Body::is_end_stream(&body) => UpstreamBody::Empty,
        ClientBody::Incoming(body) => UpstreamBody::Client(body),
    }
}

/// At most this many sends per request: the first and two retries (each on a new connection).
pub const MAX_ATTEMPTS: u32 = 3;

/// No retry starts later than this after the first send: the total bound on a request's retries (each
/// attempt is bounded by `dialTimeout` for its connect and `responseHeaderTimeout` for its answer). Longer
/// than the pool's dead-peer detection (15 s of unacknowledged data), so a request written to a task that
/// vanished is still sent elsewhere.
pub const RETRY_WINDOW: Duration = Duration::from_secs(20);

/// How long a connect may take when another server could take the request instead (per attempt; the
/// configured `dialTimeout` still applies when it is shorter, and alone when there is no other server). A
/// server on the cluster network accepts in well under a millisecond and a lost SYN is resent after 1 s;
/// a connect still pending after 3 s is to an address nobody answers (a killed task's, until the table
/// drops it), and the request goes elsewhere.
pub const CONNECT_ATTEMPT_BOUND: Duration = Duration::from_secs(3);

/// Whether a method is idempotent (RFC 9110 §9.2.2): sending it twice has the effect of sending it once,
/// so a request lost before its answer may be sent again.
pub fn idempotent(m: &http::Method) -> bool {
    matches!(
        *m,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::TRACE
            | http::Method::PUT
            | http::Method::DELETE
    )
}

/// Whether a lost request may be sent again: an idempotent method, or one the client marked with an
/// `Idempotency-Key` (or `X-Idempotency-Key`) header, as Go's transport treats it (`isReplayable`).
fn replayable(m: &http::Method, headers: &HeaderMap) -> bool {
    idempotent(m)
        || headers.contains_key("idempotency-key")
        || headers.contains_key("x-idempotency-key")
}

/// Whether a failed send may be sent again, and whether its server should be marked down.
///
/// - connect failure (`Stage::Connect`: nothing reached the server): retried for every method;
/// - lost before a response head (reset, EOF) after the request was written: retried only when the pool
///   kept a replica, which it does for idempotent requests with an empty or buffered body;
/// - anything else (an invalid answer, the client's body failing): never.
///
/// The server is marked down for [`PASSIVE_DOWN_WINDOW_MS`] when a new connection to it failed (refused,
/// reset): a keep-alive race on a pooled connection says nothing about the server's health.
fn retry_verdict(stage: Stage, kind: FailureKind, have_request: bool) -> (bool, bool) {
    let retry = have_request
        && match stage {
            Stage::Connect => true,
            Stage::Reused | Stage::Fresh => kind.lost_before_response(),
        };
    let mark_down = match stage {
        Stage::Connect => matches!(kind, FailureKind::Connect(_)),
        Stage::Fresh => kind.lost_before_response(),
        Stage::Reused => false,
    };
    (retry, mark_down)
}

/// Sends to the picked server, retrying what is safe to retry ([`retry_verdict`]) on a new connection to
/// another server (the same one only when no other is up and nothing refused the connection), at most
/// [`MAX_ATTEMPTS`] sends within [`RETRY_WINDOW`]. A retry only ever happens before a response head was
/// received, so nothing has reached the client yet. For idempotent requests with a replayable body the
/// pool keeps a replica (a header-map copy) before writing; other requests are retried only when they
/// were handed back unsent.
async fn send_with_retry<'t>(
    req: Request<UpstreamBody>,
    table: &'t RoutingTable,
    service: usize,
    ctx: &ConnCtx,
    first: Attempt<'t>,
    origin: &Origin<'_>,
) -> Result<(Response<PooledBody>, Sent<'t>), ProxyError> {
    let replay =
        replayable(req.method(), req.headers()) && !matches!(req.body(), UpstreamBody::Client(_));
    let started = std::time::Instant::now();
    let mut at = first;
    let mut attempts: u32 = 0;
    let mut upstream_req = build_upstream_request(req, at.lb, at.idx, origin.host, origin.pq)?;
    loop {
        attempts += 1;
        let server = at
            .lb
            .servers
            .get(at.idx)
            .ok_or(ProxyError::NoHealthyServer)?;
        let opts = SendOptions {
            replay,
            fresh: attempts > 1,
            connect_within: (attempts < MAX_ATTEMPTS && at.lb.servers.len() > 1)
                .then_some(CONNECT_ATTEMPT_BOUND),
        };
        let fut = ctx
            .shared
            .upstreams
            .send_with(Target::of(server), upstream_req, opts);
        let result = match ctx.shared.response_header_timeout {
            Some(t) => {
                tokio::time::timeout(t, fut)
                    .await
                    .map_err(|_| ProxyError::UpstreamTimeout {
                        server: server.url.clone(),
                    })?
            }
            None => fut.await,
        };
        let failed = match result {
            Ok(resp) => {
                let sent = Sent {
                    lb: at.lb,
                    idx: at.idx,
                    cookies: at.cookies,
                    attempts,
                };
                return Ok((resp, sent));
            }
            Err(f) => f,
        };
        let kind = classify(&failed.error);
        let (retry, mark_down) = retry_verdict(failed.stage, kind, failed.request.is_some());
        if mark_down {
            server.health.mark_failed(now_ms(), PASSIVE_DOWN_WINDOW_MS);
        }
        let e = ProxyError::from_client(server.url.clone(), failed.error);
        let req = match failed.request {
            Some(r) if retry && attempts < MAX_ATTEMPTS && started.elapsed() < RETRY_WINDOW => r,
            _ => return Err(e),
        };
        let Some(next) = next_attempt(table, service, req.headers(), &at, failed.stage) else {
            return Err(e);
        };
        if let Some(st) = table.services.get(service).and_then(|s| s.stats.as_ref()) {
            st.retries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        at = next;
        upstream_req = build_upstream_request(req, at.lb, at.idx, origin.host, origin.pq)?;
    }
}

/// The server for a retry: another one than `prev` when any other is up (round robin moves on, so a few
/// picks find it), else `prev` itself again, on a new connection — unless `prev` refused the connection.
fn next_attempt<'t>(
    table: &'t RoutingTable,
    service: usize,
    headers: &HeaderMap,
    prev: &Attempt<'t>,
    stage: Stage,
) -> Option<Attempt<'t>> {
    let same = |a: &Attempt<'t>| std::ptr::eq(a.lb, prev.lb) && a.idx == prev.idx;
    let tries = prev.lb.servers.len().max(1);
    for _ in 0..tries {
        let next = Attempt::pick(table, service, headers).ok()?;
        if !same(&next) {
            return Some(next);
        }
    }
    if stage == Stage::Connect {
        return None;
    }
    Attempt::pick(table, service, headers).ok()
}

/// A `101 Switching Protocols` answer: accepted only for the protocol the client asked for (Go's reverse
/// proxy: "backend tried to switch protocol"); an unsolicited 101 would leave the client on a connection
/// nobody speaks. The two upgraded connections are then joined by a tunnel task.
fn switch_protocols(
    mut resp: Response<PooledBody>,
    asked: Option<(hyper::upgrade::OnUpgrade, HeaderValue)>,
    server: &Arc<str>,
    ctx: &ConnCtx,
) -> Result<Response<ProxyBody>, ProxyError> {
    let switched_to = resp.headers().get(header::UPGRADE);
    let (Some((client_upgrade, asked)), Some(got)) = (asked, switched_to) else {
        return Err(ProxyError::BadUpgrade {
            server: server.clone(),
        });
    };
    if !asked.as_bytes().eq_ignore_ascii_case(got.as_bytes()) {
        return Err(ProxyError::BadUpgrade {
            server: server.clone(),
        });
    }
    let upstream_upgrade = hyper::upgrade::on(&mut resp);
    ctx.shared.tunnels.spawn(async move {
        if let (Ok(client), Ok(upstream)) = (client_upgrade.await, upstream_upgrade.await) {
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
    });
    let (parts, body) = resp.into_parts();
    Ok(Response::from_parts(parts, ProxyBody::Upstream(body)))
}

/// Points a request at server `idx` of `lb`: origin-form URI (with the server's `preservePath` prefix
/// joined to the client's path), `Host`, HTTP version. Called again for a retry on another server.
fn build_upstream_request(
    mut req: Request<UpstreamBody>,
    lb: &LoadBalancerRuntime,
    idx: usize,
    original_host: Option<&HeaderValue>,
    client_pq: Option<&PathAndQuery>,
) -> Result<Request<UpstreamBody>, ProxyError> {
    let server = lb.servers.get(idx).ok_or(ProxyError::NoHealthyServer)?;
    let pq = client_pq
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let pq = match &server.base_path {
        None => pq,
        Some(base) => {
            let joined = format!("{}{}", base.path(), pq.as_str());
            PathAndQuery::try_from(joined).map_err(|_| ProxyError::BadRequest("invalid path"))?
        }
    };
    // Origin form; the pool adds scheme and authority for HTTP/2.
    *req.uri_mut() = Uri::from(pq);
    let host = if lb.pass_host_header {
        original_host
            .cloned()
            .unwrap_or_else(|| server.host_header.clone())
    } else {
        server.host_header.clone()
    };
    req.headers_mut().insert(header::HOST, host);
    *req.version_mut() = match server.scheme {
        UpstreamScheme::H2c => Version::HTTP_2,
        _ => Version::HTTP_11,
    };
    Ok(req)
}

/// `http.redirections.entryPoint`: 301/308 when permanent (GET/HEAD vs others), else 302/307.
fn redirect_response(
    r: &EntryPointRedirect,
    raw_host: &str,
    uri: &Uri,
    method: &http::Method,
) -> Response<ProxyBody> {
    let host = strip_port(raw_host);
    let port = match r.port {
        Some(p) if !((r.scheme == "https" && p == 443) || (r.scheme == "http" && p == 80)) => {
            format!(":{p}")
        }
        _ => String::new(),
    };
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let location = format!("{}://{}{}{}", r.scheme, host, port, pq);
    let safe = method == http::Method::GET || method == http::Method::HEAD;
    let status = match (r.permanent, safe) {
        (true, true) => StatusCode::MOVED_PERMANENTLY,
        (true, false) => StatusCode::PERMANENT_REDIRECT,
        (false, true) => StatusCode::FOUND,
        (false, false) => StatusCode::TEMPORARY_REDIRECT,
    };
    let mut resp = Response::new(ProxyBody::full(format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )));
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// The host part of a `Host` value (`[::1]:80` → `[::1]`, `a:80` → `a`).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map(|i| &host[..=i]).unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_path_and_choose_status() {
        let r = EntryPointRedirect {
            scheme: "https".into(),
            port: Some(443),
            permanent: true,
        };
        let uri: Uri = "/a/b?c=d".parse().expect("uri");
        let resp = redirect_response(&r, "example.com:80", &uri, &http::Method::GET);
        assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            resp.headers()[header::LOCATION],
            "https://example.com/a/b?c=d"
        );
        let resp = redirect_response(&r, "example.com", &uri, &http::Method::POST);
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
        let r = EntryPointRedirect {
            scheme: "https".into(),
            port: Some(8443),
            permanent: false,
        };
        let resp = redirect_response(&r, "[::1]:8080", &uri, &http::Method::GET);
        assert_eq!(resp.status(), StatusCode::FOUND);
        assert_eq!(
            resp.headers()[header::LOCATION],
            "https://[::1]:8443/a/b?c=d"
        );
        let resp = redirect_response(&r, "a", &uri, &http::Method::PUT);
        assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    }

    #[test]
    fn idempotent_methods_are_rfc_9110s() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(idempotent(&m.parse().expect("m")), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT", "PROPFIND"] {
            assert!(!idempotent(&m.parse().expect("m")), "{m}");
        }
        let mut h = HeaderMap::new();
        assert!(!replayable(&http::Method::POST, &h));
        h.insert("idempotency-key", HeaderValue::from_static("k1"));
        assert!(replayable(&http::Method::POST, &h));
    }

    #[test]
    fn what_is_retried_and_what_marks_a_server_down() {
        use crate::http::error::ConnectCause;
        let refused = FailureKind::Connect(ConnectCause::Refused);
        // Never reached the server: any method, the server marked down.
        assert_eq!(retry_verdict(Stage::Connect, refused, true), (true, true));
        // The keep-alive race: replayed when a replica exists, the server not blamed.
        assert_eq!(
            retry_verdict(Stage::Reused, FailureKind::Closed, true),
            (true, false)
        );
        assert_eq!(
            retry_verdict(Stage::Reused, FailureKind::Reset, true),
            (true, false)
        );
        // Written and lost with no replica (POST, streamed body): not retried.
        assert_eq!(
            retry_verdict(Stage::Reused, FailureKind::Closed, false),
            (false, false)
        );
        assert_eq!(
            retry_verdict(Stage::Fresh, FailureKind::Reset, false),
            (false, true)
        );
        // A new connection reset before the status line: replayed, the server marked down.
        assert_eq!(
            retry_verdict(Stage::Fresh, FailureKind::Reset, true),
            (true, true)
        );
        // The server answered something invalid, or the client's body failed: never.
        assert_eq!(
            retry_verdict(Stage::Fresh, FailureKind::Other, true),
            (false, false)
        );
        assert_eq!(
            retry_verdict(Stage::Reused, FailureKind::ClientBody, true),
            (false, false)
        );
    }
}
