//! `ClientIP` values: IP addresses and CIDR ranges, v4 and v6, compared as Go's `net.IP` does.

use ipnet::IpNet;
use std::net::IpAddr;

/// Parses an IP address (a single-address range) or a CIDR range, as Traefik's
/// `ip.NewChecker` accepts them (`net.ParseIP`, then `net.ParseCIDR`; host bits in a CIDR are
/// allowed and ignored).
pub(crate) fn parse_net(s: &str) -> Option<IpNet> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(IpNet::from(ip));
    }
    s.parse::<IpNet>().ok().map(|n| n.trunc())
}

/// True when `ip` is in one of `nets`.
///
/// Go stores every address in 16-byte form and treats an IPv4 address and its IPv4-mapped IPv6
/// form (`::ffff:10.0.0.1`) as the same address, so both spellings are tried here: a mapped
/// client matches an IPv4 rule, and an IPv4 client matches a mapped or `::ffff:0:0/96` rule.
pub(crate) fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let canonical = ip.to_canonical();
    let mapped = match canonical {
        IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
        IpAddr::V6(_) => None,
    };
    nets.iter()
        .any(|n| n.contains(&canonical) || mapped.is_some_and(|m| n.contains(&m)))
}
