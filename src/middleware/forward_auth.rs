//! `forwardAuth`: ask an authentication server (`address`) about each request before forwarding it.
//!
//! As Traefik: the auth request is a GET to `address` carrying the client's headers (only
//! `authRequestHeaders` when set) plus `X-Forwarded-Method/-Proto/-Host/-Uri/-For` (the client's own values
//! kept only with `trustForwardHeader` from a trusted peer). A 2xx answer lets the request through, copying
//! `authResponseHeaders` and the headers matching `authResponseHeadersRegex` onto it; any other answer
//! (status, headers, body) is returned to the client as is. An unreachable auth server gives 500.
//! The shared upstream pools are used; `tls.insecureSkipVerify` / `tls.ca` get a dedicated pool, created on
//! first use.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use regex::Regex;

use super::opts::Opts;
use super::{request_host, request_scheme, text_response, Cx, Flow, MiddlewareError, Req};
use crate::balance::health::ServerHealth;
use crate::balance::UpstreamScheme;
use crate::http::body::{ProxyBody, UpstreamBody};
use crate::http::error::ProxyError;
use crate::upstream::pool::{Target, Upstreams};
use crate::upstream::transport::PoolSettings;

/// Largest auth-server answer body read when `maxResponseBodySize` is not set (Traefik reads any size and
/// warns that this invites memory exhaustion; swarmgate keeps a bound).
const MAX_AUTH_BODY: usize = 1 << 20;
/// Deadline for the auth server's answer.
const AUTH_TIMEOUT: Duration = Duration::from_secs(30);

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
];

/// A compiled forward-auth middleware.
#[derive(Debug)]
pub struct ForwardAuth {
    address: Uri,
    host: HeaderValue,
    https: bool,
    trust_forward_header: bool,
    response_headers: Vec<HeaderName>,
    response_regex: Option<Regex>,
    request_headers: Vec<HeaderName>,
    /// `maxResponseBodySize`: the auth answer's body is read up to this many bytes; a longer one → 401.
    max_response_body: usize,
    /// Whether `maxResponseBodySize` was set: then a success answer's body is checked too, as Traefik does.
    check_success_body: bool,
    own_tls: Option<PoolSettings>,
    own_pool: OnceLock<Option<Upstreams>>,
    /// Pool identity of the auth server: its keep-alive connections are shared by this middleware's
    /// requests only.
    identity: Arc<ServerHealth>,
}

fn names(o: &Opts<'_>, opt: &str, list: Vec<String>) -> Result<Vec<HeaderName>, MiddlewareError> {
    list.iter()
        .map(|n| {
            HeaderName::from_bytes(n.trim().as_bytes())
                .map_err(|_| o.err(opt, format!("`{n}` is not a header name")))
        })
        .collect()
}

