//! `ipAllowList` (and its Traefik v2 name `ipWhiteList`): only clients from `sourceRange` pass; others get
//! `rejectStatusCode` (403 by default) with the status text as body.

use std::net::IpAddr;

use http::StatusCode;
use ipnet::IpNet;

use super::ip_strategy::{parse_net, IpStrategy};
use super::opts::Opts;
use super::source_criterion::trusted_xff;
use super::{Cx, Flow, MiddlewareError, Req};
use crate::http::body::ProxyBody;

/// A compiled allow list.
#[derive(Debug)]
pub struct IpAllowList {
    ranges: Vec<IpNet>,
    strategy: IpStrategy,
    reject: StatusCode,
}

impl IpAllowList {
    /// Reads `sourceRange` (required), `ipStrategy`, `rejectStatusCode`.
    pub fn build(mut o: Opts<'_>) -> Result<IpAllowList, MiddlewareError> {
        let mut ranges = Vec::new();
        for (i, r) in o.strings("sourceRange")?.iter().enumerate() {
            ranges.push(parse_net(r).ok_or_else(|| {
                o.err(
                    &format!("sourceRange[{i}]"),
                    format!("`{r}` is not an IP address or CIDR"),
                )
            })?);
        }
        if ranges.is_empty() {
            return Err(o.err("sourceRange", "is required (at least one IP or CIDR)"));
        }
        let strategy = o
            .section("ipStrategy")?
            .map(IpStrategy::build)
            .transpose()?
            .unwrap_or_default();
        let reject = match o.u64("rejectStatusCode")? {
            None | Some(0) => StatusCode::FORBIDDEN,
            Some(c) => u16::try_from(c)
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .filter(|s| s.as_u16() >= 100)
                .ok_or_else(|| o.err("rejectStatusCode", format!("{c} is not an HTTP status")))?,
        };
        o.finish()?;
        Ok(IpAllowList {
            ranges,
            strategy,
            reject,
        })
    }

    /// Whether the client IP text is allowed.
    pub fn allows(&self, ip: &str) -> bool {
        match ip.parse::<IpAddr>() {
            Ok(ip) => {
                let ip = crate::http::context::canonical_ip(ip);
                self.ranges.iter().any(|n| n.contains(&ip))
            }
            Err(_) => false,
        }
    }

    /// Request step.
    pub fn on_request(&self, req: &Req, cx: &Cx<'_>) -> Flow {
        let ip = self
            .strategy
            .client_ip(trusted_xff(req, cx), cx.conn.client_ip);
        if self.allows(&ip) {
            return Flow::Next;
        }
        let mut r = http::Response::new(ProxyBody::full(
            self.reject.canonical_reason().unwrap_or(""),
        ));
        *r.status_mut() = self.reject;
        Flow::Respond(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ranges() {
        let a = IpAllowList::build(
            Opts::new(
                "ipAllowList",
                &json!({"sourceRange": ["127.0.0.1/32", "192.168.1.0/24", "::1"]}),
            )
            .expect("o"),
        )
        .expect("b");
        for (ip, ok) in [
            ("127.0.0.1", true),
            ("192.168.1.77", true),
            ("::1", true),
            ("10.0.0.1", false),
            ("", false),
            ("::ffff:127.0.0.1", true),
        ] {
            assert_eq!(a.allows(ip), ok, "{ip}");
        }
        assert_eq!(a.reject, StatusCode::FORBIDDEN);
        let e = IpAllowList::build(
            Opts::new("ipAllowList", &json!({"sourceRange": "10.0.0.0/33"})).expect("o"),
        )
        .expect_err("bad");
        assert_eq!(e.option, "ipAllowList.sourceRange[0]");
        assert!(IpAllowList::build(Opts::new("ipAllowList", &json!({})).expect("o")).is_err());
        let a = IpAllowList::build(
            Opts::new(
                "ipWhiteList",
                &json!({"sourceRange": "10.0.0.0/8", "rejectStatusCode": "404"}),
            )
            .expect("o"),
        )
        .expect("b");
        assert_eq!(a.reject, StatusCode::NOT_FOUND);
    }
}
