//! Traefik's HTTP middlewares: built once per table build from the raw options, run per request as a chain.
//!
//! Control plane: [`build`] turns one `dynamic::Middleware` (a type key and its raw options) into a
//! [`Middleware`] value, validating every option and naming the bad one in a [`MiddlewareError`]; the table
//! compiler shares each built middleware by `Arc` across the routes that use it and flattens `chain`
//! middlewares. A route without middlewares has no [`Chain`] at all, so its requests pay nothing here.
//! Stateful middlewares (rateLimit, inFlightReq, circuitBreaker) whose name and configuration did not change
//! are carried into the next table, so an unrelated container event does not reset their state.
//!
//! Hot path: [`Chain::run`] walks the steps in order. The request it gets has already been through the
//! entrypoint's header cleaning (the proxy's `sanitize_at_entry`: untrusted forwarded
//! headers and `Connection`-named headers removed), so what a step adds is never removed by the client.
//! Most steps act on the request only (rewrite it, or answer it: redirects, auth, limits) and need no
//! allocation or boxing; `headers` and `inFlightReq` also leave a small note to act on the response. Steps
//! that must surround the rest of the chain (compress, retry, buffering, circuitBreaker, errors) run the
//! remainder as one boxed future, paid only on routes that use them.
//!
//! The chain never calls into the proxy: when its steps let a request through, [`Chain::run`] hands it back
//! ([`Outcome::Serve`]) and the handler serves it; inside a wrapping step the rest of the chain ends with the
//! [`Terminal`] the handler put into [`Cx`]. Middlewares speak the request path's vocabulary
//! ([`crate::http`]) only.
//!
//! This module never logs per request and holds no locks on the request path except the circuit breaker's
//! short window update.

pub mod add_prefix;
pub mod basic_auth;
pub mod buffering;
pub mod circuit_breaker;
pub mod compress;
pub mod digest_auth;
pub mod errors;
pub mod forward_auth;
pub mod headers;
pub mod in_flight;
pub mod ip_allow_list;
pub mod ip_strategy;
pub mod opts;
pub mod pass_tls_client_cert;
pub mod rate_limit;
pub mod redirect;
pub mod replace_path;
pub mod retry;
pub mod source_criterion;
pub mod strip_prefix;

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{header, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use serde_json::Value;

use crate::dynamic;
use crate::http::body::{BoxError, ClientBody, ProxyBody};
use crate::http::{ConnInfo, Terminal};

use opts::Opts;

pub use crate::http::error::{failure_response, text_response, NetworkFailure};
/// The request, result and boxed-rest types every step uses (defined with the request path's vocabulary).
pub use crate::http::{BoxRes, Req, Res};

/// An invalid middleware option: the full option path (`basicAuth.users[1]`) and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("option `{option}`: {message}")]
pub struct MiddlewareError {
    /// Option path in Traefik's names.
    pub option: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl MiddlewareError {
    /// A new error about `option`.
    pub fn new(option: &str, message: String) -> MiddlewareError {
        MiddlewareError {
            option: option.to_string(),
            message,
        }
    }
}

/// Per-request context handed to every step: the client connection's facts, the route's service, and the
/// end of the chain (serving a service of the table the request was routed with).
pub struct Cx<'a> {
    /// The client connection.
    pub conn: &'a ConnInfo,
    /// Index of the route's service.
    pub service: usize,
    /// Serves a service; wrapping steps reach the route's service through it, `errors` its page service.
    pub terminal: &'a dyn Terminal,
    /// This worker's upstream pools (`forwardAuth` asks its auth server over them).
    pub upstreams: &'a crate::upstream::pool::Upstreams,
}

/// Build-time context: who the middleware is, and how to find services (`errors.service`).
pub struct BuildCx<'a> {
    /// Qualified middleware name (`auth@file`).
    pub name: &'a str,
    /// Provider of the middleware, for qualifying names it references.
    pub provider: &'a str,
    /// Qualified service name → index in the table being built (None when missing or disabled).
    pub service_index: &'a dyn Fn(&str) -> Option<usize>,
}

