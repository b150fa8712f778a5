//! `ipStrategy`: which IP stands for the client (`depth`, `excludedIPs`, `ipv6Subnet`), shared by
//! `ipAllowList`, `rateLimit` and `inFlightReq`.
//!
//! As Traefik: with `depth` N the N-th address from the right of `X-Forwarded-For`; else with `excludedIPs`
//! the rightmost address not excluded; else the connection's peer. `X-Forwarded-For` counts only from a
//! trusted peer (`forwardedHeaders.trustedIPs`): the entrypoint drops it otherwise, as Traefik's does.

use std::net::IpAddr;

use ipnet::IpNet;

use super::opts::Opts;
use super::MiddlewareError;

/// A compiled IP strategy.
#[derive(Debug, Clone, Default)]
pub struct IpStrategy {
    depth: usize,
    excluded: Vec<IpNet>,
    ipv6_subnet: Option<u8>,
}

/// Parses an IP or a CIDR into a network.
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

impl IpStrategy {
    /// Reads an `ipStrategy` section.
    pub fn build(mut o: Opts<'_>) -> Result<IpStrategy, MiddlewareError> {
        let depth = o.u64("depth")?.unwrap_or(0) as usize;
        let mut excluded = Vec::new();
        for (i, e) in o.strings("excludedIPs")?.iter().enumerate() {
            excluded.push(parse_net(e).ok_or_else(|| {
                o.err(
                    &format!("excludedIPs[{i}]"),
                    format!("`{e}` is not an IP address or CIDR"),
                )
            })?);
        }
        let ipv6_subnet = match o.u64("ipv6Subnet")? {
            None | Some(0) => None,
            Some(n) if n <= 128 => Some(n as u8),
            Some(n) => {
                return Err(o.err("ipv6Subnet", format!("{n} is not a prefix length (1-128)")))
            }
        };
        o.finish()?;
        Ok(IpStrategy {
            depth,
            excluded,
            ipv6_subnet,
        })
    }

    /// The client IP as text (empty when the strategy finds none). `xff` is `X-Forwarded-For` from a
    /// trusted peer, `peer` the connection's address.
    pub fn client_ip(&self, xff: Option<&str>, peer: IpAddr) -> String {
        let ip = if self.depth > 0 {
            let list: Vec<&str> = xff.unwrap_or("").split(',').map(str::trim).collect();
            if xff.is_none() || list.len() < self.depth {
                return String::new();
            }
            // The `depth`-th address from the right (the list has at least `depth` entries).
            match list.len().checked_sub(self.depth).and_then(|k| list.get(k)) {
                Some(ip) => ip.to_string(),
                None => return String::new(),
            }
        } else if !self.excluded.is_empty() {
            let found = xff
                .unwrap_or("")
                .split(',')
                .rev()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .find(|s| match s.parse::<IpAddr>() {
                    Ok(ip) => !self.excluded.iter().any(|n| n.contains(&ip)),
                    Err(_) => true,
                });
            match found {
                Some(s) => s.to_string(),
                None => return String::new(),
            }
        } else {
            peer.to_string()
        };
        match (self.ipv6_subnet, ip.parse::<IpAddr>()) {
            (Some(bits), Ok(IpAddr::V6(v6))) => IpNet::new(IpAddr::V6(v6), bits)
                .map(|n| n.trunc().addr().to_string())
                .unwrap_or(ip),
            _ => ip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strat(v: serde_json::Value) -> IpStrategy {
        IpStrategy::build(Opts::new("ipStrategy", &v).expect("o")).expect("b")
    }

    #[test]
    fn strategies_as_traefik() {
        let peer: IpAddr = "10.0.0.9".parse().expect("ip");
        let xff = Some("1.1.1.1, 2.2.2.2, 3.3.3.3");
        let cases = [
            (json!({}), xff, "10.0.0.9"),
            (json!({"depth": 1}), xff, "3.3.3.3"),
            (json!({"depth": "3"}), xff, "1.1.1.1"),
            (json!({"depth": 4}), xff, ""),
            (json!({"depth": 1}), None, ""),
            (
                json!({"excludedIPs": ["3.3.3.3", "2.2.2.0/24"]}),
                xff,
                "1.1.1.1",
            ),
            (json!({"excludedIPs": "0.0.0.0/0"}), xff, ""),
            (json!({"ipv6Subnet": 64}), None, "10.0.0.9"),
        ];
        for (cfg, x, want) in cases {
            assert_eq!(strat(cfg.clone()).client_ip(x, peer), want, "{cfg}");
        }
        let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().expect("ip");
        assert_eq!(
            strat(json!({"ipv6Subnet": 64})).client_ip(None, v6),
            "2001:db8:1:2::"
        );
        assert!(IpStrategy::build(
            Opts::new("ipStrategy", &json!({"excludedIPs": "nope"})).expect("o")
        )
        .is_err());
    }
}
