//! `headers`: custom request and response headers, CORS (preflight answered here), and security headers.
//!
//! As Traefik: an empty custom header value removes the header; `Host` in `customRequestHeaders` sets the
//! Host; a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered 200 with the
//! CORS headers and never reaches the backend; `Access-Control-Allow-Origin` echoes the allowed origin (or
//! `*`); STS is sent only on HTTPS requests unless `forceSTSHeader`; `allowedHosts` rejects other hosts
//! with 500 `Bad Host`. Options removed in Traefik v3 (`sslRedirect`, `sslHost`, `featurePolicy`, …) are
//! recognised and reported as warnings naming their replacement, never silently ignored.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use regex::Regex;

use super::opts::Opts;
use super::{request_host, text_response, Cx, Flow, MiddlewareError, Req};
use crate::http::body::ProxyBody;

/// Options of Traefik v1/v2 that v3 removed, with what replaces them.
const REMOVED: &[(&str, &str)] = &[
    (
        "sslRedirect",
        "use a redirectScheme middleware (or entryPoints redirections)",
    ),
    (
        "sslTemporaryRedirect",
        "use a redirectScheme middleware with permanent=false",
    ),
    ("sslHost", "use a redirectRegex middleware"),
    ("sslForceHost", "use a redirectRegex middleware"),
    ("featurePolicy", "use permissionsPolicy"),
    (
        "accessControlAllowOrigin",
        "use accessControlAllowOriginList",
    ),
];

/// A compiled headers middleware.
#[derive(Debug, Default)]
pub struct Headers {
    request_set: Vec<(HeaderName, HeaderValue)>,
    request_remove: Vec<HeaderName>,
    request_host: Option<HeaderValue>,
    response_set: Vec<(HeaderName, HeaderValue)>,
    response_remove: Vec<HeaderName>,
    cors: Option<Cors>,
    security: Vec<(HeaderName, HeaderValue)>,
    sts: Option<HeaderValue>,
    force_sts: bool,
    ssl_proxy_headers: Vec<(HeaderName, HeaderValue)>,
    allowed_hosts: Vec<String>,
    hosts_proxy_headers: Vec<HeaderName>,
}

#[derive(Debug)]
struct Cors {
    allow_credentials: bool,
    allow_headers: Option<HeaderValue>,
    allow_methods: Option<HeaderValue>,
    origins: Vec<String>,
    origin_regexes: Vec<Regex>,
    expose_headers: Option<HeaderValue>,
    max_age: HeaderValue,
    add_vary: bool,
}

/// Request facts the response part needs.
#[derive(Debug)]
pub struct ResponseFacts {
    origin: Option<HeaderValue>,
    https: bool,
}

fn name(o: &Opts<'_>, opt: &str, n: &str) -> Result<HeaderName, MiddlewareError> {
    HeaderName::from_bytes(n.trim().as_bytes())
        .map_err(|_| o.err(&format!("{opt}.{n}"), format!("`{n}` is not a header name")))
}

fn value(o: &Opts<'_>, opt: &str, v: &str) -> Result<HeaderValue, MiddlewareError> {
    HeaderValue::from_str(v).map_err(|_| o.err(opt, format!("`{v}` is not a valid header value")))
}

