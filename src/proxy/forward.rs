//! Forwarding to backends: the upstream transport settings and the header rewriting every proxied request
//! gets (the pools themselves are in [`super::pool`]). Header rewriting is a pure function over a
//! `HeaderMap`, tested on its own: hop-by-hop headers removed (RFC 9110 §7.6.1, plus any header the
//! `Connection` header names), `X-Forwarded-*` and `X-Real-Ip` set as Traefik sets them, and incoming
//! forwarded headers trusted only from `forwardedHeaders.trustedIPs`.

use std::net::IpAddr;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

/// Settings of the upstream pools (from `serversTransport`).
#[derive(Clone, Debug, Default)]
pub struct PoolSettings {
    /// TCP connect timeout (`dialTimeout`).
    pub dial_timeout: Option<Duration>,
    /// Idle pooled connection lifetime (`idleConnTimeout`).
    pub idle_timeout: Option<Duration>,
    /// Idle connections kept per backend (`maxIdleConnsPerHost`).
    pub max_idle_per_host: usize,
    /// Skip verification of HTTPS backends' certificates (`insecureSkipVerify`).
    pub insecure_skip_verify: bool,
    /// Extra trusted CAs for HTTPS backends (`rootCAs`), DER.
    pub root_cas: Vec<rustls::pki_types::CertificateDer<'static>>,
}

/// Why the upstream TLS settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The TLS library refused the settings.
    #[error("TLS client settings: {0}")]
    Tls(#[from] rustls::Error),
    /// A `rootCAs` entry is neither a readable PEM file nor inline PEM.
    #[error("rootCAs entry `{entry}`: {reason}")]
    RootCa {
        /// The entry (path or the start of inline PEM).
        entry: String,
        /// What failed.
        reason: String,
    },
}

/// Reads `rootCAs` entries: file paths or inline PEM, as Traefik accepts both.
pub fn load_root_cas(
    entries: &[String],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TransportError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut out = Vec::new();
    for e in entries {
        let pem = if e.contains("-----BEGIN") {
            e.clone().into_bytes()
        } else {
            std::fs::read(e).map_err(|err| TransportError::RootCa {
                entry: e.clone(),
                reason: err.to_string(),
            })?
        };
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|err| TransportError::RootCa {
                entry: e.chars().take(40).collect(),
                reason: err.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TransportError::RootCa {
                entry: e.chars().take(40).collect(),
                reason: "no certificate found".into(),
            });
        }
        out.extend(certs);
    }
    Ok(out)
}

/// Client TLS configuration for HTTPS backends: webpki roots plus `rootCAs`.
pub(super) fn upstream_tls(s: &PoolSettings) -> Result<rustls::ClientConfig, TransportError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let cfg = if s.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for ca in &s.root_cas {
            let _ = roots.add(ca.clone());
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    // ALPN (h2, http/1.1) is set by the pool, which decides the protocol from it.
    Ok(cfg)
}

/// `insecureSkipVerify`: accepts any backend certificate, still checks handshake signatures.
#[derive(Debug)]
struct NoVerify(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

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

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as plain IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Per-request facts the forwarded headers are built from; header values are precomputed per connection.
#[derive(Debug)]
pub struct ForwardInfo<'a> {
    /// Client IP as a header value.
    pub client_ip: &'a HeaderValue,
    /// Whether the peer is trusted to have set forwarded headers.
    pub trusted: bool,
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

static X_FORWARDED: [HeaderName; 8] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    X_FORWARDED_PORT,
    X_FORWARDED_SERVER,
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-uri"),
    X_REAL_IP,
];

/// Removes hop-by-hop headers, including those named by `Connection`. For an upgrade, `Connection: Upgrade`
/// and `Upgrade` are kept (they must reach the backend). `TE: trailers` is kept for gRPC.
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

/// Sets `X-Forwarded-*` and `X-Real-Ip` as Traefik does: untrusted peers' values are removed first; then
/// `X-Forwarded-For` gets the client IP appended, and the others are set when absent.
pub fn set_forwarded(headers: &mut HeaderMap, f: &ForwardInfo<'_>) {
    // Untrusted peers' values go; scan the names once (no hashing) and remove only if one is present.
    if !f.trusted && headers.keys().any(|n| X_FORWARDED.contains(n)) {
        for h in &X_FORWARDED {
            headers.remove(h);
        }
    }
    // Up to six names are added below: grow the map once rather than on each insert.
    headers.reserve(6);
    let xff = X_FORWARDED_FOR;
    let prev = if f.trusted { headers.get(&xff) } else { None };
    let joined = match prev {
        Some(prev) if !prev.is_empty() => {
            let mut v = Vec::with_capacity(prev.len() + 2 + f.client_ip.len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(f.client_ip.as_bytes());
            HeaderValue::from_bytes(&v).ok()
        }
        _ => None,
    };
    headers.insert(xff, joined.unwrap_or_else(|| f.client_ip.clone()));
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
        trusted: bool,
    ) -> ForwardInfo<'a> {
        ForwardInfo {
            client_ip: ip,
            trusted,
            proto: "http",
            port,
            server,
            host: Some(host),
        }
    }

    #[test]
    fn untrusted_forwarded_headers_are_replaced() {
        let (ip, port, server, host) = (hv("10.1.2.3"), hv("80"), hv("gw"), hv("example.com"));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", hv("6.6.6.6"));
        h.insert("x-forwarded-proto", hv("https"));
        h.insert("x-real-ip", hv("6.6.6.6"));
        set_forwarded(&mut h, &info(&ip, &port, &server, &host, false));
        assert_eq!(h.get("x-forwarded-for"), Some(&hv("10.1.2.3")));
        assert_eq!(h.get("x-forwarded-proto"), Some(&hv("http")));
        assert_eq!(h.get("x-forwarded-host"), Some(&hv("example.com")));
        assert_eq!(h.get("x-forwarded-port"), Some(&hv("80")));
        assert_eq!(h.get("x-forwarded-server"), Some(&hv("gw")));
        assert_eq!(h.get("x-real-ip"), Some(&hv("10.1.2.3")));
    }

    #[test]
    fn trusted_forwarded_headers_are_kept_and_appended() {
        let (ip, port, server, host) = (hv("10.1.2.3"), hv("80"), hv("gw"), hv("example.com"));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", hv("1.1.1.1"));
        h.insert("x-forwarded-proto", hv("https"));
        set_forwarded(&mut h, &info(&ip, &port, &server, &host, true));
        assert_eq!(h.get("x-forwarded-for"), Some(&hv("1.1.1.1, 10.1.2.3")));
        assert_eq!(h.get("x-forwarded-proto"), Some(&hv("https")));
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
