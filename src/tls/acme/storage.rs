//! `acme.json`, read and written in Traefik's exact format, so that a Traefik user can point swarmgate at their
//! file (nothing is re-issued) and Traefik can read swarmgate's.
//!
//! Traefik's format (`pkg/provider/acme/{local_store,account,provider}.go`): one object per resolver name,
//!
//! ```json
//! { "<resolver>": {
//!     "Account": { "Email": "…", "Registration": { "body": {…}, "uri": "…" }, "PrivateKey": "<base64 DER>", "KeyType": "4096" },
//!     "Certificates": [ { "domain": { "main": "a.example", "sans": ["b.example"] },
//!                         "certificate": "<base64 PEM chain>", "key": "<base64 PEM key>", "Store": "default" } ] } }
//! ```
//!
//! Go's `[]byte` fields are standard padded base64. Traefik's `Account.PrivateKey` is a PKCS#1 RSA key
//! (it always registers with RSA-4096); instant-acme signs only with ECDSA P-256, so swarmgate cannot use a
//! Traefik account and Traefik could not use swarmgate's. swarmgate therefore keeps Traefik's `Account`
//! untouched (round-tripped verbatim) and stores its own account next to it under `SwarmgateAccount`, in the
//! same shape (`PrivateKey` = base64 PKCS#8 DER, `KeyType` = `P256`). Go's `encoding/json` ignores unknown keys,
//! so Traefik reads the file; when Traefik rewrites it, the extra key is dropped and swarmgate registers again.
//!
//! Writes are atomic (temporary file in the same directory, fsync, rename, fsync of the directory) with mode
//! 0600. A file whose permissions let group or others in is refused with Traefik's own message. This module
//! does no locking: callers serialize read-modify-write through [`super::cluster`].

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why `acme.json` could not be read or written. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Traefik's refusal, word for word: the file is readable or writable by group or others.
    #[error("permissions {mode:o} for {path} are too open, please use 600")]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// An I/O error on the file or its directory.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid JSON in Traefik's format.
    #[error("{path}: not a valid acme.json: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The decoding error.
        source: serde_json::Error,
    },
}

/// Go `[]byte`: standard padded base64 in JSON; `null` decodes as empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GoBytes(pub Vec<u8>);

impl Serialize for GoBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for GoBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<GoBytes, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        let Some(s) = s else {
            return Ok(GoBytes::default());
        };
        let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        STANDARD
            .decode(clean.as_bytes())
            .map(GoBytes)
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The whole file: resolver name → its data. Resolvers swarmgate does not manage are kept as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AcmeFile {
    /// By resolver name.
    pub resolvers: BTreeMap<String, ResolverData>,
}

/// One resolver's account(s) and certificates (Traefik's `StoredData`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResolverData {
    /// Traefik's account, kept verbatim (swarmgate cannot sign with its RSA key; see the module doc).
    #[serde(rename = "Account", default)]
    pub account: Option<serde_json::Value>,
    /// Issued certificates.
    #[serde(rename = "Certificates", default, deserialize_with = "null_as_default")]
    pub certificates: Vec<StoredCertificate>,
    /// swarmgate's own ACME account (ECDSA P-256), in Traefik's account shape.
    #[serde(
        rename = "SwarmgateAccount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub swarmgate_account: Option<StoredAccount>,
}

/// An ACME account in Traefik's `Account` shape.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredAccount {
    /// Contact address.
    #[serde(rename = "Email", default)]
    pub email: String,
    /// The CA's registration: `body` (the account object) and `uri` (the account URL, used as key id).
    #[serde(rename = "Registration", default)]
    pub registration: Option<Registration>,
    /// Private key, DER (PKCS#8 for swarmgate's P-256 key).
    #[serde(rename = "PrivateKey", default)]
    pub private_key: GoBytes,
    /// Key type (`P256` for swarmgate's accounts; Traefik's lego names, e.g. `4096`).
    #[serde(rename = "KeyType", default, skip_serializing_if = "String::is_empty")]
    pub key_type: String,
}

/// lego's `registration.Resource`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// The account object as the CA returned it.
    #[serde(default)]
    pub body: serde_json::Value,
    /// Account URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uri: String,
}

/// Traefik's `types.Domain`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDomain {
    /// Main name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub main: String,
    /// Alternative names.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub sans: Vec<String>,
}

impl StoredDomain {
    /// Main then SANs (Traefik's `ToStrArray`).
    pub fn names(&self) -> Vec<String> {
        let mut v = Vec::with_capacity(1 + self.sans.len());
        if !self.main.is_empty() {
            v.push(self.main.clone());
        }
        v.extend(self.sans.iter().cloned());
        v
    }
}

/// Traefik's `CertAndStore`: a certificate (PEM chain), its key (PEM) and its TLS store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredCertificate {
    /// Names the certificate was ordered for.
    #[serde(default)]
    pub domain: StoredDomain,
    /// PEM chain (leaf first).
    #[serde(default)]
    pub certificate: GoBytes,
    /// PEM private key.
    #[serde(default)]
    pub key: GoBytes,
    /// TLS store (`default`).
    #[serde(rename = "Store", default)]
    pub store: String,
}