/// What [`build`] produced.
pub enum Built {
    /// A middleware ready to run (possibly the previous table's, see [`build`]), with warnings (e.g.
    /// legacy options that have no effect).
    Ready(Arc<Middleware>, Vec<String>),
    /// A `chain`: the qualified names of its members, expanded by the table compiler.
    Chain(Vec<String>),
}

/// One compiled middleware.
#[derive(Debug)]
pub enum Middleware {
    /// `redirectScheme` / `redirectRegex`.
    Redirect(redirect::Redirect),
    /// `stripPrefix` / `stripPrefixRegex`.
    StripPrefix(strip_prefix::StripPrefix),
    /// `addPrefix`.
    AddPrefix(add_prefix::AddPrefix),
    /// `replacePath` / `replacePathRegex`.
    ReplacePath(replace_path::ReplacePath),
    /// `headers`.
    Headers(Box<headers::Headers>),
    /// `basicAuth`.
    BasicAuth(basic_auth::BasicAuth),
    /// `digestAuth`.
    DigestAuth(digest_auth::DigestAuth),
    /// `forwardAuth`.
    ForwardAuth(Box<forward_auth::ForwardAuth>),
    /// `rateLimit`.
    RateLimit(rate_limit::RateLimit),
    /// `inFlightReq`.
    InFlight(in_flight::InFlight),
    /// `ipAllowList` / `ipWhiteList`.
    IpAllowList(ip_allow_list::IpAllowList),
    /// `compress`.
    Compress(compress::Compress),
    /// `retry`.
    Retry(retry::Retry),
    /// `buffering`.
    Buffering(buffering::Buffering),
    /// `circuitBreaker`.
    CircuitBreaker(circuit_breaker::CircuitBreaker),
    /// `errors`.
    Errors(errors::Errors),
    /// `passTLSClientCert`.
    PassTlsClientCert(pass_tls_client_cert::PassTlsClientCert),
}

/// Canonical Traefik type names, for case-insensitive lookup of the type key.
const TYPES: &[&str] = &[
    "addPrefix",
    "basicAuth",
    "buffering",
    "chain",
    "circuitBreaker",
    "compress",
    "digestAuth",
    "errors",
    "forwardAuth",
    "grpcWeb",
    "headers",
    "ipAllowList",
    "ipWhiteList",
    "inFlightReq",
    "passTLSClientCert",
    "plugin",
    "rateLimit",
    "redirectRegex",
    "redirectScheme",
    "replacePath",
    "replacePathRegex",
    "retry",
    "stripPrefix",
    "stripPrefixRegex",
    "contentType",
];

/// The middleware's type as written, canonicalised (`redirectscheme` → `redirectScheme`), if known.
pub fn kind_of(m: &dynamic::Middleware) -> Result<(&'static str, &Value), MiddlewareError> {
    let mut it = m.0.iter();
    let (key, value) = match (it.next(), it.next()) {
        (Some(kv), None) => kv,
        (None, _) => return Err(MiddlewareError::new("", "no middleware type is set".into())),
        (Some((a, _)), Some((b, _))) => {
            return Err(MiddlewareError::new(
                "",
                format!("more than one middleware type is set (`{a}`, `{b}`)"),
            ))
        }
    };
    match TYPES.iter().find(|t| t.eq_ignore_ascii_case(key)) {
        Some(t) => Ok((t, value)),
        None => {
            let mut message = format!("unknown middleware type `{key}`");
            if let Some(near) = crate::config::node::nearest(key, TYPES) {
                message.push_str(&format!("; did you mean `{near}`?"));
            }
            Err(MiddlewareError::new(key, message))
        }
    }
}

