//! What the request path knows about the client connection a request came on: computed once at accept by
//! the listener, read by the handler, the middlewares and the forwarder. Plain facts, no proxy state.

use std::net::IpAddr;

use http::HeaderValue;

/// Facts about one client connection, computed once at accept.
#[derive(Debug)]
pub struct ConnInfo {
    /// Index of the entrypoint in the table.
    pub entry_point: usize,
    /// The client's address (canonical IPv4 for mapped addresses).
    pub client_ip: IpAddr,
    /// The same, as a header value.
    pub client_ip_header: HeaderValue,
    /// Local port, as a header value (`X-Forwarded-Port` fallback).
    pub port_header: HeaderValue,
    /// Whether the peer may set `X-Forwarded-*` (`forwardedHeaders.trustedIPs`).
    pub trusted: bool,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The client's certificate chain when it sent one (mutual TLS); read by `passTLSClientCert`.
    pub client_certs: Option<std::sync::Arc<[rustls::pki_types::CertificateDer<'static>]>>,
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as plain IPv4, so that one client has one address in
/// allow lists, rate-limit keys and forwarded headers.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}
