//! `sourceCriterion`: what groups requests for `rateLimit` and `inFlightReq` — an `ipStrategy`, a request
//! header's value (`requestHeaderName`) or the request's host (`requestHost`). Exactly one may be set;
//! none means the connection's peer address, as Traefik.

use std::hash::{BuildHasher, RandomState};

use super::ip_strategy::IpStrategy;
use super::opts::Opts;
use super::{request_host, Cx, MiddlewareError, Req};

/// A compiled source criterion.
#[derive(Debug, Clone)]
pub enum SourceCriterion {
    /// Client IP by strategy.
    Ip(IpStrategy),
    /// Value of a request header.
    Header(http::HeaderName),
    /// The request's host.
    Host,
}

impl SourceCriterion {
    /// Reads an optional `sourceCriterion` section from `o`.
    pub fn from_parent(o: &mut Opts<'_>) -> Result<SourceCriterion, MiddlewareError> {
        let Some(mut s) = o.section("sourceCriterion")? else {
            return Ok(SourceCriterion::Ip(IpStrategy::default()));
        };
        let ip = s
            .section("ipStrategy")?
            .map(IpStrategy::build)
            .transpose()?;
        let header = s.string("requestHeaderName")?.filter(|h| !h.is_empty());
        let host = s.bool("requestHost")?.unwrap_or(false);
        let set = [ip.is_some(), header.is_some(), host]
            .iter()
            .filter(|b| **b)
            .count();
        if set > 1 {
            return Err(s.err(
                "ipStrategy",
                "ipStrategy, requestHeaderName and requestHost are mutually exclusive",
            ));
        }
        let out =
            if let Some(h) = header {
                SourceCriterion::Header(http::HeaderName::from_bytes(h.as_bytes()).map_err(
                    |_| s.err("requestHeaderName", format!("`{h}` is not a header name")),
                )?)
            } else if host {
                SourceCriterion::Host
            } else {
                SourceCriterion::Ip(ip.unwrap_or_default())
            };
        s.finish()?;
        Ok(out)
    }

    /// The grouping key of a request.
    pub fn key(&self, req: &Req, cx: &Cx<'_>) -> String {
        match self {
            SourceCriterion::Ip(s) => s.client_ip(trusted_xff(req, cx), cx.conn.client_ip),
            SourceCriterion::Header(h) => req
                .headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            SourceCriterion::Host => request_host(req).to_string(),
        }
    }
}

impl SourceCriterion {
    /// The grouping key of a request, hashed with `state`: the same grouping as [`SourceCriterion::key`]
    /// without copying the key (header and host keys are hashed in place).
    pub fn key_hash(&self, req: &Req, cx: &Cx<'_>, state: &RandomState) -> u64 {
        match self {
            SourceCriterion::Ip(s) => state.hash_one(
                s.client_ip(trusted_xff(req, cx), cx.conn.client_ip)
                    .as_str(),
            ),
            SourceCriterion::Header(h) => state.hash_one(
                req.headers()
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            ),
            SourceCriterion::Host => state.hash_one(request_host(req)),
        }
    }
}

/// `X-Forwarded-For` as the entrypoint lets it through: only from trusted peers.
pub fn trusted_xff<'r>(req: &'r Req, cx: &Cx<'_>) -> Option<&'r str> {
    if !cx.conn.trusted {
        return None;
    }
    req.headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
}