/// Stateful middlewares (rateLimit, inFlightReq, circuitBreaker) of the current table, by name and
/// configuration, owned by the table builder and handed from one build to the next: a rebuild of the table
/// (any container event) keeps their state — rate-limit buckets, in-flight counts, breaker window — when
/// their own configuration did not change, and drops it when the middleware is gone or changed.
/// Control plane only (table builds); never touched per request.
#[derive(Debug, Default)]
pub struct StatefulMiddlewares {
    live: std::collections::HashMap<String, Arc<Middleware>>,
}

impl StatefulMiddlewares {
    /// Builds `m` like [`build`], except that a stateful middleware whose name and configuration are in
    /// `self` (the previous build's) is returned as it is, state included. Every stateful middleware built
    /// or reused is recorded in `next`, which the next build receives.
    pub fn build(
        &self,
        m: &dynamic::Middleware,
        cx: &BuildCx<'_>,
        next: &mut StatefulMiddlewares,
    ) -> Result<Built, MiddlewareError> {
        let (kind, _) = kind_of(m)?;
        let Some(key) = stateful_key(kind, cx, m) else {
            return build(m, cx);
        };
        if let Some(live) = self.live.get(&key) {
            next.live.insert(key, live.clone());
            return Ok(Built::Ready(live.clone(), Vec::new()));
        }
        let built = build(m, cx)?;
        if let Built::Ready(mw, _) = &built {
            next.live.insert(key, mw.clone());
        }
        Ok(built)
    }

    /// How many stateful middlewares are held (for tests and logs).
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True when no stateful middleware is held.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The held middlewares, for tests comparing identities across builds.
    #[cfg(test)]
    pub(crate) fn held(&self) -> Vec<Arc<Middleware>> {
        self.live.values().cloned().collect()
    }
}

fn stateful_key(kind: &str, cx: &BuildCx<'_>, m: &dynamic::Middleware) -> Option<String> {
    matches!(kind, "rateLimit" | "inFlightReq" | "circuitBreaker").then(|| {
        format!(
            "{}\n{}",
            cx.name,
            serde_json::to_string(&m.0).unwrap_or_default()
        )
    })
}

