//! `errors`: when the response status is in `status` (`"500-599"`, `"404"`), answer with a page fetched
//! from `service` at `query` (`{status}` replaced by the code; `{url}` by the original URL, escaped), keeping
//! the original status, as Traefik's custom error pages do. If the page cannot be fetched, the original
//! answer goes through.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, Request, Response};

use super::opts::Opts;
use super::{next, BuildCx, Cx, Middleware, MiddlewareError, Req, Res};
use crate::dynamic;
use crate::http::body::ClientBody;
use crate::http::error::error_response;

/// A compiled errors middleware.
#[derive(Debug)]
pub struct Errors {
    ranges: Vec<(u16, u16)>,
    service: usize,
    query: String,
}

/// Parses `"500-599"` or `"404"` into an inclusive range.
pub fn parse_range(s: &str) -> Option<(u16, u16)> {
    let s = s.trim();
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let v = s.parse().ok()?;
            (v, v)
        }
    };
    (a <= b && (100..=999).contains(&a) && b <= 999).then_some((a, b))
}

impl Errors {
    /// Reads `status` (required), `service` (required, qualified with the middleware's provider), `query`.
    pub fn build(mut o: Opts<'_>, cx: &BuildCx<'_>) -> Result<Errors, MiddlewareError> {
        let mut ranges = Vec::new();
        for (i, s) in o.strings("status")?.iter().enumerate() {
            ranges.push(parse_range(s).ok_or_else(|| {
                o.err(
                    &format!("status[{i}]"),
                    format!("`{s}` is not a status or a range like 500-599"),
                )
            })?);
        }
        if ranges.is_empty() {
            return Err(o.err("status", "is required"));
        }
        let name = o
            .string("service")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| o.err("service", "is required"))?;
        let qualified = dynamic::qualify(&name, cx.provider);
        let service = (cx.service_index)(&qualified).ok_or_else(|| {
            o.err(
                "service",
                format!("service `{qualified}` does not exist or is disabled"),
            )
        })?;
        let query = o.string("query")?.unwrap_or_default();
        let _ = o.raw("statusRewrites");
        o.finish()?;
        Ok(Errors {
            ranges,
            service,
            query,
        })
    }

    /// Whether `code` is one of the configured statuses.
    pub fn matches(&self, code: u16) -> bool {
        self.ranges.iter().any(|(a, b)| (*a..=*b).contains(&code))
    }

    /// The page path for `code`.
    pub fn page_path(&self, code: u16, url: &str) -> String {
        let q = self.query.replace("{status}", &code.to_string()).replace(
            "{url}",
            &url.replace('%', "%25")
                .replace('&', "%26")
                .replace('?', "%3F"),
        );
        super::ensure_leading_slash(&q).replace("//", "/")
    }

    /// Wraps the rest of the chain.
    pub async fn wrap(&self, req: Req, cx: &Cx<'_>, rest: &[Arc<Middleware>]) -> Res {
        let headers = req.headers().clone();
        let url = req.uri().to_string();
        let r = next(rest, req, cx).await;
        let code = match &r {
            Ok(resp) => resp.status(),
            Err(e) => e.status(),
        };
        if !self.matches(code.as_u16()) {
            return r;
        }
        let path = self.page_path(code.as_u16(), &url);
        let mut page_req = Request::new(ClientBody::Buffered(Bytes::new()));
        *page_req.headers_mut() = headers;
        page_req.headers_mut().remove(header::CONTENT_LENGTH);
        page_req.headers_mut().remove(header::TRANSFER_ENCODING);
        let Ok(uri) = path.parse() else { return r };
        *page_req.uri_mut() = uri;
        match cx.terminal.call(page_req, self.service).await {
            Ok(page) => {
                let (mut parts, body) = page.into_parts();
                parts.status = code;
                Ok(Response::from_parts(parts, body))
            }
            Err(_) => Ok(r.unwrap_or_else(|e| error_response(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ranges_and_pages() {
        assert_eq!(parse_range("500-599"), Some((500, 599)));
        assert_eq!(parse_range("404"), Some((404, 404)));
        assert_eq!(parse_range("599-500"), None);
        assert_eq!(parse_range("abc"), None);
        let idx = |n: &str| (n == "pages@file").then_some(3);
        let cx = BuildCx {
            name: "e@file",
            provider: "file",
            service_index: &idx,
        };
        let e = Errors::build(
            Opts::new("errors", &json!({"status": ["500-599", "404"], "service": "pages", "query": "/{status}.html"})).expect("o"),
            &cx,
        )
        .expect("b");
        assert_eq!(e.service, 3);
        assert!(e.matches(503) && e.matches(404) && !e.matches(403));
        assert_eq!(e.page_path(502, "/x"), "/502.html");
        let err = Errors::build(
            Opts::new("errors", &json!({"status": "500", "service": "nope"})).expect("o"),
            &cx,
        )
        .expect_err("missing service");
        assert_eq!(err.option, "errors.service");
    }
}
