//! ACME challenge answers as the data plane sees them: HTTP-01 key authorizations by token, and TLS-ALPN-01
//! certificates by domain.
//!
//! Any client can ask for `/.well-known/acme-challenge/<anything>` or offer `acme-tls/1` in a ClientHello,
//! so a lookup must cost no more than a hash lookup: the answers are one immutable [`Answers`] snapshot
//! behind an `ArcSwap`, replaced as a whole by the control plane (the ACME manager when it publishes or
//! withdraws a challenge, and its watcher of the shared storage directory, see
//! `acme::challenge_store`). This module has no file-system code at all: the request path cannot touch
//! a disk through it. A token that is not an RFC 8555 token is refused before any lookup.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::sign::CertifiedKey;

/// One immutable set of pending challenge answers (this replica's and the other replicas').
#[derive(Debug, Default, Clone)]
pub struct Answers {
    /// HTTP-01: token → key authorization.
    pub http01: HashMap<String, Arc<str>>,
    /// TLS-ALPN-01: domain (lowercase, no trailing dot) → the RFC 8737 validation certificate.
    pub tls_alpn01: HashMap<String, Arc<CertifiedKey>>,
}

/// The challenge answers the data plane reads: a snapshot swapped atomically by the control plane.
/// Without an ACME resolver it stays empty.
#[derive(Debug, Default)]
pub struct MemoryChallenges {
    current: ArcSwap<Answers>,
}

impl MemoryChallenges {
    /// Hot path: the key authorization for an HTTP-01 `token`, if a challenge with that token is pending.
    /// A token that is not a valid RFC 8555 token ([`valid_token`]) is refused without a lookup. No lock,
    /// no I/O; allocates only when it answers.
    pub fn http01(&self, token: &str) -> Option<String> {
        if !valid_token(token) {
            return None;
        }
        let answers = self.current.load();
        answers.http01.get(token).map(|v| v.to_string())
    }

    /// Hot path (TLS): the `acme-tls/1` certificate for the ClientHello's server name, if a TLS-ALPN-01
    /// challenge is pending for it. Names are compared case-insensitively, a trailing dot ignored.
    pub fn tls_alpn01(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let answers = self.current.load();
        if answers.tls_alpn01.is_empty() {
            return None;
        }
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        answers.tls_alpn01.get(&name).cloned()
    }

    /// Control plane: replaces the answers as a whole.
    pub fn publish(&self, answers: Answers) {
        self.current.store(Arc::new(answers));
    }

    /// The current answers (tests, and the control plane's bookkeeping).
    pub fn snapshot(&self) -> Arc<Answers> {
        self.current.load_full()
    }
}

/// The handle passed around: the ACME manager publishes into it, the data plane reads it.
pub type SharedChallenges = Arc<MemoryChallenges>;

/// Longest token accepted. RFC 8555 sets no maximum; CAs issue 43 characters (32 bytes).
const MAX_TOKEN_LEN: usize = 256;

/// Shortest token accepted: RFC 8555 §8.3 requires at least 128 bits of entropy, i.e. at least 22
/// base64url characters.
const MIN_TOKEN_LEN: usize = 22;

/// Is `token` an RFC 8555 §8.3 challenge token: base64url alphabet, no padding, at least 128 bits,
/// bounded length? (A length of 4n+1 characters is no unpadded base64 encoding.) Used by the hot path
/// before any lookup, and by the control plane before a token becomes a file name.
pub fn valid_token(token: &str) -> bool {
    (MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&token.len())
        && token.len() % 4 != 1
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Path prefix of HTTP-01 validation requests.
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_before_any_lookup() {
        let ok = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
        assert!(valid_token(ok));
        assert!(valid_token(&"a".repeat(22)));
        for bad in [
            "",
            "short",
            "../../../../etc/passwd/aaaaaaaaaaaaaaaaaaaa",
            "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0=",
            "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEu+0",
            "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEu%2F",
            &"a".repeat(257),
            &"a".repeat(25),
        ] {
            assert!(!valid_token(bad), "{bad}");
        }
        let m = MemoryChallenges::default();
        let mut a = Answers::default();
        a.http01.insert(ok.into(), "k.a".into());
        // Even a key that is in the map is not answered when it is not a token.
        a.http01.insert("short".into(), "no".into());
        m.publish(a);
        assert_eq!(m.http01(ok).as_deref(), Some("k.a"));
        assert_eq!(m.http01("short"), None);
        assert_eq!(m.http01(&"b".repeat(43)), None);
    }
}