/// Builds one middleware from its configuration, always anew (see [`StatefulMiddlewares::build`] for
/// keeping state across table builds). Pure apart from reading `usersFile` files; never panics on input.
/// An error names the option (`redirectRegex.regex`) and the reason; the caller drops the middleware and
/// disables the routers that use it.
pub fn build(m: &dynamic::Middleware, cx: &BuildCx<'_>) -> Result<Built, MiddlewareError> {
    let (kind, value) = kind_of(m)?;
    let mut warnings = Vec::new();
    let mw = match kind {
        "redirectScheme" => {
            Middleware::Redirect(redirect::Redirect::scheme(Opts::new(kind, value)?)?)
        }
        "redirectRegex" => {
            Middleware::Redirect(redirect::Redirect::regex(Opts::new(kind, value)?)?)
        }
        "stripPrefix" => Middleware::StripPrefix(strip_prefix::StripPrefix::prefixes(Opts::new(
            kind, value,
        )?)?),
        "stripPrefixRegex" => {
            Middleware::StripPrefix(strip_prefix::StripPrefix::regex(Opts::new(kind, value)?)?)
        }
        "addPrefix" => {
            Middleware::AddPrefix(add_prefix::AddPrefix::build(Opts::new(kind, value)?)?)
        }
        "replacePath" => {
            Middleware::ReplacePath(replace_path::ReplacePath::path(Opts::new(kind, value)?)?)
        }
        "replacePathRegex" => {
            Middleware::ReplacePath(replace_path::ReplacePath::regex(Opts::new(kind, value)?)?)
        }
        "headers" => Middleware::Headers(Box::new(headers::Headers::build(
            Opts::new(kind, value)?,
            &mut warnings,
        )?)),
        "basicAuth" => {
            Middleware::BasicAuth(basic_auth::BasicAuth::build(Opts::new(kind, value)?)?)
        }
        "digestAuth" => {
            Middleware::DigestAuth(digest_auth::DigestAuth::build(Opts::new(kind, value)?)?)
        }
        "forwardAuth" => Middleware::ForwardAuth(Box::new(forward_auth::ForwardAuth::build(
            Opts::new(kind, value)?,
        )?)),
        "rateLimit" => {
            Middleware::RateLimit(rate_limit::RateLimit::build(Opts::new(kind, value)?)?)
        }
        "inFlightReq" => Middleware::InFlight(in_flight::InFlight::build(Opts::new(kind, value)?)?),
        "ipAllowList" | "ipWhiteList" => {
            Middleware::IpAllowList(ip_allow_list::IpAllowList::build(Opts::new(kind, value)?)?)
        }
        "compress" => Middleware::Compress(compress::Compress::build(Opts::new(kind, value)?)?),
        "retry" => Middleware::Retry(retry::Retry::build(Opts::new(kind, value)?)?),
        "buffering" => Middleware::Buffering(buffering::Buffering::build(Opts::new(kind, value)?)?),
        "circuitBreaker" => Middleware::CircuitBreaker(circuit_breaker::CircuitBreaker::build(
            Opts::new(kind, value)?,
        )?),
        "errors" => Middleware::Errors(errors::Errors::build(Opts::new(kind, value)?, cx)?),
        "chain" => {
            let mut o = Opts::new(kind, value)?;
            let names = o.strings("middlewares")?;
            o.finish()?;
            if names.is_empty() {
                return Err(MiddlewareError::new(
                    "chain.middlewares",
                    "a chain needs at least one middleware".into(),
                ));
            }
            return Ok(Built::Chain(
                names
                    .iter()
                    .map(|n| dynamic::qualify(n.trim(), cx.provider))
                    .collect(),
            ));
        }
        "plugin" => {
            let names: Vec<&str> = match value {
                Value::Object(m) => m.keys().map(String::as_str).collect(),
                _ => Vec::new(),
            };
            return Err(MiddlewareError::new(
                "plugin",
                format!(
                    "plugin `{}` cannot run: Traefik plugins (Yaegi/WASM) are not supported by swarmgate",
                    names.join(", ")
                ),
            ));
        }
        "passTLSClientCert" => Middleware::PassTlsClientCert(
            pass_tls_client_cert::PassTlsClientCert::build(Opts::new(kind, value)?)?,
        ),
        other => {
            return Err(MiddlewareError::new(
                other,
                format!("middleware type `{other}` is not supported by this version of swarmgate"),
            ))
        }
    };
    Ok(Built::Ready(Arc::new(mw), warnings))
}

/// What a request step decided.
pub enum Flow {
    /// Go on with the next step.
    Next,
    /// Answer now; later steps and the service are skipped.
    Respond(Response<ProxyBody>),
}

/// A note a request step leaves for the response (applied in reverse order).
pub enum After<'m> {
    /// `headers`: response headers, with the request facts they depend on.
    Headers(&'m headers::Headers, headers::ResponseFacts),
    /// `inFlightReq`: the slot is released when the response body is done.
    Slot(in_flight::Slot),
}

/// A body that keeps an `inFlightReq` slot until it is done or dropped.
#[derive(Debug)]
pub struct WrappedBody {
    /// The body.
    pub body: ProxyBody,
    /// Released on drop.
    pub slot: Option<in_flight::Slot>,
}

impl Body for WrappedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Where a chain left a request.
pub enum Outcome<'m> {
    /// Answered (by a step, or by the service inside a wrapping step), response notes applied.
    Done(Res),
    /// Let through by every step: the caller serves it with the route's service, then applies the notes.
    Serve(Req, Pending<'m>),
}

/// Response notes of the steps a request went through, waiting for the service's response.
pub struct Pending<'m>(Vec<After<'m>>);

impl Pending<'_> {
    /// Applies the notes to the service's response (or failure), in reverse order.
    pub fn finish(self, resp: Res) -> Res {
        finish(self.0, resp)
    }
}