impl ForwardAuth {
    /// Reads `address` (required), `trustForwardHeader`, `authResponseHeaders`,
    /// `authResponseHeadersRegex`, `authRequestHeaders`, `tls` (`insecureSkipVerify`, `ca`).
    pub fn build(mut o: Opts<'_>) -> Result<ForwardAuth, MiddlewareError> {
        let addr = o
            .string("address")?
            .filter(|a| !a.is_empty())
            .ok_or_else(|| o.err("address", "is required"))?;
        let address: Uri = addr
            .parse()
            .map_err(|_| o.err("address", format!("`{addr}` is not a URL")))?;
        let https = match address.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(o.err(
                    "address",
                    format!("`{addr}` must start with http:// or https://"),
                ))
            }
        };
        let host = address
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .ok_or_else(|| o.err("address", format!("`{addr}` has no host")))?;
        let trust_forward_header = o.bool("trustForwardHeader")?.unwrap_or(false);
        let list = o.strings("authResponseHeaders")?;
        let response_headers = names(&o, "authResponseHeaders", list)?;
        let response_regex = match o
            .string("authResponseHeadersRegex")?
            .filter(|r| !r.is_empty())
        {
            Some(r) => Some(Regex::new(&format!("(?i){r}")).map_err(|e| {
                o.err(
                    "authResponseHeadersRegex",
                    format!("`{r}` is not a valid regular expression: {e}"),
                )
            })?),
            None => None,
        };
        let list = o.strings("authRequestHeaders")?;
        let request_headers = names(&o, "authRequestHeaders", list)?;
        let mut own_tls = None;
        if let Some(mut t) = o.section("tls")? {
            let insecure = t.bool("insecureSkipVerify")?.unwrap_or(false);
            let ca = t.string("ca")?.filter(|s| !s.is_empty());
            for unsupported in ["cert", "key"] {
                if t.string(unsupported)?.is_some() {
                    return Err(t.err(
                        unsupported,
                        "client certificates for forwardAuth are not supported yet",
                    ));
                }
            }
            let _ = t.bool("caOptional")?;
            t.finish()?;
            let root_cas = match &ca {
                Some(c) => crate::upstream::transport::load_root_cas(std::slice::from_ref(c))
                    .map_err(|e| o.err("tls.ca", e.to_string()))?,
                None => Vec::new(),
            };
            if insecure || !root_cas.is_empty() {
                own_tls = Some(PoolSettings {
                    insecure_skip_verify: insecure,
                    root_cas,
                    max_idle_per_host: 16,
                    ..Default::default()
                });
            }
        }
        let _ = o.bool("addAuthCookiesToResponse");
        let _ = o.bool("forwardBody");
        let _ = o.u64("maxBodySize");
        // Traefik: bytes, -1 (its default) for no limit; swarmgate keeps its 1 MiB bound for -1.
        let max_response = match o.f64("maxResponseBodySize")? {
            Some(n) if n.fract() != 0.0 => {
                return Err(o.err(
                    "maxResponseBodySize",
                    format!("expected a whole number of bytes, found `{n}`"),
                ))
            }
            Some(n) if n >= 0.0 => Some(n.min(usize::MAX as f64) as usize),
            _ => None,
        };
        let _ = o.string("headerField");
        let _ = o.bool("preserveLocationHeader");
        let _ = o.bool("preserveRequestMethod");
        o.finish()?;
        Ok(ForwardAuth {
            address,
            host,
            https,
            trust_forward_header,
            response_headers,
            response_regex,
            request_headers,
            max_response_body: max_response.unwrap_or(MAX_AUTH_BODY),
            check_success_body: max_response.is_some(),
            own_tls,
            own_pool: OnceLock::new(),
            identity: Arc::new(ServerHealth::new()),
        })
    }

    /// The auth request for `req` (pure: headers and target only).
    pub fn auth_request(&self, req: &Req, cx: &Cx<'_>) -> Request<UpstreamBody> {
        let mut out = Request::new(UpstreamBody::Empty);
        // Origin form: the pool connects to the address's authority.
        *out.uri_mut() = self
            .address
            .path_and_query()
            .cloned()
            .map(Uri::from)
            .unwrap_or_else(|| Uri::from_static("/"));
        let h = out.headers_mut();
        let trust = self.trust_forward_header && cx.conn.trusted;
        for (n, v) in req.headers() {
            if HOP_BY_HOP.contains(&n.as_str()) {
                continue;
            }
            if !self.request_headers.is_empty() && !self.request_headers.contains(n) {
                continue;
            }
            if !trust && n.as_str().starts_with("x-forwarded-") {
                continue;
            }
            h.append(n.clone(), v.clone());
        }
        h.insert(header::HOST, self.host.clone());
        let client = cx.conn.client_ip_header.clone();
        let xff = match (trust, req.headers().get("x-forwarded-for")) {
            (true, Some(prior)) => {
                let mut v = prior.as_bytes().to_vec();
                v.extend_from_slice(b", ");
                v.extend_from_slice(client.as_bytes());
                HeaderValue::from_bytes(&v).unwrap_or(client)
            }
            _ => client,
        };
        h.insert("x-forwarded-for", xff);
        let keep = |name: &str| trust && req.headers().contains_key(name);
        if !keep("x-forwarded-method") {
            if let Ok(v) = HeaderValue::from_str(req.method().as_str()) {
                h.insert("x-forwarded-method", v);
            }
        }
        if !keep("x-forwarded-proto") {
            h.insert(
                "x-forwarded-proto",
                HeaderValue::from_static(request_scheme(req, cx.conn)),
            );
        }
        if !keep("x-forwarded-host") {
            if let Ok(v) = HeaderValue::from_str(request_host(req)) {
                h.insert("x-forwarded-host", v);
            }
        }
        if !keep("x-forwarded-uri") {
            let uri = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            if let Ok(v) = HeaderValue::from_str(uri) {
                h.insert("x-forwarded-uri", v);
            }
        }
        out
    }

    /// Request step.
    pub async fn on_request(&self, req: &mut Req, cx: &Cx<'_>) -> Result<Flow, ProxyError> {
        let auth_req = self.auth_request(req, cx);
        let pool = match &self.own_tls {
            Some(settings) => match self.own_pool.get_or_init(|| Upstreams::new(settings).ok()) {
                Some(p) => p,
                None => return Ok(Flow::Respond(internal_error())),
            },
            None => cx.upstreams,
        };
        let Some(authority) = self.address.authority() else {
            return Ok(Flow::Respond(internal_error()));
        };
        let fut = pool.send(
            Target {
                scheme: if self.https {
                    UpstreamScheme::Https
                } else {
                    UpstreamScheme::Http
                },
                authority,
                identity: &self.identity,
            },
            auth_req,
        );
        let resp = match tokio::time::timeout(AUTH_TIMEOUT, fut).await {
            Ok(Ok(r)) => r,
            _ => return Ok(Flow::Respond(internal_error())),
        };
        let (parts, body) = resp.into_parts();
        let success = parts.status.is_success();
        if !success || self.check_success_body {
            let body = match Limited::new(body, self.max_response_body).collect().await {
                Ok(b) => b.to_bytes(),
                // Too long (or broken): refused, as Traefik answers an auth body over its limit.
                Err(_) => return Ok(Flow::Respond(unauthorized())),
            };
            if !success {
                let mut out = Response::new(ProxyBody::full(body));
                *out.status_mut() = parts.status;
                for (n, v) in &parts.headers {
                    if !HOP_BY_HOP.contains(&n.as_str()) {
                        out.headers_mut().append(n.clone(), v.clone());
                    }
                }
                return Ok(Flow::Respond(out));
            }
        }
        let h = req.headers_mut();
        for n in &self.response_headers {
            h.remove(n);
            for v in parts.headers.get_all(n) {
                h.append(n.clone(), v.clone());
            }
        }
        if let Some(re) = &self.response_regex {
            for n in parts.headers.keys() {
                if re.is_match(n.as_str()) {
                    h.remove(n);
                    for v in parts.headers.get_all(n) {
                        h.append(n.clone(), v.clone());
                    }
                }
            }
        }
        Ok(Flow::Next)
    }
}

