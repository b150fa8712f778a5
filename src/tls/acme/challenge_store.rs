//! Challenge answers shared by every replica: this process's pending challenges in memory, and every
//! replica's in the shared storage directory, so that the replica the CA happens to reach can answer a
//! challenge another replica started.
//!
//! Layout under each storage directory (the directory of `acme.json`):
//! `.swarmgate/challenges/http-01/<token>` holds the key authorization;
//! `.swarmgate/challenges/tls-alpn-01/<domain>` holds the key authorization, from which each replica builds
//! the RFC 8737 certificate itself (a fresh P-256 key; the CA checks only the SAN and the acmeIdentifier).
//!
//! Lookups are called by the data plane: the memory map first; on a miss, a small synchronous file read
//! (a validation request is rare, and the CA retries). Names reaching the file system are checked first
//! (tokens are base64url, domains are DNS names), so no request can read outside the directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashmap::DashMap;
use rcgen::{CertificateParams, CustomExtension, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use super::storage::write_atomic;
use crate::tls::challenge::{ChallengeSource, MemoryChallenges};

/// Why a TLS-ALPN-01 certificate could not be built.
#[derive(Debug, thiserror::Error)]
#[error("TLS-ALPN-01 certificate for `{domain}`: {reason}")]
pub struct AlpnCertError {
    /// The domain.
    pub domain: String,
    /// What failed.
    pub reason: String,
}

/// Builds the RFC 8737 validation certificate: self-signed, SAN = `domain`, critical acmeIdentifier extension
/// holding SHA-256(`key_authorization`).
pub fn tls_alpn01_certificate(
    domain: &str,
    key_authorization: &str,
) -> Result<CertifiedKey, AlpnCertError> {
    let err = |reason: String| AlpnCertError {
        domain: domain.to_string(),
        reason,
    };
    let digest = Sha256::digest(key_authorization.as_bytes());
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| err(e.to_string()))?;
    let mut params =
        CertificateParams::new(vec![domain.to_string()]).map_err(|e| err(e.to_string()))?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(&digest)];
    let cert = params.self_signed(&key).map_err(|e| err(e.to_string()))?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| err(e.to_string()))?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
}

/// Is `token` safe as a file name (base64url alphabet, bounded length)?
fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Is `domain` safe as a file name (DNS name characters, no leading dot)?
fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && !domain.starts_with('.')
        && domain.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_'
        })
}

const HTTP01: &str = "http-01";
const TLS_ALPN01: &str = "tls-alpn-01";

/// The challenges directory under a storage directory.
pub fn challenges_dir(storage_dir: &Path) -> PathBuf {
    storage_dir.join(".swarmgate").join("challenges")
}

/// Memory + shared-directory challenge answers. Cloned handles share state.
#[derive(Debug, Default)]
pub struct StoredChallenges {
    memory: MemoryChallenges,
    /// `.swarmgate/challenges` of every storage directory in use.
    dirs: Vec<PathBuf>,
    /// TLS-ALPN-01 certificates built from another replica's key authorization: domain → (key auth, cert).
    foreign: DashMap<String, (String, Arc<CertifiedKey>)>,
}

impl StoredChallenges {
    /// Answers backed by memory and by the given storage directories (directories of `acme.json` files).
    pub fn new(storage_dirs: Vec<PathBuf>) -> StoredChallenges {
        let mut dirs: Vec<PathBuf> = storage_dirs.iter().map(|d| challenges_dir(d)).collect();
        dirs.sort();
        dirs.dedup();
        StoredChallenges {
            memory: MemoryChallenges::default(),
            dirs,
            foreign: DashMap::new(),
        }
    }

    /// Publishes an HTTP-01 answer in memory and in `storage_dir` (for the other replicas). A failed file
    /// write is returned; the memory answer stays (this replica can still answer).
    pub fn add_http01(
        &self,
        storage_dir: &Path,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), ChallengeError> {
        self.memory
            .http01
            .insert(token.to_string(), key_authorization.to_string());
        if !valid_token(token) {
            return Ok(());
        }
        write_atomic(
            &challenges_dir(storage_dir).join(HTTP01).join(token),
            key_authorization.as_bytes(),
        )?;
        Ok(())
    }

    /// Publishes a TLS-ALPN-01 answer: the certificate in memory, the key authorization in `storage_dir`.
    pub fn add_tls_alpn01(
        &self,
        storage_dir: &Path,
        domain: &str,
        key_authorization: &str,
    ) -> Result<(), ChallengeError> {
        let domain = domain.to_ascii_lowercase();
        let cert = tls_alpn01_certificate(&domain, key_authorization)?;
        self.memory
            .tls_alpn01
            .insert(domain.clone(), Arc::new(cert));
        if valid_domain(&domain) {
            write_atomic(
                &challenges_dir(storage_dir).join(TLS_ALPN01).join(&domain),
                key_authorization.as_bytes(),
            )?;
        }
        Ok(())
    }