/// A compiled chain: the steps of a route, entrypoint middlewares first, `chain` middlewares flattened.
#[derive(Debug)]
pub struct Chain {
    steps: Box<[Arc<Middleware>]>,
}

impl Chain {
    /// A chain of `steps`; the table compiler builds these.
    pub fn new(steps: Vec<Arc<Middleware>>) -> Chain {
        Chain {
            steps: steps.into_boxed_slice(),
        }
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True when the chain has no step (the compiler stores `None` instead).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs the chain's steps. Hot path. A request every step lets through comes back as
    /// [`Outcome::Serve`] for the caller to serve without a box; wrapping steps serve it themselves through
    /// [`Cx::terminal`].
    pub async fn run(&self, req: Req, cx: &Cx<'_>) -> Outcome<'_> {
        run_steps(&self.steps, req, cx).await
    }
}

/// Runs `steps`; wrapping steps take the rest of the chain as a boxed future.
pub(crate) async fn run_steps<'m>(
    steps: &'m [Arc<Middleware>],
    mut req: Req,
    cx: &Cx<'_>,
) -> Outcome<'m> {
    let mut after: Vec<After<'_>> = Vec::new();
    let mut rest = steps;
    while let Some((step, tail)) = rest.split_first() {
        rest = tail;
        let flow = match step.as_ref() {
            Middleware::Redirect(m) => m.on_request(&req, cx),
            Middleware::StripPrefix(m) => m.on_request(&mut req),
            Middleware::AddPrefix(m) => m.on_request(&mut req),
            Middleware::PassTlsClientCert(m) => m.on_request(&mut req, cx),
            Middleware::ReplacePath(m) => m.on_request(&mut req),
            Middleware::Headers(m) => {
                let (flow, facts) = m.on_request(&mut req, cx);
                if let Some(facts) = facts {
                    after.push(After::Headers(m, facts));
                }
                flow
            }
            Middleware::BasicAuth(m) => m.on_request(&mut req).await,
            Middleware::DigestAuth(m) => m.on_request(&mut req),
            Middleware::ForwardAuth(m) => match m.on_request(&mut req, cx).await {
                Ok(flow) => flow,
                Err(e) => return Outcome::Done(Err(e)),
            },
            Middleware::RateLimit(m) => m.on_request(&req, cx).await,
            Middleware::InFlight(m) => match m.acquire(&req, cx) {
                Some(slot) => {
                    after.push(After::Slot(slot));
                    Flow::Next
                }
                None => Flow::Respond(in_flight::InFlight::rejection()),
            },
            Middleware::IpAllowList(m) => m.on_request(&req, cx),
            Middleware::Compress(m) => {
                let resp = m.wrap(req, cx, rest).await;
                return Outcome::Done(finish(after, resp));
            }
            Middleware::Retry(m) => {
                let resp = m.wrap(req, cx, rest).await;
                return Outcome::Done(finish(after, resp));
            }
            Middleware::Buffering(m) => {
                let resp = m.wrap(req, cx, rest).await;
                return Outcome::Done(finish(after, resp));
            }
            Middleware::CircuitBreaker(m) => {
                let resp = m.wrap(req, cx, rest).await;
                return Outcome::Done(finish(after, resp));
            }
            Middleware::Errors(m) => {
                let resp = m.wrap(req, cx, rest).await;
                return Outcome::Done(finish(after, resp));
            }
        };
        if let Flow::Respond(resp) = flow {
            return Outcome::Done(finish(after, Ok(resp)));
        }
    }
    Outcome::Serve(req, Pending(after))
}

/// The rest of a chain, ending with the route's service, as one boxed future (for wrapping middlewares).
pub(crate) fn next<'a>(rest: &'a [Arc<Middleware>], req: Req, cx: &'a Cx<'a>) -> BoxRes<'a> {
    Box::pin(async move {
        match run_steps(rest, req, cx).await {
            Outcome::Done(res) => res,
            Outcome::Serve(req, pending) => pending.finish(cx.terminal.call(req, cx.service).await),
        }
    })
}

