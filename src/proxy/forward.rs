//! Forwarding to backends: the upstream transport settings and the header rewriting every proxied request
//! gets (the pools and their transport settings are in [`crate::upstream`]). Header rewriting is pure functions over a
//! `HeaderMap`, tested on their own, in two steps as in Traefik:
//!
//! - at the entrypoint, before routing and before any middleware ([`sanitize_at_entry`]): the forwarded
//!   headers ([`FORWARDED_HEADERS`]) are removed unless the peer is in `forwardedHeaders.trustedIPs`, and
//!   hop-by-hop headers are removed (RFC 9110 §7.6.1, plus any header the `Connection` header names,
//!   except forwarded headers and `Host`). Headers a middleware adds afterwards are therefore never removed
//!   by a client's `Connection` header;
//! - when forwarding ([`set_forwarded`]): `X-Forwarded-*` and `X-Real-Ip` set as Traefik sets them, and
//!   hop-by-hop headers removed again (a middleware may have added some).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

pub use crate::http::context::canonical_ip;
pub use crate::upstream::transport::{load_root_cas, PoolSettings, TransportError};

/// Which peers may set `X-Forwarded-*` (`forwardedHeaders.insecure` / `trustedIPs`).
#[derive(Clone, Debug, Default)]
pub struct TrustedPeers {
    /// Trust everyone.
    pub insecure: bool,
    /// Trusted networks.
    pub nets: Vec<IpNet>,
}

impl TrustedPeers {
    /// Parses Traefik's list of IPs and CIDRs; a bad entry is an error naming it.
    pub fn parse(insecure: bool, entries: &[String]) -> Result<TrustedPeers, String> {
        let mut nets = Vec::new();
        for e in entries {
            let e = e.trim();
            let net = match e.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => match e.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(format!("`{e}` is not an IP address or CIDR")),
                },
            };
            nets.push(net);
        }
        Ok(TrustedPeers { insecure, nets })
    }

    /// Whether `peer` may set forwarded headers.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = canonical_ip(peer);
        self.insecure || self.nets.iter().any(|n| n.contains(&peer))
    }
}

/// Per-request facts the forwarded headers are built from; header values are precomputed per connection.
#[derive(Debug)]
pub struct ForwardInfo<'a> {
    /// Client IP as a header value.
    pub client_ip: &'a HeaderValue,
    /// `http`, `https`, `ws` or `wss`.
    pub proto: &'static str,
    /// The port the client connected to, as a header value.
    pub port: &'a HeaderValue,
    /// This proxy's host name (`X-Forwarded-Server`).
    pub server: &'a HeaderValue,
    /// The client's Host header, if any.
    pub host: Option<&'a HeaderValue>,
}

static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

// Header names as constants: `HeaderName::from_static` with a runtime argument parses the name on every
// call (callgrind: ~1,400 instructions per proxied request in `parse_hdr` before these were constants).
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_FORWARDED_SERVER: HeaderName = HeaderName::from_static("x-forwarded-server");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The forwarded headers: what only a trusted peer may send and what a `Connection` token may never
/// remove. Traefik's managed set (`forwardedheaders.XHeadersSet`: the client-certificate headers of
/// `passTLSClientCert`, `X-Forwarded-Method` of `forwardAuth`, the scheme headers of
/// `addXForwardedSchemeHeaders`, ...) plus RFC 7239 `Forwarded`, which Traefik passes through from anyone;
/// we remove it from untrusted peers as well, since a backend reading it would believe the client.
pub static FORWARDED_HEADERS: [HeaderName; 14] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    X_FORWARDED_PORT,
    X_FORWARDED_SERVER,
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-forwarded-method"),
    HeaderName::from_static("x-forwarded-tls-client-cert"),
    HeaderName::from_static("x-forwarded-tls-client-cert-info"),
    HeaderName::from_static("x-forwarded-scheme"),
    HeaderName::from_static("x-scheme"),
    X_REAL_IP,
    header::FORWARDED,
];

/// Whether `name` is one of [`FORWARDED_HEADERS`], also when spelled with `_` for `-`
/// (`x_forwarded_for`): hyper keeps such names, and backends that map both spellings to one variable
/// (CGI, PHP, WSGI) would read them as ours. Traefik removes them too. No allocation.
pub fn is_forwarded_header(name: &str) -> bool {
    let b = name.as_bytes();
    if !matches!(b.first(), Some(b'x' | b'X' | b'f' | b'F')) {
        return false;
    }
    FORWARDED_HEADERS.iter().any(|h| {
        let h = h.as_str().as_bytes();
        h.len() == b.len()
            && h.iter()
                .zip(b)
                .all(|(&h, &c)| h == c.to_ascii_lowercase() || (h == b'-' && c == b'_'))
    })
}