fn unauthorized() -> Response<ProxyBody> {
    text_response(StatusCode::UNAUTHORIZED, "")
}

fn internal_error() -> Response<ProxyBody> {
    text_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn max_response_body_size_as_traefik_spells_it() {
        let build =
            |v: serde_json::Value| ForwardAuth::build(Opts::new("forwardAuth", &v).expect("o"));
        let f = build(json!({"address": "http://a/", "maxResponseBodySize": "1024"})).expect("b");
        assert_eq!((f.max_response_body, f.check_success_body), (1024, true));
        // -1 is Traefik's "no limit": swarmgate keeps its bound and checks only refusals.
        let f = build(json!({"address": "http://a/", "maxResponseBodySize": -1})).expect("b");
        assert_eq!(
            (f.max_response_body, f.check_success_body),
            (MAX_AUTH_BODY, false)
        );
        assert!(build(json!({"address": "http://a/", "maxResponseBodySize": "1.5"})).is_err());
        assert!(build(json!({"address": "http://a/", "maxResponseBodySize": "big"})).is_err());
    }

    #[test]
    fn options() {
        let f = ForwardAuth::build(
            Opts::new(
                "forwardAuth",
                &json!({"address": "http://auth:4181/verify", "authResponseHeaders": "X-Auth-User,X-Secret", "authResponseHeadersRegex": "^X-"}),
            )
            .expect("o"),
        )
        .expect("b");
        assert_eq!(f.host, "auth:4181");
        assert_eq!(f.response_headers.len(), 2);
        for bad in [
            json!({}),
            json!({"address": "ftp://x"}),
            json!({"address": "http://a", "authResponseHeadersRegex": "("}),
        ] {
            assert!(
                ForwardAuth::build(Opts::new("forwardAuth", &bad).expect("o")).is_err(),
                "{bad}"
            );
        }
    }
}