/// Applies response notes in reverse order. Failures become responses first (response headers apply to
/// error pages too, as in Traefik), marked with [`NetworkFailure`].
fn finish(mut after: Vec<After<'_>>, resp: Res) -> Res {
    if after.is_empty() {
        return resp;
    }
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => failure_response(&e),
    };
    while let Some(a) = after.pop() {
        match a {
            After::Headers(h, facts) => h.on_response(&mut resp, &facts),
            After::Slot(slot) => {
                let (parts, body) = resp.into_parts();
                resp = Response::from_parts(
                    parts,
                    ProxyBody::boxed(WrappedBody {
                        body,
                        slot: Some(slot),
                    }),
                );
            }
        }
    }
    Ok(resp)
}

/// Replaces the path (raw, already percent-encoded) of a request, keeping its query.
pub(crate) fn set_path(req: &mut Req, path: &str) -> bool {
    let uri = req.uri();
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let Ok(pq) = PathAndQuery::try_from(pq) else {
        return false;
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq);
    match Uri::from_parts(parts) {
        Ok(u) => {
            *req.uri_mut() = u;
            true
        }
        Err(_) => false,
    }
}

/// `/` prepended unless empty or already there (Traefik's `ensureLeadingSlash`).
pub(crate) fn ensure_leading_slash(s: &str) -> String {
    if s.is_empty() || s.starts_with('/') {
        s.to_string()
    } else {
        format!("/{s}")
    }
}

/// The request's scheme as the client used it: `https` over TLS, else a trusted `X-Forwarded-Proto`, else
/// `http` (Traefik's redirect middlewares look at the same facts).
pub(crate) fn request_scheme(req: &Req, conn: &ConnInfo) -> &'static str {
    if conn.tls {
        return "https";
    }
    if conn.trusted {
        if let Some(p) = req.headers().get("x-forwarded-proto") {
            let p = p.as_bytes();
            if p.eq_ignore_ascii_case(b"https") || p.eq_ignore_ascii_case(b"wss") {
                return "https";
            }
        }
    }
    "http"
}

/// The host the client asked for (authority or Host header), port included.
pub(crate) fn request_host(req: &Req) -> &str {
    req.uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("")
}

