//! The dashboard at `/dashboard/`: static assets embedded in the binary that read the API.

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::AdminState;
use crate::http::body::ProxyBody;

const INDEX: &str = include_str!("dashboard/index.html");

/// Answers `/dashboard/` (and redirects `/` and `/dashboard` there, as Traefik does). Any other path is
/// 404, as Traefik's file server answers for a file its dashboard does not have: a health check pointed at
/// `/health` on the `traefik` entrypoint must fail, not pass on the dashboard's page.
pub fn serve(req: &Request<Incoming>, state: &AdminState) -> Response<ProxyBody> {
    let path = req.uri().path();
    let page = matches!(
        path,
        "/" | "/dashboard" | "/dashboard/" | "/dashboard/index.html"
    );
    if !state.dashboard || !page {
        let mut r = Response::new(ProxyBody::full("404 page not found\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    }
    if path == "/" || path == "/dashboard" {
        let mut r = Response::new(ProxyBody::empty());
        *r.status_mut() = StatusCode::FOUND;
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/dashboard/"));
        return r;
    }
    let mut r = Response::new(ProxyBody::full(INDEX));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
