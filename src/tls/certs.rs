//! Certificates: loading PEM (files or inline, as Traefik accepts both), reading the names a certificate
//! covers, the set the SNI resolver reads, and the self-signed default certificate.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Why a certificate could not be used. Names the input.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The PEM holds no certificate or no key, or does not parse.
    #[error("{what}: {reason}")]
    Pem {
        /// Which input (`certFile …`, `keyFile …`).
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The key type is not supported, or key and certificate do not match.
    #[error("{what}: {source}")]
    Key {
        /// Which input.
        what: String,
        /// The TLS library's reason.
        source: rustls::Error,
    },
    /// Generating the default certificate failed.
    #[error("generating the default certificate: {0}")]
    Generate(String),
}

/// Reads a `certFile`/`keyFile` value: inline PEM when it contains `-----BEGIN`, else a file path.
#[allow(clippy::disallowed_methods)] // configuration load, never the handshake: the resolver gets parsed keys
pub fn pem_bytes(value: &str, what: &str) -> Result<Vec<u8>, CertError> {
    if value.contains("-----BEGIN") {
        Ok(value.as_bytes().to_vec())
    } else {
        std::fs::read(value).map_err(|source| CertError::Read {
            path: format!("{what} {value}"),
            source,
        })
    }
}

/// Builds a signing certificate from PEM chain and key (RSA, ECDSA or Ed25519; PKCS#8, PKCS#1 or SEC1).
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    what: &str,
) -> Result<CertifiedKey, CertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::Pem {
            what: format!("{what} certificate"),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(CertError::Pem {
            what: format!("{what} certificate"),
            reason: "no certificate in PEM".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| CertError::Pem {
        what: format!("{what} key"),
        reason: e.to_string(),
    })?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|source| CertError::Key {
            what: format!("{what} key"),
            source,
        })?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match().map_err(|source| CertError::Key {
        what: what.to_string(),
        source,
    })?;
    Ok(ck)
}

/// The DNS names (and IP addresses, as text) a certificate is valid for: its SANs, or its CN without SANs.
/// Lowercased. Unparseable certificates yield no names (they are then only usable as default).
pub fn names(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, x509)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => out.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b)
                            .ok()
                            .map(|a| std::net::IpAddr::from(a).to_string()),
                        16 => <[u8; 16]>::try_from(*b)
                            .ok()
                            .map(|a| std::net::IpAddr::from(a).to_string()),
                        _ => None,
                    };
                    out.extend(ip);
                }
                _ => {}
            }
        }
    }
    if out.is_empty() {
        for cn in x509.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                out.push(s.to_ascii_lowercase());
            }
        }
    }
    out
}

/// Seconds since the Unix epoch at which a certificate expires, if it parses.
pub fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(x509.validity().not_after.timestamp())
}

/// Certificates by name, as the SNI resolver reads them. Immutable; rebuilt with the routing table.
#[derive(Debug, Default)]
pub struct CertSet {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` stored under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl CertSet {
    /// Adds a certificate under every name it covers. Earlier certificates win for a name (configuration
    /// order), except that a certificate expiring later replaces one for the same name (renewals).
    pub fn insert(&mut self, ck: Arc<CertifiedKey>) {
        let Some(leaf) = ck.cert.first() else { return };
        let expiry = not_after(leaf);
        for name in names(leaf) {
            let (map, key) = match name.strip_prefix("*.") {
                Some(rest) => (&mut self.wildcard, rest.to_string()),
                None => (&mut self.exact, name),
            };
            let replace = match map.get(&key) {
                None => true,
                Some(old) => {
                    let old_expiry = old.cert.first().and_then(not_after);
                    matches!((expiry, old_expiry), (Some(n), Some(o)) if n > o)
                }
            };
            if replace {
                map.insert(key, ck.clone());
            }
        }
    }

    /// The certificate for an SNI name: exact match, then a wildcard one label up.
    pub fn resolve(&self, sni: &str) -> Option<&Arc<CertifiedKey>> {
        if let Some(c) = self.exact.get(sni) {
            return Some(c);
        }
        let (_, parent) = sni.split_once('.')?;
        self.wildcard.get(parent)
    }

    /// Whether some certificate covers `sni`.
    pub fn covers(&self, sni: &str) -> bool {
        self.resolve(sni).is_some()
    }

    /// Every distinct certificate in the set (for the API's `/api/certificates`). Read-only.
    pub fn certificates(&self) -> Vec<Arc<CertifiedKey>> {
        let mut out: Vec<Arc<CertifiedKey>> = Vec::new();
        for ck in self.exact.values().chain(self.wildcard.values()) {
            if !out.iter().any(|c| Arc::ptr_eq(c, ck)) {
                out.push(ck.clone());
            }
        }
        out
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The self-signed certificate served when nothing else matches (Traefik serves "TRAEFIK DEFAULT CERT").
pub fn generate_default() -> Result<CertifiedKey, CertError> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| CertError::Generate(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "TRAEFIK DEFAULT CERT");
    let key = rcgen::KeyPair::generate().map_err(|e| CertError::Generate(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| CertError::Generate(e.to_string()))?;
    certified_key(
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
        "default certificate",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(names: &[&str]) -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .expect("gen");
        (ck.cert.pem(), ck.signing_key.serialize_pem())
    }

    #[test]
    fn loads_inline_pem_and_reads_names() {
        let (c, k) = make(&["a.test", "*.w.test", "127.0.0.1"]);
        let ck = certified_key(c.as_bytes(), k.as_bytes(), "t").expect("load");
        let mut n = names(&ck.cert[0]);
        n.sort();
        assert_eq!(n, vec!["*.w.test", "127.0.0.1", "a.test"]);
        assert!(not_after(&ck.cert[0]).is_some());
        let mut set = CertSet::default();
        set.insert(Arc::new(ck));
        assert!(set.covers("a.test"));
        assert!(set.covers("x.w.test"));
        assert!(!set.covers("y.x.w.test"), "a wildcard covers one label");
        assert!(!set.covers("w.test"));
        assert!(set.covers("127.0.0.1"));
    }

    #[test]
    fn mismatched_or_broken_pem_is_an_error() {
        let (c, _) = make(&["a.test"]);
        let (_, other_key) = make(&["b.test"]);
        assert!(certified_key(c.as_bytes(), other_key.as_bytes(), "t").is_err());
        assert!(certified_key(b"garbage", other_key.as_bytes(), "t").is_err());
        assert!(pem_bytes("/nonexistent/file.pem", "certFile").is_err());
    }

    #[test]
    fn default_certificate_is_traefiks() {
        let ck = generate_default().expect("gen");
        assert_eq!(names(&ck.cert[0]), vec!["traefik default cert"]);
    }
}
