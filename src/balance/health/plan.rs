//! The requests of one probe, as Go's `http.Client` makes them (`client.go`, `do`): the first from the
//! service's settings, the next ones from the redirects it follows. Pure: the prober sends each request
//! and hands the response's status and `Location` back, so the redirect rules are tested without sockets.

use http::header::{HOST, REFERER};
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};

use super::state::{HealthCheckSettings, HealthError, MAX_REQUESTS_PER_PROBE};
use super::uri::{
    build_uri, canonical_addr, host_of, parse_reference, probe_uri, resolve, strip_userinfo,
};

/// What to do after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// This status is the probe's final one (judged by [`super::is_healthy_status`]).
    Done(StatusCode),
    /// A redirect is followed: send [`ProbePlan::request`] again, to [`ProbePlan::uri`].
    Follow,
}

/// One probe's state between its requests: where the next request goes and with which method, `Host`,
/// `Referer` and credentials.
#[derive(Debug)]
pub struct ProbePlan<'a> {
    settings: &'a HealthCheckSettings,
    uri: Uri,
    method: Method,
    host: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    send_sensitive: bool,
    sent: usize,
}

impl<'a> ProbePlan<'a> {
    /// The first request of a probe of `server_url`.
    ///
    /// # Errors
    ///
    /// A bad `path` or scheme override ([`probe_uri`]), or a `hostname` that cannot be a `Host` header
    /// ([`HealthError::InvalidHostname`]); the checker counts either as a failed probe.
    pub fn new(server_url: &Uri, settings: &'a HealthCheckSettings) -> Result<Self, HealthError> {
        let uri = probe_uri(server_url, settings)?;
        let host = match settings.hostname.as_deref() {
            Some(h) => {
                Some(
                    HeaderValue::from_str(h).map_err(|_| HealthError::InvalidHostname {
                        hostname: h.to_owned(),
                    })?,
                )
            }
            None => None,
        };
        Ok(ProbePlan {
            settings,
            uri,
            method: settings.method.clone(),
            host,
            referer: None,
            send_sensitive: true,
            sent: 0,
        })
    }

    /// The absolute URL of the next request (its scheme and authority say where to connect).
    #[must_use]
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The next request, in origin form (`/path?query`) with `Host` set: configured headers set in order
    /// (a `Host` entry ignored, as Go's client ignores it; credentials dropped after a redirect to another
    /// host), `Host` as Go sends it (the URL's `host[:port]`, a default port kept, unless `hostname`
    /// overrides it), and `Referer` after a redirect.
    #[must_use]
    pub fn request(&self) -> Request<()> {
        let mut request = Request::new(());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = Uri::from(
            self.uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        let headers = request.headers_mut();
        for (name, value) in &self.settings.headers {
            if name == HOST || (!self.send_sensitive && is_sensitive(name)) {
                continue;
            }
            headers.insert(name.clone(), value.clone());
        }
        let host = self
            .host
            .clone()
            .or_else(|| HeaderValue::from_str(host_of(&self.uri)).ok());
        if let Some(host) = host {
            headers.insert(HOST, host);
        }
        if let Some(referer) = &self.referer {
            headers.insert(REFERER, referer.clone());
        }
        request
    }

    /// Takes the answer to the last request: its status is final ([`Next::Done`]) unless redirects are
    /// followed and it is a 301/302/303/307/308 with a `Location`, in which case the plan moves to the
    /// redirect's URL ([`Next::Follow`]): 301/302/303 turn non-GET/HEAD into GET, 307/308 keep the method;
    /// the `Host` override survives only relative redirects; credentials are not sent to another host;
    /// `Referer` is the previous URL.
    ///
    /// # Errors
    ///
    /// A `Location` that cannot be followed ([`HealthError::BadRedirect`]), or a 10th response that is
    /// still a redirect ([`HealthError::TooManyRedirects`]).
    pub fn on_response(
        &mut self,
        status: StatusCode,
        location: Option<&HeaderValue>,
    ) -> Result<Next, HealthError> {
        self.sent += 1;
        if !self.settings.follow_redirects
            || !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
        {
            return Ok(Next::Done(status));
        }
        let location = match location {
            Some(l) if !l.is_empty() => l,
            _ => return Ok(Next::Done(status)),
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
        let resolved = resolve(&self.uri, &reference);
        let next = build_uri(
            resolved.scheme,
            resolved.authority,
            &resolved.path,
            resolved.query,
        )
        .map_err(|_| bad("not a valid URL"))?;
        let current_host = host_of(&self.uri);
        self.host = self
            .host
            .take()
            .filter(|h| reference.scheme.is_none() && h.as_bytes() != current_host.as_bytes());
        if matches!(status.as_u16(), 301..=303)
            && self.method != Method::GET
            && self.method != Method::HEAD
        {
            self.method = Method::GET;
        }
        self.send_sensitive = canonical_addr(&next) == canonical_addr(&self.uri);
        self.referer = HeaderValue::from_str(&strip_userinfo(&self.uri)).ok();
        if self.sent >= MAX_REQUESTS_PER_PROBE {
            return Err(HealthError::TooManyRedirects);
        }
        self.uri = next;
        Ok(Next::Follow)
    }
}

/// Headers Go's client does not send to another host after a redirect.
fn is_sensitive(name: &HeaderName) -> bool {
    name == http::header::AUTHORIZATION
        || name == http::header::WWW_AUTHENTICATE
        || name == http::header::COOKIE
        || name.as_str() == "cookie2"
}