/// Removes every forwarded header ([`is_forwarded_header`]). Allocates only when one is present.
pub fn remove_forwarded(headers: &mut HeaderMap) {
    if !headers.keys().any(|n| is_forwarded_header(n.as_str())) {
        return;
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_forwarded_header(n.as_str()))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
}

/// What the entrypoint does to every request before routing and before any middleware, as Traefik's
/// entrypoint handler does: an untrusted peer's forwarded headers are removed, then the `Connection`
/// tokens are applied and the hop-by-hop headers removed (keeping `Connection: Upgrade` and `Upgrade` for
/// an upgrade). Doing it here, once, means a client's `Connection: X-Routed` can only remove the client's
/// own `X-Routed`, never one a middleware (`headers`, `forwardAuth`'s `authResponseHeaders`,
/// `stripPrefix`) adds later. Hot path; allocates only when there is something to remove.
pub fn sanitize_at_entry(headers: &mut HeaderMap, trusted: bool) {
    if !trusted {
        remove_forwarded(headers);
    }
    let upgrade = upgrade_requested(headers);
    strip_hop_by_hop(headers, upgrade);
}

/// Whether a `Connection` token may remove the header it names: never a forwarded header (a client must
/// not cut a trusted proxy's `X-Forwarded-For` chain, RFC 9110 §7.6.1 lets the proxy replace the
/// connection options) nor `Host`.
fn removable_by_token(name: &HeaderName) -> bool {
    *name != header::HOST && !is_forwarded_header(name.as_str())
}

