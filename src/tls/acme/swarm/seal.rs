//! Private keys are never stored in clear in Swarm: configs are readable by anyone who may
//! `docker config inspect`. Each private key (certificate key, account key) is sealed with AES-256-GCM
//! (ring) under a key read from a file — by default the Docker secret `/run/secrets/swarmgate-acme-key`.
//!
//! The key file holds at least 32 bytes of secret material (`openssl rand -base64 32`); the AES key is
//! SHA-256 of a version tag and the file's trimmed content, so raw, base64 or hex files all work. A sealed
//! value is `version (1 byte) || nonce (12 random bytes) || ciphertext || tag (16 bytes)`; the associated
//! data names the object (resolver and names), so a sealed key copied into another object does not open.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Default key file: the Docker secret `swarmgate-acme-key` as mounted in a task.
pub const DEFAULT_KEY_FILE: &str = "/run/secrets/swarmgate-acme-key";

/// Least secret material accepted in the key file.
pub const MIN_KEY_BYTES: usize = 32;

const VERSION: u8 = 1;

/// Why the key file cannot be used, or a sealed value does not open.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file cannot be read.
    #[error("ACME storage key file {path}: {source} (swarm:// storage encrypts private keys with it: create the secret, e.g. `openssl rand -base64 32 | docker secret create swarmgate-acme-key -`, and give it to the service, or name another file with acme.storageKeyFile)")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key file holds too little material.
    #[error("ACME storage key file {path}: {len} bytes, at least {MIN_KEY_BYTES} are needed (e.g. `openssl rand -base64 32`)")]
    Short {
        /// The file.
        path: PathBuf,
        /// Its trimmed length.
        len: usize,
    },
    /// A sealed value is malformed, was sealed under another key, or was altered.
    #[error("sealed private key does not open (another swarmgate-acme-key, or altered data)")]
    Open,
    /// The system random source failed.
    #[error("random source failed")]
    Random,
}

/// The AES-256-GCM key private keys are sealed with.
pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// Reads the key file (control plane, at start-up).
    #[allow(clippy::disallowed_methods)] // start-up: the key file
    pub fn from_file(path: &Path) -> Result<Sealer, SealError> {
        let bytes = std::fs::read(path).map_err(|source| SealError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Sealer::from_material(&bytes).ok_or_else(|| SealError::Short {
            path: path.to_path_buf(),
            len: bytes.trim_ascii().len(),
        })
    }

    /// A sealer from secret material (at least [`MIN_KEY_BYTES`] once trimmed); `None` when too short.
    pub fn from_material(material: &[u8]) -> Option<Sealer> {
        let m = material.trim_ascii();
        if m.len() < MIN_KEY_BYTES {
            return None;
        }
        let mut h = Sha256::new();
        h.update(b"swarmgate acme storage key v1\n");
        h.update(m);
        let digest = h.finalize();
        let unbound = UnboundKey::new(&AES_256_GCM, digest.as_slice()).ok()?;
        Some(Sealer {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        })
    }

    /// Seals `plain`, bound to `context` (the object it belongs to).
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens a value [`Sealer::seal`] made for the same `context`.
    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Open)?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buf = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests write key files
mod tests {
    use super::*;

    fn sealer(m: &str) -> Sealer {
        Sealer::from_material(m.as_bytes()).expect("key")
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let s = sealer("0123456789abcdef0123456789abcdef");
        let a = s
            .seal(b"-----BEGIN PRIVATE KEY-----", "le/a.example")
            .expect("seal");
        let b = s
            .seal(b"-----BEGIN PRIVATE KEY-----", "le/a.example")
            .expect("seal");
        assert_ne!(a, b, "a nonce is never reused");
        assert!(!a.windows(11).any(|w| w == b"BEGIN PRIVA"), "not in clear");
        assert_eq!(
            s.open(&a, "le/a.example").expect("open"),
            b"-----BEGIN PRIVATE KEY-----"
        );
    }

    #[test]
    fn wrong_key_tampered_data_or_other_object_do_not_open() {
        let s = sealer("0123456789abcdef0123456789abcdef");
        let other = sealer("0123456789abcdef0123456789abcdeX");
        let sealed = s.seal(b"secret", "le/a.example").expect("seal");
        assert!(matches!(
            other.open(&sealed, "le/a.example"),
            Err(SealError::Open)
        ));
        assert!(matches!(
            s.open(&sealed, "le/b.example"),
            Err(SealError::Open)
        ));
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            if let Some(b) = t.get_mut(i) {
                *b ^= 1;
            }
            assert!(s.open(&t, "le/a.example").is_err(), "byte {i} altered");
        }
        assert!(s.open(&sealed[..10], "le/a.example").is_err());
        assert!(s.open(&[], "le/a.example").is_err());
    }

    #[test]
    fn short_or_missing_key_files_are_refused_clearly() {
        assert!(Sealer::from_material(b"  short  \n").is_none());
        let dir = tempfile::tempdir().expect("tmp");
        let missing = dir.path().join("swarmgate-acme-key");
        let e = Sealer::from_file(&missing).expect_err("missing");
        assert!(e.to_string().contains("docker secret create"), "{e}");
        std::fs::write(&missing, "too short\n").expect("write");
        let e = Sealer::from_file(&missing).expect_err("short");
        assert!(e.to_string().contains("at least 32"), "{e}");
        // Trailing newline (`openssl rand -base64 32 > f`) does not change the key.
        let a = sealer("ZmFrZSBrZXkgbWF0ZXJpYWwgZm9yIHRlc3RzIG9ubHkh");
        let b = sealer("ZmFrZSBrZXkgbWF0ZXJpYWwgZm9yIHRlc3RzIG9ubHkh\n");
        let x = a.seal(b"k", "c").expect("seal");
        assert_eq!(b.open(&x, "c").expect("open"), b"k");
    }
}
