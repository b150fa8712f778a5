//! Names and labels of the Swarm objects of one store (`swarm://<prefix>`).
//!
//! Every name is derived from a hash, so it is stable (every replica computes the same one) and valid
//! whatever the domain names are (Swarm names: letters, digits, `-_.`, at most 64 characters):
//!
//! | object                 | name                                   | one per                      |
//! |------------------------|----------------------------------------|------------------------------|
//! | certificate            | `<prefix>-cert-<h(resolver,names)>-<h(content)>` | certificate generation |
//! | account                | `<prefix>-acct-<h(resolver)>-<h(content)>`   | registration             |
//! | issuance lease         | `<prefix>-lease-<h(resolver,names)>`   | (resolver, names): fixed     |
//! | HTTP-01 answer         | `<prefix>-http01-<h(token)>`           | pending challenge            |
//! | TLS-ALPN-01 answer     | `<prefix>-alpn-<h(domain)>`            | pending challenge            |
//!
//! Every object carries [`STORE`]`=<prefix>` (one list call reads the whole store) and [`KIND`].

use sha2::{Digest, Sha256};

/// Label: the store (prefix) an object belongs to.
pub const STORE: &str = "swarmgate.acme.store";
/// Label: what the object is (`cert`, `account`, `lease`, `http-01`, `tls-alpn-01`).
pub const KIND: &str = "swarmgate.acme.kind";
/// Label: resolver name.
pub const RESOLVER: &str = "swarmgate.acme.resolver";
/// Label: the certificate's names, comma-separated (main first).
pub const DOMAINS: &str = "swarmgate.acme.domains";
/// Label: the certificate's notAfter (RFC 3339).
pub const NOT_AFTER: &str = "swarmgate.acme.not-after";
/// Label: lease holder (replica id).
pub const HOLDER: &str = "swarmgate.acme.holder";
/// Label: lease expiry, milliseconds since the Unix epoch.
pub const EXPIRES: &str = "swarmgate.acme.expires";

/// Kind label values.
pub mod kind {
    /// A certificate with its sealed key.
    pub const CERT: &str = "cert";
    /// An ACME account with its sealed key.
    pub const ACCOUNT: &str = "account";
    /// An issuance lease.
    pub const LEASE: &str = "lease";
    /// An HTTP-01 key authorization.
    pub const HTTP01: &str = "http-01";
    /// A TLS-ALPN-01 key authorization.
    pub const TLS_ALPN01: &str = "tls-alpn-01";
}

fn h(parts: &[&str], hex_len: usize) -> String {
    let mut d = Sha256::new();
    for p in parts {
        d.update(p.as_bytes());
        d.update(b"\n");
    }
    let mut s = hex::encode(d.finalize());
    s.truncate(hex_len);
    s
}

/// Sorted, lowercased, deduplicated names joined by commas: the identity of a domain set.
pub fn names_key(names: &[String]) -> String {
    let mut sorted: Vec<String> = names
        .iter()
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    sorted.sort();
    sorted.dedup();
    sorted.join(",")
}

/// Hash of (resolver, names): shared by a certificate's generations and its lease.
pub fn set_hash(resolver: &str, names: &[String]) -> String {
    h(&[resolver, &names_key(names)], 20)
}

/// A certificate generation's name.
pub fn cert(prefix: &str, resolver: &str, names: &[String], content: &[u8]) -> String {
    let c = hex::encode(Sha256::digest(content));
    format!(
        "{prefix}-cert-{}-{}",
        set_hash(resolver, names),
        c.get(..12).unwrap_or(&c)
    )
}

/// An account object's name.
pub fn account(prefix: &str, resolver: &str, content: &[u8]) -> String {
    let c = hex::encode(Sha256::digest(content));
    format!(
        "{prefix}-acct-{}-{}",
        h(&[resolver], 20),
        c.get(..12).unwrap_or(&c)
    )
}

/// The fixed name of the issuance lease of (resolver, names).
pub fn lease(prefix: &str, resolver: &str, names: &[String]) -> String {
    format!("{prefix}-lease-{}", set_hash(resolver, names))
}

/// An HTTP-01 answer's name.
pub fn http01(prefix: &str, token: &str) -> String {
    format!("{prefix}-http01-{}", h(&[token], 32))
}

/// A TLS-ALPN-01 answer's name.
pub fn tls_alpn01(prefix: &str, domain: &str) -> String {
    format!(
        "{prefix}-alpn-{}",
        h(&[&domain.trim_end_matches('.').to_ascii_lowercase()], 32)
    )
}

/// Seal context of a certificate key (binds the sealed key to its object's identity).
pub fn cert_context(resolver: &str, names: &[String]) -> String {
    format!("cert\n{resolver}\n{}", names_key(names))
}

/// Seal context of an account key.
pub fn account_context(resolver: &str) -> String {
    format!("account\n{resolver}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_swarm_name(n: &str) -> bool {
        n.len() <= 64
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && n.ends_with(|c: char| c.is_ascii_alphanumeric())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    }

    #[test]
    fn names_are_stable_valid_and_distinct() {
        let p = "abcdefghijklmnopqrst"; // the longest prefix allowed
        let ab = vec!["B.example.com.".to_string(), "a.example.com".to_string()];
        let ba = vec!["a.example.com".to_string(), "b.example.com".to_string()];
        assert_eq!(lease(p, "le", &ab), lease(p, "le", &ba));
        assert_ne!(lease(p, "le", &ab), lease(p, "other", &ab));
        assert_ne!(
            lease(p, "le", &ab),
            lease(p, "le", &["a.example.com".to_string()])
        );
        assert_eq!(cert(p, "le", &ab, b"x"), cert(p, "le", &ba, b"x"));
        assert_ne!(cert(p, "le", &ab, b"x"), cert(p, "le", &ab, b"y"));
        assert_eq!(cert_context("le", &ab), cert_context("le", &ba));
        let long = "x".repeat(250);
        for n in [
            cert(p, "le", &ab, b"x"),
            account(p, "le", b"x"),
            lease(p, "le", std::slice::from_ref(&long)),
            http01(p, "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"),
            tls_alpn01(p, &long),
        ] {
            assert!(valid_swarm_name(&n), "{n} ({} chars)", n.len());
        }
        assert_eq!(tls_alpn01(p, "A.example."), tls_alpn01(p, "a.example"));
    }
}