impl Cors {
    /// The CORS options; `None` when none is set (no CORS handling at all).
    fn build(o: &mut Opts<'_>) -> Result<Option<Cors>, MiddlewareError> {
        let allow_credentials = o.bool("accessControlAllowCredentials")?.unwrap_or(false);
        let allow_headers = o.strings("accessControlAllowHeaders")?;
        let allow_methods = o.strings("accessControlAllowMethods")?;
        let origins = o.strings("accessControlAllowOriginList")?;
        let mut origin_regexes = Vec::new();
        for (i, r) in o
            .strings("accessControlAllowOriginListRegex")?
            .iter()
            .enumerate()
        {
            origin_regexes.push(Regex::new(r).map_err(|e| {
                o.err(
                    &format!("accessControlAllowOriginListRegex[{i}]"),
                    format!("`{r}` is not a valid regular expression: {e}"),
                )
            })?);
        }
        let expose = o.strings("accessControlExposeHeaders")?;
        let max_age = o.u64("accessControlMaxAge")?.unwrap_or(0);
        let add_vary = o.bool("addVaryHeader")?.unwrap_or(false);
        let any = allow_credentials
            || !allow_headers.is_empty()
            || !allow_methods.is_empty()
            || !origins.is_empty()
            || !origin_regexes.is_empty()
            || !expose.is_empty()
            || max_age != 0
            || add_vary;
        if !any {
            return Ok(None);
        }
        Ok(Some(Cors {
            allow_credentials,
            allow_headers: joined(o, "accessControlAllowHeaders", &allow_headers)?,
            allow_methods: joined(o, "accessControlAllowMethods", &allow_methods)?,
            origins,
            origin_regexes,
            expose_headers: joined(o, "accessControlExposeHeaders", &expose)?,
            max_age: HeaderValue::from(max_age),
            add_vary,
        }))
    }
}

/// A list option as one comma-joined header value; `None` for an empty list.
fn joined(o: &Opts<'_>, opt: &str, l: &[String]) -> Result<Option<HeaderValue>, MiddlewareError> {
    if l.is_empty() {
        Ok(None)
    } else {
        value(o, opt, &l.join(",")).map(Some)
    }
}

impl Headers {
    /// Reads every option; removed v3 options become `warnings`.
    ///
    /// The options are read in Traefik's order (custom headers, CORS, security headers), so that with several
    /// bad options the first one reported is the same as before.
    pub fn build(mut o: Opts<'_>, warnings: &mut Vec<String>) -> Result<Headers, MiddlewareError> {
        let mut h = Headers::default();
        h.read_custom_headers(&mut o)?;
        h.cors = Cors::build(&mut o)?;
        let is_development = o.bool("isDevelopment")?.unwrap_or(false);
        h.allowed_hosts = o.strings("allowedHosts")?;
        for n in o.strings("hostsProxyHeaders")? {
            h.hosts_proxy_headers
                .push(name(&o, "hostsProxyHeaders", &n)?);
        }
        for (k, v) in o.map("sslProxyHeaders")? {
            let n = name(&o, "sslProxyHeaders", &k)?;
            h.ssl_proxy_headers
                .push((n, value(&o, &format!("sslProxyHeaders.{k}"), &v)?));
        }
        h.read_sts(&mut o)?;
        h.read_security_headers(&mut o)?;
        if is_development {
            h.allowed_hosts.clear();
            h.sts = None;
        }
        for (old, instead) in REMOVED {
            if o.has(old) {
                let _ = o.raw(old);
                warnings.push(format!(
                    "option `headers.{old}` was removed in Traefik v3 and has no effect: {instead}"
                ));
            }
        }
        o.finish()?;
        Ok(h)
    }

    /// `customRequestHeaders` and `customResponseHeaders`: an empty value removes the header; a request
    /// `Host` sets the Host.
    fn read_custom_headers(&mut self, o: &mut Opts<'_>) -> Result<(), MiddlewareError> {
        for (k, v) in o.map("customRequestHeaders")? {
            if k.eq_ignore_ascii_case("host") {
                if !v.is_empty() {
                    self.request_host = Some(value(o, "customRequestHeaders.Host", &v)?);
                }
                continue;
            }
            let n = name(o, "customRequestHeaders", &k)?;
            if v.is_empty() {
                self.request_remove.push(n);
            } else {
                self.request_set
                    .push((n, value(o, &format!("customRequestHeaders.{k}"), &v)?));
            }
        }
        for (k, v) in o.map("customResponseHeaders")? {
            let n = name(o, "customResponseHeaders", &k)?;
            if v.is_empty() {
                self.response_remove.push(n);
            } else {
                self.response_set
                    .push((n, value(o, &format!("customResponseHeaders.{k}"), &v)?));
            }
        }
        Ok(())
    }