/// Checks the file's permissions as Traefik's `CheckFile` does. A missing file is fine (it will be created).
pub fn check_permissions(path: &Path) -> Result<(), StorageError> {
    match fs::metadata(path) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(StorageError::TooOpen {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StorageError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads the file. Missing or empty → empty data. Certificates without a certificate or key are dropped, as
/// Traefik does on load.
pub fn load(path: &Path) -> Result<AcmeFile, StorageError> {
    check_permissions(path)?;
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AcmeFile::default()),
        Err(source) => {
            return Err(StorageError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    parse(&bytes).map_err(|source| StorageError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Decodes file contents (empty → empty data).
pub fn parse(bytes: &[u8]) -> Result<AcmeFile, serde_json::Error> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(AcmeFile::default());
    }
    let mut file: AcmeFile = serde_json::from_slice(bytes)?;
    for data in file.resolvers.values_mut() {
        data.certificates
            .retain(|c| !c.certificate.0.is_empty() && !c.key.0.is_empty());
    }
    Ok(file)
}

/// Encodes the file as Traefik does (`json.MarshalIndent(…, "", "  ")`).
pub fn encode(file: &AcmeFile) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec_pretty(file)
}

/// Writes the file atomically with mode 0600: temporary file in the same directory, fsync, rename, fsync of
/// the directory. Creates the directory if needed. On failure the previous file is untouched.
pub fn save(path: &Path, file: &AcmeFile) -> Result<(), StorageError> {
    let bytes = encode(file).map_err(|source| StorageError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &bytes)
}

/// Atomic 0600 write of `bytes` to `path` (see [`save`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let io = |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "acme.json".into());
    let tmp = dir.join(format!(
        ".{name}.{}.{:x}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file as Traefik v3 writes it (account key shortened: we never parse it).
    const TRAEFIK: &str = r#"{
  "le": {
    "Account": {
      "Email": "ops@example.com",
      "Registration": {
        "body": { "status": "valid", "contact": ["mailto:ops@example.com"] },
        "uri": "https://acme-v02.api.letsencrypt.org/acme/acct/123"
      },
      "PrivateKey": "MIIJKAIBAAKCAgEA",
      "KeyType": "4096"
    },
    "Certificates": [
      { "domain": { "main": "a.example.com", "sans": ["b.example.com"] },
        "certificate": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t", "key": "LS0tLS1CRUdJTg==", "Store": "default" },
      { "domain": { "main": "empty.example.com" }, "certificate": null, "key": null, "Store": "default" }
    ]
  },
  "other": { "Account": null, "Certificates": null }
}"#;

    #[test]
    fn reads_traefik_format_and_drops_empty_certificates() {
        let f = parse(TRAEFIK.as_bytes()).expect("parse");
        let le = &f.resolvers["le"];
        assert_eq!(le.certificates.len(), 1);
        let c = &le.certificates[0];
        assert_eq!(c.domain.names(), ["a.example.com", "b.example.com"]);
        assert_eq!(c.certificate.0, b"-----BEGIN CERTIFICATE-----");
        assert_eq!(c.store, "default");
        assert_eq!(
            le.account.as_ref().and_then(|a| a["KeyType"].as_str()),
            Some("4096")
        );
        assert!(f.resolvers["other"].certificates.is_empty());
    }

    #[test]
    fn round_trips_traefik_fields_verbatim() {
        let f = parse(TRAEFIK.as_bytes()).expect("parse");
        let out: serde_json::Value =
            serde_json::from_slice(&encode(&f).expect("encode")).expect("json");
        assert_eq!(out["le"]["Account"]["PrivateKey"], "MIIJKAIBAAKCAgEA");
        assert_eq!(
            out["le"]["Account"]["Registration"]["uri"],
            "https://acme-v02.api.letsencrypt.org/acme/acct/123"
        );
        let c = &out["le"]["Certificates"][0];
        assert_eq!(c["domain"]["main"], "a.example.com");
        assert_eq!(c["domain"]["sans"][0], "b.example.com");
        assert_eq!(c["certificate"], "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t");
        assert_eq!(c["Store"], "default");
        assert!(out["le"].get("SwarmgateAccount").is_none());
    }

    #[test]
    fn swarmgate_account_is_stored_beside_traefiks() {
        let mut f = AcmeFile::default();
        f.resolvers
            .entry("le".into())
            .or_default()
            .swarmgate_account = Some(StoredAccount {
            email: "a@b.c".into(),
            registration: Some(Registration {
                body: serde_json::json!({"status": "valid"}),
                uri: "https://ca/acct/1".into(),
            }),
            private_key: GoBytes(vec![1, 2, 3]),
            key_type: "P256".into(),
        });
        let text = String::from_utf8(encode(&f).expect("encode")).expect("utf8");
        assert!(text.contains("\"SwarmgateAccount\""), "{text}");
        assert!(text.contains("\"PrivateKey\": \"AQID\""), "{text}");
        assert!(text.contains("\"Account\": null"), "{text}");
        assert_eq!(parse(text.as_bytes()).expect("parse"), f);
    }

    #[test]
    fn refuses_open_permissions_with_traefiks_message() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("acme.json");
        fs::write(&p, "{}").expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = load(&p).expect_err("too open");
        assert_eq!(
            e.to_string(),
            format!(
                "permissions 644 for {} are too open, please use 600",
                p.display()
            )
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(load(&p).expect("load").resolvers.is_empty());
    }

    #[test]
    fn writes_atomically_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("sub/acme.json");
        let f = parse(TRAEFIK.as_bytes()).expect("parse");
        save(&p, &f).expect("save");
        let mode = fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&p).expect("load"), f);
        let leftovers: Vec<_> = fs::read_dir(p.parent().expect("dir"))
            .expect("ls")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        assert!(load(&dir.path().join("missing.json"))
            .expect("missing")
            .resolvers
            .is_empty());
    }
}