/// Removes hop-by-hop headers, including those named by `Connection` (every `Connection` line), except
/// forwarded headers and `Host`. For an upgrade, `Connection: Upgrade` and `Upgrade` are kept (they must
/// reach the backend). `TE: trailers` is kept for gRPC.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Fast path: most requests and responses carry none of these. One pass over the names (no hashing)
    // instead of ten hashed lookups; the outcome is the same as the full path below.
    if !headers
        .keys()
        .any(|n| *n == header::UPGRADE || HOP_BY_HOP.contains(n))
    {
        if keep_upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        }
        return;
    }
    // Headers named in any Connection header (rare): only then allocate. Every Connection line counts, and
    // its raw bytes are split, as Go's `removeConnectionHeaders` does: a second line or an obs-text byte
    // elsewhere in the list must not keep a named header.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case(b"upgrade")
                && !t.eq_ignore_ascii_case(b"keep-alive")
                && !t.eq_ignore_ascii_case(b"close")
        })
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .filter(removable_by_token)
        .collect();
    for n in named {
        headers.remove(n);
    }
    let te_trailers = headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for h in &HOP_BY_HOP {
        headers.remove(h);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Sets `X-Forwarded-*` and `X-Real-Ip` as Traefik does, on a request that went through
/// [`sanitize_at_entry`] (so what is present came from a trusted peer or a middleware): the client IP is
/// appended to `X-Forwarded-For` (all its lines joined, as Go's reverse proxy does), `X-Forwarded-Server`
/// is ours, and the others are set when absent.
pub fn set_forwarded(headers: &mut HeaderMap, f: &ForwardInfo<'_>) {
    // Up to six names are added below: grow the map once rather than on each insert.
    headers.reserve(6);
    let joined = {
        let mut prior = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter(|v| !v.is_empty());
        match prior.next() {
            None => None,
            Some(first) => {
                let mut v = Vec::with_capacity(first.len() + 2 + f.client_ip.len());
                v.extend_from_slice(first.as_bytes());
                for more in prior {
                    v.extend_from_slice(b", ");
                    v.extend_from_slice(more.as_bytes());
                }
                v.extend_from_slice(b", ");
                v.extend_from_slice(f.client_ip.as_bytes());
                HeaderValue::from_bytes(&v).ok()
            }
        }
    };
    headers.insert(
        X_FORWARDED_FOR,
        joined.unwrap_or_else(|| f.client_ip.clone()),
    );
    set_if_absent(headers, X_FORWARDED_PROTO, || {
        HeaderValue::from_static(f.proto)
    });
    if let Some(host) = f.host {
        set_if_absent(headers, X_FORWARDED_HOST, || host.clone());
    }
    set_if_absent(headers, X_FORWARDED_PORT, || f.port.clone());
    headers.insert(X_FORWARDED_SERVER, f.server.clone());
    set_if_absent(headers, X_REAL_IP, || f.client_ip.clone());
}

/// Inserts `name` only when absent (one hash through the entry API).
fn set_if_absent(headers: &mut HeaderMap, name: HeaderName, value: impl FnOnce() -> HeaderValue) {
    if let header::Entry::Vacant(v) = headers.entry(name) {
        v.insert(value());
    }
}

/// Whether a request asks for a protocol upgrade (WebSocket and others).
pub fn upgrade_requested(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).expect("value")
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", hv("keep-alive, x-secret"));
        h.insert("x-secret", hv("1"));
        h.insert("keep-alive", hv("timeout=5"));
        h.insert("transfer-encoding", hv("chunked"));
        h.insert("upgrade", hv("websocket"));
        h.insert("te", hv("trailers"));
        h.insert("x-kept", hv("yes"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.get("connection").is_none());
        assert!(h.get("x-secret").is_none());
        assert!(h.get("keep-alive").is_none());
        assert!(h.get("transfer-encoding").is_none());
        assert!(h.get("upgrade").is_none());
        assert_eq!(h.get("te"), Some(&hv("trailers")));
        assert_eq!(h.get("x-kept"), Some(&hv("yes")));
    }

    #[test]
    fn every_connection_line_and_obs_text_lists_are_applied() {
        // Found by the `forwarded` fuzz target: only the first Connection line was read, and a line with a
        // non-ASCII byte was skipped whole.
        let mut h = HeaderMap::new();
        h.append("connection", hv("close"));
        h.append("connection", hv("x-second"));
        h.append(
            "connection",
            HeaderValue::from_bytes(b"x-third, \xe9").expect("obs-text"),
        );
        h.insert("x-second", hv("1"));
        h.insert("x-third", hv("1"));
        h.insert("x-kept", hv("yes"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.get("x-second").is_none());
        assert!(h.get("x-third").is_none());
        assert_eq!(h.get("x-kept"), Some(&hv("yes")));
    }

    #[test]
    fn upgrade_headers_survive_for_upgrades() {
        let mut h = HeaderMap::new();
        h.insert("connection", hv("Upgrade"));
        h.insert("upgrade", hv("websocket"));
        assert!(upgrade_requested(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade"), Some(&hv("websocket")));
        assert_eq!(h.get("connection"), Some(&hv("Upgrade")));
    }

    fn info<'a>(
        ip: &'a HeaderValue,
        port: &'a HeaderValue,
        server: &'a HeaderValue,
        host: &'a HeaderValue,
    ) -> ForwardInfo<'a> {
        ForwardInfo {
            client_ip: ip,
            proto: "http",
            port,
            server,
            host: Some(host),
        }
    }

    fn forwarded(h: &mut HeaderMap, trusted: bool) {
        let (ip, port, server, host) = (hv("10.1.2.3"), hv("80"), hv("gw"), hv("example.com"));
        sanitize_at_entry(h, trusted);
        set_forwarded(h, &info(&ip, &port, &server, &host));
    }

    #[test]
    fn untrusted_forwarded_headers_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", hv("6.6.6.6"));
        h.insert("x-forwarded-proto", hv("https"));
        h.insert("x-real-ip", hv("6.6.6.6"));
        forwarded(&mut h, false);
        assert_eq!(h.get("x-forwarded-for"), Some(&hv("10.1.2.3")));
        assert_eq!(h.get("x-forwarded-proto"), Some(&hv("http")));
        assert_eq!(h.get("x-forwarded-host"), Some(&hv("example.com")));
        assert_eq!(h.get("x-forwarded-port"), Some(&hv("80")));
        assert_eq!(h.get("x-forwarded-server"), Some(&hv("gw")));
        assert_eq!(h.get("x-real-ip"), Some(&hv("10.1.2.3")));
    }

    #[test]
    fn every_forwarded_header_and_its_underscore_spelling_goes_for_untrusted_peers() {
        let mut h = HeaderMap::new();
        for n in &FORWARDED_HEADERS {
            h.insert(n.clone(), hv("spoofed"));
            let under = n.as_str().replace('-', "_");
            h.insert(
                HeaderName::from_bytes(under.as_bytes()).expect("name"),
                hv("spoofed"),
            );
        }
        h.insert("x-forwarded-tls-client-cert", hv("a"));
        h.append("x-forwarded-tls-client-cert", hv("b"));
        h.insert("x-forwarded-other", hv("kept"));
        h.insert("x_other", hv("kept"));
        h.insert("accept", hv("kept"));
        forwarded(&mut h, false);
        for (n, v) in &h {
            assert_ne!(v, "spoofed", "{n} reached the backend");
        }
        assert!(h.get("x-forwarded-tls-client-cert").is_none());
        assert!(h.get("forwarded").is_none());
        assert_eq!(h.get("x-forwarded-other"), Some(&hv("kept")));
        assert_eq!(h.get("x_other"), Some(&hv("kept")));
        assert_eq!(h.get("accept"), Some(&hv("kept")));
    }

    #[test]
    fn forwarded_names_are_recognised_in_any_case_and_spelling() {
        for n in [
            "x-forwarded-for",
            "X-Forwarded-Tls-Client-Cert-Info",
            "x_forwarded_method",
            "X-Forwarded_Prefix",
            "x-scheme",
            "Forwarded",
        ] {
            assert!(is_forwarded_header(n), "{n}");
        }
        for n in [
            "x-forwarded",
            "x-forwarded-forx",
            "x-forwarded-fo",
            "forwarded-for",
            "x.forwarded.for",
            "",
            "accept",
        ] {
            assert!(!is_forwarded_header(n), "{n}");
        }
    }

    #[test]
    fn trusted_forwarded_headers_are_kept_and_appended() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", hv("1.1.1.1"));
        h.append("x-forwarded-for", hv("2.2.2.2"));
        h.insert("x-forwarded-proto", hv("https"));
        h.insert("x-forwarded-tls-client-cert", hv("pem"));
        forwarded(&mut h, true);
        assert_eq!(
            h.get_all("x-forwarded-for").iter().collect::<Vec<_>>(),
            vec![&hv("1.1.1.1, 2.2.2.2, 10.1.2.3")]
        );
        assert_eq!(h.get("x-forwarded-proto"), Some(&hv("https")));
        assert_eq!(h.get("x-forwarded-tls-client-cert"), Some(&hv("pem")));
    }

    #[test]
    fn connection_tokens_never_name_forwarded_headers_or_host_away() {
        for trusted in [false, true] {
            let mut h = HeaderMap::new();
            h.insert("host", hv("example.com"));
            h.insert("connection", hv("keep-alive"));
            h.append(
                "connection",
                hv("X-Forwarded-For, x-real-ip, X_Forwarded_Host, Host, X-Mine"),
            );
            h.insert("x-forwarded-for", hv("1.1.1.1"));
            h.insert("x-mine", hv("1"));
            forwarded(&mut h, trusted);
            assert_eq!(h.get("host"), Some(&hv("example.com")));
            assert!(
                h.get("x-mine").is_none(),
                "the second Connection line applies"
            );
            assert!(h.get("connection").is_none());
            let xff = if trusted {
                "1.1.1.1, 10.1.2.3"
            } else {
                "10.1.2.3"
            };
            assert_eq!(h.get("x-forwarded-for"), Some(&hv(xff)));
            assert_eq!(h.get("x-real-ip"), Some(&hv("10.1.2.3")));
        }
    }

    #[test]
    fn headers_added_after_the_entry_survive_the_clients_connection_header() {
        let mut h = HeaderMap::new();
        h.insert("connection", hv("x-routed"));
        h.insert("x-routed", hv("from-client"));
        sanitize_at_entry(&mut h, false);
        assert!(h.get("x-routed").is_none());
        // A middleware adds it; the forwarding step removes hop-by-hop headers again.
        h.insert("x-routed", hv("by-gateway"));
        let upgrade = upgrade_requested(&h);
        strip_hop_by_hop(&mut h, upgrade);
        assert_eq!(h.get("x-routed"), Some(&hv("by-gateway")));
    }

    #[test]
    fn upgrades_keep_their_headers_through_the_entry() {
        let mut h = HeaderMap::new();
        h.insert("connection", hv("Upgrade, X-Routed"));
        h.insert("upgrade", hv("websocket"));
        h.insert("x-routed", hv("from-client"));
        sanitize_at_entry(&mut h, false);
        assert!(h.get("x-routed").is_none());
        assert!(upgrade_requested(&h));
        assert_eq!(h.get("connection"), Some(&hv("Upgrade")));
        assert_eq!(h.get("upgrade"), Some(&hv("websocket")));
    }

    #[test]
    fn trusted_peers() {
        let t = TrustedPeers::parse(false, &["10.0.0.0/8".into(), "192.168.1.1".into()])
            .expect("parse");
        assert!(t.trusts("10.2.3.4".parse().expect("ip")));
        assert!(t.trusts("192.168.1.1".parse().expect("ip")));
        assert!(t.trusts("::ffff:10.0.0.1".parse().expect("ip")));
        assert!(!t.trusts("11.0.0.1".parse().expect("ip")));
        assert!(TrustedPeers::parse(false, &["nope".into()]).is_err());
        assert!(TrustedPeers::parse(true, &[])
            .expect("p")
            .trusts("1.2.3.4".parse().expect("ip")));
    }
}