    /// `stsSeconds` and its modifiers: the `Strict-Transport-Security` value, when `stsSeconds` > 0.
    fn read_sts(&mut self, o: &mut Opts<'_>) -> Result<(), MiddlewareError> {
        let sts_seconds = o.u64("stsSeconds")?.unwrap_or(0);
        let sts_sub = o.bool("stsIncludeSubdomains")?.unwrap_or(false);
        let sts_preload = o.bool("stsPreload")?.unwrap_or(false);
        self.force_sts = o.bool("forceSTSHeader")?.unwrap_or(false);
        if sts_seconds > 0 {
            let mut v = format!("max-age={sts_seconds}");
            if sts_sub {
                v.push_str("; includeSubDomains");
            }
            if sts_preload {
                v.push_str("; preload");
            }
            self.sts = Some(value(o, "stsSeconds", &v)?);
        }
        Ok(())
    }

    /// The fixed security headers: frame options, nosniff, XSS protection and the policy headers. A custom
    /// value wins over the boolean switch of the same header.
    fn read_security_headers(&mut self, o: &mut Opts<'_>) -> Result<(), MiddlewareError> {
        let frame_deny = o.bool("frameDeny")?.unwrap_or(false);
        let frame_custom = o
            .string("customFrameOptionsValue")?
            .filter(|s| !s.is_empty());
        if let Some(v) = frame_custom {
            self.security.push((
                header::X_FRAME_OPTIONS,
                value(o, "customFrameOptionsValue", &v)?,
            ));
        } else if frame_deny {
            self.security
                .push((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")));
        }
        if o.bool("contentTypeNosniff")?.unwrap_or(false) {
            self.security.push((
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ));
        }
        let xss = o.bool("browserXssFilter")?.unwrap_or(false);
        let xss_custom = o.string("customBrowserXSSValue")?.filter(|s| !s.is_empty());
        if let Some(v) = xss_custom {
            self.security.push((
                header::X_XSS_PROTECTION,
                value(o, "customBrowserXSSValue", &v)?,
            ));
        } else if xss {
            self.security.push((
                header::X_XSS_PROTECTION,
                HeaderValue::from_static("1; mode=block"),
            ));
        }
        for (opt, hn) in [
            ("contentSecurityPolicy", header::CONTENT_SECURITY_POLICY),
            (
                "contentSecurityPolicyReportOnly",
                header::CONTENT_SECURITY_POLICY_REPORT_ONLY,
            ),
            ("publicKey", HeaderName::from_static("public-key-pins")),
            ("referrerPolicy", header::REFERRER_POLICY),
            (
                "permissionsPolicy",
                HeaderName::from_static("permissions-policy"),
            ),
        ] {
            if let Some(v) = o.string(opt)?.filter(|s| !s.is_empty()) {
                self.security.push((hn, value(o, opt, &v)?));
            }
        }
        Ok(())
    }

    fn origin_allowed(&self, cors: &Cors, origin: &str) -> Option<HeaderValue> {
        for item in &cors.origins {
            if item == "*" || item == origin {
                return HeaderValue::from_str(item).ok();
            }
        }
        if cors.origin_regexes.iter().any(|r| r.is_match(origin)) {
            return HeaderValue::from_str(origin).ok();
        }
        None
    }

    fn needs_response(&self) -> bool {
        self.cors.is_some()
            || !self.response_set.is_empty()
            || !self.response_remove.is_empty()
            || !self.security.is_empty()
            || self.sts.is_some()
    }

    fn is_https(&self, req: &Req, cx: &Cx<'_>) -> bool {
        cx.conn.tls
            || self
                .ssl_proxy_headers
                .iter()
                .any(|(n, v)| req.headers().get(n) == Some(v))
    }

    /// Request step: host check, preflight answer, custom request headers. Returns the facts for the
    /// response part when there is one.
    pub fn on_request(&self, req: &mut Req, cx: &Cx<'_>) -> (Flow, Option<ResponseFacts>) {
        if !self.allowed_hosts.is_empty() {
            let host = self
                .hosts_proxy_headers
                .iter()
                .find_map(|n| req.headers().get(n).and_then(|v| v.to_str().ok()))
                .unwrap_or_else(|| request_host(req));
            if !self
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host))
            {
                return (
                    Flow::Respond(text_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Bad Host\n",
                    )),
                    None,
                );
            }
        }
        if let Some(cors) = &self.cors {
            let origin = req
                .headers()
                .get(header::ORIGIN)
                .and_then(|v| v.to_str().ok());
            if req.method() == Method::OPTIONS
                && req
                    .headers()
                    .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
            {
                if let Some(origin) = origin {
                    return (Flow::Respond(self.preflight(cors, origin)), None);
                }
            }
        }
        let headers = req.headers_mut();
        for n in &self.request_remove {
            headers.remove(n);
        }
        for (n, v) in &self.request_set {
            headers.insert(n.clone(), v.clone());
        }
        if let Some(host) = &self.request_host {
            headers.insert(header::HOST, host.clone());
        }
        if !self.needs_response() {
            return (Flow::Next, None);
        }
        let facts = ResponseFacts {
            origin: req.headers().get(header::ORIGIN).cloned(),
            https: self.is_https(req, cx),
        };
        (Flow::Next, Some(facts))
    }

    fn preflight(&self, cors: &Cors, origin: &str) -> Response<ProxyBody> {
        let mut r = Response::new(ProxyBody::empty());
        let h = r.headers_mut();
        if cors.allow_credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &cors.allow_headers {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
        }
        if let Some(v) = &cors.allow_methods {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v.clone());
        }
        if let Some(v) = self.origin_allowed(cors, origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        h.insert(header::ACCESS_CONTROL_MAX_AGE, cors.max_age.clone());
        r
    }

    /// Response part: security headers, custom response headers, CORS response headers.
    pub fn on_response(&self, resp: &mut Response<ProxyBody>, facts: &ResponseFacts) {
        self.apply_response(resp.headers_mut(), facts);
    }

    fn apply_response(&self, h: &mut HeaderMap, facts: &ResponseFacts) {
        for (n, v) in &self.security {
            h.insert(n.clone(), v.clone());
        }
        if let Some(sts) = &self.sts {
            if facts.https || self.force_sts {
                h.insert(header::STRICT_TRANSPORT_SECURITY, sts.clone());
            }
        }
        for n in &self.response_remove {
            h.remove(n);
        }
        for (n, v) in &self.response_set {
            h.insert(n.clone(), v.clone());
        }
        let Some(cors) = &self.cors else { return };
        let origin = facts
            .origin
            .as_ref()
            .and_then(|o| o.to_str().ok())
            .unwrap_or("");
        if let Some(v) = self.origin_allowed(cors, origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        if cors.allow_credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &cors.expose_headers {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
        if cors.add_vary {
            let vary = h
                .get(header::VARY)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if vary != "Origin" {
                let v = if vary.is_empty() {
                    "Origin".to_string()
                } else {
                    format!("{vary},Origin")
                };
                if let Ok(v) = HeaderValue::from_str(&v) {
                    h.insert(header::VARY, v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build(v: serde_json::Value) -> (Headers, Vec<String>) {
        let mut w = Vec::new();
        let h = Headers::build(Opts::new("headers", &v).expect("o"), &mut w).expect("b");
        (h, w)
    }

    #[test]
    fn custom_headers_set_and_remove() {
        let (h, _) = build(json!({
            "customRequestHeaders": {"X-Script-Name": "test", "X-Remove": ""},
            "customResponseHeaders": {"X-Custom": "v", "Server": ""}
        }));
        assert_eq!(h.request_set.len(), 1);
        assert_eq!(h.request_remove, vec![HeaderName::from_static("x-remove")]);
        let mut resp = HeaderMap::new();
        resp.insert("server", HeaderValue::from_static("nginx"));
        h.apply_response(
            &mut resp,
            &ResponseFacts {
                origin: None,
                https: false,
            },
        );
        assert!(resp.get("server").is_none());
        assert_eq!(resp["x-custom"], "v");
    }

    #[test]
    fn cors_origin_and_vary() {
        let (h, _) = build(json!({
            "accessControlAllowMethods": ["GET", "OPTIONS", "PUT"],
            "accessControlAllowOriginList": ["https://foo.bar.org", "https://example.org"],
            "accessControlAllowOriginListRegex": ["^https://([a-z]+)\\.test$"],
            "accessControlMaxAge": 100,
            "addVaryHeader": true
        }));
        let cors = h.cors.as_ref().expect("cors");
        assert_eq!(
            h.origin_allowed(cors, "https://example.org")
                .expect("allowed"),
            "https://example.org"
        );
        assert_eq!(
            h.origin_allowed(cors, "https://abc.test").expect("allowed"),
            "https://abc.test"
        );
        assert!(h.origin_allowed(cors, "https://evil.org").is_none());
        let p = h.preflight(cors, "https://foo.bar.org");
        assert_eq!(p.status(), StatusCode::OK);
        assert_eq!(
            p.headers()["access-control-allow-methods"],
            "GET,OPTIONS,PUT"
        );
        assert_eq!(p.headers()["access-control-max-age"], "100");
        assert_eq!(
            p.headers()["access-control-allow-origin"],
            "https://foo.bar.org"
        );
        let mut resp = HeaderMap::new();
        resp.insert("vary", HeaderValue::from_static("Accept-Encoding"));
        h.apply_response(
            &mut resp,
            &ResponseFacts {
                origin: Some(HeaderValue::from_static("https://example.org")),
                https: false,
            },
        );
        assert_eq!(resp["vary"], "Accept-Encoding,Origin");
        assert_eq!(resp["access-control-allow-origin"], "https://example.org");
    }

    #[test]
    fn security_headers_and_sts_only_on_https() {
        let (h, _) = build(json!({
            "stsSeconds": 31536000, "stsIncludeSubdomains": true, "stsPreload": true,
            "frameDeny": true, "contentTypeNosniff": true, "browserXssFilter": true,
            "referrerPolicy": "same-origin", "permissionsPolicy": "camera=()",
            "contentSecurityPolicy": "default-src 'self'"
        }));
        let mut resp = HeaderMap::new();
        h.apply_response(
            &mut resp,
            &ResponseFacts {
                origin: None,
                https: false,
            },
        );
        assert!(resp.get("strict-transport-security").is_none());
        assert_eq!(resp["x-frame-options"], "DENY");
        assert_eq!(resp["x-content-type-options"], "nosniff");
        assert_eq!(resp["x-xss-protection"], "1; mode=block");
        assert_eq!(resp["referrer-policy"], "same-origin");
        assert_eq!(resp["permissions-policy"], "camera=()");
        assert_eq!(resp["content-security-policy"], "default-src 'self'");
        h.apply_response(
            &mut resp,
            &ResponseFacts {
                origin: None,
                https: true,
            },
        );
        assert_eq!(
            resp["strict-transport-security"],
            "max-age=31536000; includeSubDomains; preload"
        );
    }

    #[test]
    fn removed_options_warn_and_unknown_fail() {
        let (_, w) = build(json!({"sslRedirect": true, "frameDeny": true}));
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("sslRedirect") && w[0].contains("redirectScheme"),
            "{w:?}"
        );
        let mut w = Vec::new();
        let e = Headers::build(
            Opts::new("headers", &json!({"frameDenny": true})).expect("o"),
            &mut w,
        )
        .expect_err("unknown");
        assert_eq!(e.option, "headers.frameDenny");
        assert!(e.message.contains("frameDeny"));
    }
}