    /// Removes an HTTP-01 answer (memory and file).
    pub fn remove_http01(&self, storage_dir: &Path, token: &str) {
        self.memory.http01.remove(token);
        if valid_token(token) {
            let _ = std::fs::remove_file(challenges_dir(storage_dir).join(HTTP01).join(token));
        }
    }

    /// Removes a TLS-ALPN-01 answer (memory and file).
    pub fn remove_tls_alpn01(&self, storage_dir: &Path, domain: &str) {
        let domain = domain.to_ascii_lowercase();
        self.memory.tls_alpn01.remove(&domain);
        if valid_domain(&domain) {
            let _ =
                std::fs::remove_file(challenges_dir(storage_dir).join(TLS_ALPN01).join(&domain));
        }
    }

    fn read_shared(&self, kind: &str, name: &str) -> Option<String> {
        self.dirs.iter().find_map(|d| {
            let text = std::fs::read_to_string(d.join(kind).join(name)).ok()?;
            let text = text.trim();
            (!text.is_empty()).then(|| text.to_string())
        })
    }
}

/// Why a challenge answer could not be published.
#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    /// The TLS-ALPN-01 certificate could not be built.
    #[error(transparent)]
    Cert(#[from] AlpnCertError),
    /// The shared file could not be written.
    #[error(transparent)]
    Storage(#[from] super::storage::StorageError),
}

impl ChallengeSource for StoredChallenges {
    fn http01(&self, token: &str) -> Option<String> {
        if let Some(v) = self.memory.http01(token) {
            return Some(v);
        }
        if !valid_token(token) {
            return None;
        }
        self.read_shared(HTTP01, token)
    }

    fn tls_alpn01(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        if let Some(c) = self.memory.tls_alpn01(domain) {
            return Some(c);
        }
        if !valid_domain(domain) {
            return None;
        }
        let key_auth = self.read_shared(TLS_ALPN01, domain)?;
        if let Some(entry) = self.foreign.get(domain) {
            if entry.0 == key_auth {
                return Some(entry.1.clone());
            }
        }
        match tls_alpn01_certificate(domain, &key_auth) {
            Ok(c) => {
                let c = Arc::new(c);
                self.foreign
                    .insert(domain.to_string(), (key_auth, c.clone()));
                Some(c)
            }
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_replica_answers_from_the_shared_directory() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = StoredChallenges::new(vec![dir.path().to_path_buf()]);
        let b = StoredChallenges::new(vec![dir.path().to_path_buf()]);
        a.add_http01(dir.path(), "tok_-1", "tok_-1.thumb")
            .expect("add");
        assert_eq!(a.http01("tok_-1").as_deref(), Some("tok_-1.thumb"));
        assert_eq!(b.http01("tok_-1").as_deref(), Some("tok_-1.thumb"));
        assert_eq!(b.http01("../../etc/passwd"), None);
        assert_eq!(b.http01("missing"), None);
        a.remove_http01(dir.path(), "tok_-1");
        assert_eq!(b.http01("tok_-1"), None);

        a.add_tls_alpn01(dir.path(), "Example.COM", "t.thumb")
            .expect("add");
        let mine = a.tls_alpn01("example.com").expect("memory");
        let theirs = b.tls_alpn01("example.com").expect("shared");
        assert!(Arc::ptr_eq(
            &theirs,
            &b.tls_alpn01("example.com").expect("cached")
        ));
        for ck in [mine, theirs] {
            let (_, x) = x509_parser::parse_x509_certificate(ck.cert[0].as_ref()).expect("x509");
            let ext = x
                .extensions()
                .iter()
                .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
                .expect("acmeIdentifier");
            assert!(ext.critical);
            let digest = Sha256::digest(b"t.thumb");
            // OCTET STRING (0x04, 32) wrapping the digest.
            assert_eq!(&ext.value[..2], &[0x04, 0x20]);
            assert_eq!(&ext.value[2..], digest.as_slice());
            let san = x.subject_alternative_name().expect("san").expect("san");
            assert_eq!(
                format!("{:?}", san.value.general_names),
                "[DNSName(\"example.com\")]"
            );
        }
        a.remove_tls_alpn01(dir.path(), "example.com");
        assert!(b.tls_alpn01("example.com").is_none());
        assert!(b.tls_alpn01("../x").is_none());
    }
}
