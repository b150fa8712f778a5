//! `redirectScheme` and `redirectRegex`: answer with a redirection built from the request's full URL.
//!
//! As Traefik: the URL is `scheme://host[:port]/path?query` as the client sent it (scheme `https` over TLS or
//! from a trusted `X-Forwarded-Proto`); no redirection happens when the target equals that URL; status is
//! 301/308 when `permanent` (GET vs any other method) and 302/307 otherwise; the body is the status text.

use http::{header, HeaderValue, Method, Response, StatusCode};
use regex::Regex;

use super::opts::Opts;
use super::{request_host, request_scheme, Cx, Flow, MiddlewareError, Req};
use crate::http::body::ProxyBody;

/// A compiled redirect middleware.
#[derive(Debug)]
pub struct Redirect {
    regex: Regex,
    replacement: String,
    permanent: bool,
}

/// Traefik's pattern for a URL split into scheme, host, port and the rest (`redirect_scheme.go`).
const URL_PATTERN: &str = r"^(https?)://(\[[\w:.]+\]|[\w._-]+)?(:\d+)?(.*)$";

impl Redirect {
    /// `redirectScheme`: `scheme` (required), `port`, `permanent`.
    pub fn scheme(mut o: Opts<'_>) -> Result<Redirect, MiddlewareError> {
        let scheme = o
            .string("scheme")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| o.err("scheme", "is required (e.g. https)"))?;
        if !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
        {
            return Err(o.err("scheme", format!("`{scheme}` is not a URL scheme")));
        }
        let port = o.string("port")?.unwrap_or_default();
        if !port.is_empty() && port.parse::<u16>().is_err() {
            return Err(o.err("port", format!("`{port}` is not a port number")));
        }
        let permanent = o.bool("permanent")?.unwrap_or(false);
        o.finish()?;
        let port = if port.is_empty()
            || (scheme.eq_ignore_ascii_case("http") && port == "80")
            || (scheme.eq_ignore_ascii_case("https") && port == "443")
        {
            String::new()
        } else {
            format!(":{port}")
        };
        let regex = Regex::new(URL_PATTERN).map_err(|e| MiddlewareError::new("", e.to_string()))?;
        Ok(Redirect {
            regex,
            replacement: format!("{scheme}://${{2}}{port}${{4}}"),
            permanent,
        })
    }

    /// `redirectRegex`: `regex`, `replacement` (`$1`, `${1}`, `${name}`), `permanent`.
    pub fn regex(mut o: Opts<'_>) -> Result<Redirect, MiddlewareError> {
        let pattern = o
            .string("regex")?
            .ok_or_else(|| o.err("regex", "is required"))?;
        let regex = Regex::new(&pattern).map_err(|e| {
            o.err(
                "regex",
                format!("`{pattern}` is not a valid regular expression: {e}"),
            )
        })?;
        let replacement = o.string("replacement")?.unwrap_or_default();
        let permanent = o.bool("permanent")?.unwrap_or(false);
        o.finish()?;
        Ok(Redirect {
            regex,
            replacement,
            permanent,
        })
    }

    /// The redirection target for `url`, or None when the rule does not apply or the URL would not change.
    pub fn target(&self, url: &str) -> Option<String> {
        if !self.regex.is_match(url) {
            return None;
        }
        let target = self.regex.replace_all(url, self.replacement.as_str());
        (target != url).then(|| target.into_owned())
    }

    /// Request step.
    pub fn on_request(&self, req: &Req, cx: &Cx<'_>) -> Flow {
        let url = format!(
            "{}://{}{}",
            request_scheme(req, cx.conn),
            request_host(req),
            req.uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
        );
        match self.target(&url) {
            Some(location) => {
                Flow::Respond(redirect_response(&location, self.permanent, req.method()))
            }
            None => Flow::Next,
        }
    }
}

/// 301/308 when permanent (GET vs other methods), else 302/307, as Traefik's `moveHandler`.
pub fn redirect_status(permanent: bool, method: &Method) -> StatusCode {
    match (permanent, method == Method::GET) {
        (true, true) => StatusCode::MOVED_PERMANENTLY,
        (true, false) => StatusCode::PERMANENT_REDIRECT,
        (false, true) => StatusCode::FOUND,
        (false, false) => StatusCode::TEMPORARY_REDIRECT,
    }
}

fn redirect_response(location: &str, permanent: bool, method: &Method) -> Response<ProxyBody> {
    let status = redirect_status(permanent, method);
    let mut r = Response::new(ProxyBody::full(status.canonical_reason().unwrap_or("")));
    *r.status_mut() = status;
    match HeaderValue::from_str(location) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR,
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scheme(v: serde_json::Value) -> Redirect {
        Redirect::scheme(Opts::new("redirectScheme", &v).expect("opts")).expect("build")
    }

    #[test]
    fn scheme_redirects_as_traefik() {
        let cases = [
            (
                json!({"scheme": "https"}),
                "http://a.test/x?y=1",
                Some("https://a.test/x?y=1"),
            ),
            (
                json!({"scheme": "https"}),
                "http://a.test:8080/x",
                Some("https://a.test/x"),
            ),
            (
                json!({"scheme": "https", "port": "8443"}),
                "http://a.test:80/",
                Some("https://a.test:8443/"),
            ),
            (
                json!({"scheme": "https", "port": "443"}),
                "http://[::1]:80/p",
                Some("https://[::1]/p"),
            ),
            (json!({"scheme": "https"}), "https://a.test/x", None),
            (json!({"scheme": "http"}), "http://a.test/x", None),
        ];
        for (cfg, url, want) in cases {
            assert_eq!(
                scheme(cfg.clone()).target(url).as_deref(),
                want,
                "{cfg} {url}"
            );
        }
    }

    #[test]
    fn regex_rewrites_with_groups() {
        let r = Redirect::regex(
            Opts::new(
                "redirectRegex",
                &json!({"regex": "^http://localhost/(.*)", "replacement": "http://mydomain/${1}", "permanent": "true"}),
            )
            .expect("opts"),
        )
        .expect("build");
        assert_eq!(
            r.target("http://localhost/a/b").as_deref(),
            Some("http://mydomain/a/b")
        );
        assert_eq!(r.target("http://other/a"), None);
        assert!(r.permanent);
        let e =
            Redirect::regex(Opts::new("redirectRegex", &json!({"regex": "(unclosed"})).expect("o"))
                .expect_err("bad");
        assert_eq!(e.option, "redirectRegex.regex");
        let e = Redirect::scheme(Opts::new("redirectScheme", &json!({"port": "1"})).expect("o"))
            .expect_err("missing");
        assert_eq!(e.option, "redirectScheme.scheme");
    }

    #[test]
    fn statuses() {
        assert_eq!(
            redirect_status(true, &Method::GET),
            StatusCode::MOVED_PERMANENTLY
        );
        assert_eq!(
            redirect_status(true, &Method::POST),
            StatusCode::PERMANENT_REDIRECT
        );
        assert_eq!(redirect_status(false, &Method::GET), StatusCode::FOUND);
        assert_eq!(
            redirect_status(false, &Method::PUT),
            StatusCode::TEMPORARY_REDIRECT
        );
    }
}
