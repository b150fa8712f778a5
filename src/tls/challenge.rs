//! ACME challenge answers shared between the ACME manager (which writes them) and the data plane (which
//! serves them): HTTP-01 key authorizations by token, and TLS-ALPN-01 certificates by domain.
//!
//! This is cold, genuinely concurrent state (written while an order is pending, read by the rare
//! validation request), so it lives in a `DashMap`, not in the routing table. The [`ChallengeSource`]
//! trait lets the ACME manager back it with shared storage, so that any replica can answer a challenge
//! that another replica started.

use std::sync::Arc;

use dashmap::DashMap;
use rustls::sign::CertifiedKey;

/// Where the data plane looks up challenge answers. Implementations must be cheap on a miss.
pub trait ChallengeSource: Send + Sync + std::fmt::Debug {
    /// The key authorization for an HTTP-01 `token`, if a challenge with that token is pending.
    fn http01(&self, token: &str) -> Option<String>;
    /// The `acme-tls/1` certificate for `domain` (lowercase), if a TLS-ALPN-01 challenge is pending.
    fn tls_alpn01(&self, domain: &str) -> Option<Arc<CertifiedKey>>;
}

/// In-memory challenge answers of this process.
#[derive(Debug, Default)]
pub struct MemoryChallenges {
    /// HTTP-01: token → key authorization.
    pub http01: DashMap<String, String>,
    /// TLS-ALPN-01: domain → challenge certificate.
    pub tls_alpn01: DashMap<String, Arc<CertifiedKey>>,
}

impl ChallengeSource for MemoryChallenges {
    fn http01(&self, token: &str) -> Option<String> {
        self.http01.get(token).map(|v| v.clone())
    }

    fn tls_alpn01(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        self.tls_alpn01.get(domain).map(|v| v.clone())
    }
}

/// The handle passed around: the ACME manager may replace the default in-memory source with one backed
/// by shared storage.
pub type SharedChallenges = Arc<dyn ChallengeSource>;

/// Path prefix of HTTP-01 validation requests.
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