/// A copy of a request whose body can be sent again (no body, or a buffered one).
pub(crate) fn clone_request(req: &Req) -> Option<Req> {
    let body = match req.body() {
        ClientBody::Buffered(b) => ClientBody::Buffered(b.clone()),
        ClientBody::Incoming(b) if http_body::Body::is_end_stream(b) => {
            ClientBody::Buffered(bytes::Bytes::new())
        }
        ClientBody::Incoming(_) => return None,
    };
    let mut r = Request::new(body);
    *r.method_mut() = req.method().clone();
    *r.uri_mut() = req.uri().clone();
    *r.version_mut() = req.version();
    *r.headers_mut() = req.headers().clone();
    Some(r)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for unit tests of request steps.

    use super::*;

    /// A request with an empty buffered body.
    pub fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Req {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(ClientBody::Buffered(bytes::Bytes::new()))
            .unwrap_or_else(|_| Request::new(ClientBody::Buffered(bytes::Bytes::new())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_keys_are_case_insensitive_and_unknown_ones_suggest() {
        let m = |k: &str| {
            dynamic::Middleware(
                [(k.to_string(), serde_json::json!({}))]
                    .into_iter()
                    .collect(),
            )
        };
        assert_eq!(
            kind_of(&m("redirectscheme")).expect("k").0,
            "redirectScheme"
        );
        assert_eq!(kind_of(&m("IPWHITELIST")).expect("k").0, "ipWhiteList");
        let e = kind_of(&m("stripPrefx")).expect_err("unknown");
        assert!(e.message.contains("stripPrefix"), "{e}");
    }

    #[test]
    fn plugins_and_missing_tls_are_named() {
        let svc = |_: &str| None;
        let cx = BuildCx {
            name: "p@docker",
            provider: "docker",
            service_index: &svc,
        };
        let m = dynamic::Middleware(
            [(
                "plugin".to_string(),
                serde_json::json!({"sablier": {"group": "x"}}),
            )]
            .into_iter()
            .collect(),
        );
        let e = build(&m, &cx).err().expect("error");
        assert!(e.message.contains("sablier"), "{e}");
        assert!(e.message.contains("not supported"), "{e}");
    }

    fn mw(kind: &str, v: serde_json::Value) -> dynamic::Middleware {
        dynamic::Middleware([(kind.to_string(), v)].into_iter().collect())
    }

    #[test]
    fn label_style_lowercase_keys_and_text_values_build() {
        let svc = |_: &str| None;
        let cx = BuildCx {
            name: "x@docker",
            provider: "docker",
            service_index: &svc,
        };
        for (kind, v) in [
            (
                "redirectscheme",
                serde_json::json!({"scheme": "https", "permanent": "true"}),
            ),
            (
                "basicauth",
                serde_json::json!({"users": "admin:$apr1$r31....$ngBPjzVkLtPf/sLj.RKiN/"}),
            ),
            (
                "stripprefix",
                serde_json::json!({"prefixes": "/a,/b", "forceslash": "false"}),
            ),
            (
                "ratelimit",
                serde_json::json!({"average": "100", "burst": "50", "sourcecriterion": {"ipstrategy": {"depth": "1"}}}),
            ),
            ("compress", serde_json::json!("true")),
            (
                "headers",
                serde_json::json!({"stsseconds": "315360000", "customresponseheaders": {"X-A": ""}}),
            ),
        ] {
            assert!(
                matches!(build(&mw(kind, v), &cx), Ok(Built::Ready(..))),
                "{kind}"
            );
        }
        let chain = build(
            &mw("chain", serde_json::json!({"middlewares": "a,b@file"})),
            &cx,
        );
        match chain {
            Ok(Built::Chain(names)) => assert_eq!(names, vec!["a@docker", "b@file"]),
            _ => panic!("chain"),
        }
    }

    #[test]
    fn stateful_middlewares_survive_a_rebuild_with_the_same_config() {
        let svc = |_: &str| None;
        let cx = BuildCx {
            name: "keep@file",
            provider: "file",
            service_index: &svc,
        };
        let ready = |b: Result<Built, MiddlewareError>| match b {
            Ok(Built::Ready(a, _)) => a,
            _ => panic!("build"),
        };
        let m = mw("rateLimit", serde_json::json!({"average": 5}));
        let (mut gen1, mut gen2, mut gen3) = Default::default();
        let first = ready(StatefulMiddlewares::default().build(&m, &cx, &mut gen1));
        let again = ready(gen1.build(&m, &cx, &mut gen2));
        assert!(Arc::ptr_eq(&first, &again), "same config: state kept");
        let changed = ready(gen2.build(
            &mw("rateLimit", serde_json::json!({"average": 6})),
            &cx,
            &mut gen3,
        ));
        assert!(!Arc::ptr_eq(&first, &changed), "new config: new state");
        assert_eq!(gen3.len(), 1, "the old configuration's state is dropped");
        let mut gen4 = StatefulMiddlewares::default();
        let fresh = ready(StatefulMiddlewares::default().build(&m, &cx, &mut gen4));
        assert!(
            !Arc::ptr_eq(&first, &fresh),
            "gone from the previous build: new state"
        );
        let plain = mw("addPrefix", serde_json::json!({"prefix": "/a"}));
        let mut gen5 = StatefulMiddlewares::default();
        ready(gen4.build(&plain, &cx, &mut gen5));
        assert!(gen5.is_empty(), "stateless middlewares are not held");
    }

    #[test]
    fn leading_slash() {
        assert_eq!(ensure_leading_slash(""), "");
        assert_eq!(ensure_leading_slash("a"), "/a");
        assert_eq!(ensure_leading_slash("/a"), "/a");
    }
}
